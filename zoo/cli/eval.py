"""`zoo eval`: a model's log-likelihood, by the estimator its capabilities allow (`zoo.evaluation`), printed
(`zoo.cli.eval_tables`) and, with --write-card, recorded in its card (`zoo.evaluation.cards`)."""
import json
import shlex
import sys
from pathlib import Path

from zoo.cli import eval_tables
from zoo.cli.args import n_betas, nonnegative_float, nonnegative_int, number, option, positive_int, prepare_tensorflow, trained_on

at_least_two = number(int, 2, "an integer >= 2 (an error bar needs two chains)")

#: where `zoo eval --write-card` keeps the finished batches of a latent-variable model's estimate, so that an
#: interrupted evaluation resumes when run again
PROGRESS = ".eval-progress"


def add_parser(commands):
    ev = commands.add_parser(
        "eval", help="the model's log-likelihood: AIS bracket (energy models) or importance sampling",
        description="Energy models (RBM): estimate log Z by forward AIS (too low on average) and by reverse "
                    "AIS from test examples (RAISE, too high on average), exactly when the model is small "
                    "enough, and the train/test negative log-likelihood they bracket, in nats per example. "
                    "Latent-variable models with an inference network: the test NLL by importance sampling at "
                    "each K of --k, with its effective sample size. Models without a likelihood that classify "
                    "(an implicit hybrid, a classifier saved by zoo finetune --save): the test accuracy, and a line "
                    "saying there is no likelihood.",
        epilog="example: zoo eval models/rbm500 --ais-betas 14501 --ais-chains 100 --json")
    ev.set_defaults(func=main)
    ev.add_argument("model", help="model folder or registered name (see zoo list; fetched if needed)")
    ev.add_argument("--dataset", metavar="NAME", help="mnist, binarized_mnist or digits (default: the card's dataset, "
                    "binarized_mnist for a model trained on mnist with dynamic binarisation)")
    ev.add_argument("--ais-betas", type=n_betas, default=14501, metavar="N",
                    help="forward AIS inverse temperatures (default: %(default)s, Salakhutdinov & Murray)")
    ev.add_argument("--ais-chains", type=at_least_two, default=100, metavar="M",
                    help="forward AIS chains, at least 2 (default: %(default)s)")
    ev.add_argument("--check-betas", type=nonnegative_int, metavar="N",
                    help="the convergence check: forward AIS again at N temperatures; a log Z that drifts by more "
                         "than 3 standard errors between the two, or whose 3 standard errors exceed "
                         "--drift-tolerance, is reported as not converged (default: a fifth of --ais-betas; 0: no "
                         "check)")
    ev.add_argument("--drift-tolerance", type=nonnegative_float, default=0.5, metavar="NATS",
                    help="the widest error bar of the drift that can still show convergence (default: %(default)s)")
    ev.add_argument("--reverse-betas", type=n_betas, metavar="N",
                    help="RAISE inverse temperatures (default: --ais-betas)")
    ev.add_argument("--reverse-examples", type=positive_int, default=100, metavar="E",
                    help="test examples annealed back by RAISE (default: %(default)s)")
    ev.add_argument("--burn-in", type=nonnegative_int, default=1000, metavar="S",
                    help="DBMs: Gibbs sweeps of the reverse chains, started at the test examples' hidden states, "
                         "before they are annealed down (default: %(default)s)")
    ev.add_argument("--exact", action="store_true", help="require exact log Z (only for models whose smaller "
                    "layer has about 20 units; without it, exact log Z is added when possible)")
    ev.add_argument("--base", choices=("data", "uniform"), default="data", help="base model of AIS: independent "
                    "units fitted to the training images (the visible units to their means, a DBM's hidden ones to "
                    "those of its mean-field posterior), or uniform (default: %(default)s)")
    ev.add_argument("--schedule", choices=("salakhutdinov", "linear"), default="salakhutdinov",
                    help="spacing of the temperatures (default: %(default)s)")
    ev.add_argument("--dtype", choices=("float32", "float64"), default="float64", help="(default: %(default)s)")
    option(ev, "--seed", 0, metavar="S")
    ev.add_argument("--k", type=positive_int, nargs="+", default=[1, 10, 100, 1000, 10000], metavar="K",
                    help="latent-variable models: importance samples per example (default: 1 10 100 1000 10000)")
    ev.add_argument("--test-examples", type=positive_int, metavar="N",
                    help="latent-variable models: the first N examples of the split only (default: all)")
    ev.add_argument("--z-samples", type=positive_int, default=10 ** 6, metavar="N",
                    help="normalised geometric means (BiHM): samples of p estimating log Z (default: 1000000)")
    ev.add_argument("--z-k", type=positive_int, default=10, metavar="K",
                    help="normalised geometric means (BiHM): inner samples of q per sample of p (default: 10)")
    ev.add_argument("--z-from-card", action="store_true",
                    help="normalised geometric means (BiHM): use the log Z of the model's card (written by an "
                         "earlier zoo eval --write-card) instead of estimating it again")
    ev.add_argument("--split", choices=("test", "validation"), default="test",
                    help="latent-variable models: the split measured; choose settings on validation, never on "
                         "test (default: %(default)s; the card records the test split only)")
    option(ev, "--batch-size", 100, metavar="B",
           help="latent-variable models: test examples per batch (default: %(default)s)")
    option(ev, "--json")
    ev.add_argument("--write-card", action="store_true",
                    help="record the numbers, their settings and this command as the metrics of the model "
                         "folder's card.json (a folder path, not a fetched name)")
    return ev


