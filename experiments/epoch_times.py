"""Median seconds per epoch of `zoo train` runs, read from their console logs (Keras' verbose 2
lines, `500/500 - 26s - 53ms/step - ...`): the training times quoted in docs/rbm.md and docs/helmholtz.md.

    .venv/bin/python experiments/epoch_times.py models/rbm500-bmnist-cont2-pt20x160.log models/rbm500-bmnist-cont2-k25x160.log
"""
import re
import statistics
import sys

from zoo import cli

EPOCH_LINE = re.compile(r"^\d+/\d+ - (\d+)s - ")


def epoch_seconds(path):
    with open(path) as log:
        return [int(m.group(1)) for m in map(EPOCH_LINE.match, log) if m]


def main(argv=None):
    """Median seconds per epoch, epochs x median (a run paused or slowed by another job has long epochs that
    the median ignores) and the sum of the logged epochs for each log; one-line errors with exit code 2."""
    parser = cli.Parser(prog="epoch_times.py", description="Median seconds per epoch of zoo train logs.")
    parser.add_argument("logs", nargs="+", help="console logs of zoo train (--verbose 2)")
    try:
        args = parser.parse_args(argv)
        rows = []
        for path in args.logs:
            try:
                seconds = epoch_seconds(path)
            except OSError as error:
                raise cli.UsageError(f"epoch_times.py: cannot read {path}: {error.strerror}")
            if not seconds:
                raise cli.UsageError(f"epoch_times.py: {path} has no epoch lines (trained with --verbose 2?)")
            rows.append((path, len(seconds), statistics.median(seconds), sum(seconds)))
    except cli.UsageError as error:
        print(error, file=sys.stderr)
        return cli.EXIT_BAD_INPUT
    for path, n, median, total in rows:
        print(f"{path}: {n} epochs, median {median:g} s an epoch, {n * median / 60:.0f} min at the median, "
              f"{total / 60:.0f} min in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
