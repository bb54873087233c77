"""experiments/: the one-off studies' scripts read their inputs right (logs, cards), print their tables from the
numbers they read, and refuse bad input in one line with exit code 2."""
import json
from pathlib import Path

import numpy as np
import pytest

import zoo
from zoo.models import RBM

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"


def test_epoch_times_reads_the_median_of_keras_epoch_lines(tmp_path, load_script, capsys):
    epoch_times = load_script("experiments/epoch_times")
    log = tmp_path / "run.log"
    log.write_text("Epoch 1/3\n500/500 - 26s - 53ms/step - free_energy: -9.3e+02\nEpoch 2/3\n"
                   "500/500 - 1200s - 2s/step - free_energy: -9.2e+02\nEpoch 3/3\n500/500 - 24s - 49ms/step\n")
    assert epoch_times.main([str(log)]) == 0
    assert capsys.readouterr().out == f"{log}: 3 epochs, median 26 s an epoch, 1 min at the median, 21 min in all\n"
    (tmp_path / "empty.log").write_text("Epoch 1/3\n")
    for bad, message in (("empty.log", "no epoch lines"), ("missing.log", "cannot read")):
        assert epoch_times.main([str(tmp_path / bad)]) == 2
        assert message in capsys.readouterr().err


def test_learning_curve_reads_the_epochs_that_logged_every_asked_metric(tmp_path, load_script, capsys):
    """Two logs of one run (the second resumed at epoch 2, which it logs again): the later line wins; only the
    epochs with the monitor's metrics are rows; bad input is one line and exit 2."""
    curve = load_script("experiments/learning_curve")
    first, second = tmp_path / "a.log", tmp_path / "b.log"
    first.write_text("Epoch 1/3\n500/500 - 79s - 158ms/step - loss: -8.9587e+02 - log_z/forward: 1030.6219 - "
                     "log_z/ess: 1.0236\nEpoch 2/3\n500/500 - 30s - 60ms/step - loss: -6.0e+02\nEpoch 3/3\n")
    second.write_text("zoo: resuming\nEpoch 2/3\n500/500 - 31s - 61ms/step - loss: -5.5e+02 - log_z/forward: 796.3543 "
                      "- log_z/ess: 2\nEpoch 3/3\n500/500 - 29s - 58ms/step - loss: -5.0e+02\n")
    assert curve.main([str(first), str(second), "--metrics", "log_z/forward", "loss"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "| epoch | log_z/forward | loss |", "|---:|---:|---:|", "| 1 | 1030.62 | -895.87 |", "| 2 | 796.354 | -550 |"]
    assert curve.main([str(first), str(second), "--every", "2"]) == 0  # default: what every epoch logged (loss)
    assert capsys.readouterr().out.splitlines()[2:] == ["| 1 | -895.87 |", "| 3 | -500 |"]
    staged = tmp_path / "staged.log"  # a pretraining stage of 2 epochs, then the 3 of the joint stage
    staged.write_text("Epoch 1/2\n500/500 - 9s - 9ms/step - loss: 7\nEpoch 2/2\n500/500 - 9s - 9ms/step - loss: 6\n"
                      + first.read_text())
    assert curve.main([str(staged), str(second), "--metrics", "loss"]) == 0
    assert capsys.readouterr().out.splitlines()[2:] == ["| 1 | -895.87 |", "| 2 | -550 |", "| 3 | -500 |"]
    (tmp_path / "empty.log").write_text("Epoch 1/3\n")
    (tmp_path / "uneven.log").write_text("Epoch 1/2\n500/500 - 9s - 9ms/step - a: 1\nEpoch 2/2\n"
                                         "500/500 - 9s - 9ms/step - b: 1\n")
    for args, message in (([str(tmp_path / "empty.log")], "no epoch lines"),
                          ([str(tmp_path / "uneven.log")], "no metric was logged at every epoch"),
                          ([str(tmp_path / "no.log")], "cannot read"),
                          ([str(first), "--metrics", "accuracy"], "no epoch logged accuracy; the logs have "
                                                                     "log_z/ess, log_z/forward, loss"),
                          ([str(first), "--every", "0"], "--every")):
        assert curve.main(args) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err


def _card(folder, by_k, log_z=None):
    folder.mkdir()
    metrics = {"dataset": "binarized_mnist", "test_nll_by_k": by_k, **({"log_z": log_z} if log_z else {})}
    (folder / "card.json").write_text(json.dumps({"name": folder.name, "metrics": metrics}))
    return str(folder)


def test_nll_table_puts_the_cards_numbers_side_by_side(tmp_path, load_script, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(EXPERIMENTS))  # as when run as a script
    nll_table = load_script("experiments/nll_table")
    row = {"std": 0.25, "n_examples": 10000}
    bihm = _card(tmp_path / "bihm", {
        "1": {**row, "nll": 95.0, "ess": 1.0, "p_nll": 99.0, "p_std": 0.3, "p_ess": 1.0, "command": "zoo eval bihm --k 1"},
        "10": {**row, "nll": 93.5, "ess": 4.2, "p_nll": 96.0, "p_std": 0.3, "p_ess": 2.1, "command": "zoo eval bihm --k 10"}},
        log_z={"log_z": -6.1, "std": 0.01, "ess": 900.0, "n_samples": 10 ** 6, "k": 10, "command": "zoo eval bihm"})
    rws = _card(tmp_path / "rws", {"1": {**row, "nll": 101.0, "ess": 1.0, "command": "zoo eval rws --k 1"},
                                   "10": {**row, "nll": 96.25, "ess": 1.5, "command": "zoo eval rws --k 1"}})
    log = tmp_path / "bihm.log"
    log.write_text("500/500 - 20s - 40ms/step\n" * 3 + "500/500 - 99s - 40ms/step\n")
    assert nll_table.main([bihm, rws, "--logs", str(log), str(log)]) == 0
    out = capsys.readouterr().out
    assert "| 10 | 93.50 ± 0.25 | 4.2 | 96.00 ± 0.30 | 2.1 | 96.25 ± 0.25 | 1.5 |" in out
    assert "| 1 | 95.00 ± 0.25 | 1.0 | 99.00 ± 0.30 | 1.0 | 101.00 ± 0.25 | 1.0 |" in out
    assert "`bihm` 1.50; `rws` 4.75 nats" in out and "log Z = -6.100 ± 0.010 from 1,000,000 samples" in out
    assert "`bihm` trained 4 epochs, 1 minutes at the median epoch (20 s)" in out
    assert "`zoo eval bihm --k 1`; `zoo eval bihm --k 10`; `zoo eval rws --k 1`" in out
    (tmp_path / "bare").mkdir()
    (tmp_path / "bare" / "card.json").write_text(json.dumps({"name": "bare"}))
    for bad, message in (([bihm, str(tmp_path / "missing")], "cannot read"), ([str(tmp_path / "bare")], "no test NLL"),
                         ([bihm, rws, "--logs", str(log)], "1 logs for 2 folders"),
                         ([bihm, "--logs", str(tmp_path / "none.log")], "cannot read")):
        assert nll_table.main(bad) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, (bad, err)


def test_hybrid_table_reads_finished_cells_from_their_cards(tmp_path, load_script, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(EXPERIMENTS))
    table = load_script("experiments/hybrid_table")
    for labels, seed, weights, accuracy, nll in [(10, 0, (1.0, 1.0), 0.9, 100.0), (10, 1, (1.0, 1.0), 0.8, 102.0),
                                                 (10, 0, (1.0, 0.0), 0.7, 300.0), (10, 1, (1.0, 0.0), 0.6, 310.0)]:
        folder = tmp_path / table.folder_name(labels, seed, weights)
        folder.mkdir()
        (folder / "card.json").write_text(json.dumps({"metrics": {
            "test_accuracy": {"accuracy": accuracy, "n_examples": 10000},
            "test_nll_by_k": {"1": {"nll": nll}}}}))
    kept = tmp_path / "kept"
    argv = ["--labels-per-class", "10", "--seeds", "2", "--out-dir", str(tmp_path), "--cards-dir", str(kept), "--",
            "--epochs", "5"]
    assert table.main(argv) == 0
    out = capsys.readouterr().out
    assert "| 10 | 85.00 ± 7.07 | 65.00 ± 7.07 | 101.00 ± 1.41 | 305.00 ± 7.07 |" in out
    assert len(list(kept.glob("l10-s*-w*.json"))) == 4
    for folder in tmp_path.glob("l10-*"):  # a new machine: the model folders gone, the kept cards committed
        (folder / "card.json").unlink()
    assert table.main(argv) == 0 and capsys.readouterr().out == out
    assert "`zoo train hybrid --epochs 5 --labels-per-class N" in out
    for bad, message in ((["--weights", "0,0"], "not both 0"), (["--weights", "1"], "a pair sup,unsup"),
                         (["--labels-per-class", "0"], "expected a positive integer")):
        assert table.main(["--labels-per-class", "10", "--out-dir", str(tmp_path), *bad]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err


def _accuracy_card(path, accuracy, n_examples=10000, **fields):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**fields, "metrics": {"dataset": "mnist", "test_accuracy": {
        "accuracy": accuracy, "n_examples": n_examples, "command": f"zoo eval {path.stem}"}}}))


