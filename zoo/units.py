"""Stochastic unit families for energy-based models, on `tfp.distributions`.

A layer of n units with bias b receives an input a (the signal from the layers it is connected to). Its
energy is E(x) = self_energy(x; b) - interaction(x) . a, so that

    p(x | a) ∝ exp(-self_energy(x; b) + interaction(x) . a)
    log_partition(a; b) = log sum_x exp(-self_energy(x; b) + interaction(x) . a)   (x summed out)

The last one is the layer's contribution to a free energy: F(v) = self_energy(v) - log_partition(v W; c).

| units     | self_energy(x; b)      | interaction(x) | p(x | a)                          | log_partition(a; b)               |
|-----------|------------------------|----------------|-----------------------------------|-----------------------------------|
| bernoulli | -b.x                   | x              | Bernoulli(sigmoid(a + b))         | sum softplus(a + b)               |
| gaussian  | sum (x-b)^2/(2 s^2)    | x / s          | Normal(b + s a, s)                | sum b a / s + a^2 / 2 + log(s sqrt(2 pi)) |
| softmax   | -b.x (one-hot groups)  | x              | OneHotCategorical(a + b) per group| sum_groups logsumexp(a + b)       |

Units are Keras layers only so that their own parameters (a learned sigma) are tracked and serialised;
they are never called on inputs.
"""
import math

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from zoo import checks

tfd = tfp.distributions


class Units(keras.layers.Layer):
    """Base class: a layer of `n` stochastic units. Subclasses define the table above."""

    kind = None
    #: True when states are discrete and the layer can be enumerated (exact log Z, issue 3).
    discrete = True
    #: True when the self energy is linear in the state, -x.b (hidden units and the centered gradient need it).
    linear_self_energy = True

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.n = None

    def build(self, n):
        self.n = int(n)
        self.built = True

    # -- the four quantities of the table -------------------------------------------------------------
    def self_energy(self, x, bias):
        """Per-example self energy; for the linear families -x.b."""
        return -tf.reduce_sum(x * bias, axis=-1)

    def interaction(self, x):
        return x

    def distribution(self, inputs, bias):
        raise NotImplementedError

    def log_partition(self, inputs, bias):
        raise NotImplementedError

    # -- derived ---------------------------------------------------------------------------------------
    def mean(self, inputs, bias):
        """E[x | a]: the expected state, shape (batch, n)."""
        return self._flatten(self.distribution(inputs, bias).mean())

    def sample(self, inputs, bias, seed):
        """One draw x ~ p(x | a) with a stateless int32 seed of shape (2,), shape (batch, n)."""
        return self._flatten(self.distribution(inputs, bias).sample(seed=seed))

    def sample_and_mean(self, inputs, bias, seed):
        """(x ~ p(x | a), E[x | a]): a Gibbs sweep needs both; families may share work between them."""
        return self.sample(inputs, bias, seed), self.mean(inputs, bias)

    def _flatten(self, x):
        return x

    def base_sample(self, batch, seed, dtype=tf.float32):
        """States drawn with zero input and zero bias (used to start chains)."""
        zeros = tf.zeros((batch, self.n), dtype)
        return self.sample(zeros, tf.zeros((self.n,), dtype), seed)

    # -- enumeration (discrete families; exact log Z on small models) ------------------------------------
    def log_n_states(self):
        """log of the number of joint states of the layer (inf for continuous units)."""
        return math.inf

    def states(self, start, stop, dtype=tf.float64):
        """The joint states numbered start, ..., stop - 1 (a fixed order over all of them), shape
        (stop - start, n)."""
        raise ValueError(f"{self.kind} units are continuous: their states cannot be enumerated")

    # -- data checks and initialisation (NumPy, at the public boundary) --------------------------------
    def validate(self, x, name="x"):
        """Raise ValueError if the float array `x` cannot be states of these units."""
        return x

    def bias_from_mean(self, mean):
        """The bias that makes independent units (zero weights) match the data mean."""
        raise NotImplementedError

    def get_config(self):
        config = super().get_config()
        for key in ("trainable", "dtype"):
            config.pop(key, None)
        return config


