"""scripts/train_pretrained.py: every recipe is a valid `zoo train rbm` command, and a stage continues the
folder of the stage before it."""
from pathlib import Path

from zoo import cli


def test_every_recipe_stage_parses_and_stages_chain(load_script):
    recipes = load_script("train_pretrained")
    parser = cli.build_parser()
    for name in recipes.RECIPES:
        stages = recipes._stages(name, Path("models"))
        assert stages[-1][0] == Path("models") / name
        for i, (folder, train) in enumerate(stages):
            args = parser.parse_args(["train", "rbm", *train, "--out", str(folder)])
            if i:  # a later stage starts from the folder the stage before wrote
                assert Path(args.init_from) == stages[i - 1][0] == Path("models") / f"{name}-stage{i}"
            else:
                assert args.init_from is None
        parser.parse_args(["eval", str(stages[-1][0]), *recipes.RECIPES[name]["eval"], "--write-card"])
    assert len(recipes._stages("rbm500-bmnist", Path("models"))) == 2
