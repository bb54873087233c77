"""zoo.HybridModel: the objective is its two terms weighted (both weights move the gradients as they should, a
zero weight silences its term), unlabelled rows never reach the supervised term, the semi-supervised batches
hold the proportion they are asked for, round trips; on tiny models."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo import data, training
from zoo.models import AuxiliaryDeepGenerativeModel, HelmholtzMachine, RBM
from zoo.models.hybrid import HybridModel


@pytest.fixture(scope="module")
def xy():
    d = data.load("binarized_mnist")
    return d.validation.x[:200], d.validation.y[:200]


def _hybrid(generative="helmholtz", **kwargs):
    gen = (HelmholtzMachine([8, 4], k=3, n_visible=784, seed=0) if generative == "helmholtz" else
           AuxiliaryDeepGenerativeModel(latent=3, auxiliary=3, hidden=(16,), k=2, seed=0, n_visible=784,
                                        n_classes=10 if generative == "adgm-classes" else None))
    return HybridModel(gen, **{"n_classes": 10, "hidden": (16,), "seed": 0, **kwargs})


def _gradients(model, x, y, seed):
    with tf.GradientTape(persistent=True) as tape:
        supervised, generative, _, _ = model.objective_terms(tf.constant(x), tf.constant(y), seed)
    variables = model.trainable_variables
    sources = [v.value for v in variables]  # the tf.Variables under Keras' variables, for an eager tape
    return ([tape.gradient(supervised, sources, unconnected_gradients="zero"),
             tape.gradient(generative, sources, unconnected_gradients="zero")], variables)


@pytest.mark.parametrize("generative", ["helmholtz", "adgm", "adgm-classes"])
@pytest.mark.parametrize("weights", [(1.0, 1.0), (2.5, 0.3), (0.0, 1.0), (1.0, 0.0)])
def test_one_update_is_the_weighted_sum_of_the_two_terms_gradients(xy, generative, weights):
    x, y = xy[0][:20], xy[1][:20].astype(np.int32).copy()
    y[::2] = -1  # half unlabelled
    model = _hybrid(generative, sup_weight=weights[0], unsup_weight=weights[1])
    lr = 0.01
    model.compile(keras.optimizers.SGD(learning_rate=lr), steps_per_execution=1)
    (g_sup, g_gen), variables = _gradients(model, x, y, _peek(model))  # with the samples train_step will draw
    before = [v.numpy().copy() for v in variables]
    model.fit(tf.data.Dataset.from_tensors((x, y)), epochs=1, verbose=0)
    for v, b, gs, gg in zip(variables, before, g_sup, g_gen):
        expected = b - lr * (weights[0] * gs.numpy() + weights[1] * gg.numpy())
        np.testing.assert_allclose(v.numpy(), expected, atol=2e-5, err_msg=v.path)


def _peek(model):
    """The seed the model's next train_step draws, without drawing it."""
    state = model.seed_generator.state.numpy().copy()
    seed = tf.cast(model.seed_generator.next(), tf.int32)
    model.seed_generator.state.assign(state)
    return seed


def test_a_zero_weight_silences_its_term(xy):
    x, y = xy[0][:20], xy[1][:20].astype(np.int32)
    model = _hybrid(sup_weight=0.0, unsup_weight=1.0)
    (g_sup, g_gen), variables = _gradients(model, x, y, tf.constant([0, 1]))
    classifier = {id(v) for layer in model.dense + [model.logits] for v in layer.trainable_variables}
    for v, gg in zip(variables, g_gen):
        if id(v) in classifier:  # the generative term never reaches the classifier's own weights
            assert not np.any(gg.numpy()), v.path
    model.compile(keras.optimizers.SGD(learning_rate=0.1), steps_per_execution=1)
    before = [v.numpy().copy() for v in model.logits.trainable_variables]
    model.fit(tf.data.Dataset.from_tensors((x, y)), epochs=1, verbose=0)
    assert all(np.array_equal(b, v.numpy()) for b, v in zip(before, model.logits.trainable_variables))


def test_unlabelled_rows_never_reach_the_supervised_term(xy):
    x, y = xy[0][:20].copy(), xy[1][:20].astype(np.int32).copy()
    y[10:] = -1
    model = _hybrid()
    model.logits.kernel.assign(np.random.default_rng(0).standard_normal(model.logits.kernel.shape).astype(np.float32))
    supervised = model.objective_terms(tf.constant(x), tf.constant(y), tf.constant([0, 1]))[0].numpy()
    x[10:] = 1.0 - x[10:]  # other unlabelled images, other (wrong) labels on them: the same term
    other = model.objective_terms(tf.constant(x), tf.constant(y), tf.constant([0, 1]))[0].numpy()
    assert supervised == pytest.approx(other, abs=1e-6)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        term = model.objective_terms(xt, tf.constant(y), tf.constant([0, 1]))[0]
    grad = tape.gradient(term, xt).numpy()
    assert not np.any(grad[10:]) and np.any(grad[:10])
    none = np.full(20, -1, np.int32)  # no labelled row at all: the term is 0, not NaN
    assert model.objective_terms(xt, tf.constant(none), tf.constant([0, 1]))[0].numpy() == 0.0


