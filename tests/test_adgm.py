"""The auxiliary deep generative model against exact answers: log p(x) by quadrature over a one-dimensional z
(the auxiliary a integrates out of p), its ELBO by an independent Monte-Carlo computation in NumPy/SciPy."""
import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

from zoo import evaluation
from zoo.models.adgm import AuxiliaryDeepGenerativeModel


def _tiny(seed=0, scale=0.6, n_classes=None):
    model = AuxiliaryDeepGenerativeModel(latent=1, auxiliary=1, hidden=(5,), n_classes=n_classes, n_visible=3,
                                         seed=seed)
    rng = np.random.default_rng(seed)
    for w in model.trainable_weights:
        w.assign((scale * rng.standard_normal(w.shape)).astype(np.float32))
    return model


X = np.array(list(np.ndindex(2, 2, 2)), np.float32)


def _run(layers, h):
    for layer in layers:
        h = layer(tf.constant(h, tf.float32)).numpy().astype(np.float64)
    return h


def _exact_log_p(model, x, y=None):
    """log integral p(z) p(x | z[, y]) dz on a fine grid (y: a one-hot code)."""
    z = np.linspace(-12, 12, 24001)[:, None]
    logits = _run(model.p_x, z if y is None else np.concatenate([z, np.broadcast_to(y, (len(z), len(y)))], -1))
    log_px = (x[None] * -np.logaddexp(0, -logits)[:, None] + (1 - x[None]) * -np.logaddexp(0, logits)[:, None]).sum(-1)
    log_joint = log_px + stats.norm.logpdf(z)  # (grid, n)
    top = log_joint.max(0)
    return top + np.log(np.exp(log_joint - top).sum(0) * (z[1, 0] - z[0, 0]))


def _broad_q(model):
    """q(a | x) = N(0, 4^2) and q(z | a, x) = N(0, 1.5^2): proposals broader than p's conditionals, so that the
    importance weights have light tails and the estimate's error is what its standard error says."""
    for layers, scale in ((model.q_a, 4.0), (model.q_z, 1.5)):
        out = layers[-1]
        out.kernel.assign(np.zeros(out.kernel.shape, np.float32))
        n = out.bias.shape[0] // 2
        out.bias.assign(np.concatenate([np.zeros(n), np.full(n, np.log(scale))]).astype(np.float32))
    return model


def test_importance_sampling_converges_to_log_p_by_quadrature():
    model = _broad_q(_tiny())
    exact = _exact_log_p(model, X)
    result = evaluation.importance.log_likelihood(model, X, k=20000, seed=0)
    assert np.all(np.abs(result.per_example - exact) < 5 * result.per_example_std + 2e-3), (result.per_example, exact)
    elbo = evaluation.importance.log_likelihood(model, X, k=1, seed=0, batch_size=8)
    many = np.mean([evaluation.importance.log_likelihood(model, X, k=1, seed=s).per_example for s in range(200)], 0)
    assert np.all(many < exact) and elbo.k == 1  # the ELBO lies below log p(x)


def test_the_elbo_matches_an_independent_monte_carlo_of_its_definition():
    model = _tiny(seed=2, scale=0.6)
    rng = np.random.default_rng(0)
    x = X[[1, 6]]
    n = 40000
    # draw a ~ q(a | x), z ~ q(z | a, x) with NumPy from the networks' outputs, then every log density by SciPy
    loc_a, log_s_a = np.split(_run(model.q_a, x), 2, -1)
    s_a = np.exp(np.clip(log_s_a, -7, 5))
    a = loc_a[None] + s_a[None] * rng.standard_normal((n,) + loc_a.shape)  # (n, 2, 1)
    xs = np.broadcast_to(x, (n,) + x.shape)
    loc_z, log_s_z = np.split(_run(model.q_z, np.concatenate([a, xs], -1).reshape(-1, 4)).reshape(n, 2, 2), 2, -1)
    s_z = np.exp(np.clip(log_s_z, -7, 5))
    z = loc_z + s_z * rng.standard_normal(loc_z.shape)
    logits = _run(model.p_x, z.reshape(-1, 1)).reshape(n, 2, 3)
    log_px = (xs * -np.logaddexp(0, -logits) + (1 - xs) * -np.logaddexp(0, logits)).sum(-1)
    loc_pa, log_s_pa = np.split(_run(model.p_a, np.concatenate([z, xs], -1).reshape(-1, 4)).reshape(n, 2, 2), 2, -1)
    log_w = (stats.norm.logpdf(z).sum(-1) + log_px + stats.norm.logpdf(a, loc_pa, np.exp(np.clip(log_s_pa, -7, 5))).sum(-1)
             - stats.norm.logpdf(a, loc_a, s_a).sum(-1) - stats.norm.logpdf(z, loc_z, s_z).sum(-1))
    mine = model.log_importance_weights(x, n, tf.constant([0, 1])).numpy()  # (2, n)
    for i in range(2):
        spread = np.hypot(log_w[:, i].std(), mine[i].std()) / np.sqrt(n)
        assert abs(log_w[:, i].mean() - mine[i].mean()) < 5 * spread


