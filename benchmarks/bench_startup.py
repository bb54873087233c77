"""Start-up time of the command line and of `import zoo`, against importing TensorFlow, side by side.

    python benchmarks/bench_startup.py [--repeats 5]

Each command runs in a fresh process, `repeats` times, interleaved; prints the median seconds of each and
its ratio to `python -c "import tensorflow"` measured in the same run (machines differ: quote ratios).
"""
import statistics
import subprocess
import sys
import time
from pathlib import Path

from zoo.cli import args as cli

ZOO = [sys.executable, "-m", "zoo"]
COMMANDS = {
    "zoo --help": ZOO + ["--help"],
    "zoo train rbm --help": ZOO + ["train", "rbm", "--help"],
    "zoo list": ZOO + ["list"],
    "python -c 'import zoo'": [sys.executable, "-c", "import zoo"],
    "python -c 'import tensorflow'": [sys.executable, "-c", "import tensorflow"],
}
REFERENCE = "python -c 'import tensorflow'"


def measure(repeats):
    """{name: [seconds per run]}, the commands interleaved so that load changes hit them all alike."""
    times = {name: [] for name in COMMANDS}
    for _ in range(repeats):
        for name, command in COMMANDS.items():
            start = time.perf_counter()
            result = subprocess.run(command, capture_output=True, text=True, cwd=Path(__file__).resolve().parent)
            times[name].append(time.perf_counter() - start)
            if result.returncode != 0:
                raise OSError(f"{name} failed ({result.returncode}): {result.stderr.strip()[-300:]}")
    return times


def main(argv=None):
    parser = cli.Parser(prog="bench_startup.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=cli.positive_int, default=5, help="runs of each command (default: 5)")
    try:
        args = parser.parse_args(sys.argv[1:] if argv is None else argv)
        times = measure(args.repeats)
    except (ValueError, OSError) as exc:
        print(exc if isinstance(exc, cli.UsageError) else f"bench_startup.py: error: {exc}", file=sys.stderr)
        return cli.EXIT_BAD_INPUT
    reference = statistics.median(times[REFERENCE])
    print(f"{'command':<32}{'median s':>10}{'vs import tensorflow':>22}   ({args.repeats} runs each)")
    for name, runs in times.items():
        median = statistics.median(runs)
        print(f"{name:<32}{median:>10.3f}{median / reference:>21.3f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
