"""zoo.finetune: the encoder capability, the classifier's pretrained and random starts, the encoder's learning
rate, saving, the few-shot protocol (balanced draws from the train split only, seeds), the settings a model
card recommends, bad input, `zoo finetune` and its --table, on `digits` with a tiny RBM."""
import csv
import inspect
import json
import shutil
import zipfile

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from zoo import capabilities, cli, export, finetune, units, viz
from zoo.cli import finetune as finetune_command
from zoo.models.classifier import Classifier

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


class DeepEncoding:
    """A model that can encode with another architecture than the RBM's: Dense, LayerNormalization, Dense."""

    def encoder(self):
        return keras.Sequential([keras.Input((64,)), keras.layers.Dense(20, activation="tanh", name="a"),
                                 keras.layers.LayerNormalization(name="norm"),
                                 keras.layers.Dense(12, activation="relu", name="b")], name="deep")


# -- the encoder capability and the classifier -----------------------------------------------------------------
def test_rbm_encoder_is_a_copy_of_its_kernel_and_hidden_bias_and_computes_transform(rbm, digits):
    encoder = rbm.encoder()
    assert isinstance(encoder, keras.Model) and capabilities.offers(rbm, capabilities.Encoder)
    assert tuple(encoder.inputs[0].shape) == (None, 64) and encoder.inputs[0].dtype == "float32"
    [dense] = encoder.layers
    assert dense.activation is keras.activations.sigmoid and finetune.encoder_summary(encoder) == "64-32"
    np.testing.assert_array_equal(dense.kernel.numpy(), rbm.kernel.numpy())
    np.testing.assert_array_equal(dense.bias.numpy(), rbm.hidden_bias.numpy())
    x = digits.test.x[:20]
    np.testing.assert_allclose(finetune.encode(encoder, x), rbm.transform(x), atol=1e-6)
    np.testing.assert_allclose(finetune.encode(encoder, x, batch_size=3), rbm.transform(x), atol=1e-6)
    before = rbm.kernel.numpy().copy()
    dense.kernel.assign(np.zeros_like(before))  # a copy: changing it leaves the RBM alone
    np.testing.assert_array_equal(rbm.kernel.numpy(), before)
    assert not np.any(rbm.encoder().layers[0].kernel.numpy() != before)


def test_gaussian_rbm_encoder_folds_in_sigma():
    model = zoo.RBM(5, visible=units.GaussianUnits(sigma=[0.5, 2.0, 1.0]), n_visible=3, seed=0, weight_stddev=0.5)
    x = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    np.testing.assert_allclose(finetune.encode(finetune.get_encoder(model), x), model.transform(x), atol=1e-6)


def test_classifier_starts_from_the_rbm_weights_or_from_seeded_glorot(rbm):
    classifier = finetune.build_classifier(rbm, 10, seed=0)
    first, output = classifier.dense
    np.testing.assert_array_equal(first.kernel.numpy(), rbm.kernel.numpy())
    np.testing.assert_array_equal(first.bias.numpy(), rbm.hidden_bias.numpy())
    assert classifier.pretrained and classifier.source == "RBM" and output is classifier.head and output.units == 10
    assert not np.any(output.kernel.numpy()) and not np.any(output.bias.numpy())  # the new layer starts at zero
    for seed in (0, 5):
        random = finetune.build_classifier(rbm, 10, pretrained=False, seed=seed)
        assert not random.pretrained and random.dense[0].kernel.shape == first.kernel.shape
        np.testing.assert_array_equal(random.dense[0].kernel.numpy(),
                                      keras.initializers.GlorotUniform(seed)((64, 32)).numpy())
        assert not np.any(random.dense[0].bias.numpy()) and not np.any(random.head.kernel.numpy())
    np.testing.assert_array_equal(rbm.encoder().layers[0].kernel.numpy(), rbm.kernel.numpy())  # RBM untouched


