"""The implicit hybrid's ablation table: what do the adversarial term (ALI) and the consistency term each add to
the classifier of an implicit-density hybrid at N labels per class? Four variants of the same classifier, over
seeds, each cell a `zoo train implicit-hybrid` run measured by `zoo eval FOLDER --write-card` on all test images:

    labels only                  --no-ali --consistency-weight 0
    + consistency                --no-ali --consistency-weight W
    + ALI                        --consistency-weight 0
    hybrid (ALI + consistency)   --consistency-weight W

    python experiments/implicit_hybrid_table.py --seeds 3 --out-dir models/implicit-hybrid-table \\
        --cards-dir experiments/results/implicit-hybrid-table -- --epochs 30 --translate 2 --lr 0.003

Everything after `--` goes to every run; the script adds --labels-per-class, --label-seed and --seed (both the
seed), the variant's options and --out. Each run writes OUT_DIR/l<N>-s<seed>-<variant>/ (with -w<W> for the
variants with the consistency term) and is kept and read back as hybrid_table.py's cells are (`measured_card`):
a cell whose card already holds its accuracy (in --cards-dir, or its folder) is not trained again.

Beside the variants, reference rows read from committed files: the explicit hybrid's best cell group at N labels
per class among experiments/results/hybrid-table*/ (`zoo train hybrid`, hybrid_table.py's cards), and the
fine-tuned checkpoints' `few_shot` records at N labels per class in pretrained/cards/*.json (`zoo finetune`). The
numbers come from the cards only; error = 100 (1 - accuracy).
"""
import argparse
import json
import re
import shlex
import statistics
import sys
from pathlib import Path

from hybrid_table import _measured, measured_card
from zoo import cli
from zoo.cli.args import nonnegative_float, positive_int
from zoo.cli.hybrid import labels_per_class

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "experiments" / "results"  # hybrid_table.py's committed cards: RESULTS/hybrid-table*/
PRETRAINED_CARDS = ROOT / "pretrained" / "cards"
PROG = "implicit_hybrid_table.py"

#: variant -> (its row's name, whether it has the consistency term, its `zoo train implicit-hybrid` options but W)
VARIANTS = {"labels": ("labels only", False, ["--no-ali"]),
            "consistency": ("+ consistency", True, ["--no-ali"]),
            "ali": ("+ ALI", False, []),
            "hybrid": ("hybrid (ALI + consistency)", True, [])}
#: the options the script sets on every run, refused after `--`
OWN_OPTIONS = ("--labels-per-class", "--label-seed", "--seed", "--no-ali", "--consistency-weight", "--out")


def positive_float(text):
    value = nonnegative_float(text)
    if not value:
        raise argparse.ArgumentTypeError(f"expected a number > 0 (0 is the variants without the term), got {text!r}")
    return value


def variant_options(variant, weight):
    _, consistency, options = VARIANTS[variant]
    return [*options, "--consistency-weight", f"{weight:g}" if consistency else "0"]


def folder_name(labels, seed, variant, weight):
    return f"l{labels}-s{seed}-{variant}" + (f"-w{weight:g}" if VARIANTS[variant][1] else "")


def train_args(labels, seed, variant, weight, extra):
    """`zoo train`'s arguments of one cell but --out."""
    return ["implicit-hybrid", *extra, "--labels-per-class", str(labels), "--label-seed", str(seed), "--seed",
            str(seed), *variant_options(variant, weight)]


def run_cell(out_dir, labels, seed, variant, weight, extra, cards_dir=None):
    """The card of one cell: its `zoo train implicit-hybrid` run measured by `zoo eval FOLDER --write-card`
    (hybrid_table.py's `measured_card`: read from cards_dir or its folder when measured already)."""
    return measured_card(train_args(labels, seed, variant, weight, extra), folder_name(labels, seed, variant, weight),
                         out_dir, cards_dir, prog=PROG)


def error(card):
    """The test error in % of a card's test accuracy."""
    return 100 * (1 - card["metrics"]["test_accuracy"]["accuracy"])