@keras.saving.register_keras_serializable(package="zoo")
class BernoulliUnits(Units):
    """Binary units x in {0, 1}."""

    kind = "bernoulli"

    def __init__(self, allow_nonbinary=False, **kwargs):
        super().__init__(**kwargs)
        self.allow_nonbinary = bool(allow_nonbinary)

    def distribution(self, inputs, bias):
        return tfd.Independent(tfd.Bernoulli(logits=inputs + bias, dtype=inputs.dtype), 1)

    def sample(self, inputs, bias, seed):
        return self.sample_and_mean(inputs, bias, seed)[0]

    def sample_and_mean(self, inputs, bias, seed):
        # one sigmoid for both: tfp's sampler given `logits` would compute its own (an RBM 784-500 step
        # paid ~0.15 ms for it, benchmarks/bench_rbm.py)
        mean = tf.sigmoid(inputs + bias)
        return tfd.Bernoulli(probs=mean, dtype=mean.dtype).sample(seed=seed), mean

    def mean(self, inputs, bias):
        return tf.sigmoid(inputs + bias)

    def log_partition(self, inputs, bias):
        return tf.reduce_sum(tf.math.softplus(inputs + bias), axis=-1)

    def validate(self, x, name="x"):
        if self.allow_nonbinary:
            if np.any((x < 0) | (x > 1)):
                raise ValueError(f"{name} must lie in [0, 1] for Bernoulli units, got values in "
                                 f"[{x.min():g}, {x.max():g}]")
            return x
        return checks.check_binary(x, name)

    def log_n_states(self):
        return self.n * math.log(2)

    def states(self, start, stop, dtype=tf.float64):
        codes = tf.range(start, stop, dtype=tf.int64)[:, None]
        bits = tf.bitwise.right_shift(codes, tf.range(self.n, dtype=tf.int64)[None, :]) % 2
        return tf.cast(bits, dtype)

    def bias_from_mean(self, mean):
        p = np.clip(np.asarray(mean, np.float64), 1e-3, 1 - 1e-3)
        return np.log(p) - np.log1p(-p)

    def get_config(self):
        return {**super().get_config(), "allow_nonbinary": self.allow_nonbinary}


@keras.saving.register_keras_serializable(package="zoo")
class GaussianUnits(Units):
    """Real-valued units with per-unit standard deviation sigma, fixed or learned (as log sigma)."""

    kind = "gaussian"
    discrete = False
    linear_self_energy = False

    def __init__(self, sigma=1.0, learn_sigma=False, **kwargs):
        super().__init__(**kwargs)
        sigma_arr = np.asarray(sigma, np.float64)
        if sigma_arr.ndim > 1 or not np.all(np.isfinite(sigma_arr)) or np.any(sigma_arr <= 0):
            raise ValueError(f"sigma must be a positive number or a 1-D array of them, got {sigma!r}")
        self.sigma_init = sigma_arr.tolist()
        self.learn_sigma = bool(learn_sigma)

    def build(self, n):
        super().build(n)
        init = np.broadcast_to(np.log(np.asarray(self.sigma_init, np.float64)), (self.n,))
        if np.ndim(self.sigma_init) == 1 and len(self.sigma_init) != self.n:
            raise ValueError(f"sigma has {len(self.sigma_init)} entries but the layer has {self.n} units")
        self.log_sigma = self.add_weight(
            name="log_sigma", shape=(self.n,), trainable=self.learn_sigma,
            initializer=keras.initializers.Constant(init.astype(np.float32)))

    def sigma(self, dtype=tf.float32):
        return tf.exp(tf.cast(self.log_sigma, dtype))

    def self_energy(self, x, bias):
        s = self.sigma(x.dtype)
        return tf.reduce_sum(tf.square(x - bias) / (2 * tf.square(s)), axis=-1)

    def interaction(self, x):
        return x / self.sigma(x.dtype)

    def distribution(self, inputs, bias):
        s = self.sigma(inputs.dtype)
        return tfd.Independent(tfd.Normal(loc=bias + s * inputs, scale=s), 1)

    def mean(self, inputs, bias):
        return bias + self.sigma(inputs.dtype) * inputs

    def log_partition(self, inputs, bias):
        s = self.sigma(inputs.dtype)
        log_norm = tf.math.log(s) + 0.5 * math.log(2 * math.pi)
        return tf.reduce_sum(bias * inputs / s + 0.5 * tf.square(inputs) + log_norm, axis=-1)

    def bias_from_mean(self, mean):
        return np.asarray(mean, np.float64)

    def get_config(self):
        return {**super().get_config(), "sigma": self.sigma_init, "learn_sigma": self.learn_sigma}


