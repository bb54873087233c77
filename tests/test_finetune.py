"""zoo.finetune: the encoder interface, the classifier's pretrained start, per-layer learning rates, the
few-shot protocol (balanced draws from the train split only, seeds), bad input, `zoo finetune` and the
table script, on `digits` with a tiny RBM."""
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from zoo import cli, export, finetune, units

FAST = dict(epochs=40, patience=10, fixed_epochs=20)


@pytest.fixture(scope="module")
def digits():
    return zoo.data.load("digits")


@pytest.fixture(scope="module")
def rbm(digits):
    keras.utils.set_random_seed(0)  # fit's shuffling draws from the global generators: same model in any test order
    model = zoo.RBM(32, visible=units.BernoulliUnits(allow_nonbinary=True), n_visible=64, seed=0)
    model.compile(keras.optimizers.SGD(0.1, momentum=0.5))
    model.fit(digits.train.x, batch_size=20, epochs=5, verbose=0)
    return model


@pytest.fixture(scope="module")
def folder(rbm, tmp_path_factory):
    return export.save(rbm, tmp_path_factory.mktemp("models") / "tiny-rbm",
                       export.make_card(rbm, name="tiny-rbm", dataset="digits", image_shape=[8, 8]))


# -- encoder and classifier ----------------------------------------------------------------------------------
def test_rbm_encoder_is_its_kernel_and_hidden_bias_and_computes_transform(rbm, digits):
    [(kernel, bias)] = rbm.encoder_layers()
    np.testing.assert_array_equal(kernel, rbm.kernel.numpy())
    np.testing.assert_array_equal(bias, rbm.hidden_bias.numpy())
    x = digits.test.x[:20]
    np.testing.assert_allclose(finetune.encode(finetune.encoder_layers(rbm), x), rbm.transform(x), atol=1e-6)


def test_gaussian_rbm_encoder_folds_in_sigma():
    model = zoo.RBM(5, visible=units.GaussianUnits(sigma=[0.5, 2.0, 1.0]), n_visible=3, seed=0, weight_stddev=0.5)
    x = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    np.testing.assert_allclose(finetune.encode(finetune.encoder_layers(model), x), model.transform(x), atol=1e-6)


def test_classifier_starts_from_the_rbm_weights(rbm):
    classifier = finetune.build_classifier(rbm, 64, 10, seed=0)
    first, output = classifier.dense
    np.testing.assert_array_equal(first.kernel.numpy(), rbm.kernel.numpy())
    np.testing.assert_array_equal(first.bias.numpy(), rbm.hidden_bias.numpy())
    assert classifier.n_pretrained == 1 and classifier.hidden_sizes == (32,) and output.units == 10
    random = finetune.build_classifier(None, 64, 10, hidden_sizes=(32,), seed=0)
    assert random.n_pretrained == 0 and random.dense[0].kernel.shape == first.kernel.shape
    assert not np.allclose(random.dense[0].kernel.numpy(), rbm.kernel.numpy())
    np.testing.assert_array_equal(random.dense[1].kernel.numpy(), output.kernel.numpy())  # both start at zero


def test_pretrained_layers_move_by_the_multiplier(rbm, digits):
    """Two Adam steps (the first moves only the softmax layer, which starts at zero): the update of the
    pretrained layer is the multiplier times the update at full rate; the new layer's does not depend on it."""
    x, y = digits.train.x[:40], digits.train.y[:40]
    updates = {}
    for m in (1.0, 0.25, 0.0):
        classifier = finetune.build_classifier(rbm, 64, 10, seed=0)
        before = [w.copy() for w in classifier.get_weights()]
        finetune.fine_tune(classifier, x, y, pretrained_lr_multiplier=m, epochs=2, batch_size=40, l2=0.0)
        updates[m] = [after - b for after, b in zip(classifier.get_weights(), before)]
    hidden_kernel, hidden_bias, out_kernel, out_bias = range(4)
    for i in (hidden_kernel, hidden_bias):
        np.testing.assert_allclose(updates[0.25][i], 0.25 * updates[1.0][i], atol=1e-7)
        assert np.abs(updates[1.0][i]).max() > 0 and not np.any(updates[0.0][i])
    for i in (out_kernel, out_bias):
        np.testing.assert_allclose(updates[0.25][i], updates[1.0][i], atol=1e-7)


