"""`zoo train FAMILY`: the one run manager that every family plugs into.

The run manager owns what every training run needs: the common options (dataset, epochs, batch size, seed,
--init-from, output folder, TensorBoard), the output folder written atomically, backup and resume of an
interrupted run (`<out>.backup`, reused only by the very same command), the NaN guard, the TensorBoard
logger, samples.png from any model that can sample, and the card. A family contributes a `Family`: its
argument groups, its builder, its compile step, its callbacks and its extra pictures (`zoo/cli/rbm.py`).
"""
import datetime
import json
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from zoo.cli.args import nonnegative_int, positive_int


@dataclass
class TrainingData:
    """What `fit` sees: `x` (arrays or a tf.data pipeline), the `batch_size` to pass to fit (None for a
    pipeline), and fixed samples of the training and validation splits for monitors and pictures."""
    x: object
    batch_size: object
    monitor_train_x: object
    validation_x: object
    binarization: str
    validation_y: object = None  # labels of validation_x, for a model that also classifies (a hybrid)


class Family:
    """A model family's part of `zoo train`. Subclasses set `name`, `help`, `description`, `epilog`, and
    implement `add_arguments` and `build`; the other methods have defaults."""
    name = help = description = epilog = None

    def add_arguments(self, parser):
        """The family's own argument groups on `parser` (the common ones are added by the run manager)."""
        raise NotImplementedError

    def build(self, args, dataset):
        """A new, uncompiled model for `dataset` from the parsed arguments."""
        raise NotImplementedError

    def training_data(self, args, dataset, model):
        """`TrainingData`: by default the checked training arrays (`model.validate_data`), or fresh binary
        samples every epoch with --dynamic-binarization (the monitors then see one fixed sample)."""
        return default_training_data(args, dataset, model)

    def compile(self, args, model, steps):
        """Compile `model` for `steps` updates in all."""
        model.compile()

    def callbacks(self, args, dataset, model, data):
        """The family's callbacks, run before the TensorBoard logger (so that the scalars they add to `logs`
        are logged)."""
        return []

    def pictures(self, args, dataset, model):
        """{file name: write(path)} of the family's pictures besides samples.png."""
        return {}


def learning_rate(lr, lr_final, steps):
    """`lr`, or with `lr_final` a linear decay from lr to lr_final over `steps` updates (a Keras schedule)."""
    import keras

    if lr_final is None:
        return lr
    return keras.optimizers.schedules.PolynomialDecay(lr, steps, end_learning_rate=lr_final, power=1.0)


def add_log_z_every(group, what):
    """The --log-z-every option of the energy models' families (`log_z_monitor`); `what`: what it logs."""
    group.add_argument("--log-z-every", type=nonnegative_int, default=0, metavar="N",
                       help=f"every N epochs, log Z by a cheap AIS (1000 temperatures, 32 chains) and {what}, into "
                            "TensorBoard and the card (default: 0, off)")


def log_z_monitor(args, data):
    """[the log Z monitor on the validation split (never the test split)] with --log-z-every, else []."""
    from zoo import training

    if not args.log_z_every:
        return []
    return [training.LogPartitionMonitor(data.validation_x, train_x=data.monitor_train_x, every=args.log_z_every,
                                         seed=args.seed or 0, split="validation")]


def default_training_data(args, dataset, model):
    from zoo import data

    train_x = dataset.train.x
    if args.dynamic_binarization:
        if hasattr(model, "prepare_visible_bias"):
            model.prepare_visible_bias(train_x)
        x = dataset.train.pipeline(args.batch_size, seed=args.seed, dynamic_binarization=True)
        # training sees fresh samples; the metrics one fixed sample (for mnist: binarized_mnist's two splits), so
        # that validation numbers measure what the test split of binarized_mnist will
        monitor_train_x, validation_x = data.bernoulli_samples([dataset.train.x, dataset.validation.x])
        return TrainingData(x, None, monitor_train_x, validation_x,
                            "dynamic (fresh Bernoulli sample every epoch)")
    x = model.validate_data(train_x, f"dataset {args.dataset!r} (training split)")
    validation_x = model.validate_data(dataset.validation.x, f"dataset {args.dataset!r} (validation)")
    if args.batch_size > len(x):
        raise ValueError(f"--batch-size {args.batch_size} is larger than the training data ({len(x)})")
    return TrainingData(x, args.batch_size, x, validation_x, dataset.binarization)


def add_family(families, family):
    """The subcommand `zoo train FAMILY`: the family's own arguments, then the common ones."""
    parser = families.add_parser(family.name, help=family.help, description=family.description,
                                 epilog=family.epilog)
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", default="binarized_mnist", help="mnist, binarized_mnist or digits "
                      "(default: %(default)s)")
    data.add_argument("--dynamic-binarization", action="store_true",
                      help="draw a fresh binary sample of the grey images every epoch")
    family.add_arguments(parser)
    run = parser.add_argument_group("run")
    run.add_argument("--epochs", type=positive_int, default=10, help="(default: %(default)s)")
    run.add_argument("--batch-size", type=positive_int, default=100, help="(default: %(default)s)")
    run.add_argument("--seed", type=nonnegative_int, help="seed for weights, sampling and shuffling")
    run.add_argument("--init-from", metavar="MODEL",
                     help="start from the parameters of a trained model of the same family and shape (model folder "
                          "or registered name) instead of a random start: continue training it with these settings")
    out = parser.add_argument_group("output")
    out.add_argument("--out", required=True, help="model folder to write (must not exist unless --overwrite)")
    out.add_argument("--overwrite", action="store_true", help="replace an existing model folder")
    out.add_argument("--logdir", help="TensorBoard folder (default: tensorboard/<name of --out>-<time>)")
    out.add_argument("--log-every", type=positive_int, default=1,
                     help="write images and histograms every N epochs (default: %(default)s)")
    out.add_argument("--verbose", type=int, choices=(0, 1, 2), default=2, help="Keras progress output")
    parser.set_defaults(train_family=family)
    return parser


