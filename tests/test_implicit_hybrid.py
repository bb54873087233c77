"""zoo.ImplicitHybrid (ALI whose joint discriminator classifies, plus a Pi-model consistency term): its objective
against a NumPy computation from the networks' weights, the translations, the consistency ramp, one update as
the weighted sum of the terms' gradients, the weight average, round trips (.keras, a SavedModel used without
zoo), bad input, and `zoo train implicit-hybrid`; on tiny networks."""
import json
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo import cli, data, export, training
from zoo.models import ImplicitHybrid

#: 16 pixels as 4 x 4 images, z of 3, three classes; no noise and no dropout: every pass is deterministic
TINY = {"n_classes": 3, "image_shape": (4, 4), "n_latent": 3, "generator_hidden": (5,), "encoder_hidden": (6,),
        "discriminator_hidden": (8, 7), "latent_hidden": (4,), "input_noise": 0.0, "noise": 0.0,
        "latent_dropout": (0.0, 0.0), "seed": 0}
D_TERMS = ("supervised_loss", "consistency_labelled", "gan_loss", "consistency_unlabelled")


def _tiny(**kwargs):
    return ImplicitHybrid(16, **{**TINY, **kwargs})


@pytest.fixture(scope="module")
def batch():
    """12 images, 5 labelled rows among 7 unlabelled ones (y = -1), interleaved."""
    rng = np.random.default_rng(0)
    x = rng.random((12, 16)).astype(np.float32)
    y = np.array([0, -1, 2, -1, 1, -1, -1, 2, -1, 0, -1, -1], np.int32)
    return x, y


def _nets(model, average=False):
    return ([model.ema_encoder, model.ema_x_branch, model.ema_z_branch, model.ema_head] if average else
            [model.generator, model.encoder_net, model.x_branch, model.z_branch, model.head])


def _randomize(model, seed=0, average=False):
    """Random weights (biases, batch-norm scales and moving statistics too) in the trained networks, or in the
    averaged ones, so that no number below is a trivial 0 or 1."""
    rng = np.random.default_rng(seed)
    for net in _nets(model, average):
        net.set_weights([rng.uniform(0.5, 2.0, w.shape) if "moving_variance" in w.path else
                         rng.normal(0.0, 0.8, w.shape) for w in net.weights])


def _peek(model):
    """The seed the model's next train_step draws, without drawing it."""
    state = model.seed_generator.state.numpy().copy()
    seed = tf.cast(model.seed_generator.next(), tf.int32)
    model.seed_generator.state.assign(state)
    return seed


# ---- a second computation in NumPy (float64), from the networks' weights ----------------------------------

ACTIVATIONS = {"linear": lambda h: h, "relu": lambda h: np.maximum(h, 0.0),
               "sigmoid": lambda h: 1.0 / (1.0 + np.exp(-h)), "softplus": lambda h: np.logaddexp(0.0, h),
               "leaky_relu": lambda h: np.where(h > 0, h, 0.2 * h)}


def _np_net(net, h, training):
    """A Sequential of Dense, BatchNormalization and Activation layers on h: batch normalisation by the batch's
    own statistics (biased variance) in training, by the moving ones otherwise."""
    h = np.asarray(h, np.float64)
    for layer in net.layers:
        if isinstance(layer, keras.layers.Dense):
            h = h @ layer.kernel.numpy().astype(np.float64)
            if layer.use_bias:
                h = h + layer.bias.numpy()
            h = ACTIVATIONS[layer.activation.__name__](h)
        elif isinstance(layer, keras.layers.BatchNormalization):
            mean, var = (h.mean(0), h.var(0)) if training else (layer.moving_mean.numpy(),
                                                                 layer.moving_variance.numpy())
            h = (h - mean) / np.sqrt(var + layer.epsilon) * layer.gamma.numpy() + layer.beta.numpy()
        elif isinstance(layer, keras.layers.Activation):
            h = ACTIVATIONS[layer.activation.__name__](h)
        else:
            raise AssertionError(f"no NumPy version of {layer}")
    return h


def _np_discriminate(model, x, z, average=False, training=True):
    """(logits, D's last hidden features) of pairs (x, z)."""
    xb, zb, head = (model.ema_x_branch, model.ema_z_branch, model.ema_head) if average else \
        (model.x_branch, model.z_branch, model.head)
    features = np.concatenate([_np_net(xb, x, training), _np_net(zb, z, training)], axis=1)
    return _np_net(head, features, training), features


def _np_logits(model, x, average):
    """Inference: l(x, E(x)) by the averaged networks or the trained ones."""
    encoder = model.ema_encoder if average else model.encoder_net
    return _np_discriminate(model, x, _np_net(encoder, x, False), average=average, training=False)[0]


def _logsumexp(a):
    top = a.max(axis=1, keepdims=True)
    return (top + np.log(np.exp(a - top).sum(axis=1, keepdims=True)))[:, 0]


def _softmax(a):
    return np.exp(a - _logsumexp(a)[:, None])


def _shifts(seed, n, translate):
    """The translations `translated` draws: (2, n) row and column shifts."""
    return tf.random.stateless_uniform([2, n], seed, -translate, translate + 1, dtype=tf.int32).numpy()


