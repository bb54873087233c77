"""`zoo list`: the registered pretrained models with their measured metrics (no TensorFlow)."""
import json

from zoo.cli.args import option


def add_parser(commands):
    ls = commands.add_parser("list", help="list the pretrained models with their measured metrics",
                             description="List the registered pretrained models: name, model, dataset, metrics, "
                                         "archive size.")
    ls.set_defaults(func=main)
    option(ls, "--json", help="print the registry entries as JSON")
    option(ls, "--registry")
    return ls


def main(args, argv):
    from zoo import hub, pages

    models = hub.list_models(args.registry)
    if args.json:
        print(json.dumps(models, indent=2))
    elif not models:
        print(no_models(args.registry))
    else:
        rows = [("name", "model", "dataset", "metrics", "size")] + [
            (m["name"], str(m["summary"].get("model") or "-"), str(m["summary"].get("dataset") or "-"),
             pages.describe_metrics(m["summary"].get("metrics")) or "-", pages.format_size(m["size"]))
            for m in models]
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        for row in rows:
            print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1])
    return 0


def no_models(registry):
    """What `zoo list` prints, and `zoo fetch --all` reports, when the registry lists no model."""
    from zoo import hub

    return f"no models registered yet ({registry or hub.REGISTRY} does not exist or lists none)"