def spread(values):
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values) if len(values) > 1 else 0:.2f}"


def _shown(path):
    path = Path(path)
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)


def explicit_hybrid_reference(labels):
    """The explicit hybrid's best cell group at `labels` per class among RESULTS/hybrid-table*/ (a group: one
    folder's cards of one sup,unsup pair, over the seeds it holds; the best: the highest mean test accuracy), as
    {folder, weights, errors {seed: error}, card (its first seed's), groups (how many were compared)}, or None."""
    groups = {}
    for path in sorted(RESULTS.glob(f"hybrid-table*/l{labels}-s*-w*.json")):
        match = re.fullmatch(rf"l{re.escape(str(labels))}-s(\d+)-w([^_]+)_(.+)", path.stem)
        card = _measured(path) if match else None
        if card is not None:
            groups.setdefault((path.parent, match[2], match[3]), {})[int(match[1])] = card
    if not groups:
        return None

    def mean_accuracy(key):
        return statistics.mean(c["metrics"]["test_accuracy"]["accuracy"] for c in groups[key].values())

    best = max(groups, key=lambda key: (mean_accuracy(key), len(groups[key])))
    cards = dict(sorted(groups[best].items()))
    return {"folder": best[0], "weights": best[1:], "errors": {s: error(c) for s, c in cards.items()},
            "card": next(iter(cards.values())), "groups": len(groups)}


def fine_tuned_references(labels):
    """The checkpoints' `few_shot` records at `labels` per class on the test split (PRETRAINED_CARDS/*.json),
    as [(checkpoint, its record)] by name."""
    found = []
    for path in sorted(PRETRAINED_CARDS.glob("*.json")):
        few = json.loads(path.read_text()).get("few_shot") or {}
        if str(few.get("labels_per_class")) == str(labels) and few.get("split", "test") == "test" and \
                "pretrained" in (few.get("accuracy") or {}):
            found.append((path.stem, few))
    return found