@keras.saving.register_keras_serializable(package="zoo")
class SoftmaxUnits(Units):
    """Groups of `group_size` units with exactly one unit on per group ("multinomial" units).

    `group_size=None` makes the whole layer one group (a single K-way unit).
    """

    kind = "softmax"

    def __init__(self, group_size=None, **kwargs):
        super().__init__(**kwargs)
        if group_size is not None:
            group_size = checks.check_positive_int(group_size, "group_size", minimum=2)
        self.group_size = group_size

    def build(self, n):
        super().build(n)
        size = self.n if self.group_size is None else self.group_size
        if self.n % size:
            raise ValueError(f"softmax units: {self.n} units cannot be split into groups of {size}")
        self.size = size
        self.n_groups = self.n // size

    def _grouped(self, t):
        return tf.reshape(t, tf.concat([tf.shape(t)[:-1], [self.n_groups, self.size]], 0))

    def _flatten(self, x):
        return tf.reshape(x, tf.concat([tf.shape(x)[:-2], [self.n]], 0))

    def distribution(self, inputs, bias):
        logits = self._grouped(inputs + bias)
        return tfd.Independent(tfd.OneHotCategorical(logits=logits, dtype=inputs.dtype), 1)

    def mean(self, inputs, bias):
        return self._flatten(tf.nn.softmax(self._grouped(inputs + bias), axis=-1))

    def log_partition(self, inputs, bias):
        return tf.reduce_sum(tf.reduce_logsumexp(self._grouped(inputs + bias), axis=-1), axis=-1)

    def log_n_states(self):
        return self.n_groups * math.log(self.size)

    def states(self, start, stop, dtype=tf.float64):
        codes = tf.range(start, stop, dtype=tf.int64)[:, None]
        places = tf.constant([self.size ** g for g in range(self.n_groups)], tf.int64)[None, :]
        digits = (codes // places) % self.size  # (states, groups): which unit of each group is on
        return self._flatten(tf.one_hot(digits, self.size, dtype=dtype))

    def validate(self, x, name="x"):
        grouped = x.reshape(x.shape[0], self.n_groups, self.size)
        if np.any((x < 0) | (x > 1)) or not np.allclose(grouped.sum(-1), 1, atol=1e-5):
            raise ValueError(f"{name} must hold one-hot groups of {self.size} for softmax units "
                             "(entries in [0, 1], each group summing to 1)")
        return x

    def bias_from_mean(self, mean):
        grouped = np.clip(np.asarray(mean, np.float64), 1e-3, None).reshape(self.n_groups, self.size)
        return np.log(grouped / grouped.sum(-1, keepdims=True)).reshape(-1)

    def get_config(self):
        return {**super().get_config(), "group_size": self.group_size}


UNITS = {"bernoulli": BernoulliUnits, "gaussian": GaussianUnits, "softmax": SoftmaxUnits,
         "multinomial": SoftmaxUnits}


def get(spec):
    """Units from a name ('bernoulli', 'gaussian', 'softmax'/'multinomial'), a Keras config or an instance."""
    if isinstance(spec, Units):
        return spec
    if isinstance(spec, dict):
        return keras.saving.deserialize_keras_object(spec)
    if isinstance(spec, str) and spec.lower() in UNITS:
        return UNITS[spec.lower()]()
    raise ValueError(f"unknown unit type {spec!r}: expected one of {', '.join(sorted(UNITS))} "
                     "or a zoo.units.Units instance")
