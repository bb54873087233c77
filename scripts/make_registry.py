"""Regenerate pretrained/registry.json, pretrained/README.md, docs/checkpoints/NAME.md and the README's pretrained
table from the cards; publish new weights.

    python scripts/make_registry.py                          # after editing pretrained/cards/NAME.json
    python scripts/make_registry.py --card models/published/NAME    # new metrics or notes: copy the card only
    python scripts/make_registry.py models/published/NAME    # new weights: pack the archive and copy the card
        [--out-dir pretrained] [--pages-dir docs/checkpoints] [--mirror URL]... [--url-template URL]

The registry lists every card of pretrained/cards/ with the archive beside it (sha256, size, urls: each
--mirror, then --url-template with {file}, {name}, {sha256} filled in, kept from the previous registry when not
given), and embeds each card, which a fetched folder gets as its card.json. Archives are only re-packed for the
FOLDERs given, whose weights changed: a card's prose, notes or metrics never change an archive or its sha256.
See `zoo.hub.build_registry`. Publish a folder first (scripts/publish_checkpoint.py: the lean checkpoint without
training state, with its card's lineage and fine-tuning defaults).
"""
import shlex
import sys
from pathlib import Path

from zoo import export, hub, pages
from zoo.cli import args as cli

ROOT = Path(__file__).resolve().parent.parent


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = cli.Parser(prog="make_registry.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="*", metavar="FOLDER",
                        help="model folders (model.keras, card.json) whose weights are new: packed, card copied")
    parser.add_argument("--card", action="append", default=[], metavar="FOLDER",
                        help="copy this model folder's card.json to the cards (no packing; repeatable)")
    parser.add_argument("--out-dir", default=str(ROOT / "pretrained"),
                        help="the folder of the archives, cards/, registry.json and README.md (default: the "
                             "checkout's pretrained/)")
    parser.add_argument("--pages-dir", default=str(ROOT / "docs" / "checkpoints"),
                        help="where each checkpoint's generated page goes (default: docs/checkpoints/)")
    parser.add_argument("--readme", metavar="FILE",
                        help="the README whose pretrained table is regenerated (default: the checkout's README.md "
                             "when --out-dir is the checkout's pretrained/, else none)")
    parser.add_argument("--mirror", action="append", default=[], metavar="URL",
                        help="a base URL that will also serve the archives (repeatable)")
    parser.add_argument("--url-template", metavar="URL",
                        help="where the project publishes its archives, e.g. a release asset's URL with {file}")
    try:
        args = parser.parse_args(argv)
        for folder in args.card:
            if Path(folder).name in {Path(f).name for f in args.folders}:
                raise ValueError(f"{folder} is given both as a FOLDER and as --card: choose one")
            if not (Path(args.out_dir) / f"{Path(folder).name}.tar.gz").is_file():
                raise ValueError(f"--card {folder}: there is no archive {Path(folder).name}.tar.gz in {args.out_dir} "
                                 "to go with it; give the folder as a FOLDER to publish its weights too")
            hub.write_card(args.out_dir, Path(folder).name, export.read_card(folder))
        registry = hub.build_registry(args.folders, args.out_dir, mirrors=args.mirror,
                                      url_template=args.url_template,
                                      command=("python scripts/make_registry.py " + shlex.join(argv)).strip(),
                                      pages_dir=args.pages_dir, readme=args.readme or (
                                          ROOT / "README.md" if Path(args.out_dir).resolve() == ROOT / "pretrained"
                                          else None))
    except (ValueError, OSError) as exc:
        print(exc if isinstance(exc, cli.UsageError) else f"make_registry.py: error: {exc}", file=sys.stderr)
        return cli.EXIT_BAD_INPUT
    for model in hub.list_models(registry):
        print(f"{model['name']}  {model['file']}  {pages.format_size(model['size'])}  sha256 {model['sha256']}")
    print(f"wrote {registry} and {registry.parent / 'README.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
