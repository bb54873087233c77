"""`zoo fetch`: registered models into the cache, each archive checked against the registry's sha256."""
from zoo.cli.args import UsageError, option


def add_parser(commands):
    fetch = commands.add_parser(
        "fetch", help="download pretrained models into the cache (sha256 checked)",
        description="Fetch registered models into $ZOO_HOME/models/NAME (default ~/.cache/zoo/models): from "
                    "--mirror, else $ZOO_MODELS_URL, else the registry's own URLs, else a checkout's pretrained/ "
                    "folder. Each archive must match the registry's sha256 before it is unpacked; a model already "
                    "fetched is not downloaded again.",
        epilog="example: zoo fetch rbm500-bmnist --mirror https://example.org/zoo-models")
    fetch.set_defaults(func=main)
    fetch.add_argument("names", nargs="*", metavar="NAME", help="registered model names (see zoo list)")
    fetch.add_argument("--all", action="store_true", help="every registered model")
    fetch.add_argument("--mirror", metavar="URL", help="base URL (or local folder) holding NAME.tar.gz archives")
    fetch.add_argument("--force", action="store_true", help="download and unpack again even if cached")
    option(fetch, "--registry")
    return fetch


def main(args, argv):
    from zoo import hub
    from zoo.cli.list import no_models

    if args.all and args.names:
        raise UsageError("zoo fetch: pass model names or --all, not both")
    if not (args.all or args.names):
        raise UsageError("zoo fetch: name the models to fetch, or pass --all (see zoo list)")
    names = [m["name"] for m in hub.list_models(args.registry)] if args.all else args.names
    if not names:
        raise ValueError(no_models(args.registry))
    for name in names:
        path = hub.fetch(name, mirror=args.mirror, registry=args.registry, force=args.force)
        print(f"{name}  {path}")
    return 0
