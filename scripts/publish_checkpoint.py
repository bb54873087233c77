"""Make a trained model folder ready to publish: a lean checkpoint with its card completed.

    python scripts/publish_checkpoint.py SOURCE --name NAME --out DIR [--card-fields FILE.json]
        [--keep-training-state]

Writes DIR/NAME: the model without its training state (optimizer slots, persistent chains; unless
--keep-training-state, for a recipe that continues from it), its SavedModel, the source's pictures, and the
source's card with `name` set to NAME and the fields of FILE.json merged in (e.g. `lineage`, the staged
history with each stage's command and result, and `finetune_defaults`, the fine-tuning settings
`zoo finetune NAME` applies). Then pack it with scripts/make_registry.py.
"""
import json
import shutil
import sys
from pathlib import Path

from zoo.cli import args as cli

#: card fields a FILE.json may set: what was measured and recommended about the model, not how it was built
CARD_FIELDS = ("lineage", "finetune_defaults", "command", "notes", "description", "data_description")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = cli.Parser(prog="publish_checkpoint.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("source", metavar="SOURCE", help="a model folder (model.keras, card.json)")
    parser.add_argument("--name", required=True, help="the published name (the folder's name and the card's)")
    parser.add_argument("--out", required=True, metavar="DIR", help="where the published folder DIR/NAME goes")
    parser.add_argument("--card-fields", metavar="FILE",
                        help=f"JSON object of card fields to set ({', '.join(CARD_FIELDS)})")
    parser.add_argument("--keep-training-state", action="store_true",
                        help="keep the optimizer slots and persistent chains (for a recipe that continues from it)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing DIR/NAME")
    try:
        args = parser.parse_args(argv)
        folder = publish(args.source, args.name, args.out, args.card_fields, args.keep_training_state,
                         args.overwrite)
    except (ValueError, OSError) as exc:
        print(exc if isinstance(exc, cli.UsageError) else f"publish_checkpoint.py: error: {exc}", file=sys.stderr)
        return cli.EXIT_BAD_INPUT
    sizes = {p.name: p.stat().st_size for p in folder.iterdir() if p.is_file()}
    print(f"{folder}: " + ", ".join(f"{name} {size / 1e6:.2f} MB" for name, size in sorted(sizes.items())))
    return 0


def publish(source, name, out, card_fields=None, keep_training_state=False, overwrite=False):
    from zoo import cli as zoo_cli
    zoo_cli.prepare_tensorflow()
    from zoo import export, hub

    hub.check_name(name, "published")
    source = Path(source)
    model, card = export.load_folder(source)
    fields = {}
    if card_fields:
        try:
            fields = json.loads(Path(card_fields).read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{card_fields} does not parse as JSON: {exc}") from None
        if not isinstance(fields, dict) or set(fields) - set(CARD_FIELDS):
            raise ValueError(f"{card_fields} must be a JSON object with some of the fields {', '.join(CARD_FIELDS)}")
    card = {**card, **fields, "name": name}
    card.pop("renamed_from", None)
    if "lineage" in fields:  # the stages replace the nested chain of starts
        card.pop("initialized_from", None)
    if not keep_training_state:
        model = export.without_training_state(model)
    card["config"] = model.get_config()
    pictures = {p.name: (lambda dst, p=p: shutil.copyfile(p, dst)) for p in sorted(source.glob("*.png"))}
    return export.save(model, Path(out) / name, card, pictures, overwrite=overwrite)


if __name__ == "__main__":
    sys.exit(main())