def _np_translated(x, image_shape, shifts):
    """Each image moved down by shifts[0] and right by shifts[1] pixels, zeros shifted in (np.roll, then the
    rows and columns that wrapped around set to 0)."""
    h, w = image_shape[:2]
    images = np.asarray(x).reshape(len(x), h, w, -1)
    out = np.empty_like(images)
    for i, (dr, dc) in enumerate(shifts.T):
        moved = np.roll(images[i], (dr, dc), axis=(0, 1))
        if dr > 0:
            moved[:dr] = 0
        elif dr < 0:
            moved[dr:] = 0
        if dc > 0:
            moved[:, :dc] = 0
        elif dc < 0:
            moved[:, dc:] = 0
        out[i] = moved
    return out.reshape(np.shape(x))


def _np_losses(model, x, y, seed, w):
    """The terms of `losses_of` and D's loss, by NumPy."""
    seeds = tf.random.experimental.stateless_split(seed, 3)
    lab, unl = y >= 0, y < 0
    passes = []
    for s in seeds[:2]:
        xs = _np_translated(x, model.image_shape, _shifts(s, len(x), model.translate)) if model.translate else x
        passes.append(_np_discriminate(model, xs, _np_net(model.encoder_net, xs, True)))
    (logits, real_features), (logits2, _) = passes
    ce = _logsumexp(logits) - logits[np.arange(len(y)), np.maximum(y, 0)]
    pi = np.mean((_softmax(logits) - _softmax(logits2)) ** 2, axis=1) if model.consistency_weight else 0 * ce
    z = model.prior_sample(int(unl.sum()), seeds[2]).numpy()
    fake_logits, fake_features = _np_discriminate(model, _np_net(model.generator, z, True), z)
    real, fake = _logsumexp(logits), _logsumexp(fake_logits)
    terms = {"supervised_loss": ce[lab].mean(), "consistency_labelled": pi[lab].mean(),
             "consistency_unlabelled": pi[unl].mean(),
             "gan_loss": 0.5 * (np.logaddexp(0, -real[unl]).mean() + np.logaddexp(0, fake).mean()),
             "feature_matching": np.abs(real_features[unl].mean(0) - fake_features.mean(0)).mean(),
             "real_score": (1 / (1 + np.exp(-real[unl]))).mean(), "fake_score": (1 / (1 + np.exp(-fake))).mean(),
             "accuracy": (logits.argmax(1) == y)[lab].mean()}
    d_loss = (model.supervised_weight * terms["supervised_loss"] + w * terms["consistency_labelled"] +
              model.unlabelled_weight * (terms["gan_loss"] + w * terms["consistency_unlabelled"]))
    return d_loss, terms


# ---- 1. the objective -------------------------------------------------------------------------------------

def test_the_networks_are_what_the_numpy_computation_assumes():
    model = _tiny()
    kinds = {name: [type(layer).__name__ for layer in net.layers] for name, net in
             [("G", model.generator), ("E", model.encoder_net), ("x", model.x_branch), ("z", model.z_branch),
              ("head", model.head)]}
    assert kinds == {"G": ["Dense", "BatchNormalization", "Activation", "Dense"],
                     "E": ["Dense", "BatchNormalization", "Activation", "Dense"],
                     "x": ["Dense", "Dense"], "z": ["Dense"], "head": ["Dense"]}
    assert model.head.layers[0].kernel.shape == (7 + 4, 3)  # the x branch's last layer beside the z branch's


@pytest.mark.parametrize("settings, w", [
    ({"consistency_weight": 2.0, "translate": 1}, None),  # two passes translated differently, w from the ramp (off)
    ({"consistency_weight": 1.5, "translate": 2, "supervised_weight": 2.5, "unlabelled_weight": 0.3}, 0.37),
    ({}, None),  # no consistency term: one pass
])
def test_losses_of_is_the_objective_computed_by_numpy(batch, settings, w):
    x, y = batch
    model = _tiny(**settings)
    _randomize(model)
    seed = tf.constant([7, 11])
    d_loss, g_loss, terms = model.losses_of(tf.constant(x), tf.constant(y), seed, w=w)
    w_used = model.consistency_weight if w is None else w
    expected_d, expected = _np_losses(model, x, y, seed, w_used)
    assert set(terms) == set(expected)
    for name, value in expected.items():
        assert float(terms[name]) == pytest.approx(value, rel=2e-5, abs=1e-6), name
    assert float(d_loss) == pytest.approx(expected_d, rel=2e-5)
    assert float(g_loss) == pytest.approx(expected["feature_matching"], rel=2e-5)
    if settings.get("translate"):  # the two passes differ: the term is on
        assert expected["consistency_labelled"] > 1e-6 and expected["consistency_unlabelled"] > 1e-6
    else:
        assert float(terms["consistency_labelled"]) == float(terms["consistency_unlabelled"]) == 0.0