def test_random_baseline_reinitialises_every_layer_of_any_encoder():
    encoder = DeepEncoding().encoder()
    for layer in encoder.layers:
        layer.set_weights([np.full(w.shape, 3.0, np.float32) for w in layer.get_weights()])
    fresh = finetune.reinitialized(encoder, seed=7)
    a, norm, b = fresh.layers
    np.testing.assert_array_equal(a.kernel.numpy(), keras.initializers.GlorotUniform(7)((64, 20)).numpy())
    np.testing.assert_array_equal(b.kernel.numpy(), keras.initializers.GlorotUniform(8)((20, 12)).numpy())
    assert not np.any(a.bias.numpy()) and not np.any(b.bias.numpy())
    np.testing.assert_array_equal(norm.gamma.numpy(), 1.0)
    np.testing.assert_array_equal(norm.beta.numpy(), 0.0)
    assert b.activation is keras.activations.relu and all(not np.all(w == 3) for w in fresh.get_weights())
    np.testing.assert_array_equal(encoder.layers[0].kernel.numpy(), 3.0)  # the original is left alone
    assert finetune.encoder_summary(encoder) == "64-20-12"


def test_the_encoder_learns_as_adam_at_lr_times_the_multiplier(rbm, digits):
    """Three full-batch steps of fine_tune against Adam written out here, with the encoder's rate lr * m and
    the softmax layer's lr (the first step moves only the softmax layer, which starts at zero)."""
    x, y = digits.train.x[:40], digits.train.y[:40]
    lr, m, steps = 0.01, 0.25, 3
    mirror = finetune.build_classifier(rbm, 10, seed=0)  # gives the gradients at the reference's weights
    variables = [mirror.dense[0].kernel, mirror.dense[0].bias, mirror.head.kernel, mirror.head.bias]
    reference = [v.numpy().astype(np.float64) for v in variables]
    start = [w.copy() for w in reference]
    rates = [lr * m, lr * m, lr, lr]
    first, second = [np.zeros_like(w) for w in reference], [np.zeros_like(w) for w in reference]
    for t in range(1, steps + 1):
        for v, w in zip(variables, reference):
            v.assign(w.astype(np.float32))
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, mirror(x, training=True)))
        for i, g in enumerate(tape.gradient(loss, variables)):
            g = g.numpy().astype(np.float64)
            first[i] = 0.9 * first[i] + 0.1 * g
            second[i] = 0.999 * second[i] + 0.001 * g ** 2
            alpha = rates[i] * np.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t)
            reference[i] = reference[i] - alpha * first[i] / (np.sqrt(second[i]) + 1e-7)
    classifier = finetune.build_classifier(rbm, 10, seed=0)
    finetune.fine_tune(classifier, x, y, pretrained_lr_multiplier=m, lr=lr, epochs=steps, batch_size=40, l2=0.0)
    assert classifier.encoder_lr_multiplier == m
    trained = [classifier.dense[0].kernel, classifier.dense[0].bias, classifier.head.kernel, classifier.head.bias]
    for v, w, w0 in zip(trained, reference, start):
        step = np.abs(w - w0).max()
        assert step > 1e-4  # every variable moved
        # float32 and the batch's shuffled order move the few near-zero gradients that Adam normalises
        np.testing.assert_allclose(v.numpy() - w0, w - w0, rtol=0, atol=1e-3 * step)
    frozen = finetune.build_classifier(rbm, 10, seed=0)
    finetune.fine_tune(frozen, x, y, pretrained_lr_multiplier=0.0, lr=lr, epochs=steps, batch_size=40)
    np.testing.assert_array_equal(frozen.dense[0].kernel.numpy(), rbm.kernel.numpy())
    random = finetune.build_classifier(rbm, 10, pretrained=False, seed=0)
    finetune.fine_tune(random, x, y, pretrained_lr_multiplier=m, epochs=1, batch_size=40)
    assert random.encoder_lr_multiplier == 1.0  # a randomly initialised encoder learns at the full rate


