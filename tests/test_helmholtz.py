"""Helmholtz machines (zoo.models.HelmholtzMachine) against exact answers on tiny models whose latent states can
all be enumerated: log p(x), the K-sample bound, the expectation of the reweighted wake-sleep gradients."""
import itertools
import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from zoo import capabilities, evaluation, export
from zoo.models import HelmholtzMachine
from toy_models import binary_states, with_random_weights


def _tiny(layers=(2,), n_visible=3, seed=0, scale=1.0, **kwargs):
    return with_random_weights(HelmholtzMachine(list(layers), n_visible=n_visible, seed=seed, **kwargs), seed, scale)


_states = binary_states


def _exact_log_p(model, x):
    """log p(x) = logsumexp over every hidden state of log p(x, h) (one hidden layer)."""
    h = _states(model.layer_sizes[0])
    joint = np.stack([model.log_joint(x, [np.broadcast_to(s, (len(x), len(s)))]).numpy() for s in h])
    return np.logaddexp.reduce(joint, axis=0)


@pytest.fixture(scope="module")
def tiny():
    return _tiny()


def test_log_joint_is_normalised(tiny):
    """sum over every x and h of p(x, h) = 1, and sum over h of q(h | x) = 1 for every x."""
    x, h = _states(3), _states(2)
    pairs = [(a, b) for a in x for b in h]
    joint = tiny.log_joint(np.array([a for a, _ in pairs]), [np.array([b for _, b in pairs])]).numpy()
    assert np.exp(joint).sum() == pytest.approx(1.0, abs=1e-5)
    q = tiny.log_q(np.array([a for a, _ in pairs]), [np.array([b for _, b in pairs])]).numpy().reshape(8, 4)
    np.testing.assert_allclose(np.exp(q).sum(1), 1.0, atol=1e-5)


def test_importance_estimate_tends_to_the_exact_log_likelihood(tiny):
    x = _states(3)
    exact = _exact_log_p(tiny, x)
    result = evaluation.importance.log_likelihood(tiny, x, k=20000, seed=0)
    assert np.all(np.abs(result.per_example - exact) < 5 * result.per_example_std + 1e-5)
    one = evaluation.importance.log_likelihood(tiny, np.repeat(x, 500, axis=0), k=1, seed=1)
    assert one.log_likelihood < np.repeat(exact, 500).mean() - 0.05  # K = 1: the looser bound


def _gradients(model, losses, names):
    return {name: np.asarray(g, np.float64) for name, g in zip(names, losses)}


def _exact_rws_expectation(model, x, k):
    """E over all K-tuples h_1..h_K ~ q(. | x) of the p and wake-q updates, sum_k w~_k grad log p(x, h_k) and
    sum_k w~_k grad log q(h_k | x), enumerated; the means over the rows of x."""
    h = _states(model.layer_sizes[0])
    p_vars = [v for layer in model.p_layers_ for v in layer.trainable_variables]
    q_vars = [v for layer in model.q_layers_ for v in layer.trainable_variables]
    total_p, total_q = [np.zeros(v.shape) for v in p_vars], [np.zeros(v.shape) for v in q_vars]
    for row in x:
        log_q_all = model.log_q(np.repeat(row[None], len(h), 0), [h]).numpy()
        for tuple_ in itertools.product(range(len(h)), repeat=k):
            hk = h[list(tuple_)]
            xs = np.repeat(row[None], k, 0)
            probability = np.exp(log_q_all[list(tuple_)].sum())
            with tf.GradientTape(persistent=True) as tape:
                log_p, log_q = model.log_joint(xs, [hk]), model.log_q(xs, [hk])
                w = tf.stop_gradient(tf.nn.softmax(log_p - log_q))
                p_term, q_term = tf.reduce_sum(w * log_p), tf.reduce_sum(w * log_q)
            for total, grads in ((total_p, tape.gradient(p_term, p_vars)), (total_q, tape.gradient(q_term, q_vars))):
                for i, g in enumerate(grads):
                    total[i] += probability * np.asarray(g) / len(x)
    return total_p, total_q, p_vars, q_vars