def test_dropout_acts_in_training_only_and_is_seeded(rbm, digits):
    x, y = digits.train.x[:40], digits.train.y[:40]
    plain, dropped = (finetune.build_classifier(rbm, 64, 10, seed=0, dropout=rate) for rate in (0.0, 0.5))
    for c in (plain, dropped):
        c.dense[1].kernel.assign(np.random.default_rng(0).normal(size=(32, 10)).astype(np.float32))
    np.testing.assert_array_equal(dropped(x).numpy(), plain(x).numpy())  # prediction uses the whole net
    np.testing.assert_array_equal(plain(x, training=True).numpy(), plain(x).numpy())
    a, b = dropped(x, training=True).numpy(), dropped(x, training=True).numpy()
    assert np.abs(a - plain(x).numpy()).max() > 0.05 and np.abs(a - b).max() > 0.05  # a new mask each call

    def trained(rate):
        c = finetune.build_classifier(rbm, 64, 10, seed=3, dropout=rate)
        finetune.fine_tune(c, x, y, epochs=3, batch_size=20, seed=3)
        return c.get_weights()

    for w1, w2 in zip(trained(0.5), trained(0.5)):
        np.testing.assert_array_equal(w1, w2)  # the same seed gives the same masks
    assert not np.array_equal(trained(0.5)[0], trained(0.0)[0])
    clone = finetune.Classifier.from_config(dropped.get_config())
    assert clone.dropout == 0.5
    for bad in (1.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match="dropout"):
            finetune.build_classifier(rbm, 64, 10, dropout=bad)


# -- the protocol --------------------------------------------------------------------------------------------
def test_draws_are_class_balanced_nested_and_split_for_validation(digits):
    y = digits.train.y
    for k, n_val in ((1, 0), (2, 1), (10, 2), (20, 4)):
        train, val = finetune.draw_labelled(y, k, seed=3, n_classes=10)
        assert not set(train) & set(val)
        np.testing.assert_array_equal(np.bincount(y[train], minlength=10), k - n_val)
        np.testing.assert_array_equal(np.bincount(y[val], minlength=10), n_val)
    small = np.concatenate(finetune.draw_labelled(y, 5, seed=3, n_classes=10))
    large = np.concatenate(finetune.draw_labelled(y, 10, seed=3, n_classes=10))
    assert set(small) <= set(large)
    other = np.concatenate(finetune.draw_labelled(y, 10, seed=4, n_classes=10))
    assert set(other) != set(large)


def test_few_shot_trains_on_train_split_draws_only_and_tests_on_the_whole_test_split(rbm, digits, monkeypatch):
    seen, tested = [], []
    real_fine_tune, real_frozen = finetune.fine_tune, finetune.frozen_features_baseline
    real_accuracy = finetune.accuracy

    def spy_fine_tune(classifier, x, y, validation=None, **kw):
        seen.append((x, y, validation))
        return real_fine_tune(classifier, x, y, validation, **kw)

    def spy_frozen(layers, x, y, x_test, y_test, **kw):
        seen.append((x, y, None))
        tested.append((x_test, y_test))
        return real_frozen(layers, x, y, x_test, y_test, **kw)

    def spy_accuracy(classifier, x, y):
        tested.append((x, y))
        return real_accuracy(classifier, x, y)

    monkeypatch.setattr(finetune, "fine_tune", spy_fine_tune)
    monkeypatch.setattr(finetune, "frozen_features_baseline", spy_frozen)
    monkeypatch.setattr(finetune, "accuracy", spy_accuracy)
    result = finetune.few_shot(rbm, digits, labels_per_class=(1, 4), seeds=2, **FAST)

    assert all(x is digits.test.x and y is digits.test.y for x, y in tested) and len(tested) == 2 * 2 * 3
    for (k, seed), (train, val) in result.draws.items():
        assert train.max() < digits.train.n and (val.size == 0 or val.max() < digits.train.n)
    # every array a model learned or stopped from is made of train rows; the last net's are the drawn ones
    train_rows = {r.tobytes() for r in digits.train.x}
    for x, _, validation in seen:
        for xs in [x] + ([validation[0]] if validation is not None else []):
            assert all(r.tobytes() in train_rows for r in xs)
    train, val = result.draws[(4, 1)]
    nets = [s for s in seen if s[2] is not None]
    np.testing.assert_array_equal(nets[-1][0], digits.train.x[train])
    np.testing.assert_array_equal(nets[-1][2][0], digits.train.x[val])
    assert result.n_labelled == {1: (10, 0), 4: (30, 10)}


