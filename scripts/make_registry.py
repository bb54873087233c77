"""Regenerate zoo/pretrained/registry.json, zoo/pretrained/README.md and docs/checkpoints/NAME.md from
model folders.

    python scripts/make_registry.py models/rbm500-bmnist models/grbm-digits [--out-dir zoo/pretrained]
        [--pages-dir docs/checkpoints] [--mirror URL]...

Packs each folder into a reproducible NAME.tar.gz in --out-dir, records its sha256, size and urls (the
archive's name, then MIRROR/NAME.tar.gz for each --mirror) with a summary of its card.json, writes the
README table from the cards, and one page per checkpoint from its card: the registry lists exactly the
folders given. See `zoo.hub.build_registry`. Publish a folder first (scripts/publish_checkpoint.py: the lean
checkpoint without training state, with its card's lineage and fine-tuning defaults).
"""
import shlex
import sys
from pathlib import Path

from zoo import hub
from zoo.cli import args as cli

ROOT = Path(__file__).resolve().parent.parent


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = cli.Parser(prog="make_registry.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", metavar="FOLDER", help="model folders (model.keras, card.json)")
    parser.add_argument("--out-dir", default=str(ROOT / "zoo" / "pretrained"),
                        help="where the archives, registry.json and README.md go (default: the package's "
                             "zoo/pretrained/)")
    parser.add_argument("--pages-dir", default=str(ROOT / "docs" / "checkpoints"),
                        help="where each checkpoint's generated page goes (default: docs/checkpoints/)")
    parser.add_argument("--mirror", action="append", default=[], metavar="URL",
                        help="a base URL that will also serve the archives (repeatable)")
    try:
        args = parser.parse_args(argv)
        registry = hub.build_registry(args.folders, args.out_dir, mirrors=args.mirror,
                                      command="python scripts/make_registry.py " + shlex.join(argv),
                                      pages_dir=args.pages_dir)
    except (ValueError, OSError) as exc:
        print(exc if isinstance(exc, cli.UsageError) else f"make_registry.py: error: {exc}", file=sys.stderr)
        return cli.EXIT_BAD_INPUT
    for model in hub.list_models(registry):
        print(f"{model['name']}  {model['file']}  {hub.format_size(model['size'])}  sha256 {model['sha256']}")
    print(f"wrote {registry} and {registry.parent / 'README.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