def test_l2_covers_every_dense_kernel_in_training_only(rbm, digits):
    x, y = digits.train.x[:30], digits.train.y[:30]
    classifier = finetune.build_classifier(rbm, 10, seed=0)
    classifier.head.kernel.assign(np.random.default_rng(1).normal(size=(32, 10)).astype(np.float32))
    classifier.l2 = 0.01
    classifier.compile(loss=keras.losses.SparseCategoricalCrossentropy())
    probabilities = classifier(x)
    penalty = 0.01 * (np.sum(rbm.kernel.numpy().astype(np.float64) ** 2)
                      + np.sum(classifier.head.kernel.numpy().astype(np.float64) ** 2))
    with_l2, without = (float(classifier.compute_loss(x, y, probabilities, training=t)) for t in (True, False))
    np.testing.assert_allclose(with_l2 - without, penalty, rtol=1e-5)
    np.testing.assert_allclose(without, np.mean(keras.losses.sparse_categorical_crossentropy(y, probabilities)),
                               rtol=1e-6)


def test_dropout_acts_on_the_features_in_training_only_and_is_seeded(rbm, digits):
    x, y = digits.train.x[:40], digits.train.y[:40]
    plain, dropped = (finetune.build_classifier(rbm, 10, seed=0, dropout=rate) for rate in (0.0, 0.5))
    head = np.random.default_rng(0).normal(size=(32, 10)).astype(np.float32)
    for c in (plain, dropped):
        c.head.kernel.assign(head)
    np.testing.assert_array_equal(dropped(x).numpy(), plain(x).numpy())  # prediction uses the whole net
    np.testing.assert_array_equal(plain(x, training=True).numpy(), plain(x).numpy())
    # the first mask is that of a Dropout layer seeded seed + 1000 on the encoder's features
    masked = keras.layers.Dropout(0.5, seed=1000)(rbm.transform(x), training=True).numpy()
    np.testing.assert_allclose(dropped(x, training=True).numpy(), keras.activations.softmax(masked @ head).numpy(),
                               atol=1e-6)
    a, b = dropped(x, training=True).numpy(), dropped(x, training=True).numpy()
    assert np.abs(a - plain(x).numpy()).max() > 0.05 and np.abs(a - b).max() > 0.05  # a new mask each call

    def trained(rate):
        c = finetune.build_classifier(rbm, 10, seed=3, dropout=rate)
        finetune.fine_tune(c, x, y, epochs=3, batch_size=20, seed=3)
        return c.get_weights()

    for w1, w2 in zip(trained(0.5), trained(0.5)):
        np.testing.assert_array_equal(w1, w2)  # the same seed gives the same masks
    assert not np.array_equal(trained(0.5)[0], trained(0.0)[0])
    clone = finetune.Classifier.from_config(dropped.get_config())
    assert clone.dropout == 0.5 and finetune.Classifier is Classifier
    for bad in (1.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match="dropout"):
            finetune.build_classifier(rbm, 10, dropout=bad)


def test_a_saved_classifier_loads_with_the_same_predictions_and_serves_classify_and_encode(rbm, digits, tmp_path):
    x = digits.test.x[:25]
    classifier = finetune.build_classifier(rbm, 10, seed=2, dropout=0.25)
    finetune.fine_tune(classifier, digits.train.x[:60], digits.train.y[:60], epochs=3, batch_size=20,
                       pretrained_lr_multiplier=0.3, l2=1e-3)
    path = export.save(classifier, tmp_path / "clf", export.make_card(classifier, dataset="digits"))
    loaded, _ = export.load_folder(path)
    assert isinstance(loaded, Classifier)
    np.testing.assert_array_equal(loaded(x).numpy(), classifier(x).numpy())
    for key in ("dropout", "l2", "encoder_lr_multiplier", "pretrained", "source", "seed", "n_classes", "n_inputs"):
        assert getattr(loaded, key) == getattr(classifier, key), key
    served = tf.saved_model.load(str(path / export.SAVED_MODEL_DIR))
    np.testing.assert_allclose(served.signatures["classify"](x=tf.constant(x))["probabilities"].numpy(),
                               classifier(x).numpy(), atol=1e-6)
    np.testing.assert_allclose(served.signatures["encode"](x=tf.constant(x))["features"].numpy(),
                               finetune.encode(classifier.features, x), atol=1e-6)
    # the classifier is an encoder itself: a copy of its fine-tuned encoder
    assert capabilities.offers(classifier, capabilities.Encoder)
    copy = finetune.get_encoder(classifier)
    np.testing.assert_array_equal(finetune.encode(copy, x), finetune.encode(classifier.features, x))
    assert copy is not classifier.features