def test_shifted_copies_translate_every_image_by_every_offset_with_zero_fill():
    x = np.arange(1, 10, dtype=np.float32).reshape(1, 9)  # one 3x3 image, all pixels non-zero
    xs, ys = finetune.shifted_copies(np.concatenate([x, 2 * x]), np.array([4, 7]), (3, 3), 1)
    assert xs.shape == (18, 9) and ys.tolist() == [4, 7] * 9
    np.testing.assert_array_equal(xs[:2], np.concatenate([x, 2 * x]))  # the originals come first
    images = {tuple(r) for r in xs[::2]}
    grid = x.reshape(3, 3)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):  # out[i, j] = in[i - dy, j - dx], zero where that falls outside
            expected = np.zeros((3, 3), np.float32)
            expected[max(dy, 0):3 + min(dy, 0), max(dx, 0):3 + min(dx, 0)] = \
                grid[max(-dy, 0):3 + min(-dy, 0), max(-dx, 0):3 + min(-dx, 0)]
            assert tuple(expected.ravel()) in images
    assert finetune.shifted_copies(x, np.array([1]), (3, 3), 0)[0] is x
    for shape, radius, message in [((2, 4), 1, "image_shape"), ((3, 3), 3, "smaller than the image"),
                                   ((3, 3), -1, "shift")]:
        with pytest.raises(ValueError, match=message):
            finetune.shifted_copies(x, np.array([1]), shape, radius)


