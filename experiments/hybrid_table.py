"""The deep hybrid models' table: test accuracy (and the generative bound) against the number of labels and the
objective's weights, over seeds, each cell a `zoo train hybrid` run measured by `zoo eval` on the whole test split.

    python experiments/hybrid_table.py --labels-per-class 10 100 --seeds 3 --weights 1,1 1,0 \\
        --out-dir models/hybrid-table -- --dataset mnist --dynamic-binarization --generative adgm --epochs 30

Everything after `--` goes to every `zoo train hybrid`; the script adds --labels-per-class, --label-seed and --seed
(both the seed), --sup-weight, --unsup-weight and --out. Weights `a,b` are sup_weight,unsup_weight: `1,0` is the
same classifier and inference network trained on the labels alone (no generative term). Each run writes
OUT_DIR/l<N>-s<seed>-w<a>_<b>/ and is measured by `zoo eval FOLDER --k 1 --write-card` (the accuracy on all test
images, and the K = 1 bound); a cell whose card already holds its accuracy (in --cards-dir, where every measured
card is kept, or in its folder) is read, not trained again, so the table can be built over several sessions. The
numbers come from the cards only.
"""
import argparse
import contextlib
import io
import json
import statistics
import sys
from pathlib import Path

from zoo import cli
from zoo.cli.args import positive_int
from zoo.cli.hybrid import labels_per_class


def parse_weights(text):
    """sup_weight,unsup_weight: two numbers >= 0, not both 0."""
    try:
        a, b = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a pair sup,unsup such as 1,1; got {text!r}") from None
    if a < 0 or b < 0 or not a + b:
        raise argparse.ArgumentTypeError(f"weights must be >= 0 and not both 0, got {text!r}")
    return a, b


def folder_name(labels, seed, weights):
    return f"l{labels}-s{seed}-w{weights[0]:g}_{weights[1]:g}"


def _measured(card_file):
    """The card in card_file if it holds the test accuracy, else None."""
    if card_file is None or not card_file.is_file():
        return None
    card = json.loads(card_file.read_text())
    return card if "test_accuracy" in card.get("metrics", {}) else None


def measured_card(train_args, name, out_dir, cards_dir=None, eval_args=(), prog="hybrid_table.py"):
    """The card of the cell `name` (shared with the other table scripts, e.g. implicit_hybrid_table.py): the run
    `zoo train *train_args --out OUT_DIR/name --overwrite --verbose 0` measured by `zoo eval OUT_DIR/name
    *eval_args --write-card`, done unless its card (cards_dir/<name>.json, or its folder's) already holds the test
    accuracy; a card not yet in cards_dir is copied there as <name>.json. A failed run is a UsageError naming
    `prog`."""
    folder = Path(out_dir) / name
    kept = None if cards_dir is None else Path(cards_dir) / f"{name}.json"
    card = _measured(kept)
    if card is None:
        card = _measured(folder / "card.json")
        if card is None:
            command = ["train", *train_args, "--out", str(folder), "--overwrite", "--verbose", "0"]
            print("$ zoo " + " ".join(command), file=sys.stderr, flush=True)
            with contextlib.redirect_stdout(io.StringIO()):  # the table alone goes to stdout
                failed = cli.main(command) or cli.main(["eval", str(folder), *eval_args, "--write-card"])
            if failed:
                raise cli.UsageError(f"{prog}: the run of {folder} failed (see above)")
            card = json.loads((folder / "card.json").read_text())
        if kept is not None:
            kept.parent.mkdir(parents=True, exist_ok=True)
            kept.write_text(json.dumps(card, indent=1) + "\n")
    return card


def run_cell(out_dir, labels, seed, weights, train_args, cards_dir=None):
    """The card of one cell: its `zoo train hybrid` run measured by `zoo eval FOLDER --k 1 --seed 0`
    (`measured_card`)."""
    return measured_card(["hybrid", *train_args, "--labels-per-class", str(labels), "--label-seed", str(seed),
                          "--seed", str(seed), "--sup-weight", f"{weights[0]:g}", "--unsup-weight", f"{weights[1]:g}"],
                         folder_name(labels, seed, weights), out_dir, cards_dir, eval_args=["--k", "1", "--seed", "0"])


def render(cells, labels, weights, seeds, train_args, argv):
    """The Markdown table: a row per number of labels, per weights the mean ± std test accuracy and bound."""
    header = ["labels per class"] + [f"sup {a:g}, unsup {b:g}: accuracy (%)" for a, b in weights] + \
        [f"sup {a:g}, unsup {b:g}: test NLL (K = 1)" for a, b in weights]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" + "---:|" * (len(header) - 1)]

    def spread(values):
        return f"{statistics.mean(values):.2f} ± {statistics.stdev(values) if len(values) > 1 else 0:.2f}"

    for n in labels:
        accuracy = [spread([100 * cells[n, s, w]["metrics"]["test_accuracy"]["accuracy"] for s in seeds])
                    for w in weights]
        nll = [spread([cells[n, s, w]["metrics"]["test_nll_by_k"]["1"]["nll"] for s in seeds]) for w in weights]
        lines.append("| " + " | ".join([str(n)] + accuracy + nll) + " |")
    first = next(iter(cells.values()))
    n_test = first["metrics"]["test_accuracy"]["n_examples"]
    notes = [f"Test accuracy on all {n_test:,} test images and the generative part's test NLL at K = 1 (a stochastic "
             f"upper bound), mean ± std over seeds {', '.join(map(str, seeds))} (each seed draws its own labelled "
             "images and initialises the model); each run: `zoo train hybrid " + " ".join(train_args) +
             " --labels-per-class N --label-seed S --seed S --sup-weight A --unsup-weight B`, then `zoo eval FOLDER "
             "--k 1 --seed 0`.",
             f"Regenerate with `python experiments/hybrid_table.py {' '.join(argv)}`."]
    return "\n".join(lines) + "\n\n" + "\n".join(notes) + "\n"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    own, train_args = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    parser = cli.Parser(prog="hybrid_table.py", description="The deep hybrid models' table of accuracy against "
                        "labels and weights.")
    parser.add_argument("--labels-per-class", nargs="+", required=True, type=labels_per_class, metavar="N",
                        help="numbers of labelled images per class (or all)")
    parser.add_argument("--seeds", type=positive_int, default=3, help="seeds 0 .. S-1 (default 3)")
    parser.add_argument("--weights", nargs="+", type=parse_weights, default=[(1.0, 1.0), (1.0, 0.0)],
                        metavar="A,B", help="sup_weight,unsup_weight pairs (default: 1,1 1,0)")
    parser.add_argument("--out-dir", required=True, help="where each run's model folder goes")
    parser.add_argument("--cards-dir", help="where each measured cell's card is kept as <cell>.json and read "
                        "from (commit it, e.g. experiments/results/hybrid-table: the table then grows over sessions "
                        "and regenerates on any machine)")
    try:
        args = parser.parse_args(own)
        labels = args.labels_per_class
        seeds = list(range(args.seeds))
        cells = {(n, s, w): run_cell(args.out_dir, n, s, w, train_args, args.cards_dir)
                 for n in labels for s in seeds for w in args.weights}
    except (cli.UsageError, ValueError) as error:
        print(error, file=sys.stderr)
        return cli.EXIT_BAD_INPUT
    print(render(cells, labels, args.weights, seeds, train_args, argv), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