def test_with_a_class_variable_unlabelled_rows_train_the_classifier_and_labelled_rows_take_their_class(xy):
    """The ADGM with y latent: the generative term reaches the classifier's own weights through the unlabelled
    rows only (their bound sums over y under p(y | x)); a labelled row's bound is its class's, whatever the
    classifier says."""
    x, y = xy[0][:20], xy[1][:20].astype(np.int32).copy()
    model = _hybrid("adgm-classes", sup_weight=0.0)
    logits_kernel = model.logits.kernel
    for labels, reaches in ((y, False), (np.full(20, -1, np.int32), True)):
        (_, g_gen), variables = _gradients(model, x, labels, tf.constant([0, 1]))
        g = dict(zip([id(v) for v in variables], g_gen))[id(logits_kernel)]
        assert bool(np.any(g.numpy())) == reaches
    seed = tf.constant([3, 4])
    _, before, _, _ = model.objective_terms(tf.constant(x), tf.constant(y), seed)
    logits_kernel.assign(np.random.default_rng(0).standard_normal(logits_kernel.shape).astype(np.float32))
    _, after, _, _ = model.objective_terms(tf.constant(x), tf.constant(y), seed)
    assert float(before) == float(after)
    with pytest.raises(ValueError, match="12 classes"):
        HybridModel(AuxiliaryDeepGenerativeModel(3, 3, (8,), n_classes=12, n_visible=784), n_classes=10)