def test_a_class_variable_sums_out_and_its_bounds_meet_their_exact_values():
    """With y latent: importance sampling (y summed out) converges to log sum_y p(y) p(x | y) by quadrature; the
    bound of a labelled row to log p(x, y); an unlabelled row's bound sum_y pi_y bound(x, y) + H(pi) to log p(x)
    when pi is the exact posterior p(y | x), and to log p(x) - KL(pi || p(y | x)) for another pi."""
    model = _broad_q(_tiny(seed=3, scale=0.8, n_classes=2))
    out = model.p_a[-1]  # p(a | z, x, y) of unit scale (its mean still depends on y): light-tailed weights
    out.kernel.assign(np.concatenate([out.kernel.numpy()[:, :1], np.zeros((out.kernel.shape[0], 1))], 1))
    out.bias.assign(np.array([out.bias.numpy()[0], 0.0], np.float32))
    log_joint = np.stack([_exact_log_p(model, X, y) for y in np.eye(2)], -1) + np.log(0.5)  # (8, 2) log p(x, y)
    exact = np.logaddexp(log_joint[:, 0], log_joint[:, 1])
    result = evaluation.importance.log_likelihood(model, X, k=20000, seed=0)
    assert np.all(np.abs(result.per_example - exact) < 5 * result.per_example_std + 2e-3), (result.per_example, exact)

    model.k = 20000
    x, seed = tf.constant(X), tf.constant([0, 1])
    per_row = [float(model.training_loss(x[i:i + 1], seed, labels=tf.constant([y]))[0]) for i in range(8)
               for y in range(2)]
    np.testing.assert_allclose(-np.array(per_row), log_joint.ravel(), atol=0.05)
    posterior = log_joint - exact[:, None]
    uniform = np.zeros((8, 2))
    assert (0.5 * (np.log(0.5) - posterior)).sum(-1).max() > 0.2, posterior  # the classes differ enough to matter
    for logits, gap in ((posterior, np.zeros(8)), (uniform, (0.5 * (np.log(0.5) - posterior)).sum(-1))):
        bounds = [-float(model.training_loss(x[i:i + 1], seed, labels=tf.constant([-1]),
                                             class_logits=tf.constant(logits[i:i + 1], tf.float32))[0])
                  for i in range(8)]
        np.testing.assert_allclose(bounds, exact - gap, atol=0.05)


def test_training_raises_the_bound_and_the_model_round_trips(tmp_path):
    from zoo import data

    x = data.load("binarized_mnist").validation.x[:500]
    model = AuxiliaryDeepGenerativeModel(latent=4, auxiliary=4, hidden=(32,), k=2, seed=0)
    model.compile(keras.optimizers.Adam(3e-3))
    before = evaluation.importance.log_likelihood(model, x[:100], k=10, seed=0).log_likelihood
    model.fit(x, batch_size=50, epochs=5, verbose=0)
    after = evaluation.importance.log_likelihood(model, x[:100], k=10, seed=0).log_likelihood
    assert after > before + 20, (before, after)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(loaded.log_importance_weights(x[:5], 3, tf.constant([1, 2])).numpy(),
                               model.log_importance_weights(x[:5], 3, tf.constant([1, 2])).numpy(), rtol=1e-5)
    assert model(x[:5]).shape == (5, 4) and model.sample(6, seed=0).shape == (6, 784)

    with_classes = AuxiliaryDeepGenerativeModel(latent=4, auxiliary=3, hidden=(16,), k=2, n_classes=10, n_visible=784,
                                                seed=0)
    with_classes.save(tmp_path / "c.keras")
    loaded = keras.models.load_model(tmp_path / "c.keras")
    assert loaded.n_classes == 10 and loaded(x[:5]).shape == (5, 3)  # the features: E q(a | x)
    np.testing.assert_allclose(loaded.log_importance_weights(x[:5], 3, tf.constant([1, 2])).numpy(),
                               with_classes.log_importance_weights(x[:5], 3, tf.constant([1, 2])).numpy(), rtol=1e-5)
    assert with_classes.reconstruct(x[:4]).shape == (4, 784)


def test_bad_settings_and_data():
    with pytest.raises(ValueError, match="latent"):
        AuxiliaryDeepGenerativeModel(latent=0)
    with pytest.raises(ValueError, match="n_classes"):
        AuxiliaryDeepGenerativeModel(n_classes=1)
    with pytest.raises(ValueError, match="hidden layer size"):
        AuxiliaryDeepGenerativeModel(hidden=(5, -1))
    model = _tiny()
    with pytest.raises(ValueError, match="binary"):
        model.validate_data(np.full((2, 3), 0.5))
    with pytest.raises(ValueError, match="3"):
        model.validate_data(np.zeros((2, 4)))
