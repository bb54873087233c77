"""Bidirectional Helmholtz machines (zoo.models.BiHM) against exact answers on models small enough to enumerate
every x and h: p~*(x), Z, the estimators, the training gradient, the chain."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo.models import BiHM, HelmholtzMachine
from toy_models import binary_states, with_random_weights


_states = binary_states


def _tiny(layers=(2,), n_visible=3, seed=0, scale=1.0, **kwargs):
    return with_random_weights(BiHM(list(layers), n_visible=n_visible, seed=seed, **kwargs), seed, scale)


def _joint_tables(model):
    """log p(x, h) and log q(h | x) for every x (rows) and every h (columns, all hidden layers together)."""
    x = _states(model.n_visible)
    sizes = model.layer_sizes
    h = _states(sum(sizes))
    pairs_x = np.repeat(x, len(h), axis=0)
    pairs_h = np.tile(h, (len(x), 1))
    hidden = np.split(pairs_h, np.cumsum(sizes)[:-1], axis=1)
    log_p = model.log_joint(pairs_x, hidden).numpy().reshape(len(x), len(h))
    log_q = model.log_q(pairs_x, hidden).numpy().reshape(len(x), len(h))
    return x, log_p, log_q


def _log_p_star_tilde(log_p, log_q):
    """log p~*(x) = 2 log sum_h sqrt(p(x, h) q(h | x)), per row, in float64."""
    return 2 * np.logaddexp.reduce((log_p.astype(np.float64) + log_q) / 2, axis=1)


@pytest.fixture(scope="module", params=[(2,), (2, 2)], ids=["one layer", "two layers"])
def tiny(request):
    return _tiny(layers=request.param)


def test_the_geometric_mean_is_below_p_and_its_normaliser_below_one(tiny):
    x, log_p, log_q = _joint_tables(tiny)
    assert np.exp(np.logaddexp.reduce(log_p.ravel())) == pytest.approx(1.0, abs=1e-5)  # p sums to one
    np.testing.assert_allclose(np.exp(np.logaddexp.reduce(log_q, axis=1)), 1.0, atol=1e-5)  # q for every x
    log_tilde = _log_p_star_tilde(log_p, log_q)
    assert np.all(log_tilde <= np.logaddexp.reduce(log_p, axis=1) + 1e-6)  # Cauchy-Schwarz
    z = np.exp(np.logaddexp.reduce(log_tilde))
    assert 0.3 < z < 1.0  # a real gap for these weights, so the tests below can tell Z from 1


def test_the_k_sample_estimate_tends_to_log_p_star_tilde(tiny):
    x, log_p, log_q = _joint_tables(tiny)
    exact = _log_p_star_tilde(log_p, log_q)
    log_w = tf.transpose(tiny.log_importance_weights(x, 20000, tf.constant([3, 0])))
    estimate, ess = tiny.bound_and_ess(log_w)
    np.testing.assert_allclose(estimate.numpy(), exact, atol=0.03)
    one, _ = tiny.bound_and_ess(tf.transpose(tiny.log_importance_weights(np.repeat(x, 400, 0), 1,
                                                                         tf.constant([4, 0]))))
    # K = 1: log w itself, whose mean is the ELBO of p, below log p~*(x) on average
    assert one.numpy().mean() < np.repeat(exact, 400).mean() - 0.05
    assert np.all((1 <= ess.numpy()) & (ess.numpy() <= 20000))


def test_the_partition_weights_average_to_z(tiny):
    _, log_p, log_q = _joint_tables(tiny)
    z = np.exp(np.logaddexp.reduce(_log_p_star_tilde(log_p, log_q)))
    log_weights = np.concatenate([tiny.log_partition_weights(20000, 10, tf.constant([s, 1])).numpy()
                                  for s in range(5)]).astype(np.float64)
    weights = np.exp(log_weights)
    assert weights.mean() == pytest.approx(z, abs=4 * weights.std() / np.sqrt(len(weights)))


def test_the_training_gradient_tends_to_the_gradient_of_log_p_star_tilde():
    """With many samples the surrogate losses' gradients are minus the gradient of mean_x log p~*(x),
    computed exactly by enumeration and automatic differentiation, for p's and q's parameters alike (the
    baseline 1 / K sum_k grad log q has expectation zero)."""
    model = _tiny(layers=(2,), seed=2, k=4000)
    x_all = _states(3)
    h = _states(2)
    pairs_x, pairs_h = np.repeat(x_all, len(h), 0), np.tile(h, (len(x_all), 1))
    variables = model.trainable_variables
    with tf.GradientTape() as tape:
        log_p = tf.reshape(model.log_joint(pairs_x, [pairs_h]), (8, 4))
        log_q = tf.reshape(model.log_q(pairs_x, [pairs_h]), (8, 4))
        exact_objective = tf.reduce_mean(2 * tf.reduce_logsumexp((log_p + log_q) / 2, axis=1))
    exact = tape.gradient(exact_objective, variables)
    with tf.GradientTape() as tape:
        p_loss, q_loss, _ = model.bihm_losses(tf.constant(x_all), tf.constant([5, 0]))
        loss = p_loss + q_loss
    estimated = tape.gradient(loss, variables)
    for want, got, variable in zip(exact, estimated, variables):
        np.testing.assert_allclose(-np.asarray(got), np.asarray(want), atol=0.03, err_msg=variable.path)
    # without the self-normalised sqrt weights (RWS's softmax of log w) the same test fails
    with tf.GradientTape() as tape:
        _, wake, _, _ = HelmholtzMachine.rws_losses(model, tf.constant(x_all), tf.constant([5, 0]))
    q_vars = [v for layer in model.q_layers_ for v in layer.trainable_variables]
    rws_q = tape.gradient(wake, q_vars)
    exact_q = [g for g, v in zip(exact, variables) if any(v is w for w in q_vars)]
    assert max(np.abs(-np.asarray(g) - np.asarray(e)).max() for g, e in zip(rws_q, exact_q)) > 0.1


def test_training_raises_the_bound_on_tiny_data():
    from zoo import data
    x = (data.load("digits").train.x > 0.5).astype("float32")
    model = BiHM([16, 4], k=5, seed=0)
    model.compile(keras.optimizers.Adam(0.01))
    history = model.fit(x, batch_size=50, epochs=8, verbose=0, validation_data=x[:200])
    bounds = history.history["val_bound_5"]
    assert bounds[-1] > bounds[0] + 1.0
    assert 1.0 <= history.history["ess"][-1] <= 5.0


def test_config_round_trip_has_no_q_update(tmp_path):
    model = _tiny(layers=(3, 2), n_visible=4, k=7)
    assert "q_update" not in model.get_config()
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is BiHM and loaded.k == 7 and loaded.layer_sizes == [3, 2]
    for a, b in zip(model.trainable_variables, loaded.trainable_variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_the_shared_estimators_reach_the_exact_log_p_star(tiny):
    """zoo.evaluation: log p~*(x) (power 2) and p's log p(x) from the same samples, log Z, and log p*(x) =
    log p~*(x) - log Z-hat, each within a few of its own standard errors of the enumerated value."""
    from zoo import capabilities, evaluation

    assert capabilities.offers(tiny, capabilities.GeometricMeanModel)
    x, log_p, log_q = _joint_tables(tiny)
    log_tilde = _log_p_star_tilde(log_p, log_q)
    log_z = np.logaddexp.reduce(log_tilde)
    z = evaluation.importance.log_partition(tiny, n_samples=50000, k=10, batch_size=10000, seed=1)
    assert z.kind == "estimate" and z.n_samples == 50000 and 1 < z.ess <= 50000
    assert abs(z.log_z - log_z) < 4 * z.std + 1e-4 and z.std < 0.02
    result = evaluation.evaluate_latent_variable_model(tiny, {"test": x}, ks=(1, 5000), seed=2,
                                                       partition_samples=50000, partition_k=10)
    assert result.kind == "mixed estimate" and result.log_z["log_z"] == pytest.approx(z.log_z, abs=5 * z.std)
    one, many = result.results
    exact_nll = -(log_tilde - log_z).mean()
    assert many["nll"] == pytest.approx(exact_nll, abs=4 * many["std"] + 0.02)
    assert many["p_nll"] == pytest.approx(-np.logaddexp.reduce(log_p, axis=1).mean(), abs=0.02)
    assert many["log_p_tilde"] == pytest.approx(log_tilde.mean(), abs=0.02)
    assert one["k"] == 1 and one["ess"] == 1.0
    assert many["p_nll"] <= many["nll"] + 4 * many["std"]  # the ordering log p~* <= log p only holds up to log Z


def test_a_model_without_a_normaliser_is_refused_by_log_partition():
    from zoo import evaluation

    model = HelmholtzMachine([2], n_visible=3, seed=0)
    with pytest.raises(ValueError, match="HelmholtzMachine cannot estimate a normaliser Z"):
        evaluation.importance.log_partition(model, n_samples=10)


def _exact_p_star(model):
    x, log_p, log_q = _joint_tables(model)
    log_tilde = _log_p_star_tilde(log_p, log_q)
    return x, np.exp(log_tilde - np.logaddexp.reduce(log_tilde))


def _histogram(samples):
    index = (samples @ (2 ** np.arange(samples.shape[1])[::-1])).astype(int)
    return np.bincount(index, minlength=2 ** samples.shape[1]) / len(samples)


@pytest.mark.parametrize("layers,block_size,kinds", [
    ((2,), 28, {}), ((2, 2), 28, {}), ((2, 2), 1, {}), ((2, 2), 2, {"q_layers": "darn"}),
    ((2, 2), 2, {"p_layers": "darn"}), ((2, 2), 1, {"q_layers": "nade"})],
    ids=["one layer", "two layers", "two layers, a pixel a block", "DARN q, blocks of 2 and 1",
         "DARN p (x updated on the whole image)", "NADE q (x updated on the whole image)"])
def test_the_chain_samples_p_star(layers, block_size, kinds):
    """20,000 chains, 20 sweeps: the histogram of x within a total-variation distance of 0.02 of p*(x), and far
    from p(x), the ancestral samples' distribution, which the chains start from; for SBN and DARN q layers over an
    SBN bottom the pixel blocks are updated on their own width, for the others on the whole image."""
    model = _tiny(layers=layers, seed=1, scale=1.5, **kinds)
    x, p_star = _exact_p_star(model)
    _, log_p, _ = _joint_tables(model)
    p = np.exp(np.logaddexp.reduce(log_p, axis=1))
    samples = model.sample(20000, seed=0, binary=True, n_steps=20, n_candidates=5, block_size=block_size)
    assert samples.shape == (20000, 3) and set(np.unique(samples)) <= {0.0, 1.0}
    tv = 0.5 * np.abs(_histogram(samples) - p_star).sum()
    assert tv < 0.02, (tv, _histogram(samples), p_star)
    assert 0.5 * np.abs(p - p_star).sum() > 0.05  # the test can tell p* from p


@pytest.mark.parametrize("block_size", [28, 2, 1])
def test_inpainting_samples_the_conditional_of_p_star(block_size):
    """Clamp x_0 = 1: the completions of x_1, x_2 follow p*(x_1, x_2 | x_0 = 1), enumerated."""
    model = _tiny(layers=(2, 2), seed=1, scale=1.5)
    x, p_star = _exact_p_star(model)
    conditional = p_star[x[:, 0] == 1] / p_star[x[:, 0] == 1].sum()
    completions = model.inpaint(np.array([[1.0, 0.0, 0.0]], np.float32), np.array([1.0, 0.0, 0.0], np.float32),
                                n_chains=20000, n_steps=20, n_candidates=5, seed=3, binary=True,
                                block_size=block_size)
    assert completions.shape == (1, 20000, 3) and np.all(completions[0, :, 0] == 1)
    tv = 0.5 * np.abs(_histogram(completions[0, :, 1:]) - conditional).sum()
    assert tv < 0.02, (tv, conditional)


@pytest.mark.parametrize("mask,message", [
    (np.ones(3), "no unknown pixel"), (np.array([1.0, 0.5, 0.0]), "must be binary"),
    (np.ones(4), "mask must have shape")])
def test_bad_masks(mask, message):
    model = _tiny(layers=(2,))
    with pytest.raises(ValueError, match=message):
        model.inpaint(np.zeros((1, 3), np.float32), mask)


def test_bad_chain_settings():
    model = _tiny(layers=(2,))
    with pytest.raises(ValueError, match="n_steps"):
        model.sample(2, n_steps=0)
    with pytest.raises(ValueError, match="n_candidates"):
        model.sample(2, n_candidates=1)
    with pytest.raises(ValueError, match="n_chains"):
        model.inpaint(np.zeros((1, 3), np.float32), np.array([1.0, 0.0, 0.0]), n_chains=0)


def test_a_saved_model_answers_without_zoo(tmp_path):
    import json
    import subprocess
    import sys

    from zoo import export

    model = _tiny(layers=(4, 2), n_visible=5, seed=1)
    folder = export.save(model, tmp_path / "bihm")
    loaded, _ = export.load_folder(folder)
    assert type(loaded) is BiHM
    x = _states(5)[:7]
    script = f"""
