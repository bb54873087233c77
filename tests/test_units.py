"""Stochastic units against closed forms computed independently with NumPy/SciPy."""
import numpy as np
import pytest
import tensorflow as tf
from scipy import integrate, special

from zoo import units


def _built(u, n):
    u.build(n)
    return u


def test_bernoulli_matches_formulas():
    u = _built(units.BernoulliUnits(), 4)
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 4)), rng.normal(size=4)
    x = (rng.random((5, 4)) < 0.5).astype(np.float64)
    np.testing.assert_allclose(u.log_partition(tf.constant(a), tf.constant(b)),
                               np.log1p(np.exp(a + b)).sum(-1), rtol=1e-12)
    np.testing.assert_allclose(u.mean(tf.constant(a), tf.constant(b)), special.expit(a + b), rtol=1e-12)
    np.testing.assert_allclose(u.self_energy(tf.constant(x), tf.constant(b)), -(x * b).sum(-1), rtol=1e-12)
    # log p(x|a) from the distribution equals x.(a+b) - log_partition
    logp = u.distribution(tf.constant(a), tf.constant(b)).log_prob(x)
    np.testing.assert_allclose(logp, (x * (a + b)).sum(-1) - np.log1p(np.exp(a + b)).sum(-1), rtol=1e-10)


def test_bernoulli_samples_have_the_right_mean():
    u = _built(units.BernoulliUnits(), 3)
    logits = tf.constant([[-1.0, 0.0, 2.0]] * 20000)
    s = u.sample(logits, tf.zeros(3), tf.constant([1, 2], tf.int32)).numpy()
    assert set(np.unique(s)) <= {0.0, 1.0}
    np.testing.assert_allclose(s.mean(0), special.expit([-1.0, 0.0, 2.0]), atol=0.015)


@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.0])
def test_gaussian_log_partition_is_the_integral(sigma):
    u = _built(units.GaussianUnits(sigma=sigma), 1)
    sigma = float(u.sigma(tf.float64)[0])  # the float32-stored value, exactly as the unit uses it
    for a, b in [(0.3, -0.2), (-1.1, 0.7), (0.0, 0.0)]:
        integral, _ = integrate.quad(lambda v: np.exp(-(v - b) ** 2 / (2 * sigma**2) + v / sigma * a), -50, 50)
        got = u.log_partition(tf.constant([[a]], tf.float64), tf.constant([b], tf.float64))
        np.testing.assert_allclose(got, [np.log(integral)], rtol=1e-9)
        np.testing.assert_allclose(u.mean(tf.constant([[a]], tf.float64), tf.constant([b], tf.float64)),
                                   [[b + sigma * a]], rtol=1e-12)


def test_gaussian_learned_sigma_is_trainable_and_per_unit():
    u = _built(units.GaussianUnits(sigma=[0.5, 2.0], learn_sigma=True), 2)
    assert u.log_sigma.trainable
    np.testing.assert_allclose(u.sigma().numpy(), [0.5, 2.0], rtol=1e-6)
    s = u.sample(tf.zeros((20000, 2)), tf.constant([1.0, -1.0]), tf.constant([3, 4], tf.int32)).numpy()
    np.testing.assert_allclose(s.mean(0), [1.0, -1.0], atol=0.05)
    np.testing.assert_allclose(s.std(0), [0.5, 2.0], rtol=0.03)


def test_softmax_groups():
    u = _built(units.SoftmaxUnits(group_size=3), 6)
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(4, 6)), rng.normal(size=6)
    z = (a + b).reshape(4, 2, 3)
    np.testing.assert_allclose(u.log_partition(tf.constant(a), tf.constant(b)),
                               special.logsumexp(z, axis=-1).sum(-1), rtol=1e-12)
    mean = u.mean(tf.constant(a), tf.constant(b)).numpy()
    np.testing.assert_allclose(mean.reshape(4, 2, 3), special.softmax(z, axis=-1), rtol=1e-12)
    s = u.sample(tf.constant(a), tf.constant(b), tf.constant([0, 1], tf.int32)).numpy().reshape(4, 2, 3)
    assert np.all(s.sum(-1) == 1) and set(np.unique(s)) <= {0.0, 1.0}


def test_bias_from_mean_reproduces_the_mean():
    rng = np.random.default_rng(2)
    mean = rng.uniform(0.05, 0.95, size=5)
    u = _built(units.BernoulliUnits(), 5)
    np.testing.assert_allclose(special.expit(u.bias_from_mean(mean)), mean, rtol=1e-9)
    s = _built(units.SoftmaxUnits(), 5)
    p = mean / mean.sum()
    np.testing.assert_allclose(special.softmax(s.bias_from_mean(p)), p, rtol=1e-9)


def test_bad_unit_specs():
    with pytest.raises(ValueError, match="unknown unit type 'boltzmann'.*bernoulli"):
        units.get("boltzmann")
    with pytest.raises(ValueError, match="sigma must be a positive"):
        units.GaussianUnits(sigma=-1.0)
    with pytest.raises(ValueError, match="cannot be split into groups of 4"):
        units.SoftmaxUnits(group_size=4).build(6)
    with pytest.raises(ValueError, match="group_size"):
        units.SoftmaxUnits(group_size=1)
    with pytest.raises(ValueError, match="binary"):
        _built(units.BernoulliUnits(), 2).validate(np.array([[0.0, 0.5]], np.float32))
    with pytest.raises(ValueError, match="one-hot groups"):
        _built(units.SoftmaxUnits(), 2).validate(np.array([[1.0, 1.0]], np.float32))
    assert isinstance(units.get("multinomial"), units.SoftmaxUnits)