def test_refit_trains_again_on_the_whole_draw_for_the_chosen_epochs_and_shift_keeps_epoch_length(
        rbm, digits, monkeypatch):
    calls = []
    real_fine_tune = finetune.fine_tune

    def spy_fine_tune(classifier, x, y, validation=None, **kw):
        first_layer = classifier.dense[0].kernel.numpy().copy()
        log = real_fine_tune(classifier, x, y, validation, **kw)
        calls.append(dict(x=x, validation=validation, kw=kw, log=log, start=first_layer, dropout=classifier.dropout))
        return log

    monkeypatch.setattr(finetune, "fine_tune", spy_fine_tune)
    result = finetune.few_shot(rbm, digits, labels_per_class=(5,), seeds=1, shift=1, dropout=0.25, **FAST)
    assert len(calls) == 4 and result.settings["refit"] and result.settings["shift"] == 1
    assert result.settings["dropout"] == 0.25 and all(c["dropout"] == 0.25 for c in calls)
    train, val = result.draws[(5, 0)]
    whole = np.concatenate([digits.train.x[train], digits.train.x[val]])
    for stop, again in (calls[:2], calls[2:]):
        assert stop["validation"] is not None and again["validation"] is None
        assert len(stop["x"]) == 9 * len(train) and stop["kw"]["steps_per_epoch"] == -(-len(train) // 32)
        np.testing.assert_array_equal(again["x"][:len(whole)], whole)  # originals first, then 8 shifted copies
        assert len(again["x"]) == 9 * len(whole) and again["kw"]["steps_per_epoch"] == -(-len(whole) // 32)
        assert again["kw"]["epochs"] == stop["log"].best_epoch == again["log"].epochs_run
        np.testing.assert_array_equal(again["start"], stop["start"])  # the same initialisation
    assert result.best_epochs["pretrained"][5] == (calls[0]["log"].best_epoch,)
    calls.clear()
    finetune.few_shot(rbm, digits, labels_per_class=(5,), seeds=1, refit=False, **FAST)
    assert len(calls) == 2 and all(c["validation"] is not None for c in calls)


def test_early_stopping_keeps_the_epoch_its_monitor_ranks_best(rbm, digits):
    x, y, xv, yv = digits.train.x[:30], digits.train.y[:30], digits.validation.x[:30], digits.validation.y[:30]
    kept = {}
    for monitor in finetune.MONITORS:
        classifier = finetune.build_classifier(rbm, 64, 10, seed=0)
        log = finetune.fine_tune(classifier, x, y, validation=(xv, yv), epochs=60, patience=20, monitor=monitor,
                                 lr=1e-2, batch_size=10, seed=0)
        loss, acc = np.array(log.history["val_loss"]), np.array(log.history["val_accuracy"])
        # the ranking again, from the logged history: lexicographic, the first best wins
        rank = (lambda i: (acc[i], -loss[i])) if monitor == "val_accuracy" else (lambda i: (-loss[i], acc[i]))
        best = max(range(len(loss)), key=lambda i: (rank(i), -i))
        assert log.best_epoch == best + 1, monitor
        assert log.epochs_run == len(loss) and (log.epochs_run == 60 or log.epochs_run == best + 1 + 20)
        probabilities = classifier(xv).numpy()  # the kept weights are those of the best epoch
        assert float(np.mean(np.argmax(probabilities, -1) == yv)) == pytest.approx(acc[best])
        np.testing.assert_allclose(np.mean(keras.losses.sparse_categorical_crossentropy(yv, probabilities)),
                                   loss[best], rtol=1e-5)
        kept[monitor] = log.best_epoch
    assert kept["val_accuracy"] < kept["val_loss"]  # here accuracy peaks early, the loss keeps falling


def test_monitor_choices_and_settings(rbm, digits):
    with pytest.raises(ValueError, match="monitor"):
        finetune.fine_tune(finetune.build_classifier(rbm, 64, 10), digits.train.x[:20], digits.train.y[:20],
                           epochs=1, monitor="loss")
    with pytest.raises(ValueError, match="monitor"):
        finetune.few_shot(rbm, digits, labels_per_class=(1,), seeds=1, monitor="accuracy")
    result = finetune.few_shot(rbm, digits, labels_per_class=(3,), seeds=1, monitor="val_loss", **FAST)
    assert result.settings["monitor"] == "val_loss"
    assert finetune.describe_settings(result.settings).endswith("patience 10 on val_loss")


def test_fine_tune_batch_order_depends_on_its_seed_not_on_the_global_seed(rbm, digits):
    weights = []
    for global_seed in (1, 2):
        keras.utils.set_random_seed(global_seed)
        classifier = finetune.build_classifier(rbm, 64, 10, seed=0)
        finetune.fine_tune(classifier, digits.train.x[:100], digits.train.y[:100], epochs=3, batch_size=10, seed=5)
        weights.append(classifier.get_weights())
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)


def test_seeds_reproduce(rbm, digits):
    runs = [finetune.few_shot(rbm, digits, labels_per_class=(3,), seeds=[7], **FAST) for _ in range(2)]
    assert runs[0].accuracy == runs[1].accuracy and runs[0].best_epochs == runs[1].best_epochs
    np.testing.assert_array_equal(runs[0].draws[(3, 7)][0], runs[1].draws[(3, 7)][0])


def test_short_fine_tune_beats_chance_by_far(rbm, digits):
    result = finetune.few_shot(rbm, digits, labels_per_class=(10,), seeds=1, epochs=100, patience=20)
    for row in finetune.ROWS:
        assert result.mean(row, 10) > 0.6, (row, result.accuracy)  # chance: 0.1
    report = result.to_dict()
    assert report["gain"]["10"]["mean"] == pytest.approx(result.mean("pretrained", 10) - result.mean("random", 10))
    text = finetune.format_table(report)
    assert "pretrained" in text and "random" in text and "frozen" in text and "gain" in text
    json.dumps(report, allow_nan=False)


def test_evaluate_on_validation_measures_every_row_on_the_validation_split_only(rbm, digits, monkeypatch):
    tested = []
    real_accuracy, real_frozen = finetune.accuracy, finetune.frozen_features_baseline
    monkeypatch.setattr(finetune, "accuracy", lambda c, x, y: tested.append((x, y)) or real_accuracy(c, x, y))
    monkeypatch.setattr(finetune, "frozen_features_baseline", lambda layers, x, y, x_test, y_test, **kw: (
        tested.append((x_test, y_test)) or real_frozen(layers, x, y, x_test, y_test, **kw)))
    result = finetune.few_shot(rbm, digits, labels_per_class=(2,), seeds=1, evaluate_on="validation", **FAST)
    assert len(tested) == 3 and all(x is digits.validation.x and y is digits.validation.y for x, y in tested)
    assert result.settings["evaluated_on"] == "validation" and result.settings["n_test"] == digits.validation.n
    assert all(rows.max() < digits.train.n for rows in result.draws[(2, 0)])  # draws still from train only
    with pytest.raises(ValueError, match="'all' stops early on the validation split"):
        finetune.few_shot(rbm, digits, labels_per_class=(2, "all"), seeds=1, evaluate_on="validation")
    with pytest.raises(ValueError, match="evaluate_on"):
        finetune.few_shot(rbm, digits, labels_per_class=(2,), seeds=1, evaluate_on="train")


def test_all_uses_the_whole_train_split_and_the_validation_split(rbm, digits):
    result = finetune.few_shot(rbm, digits, labels_per_class=("all",), seeds=1, epochs=3, patience=2)
    assert result.n_labelled == {"all": (digits.train.n, digits.validation.n)}
    assert result.to_dict()["labels_per_class"] == ["all"]


# -- bad input -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("labels_per_class, message", [
    ((1000,), "larger than class"), ((0,), "positive integers or 'all'"), ((-2,), "positive integers or 'all'"),
    (("some",), "positive integers or 'all'"), ((5, 5), "twice"), ((), "empty"), ((2.5,), "positive integers"),
])
def test_bad_labels_per_class(rbm, digits, labels_per_class, message):
    with pytest.raises(ValueError, match=message):
        finetune.few_shot(rbm, digits, labels_per_class=labels_per_class, seeds=1)


