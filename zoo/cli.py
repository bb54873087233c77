"""The `zoo` command: a thin face over the library. Bad input gives one line on stderr and exit code 2."""
import argparse
import datetime
import json
import os
import shlex
import shutil
import sys
from pathlib import Path

EXIT_BAD_INPUT = 2


class UsageError(ValueError):
    pass


class Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line (no usage dump) with exit code 2."""

    def error(self, message):
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def _number(convert, minimum, what):
    """An argparse type: `convert(text)`, finite and >= minimum, else a one-line error naming `what`."""
    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not (minimum <= value < float("inf")):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value
    return parse


_positive_int = _number(int, 1, "a positive integer")
_nonnegative_int = _number(int, 0, "an integer >= 0")
_nonnegative_float = _number(float, 0.0, "a finite number >= 0")
_n_betas = _number(int, 2, "an integer >= 2 (inverse temperatures from 0 to 1)")


def _labels_per_class(text):
    """An argparse type: a positive integer or 'all'."""
    if text == "all":
        return text
    return _number(int, 1, "a positive integer or 'all'")(text)


def build_parser():
    parser = Parser(prog="zoo", description="A model zoo of deep generative models with binary latent "
                    "variables: train, sample and inspect them.",
                    epilog="Run `zoo COMMAND --help` for the options of a command.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    train = commands.add_parser("train", help="train a model", description="Train a model of the zoo.")
    families = train.add_subparsers(dest="family", metavar="FAMILY", parser_class=Parser)
    rbm = families.add_parser(
        "rbm", help="restricted Boltzmann machine (CD-k or persistent CD)",
        description="Train an RBM with CD-k or persistent CD and save it as a model folder "
                    "(model.keras, card.json, samples.png, filters.png), with TensorBoard logs.",
        epilog="example: zoo train rbm --dataset binarized_mnist --n-hidden 500 --cd-k 1 --persistent "
               "--epochs 100 --batch-size 100 --lr 0.05 --out models/rbm500 --seed 0")
    data = rbm.add_argument_group("data")
    data.add_argument("--dataset", default="binarized_mnist", help="mnist, binarized_mnist or digits "
                      "(default: %(default)s)")
    data.add_argument("--dynamic-binarization", action="store_true",
                      help="draw a fresh binary sample of the grey images every epoch")
    model = rbm.add_argument_group("model")
    model.add_argument("--n-hidden", type=_positive_int, default=500, help="hidden units (default: %(default)s)")
    model.add_argument("--visible", default="bernoulli", help="bernoulli, gaussian or softmax (default: %(default)s)")
    model.add_argument("--hidden", default="bernoulli", help="bernoulli or softmax (default: %(default)s)")
    model.add_argument("--group-size", type=_positive_int, help="softmax hidden units: units per one-hot group")
    model.add_argument("--sigma", type=float, default=1.0, help="gaussian visible units: standard deviation")
    model.add_argument("--learn-sigma", action="store_true", help="gaussian visible units: learn sigma")
    model.add_argument("--allow-nonbinary", action="store_true",
                       help="bernoulli visible units: accept probabilities in [0, 1] as data")
    algo = rbm.add_argument_group("training")
    algo.add_argument("--cd-k", type=_positive_int, default=1, help="Gibbs steps per update (default: %(default)s)")
    algo.add_argument("--cd-k-final", type=_positive_int, help="raise k linearly to this by the last epoch")
    algo.add_argument("--persistent", action="store_true", help="persistent CD (fantasy particles)")
    algo.add_argument("--n-chains", type=_positive_int, default=100, help="persistent chains (default: %(default)s)")
    algo.add_argument("--fast-lr", type=_nonnegative_float, default=0.0,
                      help="fast-weights PCD: learning rate of the fast weights the chains add to the model's "
                           "(default: 0, plain PCD; needs --persistent)")
    algo.add_argument("--fast-decay", type=_nonnegative_float, default=0.95,
                      help="fast-weights PCD: factor the fast weights shrink by every update (default: %(default)s)")
    algo.add_argument("--temperatures", type=_positive_int, default=1, metavar="T",
                      help="parallel tempering: --n-chains chains at each of T inverse temperatures from --min-beta "
                           "to 1, swapping states after every sweep (default: 1, plain PCD; needs --persistent)")
    algo.add_argument("--min-beta", type=_nonnegative_float, default=0.0,
                      help="parallel tempering: the hottest chains' inverse temperature, in [0, 1) "
                           "(default: %(default)s)")
    algo.add_argument("--centering", action="store_true",
                      help="centered gradient (Melchior et al. 2016): the update of the model rewritten with the "
                           "visible and hidden units minus their moving means on the data (Bernoulli or softmax "
                           "visible units)")
    algo.add_argument("--centering-rate", type=_nonnegative_float, default=0.01,
                      help="centering: rate of the moving means, in (0, 1] (default: %(default)s)")
    algo.add_argument("--init-from", metavar="MODEL",
                      help="start from the weights and biases of a trained RBM of the same shape (model folder "
                           "or registered name) instead of a random start: continue training it with these settings")
    algo.add_argument("--epochs", type=_positive_int, default=10, help="(default: %(default)s)")
    algo.add_argument("--batch-size", type=_positive_int, default=100, help="(default: %(default)s)")
    algo.add_argument("--lr", type=_nonnegative_float, default=0.05, help="learning rate (default: %(default)s)")
    algo.add_argument("--lr-final", type=_nonnegative_float, help="decay the learning rate linearly to this")
    algo.add_argument("--momentum", type=_nonnegative_float, default=0.0, help="SGD momentum (default: %(default)s)")
    algo.add_argument("--l2", type=_nonnegative_float, default=0.0, help="weight decay (default: %(default)s)")
    algo.add_argument("--sparsity-target", type=_nonnegative_float, default=0.1, help="(default: %(default)s)")
    algo.add_argument("--sparsity-cost", type=_nonnegative_float, default=0.0, help="(default: %(default)s)")
    algo.add_argument("--dropout", type=_nonnegative_float, default=0.0, help="hidden dropout rate")
    algo.add_argument("--max-norm", type=_nonnegative_float, help="bound on each hidden unit's weight norm")
    algo.add_argument("--sample-visible", action="store_true",
                      help="use sampled visible states, not probabilities, for the negative phase")
    algo.add_argument("--no-visible-bias-init", action="store_true",
                      help="start visible biases at zero instead of the data's means")
    algo.add_argument("--seed", type=_nonnegative_int, help="seed for weights, sampling and shuffling")
    out = rbm.add_argument_group("output")
    out.add_argument("--out", required=True, help="model folder to write (must not exist unless --overwrite)")
    out.add_argument("--overwrite", action="store_true", help="replace an existing model folder")
    out.add_argument("--logdir", help="TensorBoard folder (default: tensorboard/<name of --out>-<time>)")
    out.add_argument("--log-every", type=_positive_int, default=1,
                     help="write images and histograms every N epochs (default: %(default)s)")
    out.add_argument("--log-z-every", type=_nonnegative_int, default=0, metavar="N",
                     help="every N epochs, log Z by a cheap AIS (1000 temperatures, 32 chains) and RAISE, and "
                          "the validation NLL bracket, into TensorBoard and the card (default: 0, off)")
    out.add_argument("--verbose", type=int, choices=(0, 1, 2), default=2, help="Keras progress output")

    sample = commands.add_parser("sample", help="draw samples from a trained model into a PNG",
                                 description="Run Gibbs chains in a trained model and tile the samples.")
    sample.add_argument("model", help="model folder or registered name (see zoo list)")
    sample.add_argument("--n", type=_positive_int, default=100, help="number of samples (default: %(default)s)")
    sample.add_argument("--steps", type=_nonnegative_int, default=1000, help="Gibbs steps (default: %(default)s)")
    sample.add_argument("--seed", type=_nonnegative_int, default=0, help="(default: %(default)s)")
    sample.add_argument("--out", default="samples.png", help="PNG file (default: %(default)s)")

    ev = commands.add_parser(
        "eval", help="log Z and the train/test NLL bracket by forward and reverse AIS",
        description="Estimate log Z of a trained model by forward AIS (too low on average) and by reverse "
                    "AIS from test examples (RAISE, too high on average), exactly when the model is small "
                    "enough, and the train/test negative log-likelihood they bracket, in nats per example.",
        epilog="example: zoo eval models/rbm500 --ais-betas 14501 --ais-chains 100 --json")
    ev.add_argument("model", help="model folder or registered name (see zoo list; fetched if needed)")
    ev.add_argument("--dataset", metavar="NAME", help="mnist, binarized_mnist or digits (default: the card's dataset, "
                    "binarized_mnist for a model trained on mnist with dynamic binarisation)")
    ev.add_argument("--ais-betas", type=_n_betas, default=14501, metavar="N",
                    help="forward AIS inverse temperatures (default: %(default)s, Salakhutdinov & Murray)")
    ev.add_argument("--ais-chains", type=_positive_int, default=100, metavar="M",
                    help="forward AIS chains (default: %(default)s)")
    ev.add_argument("--reverse-betas", type=_n_betas, metavar="N",
                    help="RAISE inverse temperatures (default: --ais-betas)")
    ev.add_argument("--reverse-examples", type=_positive_int, default=100, metavar="E",
                    help="test examples annealed back by RAISE (default: %(default)s)")
    ev.add_argument("--exact", action="store_true", help="require exact log Z (only for models whose smaller "
                    "layer has about 20 units; without it, exact log Z is added when possible)")
    ev.add_argument("--base", choices=("data", "uniform"), default="data", help="base model: visible biases "
                    "fitted to the training means, or uniform (default: %(default)s)")
    ev.add_argument("--schedule", choices=("salakhutdinov", "linear"), default="salakhutdinov",
                    help="spacing of the temperatures (default: %(default)s)")
    ev.add_argument("--dtype", choices=("float32", "float64"), default="float64", help="(default: %(default)s)")
    ev.add_argument("--seed", type=_nonnegative_int, default=0, metavar="S", help="(default: %(default)s)")
    ev.add_argument("--json", action="store_true", help="print one JSON object with every number instead")
    ev.add_argument("--write-card", action="store_true",
                    help="record the numbers, their settings and this command as the metrics of the model "
                         "folder's card.json (a folder path, not a fetched name)")

    ft = commands.add_parser(
        "finetune", help="few-shot classification: fine-tune a pretrained model against random initialisation",
        description="Draw N labelled examples per class from the train split (class-balanced, one draw per seed), "
                    "fine-tune a classifier initialised from the model's encoder (sigmoid layers plus a new softmax "
                    "layer) and the same net from random initialisation, fit logistic regression on the frozen "
                    "features, and report test accuracy on the whole test split (mean +- std over seeds). 20 % of "
                    "each draw is held out for early stopping, then the net is trained again from the same start on "
                    "the whole draw for the epochs chosen; with 1 label per class there is no validation and "
                    "the nets train --fixed-epochs epochs.",
        epilog="example: zoo finetune rbm500-bmnist --labels-per-class 1 10 100 --seeds 5 --json")
    ft.add_argument("model", help="model folder or registered name (see zoo list; fetched if needed)")
    ft.add_argument("--labels-per-class", nargs="+", type=_labels_per_class, default=[1, 10, 100], metavar="N",
                    help="labelled examples per class, or 'all' for the whole train split (default: 1 10 100)")
    ft.add_argument("--seeds", type=_positive_int, default=5, help="draws per N: seeds 0..S-1 (default: %(default)s)")
    ft.add_argument("--dataset", metavar="NAME", help="mnist, binarized_mnist or digits (default: the card's dataset)")
    ft.add_argument("--epochs", type=_positive_int, default=200, help="most epochs with early stopping "
                    "(default: %(default)s)")
    ft.add_argument("--patience", type=_positive_int, default=20, help="epochs without a better --monitor "
                    "before stopping (default: %(default)s)")
    ft.add_argument("--monitor", choices=("val_accuracy", "val_loss"), default="val_accuracy",
                    help="what early stopping keeps: the epoch of highest validation accuracy (ties: lower loss) "
                         "or of lowest validation cross-entropy (ties: higher accuracy) (default: %(default)s)")
    ft.add_argument("--fixed-epochs", type=_positive_int, default=100, help="epochs when there is no validation "
                    "set (1 label per class) (default: %(default)s)")
    ft.add_argument("--lr", type=_nonnegative_float, default=1e-3, help="learning rate (default: %(default)s)")
    ft.add_argument("--lr-multiplier", type=_nonnegative_float, default=0.1,
                    help="learning-rate factor of the pretrained layers (default: %(default)s)")
    ft.add_argument("--l2", type=_nonnegative_float, default=1e-5,
                    help="L2 penalty on the kernels (default: %(default)s)")
    ft.add_argument("--batch-size", type=_positive_int, default=32, help="(default: %(default)s)")
    ft.add_argument("--optimizer", choices=("adam", "sgd"), default="adam", help="(default: %(default)s)")
    ft.add_argument("--shift", type=_nonnegative_int, default=0, metavar="R",
                    help="train the nets on each labelled image and its copies shifted by up to R pixels "
                         "(default: %(default)s)")
    ft.add_argument("--dropout", type=_nonnegative_float, default=0.0, metavar="P",
                    help="the nets' hidden dropout rate during training, in [0, 1) (default: %(default)s)")
    ft.add_argument("--no-refit", dest="refit", action="store_false",
                    help="keep the early-stopped net instead of training it again, for the chosen number of "
                         "epochs, on all labelled examples (train and validation parts of the draw)")
    ft.add_argument("--evaluate-on", choices=("test", "validation"), default="test",
                    help="split that measures the accuracies: the test split (the numbers to report) or the "
                         "validation split, which the draws never touch, to choose models and settings "
                         "(default: %(default)s)")
    ft.add_argument("--json", action="store_true", help="print one JSON object with every number instead")
    ft.add_argument("--save", metavar="DIR", help="save the pretrained classifier of the first seed of the largest N "
                    "as a model folder (model.keras, SavedModel with a classify signature, card.json)")
    ft.add_argument("--overwrite", action="store_true", help="replace an existing --save folder")
    ft.add_argument("--logdir", metavar="DIR", help="TensorBoard folder (default: tensorboard/finetune-<model>-<time>)")

    registry_help = "registry.json to read (default: the bundled pretrained/registry.json)"
    ls = commands.add_parser("list", help="list the pretrained models with their measured metrics",
                             description="List the registered pretrained models: name, model, dataset, metrics, "
                                         "archive size.")
    ls.add_argument("--json", action="store_true", help="print the registry entries as JSON")
    ls.add_argument("--registry", metavar="FILE", help=registry_help)

    fetch = commands.add_parser(
        "fetch", help="download pretrained models into the cache (sha256 checked)",
        description="Fetch registered models into $ZOO_HOME/models/NAME (default ~/.cache/zoo/models): from "
                    "--mirror, else $ZOO_MODELS_URL, else the archives bundled in pretrained/. Each archive must "
                    "match the registry's sha256 before it is unpacked; a model already fetched is not "
                    "downloaded again.",
        epilog="example: zoo fetch rbm500-bmnist --mirror https://example.org/zoo-models")
    fetch.add_argument("names", nargs="*", metavar="NAME", help="registered model names (see zoo list)")
    fetch.add_argument("--all", action="store_true", help="every registered model")
    fetch.add_argument("--mirror", metavar="URL", help="base URL (or local folder) holding NAME.tar.gz archives")
    fetch.add_argument("--force", action="store_true", help="download and unpack again even if cached")
    fetch.add_argument("--registry", metavar="FILE", help=registry_help)
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return EXIT_BAD_INPUT
        if args.command == "train":
            if args.family is None:
                raise UsageError("zoo train: choose a model family: rbm (see zoo train --help)")
            return train_rbm(args, argv)
        if args.command == "sample":
            return sample(args)
        if args.command == "eval":
            return evaluate(args, argv)
        if args.command == "finetune":
            return finetune(args, argv)
        if args.command == "list":
            return list_models(args)
        if args.command == "fetch":
            return fetch(args)
    except BrokenPipeError:  # `zoo eval --json | head`: the reader left, nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit flush cannot fail again
        return 1
    except (ValueError, OSError, FloatingPointError) as exc:  # OSError: unwritable or missing paths
        print(f"zoo: error: {exc}" if not isinstance(exc, UsageError) else str(exc), file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("zoo: interrupted", file=sys.stderr)
        return 130
    return 0


def train_rbm(args, argv):
    import keras

    from zoo import data, export, files, training, units, viz
    from zoo.models import RBM

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise ValueError(f"output folder {out} already exists: choose another --out or pass --overwrite")
    dataset = data.load(args.dataset)
    visible_kwargs = {}
    if args.visible == "gaussian":
        visible_kwargs = {"sigma": args.sigma, "learn_sigma": args.learn_sigma}
    elif args.visible == "bernoulli":
        visible_kwargs = {"allow_nonbinary": args.allow_nonbinary}
    hidden_kwargs = {"group_size": args.group_size} if args.hidden in ("softmax", "multinomial") else {}
    visible = units.get(args.visible).__class__(**visible_kwargs)
    hidden = units.get(args.hidden).__class__(**hidden_kwargs)
    if args.seed is not None:
        keras.utils.set_random_seed(args.seed)
    model = RBM(args.n_hidden, visible=visible, hidden=hidden, n_visible=dataset.n_features, cd_k=args.cd_k,
                persistent=args.persistent, n_chains=args.n_chains, fast_lr=args.fast_lr,
                fast_decay=args.fast_decay, n_temperatures=args.temperatures, min_beta=args.min_beta,
                centering=args.centering, centering_rate=args.centering_rate, l2=args.l2,
                sparsity_target=args.sparsity_target, sparsity_cost=args.sparsity_cost, dropout=args.dropout,
                max_norm=args.max_norm, sample_visible=args.sample_visible,
                visible_bias_init="zeros" if args.no_visible_bias_init else "data", seed=args.seed)
    if args.init_from:
        source, source_card = export.load_folder(_model_folder(args.init_from))
        model.set_parameters_from(source)
        # the card names the start and how it was made: the two commands reproduce the model
        initialized_from = {"model": args.init_from, "command": source_card.get("command"),
                            "initialized_from": source_card.get("initialized_from")}
    train_x = dataset.train.x
    if args.dynamic_binarization:
        model.prepare_visible_bias(train_x)
        x = dataset.train.pipeline(args.batch_size, seed=args.seed, dynamic_binarization=True)
        # training sees fresh samples; the metrics and the free-energy gap use one fixed thresholded view
        monitor_train_x, validation_x = ((s.x > 0.5).astype("float32") for s in (dataset.train, dataset.validation))
    else:
        x = model.validate_data(train_x, f"dataset {args.dataset!r} (training split)")
        validation_x = model.validate_data(dataset.validation.x, f"dataset {args.dataset!r} (validation)")
        if args.batch_size > len(x):
            raise ValueError(f"--batch-size {args.batch_size} is larger than the training data ({len(x)})")
        monitor_train_x = x

    steps = args.epochs * -(-len(train_x) // args.batch_size)
    lr = args.lr if args.lr_final is None else keras.optimizers.schedules.PolynomialDecay(
        args.lr, steps, end_learning_rate=args.lr_final, power=1.0)
    model.compile(keras.optimizers.SGD(learning_rate=lr, momentum=args.momentum))

    run_name = f"{out.name}-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    logdir = Path(args.logdir) if args.logdir else Path("tensorboard") / run_name
    backup = _resume_folder(out, argv)
    sample_n = min(1000, len(validation_x))
    callbacks = [
        keras.callbacks.BackupAndRestore(str(backup)),
        training.RaiseOnNaN(),
        training.FreeEnergyGap(monitor_train_x[:sample_n], validation_x[:sample_n]),
        training.TensorBoardLogger(logdir, validation_x[:100], dataset.image_shape, every=args.log_every),
    ]
    if args.log_z_every:
        # before the logger, which writes the scalars it adds to `logs`; on the validation split, not the test
        callbacks.insert(-1, training.LogPartitionMonitor(validation_x, train_x=monitor_train_x,
                                                          every=args.log_z_every, seed=args.seed or 0,
                                                          split="validation"))
    if args.cd_k_final is not None:
        callbacks.append(training.GibbsStepsSchedule(training.linear_steps(args.cd_k, args.cd_k_final, args.epochs)))
    trained, metrics_file = backup / "trained.keras", backup / "final_metrics.json"
    if trained.is_file():  # a rerun after the training finished but the folder was not written
        print(f"zoo: the training had finished; writing the model folder from {trained}", file=sys.stderr)
        model, final = keras.models.load_model(trained), json.loads(metrics_file.read_text())
    else:
        try:
            history = model.fit(x, batch_size=None if args.dynamic_binarization else args.batch_size,
                                epochs=args.epochs, validation_data=validation_x[:sample_n], callbacks=callbacks,
                                verbose=args.verbose)
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
    samples = model.sample(100, n_steps=1000, seed=0 if args.seed is None else args.seed)
    card = export.make_card(
        model, name=out.name, dataset=args.dataset, binarization=("dynamic (fresh Bernoulli sample every epoch)"
                                                                   if args.dynamic_binarization
                                                                   else dataset.binarization),
        image_shape=list(dataset.image_shape), command="zoo " + shlex.join(argv), seed=args.seed,
        epochs=args.epochs, final_metrics=final,
        **({"initialized_from": initialized_from} if args.init_from else {}))
    files = {
        "samples.png": lambda p: viz.save_png(p, viz.tile(samples, dataset.image_shape)),
        "filters.png": lambda p: viz.save_png(p, viz.tile(viz.filters_to_images(model.kernel.numpy()),
                                                          dataset.image_shape, scale_each=True)),
    }
    export.save(model, out, card, files, overwrite=args.overwrite)
    shutil.rmtree(backup, ignore_errors=True)
    print(f"model folder: {out}  (model.keras, card.json, samples.png, filters.png)")
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


def sample(args):
    from zoo import export, viz

    model, card = export.load_folder(_model_folder(args.model))
    image_shape = card.get("image_shape")
    if not image_shape:
        raise ValueError(f"{args.model}/card.json has no image_shape: cannot tile the samples")
    if not args.out.lower().endswith(".png"):
        raise ValueError(f"--out must name a .png file, got {args.out!r}")
    samples = model.sample(args.n, n_steps=args.steps, seed=args.seed)
    viz.save_png(args.out, viz.tile(samples, image_shape))
    print(f"{args.n} samples after {args.steps} Gibbs steps: {os.path.abspath(args.out)}")
    return 0


def evaluate(args, argv):
    from zoo import data, evaluation, export

    folder = _model_folder(args.model)
    if args.write_card and not Path(args.model).is_dir():
        raise ValueError(f"--write-card needs a model folder path, got the registered name {args.model!r}")
    model, card = export.load_folder(folder)
    dataset = data.load(args.dataset or _trained_on(card))
    if dataset.n_features != model.n_visible:
        raise ValueError(f"the model has {model.n_visible} visible units but dataset {dataset.name!r} has "
                         f"{dataset.n_features} features: choose the dataset it was trained on (--dataset)")
    # every failure before the AIS runs, not after it
    for split in ("train", "test"):
        model.validate_data(getattr(dataset, split).x, f"dataset {dataset.name!r} ({split} split)")
    progress = _Progress(sys.stderr) if sys.stderr.isatty() else None
    try:  # with exact=True, evaluate enumerates first: a model too large for it fails before any AIS
        result = evaluation.evaluate(
            model, dataset, n_betas=args.ais_betas, n_chains=args.ais_chains, reverse_betas=args.reverse_betas,
            reverse_examples=args.reverse_examples, exact=True if args.exact else None, base=args.base,
            schedule=args.schedule, dtype=args.dtype, seed=args.seed, progress=progress)
    except ValueError as exc:
        if not (args.exact and str(exc).startswith("too large for exact enumeration")):
            raise
        message = str(exc).removesuffix("; use zoo.evaluation.ais")
        raise ValueError(f"--exact: {message}; drop --exact to estimate log Z by AIS") from None
    summary = f"{type(model).__name__}, {model.n_visible} visible and {model.n_hidden} hidden units"
    report = {"model": str(args.model), "model_summary": summary, "n_train": dataset.train.n,
              "n_test": dataset.test.n, **result.to_dict(arrays=False)}
    print(json.dumps(report, indent=2, allow_nan=False) if args.json else _eval_table(report))
    if args.write_card:
        # by the folder's name, which is also its registry name: `zoo eval NAME ...` reproduces the numbers
        command = ["zoo", "eval", Path(folder).name] + [a for a in argv[1:] if a not in (args.model, "--write-card")]
        export.update_card(folder, metrics={
            "dataset": result.dataset, "test_nll": result.nll["test"], "train_nll": result.nll["train"],
            "log_z": {"forward": result.log_z_forward, "forward_lower": result.forward["log_z_lower"],
                      "forward_upper": result.forward["log_z_upper"], "ess": result.forward["ess"],
                      "reverse": result.log_z_reverse, "exact": result.log_z_exact},
            "raise_test_log_likelihood": {"mean": result.reverse["log_likelihood"],
                                          "std": result.reverse["log_likelihood_std"]},
            "settings": {"forward": result.forward["settings"], "reverse": result.reverse["settings"]},
            "seconds": result.seconds, "command": shlex.join(command)})
        print(f"metrics written to {Path(folder) / export.CARD_FILE}", file=sys.stderr)
    return 0


def finetune(args, argv):
    from zoo import data, export
    from zoo import finetune as finetune_lib

    if args.save and Path(args.save).exists() and not args.overwrite:
        raise ValueError(f"--save folder {args.save} already exists: choose another or pass --overwrite")
    folder = _model_folder(args.model)
    model, card = export.load_folder(folder)
    dataset = data.load(args.dataset or _trained_on(card))
    logdir = Path(args.logdir) if args.logdir else \
        Path("tensorboard") / f"finetune-{Path(folder).name}-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    layers = finetune_lib.encoder_layers(model)  # a model that cannot encode fails here, before any work
    sizes = "-".join(str(n) for n in [layers[0][0].shape[0]] + [kernel.shape[1] for kernel, _ in layers])
    # say what was loaded: a silently skipped or substituted model would make the table meaningless
    print(f"zoo finetune: {type(model).__name__} {sizes} from {folder} (trained on {card.get('dataset')!r}: "
          f"{card.get('command', 'no command recorded')}); classifier data: {dataset.name}", file=sys.stderr)

    def progress(k, seed, scores):
        print(f"  {k} per class, seed {seed}: " + ", ".join(f"{row} {100 * acc:.2f} %" for row, acc in scores.items()),
              file=sys.stderr, flush=True)

    result = finetune_lib.few_shot(
        model, dataset, labels_per_class=args.labels_per_class, seeds=args.seeds, fixed_epochs=args.fixed_epochs,
        epochs=args.epochs, patience=args.patience, monitor=args.monitor, lr=args.lr, pretrained_lr_multiplier=args.lr_multiplier,
        l2=args.l2, batch_size=args.batch_size, optimizer=args.optimizer, refit=args.refit, shift=args.shift,
        dropout=args.dropout,
        evaluate_on=args.evaluate_on, logdir=logdir, keep_classifier=bool(args.save), progress=progress)
    report = {"command": "zoo " + shlex.join(argv), "model": str(args.model), "model_folder": str(folder),
              "model_summary": f"{type(model).__name__} {sizes}", "model_card_command": card.get("command"),
              "logdir": str(logdir), **result.to_dict()}
    if args.save:
        k, seed = result.labels_per_class[-1], result.seeds[0]
        classifier_card = export.make_card(
            result.classifier, name=Path(args.save).name, dataset=dataset.name, binarization=dataset.binarization,
            image_shape=list(dataset.image_shape), command=report["command"], seed=seed,
            pretrained_from={"model": str(args.model), "folder": str(folder), "command": card.get("command")},
            labels_per_class=k, n_labelled=report["n_labelled"][str(k)],
            **{f"{args.evaluate_on}_accuracy": result.accuracy["pretrained"][k][0]}, finetune_settings=result.settings)
        export.save(result.classifier, args.save, classifier_card, overwrite=args.overwrite)
        report["saved"] = str(args.save)
    if args.json:
        print(json.dumps(report, indent=2, allow_nan=False))
    else:
        s = result.settings
        print(f"model    {args.model} ({report['model_summary']}, folder {folder})")
        print(f"data     {dataset.name}: labelled examples drawn from the {dataset.train.n} train images, "
              f"{s['evaluated_on']} accuracy (%) on all {s['n_test']} {s['evaluated_on']} images, mean ± std over "
              "seeds "
              f"{', '.join(map(str, result.seeds))}")
        print()
        print(finetune_lib.format_table(report))
        print()
        print(f"settings {finetune_lib.describe_settings(s)}; early stopping on {100 * s['validation_fraction']:g} % "
              f"of each draw (at most {s['max_epochs']} epochs; {s['fixed_epochs_without_validation']} epochs "
              "without validation)")
        print(f"time     {result.seconds:.0f} s; TensorBoard logs: {logdir}")
        if args.save:
            print(f"saved    {args.save} (pretrained classifier, {result.labels_per_class[-1]} per class, "
                  f"seed {result.seeds[0]})")
    return 0


def list_models(args):
    from zoo import hub

    models = hub.list_models(args.registry)
    if args.json:
        print(json.dumps(models, indent=2))
    elif not models:
        print(_no_models(args.registry))
    else:
        rows = [("name", "model", "dataset", "metrics", "size")] + [
            (m["name"], str(m["summary"].get("model") or "-"), str(m["summary"].get("dataset") or "-"),
             hub.describe_metrics(m["summary"].get("metrics")) or "-", hub.format_size(m["size"]))
            for m in models]
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        for row in rows:
            print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1])
    return 0


def fetch(args):
    from zoo import hub

    if args.all and args.names:
        raise UsageError("zoo fetch: pass model names or --all, not both")
    if not (args.all or args.names):
        raise UsageError("zoo fetch: name the models to fetch, or pass --all (see zoo list)")
    names = [m["name"] for m in hub.list_models(args.registry)] if args.all else args.names
    if not names:
        raise ValueError(_no_models(args.registry))
    for name in names:
        path = hub.fetch(name, mirror=args.mirror, registry=args.registry, force=args.force)
        print(f"{name}  {path}")
    return 0


def _no_models(registry):
    from zoo import hub

    return f"no models registered yet ({registry or hub.REGISTRY} does not exist or lists none)"


def _model_folder(name_or_path):
    """A model folder as given, or the cached folder of a registered model name (fetched if needed)."""
    from zoo import hub

    return hub.resolve(name_or_path)


def _trained_on(card):
    """The dataset a model card names: a model trained on fresh samples of mnist's grey values every epoch
    is measured on binarized_mnist, one fixed sample of them."""
    name = card.get("dataset") if isinstance(card, dict) else None
    if name == "mnist" and str(card.get("binarization", "")).startswith("dynamic"):
        return "binarized_mnist"
    return name or "binarized_mnist"


class _Progress:
    """Annealing steps done, on one rewritten stderr line per AIS run (evaluate runs forward, then reverse)."""

    def __init__(self, stream):
        self.stream, self.last, self.phases = stream, None, iter(("forward AIS", "reverse AIS (RAISE)"))

    def __call__(self, done, total):
        if self.last is None or done <= self.last:  # counts rise within a run: a fall starts the next one
            self.phase = next(self.phases, "AIS")
        self.last = done
        print(f"\r{self.phase}: {done}/{total} steps", end="\n" if done == total else "",
              file=self.stream, flush=True)


def _eval_table(r):
    """The report of `zoo eval` as aligned text, in nats; its numbers come in JSON form (`to_dict`): None
    for what was not computed (shown "-"), "inf"/"-inf" for infinite bounds (a single chain or example)."""
    def num(x, width=12):
        text = "-" if x is None else x if isinstance(x, str) else f"{x:.4f}"
        return f"{text:>{width}}"

    fwd, rev, nll = r["forward"], r["reverse"], r["nll"]
    s = fwd["settings"]
    lines = [
        f"model    {r['model']} ({r['model_summary']})",
        f"dataset  {r['dataset']} ({r['n_train']} train, {r['n_test']} test examples)",
        "",
        f"{'log Z':<22}{'estimate':>12}{'log(Z-3sd)':>12}{'log(Z+3sd)':>12}   ESS",
        f"{'forward AIS':<22}{num(r['log_z_forward'])}{num(fwd['log_z_lower'])}{num(fwd['log_z_upper'])}   "
        f"{fwd['ess']:.1f} of {s['n_chains']} chains",
        f"{'reverse (RAISE)':<22}{num(r['log_z_reverse'])}   implied by {rev['settings']['n_examples']} test "
        f"examples: mean log p >= {num(rev['log_likelihood'], 0)} +- {num(rev['log_likelihood_std'], 0)}",
        f"{'exact':<22}{num(r['log_z_exact'])}",
        "",
        f"{'NLL (nats/example)':<22}{'lower':>12}{'upper':>12}{'exact':>12}",
        *(f"{split:<22}{num(nll[split]['lower'])}{num(nll[split]['upper'])}{num(nll[split]['exact'])}"
          for split in ("train", "test")),
        "  lower: forward AIS log Z (optimistic); upper: RAISE log Z (conservative)",
        "",
        f"settings {s['n_betas']} betas ({s['schedule']} schedule), {s['n_chains']} chains, base {s['base']}, "
        f"{s['dtype']}, seed {s['seed']}; RAISE {rev['settings']['n_betas']} betas on "
        f"{rev['settings']['n_examples']} test examples",
        f"time     {r['seconds']:.1f} s (forward {fwd['seconds']:.1f} s, reverse {rev['seconds']:.1f} s)",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