def test_a_classifier_on_any_encoder_round_trips(digits, tmp_path):
    classifier = finetune.build_classifier(DeepEncoding(), 10, pretrained=False, seed=1, dropout=0.1)
    finetune.fine_tune(classifier, digits.train.x[:40], digits.train.y[:40], epochs=2, batch_size=20)
    classifier.save(tmp_path / "deep.keras")
    loaded = keras.models.load_model(tmp_path / "deep.keras")
    x = digits.test.x[:10]
    np.testing.assert_array_equal(loaded(x).numpy(), classifier(x).numpy())
    assert [layer.name for layer in loaded.features.layers] == ["a", "norm", "b"]


def test_a_classifier_saved_before_the_encoder_interface_still_loads(digits, tmp_path):
    """The old format, written here by hand: config `hidden_sizes`, weights under dense/dense, dense/dense_1."""
    rng = np.random.default_rng(0)
    k1, b1, k2, b2 = (rng.normal(size=s).astype(np.float32) for s in ((64, 16), (16,), (16, 10), (10,)))
    config = {"module": "zoo.finetune", "class_name": "Classifier", "registered_name": "zoo>Classifier",
              "config": {"name": "classifier", "trainable": True, "n_inputs": 64, "n_classes": 10, "hidden_sizes": [16],
                         "n_pretrained": 1, "source": "RBM", "l2": 1e-5, "lr_multipliers": [0.1, 1.0], "seed": 1,
                         "dropout": 0.2},
              "build_config": {"input_shape": [None, 64]}}
    with h5py.File(tmp_path / "model.weights.h5", "w") as f:
        for name, (kernel, bias) in (("dense", (k1, b1)), ("dense_1", (k2, b2))):
            group = f.create_group(f"dense/{name}/vars")
            group["0"], group["1"] = kernel, bias
        f.create_group("dropouts/dropout/vars")
        f.create_group("vars")
    with zipfile.ZipFile(tmp_path / "old.keras", "w") as z:
        z.writestr("config.json", json.dumps(config))
        z.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))
        z.write(tmp_path / "model.weights.h5", "model.weights.h5")
    loaded = keras.models.load_model(tmp_path / "old.keras")
    assert loaded.pretrained and loaded.encoder_lr_multiplier == 0.1 and loaded.dropout == 0.2
    x = digits.test.x[:10].astype(np.float64)
    logits = (1 / (1 + np.exp(-(x @ k1 + b1)))) @ k2 + b2
    expected = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(loaded(x).numpy(), expected / expected.sum(1, keepdims=True), atol=1e-5)


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

    def spy_frozen(encoder, x, y, x_test, y_test, **kw):
        seen.append((x, y, None))
        tested.append((x_test, y_test))
        np.testing.assert_array_equal(encoder.layers[0].kernel.numpy(), rbm.kernel.numpy())  # never fine-tuned
        return real_frozen(encoder, x, y, x_test, y_test, **kw)

    def spy_accuracy(classifier, x, y):
        tested.append((x, y))
        return real_accuracy(classifier, x, y)

    monkeypatch.setattr(finetune, "fine_tune", spy_fine_tune)
    monkeypatch.setattr(finetune, "frozen_features_baseline", spy_frozen)
    monkeypatch.setattr(finetune, "accuracy", spy_accuracy)
    weights = [w.copy() for w in rbm.get_weights()]
    result = finetune.few_shot(rbm, digits, labels_per_class=(1, 4), seeds=2, **FAST)
    for before, after in zip(weights, rbm.get_weights()):
        np.testing.assert_array_equal(before, after)  # fine-tuning trains copies of the encoder

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
        classifier = finetune.build_classifier(rbm, 10, seed=0)
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
        finetune.fine_tune(finetune.build_classifier(rbm, 10), digits.train.x[:20], digits.train.y[:20],
                           epochs=1, monitor="loss")
    with pytest.raises(ValueError, match="monitor"):
        finetune.few_shot(rbm, digits, labels_per_class=(1,), seeds=1, monitor="accuracy")
    settings, _ = finetune.resolve_settings({"finetune_defaults": {"monitor": "val_loss", "l2": 1e-4}}, FAST)
    result = finetune.few_shot(rbm, digits, labels_per_class=(3,), seeds=1, **settings)  # the settings are few_shot's
    assert result.settings["monitor"] == "val_loss" and result.settings["l2"] == 1e-4
    assert result.settings["max_epochs"] == 40 and result.settings["fixed_epochs_without_validation"] == 20
    assert result.settings["early_stopping"] == ("lowest validation loss (ties: higher validation accuracy), best "
                                                 "weights restored")
    assert finetune.describe_settings(result.settings).endswith("patience 10 on val_loss")