def test_the_rws_updates_have_the_expectation_of_their_definition():
    """The gradients of the model's RWS losses (a batch of N copies of each example: a mean over N draws) against
    the exact expectation over every K-tuple of samples from q. Fails if the weights are not self-normalised
    over the K samples, or normalised over the wrong axis (checked by changing the axis)."""
    model = _tiny(k=2, q_update="wake", seed=3, scale=1.5)
    x = _states(3)[[1, 6]]
    exact_p, exact_q, p_vars, q_vars = _exact_rws_expectation(model, x, k=2)
    n = 4000
    batch = np.repeat(x, n, axis=0)
    with tf.GradientTape(persistent=True) as tape:
        p_loss, wake_loss, _, _ = model.rws_losses(tf.constant(batch), tf.constant([7, 1]))
    for exact, variables, loss in ((exact_p, p_vars, p_loss), (exact_q, q_vars, wake_loss)):
        for want, got, variable in zip(exact, tape.gradient(loss, variables), variables):
            # the losses are minus the updates; tolerance: a few Monte Carlo standard errors (~1/sqrt(n))
            np.testing.assert_allclose(-np.asarray(got), want, atol=0.06, err_msg=variable.path)


@pytest.mark.slow
def test_training_raises_the_bound_on_tiny_data():
    from zoo import data
    x = (data.load("digits").train.x > 0.5).astype("float32")
    import keras
    model = HelmholtzMachine([16, 4], k=5, seed=0)
    model.compile(keras.optimizers.Adam(0.01))
    history = model.fit(x, batch_size=50, epochs=8, verbose=0, validation_data=x[:200])
    bounds = history.history["val_bound_5"]
    assert bounds[-1] > bounds[0] + 1.0
    assert history.history["val_bound_1"][-1] <= bounds[-1] + 1e-3  # K = 1 is the looser bound
    assert 1.0 <= history.history["ess"][-1] <= 5.0


def test_capabilities_and_encoder(tiny):
    assert capabilities.of(tiny) == ["latent-variable model", "sampler", "encoder", "servable"]
    encoder = tiny.encoder()
    x = _states(3)
    np.testing.assert_allclose(encoder(x).numpy(), tf.sigmoid(x @ tiny.q_layers_[0].kernel + tiny.q_layers_[0].bias),
                               atol=1e-6)
    with pytest.raises(ValueError, match="encoder needs SBN q layers"):
        _tiny(q_layers="darn").encoder()
    samples = tiny.sample(5, seed=0)
    assert samples.shape == (5, 3) and np.all((samples > 0) & (samples < 1))
    binary = tiny.sample(5, seed=0, binary=True)
    assert set(np.unique(binary)) <= {0.0, 1.0}


