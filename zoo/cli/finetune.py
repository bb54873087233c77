"""`zoo finetune`: the few-shot protocol (`zoo.finetune.few_shot`) on a pretrained model, its report as text, JSON
or, with --table, the Markdown table of README.md and docs/finetuning.md with the exact command under it."""
import datetime
import json
import shlex
import sys
from pathlib import Path

from zoo.cli.args import (labels_per_class, nonnegative_float, nonnegative_int, option, positive_int,
                          prepare_tensorflow, trained_on)

#: the keys of a `zoo finetune --json` report that --table reads
REPORT_KEYS = {"command", "settings", "accuracy", "gain", "labels_per_class", "seeds"}


def add_parser(commands):
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
    ft.set_defaults(func=main)
    ft.add_argument("model", help="model folder or registered name (see zoo list; fetched if needed); with --table, "
                    "also the .json report of an earlier zoo finetune --json to print as the table")
    ft.add_argument("--labels-per-class", nargs="+", type=labels_per_class, default=[1, 10, 100], metavar="N",
                    help="labelled examples per class, or 'all' for the whole train split (default: 1 10 100)")
    ft.add_argument("--seeds", type=positive_int, default=5, help="draws per N: seeds 0..S-1 (default: %(default)s)")
    ft.add_argument("--dataset", metavar="NAME", help="mnist, binarized_mnist or digits (default: the dataset the "
                    "card recommends for fine-tuning, else the one the model was trained on)")
    # The fine-tuning settings default to None: each comes from its flag, else the model card's recommended
    # finetune_defaults, else zoo.finetune.SETTINGS_DEFAULTS (zoo.finetune.resolve_settings).
    recommended = "(default: the model card's finetune_defaults, else %s)"
    option(ft, "--epochs", help="most epochs with early stopping " + recommended % 200)
    ft.add_argument("--patience", type=positive_int, help="epochs without a better --monitor before stopping "
                    + recommended % 20)
    ft.add_argument("--monitor", choices=("val_accuracy", "val_loss"),
                    help="what early stopping keeps: the epoch of highest validation accuracy (ties: lower loss) "
                         "or of lowest validation cross-entropy (ties: higher accuracy) " + recommended % "val_accuracy")
    ft.add_argument("--fixed-epochs", type=positive_int, help="epochs when there is no validation "
                    "set (1 label per class) " + recommended % 100)
    option(ft, "--lr", help="learning rate " + recommended % 1e-3)
    ft.add_argument("--lr-multiplier", type=nonnegative_float,
                    help="learning-rate factor of the pretrained encoder " + recommended % 0.1)
    ft.add_argument("--l2", type=nonnegative_float, help="L2 penalty on the kernels " + recommended % 1e-5)
    option(ft, "--batch-size", help=recommended % 32)
    ft.add_argument("--optimizer", choices=("adam", "sgd"), help=recommended % "adam")
    ft.add_argument("--shift", type=nonnegative_int, metavar="R",
                    help="train the nets on each labelled image and its copies shifted by up to R pixels "
                         + recommended % 0)
    ft.add_argument("--dropout", type=nonnegative_float, metavar="P",
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
    output = ft.add_mutually_exclusive_group()
    option(output, "--json")
    output.add_argument("--table", action="store_true",
                        help="print the Markdown table of README.md and docs/finetuning.md instead, with the "
                             "exact command under it")
    ft.add_argument("--save", metavar="DIR", help="save the pretrained classifier of the first seed of the largest N "
                    "as a model folder (model.keras, SavedModel with a classify signature, card.json)")
    ft.add_argument("--overwrite", action="store_true", help="replace an existing --save folder")
    option(ft, "--logdir", help="TensorBoard folder (default: tensorboard/finetune-<model>-<time>)")
    return ft


def main(args, argv):
    if args.table and args.model.lower().endswith(".json"):
        print(markdown(read_report(args.model)))
        return 0
    prepare_tensorflow()
    report, text = run(args, argv)
    if args.json:
        print(json.dumps(report, indent=2, allow_nan=False))
    else:
        print(markdown(report) if args.table else text)
    return 0


def run(args, argv):
    """(the JSON report, the text report) of the few-shot protocol as `args` say."""
    from zoo import data, export, hub
    from zoo import finetune as finetune_lib

    if args.save and Path(args.save).exists() and not args.overwrite:
        raise ValueError(f"--save folder {args.save} already exists: choose another or pass --overwrite")
    folder = hub.resolve(args.model)
    model, card = export.load_folder(folder)
    recommended = finetune_lib.recommended_dataset(card)
    dataset = data.load(args.dataset or recommended or trained_on(card))
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
    s = result.settings
    text = [f"model    {args.model} ({report['model_summary']}, folder {folder})",
            f"data     {dataset.name}: labelled examples drawn from the {dataset.train.n} train images, "
            f"{s['evaluated_on']} accuracy (%) on all {s['n_test']} {s['evaluated_on']} images, mean ± std over "
            f"seeds {', '.join(map(str, result.seeds))}",
            "", finetune_lib.format_table(report), "",
            f"settings {finetune_lib.describe_settings(s)}; early stopping on {100 * s['validation_fraction']:g} % "
            f"of each draw (at most {s['max_epochs']} epochs; {s['fixed_epochs_without_validation']} epochs "
            "without validation)",
            f"time     {result.seconds:.0f} s; TensorBoard logs: {logdir}"]
    if args.save:
        text.append(f"saved    {args.save} (pretrained classifier, {result.labels_per_class[-1]} per class, "
                    f"seed {result.seeds[0]})")
    return report, "\n".join(text)


def read_report(path):
    """The report that `zoo finetune ... --json` wrote to the file `path`."""
    try:
        with open(path) as f:
            report = json.load(f)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not the JSON of `zoo finetune --json`: {exc}") from None
    missing = REPORT_KEYS - set(report) if isinstance(report, dict) else REPORT_KEYS
    if missing:
        raise ValueError(f"the report lacks {', '.join(sorted(missing))}: not from `zoo finetune --json`")
    return report


# few_shot's recorded settings under another name than the setting's
RECORDED_AS = {"epochs": "max_epochs", "fixed_epochs": "fixed_epochs_without_validation"}


def card_settings(report):
    """'shift 2, l2 0.0001, ...': the settings of the run that came from the model card's finetune_defaults."""
    s = report["settings"]
    values = [(key, s.get(RECORDED_AS.get(key, key))) for key, source in report.get("settings_sources", {}).items()
              if source == "card"]
    return ", ".join(f"{key} {value:g}" if isinstance(value, float) else f"{key} {value}" for key, value in values)


def markdown(report):
    """The Markdown block of a `zoo finetune` report: a caption, the table (`zoo.finetune.markdown_table`), the
    command that produced it and, for a report of `zoo finetune --json`, the command that prints it again."""
    from zoo import finetune as finetune_lib

    s = report["settings"]
    seeds = report["seeds"]
    fixed = s["fixed_epochs_without_validation"]
    args = [a for a in shlex.split(report["command"])[2:] if a not in ("--json", "--table")]  # drop "zoo finetune"
    split = s.get("evaluated_on", "test")  # reports before the option measured on the test split
    caption = (f"{split.capitalize()} accuracy (%) on all {s['n_test']:,} {split} images of `{s['dataset']}`"
               + (" (the validation split: the draws never touch it, and neither does this choice touch the "
                  "test split)" if split == "validation" else "") + ", mean ± std over "
               f"{len(seeds)} seed{'s' if len(seeds) > 1 else ''} (each seed draws its own class-balanced "
               f"labelled examples from the train split), {report['model_summary']} from `{report['model']}`. "
               f"{100 * s['validation_fraction']:g} % of each draw is held out for early stopping"
               + ("; then the net is trained again from the same start on the whole draw for the epochs chosen"
                  if s.get("refit") else "")
               + f"; with 1 label per class there is none and the nets train {fixed} epochs."
               + (f" The nets train on each labelled image and its copies shifted by up to {s['shift']} pixel"
                  f"{'s' if s['shift'] > 1 else ''} (the frozen row does not)." if s.get("shift") else "")
               + (" For 'all': the whole train split, early stopping on the dataset's validation split, no "
                  "refit." if "all" in report["labels_per_class"] else "")
               + " Gain: pretrained - random, paired by seed.")
    recommended = card_settings(report)
    lines = [caption, "", finetune_lib.markdown_table(report), "",
             f"Produced by `{report['command']}` ({report['seconds']:.0f} s; {finetune_lib.describe_settings(s)}"
             + (f"; recommended by the model card: {recommended}" if recommended else "") + ")."]
    if "--table" not in shlex.split(report["command"]):
        lines += ["", f"Regenerate with `zoo finetune {shlex.join(args)} --table`."]
    return "\n".join(lines)