def test_a_batch_without_labels_has_no_supervised_term(batch):
    x, y = batch
    model = _tiny(consistency_weight=1.0, translate=1)
    _randomize(model)
    none = np.full_like(y, -1)  # no labelled row: the supervised term is 0, not NaN
    d_loss, _, terms = model.losses_of(tf.constant(x), tf.constant(none), tf.constant([3, 4]))
    assert float(terms["supervised_loss"]) == float(terms["consistency_labelled"]) == float(terms["accuracy"]) == 0.0
    assert float(d_loss) == pytest.approx(float(terms["gan_loss"]) + float(terms["consistency_unlabelled"]))
    assert np.isfinite(float(d_loss)) and float(terms["consistency_unlabelled"]) > 0


def test_a_batch_without_unlabelled_rows_takes_every_row_as_real(batch):
    """All labels (--labels-per-class all): the GAN's real pairs are every row, one fake each, nothing NaN."""
    x, y = batch
    labelled = np.where(y < 0, 1, y).astype(np.int32)
    model = _tiny(unlabelled_weight=0.5)
    _randomize(model)
    d_loss, g_loss, terms = model.losses_of(tf.constant(x), tf.constant(labelled), tf.constant([1, 2]))
    assert all(np.isfinite(float(v)) for v in terms.values()), {k: float(v) for k, v in terms.items()}
    assert float(terms["gan_loss"]) > 0 and float(g_loss) > 0
    assert float(d_loss) == pytest.approx(float(terms["supervised_loss"]) + 0.5 * float(terms["gan_loss"]), rel=1e-6)


# ---- 2. translations ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("image_shape, translate", [((4, 4), 1), ((4, 4), 2), ((4, 2, 2), 1)])
def test_translations_are_numpy_shifts_with_zeros_shifted_in(image_shape, translate):
    model = _tiny(image_shape=image_shape, translate=translate)
    x = np.random.default_rng(1).random((200, 16)).astype(np.float32)
    seed = tf.constant([5, 9])
    shifts = _shifts(seed, len(x), translate)
    np.testing.assert_array_equal(model.translated(tf.constant(x), seed).numpy(),
                                  _np_translated(x, image_shape, shifts))
    assert shifts.min() == -translate and shifts.max() == translate  # within +-translate, both ends drawn
    assert set(np.unique(shifts)) == set(range(-translate, translate + 1))
    other = model.translated(tf.constant(x), tf.constant([5, 10])).numpy()
    assert not np.array_equal(other, model.translated(tf.constant(x), seed).numpy())


def test_no_translation_is_the_identity():
    model = _tiny()
    x = tf.constant(np.random.default_rng(2).random((5, 16)).astype(np.float32))
    assert model.translated(x, tf.constant([1, 2])) is x


# ---- 3. the consistency ramp ----------------------------------------------------------------------------------

def test_the_consistency_weight_ramps_up_then_holds():
    model = _tiny(consistency_weight=3.0, consistency_ramp_steps=40, unlabelled_weight=0.5)
    assert float(model.consistency_weight_now()) == 3.0  # not compiled: no optimizer, no iterations, the weight
    model.compile(keras.optimizers.SGD(0.1))
    for t in (0, 1, 10, 25, 39, 40, 41, 1000):
        model.optimizer.iterations.assign(t)
        expected = 3.0 * np.exp(-5.0 * (1.0 - min(t / 40, 1.0)) ** 2)
        assert float(model.consistency_weight_now()) == pytest.approx(expected, rel=1e-6), t
        weights = model.objective_weights()
        assert float(weights["consistency_weight"]) == pytest.approx(expected, rel=1e-6)
        assert weights["unlabelled_weight"] == 0.5
    flat = _tiny(consistency_weight=3.0, consistency_ramp_steps=0)
    flat.compile(keras.optimizers.SGD(0.1))
    for t in (0, 7):
        flat.optimizer.iterations.assign(t)
        assert float(flat.consistency_weight_now()) == 3.0


# ---- 4. the weights move the gradients ---------------------------------------------------------------------------

def _term_gradients(model, x, y, seed):
    """{term: its gradient}: D's four terms w.r.t. D's variables, feature matching w.r.t. G's and E's."""
    d_vars, g_vars = model.discriminator_variables(), model.generator_variables()
    with tf.GradientTape(persistent=True) as tape:
        _, _, terms = model.losses_of(tf.constant(x), tf.constant(y), seed)
    grads = {name: tape.gradient(terms[name], [v.value for v in d_vars], unconnected_gradients="zero")
             for name in D_TERMS}
    grads["feature_matching"] = tape.gradient(terms["feature_matching"], [v.value for v in g_vars],
                                              unconnected_gradients="zero")
    return grads, d_vars, g_vars


@pytest.mark.parametrize("supervised, unlabelled, consistency, adversarial", [
    (1.0, 1.0, 2.0, True), (2.5, 0.3, 0.7, True), (0.0, 1.0, 1.5, True), (1.0, 0.0, 1.0, True),
    (1.0, 1.0, 1.0, False)])