@pytest.mark.slow
def test_a_saved_model_answers_the_same_with_and_without_zoo(tmp_path):
    model = _tiny(layers=(4, 2), n_visible=5, seed=1)
    folder = export.save(model, tmp_path / "hm")
    loaded, _ = export.load_folder(folder)
    x = _states(5)[:7]
    np.testing.assert_array_equal(loaded.log_importance_weights(x, 3, tf.constant([1, 2])).numpy(),
                                  model.log_importance_weights(x, 3, tf.constant([1, 2])).numpy())
    script = f"""
import json, sys, numpy as np, tensorflow as tf
loaded = tf.saved_model.load({str(folder / "saved_model")!r})
s = loaded.signatures
x = tf.constant({x.tolist()!r}, tf.float32)
print(json.dumps({{"names": sorted(s), "zoo": "zoo" in sys.modules,
    "log_prob": s["log_prob"](x=x, k=tf.constant(2000), seed=tf.constant(0))["log_prob"].numpy().tolist(),
    "encode": s["encode"](x=x)["features"].numpy().tolist(),
    "samples": s["sample"](n=tf.constant(3), seed=tf.constant(1))["samples"].numpy().tolist()}}))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert not out["zoo"] and {"sample", "encode", "log_prob"} <= set(out["names"])
    estimate = evaluation.importance.log_likelihood(model, x, k=2000, seed=0)
    np.testing.assert_allclose(out["log_prob"], estimate.per_example, atol=6 * estimate.per_example_std.max() + 1e-4)
    np.testing.assert_allclose(out["encode"], model.encoder()(x).numpy(), atol=1e-6)
    assert np.array(out["samples"]).shape == (3, 5)


def test_init_from_copies_every_layer(tiny):
    copy = HelmholtzMachine([2], n_visible=3)
    copy.set_parameters_from(tiny)
    for a, b in zip(copy.trainable_variables, tiny.trainable_variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    with pytest.raises(ValueError, match="does not match"):
        HelmholtzMachine([3], n_visible=3).set_parameters_from(tiny)


@pytest.mark.parametrize("kwargs, message", [
    ({"layers": []}, "at least one hidden layer"),
    ({"layers": [0]}, "layer size"),
    ({"p_layers": "ising"}, "unknown p layer type 'ising'"),
    ({"k": 0}, "k must be"),
    ({"q_update": "dream"}, "unknown q_update"),
])
def test_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        HelmholtzMachine(**{"layers": [4], **kwargs})


def test_non_binary_data_is_refused(tiny):
    with pytest.raises(ValueError, match="binary"):
        tiny.fit(np.full((10, 3), 0.5, np.float32), batch_size=5)
    with pytest.raises(ValueError, match="3 columns"):
        evaluation.importance.log_likelihood(tiny, np.zeros((4, 5), np.float32))


def test_the_sleep_update_has_the_expectation_of_its_definition():
    """The sleep-q update on N dreams against E_{(x, h) ~ p}[grad log q(h | x)], enumerated over every x and h."""
    model = _tiny(k=1, q_update="sleep", seed=4, scale=1.5)
    x, h = _states(3), _states(2)
    xs = np.repeat(x, len(h), 0)
    hs = np.tile(h, (len(x), 1))
    q_vars = [v for layer in model.q_layers_ for v in layer.trainable_variables]
    with tf.GradientTape() as tape:
        weights = tf.stop_gradient(tf.exp(model.log_joint(xs, [hs])))  # p(x, h), summing to 1
        expected = tf.reduce_sum(weights * model.log_q(xs, [hs]))
    exact = tape.gradient(expected, q_vars)
    with tf.GradientTape() as tape:
        _, _, sleep_loss, _ = model.rws_losses(tf.zeros((8000, 3)), tf.constant([3, 3]))
    for want, got, variable in zip(exact, tape.gradient(sleep_loss, q_vars), q_vars):
        np.testing.assert_allclose(-np.asarray(got), np.asarray(want), atol=0.05, err_msg=variable.path)


def test_fine_tuning_wraps_q_s_mean_path(tiny):
    from zoo import finetune
    classifier = finetune.build_classifier(tiny, n_classes=2)
    x = _states(3)
    features = classifier.features(x).numpy()
    np.testing.assert_allclose(features, tiny.encoder()(x).numpy(), atol=1e-6)
    assert classifier.predict_classes(x).shape == (8,)
    before = [v.numpy().copy() for v in tiny.trainable_variables]
    classifier.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    classifier.fit(x, np.arange(8) % 2, epochs=2, verbose=0)
    for a, b in zip(before, tiny.trainable_variables):  # the encoder is a copy: the model is untouched
        np.testing.assert_array_equal(a, b.numpy())


@pytest.mark.parametrize("kinds", [("sbn", "sbn"), ("darn", "darn"), ("nade", "nade")])
def test_layer_statistics_against_enumeration(kinds):
    """Per-layer q entropies, each layer's share of the gap, the ELBO and KL(q || p posterior) by enumerating
    every h_1 and h_2 of a 3-2-2 machine, against `layer_statistics`' sampled estimates."""
    model = _tiny(layers=(2, 2), p_layers=kinds[0], q_layers=kinds[1])
    x, h = _states(3), _states(2)
    q1, q2, p_top, p1, p0 = model.q_layers_ + model.p_layers_
    entropy1, entropy2, kl1, kl2, recon, elbo, kl_post = (np.zeros(len(x)) for _ in range(7))
    for a in h:
        h1 = np.broadcast_to(a, (len(x), 2))
        log_q1 = q1.log_prob(h1, x).numpy()
        entropy1 -= np.exp(log_q1) * log_q1
        for b in h:
            h2 = np.broadcast_to(b, (len(x), 2))
            log_q2 = q2.log_prob(h2, h1).numpy()
            weight = np.exp(log_q1 + log_q2)  # q(h_1, h_2 | x)
            log_p2, log_p1, log_px = p_top.log_prob(h2).numpy(), p1.log_prob(h1, h2).numpy(), p0.log_prob(x, h1).numpy()
            entropy2 -= weight * log_q2
            kl1 += weight * (log_q1 - log_p1)
            kl2 += weight * (log_q2 - log_p2)
            recon += weight * log_px
            elbo += weight * (log_p2 + log_p1 + log_px - log_q1 - log_q2)
    log_p = np.logaddexp.reduce([model.log_joint(x, [np.broadcast_to(a, (8, 2)), np.broadcast_to(b, (8, 2))]).numpy()
                                 for a in h for b in h], axis=0)
    exact = {"q_entropy/h1": entropy1, "q_entropy/h2": entropy2, "kl/h1": kl1, "kl/h2": kl2,
             "reconstruction": recon, "elbo": elbo, "kl_q_posterior": log_p - elbo}
    exact = {name: value.mean() for name, value in exact.items()}
    assert exact["elbo"] == pytest.approx(exact["reconstruction"] - exact["kl/h1"] - exact["kl/h2"], abs=1e-5)
    estimated = model.layer_statistics(x, k=20000, seed=3)
    assert set(estimated) == set(exact) | {"bound_20000"}
    for name, value in exact.items():
        assert estimated[name] == pytest.approx(value, abs=0.03), name
    assert estimated["bound_20000"] == pytest.approx(log_p.mean(), abs=0.03)


