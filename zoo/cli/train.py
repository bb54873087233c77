"""`zoo train FAMILY`: the one run manager that every family plugs into.

The run manager owns what every training run needs: the options every family shares (dataset, epochs, batch
size, seed, learning rate and its schedule, --init-from, output folder, TensorBoard), the output folder
written atomically, the TensorBoard logger, samples.png from any model that can sample, the card, and
`fit_stage`: one stage of training with its backup (an interrupted stage resumes from it) and the NaN guard.
The run calls it once; a family that trains in stages (the DBM's greedy pretraining, `zoo/cli/dbm.py`) calls
it for each stage. A family contributes a `Family` (`zoo/cli/family.py`): its argument groups, its builder,
its default learning rate, its callbacks and its extra pictures.
"""
import datetime
import importlib
import json
import shlex
import shutil
import sys
from pathlib import Path

from zoo.cli.args import Parser, UsageError, number, option, prepare_tensorflow

STRATEGIES = ("default", "mirrored", "multi-worker")  # zoo.distributed.STRATEGIES, without importing TensorFlow
positive_float = number(float, 1e-9, "a number > 0")

_FAMILIES = {}


def families():
    """{name: Family} of `zoo train FAMILY`, from the one list of the zoo's families (`zoo.families`), in the
    order `zoo train --help` lists them."""
    if not _FAMILIES:
        from zoo import families as registry

        for entry in registry.trainable():
            module, _, attribute = entry.train.partition(":")
            family = getattr(importlib.import_module(module), attribute)
            _FAMILIES[family.name] = family
    return _FAMILIES


def add_parser(commands):
    train = commands.add_parser("train", help="train a model", description="Train a model of the zoo.")
    train.set_defaults(func=main)
    subparsers = train.add_subparsers(dest="family", metavar="FAMILY", parser_class=Parser)
    for family in families().values():
        add_family(subparsers, family)
    return train


def main(args, argv):
    if args.family is None:
        raise UsageError(f"zoo train: choose a model family: {', '.join(families())} (see zoo train --help)")
    prepare_tensorflow()
    return run(args.train_family, args, argv)


def add_family(subparsers, family):
    """The subcommand `zoo train FAMILY`: the family's own arguments between the shared ones."""
    parser = subparsers.add_parser(family.name, help=family.help, description=family.description,
                                   epilog=family.epilog)
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", default=family.dataset, help="mnist, binarized_mnist or digits, or tfds:NAME "
                      "(tensorflow-datasets, online: tfds:svhn_cropped, tfds:cifar10, ...) (default: %(default)s)")
    data.add_argument("--dynamic-binarization", action="store_true",
                      help="draw a fresh binary sample of the grey images every epoch")
    family.add_arguments(parser)
    run = parser.add_argument_group("run")
    option(run, "--epochs", 10)
    option(run, "--batch-size", family.batch_size)
    option(run, "--seed", help="seed for weights, sampling and shuffling")
    if family.lr is not None:
        trained_by = "Adam" if family.momentum is None else "SGD"
        option(run, "--lr", family.lr, help=f"{trained_by}'s learning rate (default: %(default)s)")
        option(run, "--lr-final")
        if family.momentum is not None:
            option(run, "--momentum", family.momentum)
    run.add_argument("--strategy", choices=STRATEGIES, default="default",
                     help="default (one device), mirrored (every GPU of this host), or multi-worker (the hosts of "
                          "TF_CONFIG or Slurm; needs --seed; docs/distributed.md) (default: %(default)s)")
    run.add_argument("--connect-timeout", type=positive_float, default=120.0, metavar="SECONDS",
                     help="multi-worker: give up when the other workers do not answer within this (default: 120)")
    run.add_argument("--init-from", metavar="MODEL",
                     help="start from the parameters of a trained model of the same family and shape (model folder "
                          "or registered name) instead of a random start: continue training it with these settings")
    out = parser.add_argument_group("output")
    out.add_argument("--out", required=True, help="model folder to write (must not exist unless --overwrite)")
    out.add_argument("--overwrite", action="store_true", help="replace an existing model folder")
    option(out, "--logdir", help="TensorBoard folder (default: tensorboard/<name of --out>-<time>)")
    option(out, "--log-every", 1)
    option(out, "--verbose", 2)
    parser.set_defaults(train_family=family)
    return parser