def test_fine_tune_batch_order_depends_on_its_seed_not_on_the_global_seed(rbm, digits):
    weights = []
    for global_seed in (1, 2):
        keras.utils.set_random_seed(global_seed)
        classifier = finetune.build_classifier(rbm, 10, seed=0)
        finetune.fine_tune(classifier, digits.train.x[:100], digits.train.y[:100], epochs=3, batch_size=10, seed=5)
        weights.append(classifier.get_weights())
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)


def test_seeds_reproduce(rbm, digits):
    runs = [finetune.few_shot(rbm, digits, labels_per_class=(3,), seeds=[7], **FAST) for _ in range(2)]
    assert runs[0].accuracy == runs[1].accuracy and runs[0].best_epochs == runs[1].best_epochs
    assert runs[0].settings["early_stopping"] == ("best validation accuracy (ties: lower validation loss), best "
                                                  "weights restored")
    assert runs[0].settings["encoder"] == "64-32" and runs[0].settings["hidden_sizes"] == [32]
    np.testing.assert_array_equal(runs[0].draws[(3, 7)][0], runs[1].draws[(3, 7)][0])


def test_short_fine_tune_beats_chance_by_far(rbm, digits):
    settings, sources = finetune.resolve_settings({"finetune_defaults": {"l2": 2e-5, "epochs": 100}})
    result = finetune.few_shot(rbm, digits, labels_per_class=(10,), seeds=1, **settings)
    for row in finetune.ROWS:
        assert result.mean(row, 10) > 0.6, (row, result.accuracy)  # chance: 0.1
    report = result.to_dict()
    assert report["gain"]["10"]["mean"] == pytest.approx(result.mean("pretrained", 10) - result.mean("random", 10))
    text = finetune.format_table(report)
    assert "pretrained" in text and "random" in text and "frozen" in text and "gain" in text
    json.dumps(report, allow_nan=False)
    # zoo finetune --table names the settings the card recommended, with the values the run recorded
    report.update(command="zoo finetune tiny --labels-per-class 10 --seeds 1 --json", model="tiny",
                  model_summary="RBM 64-32", settings_sources=sources)
    table = finetune_command.markdown(report)
    assert "; recommended by the model card: l2 2e-05, epochs 100)." in table
    assert table.endswith("\n\nRegenerate with `zoo finetune tiny --labels-per-class 10 --seeds 1 --table`.")


def test_evaluate_on_validation_measures_every_row_on_the_validation_split_only(rbm, digits, monkeypatch):
    tested = []
    real_accuracy, real_frozen = finetune.accuracy, finetune.frozen_features_baseline
    monkeypatch.setattr(finetune, "accuracy", lambda c, x, y: tested.append((x, y)) or real_accuracy(c, x, y))
    monkeypatch.setattr(finetune, "frozen_features_baseline", lambda encoder, x, y, x_test, y_test, **kw: (
        tested.append((x_test, y_test)) or real_frozen(encoder, x, y, x_test, y_test, **kw)))
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