import json, sys, numpy as np, tensorflow as tf
s = tf.saved_model.load({str(folder / "saved_model")!r}).signatures
x = tf.constant({x.tolist()!r}, tf.float32)
print(json.dumps({{"names": sorted(s), "zoo": "zoo" in sys.modules,
    "log_p_tilde": s["log_p_tilde"](x=x, k=tf.constant(4000), seed=tf.constant(0))["log_p_tilde"].numpy().tolist(),
    "samples": s["sample"](n=tf.constant(3), seed=tf.constant(1), n_steps=tf.constant(4))["samples"].numpy().tolist()}}))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert not out["zoo"] and {"sample", "log_p_tilde", "encode"} <= set(out["names"])
    _, log_p, log_q = _joint_tables(model)
    exact = _log_p_star_tilde(log_p, log_q)[(x @ (2 ** np.arange(5)[::-1])).astype(int)]
    from zoo import evaluation
    spread = evaluation.importance.log_likelihood(model, x, k=4000, power=2).per_example_std
    assert np.all(np.abs(np.array(out["log_p_tilde"]) - exact) < 6 * spread + 1e-4)
    samples = np.array(out["samples"])
    assert samples.shape == (3, 5) and np.all((0 <= samples) & (samples <= 1))


def test_tensorboard_shows_the_bounds_log_z_and_pictures(tmp_path):
    from tensorboard.backend.event_processing import event_accumulator

    from zoo import data, training

    x = data.load("binarized_mnist").validation.x[:60]
    model = BiHM([5, 3], k=3, seed=0)
    model.compile()
    model.fit(x, batch_size=30, epochs=1, verbose=0,
              callbacks=[training.TensorBoardLogger(tmp_path, x[:12], (28, 28), every=1)])
    acc = event_accumulator.EventAccumulator(str(tmp_path), size_guidance={event_accumulator.TENSORS: 0})
    acc.Reload()
    tags = set(acc.Tags()["tensors"])
    assert {"bihm/bound_1", "bihm/bound_10", "bihm/bound_100", "bihm/p_bound_100", "bihm/bhattacharyya",
            "bihm/log_z", "layers/kl_q_posterior", "samples", "ancestral_samples_of_p", "inpainting"} <= tags
    value = {tag: float(tf.make_ndarray(acc.Tensors(tag)[0].tensor_proto)) for tag in
             ("bihm/bound_1", "bihm/bound_100", "bihm/bhattacharyya", "bihm/log_z")}
    assert value["bihm/bound_1"] <= value["bihm/bound_100"] + 1e-3 and value["bihm/bhattacharyya"] >= -1e-3
    assert value["bihm/log_z"] <= 0.1  # Z <= 1, up to the estimate's noise
    width = int(acc.Tensors("inpainting")[0].tensor_proto.string_val[0])
    assert width == 5 * 29 + 1  # a row per image: the image, its known half, three completions


def test_sampling_importance_resampling_from_p_approaches_p_star():
    """The reference's second method: biased for finite numbers of candidates and of q samples (the more so
    the heavier the weights: with those of the chain's test it strays far from p*), yet much closer to p* than
    p's own samples are on a model whose q fits better."""
    model = _tiny(layers=(2, 2), seed=1, scale=1.0)
    x, p_star = _exact_p_star(model)
    _, log_p, _ = _joint_tables(model)
    p = np.exp(np.logaddexp.reduce(log_p, axis=1))
    samples = model.sample_sir(4000, n_candidates=20, k=500, seed=0, binary=True)  # TV 0.011 (50: 0.007)
    assert samples.shape == (4000, 3)
    tv = 0.5 * np.abs(_histogram(samples) - p_star).sum()
    assert tv < 0.035 and tv < 0.4 * (0.5 * np.abs(p - p_star).sum()), tv
