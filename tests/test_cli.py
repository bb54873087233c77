"""The `zoo` command, run in-process: help, one-line errors with exit code 2, training, sampling, seeds,
atomic output and resuming an interrupted run."""
import json
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from zoo import cli, export, training
from zoo.cli import eval_tables

TRAIN = ["train", "rbm", "--dataset", "digits", "--allow-nonbinary", "--n-hidden", "16", "--epochs", "3",
         "--batch-size", "50", "--verbose", "0", "--seed", "0"]


def _run(capsys, args):
    code = cli.main(args)
    out, err = capsys.readouterr()
    return code, out, err


def _train(tmp_path, capsys, name="m", extra=()):
    out = tmp_path / name
    code, stdout, err = _run(capsys, TRAIN + ["--out", str(out), "--logdir", str(tmp_path / "tb" / name)] + list(extra))
    return code, out, stdout, err


def test_help_reads_well(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert "train" in text and "sample" in text
    with pytest.raises(SystemExit):
        cli.main(["train", "rbm", "--help"])
    text = capsys.readouterr().out
    for option in ("--persistent", "--cd-k", "--n-hidden", "--sparsity-target", "--max-norm", "--fast-lr",
                   "--temperatures", "--min-beta", "--centering", "--logdir"):
        assert option in text


def test_finetune_monitor_choices_are_the_library_s():
    """cli imports zoo lazily (fast --help), so it spells finetune.MONITORS out: they must agree."""
    from zoo import finetune

    finetune_parser = cli.build_parser()._subparsers._group_actions[0].choices["finetune"]
    monitor = next(a for a in finetune_parser._actions if a.dest == "monitor")
    assert tuple(monitor.choices) == finetune.MONITORS


@pytest.mark.parametrize("args, message", [
    (["train", "rbm", "--out", "x", "--n-hidden", "-3"], "--n-hidden: expected a positive integer"),
    (["train", "rbm", "--out", "x", "--dataset", "imagenet"], "unknown dataset 'imagenet'"),
    (["train", "rbm", "--out", "x", "--dataset", "digits", "--visible", "ising"], "unknown unit type 'ising'"),
    (["train", "rbm", "--out", "x", "--dataset", "digits"], "must be binary"),
    (["train", "rbm", "--out", "x", "--dataset", "digits", "--allow-nonbinary", "--batch-size", "5000"],
     "larger than the training data"),
    (["train", "rbm", "--out", "x", "--lr", "nan"], "--lr"),
    (["train", "rbm", "--out", "x", "--fast-lr", "0.01"], "set persistent=True"),
    (["train", "rbm", "--out", "x", "--temperatures", "4"], "set persistent=True"),
    (["train", "rbm", "--out", "x", "--persistent", "--temperatures", "4", "--min-beta", "1"], "min_beta"),
    (["train", "rbm"], "required: --out"),
    (["train"], "choose a model family"),
    (["sample", "no/such/folder"], "not a model folder"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_arguments_give_one_line_and_exit_2(capsys, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    code, out, err = _run(capsys, args)
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert message in err
    assert not (tmp_path / "x").exists()


def test_train_writes_a_model_folder_and_sample_draws_from_it(tmp_path, capsys):
    code, out, stdout, _ = _train(tmp_path, capsys)
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["card.json", "filters.png", "model.keras", "samples.png", "saved_model"]
    assert "tensorboard --logdir" in stdout
    card = json.loads((out / "card.json").read_text())
    assert card["command"].startswith("zoo train rbm --dataset digits") and card["seed"] == 0
    assert card["image_shape"] == [8, 8] and card["config"]["n_hidden"] == 16
    assert list((tmp_path / "tb" / "m").glob("events.out.tfevents.*"))
    assert not (tmp_path / "m.backup").exists()

    png = tmp_path / "s.png"
    code, stdout, _ = _run(capsys, ["sample", str(out), "--n", "9", "--steps", "10", "--out", str(png)])
    assert code == 0
    image = tf.io.decode_png(png.read_bytes()).numpy()
    assert image.shape == (3 * 9 + 1, 3 * 9 + 1, 1)

    code, _, err = _run(capsys, ["sample", str(out), "--out", str(tmp_path / "s.jpg")])
    assert code == 2 and ".png" in err
    code, _, _, err = _train(tmp_path, capsys)  # the folder exists now
    assert code == 2 and "already exists" in err
    (out / "card.json").write_text("{not json")
    code, _, err = _run(capsys, ["sample", str(out)])
    assert code == 2 and "does not parse" in err


def test_a_seed_reproduces_the_weights(tmp_path, capsys):
    kernels = []
    for name in ("a", "b"):
        code, out, _, _ = _train(tmp_path, capsys, name, ["--persistent"])
        assert code == 0
        kernels.append(keras.models.load_model(out / "model.keras").kernel.numpy())
    np.testing.assert_array_equal(kernels[0], kernels[1])


def test_a_failed_run_leaves_no_model_folder(tmp_path, capsys, stop_after_epoch):
    """An unexpected error propagates; no half-written model folder stays, only the backup of the finished epoch."""
    stop_after_epoch(0, RuntimeError("disk on fire"))
    with pytest.raises(RuntimeError, match="disk on fire"):
        _train(tmp_path, capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.backup", "tb"]


def test_an_interrupted_run_resumes_with_the_same_command(tmp_path, capsys, monkeypatch, stop_after_epoch):
    stop_after_epoch(1)
    code, out, _, err = _train(tmp_path, capsys)
    assert code == 130 and "resume" in err
    assert not out.exists() and (tmp_path / "m.backup").is_dir()

    code, _, _, err = _train(tmp_path, capsys, extra=["--lr", "0.01"])  # other settings: refused
    assert code == 2 and "interrupted run with other settings" in err

    stop_after_epoch(None)
    epochs_run = []
    monkeypatch.setattr(training.RaiseOnNaN, "on_epoch_begin", lambda self, epoch, logs=None: epochs_run.append(epoch),
                        raising=False)
    code, out, _, err = _train(tmp_path, capsys)
    assert code == 0 and "resuming the interrupted run" in err
    assert epochs_run == [2]  # only the epoch that was lost
    assert (out / "model.keras").is_file() and not (tmp_path / "m.backup").exists()


@pytest.mark.parametrize("error, kept", [(ValueError("a monitor failed"), True),
                                         (FloatingPointError("training diverged at epoch 2"), False)])
def test_a_run_stopped_by_an_error_keeps_its_epochs_unless_it_diverged(tmp_path, capsys, stop_after_epoch, error,
                                                                        kept):
    """An error in a callback after epoch 2 (the DBM's log Z monitor once failed so, 40 epochs in) leaves the
    backup, and the same command resumes at epoch 3; a divergence removes it (its last weights may be NaN)."""
    stop_after_epoch(1, error)
    code, out, _, err = _train(tmp_path, capsys)
    assert code == 2 and str(error) in err and not out.exists()
    assert (tmp_path / "m.backup").is_dir() == kept and ("run the same command again" in err) == kept
    if kept:
        stop_after_epoch(None)
        code, out, _, err = _train(tmp_path, capsys)
        assert code == 0 and "resuming the interrupted run" in err


def test_a_run_that_fails_before_its_first_epoch_ends_leaves_no_backup(tmp_path, capsys, monkeypatch):
    """Nothing finished, nothing to resume: the backup goes, so that corrected settings are not refused."""
    def fail(self, batch, logs=None):
        raise ValueError("the first step failed")

    monkeypatch.setattr(training.RaiseOnNaN, "on_train_batch_end", fail, raising=False)
    code, out, _, err = _train(tmp_path, capsys)
    assert code == 2 and err.strip().splitlines() == ["zoo: error: the first step failed"]
    assert not (tmp_path / "m.backup").exists()  # so that a run with corrected settings is not refused


def test_train_with_parallel_tempering(tmp_path, capsys):
    code, out, _, err = _train(tmp_path, capsys, extra=["--persistent", "--temperatures", "3", "--min-beta", "0.5"])
    assert code == 0, err
    card = json.loads((out / "card.json").read_text())
    assert card["config"]["n_temperatures"] == 3 and card["config"]["min_beta"] == 0.5
    assert "--temperatures 3 --min-beta 0.5" in card["command"]


def test_train_with_centering(tmp_path, capsys):
    code, out, _, err = _train(tmp_path, capsys, extra=["--persistent", "--centering", "--centering-rate", "0.05"])
    assert code == 0, err
    card = json.loads((out / "card.json").read_text())
    assert card["config"]["centering"] and card["config"]["centering_rate"] == 0.05
    assert "--centering --centering-rate 0.05" in card["command"]


def test_a_failure_after_training_keeps_the_trained_model(tmp_path, capsys, monkeypatch):
    from zoo.models import RBM

    def broken_sample(self, *args, **kwargs):
        raise ValueError("sampling broke")
    monkeypatch.setattr(RBM, "sample", broken_sample)
    code, out, _, err = _train(tmp_path, capsys)
    assert code == 2 and "sampling broke" in err and not out.exists()
    assert (tmp_path / "m.backup" / "trained.keras").is_file()

    monkeypatch.undo()
    monkeypatch.setattr(RBM, "fit", lambda *a, **k: pytest.fail("the finished training ran again"))
    code, out, _, err = _train(tmp_path, capsys)
    assert code == 0 and "training had finished" in err
    assert (out / "model.keras").is_file() and not (tmp_path / "m.backup").exists()


def test_dynamic_binarization_and_schedules(tmp_path, capsys):
    args = ["train", "rbm", "--dataset", "digits", "--dynamic-binarization", "--n-hidden", "8", "--epochs", "2",
            "--batch-size", "100", "--verbose", "0", "--seed", "1", "--cd-k", "1", "--cd-k-final", "3",
            "--lr-final", "0.001", "--momentum", "0.5", "--out", str(tmp_path / "d"),
            "--logdir", str(tmp_path / "tb")]
    code, stdout, err = _run(capsys, args)
    assert code == 0, err
    model = keras.models.load_model(tmp_path / "d" / "model.keras")
    assert int(model.cd_k.numpy()) == 3
    card = json.loads((tmp_path / "d" / "card.json").read_text())
    assert card["binarization"].startswith("dynamic")

    # the pipeline path honours --no-visible-bias-init too (a zero rate keeps the start)
    code, _, err = _run(capsys, ["train", "rbm", "--dataset", "digits", "--dynamic-binarization", "--n-hidden", "8",
                                 "--epochs", "1", "--verbose", "0", "--seed", "1", "--no-visible-bias-init", "--lr",
                                 "0", "--out", str(tmp_path / "z"), "--logdir", str(tmp_path / "tb")])
    assert code == 0, err
    assert not np.any(keras.models.load_model(tmp_path / "z" / "model.keras").visible_bias.numpy())


def test_init_from_continues_a_trained_model(tmp_path, capsys):
    code, first, _, err = _train(tmp_path, capsys, name="first")
    assert code == 0, err
    # with a zero learning rate the continued model is the model it started from
    code, out, _, err = _train(tmp_path, capsys, name="second", extra=["--init-from", str(first), "--lr", "0"])
    assert code == 0, err
    start, continued = (keras.models.load_model(f / "model.keras") for f in (first, out))
    for name in ("kernel", "visible_bias", "hidden_bias"):
        np.testing.assert_array_equal(getattr(continued, name).numpy(), getattr(start, name).numpy())
    card = json.loads((out / "card.json").read_text())
    assert card["initialized_from"]["model"] == str(first)
    assert card["initialized_from"]["command"] == json.loads((first / "card.json").read_text())["command"]
    # the stages as data: the start's command (and the folder it was continued from), then this run's
    assert [(s["stage"], s["command"]) for s in card["lineage"]] == [
        (1, json.loads((first / "card.json").read_text())["command"]), (2, card["command"])]
    assert card["lineage"][0]["model"] == str(first) and card["lineage"][1]["epochs"] == 3
    code, _, err = _run(capsys, ["eval", str(out), "--ais-betas", "50", "--ais-chains", "8",
                                "--reverse-examples", "4", "--write-card"])
    assert code == 0, err
    card = json.loads((out / "card.json").read_text())
    assert card["lineage"][1]["result"]["test_nll"] == [card["metrics"]["test_nll"]["lower"],
                                                        card["metrics"]["test_nll"]["upper"]]
    assert card["lineage"][1]["eval_command"] == card["metrics"]["command"]

    code, _, _, err = _train(tmp_path, capsys, name="wider", extra=["--init-from", str(first), "--n-hidden", "20"])
    assert code == 2 and "does not match this one" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "wider").exists()
    code, _, _, err = _train(tmp_path, capsys, name="none", extra=["--init-from", str(tmp_path / "nothing")])
    assert code == 2 and "nothing" in err and not (tmp_path / "none").exists()


def test_an_unwritable_output_folder_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code, _, _, err = _train(tmp_path, capsys, name="file/m")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "zoo: error:" in err


# ---- zoo eval: a tiny RBM on digits, small enough for exact log Z (8 hidden units: 256 states)

EVAL = ["--ais-betas", "200", "--ais-chains", "16", "--reverse-examples", "10"]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    args = ["train", "rbm", "--dataset", "digits", "--allow-nonbinary", "--n-hidden", "8", "--epochs", "2",
            "--batch-size", "50", "--verbose", "0", "--seed", "0", "--log-z-every", "1",
            "--out", str(root / "tiny"), "--logdir", str(root / "tb")]
    assert cli.main(args) == 0
    return root / "tiny"


def _exact_log_z(folder):
    from zoo import evaluation, export
    return evaluation.exact_log_partition(export.load_folder(folder)[0])


def test_train_with_log_z_every_records_the_bracket(tiny_model):
    final = json.loads((tiny_model / "card.json").read_text())["final_metrics"]
    for name in ("log_z/forward", "log_z/reverse", "log_z/ess", "validation_nll/lower", "validation_nll/upper"):
        assert np.isfinite(final[name]), name


def test_eval_json_agrees_with_exact_log_z(tiny_model, capsys):
    code, out, err = _run(capsys, ["eval", str(tiny_model), "--json"] + EVAL)
    assert code == 0, err
    assert "forward AIS:" not in err  # progress only on a terminal
    report = json.loads(out)
    assert report["dataset"] == "digits"  # from the card
    assert (report["n_train"], report["n_test"]) == (1197, 300)
    exact, forward = report["log_z_exact"], report["forward"]
    assert abs(report["log_z_forward"] - exact) < 4 * forward["log_z_std"] + 1e-3
    assert report["log_z_reverse"] == pytest.approx(exact, abs=0.05)
    for split in ("train", "test"):
        nll = report["nll"][split]
        assert nll["lower"] <= nll["upper"] + 0.05 and nll["exact"] == pytest.approx(nll["lower"], abs=0.05)
    settings = forward["settings"]
    assert (settings["n_betas"], settings["n_chains"], settings["base"], settings["seed"]) == (200, 16, "data", 0)
    assert report["reverse"]["settings"]["n_examples"] == 10 and report["seconds"] > 0


def test_eval_write_card_records_metrics_and_the_command(tiny_model, tmp_path, capsys):
    import shutil
    folder = tmp_path / "tiny-copy"
    shutil.copytree(tiny_model, folder)
    code, out, err = _run(capsys, ["eval", str(folder), "--json", "--write-card"] + EVAL)
    assert code == 0, err
    report = json.loads(out)
    metrics = json.loads((folder / "card.json").read_text())["metrics"]
    assert metrics["test_nll"] == report["nll"]["test"] and metrics["log_z"]["forward"] == report["log_z_forward"]
    assert metrics["settings"]["forward"]["n_betas"] == 200
    assert metrics["command"] == "zoo eval tiny-copy --json " + " ".join(EVAL)
    code, _, err = _run(capsys, ["eval", "some-name", "--write-card"] + EVAL)
    assert code == 2 and len(err.strip().splitlines()) == 1


def test_eval_prints_a_table(tiny_model, capsys):
    code, out, err = _run(capsys, ["eval", str(tiny_model), "--exact", "--reverse-betas", "100",
                                   "--base", "uniform", "--dtype", "float32", "--seed", "3"] + EVAL)
    assert code == 0, err
    for text in ("forward AIS", "reverse (RAISE)", "exact", "log(Z-3sd)", "ESS", "NLL (nats/example)",
                 "train", "test", "200 betas", "16 chains", "base uniform", "float32", "seed 3",
                 "RAISE 100 betas on 10 test examples", "time"):
        assert text in out, text
    exact_row = next(line for line in out.splitlines() if line.startswith("exact"))
    assert float(exact_row.split()[1]) == pytest.approx(_exact_log_z(tiny_model), abs=1e-3)

    assert "drift" in out and "convergence check" not in err  # the check's line; progress only on a terminal
    # one chain has no error bar: refused; one reverse example: no standard error, shown as such
    code, out, err = _run(capsys, ["eval", str(tiny_model), "--ais-betas", "50", "--ais-chains", "1"])
    assert code == 2 and "--ais-chains: expected an integer >= 2" in err and len(err.splitlines()) == 1
    code, out, err = _run(capsys, ["eval", str(tiny_model), "--ais-betas", "50", "--ais-chains", "2",
                                   "--reverse-examples", "1"])
    assert code == 0, err
    assert "+- inf" in out and "forward AIS, shorter" in out and "10 betas" in out  # a fifth of 50
    code, out, err = _run(capsys, ["eval", str(tiny_model), "--split", "validation"])
    assert code == 2 and "--split validation is for latent-variable models" in err and len(err.splitlines()) == 1


def test_eval_exact_on_a_large_model_names_ais(tmp_path, capsys):
    from zoo import export
    from zoo.models import RBM

    from zoo.units import BernoulliUnits

    model = RBM(30, visible=BernoulliUnits(allow_nonbinary=True), n_visible=64, seed=0)  # 2^30 and 2^64 states
    export.save(model, tmp_path / "big", export.make_card(model, dataset="digits", image_shape=[8, 8]))
    code, out, err = _run(capsys, ["eval", str(tmp_path / "big"), "--exact"] + EVAL)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "too large for exact enumeration" in err
    assert "drop --exact to estimate log Z by AIS" in err


def test_eval_on_data_the_model_cannot_take(tmp_path, capsys):
    from zoo import export
    from zoo.models import RBM

    model = RBM(4, n_visible=10, seed=0)
    export.save(model, tmp_path / "m", export.make_card(model, dataset="digits"))
    code, out, err = _run(capsys, ["eval", str(tmp_path / "m")] + EVAL)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "10 visible units but dataset 'digits' has 64 features" in err

    model = RBM(4, n_visible=64, seed=0)  # binary units without --allow-nonbinary: digits are grey
    export.save(model, tmp_path / "b", export.make_card(model, dataset="digits"))
    code, out, err = _run(capsys, ["eval", str(tmp_path / "b")] + EVAL)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "dataset 'digits' (train split) must be binary" in err


@pytest.mark.parametrize("args, message", [
    (["--ais-betas", "1"], "--ais-betas: expected an integer >= 2"),
    (["--reverse-betas", "0"], "--reverse-betas: expected an integer >= 2"),
    (["--ais-chains", "0"], "--ais-chains: expected an integer >= 2"),
    (["--reverse-examples", "-1"], "--reverse-examples: expected a positive integer"),
    (["--base", "gaussian"], "invalid choice"),
    (["--dtype", "float16"], "invalid choice"),
    (["--dataset", "imagenet"], "unknown dataset 'imagenet'"),
])
def test_eval_bad_arguments_give_one_line_and_exit_2(tiny_model, capsys, args, message):
    code, out, err = _run(capsys, ["eval", str(tiny_model)] + EVAL + args)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert message in err


def test_eval_of_a_missing_folder(tmp_path, capsys):
    code, _, err = _run(capsys, ["eval", str(tmp_path / "nothing")])
    assert code == 2 and len(err.strip().splitlines()) == 1 and "not a model folder" in err


def test_eval_progress_rewrites_one_line_per_run():
    import io

    stream = io.StringIO()
    progress = eval_tables.Progress(stream, check=False)
    for done, total in ((500, 1000), (1000, 1000), (500, 600), (600, 600)):
        progress(done, total)
    assert stream.getvalue().split("\n") == [
        "\rforward AIS: 500/1000 steps\rforward AIS: 1000/1000 steps",
        "\rreverse AIS (RAISE): 500/600 steps\rreverse AIS (RAISE): 600/600 steps", ""]
    stream = io.StringIO()
    progress = eval_tables.Progress(stream)  # the convergence check's shorter run comes first
    for done, total in ((200, 200), (1000, 1000), (600, 600)):
        progress(done, total)
    assert stream.getvalue().split("\n") == [
        "\rforward AIS (convergence check): 200/200 steps", "\rforward AIS: 1000/1000 steps",
        "\rreverse AIS (RAISE): 600/600 steps", ""]


@pytest.fixture(scope="module")
def classifier_folder(tmp_path_factory):
    """A fine-tuned classifier's folder: a model that can classify and encode, but not sample or be evaluated."""
    from zoo import export, finetune
    from zoo.models import RBM
    root = tmp_path_factory.mktemp("classifier")
    classifier = finetune.build_classifier(RBM(8, n_visible=64, seed=0), n_classes=10)
    return export.save(classifier, root / "clf", export.make_card(classifier, dataset="digits", image_shape=[8, 8]))


@pytest.mark.parametrize("command, message", [
    (["inpaint"], "Classifier cannot inpaint: that needs a model with the capability inpainter; Classifier offers"),
    (["sample"], "Classifier cannot sample: that needs a model with the capability sampler; Classifier offers"),
    (["train", "rbm", "--dataset", "digits", "--allow-nonbinary", "--epochs", "1", "--init-from"],
     "can only copy the parameters of an RBM, got Classifier"),
])
def test_a_model_without_the_capability_is_one_line(classifier_folder, command, message, capsys, tmp_path):
    args = command + [str(classifier_folder)]
    if command[0] == "train":
        args += ["--out", str(tmp_path / "x")]
    code, out, err = _run(capsys, args)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert message in err
    if command[0] != "train":  # the one line names what the model can do
        assert "classifier (class predictions)" in err and "encoder (zoo finetune)" in err
    assert not (tmp_path / "x").exists()


def test_eval_of_a_classifier_is_its_accuracy_and_one_line_on_the_likelihood(classifier_folder, capsys):
    from zoo import data, export

    model, _ = export.load_folder(classifier_folder)
    test = data.load("digits").test
    accuracy = float((model.predict_classes(test.x) == test.y).mean())
    code, out, err = _run(capsys, ["eval", str(classifier_folder), "--json"])
    report = json.loads(out)
    assert code == 0 and report["accuracy"] == pytest.approx(accuracy) and report["log_likelihood"] is None
    assert report["note"].startswith("no likelihood: Classifier is a classifier, not a model of the data's density")


def test_eval_of_a_latent_variable_model_reports_each_k(tmp_path, capsys, toy_latent_class):
    from zoo import export
    toy = toy_latent_class(n_visible=64, n_latent=4, scale=0.3, seed=0)
    folder = export.save(toy, tmp_path / "toy", export.make_card(toy, dataset="digits", image_shape=[8, 8]),
                         saved_model=False)
    code, out, err = _run(capsys, ["eval", str(folder), "--k", "1", "10", "--json", "--write-card"])
    assert code == 0, err
    report = json.loads(out)
    assert report["kind"] == "stochastic lower bound" and [r["k"] for r in report["results"]] == [1, 10]
    assert report["n_test"] == 300 and "K = 10: test NLL" in err
    metrics = json.loads((folder / "card.json").read_text())["metrics"]
    assert metrics["test_nll_by_k"]["10"]["nll"] == report["results"][1]["nll"]
    assert metrics["command"].startswith("zoo eval toy --k 1 10 --json")
    # a larger K on fewer examples adds to the card, each K with the command and examples that measured it
    code, out, err = _run(capsys, ["eval", str(folder), "--k", "100", "--test-examples", "50", "--write-card"])
    assert code == 0, err
    metrics = json.loads((folder / "card.json").read_text())["metrics"]
    assert list(metrics["test_nll_by_k"]) == ["1", "10", "100"]
    assert metrics["test_nll_by_k"]["100"]["n_examples"] == 50 and metrics["test_nll_by_k"]["1"]["n_examples"] == 300
    assert metrics["test_nll_by_k"]["100"]["command"].endswith("--k 100 --test-examples 50")
    from zoo import pages
    assert "test_nll K=100" in pages.describe_metrics(metrics) and "(50 examples)" in pages.describe_metrics(metrics)
    code, out, err = _run(capsys, ["sample", str(folder), "--n", "4", "--out", str(tmp_path / "s.png")])
    assert code == 0 and (tmp_path / "s.png").is_file() and "Gibbs" not in out
    code, out, err = _run(capsys, ["sample", str(folder), "--steps", "5", "--out", str(tmp_path / "t.png")])
    assert code == 2 and "ToyHelmholtz samples without a Markov chain: --steps does not apply" in err
    assert not (tmp_path / "t.png").exists()
    code, out, err = _run(capsys, ["eval", str(folder), "--k", "1"])
    assert code == 0, err
    assert out.splitlines()[-2].split()[0] == "1" and len(out.splitlines()[-2].split()) == 5
    # the validation split, for choosing settings: the first N validation examples, never written to the card
    code, out, err = _run(capsys, ["eval", str(folder), "--k", "10", "--split", "validation", "--test-examples", "20",
                                   "--json"])
    assert code == 0, err
    report = json.loads(out)
    assert report["split"] == "validation" and report["n_validation"] == 300 and report["n_examples"] == 20
    assert "K = 10: validation NLL" in err
    from zoo import data, evaluation
    direct = evaluation.importance.log_likelihood(toy, data.load("digits").validation.x[:20], k=10, seed=0)
    assert report["results"][0]["nll"] == pytest.approx(direct.nll, rel=1e-6)
    before = (folder / "card.json").read_text()
    code, out, err = _run(capsys, ["eval", str(folder), "--split", "validation", "--write-card"])
    assert code == 2 and "--write-card records the test split" in err and (folder / "card.json").read_text() == before
    # the table shows what JSON carries for an infinite error (one test example) or a NaN
    number = eval_tables.number
    assert (number("inf", 6, 1), number(None, 6, 1), number(2.25, 6, 1)) == ("   inf", "     -", "   2.2")


@pytest.fixture(scope="module")
def broken_folders(tmp_path_factory, classifier_folder):
    """Folders that are not models: empty, a card that does not parse, a model file that is not a model."""
    root = tmp_path_factory.mktemp("broken")
    (root / "empty").mkdir()
    bad_card = root / "bad-card"
    shutil.copytree(classifier_folder, bad_card)
    (bad_card / "card.json").write_text("{not json")
    bad_model = root / "bad-model"
    shutil.copytree(classifier_folder, bad_model)
    (bad_model / "model.keras").write_bytes(b"not a zip")
    return root


SUBCOMMANDS = [["eval"], ["sample"], ["finetune", "--labels-per-class", "1", "--seeds", "1"],
               ["train", "rbm", "--dataset", "digits", "--allow-nonbinary", "--epochs", "1", "--init-from"]]


@pytest.mark.parametrize("command", SUBCOMMANDS, ids=lambda c: c[0])
@pytest.mark.parametrize("folder, message", [("empty", "missing model.keras"), ("bad-card", "does not parse as JSON"),
                                             ("bad-model", "could not be loaded")])
def test_no_subcommand_gives_a_traceback_for_a_folder_that_is_not_a_model(broken_folders, command, folder, message,
                                                                           capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = command + [str(broken_folders / folder)]
    if command[0] == "train":
        args += ["--out", "x"]
    code, out, err = _run(capsys, args)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert message in err
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written, not even TensorBoard logs


def test_an_unknown_family_is_one_line(capsys):
    code, out, err = _run(capsys, ["train", "ising", "--out", "x"])
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "invalid choice: 'ising'" in err and "rbm" in err


def test_a_new_family_plugs_into_the_run_manager(tmp_path, capsys, monkeypatch):
    """A family contributes its arguments and its builder; the folder, card, samples, TensorBoard logs and
    resuming come from the run manager."""
    from zoo.cli import family, train

    class TinyFamily(family.Family):
        name, help = "tiny", "a one-option family for this test"

        def add_arguments(self, parser):
            parser.add_argument_group("model").add_argument("--width", type=int, default=4)

        def build(self, args, dataset):
            from zoo import units
            from zoo.models import RBM
            return RBM(args.width, visible=units.BernoulliUnits(allow_nonbinary=True),
                       n_visible=dataset.n_features, seed=args.seed)

    monkeypatch.setitem(train.families(), "tiny", TinyFamily())
    out = tmp_path / "tiny"
    args = ["train", "tiny", "--dataset", "digits", "--width", "3", "--epochs", "1", "--batch-size", "100",
            "--verbose", "0", "--seed", "0", "--out", str(out), "--logdir", str(tmp_path / "tb")]
    code, stdout, err = _run(capsys, args)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["card.json", "model.keras", "samples.png", "saved_model"]
    card = json.loads((out / "card.json").read_text())
    assert card["command"] == "zoo " + " ".join(args) and card["config"]["n_hidden"] == 3
    assert any((tmp_path / "tb").rglob("events.out.tfevents.*"))
    code, _, err = _run(capsys, ["train", "tiny", "--help-me", "--out", "x"])
    assert code == 2 and "unrecognized arguments: --help-me" in err


def test_train_helmholtz_writes_a_model_folder_and_continues_it(tmp_path, capsys):
    out = tmp_path / "hm"
    args = ["train", "helmholtz", "--dataset", "digits", "--dynamic-binarization", "--layers", "8", "4", "--k", "3",
            "--epochs", "2", "--batch-size", "100", "--lr", "0.01", "--verbose", "0", "--seed", "0", "--out", str(out),
            "--logdir", str(tmp_path / "tb")]
    code, stdout, err = _run(capsys, args)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["card.json", "model.keras", "samples.png", "saved_model"]
    card = json.loads((out / "card.json").read_text())
    assert card["model"] == "HelmholtzMachine" and card["config"]["layers"] == [8, 4] and card["config"]["k"] == 3
    assert {"val_bound_1", "val_bound_3", "val_ess", "bound"} <= set(card["final_metrics"])
    code, _, err = _run(capsys, ["train", "helmholtz", "--dataset", "digits", "--p-layers", "ising", "--out", "x"])
    assert code == 2 and "--p-layers: invalid choice: 'ising'" in err
    code, _, err = _run(capsys, ["train", "helmholtz", "--dataset", "digits", "--k", "0", "--out", "x"])
    assert code == 2 and "--k: expected a positive integer" in err
    # continuing it (same layers) and refusing another shape, in one line
    code, _, err = _run(capsys, args[:-4] + ["--init-from", str(out), "--epochs", "1", "--out", str(tmp_path / "hm2")])
    assert code == 0, err
    code, _, err = _run(capsys, ["train", "helmholtz", "--dataset", "digits", "--dynamic-binarization", "--layers",
                                 "9", "--init-from", str(out), "--out", str(tmp_path / "hm3")])
    assert code == 2 and "does not match this model" in err and not (tmp_path / "hm3").exists()


def test_bihm_trains_samples_inpaints_and_evaluates(tmp_path, capsys):
    from PIL import Image

    out = tmp_path / "bihm"
    args = ["train", "bihm", "--dataset", "binarized_mnist", "--layers", "6", "3", "--k", "3", "--epochs", "1",
            "--batch-size", "500", "--verbose", "0", "--seed", "0", "--out", str(out), "--logdir", str(tmp_path / "tb")]
    code, _, err = _run(capsys, args + ["--sample-steps", "5"])  # samples.png from a short chain: a test, not a picture
    assert code == 0, err
    card = json.loads((out / "card.json").read_text())
    assert card["model"] == "BiHM" and "q_update" not in card["config"] and (out / "samples.png").is_file()
    code, _, err = _run(capsys, ["train", "bihm", "--q-update", "wake", "--out", str(tmp_path / "x")])
    assert code == 2 and "unrecognized arguments: --q-update" in err
    # samples of p* after a chain, with the chain as a GIF
    code, stdout, err = _run(capsys, ["sample", str(out), "--n", "4", "--steps", "3", "--out", str(tmp_path / "s.png"),
                                      "--gif", str(tmp_path / "s.gif")])
    assert code == 0, err
    assert Image.open(tmp_path / "s.gif").n_frames == 4  # the start and one frame per step
    # inpainting: one row per image, the image, its known pixels, then the chains
    code, stdout, err = _run(capsys, ["inpaint", str(out), "--mask", "bottom", "--n", "2", "--chains", "3", "--steps",
                                      "2", "--out", str(tmp_path / "i.png"), "--gif", str(tmp_path / "i.gif")])
    assert code == 0, err
    width, height = Image.open(tmp_path / "i.png").size
    assert (width, height) == (5 * 29 + 1, 2 * 29 + 1)
    for bad, message in [(["--mask", "diagonal"], "unknown mask 'diagonal'"), (["--steps", "0"], "--steps: expected"),
                         (["--chains", "0"], "--chains: expected"), (["--n", "20000"], "more than the 10000 test"),
                         (["--out", str(tmp_path / "i.jpg")], "--out must name a .png"),
                         (["--mask", str(tmp_path / "missing.npy")], "cannot read the mask")]:
        code, _, err = _run(capsys, ["inpaint", str(out), *bad])
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, (bad, err)
    np.save(tmp_path / "small.npy", np.ones(10))
    code, _, err = _run(capsys, ["inpaint", str(out), "--mask", str(tmp_path / "small.npy")])
    assert code == 2 and "has 10 pixels, the model 784" in err
    np.save(tmp_path / "full.npy", np.ones((28, 28)))
    code, _, err = _run(capsys, ["inpaint", str(out), "--mask", str(tmp_path / "full.npy")])
    assert code == 2 and "no unknown pixel" in err
    # log Z and log p*, with p's own NLL beside, written to the card
    code, stdout, err = _run(capsys, ["eval", str(out), "--k", "1", "10", "--test-examples", "20", "--z-samples",
                                      "2000", "--json", "--write-card"])
    assert code == 0, err
    report = json.loads(stdout)
    assert report["kind"] == "mixed estimate" and report["log_z"]["n_samples"] == 2000
    assert [set(r) >= {"nll", "p_nll", "p_ess", "log_p_tilde"} for r in report["results"]] == [True, True]
    metrics = json.loads((out / "card.json").read_text())["metrics"]
    assert metrics["log_z"]["log_z"] == report["log_z"]["log_z"] and "p_nll" in metrics["test_nll_by_k"]["10"]
    assert not (out / ".eval-progress").exists()  # kept while the estimates ran, removed when they were done
    code, stdout, err = _run(capsys, ["eval", str(out), "--k", "5", "--test-examples", "5", "--z-samples", "100"])
    assert code == 0 and "log Z" in stdout and "p NLL" in stdout
    # a larger K later, with the card's log Z instead of a new estimate: the card keeps both K and log Z's command
    code, stdout, err = _run(capsys, ["eval", str(out), "--k", "20", "--test-examples", "20", "--z-from-card", "--json",
                                      "--write-card"])
    assert code == 0 and "log Z from the card" in err, err
    again = json.loads(stdout)
    assert again["log_z"]["log_z"] == report["log_z"]["log_z"] and again["log_z"]["n_samples"] == 2000
    assert again["results"][0]["nll"] == pytest.approx(-again["results"][0]["log_p_tilde"] + report["log_z"]["log_z"])
    card_metrics = json.loads((out / "card.json").read_text())["metrics"]
    assert set(card_metrics["test_nll_by_k"]) == {"1", "10", "20"}
    assert card_metrics["log_z"]["command"] == metrics["log_z"]["command"]
    # a model that cannot inpaint, in one line
    hm = tmp_path / "hm"
    code, _, err = _run(capsys, ["train", "helmholtz", *args[2:-4], "--out", str(hm), "--logdir", str(tmp_path / "tb2")])
    assert code == 0, err
    code, _, err = _run(capsys, ["inpaint", str(hm)])
    assert code == 2 and "HelmholtzMachine cannot inpaint" in err
    code, _, err = _run(capsys, ["eval", str(hm), "--k", "2", "--z-from-card"])
    assert code == 2 and "HelmholtzMachine cannot use a log Z from its card" in err
    code, _, err = _run(capsys, ["sample", str(hm), "--gif", str(tmp_path / "h.gif")])
    assert code == 2 and "no chain to animate" in err


def test_dbm_pretrains_trains_resumes_evaluates_and_fine_tunes(tmp_path, capsys):
    out = tmp_path / "dbm"
    args = ["train", "dbm", "--layers", "12", "6", "--pretrain-epochs", "1", "1", "--pretrain-cd-k-final", "2",
            "--epochs", "1", "--batch-size", "500", "--mean-field-steps", "5", "--gibbs-steps", "2", "--n-chains", "20",
            "--temperatures", "3", "--min-beta", "0.5",
            "--sparsity-targets", "0.2", "0.1", "--sparsity-cost", "0.001", "--log-z-every", "1", "--verbose", "0",
            "--seed", "0", "--out", str(out), "--logdir", str(tmp_path / "tb")]
    code, _, err = _run(capsys, args)
    assert code == 0, err
    card = json.loads((out / "card.json").read_text())
    assert card["model"] == "DBM" and card["config"]["layers"] == [12, 6]
    assert (card["config"]["n_temperatures"], card["config"]["min_beta"]) == (3, 0.5)  # parallel tempering
    assert "--temperatures 3 --min-beta 0.5" in card["command"] and 0 <= card["final_metrics"]["swap_rate"] <= 1
    assert {"mean_field_free_energy", "mean_field_steps", "log_z/forward", "log_z/reverse"} <= set(card["final_metrics"])
    assert (out / "filters.png").is_file() and (tmp_path / "dbm.pretrain" / "rbm2" / "model.keras").is_file()
    stage = json.loads((tmp_path / "dbm.pretrain" / "rbm1" / "card.json").read_text())["config"]
    assert stage["sample_visible"] and stage["up_scale"] == 2.0  # the MATLAB code's sampled negative data
    # run again after the folder is gone (say, interrupted in the joint training): the stages are loaded
    first = json.loads((out / "card.json").read_text())["final_metrics"]
    shutil.rmtree(out)
    code, _, err = _run(capsys, args)
    assert code == 0 and "pretraining stage 1 found" in err and "pretraining stage 2 found" in err, err
    assert json.loads((out / "card.json").read_text())["final_metrics"] == first
    # measured both ways: exact log Z (6 top units with 784 visible: the odd parity has 12 units) between them
    # (unchecked: 16 chains of 500 temperatures do not converge on this machine, as the check would say)
    code, stdout, err = _run(capsys, ["eval", str(out), "--ais-betas", "500", "--ais-chains", "16", "--reverse-examples",
                                      "16", "--burn-in", "20", "--check-betas", "0", "--json", "--write-card"])
    assert code == 0, err
    report = json.loads(stdout)
    assert report["kind"] == "bound bracket" and report["reverse"]["settings"]["burn_in"] == 20
    assert report["log_z_exact"] is not None and report["nll"]["test"]["exact"] >= 0
    code, stdout, err = _run(capsys, ["sample", str(out), "--n", "4", "--steps", "3", "--out", str(tmp_path / "s.png")])
    assert code == 0, err
    code, stdout, err = _run(capsys, ["finetune", str(out), "--labels-per-class", "1", "--seeds", "1", "--epochs", "2",
                                      "--json"])
    assert code == 0, err
    assert json.loads(stdout)["settings"]["encoder"] == "784-12-6"
    for bad, message in [(["--pretrain-epochs", "1"], "one number per hidden layer (2)"),
                         (["--layers", "0"], "--layers: expected a positive integer"),
                         (["--top", "gaussian"], "--top: invalid choice"),
                         (["--sparsity-targets", "0.1"], "one target per hidden layer"),
                         (["--temperatures", "3", "--min-beta", "1"], "min_beta must be in [0, 1)")]:
        code, _, err = _run(capsys, ["train", "dbm", "--layers", "12", "6", *bad, "--out", str(tmp_path / "bad")])
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, (bad, err)
        assert not (tmp_path / "bad").exists()


def test_hybrid_with_a_class_latent_adgm_trains_and_evaluates(tmp_path, capsys):
    out = tmp_path / "m2"
    code, _, err = _run(capsys, ["train", "hybrid", "--generative", "adgm", "--class-latent", "--latent", "3",
                                 "--auxiliary", "3", "--generative-hidden", "16", "--hidden", "16",
                                 "--labels-per-class", "5", "--epochs", "1", "--batch-size", "500", "--verbose", "0",
                                 "--seed", "0", "--out", str(out), "--logdir", str(tmp_path / "tb")])
    assert code == 0, err
    model, _ = export.load_folder(out)
    assert model.generative.n_classes == 10 and "class y of 10" in model.describe()
    code, stdout, err = _run(capsys, ["eval", str(out), "--k", "2", "--test-examples", "100", "--json"])
    assert code == 0, err
    assert np.isfinite(json.loads(stdout)["results"][0]["log_likelihood"])


def test_hybrid_trains_with_all_labels(tmp_path, capsys):
    out = tmp_path / "all"
    code, _, err = _run(capsys, ["train", "hybrid", "--generative", "helmholtz", "--layers", "8", "4", "--k", "2",
                                 "--hidden", "16", "--labels-per-class", "all", "--epochs", "1", "--batch-size", "500",
                                 "--verbose", "0", "--seed", "0", "--out", str(out), "--logdir", str(tmp_path / "tb")])
    assert code == 0, err
    assert "50000 labelled training images (500 a batch), 10000 labelled for validation, no unlabelled rows" in err
    metrics = json.loads((out / "card.json").read_text())["final_metrics"]
    assert metrics["labelled_fraction"] == 1 and "unlabelled_accuracy" not in metrics and "sup_weight" in metrics


def test_hybrid_trains_semi_supervised_evaluates_and_starts_from_a_generative_model(tmp_path, capsys):
    out = tmp_path / "hybrid"
    args = ["train", "hybrid", "--generative", "helmholtz", "--layers", "8", "4", "--k", "2", "--hidden", "16",
            "--labels-per-class", "5", "--labelled-per-batch", "10", "--ramp-epochs", "1", "--epochs", "1",
            "--batch-size", "500", "--verbose", "0", "--seed", "0", "--out", str(out), "--logdir", str(tmp_path / "tb")]
    code, _, err = _run(capsys, args)
    assert code == 0, err
    assert "40 labelled training images (10 a batch), 10 labelled for validation" in err
    card = json.loads((out / "card.json").read_text())
    assert card["model"] == "HybridModel" and {"val_accuracy", "bound", "supervised_loss"} <= set(card["final_metrics"])
    from tensorboard.backend.event_processing import event_accumulator

    events = event_accumulator.EventAccumulator(str(tmp_path / "tb"), size_guidance={event_accumulator.TENSORS: 0})
    events.Reload()
    assert {"bound", "supervised_loss", "val_accuracy", "unlabelled_accuracy", "sup_weight", "unsup_weight", "samples",
            "reconstructions", "logits"} <= set(events.Tags()["tensors"])
    code, stdout, err = _run(capsys, ["eval", str(out), "--k", "1", "5", "--test-examples", "200", "--json",
                                      "--write-card"])
    assert code == 0, err
    report = json.loads(stdout)
    assert 0 <= report["accuracy"] <= 1 and len(report["results"]) == 2
    assert json.loads((out / "card.json").read_text())["metrics"]["test_accuracy"]["n_examples"] == 200
    # zoo classify: the model's own classes; grey images only with --binarize (its Helmholtz machine is binary)
    grey = zoo.data.load("mnist").test.x[:5]
    np.save(tmp_path / "grey.npy", grey)
    code, stdout, err = _run(capsys, ["classify", str(out), str(tmp_path / "grey.npy")])
    assert code == 2 and "binary" in err and len(err.strip().splitlines()) == 1, err
    code, stdout, err = _run(capsys, ["classify", str(out), str(tmp_path / "grey.npy"), "--binarize"])
    assert code == 0, err
    model, _ = export.load_folder(out)
    assert stdout.splitlines()[0] == "file,index,class,probability"
    assert [int(line.split(",")[2]) for line in stdout.splitlines()[1:]] == list(
        model.predict_classes((grey > 0.5).astype(np.float32)))
    # the generative part from a trained Helmholtz machine of the same family, and one of another refused
    hm = tmp_path / "hm"
    code, _, err = _run(capsys, ["train", "helmholtz", "--layers", "8", "4", "--k", "2", "--epochs", "1",
                                 "--batch-size", "500", "--verbose", "0", "--out", str(hm), "--logdir",
                                 str(tmp_path / "tb2")])
    assert code == 0, err
    code, _, err = _run(capsys, args[:-4] + ["--init-generative", str(hm), "--out", str(tmp_path / "h2"),
                                             "--logdir", str(tmp_path / "tb3")])
    assert code == 0, err
    for bad, message in [(["--init-generative", str(hm), "--generative", "adgm"], "is a HelmholtzMachine, not a"),
                         (["--labels-per-class", "0"], "--labels-per-class: expected a positive integer"),
                         (["--labels-per-class", "6000"], "larger than class"),
                         (["--sup-weight", "0", "--unsup-weight", "0"], "both 0"),
                         (["--labels-per-class", "5", "--labelled-per-batch", "41"], "more than the 40 labelled"),
                         (["--classifier", "rnn"], "--classifier: invalid choice"),
                         (["--generative", "bihm", "--class-latent"], "--class-latent builds a new adgm")]:
        code, _, err = _run(capsys, ["train", "hybrid", *bad, "--epochs", "1", "--out", str(tmp_path / "bad")])
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, (bad, err)
        assert not (tmp_path / "bad").exists()


def test_eval_refuses_a_binary_data_likelihood_of_gaussian_visible_units(tmp_path, capsys):
    from zoo import export
    from zoo.models import DBM

    model = DBM([4, 3], visible="gaussian", n_visible=784, seed=0)
    export.save(model, tmp_path / "gdbm", export.make_card(model, dataset="binarized_mnist", image_shape=[28, 28]))
    code, out, err = _run(capsys, ["eval", str(tmp_path / "gdbm")] + EVAL)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "Gaussian visible units" in err and "no binary-data likelihood" in err