def test_semi_supervised_batches_hold_their_proportion():
    rng = np.random.default_rng(0)
    x = (rng.random((230, 6)) < 0.5).astype(np.float32)
    y = rng.integers(0, 4, 230)
    labelled = np.sort(rng.choice(230, 12, replace=False))
    ds = data.semi_supervised_batches(x, y, labelled, batch_size=20, labelled_per_batch=5, seed=3)
    seen_labelled, seen_unlabelled = [], []
    for xb, yb in ds:
        xb, yb = xb.numpy(), yb.numpy()
        assert xb.shape == (20, 6) and np.sum(yb >= 0) == 5 and np.all(yb[5:] == -1)
        seen_labelled += [tuple(r) + (int(c),) for r, c in zip(xb[:5], yb[:5])]
        seen_unlabelled += [tuple(r) for r in xb[5:]]
    assert len(seen_unlabelled) == (230 // 15) * 15  # one pass over x, whole batches
    pairs = {tuple(x[i]) + (int(y[i]),) for i in labelled}
    assert set(seen_labelled) <= pairs and len(set(seen_labelled)) == len(pairs)  # each labelled row, its label
    everything = data.semi_supervised_batches(x, y, labelled, batch_size=4, labelled_per_batch=4, seed=3)
    assert sum(1 for _ in everything) == 3
    with pytest.raises(ValueError, match="larger than batch_size"):
        data.semi_supervised_batches(x, y, labelled, batch_size=4, labelled_per_batch=5)
    with pytest.raises(ValueError, match="more than the 12 labelled"):
        data.semi_supervised_batches(x, y, labelled, batch_size=40, labelled_per_batch=13)


def test_training_learns_the_labels_and_round_trips(xy, tmp_path):
    x, y = xy
    model = _hybrid("adgm", ramp_steps=10)
    model.compile(keras.optimizers.Adam(3e-3))
    ds = data.semi_supervised_batches(x, y, np.arange(100), batch_size=50, labelled_per_batch=25, seed=0)
    monitor = training.HybridMonitor(x[150:], y[150:])
    history = model.fit(ds, epochs=15, verbose=0, validation_data=(x[100:150], y[100:150]), callbacks=[monitor])
    assert model.accuracy(x[:100], y[:100]) > 0.5  # the labelled rows, well above chance (0.1)
    assert float(model.unsup_weight_now()) == pytest.approx(1.0)
    # the ramp as logged: 8 updates an epoch (200 unlabelled rows, 25 a batch) of the 10 it lasts, then all
    assert history.history["unsup_weight"][:3] == pytest.approx([0.8, 1.0, 1.0])
    assert set(history.history["sup_weight"]) == {1.0}
    assert history.history["unlabelled_accuracy"][-1] == pytest.approx(model.accuracy(x[150:], y[150:]))
    model.save(tmp_path / "h.keras")
    loaded = keras.models.load_model(tmp_path / "h.keras")
    np.testing.assert_array_equal(loaded.predict_classes(x[:30]), model.predict_classes(x[:30]))
    assert loaded.get_config()["generative"]["class_name"] == "AuxiliaryDeepGenerativeModel"


def test_a_features_classifier_sees_x_only_through_the_features(xy):
    """classifier="features" (M1): its first layer takes the n_features features, and its logits are the MLP of
    them, computed here from the layers' weights by hand; the mlp's first layer takes x as well."""
    x, _ = xy
    model = _hybrid(classifier="features", hidden=(16, 8))
    features = model.generative(x[:20]).numpy()
    kernel, bias = model.dense[0].kernel.numpy(), model.dense[0].bias.numpy()
    assert kernel.shape == (model.n_features, 16)
    h = np.maximum(features @ kernel + bias, 0)
    h = np.maximum(h @ model.dense[1].kernel.numpy() + model.dense[1].bias.numpy(), 0)
    expected = h @ model.logits.kernel.numpy() + model.logits.bias.numpy()
    np.testing.assert_allclose(model(x[:20]).numpy(), expected, rtol=1e-4, atol=1e-5)
    assert _hybrid(hidden=(16,)).dense[0].kernel.shape == (784 + model.n_features, 16)
    assert "on 4 features of" in model.describe()


@pytest.mark.parametrize("kwargs, message", [
    ({"sup_weight": 0.0, "unsup_weight": 0.0}, "both 0"), ({"sup_weight": -1.0}, "sup_weight"),
    ({"classifier": "rnn"}, "classifier"), ({"classifier": "cnn"}, "image_shape"),
    ({"n_classes": 1}, "n_classes")])
def test_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        _hybrid(**kwargs)


def test_bad_generative_parts_and_labels():
    with pytest.raises(ValueError, match="RBM cannot be a deep hybrid.s generative part: .*trainable bound"):
        HybridModel(RBM(5, n_visible=784))
    with pytest.raises(ValueError, match="no weights yet"):
        HybridModel(HelmholtzMachine([4]))
    model = _hybrid()
    for y, message in [(np.zeros((3, 1), int), "1-D array of 3"), (np.array([0.5, 1, 2]), "integer"),
                       (np.array([0, 10, 1]), r"\[0, 9\] or -1"), (np.array([-2, 0, 1]), r"\[-2, 1\]")]:
        with pytest.raises(ValueError, match=message):
            model.validate_labels(y, 3)


def test_fit_on_arrays_checks_labels(xy):
    x, y = xy
    model = _hybrid()
    model.fit(x[:100], y[:100].astype(np.int64), batch_size=50, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="class labels in"):
        model.fit(x[:100], np.full(100, 12), batch_size=50, verbose=0)


@pytest.mark.parametrize("generative", ["helmholtz", "adgm"])
def test_a_saved_model_classifies_encodes_and_bounds_without_zoo(xy, tmp_path, generative):
    import json
    import subprocess
    import sys

    from zoo import export

    x = xy[0][:6]
    model = _hybrid(generative)
    model.logits.kernel.assign(np.random.default_rng(1).standard_normal(model.logits.kernel.shape).astype(np.float32))
    folder = export.save(model, tmp_path / "hybrid", saved_model=True)
    script = f"""
import json, sys, numpy as np, tensorflow as tf
s = tf.saved_model.load({str(folder / "saved_model")!r}).signatures
x = tf.constant(np.array({x.tolist()!r}, np.float32))
print(json.dumps({{"names": sorted(s), "zoo": "zoo" in sys.modules,
    "probabilities": s["classify"](x=x)["probabilities"].numpy().tolist(),
    "class": s["classify"](x=x)["class"].numpy().tolist(),
    "features": s["encode"](x=x)["features"].numpy().tolist(),
    "log_prob": s["log_prob"](x=x, k=tf.constant(5), seed=tf.constant(0))["log_prob"].numpy().tolist()}}))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert not out["zoo"] and {"classify", "encode", "log_prob", "sample"} <= set(out["names"])
    probabilities = tf.nn.softmax(model(x)).numpy()
    np.testing.assert_allclose(out["probabilities"], probabilities, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(out["class"], probabilities.argmax(-1))
    np.testing.assert_allclose(out["features"], model.generative(x).numpy(), rtol=1e-5, atol=1e-6)
    # the k-sample bound served is the generative part's own, same samples
    log_prob, _ = model.generative.serving_endpoints()["log_prob"]
    expected = log_prob(tf.constant(x), tf.constant(5), tf.constant(0))["log_prob"].numpy()
    np.testing.assert_allclose(out["log_prob"], expected, rtol=1e-5)