class _BadEncoding:
    """A model whose encoder() returns make()."""

    def __init__(self, make):
        self.make = make

    def encoder(self):
        return self.make()


@pytest.mark.parametrize("make, message", [
    (lambda: object(), "object cannot encode: that needs a model with the capability encoder"),
    (lambda: keras.Sequential(), "Sequential cannot encode: that needs"),
    (lambda: zoo.RBM(8, hidden=units.SoftmaxUnits(group_size=4), n_visible=64),
     "RBM cannot encode: .*softmax hidden units"),
    (lambda: zoo.RBM(8), "RBM cannot encode: the model has no weights yet"),
    (lambda: _BadEncoding(lambda: np.zeros((64, 8))), "_BadEncoding cannot encode: an encoder must be a keras.Model"),
    (lambda: _BadEncoding(lambda: keras.Sequential([keras.layers.Dense(3)])),
     "_BadEncoding cannot encode: .*no defined inputs"),
    (lambda: _BadEncoding(lambda: keras.Sequential([keras.Input((4, 4)), keras.layers.Dense(3)])),
     r"_BadEncoding cannot encode: .*must map \(None, n_inputs\)"),
    (lambda: _BadEncoding(lambda: keras.Sequential([keras.Input((64,)), keras.layers.Dense(
        3, bias_initializer=keras.initializers.Constant(float("nan")))])),
     "_BadEncoding cannot encode: its encoder has NaN"),
    (lambda: type("Autoencoder", (), {"encoder": keras.Sequential([keras.Input((64,)), keras.layers.Dense(3)])})(),
     "Autoencoder cannot encode: its `encoder` is a Keras layer"),
], ids=["object", "keras-model", "softmax-rbm", "unbuilt-rbm", "array", "no-input", "images", "nan", "attribute"])
def test_models_that_cannot_encode(digits, make, message):
    model = make()
    for call in (lambda: finetune.build_classifier(model, 10),
                 lambda: finetune.few_shot(model, digits, labels_per_class=(1,), seeds=1)):
        with pytest.raises(ValueError, match=message) as info:
            call()
        assert "\n" not in str(info.value)


def test_bad_labels_and_data(rbm, digits):
    classifier = finetune.build_classifier(rbm, 10)
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
    recommending = shutil.copytree(folder, tmp_path / "tiny-rbm")
    export.update_card(recommending, finetune_defaults={"patience": 5, "l2": 1e-4, "epochs": 50})
    code = cli.main(["finetune", str(recommending), "--labels-per-class", "1", "3", "--seeds", "2", "--epochs", "30",
                     "--fixed-epochs", "10", "--json", "--save", str(save), "--logdir", str(tmp_path / "tb")])
    out, err = capsys.readouterr()
    assert code == 0, err
    report = json.loads(out)
    assert "tiny-rbm" in err and "RBM 64-32" in err  # it says what it loaded
    # the card's recommended settings apply unless a flag overrides them, and it says which it used
    s, sources = report["settings"], report["settings_sources"]
    assert (s["patience"], s["l2"], s["max_epochs"], s["fixed_epochs_without_validation"], s["lr"]) == (5, 1e-4, 30, 10, 1e-3)
    assert (sources["patience"], sources["l2"], sources["epochs"], sources["fixed_epochs"], sources["lr"]) == (
        "card", "card", "flag", "flag", "default")
    assert "model card: l2 0.0001, patience 5" in err
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

    # zoo classify: the saved classifier's class and probability for each image of .npy and PNG files
    np.save(tmp_path / "x.npy", x.reshape(7, 8, 8))
    viz.save_png(str(tmp_path / "one.png"), x[3].reshape(8, 8))
    code = cli.main(["classify", str(save), str(tmp_path / "x.npy"), str(tmp_path / "one.png"), "--out",
                     str(tmp_path / "p.csv")])
    out, err = capsys.readouterr()
    assert code == 0 and "8 images classified" in out, err
    rows = list(csv.DictReader((tmp_path / "p.csv").open()))
    probabilities = classifier(x).numpy()
    assert [int(r["class"]) for r in rows] == [*classifier.predict_classes(x), classifier.predict_classes(x)[3]]
    np.testing.assert_allclose([float(r["probability"]) for r in rows[:7]], probabilities.max(axis=1), atol=1e-4)
    assert rows[7]["file"].endswith("one.png") and rows[7]["index"] == "0"
    np.save(tmp_path / "bad.npy", x[:, :10])
    np.save(tmp_path / "nan.npy", np.full((2, 64), np.nan))
    for args, message in [([str(save), str(tmp_path / "missing.npy")], "no such file"),
                          ([str(save), str(tmp_path / "bad.npy")], "expected images of 64 pixels"),
                          ([str(save), str(tmp_path / "p.csv")], "expected a .npy or .png file"),
                          ([str(save), str(tmp_path / "nan.npy")], "finite"),
                          ([str(folder), str(tmp_path / "x.npy")], "RBM cannot classify")]:
        code = cli.main(["classify", *args])
        err = capsys.readouterr().err
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, (args, err)


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


