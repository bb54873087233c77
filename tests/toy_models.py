"""Tiny models with exact answers, for the tests of the house's interfaces."""
import itertools

import keras
import numpy as np
import tensorflow as tf

from zoo import checks


@keras.saving.register_keras_serializable(package="zoo_tests")
class ToyHelmholtz(keras.Model):
    """A one-layer Helmholtz machine small enough to enumerate: h ~ Bernoulli(sigmoid(a)) (m bits),
    x | h ~ Bernoulli(sigmoid(h W + b)) (d pixels; x may hold probabilities in [0, 1]), and an inference
    network q(h | x) = Bernoulli(sigmoid(x U + c)). Offers the LatentVariableModel and Sampler capabilities."""

    def __init__(self, n_visible=5, n_latent=3, scale=1.0, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.n_visible, self.n_latent, self.scale, self.seed = n_visible, n_latent, scale, seed
        rng = np.random.default_rng(seed)

        def weight(name, shape):
            return self.add_weight(name=name, shape=shape, initializer=keras.initializers.Constant(
                (scale * rng.standard_normal(shape)).astype("float32")))
        self.a, self.W, self.b = weight("a", (n_latent,)), weight("W", (n_latent, n_visible)), weight("b", (n_visible,))
        self.U, self.c = weight("U", (n_visible, n_latent)), weight("c", (n_latent,))
        self.built = True

    def get_config(self):
        return {**super().get_config(), "n_visible": self.n_visible, "n_latent": self.n_latent,
                "scale": self.scale, "seed": self.seed}

    def validate_data(self, x, name="x"):
        x = checks.as_float_matrix(x, name, width=self.n_visible)
        if x.min() < 0 or x.max() > 1:
            raise ValueError(f"{name} must hold values in [0, 1]")
        return x

    @staticmethod
    def _bernoulli_log_prob(value, logits):
        return tf.reduce_sum(value * tf.math.log_sigmoid(logits) + (1 - value) * tf.math.log_sigmoid(-logits), -1)

    def log_joint(self, x, h):
        """log p(x, h), broadcasting h (..., m) against x (..., d)."""
        x, h = tf.cast(x, tf.float64), tf.cast(h, tf.float64)
        a, W, b = (tf.cast(v, tf.float64) for v in (self.a, self.W, self.b))
        return self._bernoulli_log_prob(h, a + 0 * h) + self._bernoulli_log_prob(x, h @ W + b)

    def log_q(self, h, x):
        x, h = tf.cast(x, tf.float64), tf.cast(h, tf.float64)
        logits = x @ tf.cast(self.U, tf.float64) + tf.cast(self.c, tf.float64)
        return self._bernoulli_log_prob(h, logits)

    def log_importance_weights(self, x, k, seed):
        x = tf.cast(x, tf.float64)
        probs = tf.sigmoid(x @ tf.cast(self.U, tf.float64) + tf.cast(self.c, tf.float64))  # (n, m)
        u = tf.random.stateless_uniform(tf.concat([[k], tf.shape(probs)], 0), seed, dtype=tf.float64)
        h = tf.cast(u < probs, tf.float64)  # (k, n, m)
        log_w = self.log_joint(x, h) - self.log_q(h, x)  # (k, n)
        return tf.transpose(log_w)

    def exact_log_prob(self, x):
        """log p(x) by enumerating the 2^m latent states."""
        states = np.array(list(itertools.product([0.0, 1.0], repeat=self.n_latent)))
        joint = np.stack([self.log_joint(x, np.broadcast_to(s, (len(x), self.n_latent))).numpy() for s in states])
        return np.logaddexp.reduce(joint, axis=0)

    def exact_elbo(self, x):
        """E_q[log p(x, h) - log q(h | x)] by enumeration: the mean of the K = 1 estimate."""
        states = np.array(list(itertools.product([0.0, 1.0], repeat=self.n_latent)))
        total = 0.0
        for s in states:
            h = np.broadcast_to(s, (len(x), self.n_latent))
            log_q = self.log_q(h, x).numpy()
            total = total + np.exp(log_q) * (self.log_joint(x, h).numpy() - log_q)
        return total

    def sample(self, n, seed=None):
        rng = np.random.default_rng(seed)
        h = (rng.random((n, self.n_latent)) < 1 / (1 + np.exp(-self.a.numpy()))).astype("float32")
        return 1 / (1 + np.exp(-(h @ self.W.numpy() + self.b.numpy())))

    def call(self, x):
        return tf.sigmoid(tf.cast(x, tf.float32) @ self.U + self.c)


def binary_states(n):
    """Every binary vector of length n, (2^n, n) float32, the first unit most significant."""
    return np.array(list(itertools.product([0.0, 1.0], repeat=n)), np.float32)


def with_random_weights(model, seed=0, scale=1.0):
    """`model` with every trainable variable drawn from N(0, scale^2) (seeded): weights large enough that
    the tests' exact answers differ clearly from those of a model at its initial values."""
    rng = np.random.default_rng(seed)
    for variable in model.trainable_variables:
        variable.assign(scale * rng.standard_normal(variable.shape).astype("float32"))
    return model