def test_one_update_is_the_weighted_sum_of_the_terms_gradients(batch, supervised, unlabelled, consistency,
                                                                  adversarial):
    x, y = batch
    model = _tiny(supervised_weight=supervised, unlabelled_weight=unlabelled, consistency_weight=consistency,
                  adversarial=adversarial, translate=1, consistency_ramp_steps=10)
    _randomize(model)
    lr = 0.05
    model.compile(keras.optimizers.SGD(lr), generator_optimizer=keras.optimizers.SGD(lr))
    model.optimizer.iterations.assign(3)  # on the ramp: w(3) = w exp(-5 (1 - 3/10)^2)
    w = consistency * np.exp(-5.0 * 0.7 ** 2)
    grads, d_vars, g_vars = _term_gradients(model, x, y, _peek(model))  # the seed train_step will draw
    for name in ("supervised_loss", "consistency_labelled", "consistency_unlabelled") + (
            ("gan_loss",) if adversarial and unlabelled else ()):
        assert any(np.any(g.numpy()) for g in grads[name]), name  # each term reaches D: the test is not vacuous
    d_before, g_before = [v.numpy().copy() for v in d_vars], [v.numpy().copy() for v in g_vars]
    model.fit(tf.data.Dataset.from_tensors((x, y)), epochs=1, verbose=0)
    weight = {"supervised_loss": supervised, "consistency_labelled": w, "gan_loss": unlabelled,
              "consistency_unlabelled": unlabelled * w}
    for i, (v, before) in enumerate(zip(d_vars, d_before)):
        step = sum(weight[name] * grads[name][i].numpy() for name in D_TERMS)
        np.testing.assert_allclose(v.numpy(), before - lr * step, atol=2e-5, err_msg=v.path)
    if adversarial and unlabelled:
        for v, before, g in zip(g_vars, g_before, grads["feature_matching"]):
            np.testing.assert_allclose(v.numpy(), before - lr * g.numpy(), atol=2e-5, err_msg=v.path)
        assert int(model.generator_optimizer.iterations) == 1
    else:  # no GAN: G and E stay as they were
        for v, before in zip(g_vars, g_before):
            np.testing.assert_array_equal(v.numpy(), before, err_msg=v.path)
        assert int(model.generator_optimizer.iterations) == 0
    assert int(model.optimizer.iterations) == 4


def _d_gradients(model, images, y):
    d_vars = [v.value for v in model.discriminator_variables()]
    with tf.GradientTape() as tape:
        d_loss, _, _ = model.losses_of(tf.constant(images), tf.constant(y), tf.constant([3, 4]))
    return tape.gradient(d_loss, d_vars, unconnected_gradients="zero")


def test_with_a_zero_unlabelled_weight_unlabelled_rows_reach_d_only_through_the_encoders_batch_statistics(batch):
    """A documented limitation: E's batch normalisation takes its training statistics over the whole batch, so
    with unlabelled_weight 0 the unlabelled rows still shape every row's code E(x); with E's batch normalisation
    frozen (inference statistics) they do not reach D's update at all."""
    x, y = batch
    other = x.copy()
    other[y < 0] = 1.0 - other[y < 0]  # other unlabelled images
    model = _tiny(unlabelled_weight=0.0, consistency_weight=1.0, translate=1)
    _randomize(model)
    moved = [np.abs(a.numpy() - b.numpy()).max() for a, b in zip(_d_gradients(model, x, y),
                                                                  _d_gradients(model, other, y))]
    assert max(moved) > 1e-4
    for layer in model.encoder_net.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False  # Keras 3: a frozen batch normalisation uses its moving statistics
    for a, b in zip(_d_gradients(model, x, y), _d_gradients(model, other, y)):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-7)


# ---- 5. the weight average -----------------------------------------------------------------------------------------

def test_the_average_follows_the_trained_networks(batch):
    x, y = batch
    model = _tiny(ema_decay=0.6, consistency_weight=1.0, translate=1)
    for net, ema in model._pairs():  # built: the average starts at the trained networks
        assert [w.path.split("/")[0] for w in net.weights] == [w.path.split("/")[0] for w in ema.weights]
        for v, e in zip(net.weights, ema.weights):
            # copy_to_average(1.0) computes e + 1 * (v - e): equal up to float32 rounding, not always bit for bit
            np.testing.assert_allclose(e.numpy(), v.numpy(), rtol=1e-6, atol=1e-7, err_msg=v.path)
    _randomize(model, seed=1)
    model.compile(keras.optimizers.SGD(0.05), generator_optimizer=keras.optimizers.SGD(0.05))
    # the rate of the iteration count t before the step (read before D's update is applied): 1 - (1 + t) / (10 + t)
    # at first, then 1 - ema_decay
    for iterations, rate in [(0, 0.9), (30, 0.4)]:
        assert rate == pytest.approx(1.0 - min(0.6, (1.0 + iterations) / (10.0 + iterations)))
        _randomize(model, seed=2 + iterations, average=True)  # an average away from the trained weights
        model.optimizer.iterations.assign(iterations)
        old = [[e.numpy().copy() for e in ema.weights] for _, ema in model._pairs()]
        model.fit(tf.data.Dataset.from_tensors((x, y)), epochs=1, verbose=0)
        for (net, ema), olds in zip(model._pairs(), old):
            for v, e, o in zip(net.weights, ema.weights, olds):
                if v.trainable:
                    np.testing.assert_allclose(e.numpy(), o + rate * (v.numpy() - o), rtol=1e-5, atol=1e-6,
                                               err_msg=f"{v.path} at {iterations}")
                else:  # batch-norm moving statistics: copied
                    assert "moving" in v.path
                    np.testing.assert_array_equal(e.numpy(), v.numpy(), err_msg=v.path)
                    assert not np.allclose(o, v.numpy())


