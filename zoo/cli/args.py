"""What the commands share: one-line argument errors with exit code 2, checked number types, the options several
commands take (each declared once, in `SHARED`), and TensorFlow's start-up for a command's own process.

Nothing here imports TensorFlow or another module of `zoo.cli`: `zoo --help` answers at once.
"""
import argparse
import os
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


#: The options that several commands (and every family of `zoo train`) take, declared once: flag -> its
#: argparse settings and its help. A command gives its own default, and may say more in its own help
#: (`zoo finetune`'s settings default to the model card's).
SHARED = {
    "--lr": dict(type=nonnegative_float, help="learning rate (default: %(default)s)"),
    "--lr-final": dict(type=nonnegative_float, help="decay the learning rate linearly to this"),
    "--momentum": dict(type=nonnegative_float, help="SGD momentum (default: %(default)s)"),
    "--epochs": dict(type=positive_int, help="(default: %(default)s)"),
    "--batch-size": dict(type=positive_int, help="(default: %(default)s)"),
    "--seed": dict(type=nonnegative_int, help="(default: %(default)s)"),
    "--logdir": dict(metavar="DIR", help="TensorBoard folder"),
    "--log-every": dict(type=positive_int, help="write images and histograms every N epochs (default: %(default)s)"),
    "--verbose": dict(type=int, choices=(0, 1, 2), help="Keras progress output"),
    "--json": dict(action="store_true", help="print one JSON object with every number instead"),
    "--registry": dict(metavar="FILE", help="registry.json to read (default: the registry bundled with the package)"),
}


def option(group, flag, default=None, **settings):
    """Add the shared option `flag` (`SHARED`) to `group` (a parser or an argument group) with this command's
    `default`; `settings` (help, metavar, ...) replace the shared ones."""
    if SHARED[flag].get("action") is None:
        settings["default"] = default
    return group.add_argument(flag, **{**SHARED[flag], **settings})


def trained_on(card):
    """The dataset a model card names: a model trained on fresh samples of mnist's grey values every epoch
    is measured on binarized_mnist, one fixed sample of them."""
    name = card.get("dataset") if isinstance(card, dict) else None
    if name == "mnist" and str(card.get("binarization", "")).startswith("dynamic"):
        return "binarized_mnist"
    return name or "binarized_mnist"


def prepare_tensorflow():
    """Before TensorFlow loads, for this command's own process (not for `import zoo`, which leaves the
    environment alone): its C++ start-up lines muted (they would bury the one-line messages), and oneDNN
    kernels on unless the user chose (TF_ENABLE_ONEDNN_OPTS): off by default on CPUs without
    AVX512-VNNI/BF16/AMX, about 25 % faster float32 GEMMs on those (benchmarks/bench_rbm.py)."""
    from zoo import _quiet

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    _quiet.import_tensorflow_quietly()


def run_script(parse_args, run, argv=None):
    """A script's main (the benchmarks): `parse_args(argv)`, a bad argument reported in one line with exit
    code 2; then TensorFlow prepared as the zoo command prepares it (start-up lines muted, oneDNN on) and
    `run(args)`'s exit code."""
    try:
        args = parse_args(argv)
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return EXIT_BAD_INPUT
    prepare_tensorflow()
    return run(args)


def checked(prog, run):
    """`run(args)` for run_script, its bad input (a ValueError or OSError: a model of the wrong family, a
    missing file) reported as "PROG: error: ..." in one line with exit code 2."""
    def wrapped(args):
        try:
            return run(args)
        except (ValueError, OSError) as exc:
            print(f"{prog}: error: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
    return wrapped