def run(family, args, argv):
    """Train `family`'s model as `args` say and write the model folder `args.out`."""
    import keras

    from zoo import data, export, files, hub, training, viz

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise ValueError(f"output folder {out} already exists: choose another --out or pass --overwrite")
    dataset = data.load(args.dataset)
    if args.seed is not None:
        keras.utils.set_random_seed(args.seed)
    model = family.build(args, dataset)
    initialized_from, lineage = None, None
    if args.init_from:
        source, source_card = export.load_folder(hub.resolve(args.init_from))
        if not callable(getattr(model, "set_parameters_from", None)):
            raise ValueError(f"zoo train {family.name} cannot start from a trained model (--init-from)")
        model.set_parameters_from(source)
        # the card names the start and the stages that made it: their commands reproduce the model
        initialized_from = {"model": args.init_from, "command": source_card.get("command")}
        lineage = export.lineage(source_card, model=args.init_from)
    fit_data = family.training_data(args, dataset, model)
    family.compile(args, model, steps=args.epochs * -(-dataset.train.n // args.batch_size))

    logdir = Path(args.logdir) if args.logdir else \
        Path("tensorboard") / f"{out.name}-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    backup = _resume_folder(out, argv)
    sample_n = min(1000, len(fit_data.validation_x))
    callbacks = [keras.callbacks.BackupAndRestore(str(backup)), training.RaiseOnNaN(),
                 *family.callbacks(args, dataset, model, fit_data),
                 training.TensorBoardLogger(logdir, fit_data.validation_x[:100], dataset.image_shape,
                                            every=args.log_every)]
    trained, metrics_file = backup / "trained.keras", backup / "final_metrics.json"
    if trained.is_file():  # a rerun after the training finished but the folder was not written
        print(f"zoo: the training had finished; writing the model folder from {trained}", file=sys.stderr)
        model, final = keras.models.load_model(trained), json.loads(metrics_file.read_text())
    else:
        try:
            validation = fit_data.validation_x[:sample_n]
            if fit_data.validation_y is not None:
                validation = (validation, fit_data.validation_y[:sample_n])
            history = model.fit(fit_data.x, batch_size=fit_data.batch_size, epochs=args.epochs,
                                validation_data=validation, callbacks=callbacks, verbose=args.verbose)
        except KeyboardInterrupt:
            print(f"zoo: interrupted; run the same command again to resume from {backup}", file=sys.stderr)
            raise
        except BaseException:
            shutil.rmtree(backup, ignore_errors=True)  # a failed run is not worth resuming
            raise
        final = {k: float(v[-1]) for k, v in history.history.items()}
        # kept until the folder is written: a failure after the training (sampling, disk) loses no epoch;
        # Keras removes its backup folder when the training ends, so it is made again with its stamp
        backup.mkdir(parents=True, exist_ok=True)
        (backup / "command.json").write_text(json.dumps(argv))
        metrics_file.write_text(json.dumps(final))
        files.write_atomically(trained, model.save)
    from zoo import capabilities

    pictures = {}
    if capabilities.offers(model, capabilities.Sampler):
        samples = model.sample(100, seed=0 if args.seed is None else args.seed)
        pictures["samples.png"] = lambda p: viz.save_png(p, viz.tile(samples, dataset.image_shape))
    pictures.update(family.pictures(args, dataset, model))
    command = "zoo " + shlex.join(argv)
    started = {} if initialized_from is None else {
        "initialized_from": initialized_from,
        "lineage": lineage + [{"stage": len(lineage) + 1, "command": command, "epochs": args.epochs}]}
    card = export.make_card(
        model, name=out.name, dataset=args.dataset, binarization=fit_data.binarization,
        image_shape=list(dataset.image_shape), command=command, seed=args.seed, epochs=args.epochs,
        final_metrics=final, **started)
    export.save(model, out, card, pictures, overwrite=args.overwrite)
    shutil.rmtree(backup, ignore_errors=True)
    print(f"model folder: {out}  (model.keras, saved_model/, card.json, {', '.join(pictures)})")
    print("final metrics: " + ", ".join(f"{k}={v:.4g}" for k, v in sorted(final.items())))
    print(f"TensorBoard logs: {logdir}\n  watch them with: tensorboard --logdir {logdir}")
    return 0


def _resume_folder(out, argv):
    """The backup folder of an interrupted run, `<out>.backup`: reused only by the very same command."""
    backup = out.with_name(out.name + ".backup")
    stamp = backup / "command.json"
    command = json.dumps(argv)
    if backup.exists():
        if not stamp.is_file() or stamp.read_text() != command:
            raise ValueError(f"{backup} holds an interrupted run with other settings: rerun that command "
                             "to resume it, or delete the folder")
        print(f"zoo: resuming the interrupted run from {backup}", file=sys.stderr)
    else:
        backup.mkdir(parents=True)
        stamp.write_text(command)
    return backup