def test_models_that_cannot_encode(digits):
    with pytest.raises(ValueError, match="cannot encode"):
        finetune.few_shot(object(), digits, labels_per_class=(1,), seeds=1)
    with pytest.raises(ValueError, match="cannot encode"):
        finetune.build_classifier(keras.Sequential(), 64, 10)
    softmax_hidden = zoo.RBM(8, hidden=units.SoftmaxUnits(group_size=4), n_visible=64)
    with pytest.raises(ValueError, match="cannot encode"):
        finetune.build_classifier(softmax_hidden, 64, 10)
    with pytest.raises(ValueError, match="hidden_sizes is needed"):
        finetune.build_classifier(None, 64, 10)


def test_bad_labels_and_data(rbm, digits):
    classifier = finetune.build_classifier(rbm, 64, 10)
    x = digits.train.x[:20]
    y = digits.train.y[:20]
    for bad, message in ((y[:, None], "1-D array of 20 labels"), (y[:5], "1-D array of 20 labels"),
                         (y.astype(float), "integer class labels"), (np.full(20, 10), r"in \[0, 9\]"),
                         (np.full(20, -1), r"in \[0, 9\]")):
        with pytest.raises(ValueError, match=message):
            finetune.fine_tune(classifier, x, bad, epochs=1)
    with pytest.raises(ValueError, match="validation y"):
        finetune.fine_tune(classifier, x, y, validation=(x, np.full(20, 12)), epochs=1)
    with pytest.raises(ValueError, match="64 columns"):
        finetune.fine_tune(classifier, x[:, :10], y, epochs=1)
    with pytest.raises(ValueError, match="784 features|encodes 64"):
        finetune.few_shot(rbm, zoo.data.load("mnist"), labels_per_class=(1,), seeds=1)
    with pytest.raises(ValueError, match="seeds"):
        finetune.few_shot(rbm, digits, labels_per_class=(1,), seeds=0)


