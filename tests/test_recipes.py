"""scripts/train_pretrained.py: every recipe is a valid `zoo train rbm` command, and a stage continues the
folder of the stage before it, and the bundled checkpoint was trained by its recipe. (The experiments' scripts:
test_experiments.py.)"""
import json
import shlex
from pathlib import Path

from zoo import cli


def test_every_recipe_stage_parses_and_stages_chain(load_script):
    recipes = load_script("train_pretrained")
    parser = cli.build_parser()
    for name in recipes.RECIPES:
        stages = recipes._stages(name, Path("models"))
        assert stages[-1][0] == Path("models") / name
        for i, (folder, train) in enumerate(stages):
            args = parser.parse_args(["train", recipes.family(name), *train, "--out", str(folder)])
            if i:  # a later stage starts from the folder the stage before wrote
                assert Path(args.init_from) == stages[i - 1][0] == Path("models") / f"{name}-stage{i}"
            else:
                assert args.init_from is None
        for evaluate in recipes.evaluations(name):
            parser.parse_args(["eval", str(stages[-1][0]), *evaluate, "--write-card"])


def _without_folders(arguments):
    """The training settings of a `zoo train rbm` argument list: all but the folders it reads and writes."""
    folder_flags = ("--init-from", "--out", "--logdir")
    return [a for i, a in enumerate(arguments)
            if a not in folder_flags and (i == 0 or arguments[i - 1] not in folder_flags)]


def test_the_bundled_rbm500_was_trained_by_the_stages_of_its_recipe(load_script):
    recipes = load_script("train_pretrained")
    registry = json.loads((Path(__file__).parent.parent / "pretrained" / "registry.json").read_text())
    summary = registry["models"]["rbm500-bmnist"]["summary"]
    commands = [stage["command"] for stage in summary["lineage"]]  # oldest first
    assert commands[-1] == summary["command"]
    trained = [_without_folders(shlex.split(command)[3:]) for command in commands]
    assert all(shlex.split(command)[:3] == ["zoo", "train", "rbm"] for command in commands)
    assert trained == [_without_folders(train) for _, train in recipes._stages("rbm500-bmnist", Path("models"))]
