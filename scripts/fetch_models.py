"""Fetch pretrained models into the cache: the same as `zoo fetch` (it calls it).

    python scripts/fetch_models.py NAME... | --all [--mirror URL] [--force]

Each archive comes from --mirror, else $ZOO_MODELS_URL, else the registry's own URLs, else the checkout's
pretrained/ folder; it is checked against the sha256 of the registry (pretrained/registry.json, or the copy an
installed wheel carries) and lands in $ZOO_HOME/models/NAME (default ~/.cache/zoo/models/NAME) with its card.
"""
import sys

from zoo import cli

if __name__ == "__main__":
    sys.exit(cli.main(["fetch", *sys.argv[1:]]))