def test_implicit_hybrid_table_reads_its_cells_and_the_references_from_their_cards(tmp_path, load_script, capsys,
                                                                                   monkeypatch):
    monkeypatch.syspath_prepend(str(EXPERIMENTS))
    table = load_script("experiments/implicit_hybrid_table")
    committed = table.explicit_hybrid_reference(10)  # the committed cards: a cell group of hybrid_table.py's
    assert committed["folder"].parent == EXPERIMENTS / "results" and committed["folder"].name.startswith("hybrid-table")
    assert "rbm500-bmnist" in dict(table.fine_tuned_references(10))
    kept = tmp_path / "kept"
    for variant, accuracies in {"labels": (0.75, 0.7), "consistency": (0.8, 0.9), "ali": (0.85, 0.85),
                                "hybrid": (0.97, 0.95)}.items():
        for seed, accuracy in enumerate(accuracies):
            _accuracy_card(kept / f"{table.folder_name(10, seed, variant, 50.0)}.json", accuracy)
    results, pretrained = tmp_path / "results", tmp_path / "cards"
    monkeypatch.setattr(table, "RESULTS", results)
    monkeypatch.setattr(table, "PRETRAINED_CARDS", pretrained)
    _accuracy_card(results / "hybrid-table" / "l10-s0-w1_1.json", 0.8, command="zoo train hybrid A")
    _accuracy_card(results / "hybrid-table" / "l10-s1-w1_1.json", 0.9, command="zoo train hybrid B")
    _accuracy_card(results / "hybrid-table-cnn" / "l10-s0-w1_0.1.json", 0.84)
    _accuracy_card(results / "hybrid-table-cnn" / "l100-s0-w1_0.1.json", 0.99)  # other numbers of labels
    _accuracy_card(results / "other" / "l10-s0-w1_1.json", 0.99)  # not a hybrid_table.py folder
    (results / "hybrid-table" / "l10-s0-w1_0.json").write_text(json.dumps({"metrics": {}}))  # not measured
    few = {"accuracy": {"pretrained": {"mean": 80.5, "std": 1.25}, "random": {"mean": 50.0, "std": 9.0}},
           "command": "zoo finetune a --labels-per-class 10", "labels_per_class": 10, "seeds": 4, "split": "test"}
    pretrained.mkdir()
    (pretrained / "a.json").write_text(json.dumps({"few_shot": few}))
    (pretrained / "b.json").write_text(json.dumps({"few_shot": {**few, "labels_per_class": 100}}))
    (pretrained / "c.json").write_text(json.dumps({"metrics": {}}))
    argv = ["--seeds", "2", "--consistency-weight", "50", "--out-dir", str(tmp_path / "models"), "--cards-dir",
            str(kept), "--", "--epochs", "30", "--translate", "2"]
    monkeypatch.setattr(zoo.cli, "main", lambda argv: 1 / 0)  # read, never trained
    assert table.main(argv) == 0
    out = capsys.readouterr().out
    assert "| labels only | `--no-ali --consistency-weight 0` | 27.50 ± 3.54 | s0 25.00, s1 30.00 |" in out
    assert "| + consistency | `--no-ali --consistency-weight 50` | 15.00 ± 7.07 | s0 20.00, s1 10.00 |" in out
    assert "| + ALI | `--consistency-weight 0` | 15.00 ± 0.00 | s0 15.00, s1 15.00 |" in out
    assert "| hybrid (ALI + consistency) | `--consistency-weight 50` | 4.00 ± 1.41 | s0 3.00, s1 5.00 |" in out
    assert "| *reference:* explicit hybrid, `hybrid-table` sup 1, unsup 1 (2 seeds) | `zoo train hybrid` | " \
           "15.00 ± 7.07 | s0 20.00, s1 10.00 |" in out
    assert "| *reference:* `a` fine-tuned | `zoo finetune` | 19.50 ± 1.25 | 4 seeds, not kept one by one |" in out
    assert "`b`" not in out and "`c`" not in out and len(out.split("| *reference:*")) == 3
    assert "of the 2 committed cell groups" in out and "its run (seed 0): `zoo train hybrid A`" in out
    assert "`zoo finetune a --labels-per-class 10`" in out and "all 10,000 test images of `mnist`" in out
    assert "`zoo train implicit-hybrid --epochs 30 --translate 2 --labels-per-class 10 --label-seed S --seed S " \
           f"--no-ali --consistency-weight 50 --out {tmp_path / 'models' / 'l10-sS-consistency-w50'} " \
           "--overwrite --verbose 0`" in out
    assert "Regenerate with `python experiments/implicit_hybrid_table.py --seeds 2 --consistency-weight 50" in out
    assert table.main(argv[:2] + ["--variants", "hybrid", "labels", *argv[2:]]) == 0  # a subset, in the table's order
    rows = [line.split(" | ")[0] for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert rows[1:4] == ["| labels only", "| hybrid (ALI + consistency)",
                         "| *reference:* explicit hybrid, `hybrid-table` sup 1, unsup 1 (2 seeds)"]
    for bad, message in ((["--consistency-weight", "0"], "expected a number > 0"),
                         (["--variants", "gan"], "invalid choice: 'gan'"),
                         (["--labels-per-class", "0"], "expected a positive integer"),
                         (["--seeds", "0"], "expected a positive integer"),
                         (["--", "--epochs", "3", "--seed", "4"], "--seed is set by the script"),
                         (["--", "--no-ali"], "--no-ali is set by the script")):
        assert table.main(["--out-dir", str(tmp_path), *bad]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err


def test_implicit_hybrid_table_trains_and_measures_its_cells(tmp_path, load_script, capsys, monkeypatch):
    """Two variants of a tiny implicit hybrid on `digits`, one seed: trained, measured, kept, then read back."""
    monkeypatch.syspath_prepend(str(EXPERIMENTS))
    monkeypatch.chdir(tmp_path)  # zoo train's TensorBoard logs
    table = load_script("experiments/implicit_hybrid_table")
    kept = tmp_path / "kept"
    argv = ["--labels-per-class", "5", "--seeds", "1", "--variants", "labels", "hybrid", "--out-dir",
            str(tmp_path / "models"), "--cards-dir", str(kept), "--", "--dataset", "digits", "--epochs", "1",
            "--batch-size", "40", "--discriminator-hidden", "16", "--latent-hidden", "8", "--generator-hidden", "8",
            "--encoder-hidden", "8", "--latent", "4"]
    assert table.main(argv) == 0
    out = capsys.readouterr().out
    assert sorted(p.name for p in kept.iterdir()) == ["l5-s0-hybrid-w100.json", "l5-s0-labels.json"]
    for name, options in (("l5-s0-labels", "--no-ali --consistency-weight 0"),
                          ("l5-s0-hybrid-w100", "--consistency-weight 100")):
        card = json.loads((kept / f"{name}.json").read_text())
        assert card["command"].endswith(f"--label-seed 0 --seed 0 {options} --out {tmp_path / 'models' / name} "
                                        "--overwrite --verbose 0")
        assert card["metrics"]["test_accuracy"]["command"] == f"zoo eval {name}"
        error = 100 * (1 - card["metrics"]["test_accuracy"]["accuracy"])
        assert f"| `{options}` | {error:.2f} ± 0.00 | s0 {error:.2f} |" in out
    assert "all 300 test images of `digits`" in out and "No explicit hybrid cell at 5 labels per class" in out
    assert "No checkpoint card in `pretrained/cards/` records a fine-tuning at 5 labels per class." in out
    monkeypatch.setattr(zoo.cli, "main", lambda argv: 1 / 0)  # the kept cards: read, not trained again
    assert table.main(argv) == 0 and capsys.readouterr().out == out


def test_dbm_pretraining_scales_refuses_a_folder_without_stages(tmp_path, load_script, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(EXPERIMENTS))  # as when run as a script: it imports dbm_diagnostics
    script = load_script("experiments/dbm_pretraining_scales")
    assert script.main(["--stages", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no rbm1, rbm2, ... folders in" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("family", ["rbm", "dbm"])
def test_tempering_rates_script_accepts_every_swap_of_a_zero_weight_model(tmp_path, capsys, load_script, family):
    """With W = 0 every tempered distribution is the same, so every swap is accepted (rate exactly 1)."""
    from zoo.models import DBM

    if family == "rbm":
        model = RBM(4, n_visible=6, weight_stddev=0.0, seed=0)
        model.hidden_bias.assign(np.arange(4, dtype=np.float32))
    else:
        model = DBM([4, 3], n_visible=6, weight_stddev=0.0, seed=0, training_state=False)
        model.biases[1].assign(np.arange(4, dtype=np.float32))
    folder = zoo.export.save(model, tmp_path / "flat", zoo.export.make_card(model, dataset="digits"),
                             saved_model=False)
    script = load_script("experiments/tempering_rates")
    assert script.main([str(folder), "--temperatures", "3", "--min-beta", "0", "--n-chains", "5",
                        "--rounds", "4"]) == 0
    row = capsys.readouterr().out.strip().splitlines()[-1].split()
    assert row[:3] == ["3", "0", "1.000"]
    assert script.main([str(tmp_path / "missing")]) == 2
    assert script.main([str(folder), "--temperatures", "1"]) == 2
    assert "tempering_rates.py: --temperatures must be >= 2" in capsys.readouterr().err


def test_dbm_diagnostics_reports_the_parameters_and_posterior_it_reads(tmp_path, load_script, capsys):
    from zoo.models import DBM

    diagnostics = load_script("experiments/dbm_diagnostics")
    x = (np.random.default_rng(0).random((30, 6)) < 0.5).astype(np.float32)
    model = DBM([4, 3], n_visible=6, seed=0, weight_stddev=1.0, sparsity_targets=[0.2, 0.1], training_state=False)
    model(x)
    d = diagnostics.diagnose(model, x, [0.2, 0.1])
    w0 = model.kernels[0].numpy().astype(np.float64)
    assert d["sizes"] == [6, 4, 3] and d["weights"][0]["std"] == np.float64(w0.std())
    assert d["weights"][0]["top_singular_values"] == list(np.linalg.svd(w0, compute_uv=False)[:3])
    assert d["biases"][2] == {"min": 0.0, "max": 0.0, "mean": 0.0}  # zeros until trained
    means = model.mean_field(x)
    for p, m, target in zip(d["posterior"], means, (0.2, 0.1)):
        assert p["mean_activation"] == float(m.mean()) and p["target"] == target
        assert p["saturated"] == float(((m < 0.01) | (m > 0.99)).mean())
    wide = DBM([4, 3], n_visible=784, seed=0, training_state=False)
    wide(np.zeros((1, 784), np.float32))
    zoo.export.save(wide, tmp_path / "dbm", saved_model=False)
    assert diagnostics.main([str(tmp_path / "dbm"), "--examples", "5", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["examples"] == 5 and report["results"][str(tmp_path / "dbm")]["sizes"] == [784, 4, 3]
    # the quick log Z: forward AIS at each length, and the mean-field free energy of the test split
    assert diagnostics.main([str(tmp_path / "dbm"), "--examples", "5", "--ais-betas", "10", "30", "--ais-chains",
                             "3", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)["results"][str(tmp_path / "dbm")]
    assert [r["n_betas"] for r in d["log_z"]] == [10, 30] and all(r["n_chains"] == 3 for r in d["log_z"])
    split = zoo.data.load("binarized_mnist")
    assert d["log_z"][1]["log_z"] == zoo.evaluation.ais(wide, n_betas=30, n_chains=3, data=split.train.x, seed=0).log_z
    assert np.isclose(d["free_energy"], zoo.evaluation.mean_free_energy(wide, split.test.x))
    rbm = RBM(3, n_visible=784, seed=0)
    rbm(np.zeros((1, 784), np.float32))
    zoo.export.save(rbm, tmp_path / "rbm", saved_model=False)
    assert diagnostics.main([str(tmp_path / "rbm")]) == 2
    assert "is not a DBM (its model is RBM)" in capsys.readouterr().err


def test_dbm_ais_base_compares_the_visible_base_with_the_base_fitted_on_every_layer(tmp_path, load_script, capsys):
    script = load_script("experiments/dbm_ais_base")
    from zoo.models import DBM

    model = DBM([4, 3], n_visible=784, seed=0, weight_stddev=0.5, training_state=False)
    model(np.zeros((1, 784), np.float32))
    zoo.export.save(model, tmp_path / "dbm", saved_model=False)
    assert script.main([str(tmp_path / "dbm"), "--ais-betas", "10", "30", "--ais-chains", "3"]) == 0
    rows = [line.split(" | ") for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and
            line[2].isalpha() and not line.startswith("| base")]
    assert [(r[0], r[1]) for r in rows] == [("| visible", "10"), ("| visible", "30"), ("| every layer", "10"),
                                            ("| every layer", "30")]
    x = zoo.data.load("binarized_mnist").train.x
    p = np.clip(x.mean(0), 1e-3, 1 - 1e-3)
    bases = {"| visible": np.concatenate([np.log(p) - np.log1p(-p), np.zeros(7)]),
             "| every layer": model.base_parameters(x)}
    for base, n, log_z, *_ in rows:
        want = zoo.evaluation.ais(model, n_betas=int(n), n_chains=3, base=bases[base], seed=0)
        assert log_z == f"{want.log_z:.2f} +- {want.log_z_std:.2f}"
    rbm = RBM(3, n_visible=784, seed=0)
    rbm(np.zeros((1, 784), np.float32))
    zoo.export.save(rbm, tmp_path / "rbm", saved_model=False)
    assert script.main([str(tmp_path / "rbm")]) == 2
    assert "is a RBM, not a DBM" in capsys.readouterr().err
