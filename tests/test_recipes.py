"""scripts/train_pretrained.py: every recipe is a valid `zoo train rbm` command, and a stage continues the
folder of the stage before it, and the bundled checkpoint was trained by its recipe."""
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
        parser.parse_args(["eval", str(stages[-1][0]), *recipes.RECIPES[name]["eval"], "--write-card"])


def _without_folders(arguments):
    """The training settings of a `zoo train rbm` argument list: all but the folders it reads and writes."""
    folder_flags = ("--init-from", "--out", "--logdir")
    return [a for i, a in enumerate(arguments)
            if a not in folder_flags and (i == 0 or arguments[i - 1] not in folder_flags)]


def test_the_bundled_rbm500_was_trained_by_the_stages_of_its_recipe(load_script):
    recipes = load_script("train_pretrained")
    registry = json.loads((Path(__file__).parent.parent / "zoo" / "pretrained" / "registry.json").read_text())
    summary = registry["models"]["rbm500-bmnist"]["summary"]
    commands = [stage["command"] for stage in summary["lineage"]]  # oldest first
    assert commands[-1] == summary["command"]
    trained = [_without_folders(shlex.split(command)[3:]) for command in commands]
    assert all(shlex.split(command)[:3] == ["zoo", "train", "rbm"] for command in commands)
    assert trained == [_without_folders(train) for _, train in recipes._stages("rbm500-bmnist", Path("models"))]


def test_epoch_times_reads_the_median_of_keras_epoch_lines(tmp_path, load_script, capsys):
    epoch_times = load_script("epoch_times")
    log = tmp_path / "run.log"
    log.write_text("Epoch 1/3\n500/500 - 26s - 53ms/step - free_energy: -9.3e+02\nEpoch 2/3\n"
                   "500/500 - 1200s - 2s/step - free_energy: -9.2e+02\nEpoch 3/3\n500/500 - 24s - 49ms/step\n")
    assert epoch_times.main([str(log)]) == 0
    assert capsys.readouterr().out == f"{log}: 3 epochs, median 26 s an epoch, 1 min at the median, 21 min in all\n"
    (tmp_path / "empty.log").write_text("Epoch 1/3\n")
    for bad, message in (("empty.log", "no epoch lines"), ("missing.log", "cannot read")):
        assert epoch_times.main([str(tmp_path / bad)]) == 2
        assert message in capsys.readouterr().err