def main(args, argv):
    prepare_tensorflow()
    from zoo import capabilities, checks, data, export, hub

    if args.write_card and not Path(args.model).is_dir():  # before a registered name is fetched
        raise ValueError(f"--write-card needs a model folder path, got {args.model!r}")
    if args.write_card and args.split != "test":
        raise ValueError("--write-card records the test split: drop --split validation or --write-card")
    folder = hub.resolve(args.model)
    model, card = export.load_folder(folder)
    likelihood = (capabilities.EnergyModel, capabilities.LatentVariableModel)
    classifies_only = not any(capabilities.offers(model, protocol) for protocol in likelihood) and \
        capabilities.offers(model, capabilities.Classifier)
    if not classifies_only:
        capabilities.require(model, likelihood, "be evaluated by zoo eval (log-likelihood)")
    dataset = data.load(args.dataset or trained_on(card))
    n_inputs = getattr(model, "n_visible", None)
    if n_inputs is not None and dataset.n_features != n_inputs:
        raise ValueError(f"the model has {n_inputs} visible units but dataset {dataset.name!r} has "
                         f"{dataset.n_features} features: choose the dataset it was trained on (--dataset)")
    summary = model.describe() if capabilities.offers(model, capabilities.Describable) else type(model).__name__
    command = _card_command(folder, args, argv)
    if classifies_only:
        return _evaluate_classifier(args, model, card, folder, dataset, summary, command)
    # every failure before the estimates run, not after them
    for split in ("train", "test"):
        model.validate_data(getattr(dataset, split).x, f"dataset {dataset.name!r} ({split} split)")
    if capabilities.offers(model, capabilities.EnergyModel):
        if model.visible_kind() == "gaussian" and checks.is_binary(dataset.test.x):
            raise ValueError(f"{summary} has Gaussian visible units: its p(x) is a density over real values, and its "
                             f"NLL on the binary images of {dataset.name!r} would be no binary-data likelihood; "
                             "evaluate it on the real-valued data it models (--dataset)")
        if args.split != "test":
            raise ValueError(f"--split {args.split} is for latent-variable models: {summary} is measured on the "
                             "test split (its log Z does not depend on the split)")
        return _evaluate_energy_model(args, model, card, folder, dataset, summary, command)
    return _evaluate_latent_variable_model(args, model, card, folder, dataset, summary, command)


def _card_command(folder, args, argv):
    """`zoo eval NAME ...` by the folder's name, which is also its registry name: it reproduces the numbers."""
    return shlex.join(["zoo", "eval", Path(folder).name] + [a for a in argv[1:]
                                                            if a not in (args.model, "--write-card")])


def _evaluate_energy_model(args, model, card, folder, dataset, summary, command):
    from zoo import evaluation, export

    progress = eval_tables.Progress(sys.stderr, check=args.check_betas != 0) if sys.stderr.isatty() else None
    try:  # with exact=True, evaluate enumerates first: a model too large for it fails before any AIS
        result = evaluation.evaluate_energy_model(
            model, dataset, n_betas=args.ais_betas, n_chains=args.ais_chains, reverse_betas=args.reverse_betas,
            reverse_examples=args.reverse_examples, exact=True if args.exact else None, base=args.base,
            schedule=args.schedule, dtype=args.dtype, seed=args.seed, progress=progress, burn_in=args.burn_in,
            check_betas=args.check_betas, tolerance=args.drift_tolerance)
    except ValueError as exc:
        if not (args.exact and str(exc).startswith("too large for exact enumeration")):
            raise
        message = str(exc).removesuffix("; use zoo.evaluation.ais")
        raise ValueError(f"--exact: {message}; drop --exact to estimate log Z by AIS") from None
    report = {"model": str(args.model), "model_summary": summary, "n_train": dataset.train.n,
              "n_test": dataset.test.n, **result.to_dict(arrays=False)}
    print(json.dumps(report, indent=2, allow_nan=False) if args.json else eval_tables.energy_table(report))
    if args.write_card:
        metrics = evaluation.cards.energy_metrics(result, command)
        _write_card(folder, card, metrics, export.stage_result(metrics) | {"ess": result.forward["ess"]})
    return 0


