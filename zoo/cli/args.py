"""The command line's argument parsing: one-line errors with exit code 2, and checked number types."""
import argparse
import sys

EXIT_BAD_INPUT = 2


class UsageError(ValueError):
    pass


class Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line (no usage dump) with exit code 2."""

    def error(self, message):
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def number(convert, minimum, what):
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


positive_int = number(int, 1, "a positive integer")
nonnegative_int = number(int, 0, "an integer >= 0")
nonnegative_float = number(float, 0.0, "a finite number >= 0")
n_betas = number(int, 2, "an integer >= 2 (inverse temperatures from 0 to 1)")


def labels_per_class(text):
    """An argparse type: a positive integer or 'all'."""
    if text == "all":
        return text
    return number(int, 1, "a positive integer or 'all'")(text)


def run_script(parse_args, run, argv=None):
    """A script's main (the benchmarks): `parse_args(argv)`, a bad argument reported in one line with exit
    code 2; then TensorFlow prepared as the zoo command prepares it (start-up lines muted, oneDNN on) and
    `run(args)`'s exit code."""
    try:
        args = parse_args(argv)
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return EXIT_BAD_INPUT
    from zoo.cli import prepare_tensorflow

    prepare_tensorflow()
    return run(args)