def render(cells, labels, seeds, variants, weight, extra, out_dir, argv):
    """The Markdown table: a row per variant (test error mean ± std over seeds, and per seed), then the reference
    rows, and the notes naming the commands."""
    lines = [f"| {labels} labels per class | `zoo train implicit-hybrid` options | test error (%), mean ± std | "
             "per seed |", "|---|---|---:|---|"]
    for v in variants:
        errors = [error(cells[v, s]) for s in seeds]
        lines.append(f"| {VARIANTS[v][0]} | `{' '.join(variant_options(v, weight))}` | {spread(errors)} | "
                     + ", ".join(f"s{s} {e:.2f}" for s, e in zip(seeds, errors)) + " |")
    measured = sorted({(c["metrics"].get("dataset", "?"), c["metrics"]["test_accuracy"]["n_examples"])
                       for c in cells.values()})
    where = "; ".join(f"all {n:,} test images of `{name}`" for name, n in measured)
    runs = [f"- {VARIANTS[v][0]}: `zoo train {shlex.join(train_args(labels, 'S', v, weight, extra))} --out "
            f"{Path(out_dir) / folder_name(labels, 'S', v, weight)} --overwrite --verbose 0`" for v in variants]
    notes = [f"Test error (%) = 100 (1 - accuracy) on {where}, mean ± std (the sample standard deviation, 0 for one "
             f"seed) over seeds {', '.join(map(str, seeds))}; each seed draws its own {labels} labelled images per "
             "class and initialises the model. The runs, S the seed, each then measured by `zoo eval FOLDER "
             "--write-card`:\n\n" + "\n".join(runs)]

    hybrid = explicit_hybrid_reference(labels)
    if hybrid is None:
        notes.append(f"No explicit hybrid cell at {labels} labels per class is committed in "
                     f"`{_shown(RESULTS)}/hybrid-table*/`.")
    else:
        (a, b), errors = hybrid["weights"], hybrid["errors"]
        lines.append(f"| *reference:* explicit hybrid, `{hybrid['folder'].name}` sup {a}, unsup {b} "
                     f"({len(errors)} seed{'s' * (len(errors) > 1)}) | `zoo train hybrid` | "
                     f"{spread(list(errors.values()))} | " + ", ".join(f"s{s} {e:.2f}" for s, e in errors.items())
                     + " |")
        card = hybrid["card"]
        notes.append(f"Explicit hybrid: the best mean test accuracy at {labels} labels per class of the "
                     f"{hybrid['groups']} committed cell groups of `{_shown(hybrid['folder'].parent)}/hybrid-table*/` "
                     f"(a group: one folder's cards of one sup,unsup pair, over its seeds): "
                     f"`{_shown(hybrid['folder'])}/l{labels}-s*-w{a}_{b}.json`; its run (seed "
                     f"{next(iter(errors))}): `{card.get('command', '?')}`, measured by "
                     f"`{card['metrics']['test_accuracy'].get('command', '?')}` on "
                     f"`{card['metrics'].get('dataset', '?')}`.")
    fine_tuned = fine_tuned_references(labels)
    for name, few in fine_tuned:
        acc = few["accuracy"]["pretrained"]
        lines.append(f"| *reference:* `{name}` fine-tuned | `zoo finetune` | {100 - acc['mean']:.2f} ± "
                     f"{acc['std']:.2f} | {few.get('seeds', '?')} seeds, not kept one by one |")
    shown = _shown(PRETRAINED_CARDS)
    notes.append(f"Fine-tuned checkpoints: the `few_shot` records at {labels} labels per class of `{shown}/*.json` "
                 "(the pretrained network fine-tuned on the labels, test error = 100 - the recorded accuracy, std "
                 "over its seeds): " + "; ".join(f"`{few.get('command', '?')}`" for _, few in fine_tuned)
                 if fine_tuned else f"No checkpoint card in `{shown}/` records a fine-tuning at {labels} labels per "
                 "class.")
    notes.append(f"Regenerate with `python experiments/implicit_hybrid_table.py {shlex.join(argv)}`.")
    return "\n".join(lines) + "\n\n" + "\n\n".join(notes) + "\n"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    own, extra = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    parser = cli.Parser(prog=PROG, description="The implicit hybrid's ablation table: labels only, + consistency, "
                        "+ ALI, and both, at N labels per class over seeds, with the explicit hybrid's and the "
                        "fine-tuned checkpoints' committed results beside them.")
    parser.add_argument("--labels-per-class", type=labels_per_class, default=10, metavar="N",
                        help="labelled images per class (default: %(default)s)")
    parser.add_argument("--seeds", type=positive_int, default=3, help="seeds 0 .. S-1 (default 3)")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS), metavar="V",
                        help=f"the variants to run, of {', '.join(VARIANTS)} (default: all)")
    parser.add_argument("--consistency-weight", type=positive_float, default=100.0, metavar="W",
                        help="the consistency term's weight in the variants that have it (default: 100)")
    parser.add_argument("--out-dir", required=True, help="where each run's model folder goes")
    parser.add_argument("--cards-dir", help="where each measured cell's card is kept as <cell>.json and read from "
                        "(commit it: experiments/results/implicit-hybrid-table)")
    try:
        args = parser.parse_args(own)
        for option in extra:
            if option.split("=", 1)[0] in OWN_OPTIONS:
                raise cli.UsageError(f"{PROG}: {option.split('=', 1)[0]} is set by the script, not after -- "
                                     f"(it sets {', '.join(OWN_OPTIONS)})")
        labels, weight = args.labels_per_class, args.consistency_weight
        variants = [v for v in VARIANTS if v in args.variants]  # in the table's order, each once
        seeds = list(range(args.seeds))
        cells = {(v, s): run_cell(args.out_dir, labels, s, v, weight, extra, args.cards_dir)
                 for v in variants for s in seeds}
    except (cli.UsageError, ValueError) as exc:
        print(exc, file=sys.stderr)
        return cli.EXIT_BAD_INPUT
    print(render(cells, labels, seeds, variants, weight, extra, args.out_dir, argv), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
