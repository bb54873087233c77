"""The `zoo` command: a thin face over the library. Bad input gives one line on stderr and exit code 2."""
import datetime
import inspect
import json
import os
import shlex
import sys
from pathlib import Path

from zoo.cli.args import EXIT_BAD_INPUT, Parser, UsageError  # noqa: F401  (the CLI's public names)
from zoo.cli.args import labels_per_class as _labels_per_class
from zoo.cli.args import n_betas as _n_betas
from zoo.cli.args import nonnegative_float as _nonnegative_float
from zoo.cli.args import nonnegative_int as _nonnegative_int
from zoo.cli.args import positive_int as _positive_int

#: `zoo train FAMILY`: each family's part of the command (zoo.cli.train.Family), by name
FAMILIES = {}


def _families():
    if not FAMILIES:
        from zoo.cli import dbm, helmholtz, hybrid, rbm

        for family in (rbm.FAMILY, dbm.FAMILY, helmholtz.FAMILY, helmholtz.BIHM_FAMILY, hybrid.FAMILY):
            FAMILIES[family.name] = family
    return FAMILIES


def build_parser():
    from zoo.cli import train as train_lib

    parser = Parser(prog="zoo", description="A model zoo of deep generative models with binary latent "
                    "variables: train, sample and inspect them.",
                    epilog="Run `zoo COMMAND --help` for the options of a command.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    train = commands.add_parser("train", help="train a model", description="Train a model of the zoo.")
    families = train.add_subparsers(dest="family", metavar="FAMILY", parser_class=Parser)
    for family in _families().values():
        train_lib.add_family(families, family)

    sample = commands.add_parser("sample", help="draw samples from a trained model into a PNG",
                                 description="Draw samples from a trained model (any model that can sample: an RBM "
                                             "or a DBM by Gibbs chains, a Helmholtz machine ancestrally, a BiHM by "
                                             "its exact chain from ancestral samples of p) and tile them into a PNG.")
    sample.add_argument("model", help="model folder or registered name (see zoo list)")
    sample.add_argument("--n", type=_positive_int, default=100, help="number of samples (default: %(default)s)")
    sample.add_argument("--steps", type=_nonnegative_int, help="Markov chain steps, for models that sample by a "
                        "chain (an RBM or a DBM: Gibbs sweeps; a BiHM: sweeps of its chain; default: the model's own, "
                        "1000 for an RBM or a DBM, 250 for a BiHM)")
    sample.add_argument("--seed", type=_nonnegative_int, default=0, help="(default: %(default)s)")
    sample.add_argument("--out", default="samples.png", help="PNG file (default: %(default)s)")
    sample.add_argument("--gif", metavar="FILE", help="also an animated GIF of the chains (models that sample by a "
                        "chain with frames: a BiHM)")

    inpaint = commands.add_parser(
        "inpaint", help="fill in hidden pixels of test images by a Markov chain (BiHM)",
        description="Hide part of each of the first --n test images and fill it in: --chains Markov chains per "
                    "image, each clamping the known pixels and leaving the model's conditional of the hidden ones "
                    "given them invariant. The PNG has one row per image: the image, the known pixels (hidden ones "
                    "grey), then the chains' completions.",
        epilog="example: zoo inpaint bihm-12l-bmnist --mask bottom --n 10 --chains 10 --steps 250 --out inpaint.png")
    inpaint.add_argument("model", help="model folder or registered name (see zoo list)")
    inpaint.add_argument("--mask", default="bottom", help="the pixels to fill in: top, bottom, left or right (that "
                         "half of the image), random (each pixel with probability 1/2), or a .npy or .png file of the "
                         "image's shape, non-zero where a pixel is known (default: %(default)s)")
    inpaint.add_argument("--n", type=_positive_int, default=10, help="test images (default: %(default)s)")
    inpaint.add_argument("--chains", type=_positive_int, default=10, help="chains per image (default: %(default)s)")
    inpaint.add_argument("--steps", type=_positive_int, default=250, help="sweeps of each chain (default: %(default)s)")
    inpaint.add_argument("--dataset", metavar="NAME", help="whose test images (default: the card's dataset, "
                         "binarized_mnist for a model trained on mnist with dynamic binarisation)")
    inpaint.add_argument("--seed", type=_nonnegative_int, default=0, help="(default: %(default)s)")
    inpaint.add_argument("--out", default="inpaint.png", help="PNG file (default: %(default)s)")
    inpaint.add_argument("--gif", metavar="FILE", help="also an animated GIF of the chains")

    classify = commands.add_parser(
        "classify", help="the class of each image, by a classifier (a hybrid, a zoo finetune --save folder)",
        description="Predict the class of each image of the INPUT files with a model that classifies (a deep "
                    "hybrid model, or a classifier saved by zoo finetune --save): .npy arrays (n x pixels, n x "
                    "height x width, or one image) or PNG files (one grey image each, white 1), values in [0, 1]. "
                    "Prints CSV (file, index, class, probability of that class) or writes it to --out.",
        epilog="example: zoo classify models/hybrid digits.npy seven.png --binarize --out predictions.csv")
    classify.add_argument("model", help="model folder or registered name")
    classify.add_argument("inputs", nargs="+", metavar="INPUT", help=".npy or .png files of images")
    classify.add_argument("--binarize", action="store_true", help="threshold the values at 0.5 first (a model of "
                          "binary data, such as a hybrid with a Helmholtz machine, takes only 0 and 1)")
    classify.add_argument("--out", metavar="FILE", help="CSV file to write (default: print)")

    ev = commands.add_parser(
        "eval", help="the model's log-likelihood: AIS bracket (energy models) or importance sampling",
        description="Energy models (RBM): estimate log Z by forward AIS (too low on average) and by reverse "
                    "AIS from test examples (RAISE, too high on average), exactly when the model is small "
                    "enough, and the train/test negative log-likelihood they bracket, in nats per example. "
                    "Latent-variable models with an inference network: the test NLL by importance sampling at "
                    "each K of --k, with its effective sample size.",
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
    ev.add_argument("--burn-in", type=_nonnegative_int, default=1000, metavar="S",
                    help="DBMs: Gibbs sweeps of the reverse chains, started at the test examples' hidden states, "
                         "before they are annealed down (default: %(default)s)")
    ev.add_argument("--exact", action="store_true", help="require exact log Z (only for models whose smaller "
                    "layer has about 20 units; without it, exact log Z is added when possible)")
    ev.add_argument("--base", choices=("data", "uniform"), default="data", help="base model: visible biases "
                    "fitted to the training means, or uniform (default: %(default)s)")
    ev.add_argument("--schedule", choices=("salakhutdinov", "linear"), default="salakhutdinov",
                    help="spacing of the temperatures (default: %(default)s)")
    ev.add_argument("--dtype", choices=("float32", "float64"), default="float64", help="(default: %(default)s)")
    ev.add_argument("--seed", type=_nonnegative_int, default=0, metavar="S", help="(default: %(default)s)")
    ev.add_argument("--k", type=_positive_int, nargs="+", default=[1, 10, 100, 1000, 10000], metavar="K",
                    help="latent-variable models: importance samples per example (default: 1 10 100 1000 10000)")
    ev.add_argument("--test-examples", type=_positive_int, metavar="N",
                    help="latent-variable models: the first N examples of the split only (default: all)")
    ev.add_argument("--z-samples", type=_positive_int, default=10 ** 6, metavar="N",
                    help="normalised geometric means (BiHM): samples of p estimating log Z (default: 1000000)")
    ev.add_argument("--z-k", type=_positive_int, default=10, metavar="K",
                    help="normalised geometric means (BiHM): inner samples of q per sample of p (default: 10)")
    ev.add_argument("--z-from-card", action="store_true",
                    help="normalised geometric means (BiHM): use the log Z of the model's card (written by an "
                         "earlier zoo eval --write-card) instead of estimating it again")
    ev.add_argument("--split", choices=("test", "validation"), default="test",
                    help="latent-variable models: the split measured; choose settings on validation, never on "
                         "test (default: %(default)s; the card records the test split only)")
    ev.add_argument("--batch-size", type=_positive_int, default=100, metavar="B",
                    help="latent-variable models: test examples per batch (default: %(default)s)")
    ev.add_argument("--json", action="store_true", help="print one JSON object with every number instead")
    ev.add_argument("--write-card", action="store_true",
                    help="record the numbers, their settings and this command as the metrics of the model "
                         "folder's card.json (a folder path, not a fetched name)")

    ft = commands.add_parser(
        "finetune", help="few-shot classification: fine-tune a pretrained model against random initialisation",
        description="Draw N labelled examples per class from the train split (class-balanced, one draw per seed), "
                    "fine-tune a classifier initialised from the model's encoder (its encoder() network plus a new softmax "
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
    ft.add_argument("--dataset", metavar="NAME", help="mnist, binarized_mnist or digits (default: the dataset the "
                    "card recommends for fine-tuning, else the one the model was trained on)")
    # The fine-tuning settings default to None: each comes from its flag, else the model card's recommended
    # finetune_defaults, else zoo.finetune.SETTINGS_DEFAULTS (zoo.finetune.resolve_settings).
    recommended = "(default: the model card's finetune_defaults, else %s)"
    ft.add_argument("--epochs", type=_positive_int, help="most epochs with early stopping " + recommended % 200)
    ft.add_argument("--patience", type=_positive_int, help="epochs without a better --monitor before stopping "
                    + recommended % 20)
    ft.add_argument("--monitor", choices=("val_accuracy", "val_loss"),
                    help="what early stopping keeps: the epoch of highest validation accuracy (ties: lower loss) "
                         "or of lowest validation cross-entropy (ties: higher accuracy) " + recommended % "val_accuracy")
    ft.add_argument("--fixed-epochs", type=_positive_int, help="epochs when there is no validation "
                    "set (1 label per class) " + recommended % 100)
    ft.add_argument("--lr", type=_nonnegative_float, help="learning rate " + recommended % 1e-3)
    ft.add_argument("--lr-multiplier", type=_nonnegative_float,
                    help="learning-rate factor of the pretrained encoder " + recommended % 0.1)
    ft.add_argument("--l2", type=_nonnegative_float, help="L2 penalty on the kernels " + recommended % 1e-5)
    ft.add_argument("--batch-size", type=_positive_int, help=recommended % 32)
    ft.add_argument("--optimizer", choices=("adam", "sgd"), help=recommended % "adam")
    ft.add_argument("--shift", type=_nonnegative_int, metavar="R",
                    help="train the nets on each labelled image and its copies shifted by up to R pixels "
                         + recommended % 0)
    ft.add_argument("--dropout", type=_nonnegative_float, metavar="P",
                    help="the nets' dropout rate on the encoder's features during training, in [0, 1) "
                         + recommended % 0)
    ft.add_argument("--no-refit", dest="refit", action="store_false", default=None,
                    help="keep the early-stopped net instead of training it again, for the chosen number of "
                         "epochs, on all labelled examples (train and validation parts of the draw) (default: "
                         "refit, unless the model card's finetune_defaults say refit: false)")
    ft.add_argument("--evaluate-on", choices=("test", "validation"), default="test",
                    help="split that measures the accuracies: the test split (the numbers to report) or the "
                         "validation split, which the draws never touch, to choose models and settings "
                         "(default: %(default)s)")
    ft.add_argument("--json", action="store_true", help="print one JSON object with every number instead")
    ft.add_argument("--save", metavar="DIR", help="save the pretrained classifier of the first seed of the largest N "
                    "as a model folder (model.keras, SavedModel with a classify signature, card.json)")
    ft.add_argument("--overwrite", action="store_true", help="replace an existing --save folder")
    ft.add_argument("--logdir", metavar="DIR", help="TensorBoard folder (default: tensorboard/finetune-<model>-<time>)")

    registry_help = "registry.json to read (default: the bundled zoo/pretrained/registry.json)"
    ls = commands.add_parser("list", help="list the pretrained models with their measured metrics",
                             description="List the registered pretrained models: name, model, dataset, metrics, "
                                         "archive size.")
    ls.add_argument("--json", action="store_true", help="print the registry entries as JSON")
    ls.add_argument("--registry", metavar="FILE", help=registry_help)

    fetch = commands.add_parser(
        "fetch", help="download pretrained models into the cache (sha256 checked)",
        description="Fetch registered models into $ZOO_HOME/models/NAME (default ~/.cache/zoo/models): from "
                    "--mirror, else $ZOO_MODELS_URL, else the archives bundled in the package (zoo/pretrained/). "
                    "Each archive must "
                    "match the registry's sha256 before it is unpacked; a model already fetched is not "
                    "downloaded again.",
        epilog="example: zoo fetch rbm500-bmnist --mirror https://example.org/zoo-models")
    fetch.add_argument("names", nargs="*", metavar="NAME", help="registered model names (see zoo list)")
    fetch.add_argument("--all", action="store_true", help="every registered model")
    fetch.add_argument("--mirror", metavar="URL", help="base URL (or local folder) holding NAME.tar.gz archives")
    fetch.add_argument("--force", action="store_true", help="download and unpack again even if cached")
    fetch.add_argument("--registry", metavar="FILE", help=registry_help)
    return parser


def prepare_tensorflow():
    """Before TensorFlow loads, for this command's own process (not for `import zoo`, which leaves the
    environment alone): its C++ start-up lines muted (they would bury the one-line messages), and oneDNN
    kernels on unless the user chose (TF_ENABLE_ONEDNN_OPTS): off by default on CPUs without
    AVX512-VNNI/BF16/AMX, about 25 % faster float32 GEMMs on those (scripts/bench_rbm.py)."""
    from zoo import _quiet

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    _quiet.import_tensorflow_quietly()


def main(argv=None):
    from zoo.cli import train as train_lib

    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return EXIT_BAD_INPUT
        if args.command == "train":
            if args.family is None:
                raise UsageError(f"zoo train: choose a model family: {', '.join(_families())} (see zoo train --help)")
            prepare_tensorflow()
            return train_lib.run(args.train_family, args, argv)
        if args.command == "sample":
            prepare_tensorflow()
            return sample(args)
        if args.command == "inpaint":
            prepare_tensorflow()
            return inpaint(args)
        if args.command == "eval":
            prepare_tensorflow()
            return evaluate(args, argv)
        if args.command == "classify":
            prepare_tensorflow()
            return classify(args)
        if args.command == "finetune":
            prepare_tensorflow()
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


def sample(args):
    from zoo import capabilities, export, viz

    model, card = export.load_folder(_model_folder(args.model))
    capabilities.require(model, capabilities.Sampler, "sample")
    image_shape = card.get("image_shape")
    if not image_shape:
        raise ValueError(f"{args.model}/card.json has no image_shape: cannot tile the samples")
    parameters = inspect.signature(model.sample).parameters
    steps = {} if args.steps is None else {"n_steps": args.steps}
    if steps and "n_steps" not in parameters:
        raise ValueError(f"{type(model).__name__} samples without a Markov chain: --steps does not apply")
    if args.gif and "frames" not in parameters:
        raise ValueError(f"{type(model).__name__} has no chain to animate: --gif does not apply")
    _check_image_paths(args.out, args.gif)
    if args.gif:
        samples, frames = model.sample(args.n, seed=args.seed, frames=GIF_FRAMES, **steps)
        viz.save_gif(args.gif, [viz.tile(frame, image_shape) for frame in frames])
    else:
        samples = model.sample(args.n, seed=args.seed, **steps)
    viz.save_png(args.out, viz.tile(samples, image_shape))
    how = f" after {args.steps} Markov chain steps" if steps else ""
    print(f"{args.n} samples{how}: {os.path.abspath(args.out)}" + (f" (and {args.gif})" if args.gif else ""))
    return 0


GIF_FRAMES = 26  # the start and 25 points along the chains


def _check_image_paths(png, gif):
    if not png.lower().endswith(".png"):
        raise ValueError(f"--out must name a .png file, got {png!r}")
    if gif is not None and not gif.lower().endswith(".gif"):
        raise ValueError(f"--gif must name a .gif file, got {gif!r}")


def inpaint(args):
    import numpy as np

    from zoo import capabilities, data, export, viz

    _check_image_paths(args.out, args.gif)
    folder = _model_folder(args.model)
    model, card = export.load_folder(folder)
    capabilities.require(model, capabilities.Inpainter, "inpaint")
    image_shape = card.get("image_shape")
    if not image_shape:
        raise ValueError(f"{args.model}/card.json has no image_shape: cannot lay out the images")
    n_pixels = int(np.prod(image_shape))
    from_file = args.mask.lower().endswith((".npy", ".png"))
    mask = (viz.read_mask(args.mask, n_pixels) if from_file
            else viz.inpainting_mask(args.mask, image_shape, seed=args.seed))
    dataset = data.load(args.dataset or _trained_on(card))
    if args.n > dataset.test.n:
        raise ValueError(f"--n {args.n} is more than the {dataset.test.n} test images of {dataset.name}")
    x = model.validate_data(dataset.test.x[:args.n], f"dataset {dataset.name!r} (test split)")
    result = model.inpaint(x, mask, n_chains=args.chains, n_steps=args.steps, seed=args.seed,
                           frames=GIF_FRAMES if args.gif else 0)
    completions, frames = result if args.gif else (result, None)
    n_cols = args.chains + 2  # per image: the image, the known pixels on grey, the completions
    if frames is not None:
        viz.save_gif(args.gif, [viz.tile(viz.inpainting_rows(x, mask, frame), image_shape, n_cols=n_cols)
                                for frame in frames])
    viz.save_png(args.out, viz.tile(viz.inpainting_rows(x, mask, completions), image_shape, n_cols=n_cols))
    print(f"{args.n} images x {args.chains} chains, {args.steps} steps, mask {args.mask}: "
          f"{os.path.abspath(args.out)}" + (f" (and {args.gif})" if args.gif else ""))
    return 0


def classify(args):
    import csv
    import io

    import numpy as np

    from zoo import capabilities, export, files, viz

    model, card = export.load_folder(_model_folder(args.model))
    capabilities.require(model, capabilities.Classifier, "classify")
    if not card.get("image_shape"):
        raise ValueError(f"{args.model}/card.json has no image_shape: cannot read the images")
    n_pixels = int(np.prod(card["image_shape"]))
    rows = []
    for path in args.inputs:
        x = viz.read_images(path, n_pixels)
        probabilities = model.predict_probabilities((x > 0.5).astype(np.float32) if args.binarize else x)
        classes = probabilities.argmax(axis=1)
        rows += [(path, i, c, f"{p[c]:.4f}") for i, (p, c) in enumerate(zip(probabilities, classes))]
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerows([("file", "index", "class", "probability"), *rows])
    if args.out:
        files.write_atomically(args.out, lambda tmp: Path(tmp).write_text(text.getvalue()))
        print(f"{len(rows)} images classified: {os.path.abspath(args.out)}")
    else:
        print(text.getvalue(), end="")
    return 0


def evaluate(args, argv):
    from zoo import capabilities, data, export

    if args.write_card and not Path(args.model).is_dir():  # before a registered name is fetched
        raise ValueError(f"--write-card needs a model folder path, got {args.model!r}")
    if args.write_card and args.split != "test":
        raise ValueError("--write-card records the test split: drop --split validation or --write-card")
    folder = _model_folder(args.model)
    model, card = export.load_folder(folder)
    capabilities.require(model, (capabilities.EnergyModel, capabilities.LatentVariableModel),
                         "be evaluated by zoo eval (log-likelihood)")
    dataset = data.load(args.dataset or _trained_on(card))
    n_inputs = getattr(model, "n_visible", None)
    if n_inputs is not None and dataset.n_features != n_inputs:
        raise ValueError(f"the model has {n_inputs} visible units but dataset {dataset.name!r} has "
                         f"{dataset.n_features} features: choose the dataset it was trained on (--dataset)")
    # every failure before the estimates run, not after them
    for split in ("train", "test"):
        model.validate_data(getattr(dataset, split).x, f"dataset {dataset.name!r} ({split} split)")
    summary = model.describe() if callable(getattr(model, "describe", None)) else type(model).__name__
    if capabilities.offers(model, capabilities.EnergyModel):
        if args.split != "test":
            raise ValueError(f"--split {args.split} is for latent-variable models: {summary} is measured on the "
                             "test split (its log Z does not depend on the split)")
        return _evaluate_energy_model(args, argv, model, card, folder, dataset, summary)
    return _evaluate_latent_variable_model(args, argv, model, card, folder, dataset, summary)


#: where `zoo eval --write-card` keeps the finished batches of a latent-variable model's estimate, so that an
#: interrupted evaluation resumes when run again
PROGRESS = ".eval-progress"


def _card_command(folder, args, argv):
    """`zoo eval NAME ...` by the folder's name, which is also its registry name: it reproduces the numbers."""
    return shlex.join(["zoo", "eval", Path(folder).name] + [a for a in argv[1:]
                                                            if a not in (args.model, "--write-card")])


def _evaluate_energy_model(args, argv, model, card, folder, dataset, summary):
    from zoo import evaluation

    progress = _Progress(sys.stderr) if sys.stderr.isatty() else None
    try:  # with exact=True, evaluate enumerates first: a model too large for it fails before any AIS
        result = evaluation.evaluate_energy_model(
            model, dataset, n_betas=args.ais_betas, n_chains=args.ais_chains, reverse_betas=args.reverse_betas,
            reverse_examples=args.reverse_examples, exact=True if args.exact else None, base=args.base,
            schedule=args.schedule, dtype=args.dtype, seed=args.seed, progress=progress, burn_in=args.burn_in)
    except ValueError as exc:
        if not (args.exact and str(exc).startswith("too large for exact enumeration")):
            raise
        message = str(exc).removesuffix("; use zoo.evaluation.ais")
        raise ValueError(f"--exact: {message}; drop --exact to estimate log Z by AIS") from None
    report = {"model": str(args.model), "model_summary": summary, "n_train": dataset.train.n,
              "n_test": dataset.test.n, **result.to_dict(arrays=False)}
    print(json.dumps(report, indent=2, allow_nan=False) if args.json else _eval_table(report))
    if args.write_card:
        _write_metrics(folder, card, {
            "dataset": result.dataset, "kind": result.kind, "test_nll": result.nll["test"],
            "train_nll": result.nll["train"],
            "log_z": {"forward": result.log_z_forward, "forward_lower": result.forward["log_z_lower"],
                      "forward_upper": result.forward["log_z_upper"], "ess": result.forward["ess"],
                      "reverse": result.log_z_reverse, "exact": result.log_z_exact},
            "raise_test_log_likelihood": {"mean": result.reverse["log_likelihood"],
                                          "std": result.reverse["log_likelihood_std"]},
            "settings": {"forward": result.forward["settings"], "reverse": result.reverse["settings"]},
            "seconds": result.seconds, "command": _card_command(folder, args, argv)}, ess=result.forward["ess"])
    return 0


def _write_metrics(folder, card, metrics, **result):
    """The card's metrics, and the result of its last training stage when it was trained in stages."""
    from zoo import export

    fields = {"metrics": metrics}
    if card.get("lineage"):
        stages = [dict(stage) for stage in card["lineage"]]
        stages[-1].update(result=export.stage_result(metrics) | result, eval_command=metrics["command"])
        fields["lineage"] = stages
    export.update_card(folder, **fields)
    print(f"metrics written to {Path(folder) / export.CARD_FILE}", file=sys.stderr)


def _evaluate_latent_variable_model(args, argv, model, card, folder, dataset, summary):
    from zoo import capabilities, evaluation

    def progress(k, result):
        print(f"  K = {k}: {args.split} NLL {result.nll:.3f} (ESS {result.ess:.1f}, {result.seconds:.1f} s)",
              file=sys.stderr, flush=True)

    log_z = None
    if args.z_from_card:
        capabilities.require(model, capabilities.GeometricMeanModel, "use a log Z from its card (--z-from-card)")
        metrics = card.get("metrics") if isinstance(card.get("metrics"), dict) else {}
        log_z = metrics.get("log_z") if metrics.get("dataset") == dataset.name else None
        if not isinstance(log_z, dict):
            raise ValueError(f"--z-from-card: the card of {args.model} has no log Z measured on {dataset.name}: "
                             "run zoo eval --write-card without --z-from-card first")
        log_z = evaluation.PartitionResult.from_dict(log_z)
        print(f"log Z from the card: {log_z.log_z:.4f} +- {log_z.std:.4f} (measured by "
              f"{metrics['log_z'].get('command', 'an earlier zoo eval')})", file=sys.stderr)
    if args.write_card and (Path(folder) / PROGRESS).is_dir():
        print(f"zoo: resuming from the finished batches kept in {Path(folder) / PROGRESS}", file=sys.stderr)
    result = evaluation.evaluate_latent_variable_model(model, dataset, ks=args.k, batch_size=args.batch_size,
                                                       seed=args.seed, split=args.split,
                                                       n_examples=args.test_examples, progress=progress,
                                                       partition_samples=args.z_samples, partition_k=args.z_k,
                                                       log_z=log_z,
                                                       progress_dir=Path(folder) / PROGRESS if args.write_card else None)
    report = {"model": str(args.model), "model_summary": summary, "split": args.split,
              f"n_{args.split}": getattr(dataset, args.split).n, **result.to_dict(arrays=False)}
    split = getattr(dataset, args.split)
    if capabilities.offers(model, capabilities.Classifier) and split.y is not None:  # a hybrid also classifies
        x, y = split.x[:args.test_examples], split.y[:args.test_examples]
        report["accuracy"] = float((model.predict_classes(x) == y).mean())
    if args.json:
        print(json.dumps(report, indent=2, allow_nan=False))
    else:
        print(f"model    {args.model} ({summary})")
        print(f"dataset  {result.dataset} ({result.n_examples} {args.split} examples)")
        if "accuracy" in report:
            print(f"accuracy {100 * report['accuracy']:.2f} % ({args.split} split, {len(y)} images)")
        z = result.log_z
        if z:
            print(f"log Z    {_number(z['log_z'], 0, 4).strip()} +- {_number(z['std'], 0, 4).strip()} ({z['n_samples']} "
                  f"samples of p, {z['k']} of q each; ESS {_number(z['ess'], 0, 1).strip()}; "
                  f"{_number(z['seconds'], 0, 1).strip()} s)")
        print()
        extra = f"{'p NLL':>10}{'p ESS':>8}" if z else ""
        print(f"{'K':>8}{args.split + ' NLL':>16}{'+- (se)':>10}{'ESS':>10}{extra}{'seconds':>10}")
        for r in result.results:  # JSON form: "inf" for an infinite error, None for NaN
            extra = f"{_number(r['p_nll'], 10, 2)}{_number(r['p_ess'], 8, 1)}" if z else ""
            print(f"{r['k']:>8}{_number(r['nll'], 16, 4)}{_number(r['std'], 10, 4)}{_number(r['ess'], 10, 1)}"
                  f"{extra}{_number(r['seconds'], 10, 1)}")
        if z:
            print("  log p*(x) = log p~*(x) - log Z: log p~*(x) by importance sampling from q, a stochastic lower "
                  "bound tightening with K, and log Z-hat too low on average (so the NLL's two errors lean "
                  "opposite ways); p NLL: the generative model p alone, from the same samples")
        else:
            print("  importance sampling from the inference network: a stochastic lower bound on log p(x) "
                  "(an upper one on the NLL), tightening with K")
    if args.write_card:
        # each K keeps the command and the number of test examples that measured it: a later run at other K
        # (a larger K on fewer examples, say) adds to the card instead of replacing it
        command = _card_command(folder, args, argv)
        previous = card.get("metrics") if isinstance(card.get("metrics"), dict) else {}
        by_k = dict(previous.get("test_nll_by_k") or {}) if previous.get("dataset") == result.dataset else {}
        plain = ("p_nll", "p_std", "p_ess", "log_p_tilde")
        by_k.update({str(r["k"]): {"nll": r["nll"], "std": r["std"], "ess": r["ess"], "seconds": r["seconds"],
                                   **{name: r[name] for name in plain if name in r},
                                   "n_examples": result.n_examples, "command": command} for r in result.results})
        metrics = {"dataset": result.dataset, "kind": result.kind,
                   "test_nll_by_k": dict(sorted(by_k.items(), key=lambda item: int(item[0]))),
                   "settings": {"batch_size": args.batch_size, "seed": args.seed}, "command": command}
        if result.log_z:  # a log Z taken from the card keeps the command that measured it
            metrics["log_z"] = previous["log_z"] if args.z_from_card else {**result.log_z, "command": command}
        if "accuracy" in report:
            metrics["test_accuracy"] = {"accuracy": report["accuracy"], "n_examples": len(y), "command": command}
        _write_metrics(folder, card, metrics)
    return 0


def finetune(args, argv):
    from zoo import data, export
    from zoo import finetune as finetune_lib

    if args.save and Path(args.save).exists() and not args.overwrite:
        raise ValueError(f"--save folder {args.save} already exists: choose another or pass --overwrite")
    folder = _model_folder(args.model)
    model, card = export.load_folder(folder)
    recommended = finetune_lib.recommended_dataset(card)
    dataset = data.load(args.dataset or recommended or _trained_on(card))
    logdir = Path(args.logdir) if args.logdir else \
        Path("tensorboard") / f"finetune-{Path(folder).name}-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    sizes = finetune_lib.encoder_summary(finetune_lib.get_encoder(model))  # a model that cannot encode fails here
    settings, sources = finetune_lib.resolve_settings(card, {
        key: getattr(args, "lr_multiplier" if key == "pretrained_lr_multiplier" else key)
        for key in finetune_lib.SETTINGS_DEFAULTS})
    # say what was loaded: a silently skipped or substituted model would make the table meaningless
    print(f"zoo finetune: {type(model).__name__} {sizes} from {folder} (trained on {card.get('dataset')!r}: "
          f"{card.get('command', 'no command recorded')}); classifier data: {dataset.name}", file=sys.stderr)

    def progress(k, seed, scores):
        print(f"  {k} per class, seed {seed}: " + ", ".join(f"{row} {100 * acc:.2f} %" for row, acc in scores.items()),
              file=sys.stderr, flush=True)

    sources["dataset"] = "flag" if args.dataset else "card" if recommended else "default"
    print(f"zoo finetune: settings: {finetune_lib.describe_sources({**settings, 'dataset': dataset.name}, sources)}",
          file=sys.stderr)
    result = finetune_lib.few_shot(
        model, dataset, labels_per_class=args.labels_per_class, seeds=args.seeds, evaluate_on=args.evaluate_on,
        logdir=logdir, keep_classifier=bool(args.save), progress=progress, **settings)
    report = {"command": "zoo " + shlex.join(argv), "model": str(args.model), "model_folder": str(folder),
              "model_summary": f"{type(model).__name__} {sizes}", "model_card_command": card.get("command"),
              "logdir": str(logdir), **result.to_dict(), "settings_sources": sources}
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


def _number(x, width, digits):
    """A number of a JSON report right-aligned: "-" for None, "inf" as it is."""
    text = "-" if x is None else x if isinstance(x, str) else f"{x:.{digits}f}"
    return f"{text:>{width}}"


def _eval_table(r):
    """The report of `zoo eval` as aligned text, in nats; its numbers come in JSON form (`to_dict`): None
    for what was not computed (shown "-"), "inf"/"-inf" for infinite bounds (a single chain or example)."""
    def num(x, width=12):
        text = "-" if x is None else x if isinstance(x, str) else f"{x:.4f}"
        return f"{text:>{width}}"

    fwd, rev, nll = r["forward"], r["reverse"], r["nll"]
    s = fwd["settings"]
    bound = r.get("kind") == "bound bracket"  # a DBM's: the NLL's mean-field bound, reverse chains from the data
    if rev.get("log_likelihood") is None:
        reverse = (f"{'reverse AIS':<22}{num(r['log_z_reverse'])}   from {rev['settings']['n_examples']} chains "
                   f"started at test examples, {rev['settings'].get('burn_in')} sweeps before annealing")
    else:
        reverse = (f"{'reverse (RAISE)':<22}{num(r['log_z_reverse'])}   implied by {rev['settings']['n_examples']} "
                   f"test examples: mean log p >= {num(rev['log_likelihood'], 0)} +- "
                   f"{num(rev['log_likelihood_std'], 0)}")
    lines = [
        f"model    {r['model']} ({r['model_summary']})",
        f"dataset  {r['dataset']} ({r['n_train']} train, {r['n_test']} test examples)",
        "",
        f"{'log Z':<22}{'estimate':>12}{'log(Z-3sd)':>12}{'log(Z+3sd)':>12}   ESS",
        f"{'forward AIS':<22}{num(r['log_z_forward'])}{num(fwd['log_z_lower'])}{num(fwd['log_z_upper'])}   "
        f"{fwd['ess']:.1f} of {s['n_chains']} chains",
        reverse,
        f"{'exact':<22}{num(r['log_z_exact'])}",
        "",
        f"{'NLL bound (nats)' if bound else 'NLL (nats/example)':<22}{'lower':>12}{'upper':>12}{'exact':>12}",
        *(f"{split:<22}{num(nll[split]['lower'])}{num(nll[split]['upper'])}{num(nll[split]['exact'])}"
          for split in ("train", "test")),
        ("  the mean-field bound E(v, mu) - H(q) + log Z, above the NLL; lower: with forward AIS log Z "
         "(optimistic), upper: with reverse AIS log Z (conservative as far as the chains reached the model)"
         if bound else "  lower: forward AIS log Z (optimistic); upper: RAISE log Z (conservative)"),
        "",
        f"settings {s['n_betas']} betas ({s['schedule']} schedule), {s['n_chains']} chains, base {s['base']}, "
        f"{s['dtype']}, seed {s['seed']}; {'RAISE' if 'burn_in' not in rev['settings'] else 'reverse AIS'} "
        f"{rev['settings']['n_betas']} betas on {rev['settings']['n_examples']} test examples",
        f"time     {r['seconds']:.1f} s (forward {fwd['seconds']:.1f} s, reverse {rev['seconds']:.1f} s)",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