def test_call_classifies_by_the_average_unless_told_otherwise(batch):
    x, _ = batch
    model = _tiny()
    _randomize(model, seed=3)
    _randomize(model, seed=4, average=True)
    averaged, trained = _np_logits(model, x, average=True), _np_logits(model, x, average=False)
    assert not np.allclose(averaged, trained)
    np.testing.assert_allclose(model(x).numpy(), averaged, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(model(x, average=False).numpy(), trained, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(model.predict_probabilities(x), _softmax(averaged), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(model.predict_classes(x), averaged.argmax(1))
    codes = _np_net(model.ema_encoder, x, False)
    np.testing.assert_allclose(model.encode(x), codes, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.reconstruct(x), _np_net(model.generator, codes, False), rtol=1e-5, atol=1e-6)
    # the Encoder capability: f(x, E(x)) of the averaged networks, a copy that does not follow the model
    features = np.concatenate([_np_net(model.ema_x_branch, x, False), _np_net(model.ema_z_branch, codes, False)], 1)
    encoder = model.encoder()
    np.testing.assert_allclose(encoder(x).numpy(), features, rtol=1e-5, atol=1e-5)
    _randomize(model, seed=5, average=True)
    np.testing.assert_allclose(encoder(x).numpy(), features, rtol=1e-5, atol=1e-5)
    # samples: G of z ~ U(0, 1)^3 drawn from (seed, 1)
    z = tf.random.stateless_uniform([6, 3], tf.constant([8, 1]), dtype=tf.float32).numpy()
    np.testing.assert_allclose(model.sample(6, seed=8), _np_net(model.generator, z, False), rtol=1e-5, atol=1e-6)


# ---- 6. save and load ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained():
    """A tiny model after two Adam steps of each player (consistency and translations on)."""
    rng = np.random.default_rng(5)
    x = rng.random((40, 16)).astype(np.float32)
    y = np.where(np.arange(40) % 3 == 0, rng.integers(0, 3, 40), -1)
    model = _tiny(consistency_weight=1.0, translate=1, consistency_ramp_steps=5)
    model.compile(keras.optimizers.Adam(0.01, beta_1=0.5), generator_optimizer=keras.optimizers.Adam(0.003,
                                                                                                      beta_1=0.5))
    model.fit(x, y, batch_size=20, epochs=1, verbose=0, shuffle=False)
    return model, x, y


def test_save_and_load_keep_the_model_and_both_optimizers(trained, tmp_path):
    model, x, y = trained
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert type(loaded) is ImplicitHybrid and loaded.get_config() == model.get_config()
    np.testing.assert_array_equal(loaded.predict_probabilities(x), model.predict_probabilities(x))
    np.testing.assert_array_equal(loaded.sample(5, seed=3), model.sample(5, seed=3))
    np.testing.assert_array_equal(loaded.encode(x), model.encode(x))
    np.testing.assert_array_equal(loaded.reconstruct(x), model.reconstruct(x))
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(b.numpy(), a.numpy(), err_msg=a.path)
    for mine, theirs in [(model.optimizer, loaded.optimizer), (model.generator_optimizer, loaded.generator_optimizer)]:
        assert int(theirs.iterations) == int(mine.iterations) == 2
        assert len(theirs.variables) == len(mine.variables)
        for a, b in zip(mine.variables, theirs.variables):
            np.testing.assert_array_equal(np.asarray(b), np.asarray(a), err_msg=a.path)
    assert float(loaded.generator_optimizer.learning_rate) == pytest.approx(0.003)
    lean = export.without_training_state(model)  # a published checkpoint: the same model, no optimizer
    assert getattr(lean, "optimizer", None) is None
    np.testing.assert_array_equal(lean.predict_probabilities(x), model.predict_probabilities(x))
    np.testing.assert_array_equal(lean.sample(5, seed=3), model.sample(5, seed=3))
    # training continues where it stopped: from the same seed, the same update as the original's
    loaded.seed_generator.state.assign(model.seed_generator.state)  # (seed generators are not saved, in any family)
    one_batch = tf.data.Dataset.from_tensors((x[:20], y[:20]))
    for m in (model, loaded):
        m.fit(one_batch, epochs=1, verbose=0)
        assert int(m.optimizer.iterations) == int(m.generator_optimizer.iterations) == 3
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-6, atol=1e-7, err_msg=a.path)


def test_a_generator_optimizer_of_its_own_survives_loading(tmp_path):
    model = _tiny()
    model.compile(keras.optimizers.Adam(0.01, beta_1=0.5),
                  generator_optimizer=keras.optimizers.SGD(0.003, momentum=0.5))
    model.generator_optimizer.iterations.assign(1)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert type(loaded.generator_optimizer) is keras.optimizers.SGD
    assert int(loaded.generator_optimizer.iterations) == 1


# ---- 7. a SavedModel used without zoo ------------------------------------------------------------------------------

def test_a_saved_model_classifies_encodes_and_samples_without_zoo(trained, tmp_path):
    model, x, _ = trained
    x = x[:6]
    z = np.random.default_rng(7).random((4, 3)).astype(np.float32)
    export.export_saved_model(model, tmp_path / "saved_model")
    script = f"""
import json, sys, numpy as np, tensorflow as tf
s = tf.saved_model.load({str(tmp_path / "saved_model")!r}).signatures
x = tf.constant(np.array({x.tolist()!r}, np.float32))
z = tf.constant(np.array({z.tolist()!r}, np.float32))
print(json.dumps({{"names": sorted(s), "zoo": "zoo" in sys.modules,
    "probabilities": s["classify"](x=x)["probabilities"].numpy().tolist(),
    "class": s["classify"](x=x)["class"].numpy().tolist(),
    "z": s["encode"](x=x)["z"].numpy().tolist(), "x": s["sample"](z=z)["x"].numpy().tolist()}}))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert not out["zoo"] and {"classify", "encode", "sample"} <= set(out["names"])
    np.testing.assert_allclose(out["probabilities"], model.predict_probabilities(x), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(out["class"], model.predict_classes(x))
    np.testing.assert_allclose(out["z"], model.encode(x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["x"], model.generate(z).numpy(), rtol=1e-5, atol=1e-6)


# ---- 8. bad input --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    ({"supervised_weight": -1.0}, "supervised_weight must be a finite number >= 0"),
    ({"unlabelled_weight": -0.5}, "unlabelled_weight must be a finite number >= 0"),
    ({"consistency_weight": float("nan")}, "consistency_weight must be a finite number >= 0"),
    ({"supervised_weight": 0.0, "unlabelled_weight": 0.0}, "supervised_weight is 0 and no unlabelled term is on"),
    ({"supervised_weight": 0.0, "adversarial": False}, "nothing to train"),
    ({"architecture": "rnn"}, "unknown architecture 'rnn'"),
    ({"architecture": "cnn", "image_shape": None}, "the cnn architecture and translations need image_shape"),
    ({"architecture": "cnn", "image_shape": (2, 8)}, "divisible by 4"),
    ({"architecture": "cnn", "discriminator_hidden": (8, 8)}, "three widths"),
    ({"translate": 1, "image_shape": None}, "need image_shape"),
    ({"image_shape": (4, 5)}, r"image_shape \(4, 5\) does not have 16 pixels"),
    ({"translate": 4}, "translate 4 is not smaller than the image"),
    ({"translate": -1}, "translate must be an integer >= 0"),
    ({"latent_dropout": (0.2,)}, "latent_dropout takes two rates"),
    ({"latent_dropout": (0.2, 0.5, 0.1)}, "latent_dropout takes two rates"),
    ({"latent_dropout": (0.2, 1.5)}, "a latent_dropout rate must be in"),
    ({"ema_decay": 1.0}, r"ema_decay must be in \[0, 1\)"),
    ({"n_classes": 1}, "n_classes must be an integer >= 2"),
    ({"discriminator_hidden": (8, 0)}, "a size of discriminator_hidden"),
    ({"consistency_ramp_steps": -2}, "consistency_ramp_steps"),
])
def test_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        _tiny(**kwargs)


def test_bad_data_and_labels(batch):
    x, y = batch
    model = _tiny()
    nan = x.copy()
    nan[2, 3] = np.nan
    for bad, message in [(x[:, :15], "must have 16 columns"), (nan, "1 NaN or infinite"),
                         (x * 2, r"pixel values in \[0, 1\], got values in"), (x - 0.5, r"in \[0, 1\]"),
                         (x[0], "must be 2-D")]:
        for call in (model.validate_data, model.predict_probabilities, model.encode,
                     lambda a: model.fit(a, verbose=0)):
            with pytest.raises(ValueError, match=message):
                call(bad)
    for labels, message in [(np.zeros((12, 1), int), "1-D array of 12 labels"), (np.zeros(11, int), "1-D array"),
                            (np.full(12, 0.5), "integer class labels"), (np.full(12, 3), r"\[0, 2\] or -1"),
                            (np.full(12, -2), r"got values in \[-2, -2\]")]:
        with pytest.raises(ValueError, match=message):
            model.validate_labels(labels, 12)
        with pytest.raises(ValueError, match=message):
            model.fit(x, labels, batch_size=6, verbose=0)
    with pytest.raises(ValueError, match="validation y"):
        model.fit(x, y, batch_size=6, verbose=0, validation_data=(x, np.full(12, 5)))
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        model.sample(0)
    assert model.validate_labels(y, 12).dtype == np.int64


# ---- 9. zoo train implicit-hybrid ----------------------------------------------------------------------------------

def _run(capsys, args):
    code = cli.main(args)
    out, err = capsys.readouterr()
    return code, out, err


def _train_args(out, logdir, extra=(), batch_size=40):
    return ["train", "implicit-hybrid", "--dataset", "digits", "--labels-per-class", "5", "--epochs", "2",
            "--batch-size", str(batch_size), "--discriminator-hidden", "16", "--latent-hidden", "8",
            "--generator-hidden", "8", "--encoder-hidden", "8", "--latent", "4", "--consistency-weight", "1",
            "--translate", "1", "--out", str(out), "--seed", "0", "--verbose", "0", "--logdir", str(logdir), *extra]


STEPS = 1197 // 20  # digits: 1197 training images, 20 unlabelled in each batch of 40 (20 labelled)
SHORT_STEPS = 1197 // 160  # in batches of 200: the 40 labelled images and 160 unlabelled ones


def test_train_writes_a_folder_that_classifies(tmp_path, capsys):
    out = tmp_path / "ih"
    code, stdout, err = _run(capsys, _train_args(out, tmp_path / "tb"))
    assert code == 0, err
    assert "40 labelled training images (20 a batch), 10 labelled for validation, 1197 unlabelled" in err
    assert {"model.keras", "saved_model", "card.json", "samples.png", "reconstructions.png"} <= \
        {p.name for p in out.iterdir()}
    for name in ("samples.png", "reconstructions.png"):  # 100 images of 8 x 8 (50 beside their reconstructions)
        assert tf.io.decode_png((out / name).read_bytes()).numpy().shape == (91, 91, 1), name
    card = json.loads((out / "card.json").read_text())
    assert card["model"] == "ImplicitHybrid" and card["image_shape"] == [8, 8]
    config = card["config"]
    assert (config["discriminator_hidden"], config["latent_hidden"], config["generator_hidden"],
            config["encoder_hidden"], config["n_latent"], config["translate"], config["n_classes"]) == \
        ([16], [8], [8], [8], 4, 1, 10)
    assert config["consistency_ramp_steps"] == 30 * STEPS and config["adversarial"]
    final = card["final_metrics"]
    assert {"supervised_loss", "gan_loss", "feature_matching", "consistency_weight", "val_accuracy",
            "unlabelled_accuracy"} <= set(final)
    assert all(np.isfinite(v) for v in final.values())
    # the ramp as logged after the 2 epochs' updates of its 30 epochs
    assert final["consistency_weight"] == pytest.approx(np.exp(-5.0 * (1.0 - 2 * STEPS / (30 * STEPS)) ** 2), rel=1e-5)
    model, _ = export.load_folder(out)
    assert int(model.optimizer.iterations) == int(model.generator_optimizer.iterations) == 2 * STEPS
    fresh = ImplicitHybrid.from_config(config)  # the same seed: G's start; ALI moved it
    assert not all(np.array_equal(a, b) for a, b in zip(fresh.generator.get_weights(), model.generator.get_weights()))
    # zoo classify: the model's own classes
    images = data.load("digits").test.x[:5]
    np.save(tmp_path / "five.npy", images)
    code, stdout, err = _run(capsys, ["classify", str(out), str(tmp_path / "five.npy")])
    assert code == 0, err
    lines = stdout.splitlines()
    assert lines[0] == "file,index,class,probability" and len(lines) == 6
    assert [int(line.split(",")[2]) for line in lines[1:]] == list(model.predict_classes(images))
    probabilities = model.predict_probabilities(images).max(1)
    assert [float(line.split(",")[3]) for line in lines[1:]] == pytest.approx(probabilities, abs=6e-5)
    # zoo eval: the test accuracy, and one line saying there is no likelihood; --write-card records the accuracy
    test = data.load("digits").test
    accuracy = float(np.mean(model.predict_classes(test.x) == test.y))
    code, stdout, err = _run(capsys, ["eval", str(out), "--write-card"])
    assert code == 0, err
    assert f"accuracy {100 * accuracy:.2f} %" in stdout
    assert [line for line in stdout.splitlines() if line.startswith("no likelihood: ImplicitHybrid")]
    metrics = json.loads((out / "card.json").read_text())["metrics"]
    assert metrics["test_accuracy"]["accuracy"] == pytest.approx(accuracy) and \
        metrics["test_accuracy"]["n_examples"] == test.n == 300
    code, stdout, _ = _run(capsys, ["eval", str(out), "--json"])
    report = json.loads(stdout)
    assert code == 0 and report["log_likelihood"] is None and report["accuracy"] == pytest.approx(accuracy)
    # zoo sample: G's images
    code, stdout, err = _run(capsys, ["sample", str(out), "--n", "16", "--out", str(tmp_path / "s.png")])
    assert code == 0 and tf.io.decode_png((tmp_path / "s.png").read_bytes()).numpy().shape == (37, 37, 1), err


def test_the_svhn_path_trains_a_cnn_on_tensorflow_datasets_mock_data(tmp_path, capsys, monkeypatch):
    """--dataset tfds:svhn_cropped --architecture cnn: the reference's SVHN run, on tfds' mock data (no download)."""
    tfds = pytest.importorskip("tensorflow_datasets")
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "svhn"
    with tfds.testing.mock_data(num_examples=300, policy=tfds.testing.MockPolicy.USE_CODE):
        code, _, err = _run(capsys, [
            "train", "implicit-hybrid", "--dataset", "tfds:svhn_cropped", "--architecture", "cnn",
            "--labels-per-class", "2", "--epochs", "1", "--batch-size", "40", "--discriminator-hidden", "4", "4", "8",
            "--latent-hidden", "8", "--latent", "4", "--input-noise", "0", "--noise", "0", "--input-dropout", "0.2",
            "--dropout", "0.5", "--consistency-weight", "1", "--translate", "2", "--out", str(out), "--seed", "0",
            "--verbose", "0"])
    assert code == 0, err
    card = json.loads((out / "card.json").read_text())
    assert card["dataset"] == "tfds:svhn_cropped" and card["image_shape"] == [32, 32, 3]
    assert card["config"]["architecture"] == "cnn" and card["config"]["n_visible"] == 32 * 32 * 3
    assert tf.io.decode_png((out / "samples.png").read_bytes()).numpy().shape[-1] == 3


@pytest.mark.parametrize("extra, message", [
    (["--labels-per-class", "1000"], "larger than class"),
    (["--consistency-weight", "-1"], "--consistency-weight"),
    (["--ema-decay", "1"], "--ema-decay: expected a probability in [0, 1), got '1'"),
    (["--translate", "8"], "translate 8 is not smaller than the image (8, 8)"),
    (["--supervised-weight", "0", "--unlabelled-weight", "0"], "nothing to train"),
    (["--decay-epochs", "3"], "--decay-epochs 3 is more than --epochs 2"),
    (["--architecture", "rnn"], "--architecture: invalid choice"),
])
def test_bad_flags_give_one_line_and_exit_2(tmp_path, capsys, extra, message):
    code, _, err = _run(capsys, _train_args(tmp_path / "bad", tmp_path / "tb", extra))
    lines = err.strip().splitlines()
    assert code == 2 and message in lines[-1], err
    # the error in one line; only --decay-epochs, checked when the optimizer is made, comes after the data's summary
    summary = "zoo: 40 labelled training images (20 a batch), 10 labelled for validation, 1197 unlabelled"
    assert lines[:-1] == ([] if extra[0] != "--decay-epochs" else [summary])
    assert not (tmp_path / "bad").exists()


def test_train_without_ali_leaves_the_generator_and_encoder_alone(tmp_path, capsys):
    out = tmp_path / "no-ali"
    code, _, err = _run(capsys, _train_args(out, tmp_path / "tb", ["--no-ali", "--epochs", "1"], batch_size=200))
    assert code == 0, err
    card = json.loads((out / "card.json").read_text())
    assert card["config"]["adversarial"] is False
    assert card["final_metrics"]["gan_loss"] == card["final_metrics"]["feature_matching"] == 0.0
    model, _ = export.load_folder(out)
    assert int(model.optimizer.iterations) == SHORT_STEPS and int(model.generator_optimizer.iterations) == 0
    keras.utils.set_random_seed(0)  # as the run did before building: the unseeded initializers draw the same
    start = ImplicitHybrid.from_config(card["config"])
    for a, b in zip(start.generator.weights, model.generator.weights):  # never run in training mode either
        np.testing.assert_array_equal(b.numpy(), a.numpy(), err_msg=a.path)
    for a, b in zip(start.encoder_net.trainable_weights, model.encoder_net.trainable_weights):
        np.testing.assert_array_equal(b.numpy(), a.numpy(), err_msg=a.path)
    assert not all(np.array_equal(a, b) for a, b in zip(start.x_branch.get_weights(), model.x_branch.get_weights()))


def test_an_interrupted_run_resumes(tmp_path, capsys, monkeypatch, stop_after_epoch):
    stop_after_epoch(0)
    out = tmp_path / "ih"
    code, _, err = _run(capsys, _train_args(out, tmp_path / "tb", batch_size=200))
    assert code == 130 and "resume" in err
    assert not out.exists() and (tmp_path / "ih.backup").is_dir()
    stop_after_epoch(None)
    epochs_run = []
    monkeypatch.setattr(training.RaiseOnNaN, "on_epoch_begin",
                        lambda self, epoch, logs=None: epochs_run.append(epoch), raising=False)
    code, _, err = _run(capsys, _train_args(out, tmp_path / "tb", batch_size=200))
    assert code == 0 and "resuming the interrupted run" in err, err
    assert epochs_run == [1]  # only the epoch that was lost
    assert not (tmp_path / "ih.backup").exists()
    model, _ = export.load_folder(out)
    # both players' optimizers carried over the interruption
    assert int(model.optimizer.iterations) == int(model.generator_optimizer.iterations) == 2 * SHORT_STEPS


def test_a_model_compiled_with_its_learning_rate_schedule_loads_where_zoo_training_is_not_imported(tmp_path, batch):
    """The hold-then-decay schedule is named in the .keras file's compiled state, so loading the model (hub.load,
    publish_checkpoint.py, plain Keras after `import zoo.models`) must find it without the training module."""
    from zoo.models.base import HoldThenDecay

    model = _tiny()
    model.compile(keras.optimizers.Adam(HoldThenDecay(0.003, 0.0, 10, 5), beta_1=0.5))
    model.train_on_batch(*batch)
    model.save(tmp_path / "m.keras")
    code = ("import sys, keras, zoo.models; m = keras.saving.load_model(sys.argv[1]); "
            "print(type(m.optimizer._learning_rate).__name__, m.optimizer._learning_rate.get_config()['hold_steps'], "
            "'zoo.training' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "m.keras")], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["HoldThenDecay", "10", "False"]