def test_table_flag_prints_markdown_with_the_command(folder, tmp_path, capsys):
    args = ["finetune", str(folder), "--labels-per-class", "2", "--seeds", "1", "--epochs", "5", "--logdir",
            str(tmp_path / "tb"), "--table"]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "| labels per class | 2 |" in out and "| pretrained (fine-tuned) |" in out
    assert out.startswith("Test accuracy (%) on all ")
    # the exact command under the table; it prints the table again, so there is no "Regenerate with" line
    assert out.rstrip().splitlines()[-1].startswith(f"Produced by `zoo finetune {folder} --labels-per-class 2 "
                                                    f"--seeds 1 --epochs 5 --logdir {tmp_path / 'tb'} --table` (")
    assert cli.main(["finetune", str(folder), "--labels-per-class", "2", "--seeds", "1", "--epochs", "5",
                     "--evaluate-on", "validation", "--logdir", str(tmp_path / "tb2"), "--table"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Validation accuracy (%) on all {zoo.data.load('digits').validation.n:,} validation images")
    # the table of an earlier --json run
    assert cli.main(["finetune", str(folder), "--labels-per-class", "2", "--seeds", "1", "--epochs", "5",
                     "--logdir", str(tmp_path / "tb3"), "--json"]) == 0
    report = tmp_path / "report.json"
    report.write_text(capsys.readouterr().out)
    assert cli.main(["finetune", str(report), "--table"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Test accuracy (%) on all ") and "| labels per class | 2 |" in out
    assert out.rstrip().endswith(f"Regenerate with `zoo finetune {folder} --labels-per-class 2 --seeds 1 --epochs 5 "
                                 f"--logdir {tmp_path / 'tb3'} --table`.")
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert cli.main(["finetune", str(bad), "--table"]) == 2
    assert "not from `zoo finetune --json`" in capsys.readouterr().err
    bad.write_text("{not json")
    assert cli.main(["finetune", str(bad), "--table"]) == 2
    assert "is not the JSON of `zoo finetune --json`" in capsys.readouterr().err
    assert cli.main(["finetune", str(folder), "--json", "--table"]) == 2
    assert "--table: not allowed with argument --json" in capsys.readouterr().err


def test_describe_settings_names_every_setting_and_dropout_only_when_set():
    settings = dict(optimizer="adam", lr=1e-3, pretrained_lr_multiplier=0.03, l2=1e-4, dropout=0.0,
                    batch_size=32, patience=40)
    assert finetune.describe_settings(settings) == ("optimizer adam, lr 0.001, pretrained layers x0.03, "
                                                    "L2 0.0001, batch 32, patience 40")
    assert "dropout 0.2, batch 32" in finetune.describe_settings({**settings, "dropout": 0.2})


# -- the settings a model card recommends --------------------------------------------------------------------
RBM500_BMNIST = {"shift": 2, "pretrained_lr_multiplier": 0.03, "l2": 0.0001, "patience": 40, "monitor": "val_loss"}


def test_settings_defaults_are_few_shot_s_own_defaults():
    parameters = inspect.signature(finetune.few_shot).parameters
    assert {key: parameters[key].default for key in finetune.SETTINGS_DEFAULTS} == finetune.SETTINGS_DEFAULTS
    settings, sources = finetune.resolve_settings(None, finetune.SETTINGS_DEFAULTS)  # every setting can be a flag
    assert settings == finetune.SETTINGS_DEFAULTS and set(sources.values()) == {"flag"}


def test_resolve_settings_takes_each_setting_from_the_flags_else_the_card_else_the_defaults():
    defaults = finetune.SETTINGS_DEFAULTS
    for card in (None, {}, {"model": "RBM"}, {"finetune_defaults": None}, {"finetune_defaults": {}}):
        settings, sources = finetune.resolve_settings(card, {})
        assert settings == defaults and set(sources.values()) == {"default"}
    card = {"model": "RBM", "finetune_defaults": RBM500_BMNIST}
    settings, sources = finetune.resolve_settings(card, {"patience": 10, "lr": None, "shift": 0})
    assert settings == {**defaults, **RBM500_BMNIST, "patience": 10, "shift": 0} and list(settings) == list(defaults)
    assert sources == {key: "flag" if key in ("patience", "shift") else "card" if key in RBM500_BMNIST else "default"
                       for key in defaults}
    assert finetune.describe_sources(settings, sources) == (
        "flags: patience 10, shift 0; model card: pretrained_lr_multiplier 0.03, l2 0.0001, monitor val_loss; "
        "defaults: lr 0.001, batch_size 32, optimizer adam, epochs 200, fixed_epochs 100, dropout 0, refit True")
    settings, sources = finetune.resolve_settings(card)
    assert settings["shift"] == 2 and settings["l2"] == 1e-4 and sources["monitor"] == "card"


@pytest.mark.parametrize("recommended, message", [
    ({"shift": -1}, "card field finetune_defaults.shift must be an integer >= 0, got -1"),
    ({"patience": 2.5}, "card field finetune_defaults.patience must be an integer >= 1"),
    ({"lr": "0.1"}, "card field finetune_defaults.lr must be a number, got '0.1'"),
    ({"l2": True}, "card field finetune_defaults.l2 must be a number"),
    ({"pretrained_lr_multiplier": -0.1}, "card field finetune_defaults.pretrained_lr_multiplier must be a finite number"),
    ({"dropout": 1}, "card field finetune_defaults.dropout must be in [0, 1)"),
    ({"monitor": "loss"}, "card field finetune_defaults.monitor 'loss': expected one of"),
    ({"optimizer": "rmsprop"}, "card field finetune_defaults.optimizer 'rmsprop'"),
    ({"refit": "yes"}, "card field finetune_defaults.refit must be true or false"),
    ({"shfit": 2, "shift": 1}, "card field finetune_defaults has unknown setting 'shfit': expected some of lr, "),
    ([2], "card field finetune_defaults must be an object"),
])
def test_a_bad_recommendation_names_the_card_field(recommended, message):
    with pytest.raises(ValueError) as info:
        finetune.resolve_settings({"finetune_defaults": recommended}, {"shift": 0})
    assert message in str(info.value)


def test_bad_overrides_are_refused():
    with pytest.raises(ValueError, match="unknown setting 'seeds'"):
        finetune.resolve_settings(None, {"seeds": 3})
    with pytest.raises(ValueError, match="patience must be an integer >= 1"):
        finetune.resolve_settings(None, {"patience": 0})
    with pytest.raises(ValueError, match="must be a JSON object"):
        finetune.resolve_settings(["not", "a", "card"])
