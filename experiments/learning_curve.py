"""Learning curves read from `zoo train` console logs (Keras' verbose 2: `Epoch 21/300`, then `500/500 - 70s -
139ms/step - name: value - ...`): the curves quoted in the checkpoints' cards, as a Markdown table by epoch.

    .venv/bin/python experiments/learning_curve.py models/dbm-500-1000-bmnist.log \
        --metrics log_z/forward log_z/reverse validation_nll/lower validation_nll/upper

A run resumed in another log: give the logs in order; an epoch logged twice (run again after an interruption)
keeps its last value. A log of several stages (a DBM's pretraining, then its joint training) gives the last
stage: epochs counted to another total start a new curve. Only epochs that logged every asked metric are shown (a
monitor every 20 epochs gives those epochs); --every N keeps every N-th of them.
"""
import re
import sys

from zoo import cli
from zoo.cli.args import positive_int

EPOCH = re.compile(r"^Epoch (\d+)/(\d+)\s*$")
METRICS = re.compile(r"^\d+/\d+ - \d+s - (.*)$")
PAIR = re.compile(r"([\w/.-]+): (-?[\d.]+(?:e[-+]?\d+)?|nan|-?inf)\s*$", re.IGNORECASE)


def read_log(path, curve=None):
    """{epoch: {metric: value}} of one log's last stage, added to `curve` (a later epoch line replaces an earlier
    one; epochs counted to another total than the curve's start it afresh). The total is kept as curve[None]."""
    curve = {} if curve is None else curve
    epoch = None
    with open(path) as log:
        for line in log:
            line = line.rstrip("\n")
            if m := EPOCH.match(line):
                epoch, total = int(m.group(1)), int(m.group(2))
                if curve.get(None, total) != total:
                    curve.clear()
                curve[None] = total
            elif epoch is not None and (m := METRICS.match(line)):
                values = {}
                for part in m.group(1).split(" - "):
                    if pair := PAIR.fullmatch(part.strip()):
                        values[pair.group(1)] = float(pair.group(2))
                curve[epoch] = values
                epoch = None
    return curve


def table(curve, metrics, every=1):
    """Markdown lines: a row per epoch that logged all of `metrics` (every `every`-th of those)."""
    epochs = [e for e in sorted(curve) if all(name in curve[e] for name in metrics)][::every]
    lines = ["| epoch | " + " | ".join(metrics) + " |", "|---:|" + "---:|" * len(metrics)]
    lines += [f"| {e} | " + " | ".join(f"{curve[e][name]:.6g}" for name in metrics) + " |" for e in epochs]
    return lines, epochs


def main(argv=None):
    parser = cli.Parser(prog="learning_curve.py", description="Metrics by epoch from zoo train console logs.")
    parser.add_argument("logs", nargs="+", help="console logs of zoo train (--verbose 2), in the order they ran")
    parser.add_argument("--metrics", nargs="+", metavar="NAME",
                        help="metrics to show (default: those every logged epoch has)")
    parser.add_argument("--every", type=positive_int, default=1, help="show every N-th epoch (default: 1)")
    try:
        args = parser.parse_args(argv)
        curve = {}
        for path in args.logs:
            try:
                read_log(path, curve)
            except OSError as error:
                raise cli.UsageError(f"learning_curve.py: cannot read {path}: {error.strerror}")
        curve.pop(None, None)
        if not curve:
            raise cli.UsageError(f"learning_curve.py: {', '.join(args.logs)}: no epoch lines (trained with "
                                 "--verbose 2?)")
        metrics = args.metrics or [name for name in curve[min(curve)] if all(name in v for v in curve.values())]
        if not metrics:
            raise cli.UsageError("learning_curve.py: no metric was logged at every epoch: name some with --metrics")
        logged = {name for values in curve.values() for name in values}
        unknown = [name for name in metrics if name not in logged]
        if unknown:
            raise cli.UsageError(f"learning_curve.py: no epoch logged {', '.join(unknown)}; the logs have "
                                 f"{', '.join(sorted(logged))}")
    except cli.UsageError as error:
        print(error, file=sys.stderr)
        return cli.EXIT_BAD_INPUT
    lines, _ = table(curve, metrics, args.every)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
