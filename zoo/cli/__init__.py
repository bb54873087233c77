"""The `zoo` command: a thin face over the library, one module per command (`zoo.cli.train`, `eval`, `sample`,
`inpaint`, `classify`, `finetune`, `list`, `fetch`), each adding its subparser (`add_parser(commands)`) with the
function that runs it (`set_defaults(func=...)`). Bad input gives one line on stderr and exit code 2.

The options several commands share are declared once (`zoo.cli.args.SHARED`); the families of `zoo train` plug
into one run manager (`zoo.cli.train`, `zoo.cli.family`).
"""
import importlib
import os
import sys

from zoo.cli.args import EXIT_BAD_INPUT, Parser, UsageError, prepare_tensorflow

__all__ = ["main", "build_parser", "prepare_tensorflow", "EXIT_BAD_INPUT", "UsageError", "Parser", "COMMANDS"]

#: the commands in the order `zoo --help` lists them, each the module zoo.cli.<name>; importing them binds
#: zoo.cli.eval and zoo.cli.list as attributes of this package, so this module does not call eval() or list()
COMMANDS = ("train", "sample", "inpaint", "classify", "eval", "finetune", "list", "fetch")


def build_parser():
    parser = Parser(prog="zoo", description="A model zoo of deep generative models with binary latent "
                    "variables: train, sample and inspect them.",
                    epilog="Run `zoo COMMAND --help` for the options of a command.")
    parser.set_defaults(func=None)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name in COMMANDS:
        importlib.import_module(f"zoo.cli.{name}").add_parser(commands)
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else [*argv]
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.func is None:
            parser.print_help()
            return EXIT_BAD_INPUT
        return args.func(args, argv)
    except BrokenPipeError:  # `zoo eval --json | head`: the reader left, nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit flush cannot fail again
        return 1
    except (ValueError, OSError, FloatingPointError) as exc:  # OSError: unwritable or missing paths
        print(f"zoo: error: {exc}" if not isinstance(exc, UsageError) else str(exc), file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("zoo: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