def _evaluate_latent_variable_model(args, model, card, folder, dataset, summary, command):
    from zoo import capabilities, evaluation, export

    def progress(k, result):
        print(f"  K = {k}: {args.split} NLL {result.nll:.3f} (ESS {result.ess:.1f}, {result.seconds:.1f} s)",
              file=sys.stderr, flush=True)

    log_z = None
    previous = card.get("metrics") if isinstance(card.get("metrics"), dict) else {}
    if args.z_from_card:
        capabilities.require(model, capabilities.GeometricMeanModel, "use a log Z from its card (--z-from-card)")
        log_z = previous.get("log_z") if previous.get("dataset") == dataset.name else None
        if not isinstance(log_z, dict):
            raise ValueError(f"--z-from-card: the card of {args.model} has no log Z measured on {dataset.name}: "
                             "run zoo eval --write-card without --z-from-card first")
        log_z = evaluation.PartitionResult.from_dict(log_z)
        print(f"log Z from the card: {log_z.log_z:.4f} +- {log_z.std:.4f} (measured by "
              f"{previous['log_z'].get('command', 'an earlier zoo eval')})", file=sys.stderr)
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
    split, accuracy = getattr(dataset, args.split), None
    if capabilities.offers(model, capabilities.Classifier) and split.y is not None:  # a hybrid also classifies
        x, y = split.x[:args.test_examples], split.y[:args.test_examples]
        report["accuracy"] = float((model.predict_classes(x) == y).mean())
        accuracy = (report["accuracy"], len(y))
    if args.json:
        print(json.dumps(report, indent=2, allow_nan=False))
    else:
        print(eval_tables.latent_variable_table(report, result, args.split, accuracy and accuracy[1]))
    if args.write_card:
        metrics = evaluation.cards.latent_variable_metrics(
            result, command, batch_size=args.batch_size, seed=args.seed, previous=previous,
            log_z_from_card=args.z_from_card, accuracy=accuracy)
        _write_card(folder, card, metrics, export.stage_result(metrics))
    return 0


def _evaluate_classifier(args, model, card, folder, dataset, summary, command):
    """A model with no likelihood that classifies (an implicit hybrid: a GAN; a fine-tuned classifier): its
    accuracy on the split, and one line saying that there is no likelihood to estimate."""
    from zoo import capabilities, evaluation, export

    split = getattr(dataset, args.split)
    if split.y is None:
        raise ValueError(f"dataset {dataset.name!r} has no labels: {type(model).__name__} has no likelihood, and "
                         "its accuracy needs labels")
    x, y = split.x[:args.test_examples], split.y[:args.test_examples]
    accuracy = float((model.predict_classes(x) == y).mean())  # the model checks x
    what = ("an implicit-density model (its generator has no density to estimate)" if capabilities.offers(
        model, capabilities.Sampler) else "a classifier, not a model of the data's density")
    note = f"no likelihood: {type(model).__name__} is {what}; zoo eval reports its classification accuracy"
    if args.json:
        print(json.dumps({"model": str(args.model), "model_summary": summary, "dataset": dataset.name,
                          "split": args.split, f"n_{args.split}": len(y), "accuracy": accuracy,
                          "error": 1 - accuracy, "log_likelihood": None, "note": note}, indent=2))
    else:
        print(f"model    {args.model} ({summary})\ndataset  {dataset.name}, {args.split} split: {len(y)} images\n\n"
              f"accuracy {100 * accuracy:.2f} %   error {100 * (1 - accuracy):.2f} %\n{note}")
    if args.write_card:
        metrics = evaluation.cards.classifier_metrics(dataset.name, accuracy, len(y), command)
        _write_card(folder, card, metrics, export.stage_result(metrics))
    return 0


def _write_card(folder, card, metrics, stage_result):
    from zoo import evaluation, export

    export.update_card(folder, **evaluation.cards.card_fields(card, metrics, stage_result))
    print(f"metrics written to {Path(folder) / export.CARD_FILE}", file=sys.stderr)