# -- the command and the table script ------------------------------------------------------------------------
def test_cli_runs_end_to_end_with_json_and_saves_a_classifier(folder, tmp_path, capsys):
    save = tmp_path / "clf"
    code = cli.main(["finetune", str(folder), "--labels-per-class", "1", "3", "--seeds", "2", "--epochs", "30",
                     "--patience", "5", "--fixed-epochs", "10", "--json", "--save", str(save),
                     "--logdir", str(tmp_path / "tb")])
    out, err = capsys.readouterr()
    assert code == 0, err
    report = json.loads(out)
    assert "tiny-rbm" in err and "RBM 64-32" in err  # it says what it loaded
    assert report["labels_per_class"] == [1, 3] and report["seeds"] == [0, 1]
    assert set(report["accuracy"]) == set(finetune.ROWS) and len(report["accuracy"]["pretrained"]["3"]["per_seed"]) == 2
    assert report["command"].startswith("zoo finetune ") and report["settings"]["n_test"] == 300
    assert (tmp_path / "tb" / "3-per-class" / "seed-0" / "pretrained").is_dir()

    # --save: a model folder whose SavedModel classifies, matching the Keras model
    classifier, card = export.load_folder(save)
    assert isinstance(classifier, finetune.Classifier) and card["labels_per_class"] == 3 and card["seed"] == 0
    assert card["test_accuracy"] == report["accuracy"]["pretrained"]["3"]["per_seed"][0]
    loaded = tf.saved_model.load(str(save / export.SAVED_MODEL_DIR))
    x = zoo.data.load("digits").test.x[:7]
    outputs = loaded.signatures["classify"](x=tf.constant(x))
    np.testing.assert_allclose(outputs["probabilities"].numpy(), classifier(x).numpy(), atol=1e-6)
    np.testing.assert_array_equal(outputs["class"].numpy(), classifier.predict_classes(x))


@pytest.mark.parametrize("extra, message", [
    (["--labels-per-class", "0"], "--labels-per-class: expected a positive integer or 'all', got '0'"),
    (["--labels-per-class", "1000"], "larger than class"),
    (["--dataset", "mnist"], "784 features"),
    (["--seeds", "-1"], "--seeds: expected a positive integer"),
    (["--shift", "-1"], "--shift: expected an integer >= 0"),
    (["--shift", "8"], "shift 8 must be smaller than the image"),
    (["--dropout", "1"], "dropout must be in [0, 1)"),
    (["--monitor", "loss"], "--monitor: invalid choice"),
])
def test_cli_bad_input_is_one_line_and_exit_2(folder, tmp_path, capsys, extra, message):
    code = cli.main(["finetune", str(folder), "--logdir", str(tmp_path / "tb")] + extra)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and message in err[-1], err


def test_cli_refuses_a_model_that_cannot_encode(tmp_path, capsys):
    model = zoo.RBM(8, hidden=units.SoftmaxUnits(group_size=4), n_visible=64)
    path = export.save(model, tmp_path / "softmax", export.make_card(model, dataset="digits"), saved_model=False)
    assert cli.main(["finetune", str(path), "--logdir", str(tmp_path / "tb")]) == 2
    assert "cannot encode" in capsys.readouterr().err


def test_table_script_runs_zoo_finetune_and_prints_markdown_with_the_command(folder, tmp_path, capsys,
                                                                             load_script):
    script = load_script("finetune_table")
    assert script.main([str(folder), "--labels-per-class", "2", "--seeds", "1", "--epochs", "5",
                        "--logdir", str(tmp_path / "tb")]) == 0
    out = capsys.readouterr().out
    assert "| labels per class | 2 |" in out and "| pretrained (fine-tuned) |" in out
    assert f"`zoo finetune {folder} --labels-per-class 2 --seeds 1 --epochs 5" in out
    assert out.startswith("Test accuracy (%) on all ")
    assert script.main([str(folder), "--labels-per-class", "2", "--seeds", "1", "--epochs", "5",
                        "--evaluate-on", "validation", "--logdir", str(tmp_path / "tb2")]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Validation accuracy (%) on all {zoo.data.load('digits').validation.n:,} validation images")
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert script.main(["--json", str(bad)]) == 2
    assert "not from `zoo finetune --json`" in capsys.readouterr().err


def test_describe_settings_names_every_setting_and_dropout_only_when_set():
    settings = dict(optimizer="adam", lr=1e-3, pretrained_lr_multiplier=0.03, l2=1e-4, dropout=0.0,
                    batch_size=32, patience=40)
    assert finetune.describe_settings(settings) == ("optimizer adam, lr 0.001, pretrained layers x0.03, "
                                                    "L2 0.0001, batch 32, patience 40")
    assert "dropout 0.2, batch 32" in finetune.describe_settings({**settings, "dropout": 0.2})