def test_tensorboard_shows_the_layer_statistics(tmp_path):
    from tensorboard.backend.event_processing import event_accumulator

    from zoo import training

    model = _tiny(layers=(4, 2), n_visible=6)
    model.compile()
    x = (np.random.default_rng(0).random((40, 6)) < 0.5).astype(np.float32)
    model.fit(x, batch_size=20, epochs=2, verbose=0,
              callbacks=[training.TensorBoardLogger(tmp_path, x[:10], (2, 3), every=1)])
    acc = event_accumulator.EventAccumulator(str(tmp_path), size_guidance={event_accumulator.TENSORS: 0})
    acc.Reload()
    tags = set(acc.Tags()["tensors"])
    assert {"layers/q_entropy/h1", "layers/q_entropy/h2", "layers/kl/h1", "layers/kl/h2", "layers/elbo",
            "layers/bound_100", "layers/kl_q_posterior", "layers/reconstruction", "samples", "reconstructions"} <= tags
    assert [e.step for e in acc.Tensors("layers/kl_q_posterior")] == [1, 2]


def test_reconstructions_average_to_the_exact_expectation_through_q_then_p():
    model = _tiny(layers=(3, 2), n_visible=4, seed=2, scale=2.0)
    x = _states(4)[[3, 12]]
    h1 = _states(3)
    q1, p_last = model.q_layers_[0], model.p_layers_[-1]
    exact = []
    for row in x:  # E[x' | x] = sum_h1 q(h1 | x) sigmoid(p's logits of x given h1)
        q = np.exp(q1.log_prob(h1, row[None]).numpy())
        exact.append(q @ p_last.mean(h1).numpy())
    n = 20000
    reconstructions = model.reconstruct(np.repeat(x, n, axis=0), seed=3).reshape(2, n, 4)
    assert np.all((reconstructions > 0) & (reconstructions < 1))
    std = reconstructions.std(1) / np.sqrt(n)
    np.testing.assert_array_less(np.abs(reconstructions.mean(1) - np.array(exact)), 4 * std + 1e-6)
    images = model.summary_images(x)
    assert images["reconstructions"][0].shape == (4, 4)  # each image beside its reconstruction
    np.testing.assert_array_equal(images["reconstructions"][0][::2], x)
