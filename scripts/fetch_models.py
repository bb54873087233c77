"""Fetch pretrained models into the cache: the same as `zoo fetch` (it calls it).

    python scripts/fetch_models.py NAME... | --all [--mirror URL] [--force]

Each archive comes from --mirror, else $ZOO_MODELS_URL, else the bundled zoo/pretrained/ folder, is checked
against the sha256 of zoo/pretrained/registry.json, and lands in $ZOO_HOME/models/NAME (default
~/.cache/zoo/models/NAME).
"""
import sys

from zoo import cli

if __name__ == "__main__":
    sys.exit(cli.main(["fetch", *sys.argv[1:]]))