def fit_stage(model, x, backup, epochs, batch_size=None, validation_data=None, callbacks=(), verbose=2,
              seed=None):
    """`model.fit` as one resumable stage of training: Keras' BackupAndRestore in the folder `backup` (a stage
    interrupted, by Ctrl-C say, resumes from it when run again; Keras removes it when the stage ends), the NaN
    guard, then `callbacks`. A stage that fails otherwise keeps its backup too when an epoch has finished (a
    monitor's error should not cost the epochs before it), unless it diverged (its last backup may hold the
    diverged weights); on several workers the backup is always kept.
    A model made under a distributed strategy trains by `zoo.distributed.fit_distributed` instead, on batches
    shuffled by `seed` (the same on every worker), its backup written by the chief alone."""
    import keras

    from zoo import distributed, training

    strategy = model.distribute_strategy
    spread = distributed.is_distributed(strategy)
    if spread:
        x = distributed.as_pipeline(model, x, batch_size, seed)
        if validation_data is not None:
            validation_data = distributed.validation_pipeline(model, validation_data)
        keeper = distributed.Backup(backup, chief=distributed.is_chief(strategy))
        start = keeper.restore(model)
        if start:
            print(f"zoo: resuming from {backup} at epoch {start + 1}", file=sys.stderr)
        fit = lambda: distributed.fit_distributed(  # noqa: E731
            model, x, epochs, [keeper, training.RaiseOnNaN(), *callbacks], validation_data, start, verbose)
    else:
        callbacks = [keras.callbacks.BackupAndRestore(str(backup)), training.RaiseOnNaN(), *callbacks]
        fit = lambda: model.fit(x, batch_size=batch_size, epochs=epochs,  # noqa: E731
                                validation_data=validation_data, callbacks=callbacks, verbose=verbose)
    try:
        history = fit()
        if spread and distributed.is_chief(strategy):
            shutil.rmtree(backup, ignore_errors=True)  # as BackupAndRestore does when a stage ends
        return history
    except KeyboardInterrupt:
        print(f"zoo: interrupted; run the same command again to resume from {backup}", file=sys.stderr)
        raise
    except BaseException as error:
        # on several workers a failure is often a peer's: resumable. On one, a divergence's last backup may hold
        # the diverged weights, and a backup without a finished epoch (no weights file of BackupAndRestore's) holds
        # nothing worth a refusal of new settings; another failure (a monitor's, the machine's) keeps the epochs
        if not spread:
            if isinstance(error, FloatingPointError) or not (backup / "latest.weights.h5").is_file():
                shutil.rmtree(backup, ignore_errors=True)
            else:
                print(f"zoo: the training stopped at an error; its finished epochs are kept in {backup}: run the "
                      "same command again to resume, or delete the folder to start over", file=sys.stderr)
        raise


def run(family, args, argv):
    """Train `family`'s model as `args` say and write the model folder `args.out`."""
    import keras

    from zoo import capabilities, data, distributed, export, files, hub, training, viz

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise ValueError(f"output folder {out} already exists: choose another --out or pass --overwrite")
    if args.strategy != "default" and args.seed is None:
        raise ValueError(f"--strategy {args.strategy} needs --seed: every worker must shuffle the data alike")
    dataset = data.load(args.dataset)
    strategy = distributed.create_strategy(args.strategy, args.connect_timeout)
    chief = distributed.is_chief(strategy)  # the one process that writes
    if args.seed is not None:
        keras.utils.set_random_seed(args.seed)
    with strategy.scope():  # every variable (the model's, its chains, the optimizer's) made for the strategy
        model = family.build(args, dataset)
        initialized_from, lineage = None, None
        if args.init_from:
            source, source_card = export.load_folder(hub.resolve(args.init_from))
            if not capabilities.offers(model, capabilities.Initializable):
                raise ValueError(f"zoo train {family.name} cannot start from a trained model (--init-from)")
            model.set_parameters_from(source)
            # the card names the start and the stages that made it: their commands reproduce the model
            initialized_from = {"model": args.init_from, "command": source_card.get("command")}
            lineage = export.lineage(source_card, model=args.init_from)
        fit_data = family.training_data(args, dataset, model)
        family.compile(args, model, steps=args.epochs * family.steps_per_epoch(args, dataset))

    logdir = Path(args.logdir) if args.logdir else \
        Path("tensorboard") / f"{out.name}-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    backup = _resume_folder(out, argv, chief)
    sample_n = min(1000, len(fit_data.validation_x))
    callbacks = [*family.callbacks(args, dataset, model, fit_data),
                 *([training.TensorBoardLogger(logdir, fit_data.validation_x[:100], dataset.image_shape,
                                               every=args.log_every)] if chief else [])]
    trained, metrics_file = backup / "trained.keras", backup / "final_metrics.json"
    if trained.is_file():  # a rerun after the training finished but the folder was not written
        print(f"zoo: the training had finished; writing the model folder from {trained}", file=sys.stderr)
        model, final = keras.models.load_model(trained), json.loads(metrics_file.read_text())
    else:
        validation = fit_data.validation_x[:sample_n]
        if fit_data.validation_y is not None:
            validation = (validation, fit_data.validation_y[:sample_n])
        history = fit_stage(model, fit_data.x, backup, args.epochs, batch_size=fit_data.batch_size,
                            validation_data=validation, callbacks=callbacks, verbose=args.verbose, seed=args.seed)
        final = {k: float(v[-1]) for k, v in history.history.items()}
        if not chief:
            print(f"zoo: worker {strategy.cluster_resolver.task_id} done; the chief writes {out}", file=sys.stderr)
            return 0
        # kept until the folder is written: a failure after the training (sampling, disk) loses no epoch;
        # Keras removes its backup folder when the training ends, so it is made again with its stamp
        backup.mkdir(parents=True, exist_ok=True)
        (backup / "command.json").write_text(json.dumps(argv))
        metrics_file.write_text(json.dumps(final))
        files.write_atomically(trained, model.save)

    pictures = {}
    if capabilities.offers(model, capabilities.Sampler):
        samples = family.samples(args, model, 100, seed=0 if args.seed is None else args.seed)
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


def _resume_folder(out, argv, chief=True):
    """The backup folder of an interrupted run, `<out>.backup`: reused only by the very same command. Only the
    chief of several workers checks and stamps it; the others read the chief's."""
    backup = out.with_name(out.name + ".backup")
    if not chief:
        return backup
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
