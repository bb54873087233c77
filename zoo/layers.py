"""Directed layers of binary units for Helmholtz machines, on `tfp.distributions`.

A layer is a distribution p(y | context) over `units` binary units, the context being the layer above (in a
generative stack) or below (in an inference stack); a layer with n_in = 0 has no context and serves as the top
prior. Every layer has

    logits(value, context)    the logit of each unit; it may depend on the units before it in `value`
    log_prob(value, context)  sum_j log Bernoulli(value_j; logit_j), by sigmoid cross-entropy from the logits
    sample(context, seed, sample_shape)   a draw, unit after unit for the autoregressive layers

vectorised over any leading axes of `value` and `context` (a sample axis K, a batch axis), which broadcast
against each other: log p(x | h) for K samples h of shape (K, batch, n) and x of shape (batch, 784) computes
the parts that depend on x alone once, not K times (and `sample_shape` draws K samples from one context).
Parameters (the documented layout of a checkpoint):

| layer          | p(y_j = 1 | y_<j, x)                                              | variables                    |
|----------------|---------------------------------------------------------------------|------------------------------|
| BernoulliPrior | sigmoid(logits_j)                                                   | logits (n)                   |
| SBN            | sigmoid(x @ kernel + bias)_j                                        | kernel (n_in x n), bias (n)  |
| DARN           | sigmoid(x @ kernel + bias + y @ (autoregressive_kernel * M))_j,     | kernel, bias,                |
|                | M[i, j] = 1 for i < j (strictly upper triangular)                   | autoregressive_kernel (n x n)|
| NADE           | sigmoid(bias + x @ kernel + sigmoid(c + x @ hidden_kernel +         | kernel, bias, hidden_kernel, |
|                | sum_{i<j} y_i W_i) @ V)_j, with W = input_kernel, V = output_kernel | hidden_bias, input_kernel,   |
|                |                                                                     | output_kernel                |

One masked matrix (DARN) and one exclusive cumulative sum (NADE) serve both `log_prob` and `sample`, so they
describe the same distribution (tested by enumerating every value of a tiny layer).
"""
import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from zoo import checks

tfd = tfp.distributions
KINDS = ("sbn", "darn", "nade")


class DirectedLayer(keras.layers.Layer):
    """Base: p(y | context) over `units` binary units; n_in = 0 for a prior without context."""

    kind = None
    autoregressive = False

    def __init__(self, units, n_in=0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.units = checks.check_positive_int(units, "units")
        self.n_in = checks.check_positive_int(n_in, "n_in", minimum=0)
        self.seed = None if seed is None else checks.check_positive_int(seed, "seed", minimum=0)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "n_in": self.n_in, "seed": self.seed}

    def _glorot(self, i):
        """Glorot-uniform initial weights, seeded per matrix when the layer has a seed."""
        return keras.initializers.GlorotUniform(None if self.seed is None else self.seed * 10 + i)

    def _context(self, context):
        """`context` as a tensor of the layer's dtype, its last axis checked against n_in."""
        if context is None:
            raise ValueError(f"this {self.kind} layer needs a context of {self.n_in} units")
        context = tf.convert_to_tensor(context, self.bias.dtype)
        if context.shape.rank is not None and context.shape[-1] is not None and context.shape[-1] != self.n_in:
            raise ValueError(f"this {self.kind} layer takes a context of {self.n_in} units, got {context.shape[-1]} "
                             f"(context shape {tuple(context.shape)})")
        return context

    def _affine(self, context, batch_shape):
        """bias + context @ kernel, shaped (*batch, units): the part of the logits that does not depend on y."""
        if self.n_in:
            return tf.tensordot(self._context(context), self.kernel, 1) + self.bias
        if batch_shape is None:
            return tf.convert_to_tensor(self.bias)
        return tf.broadcast_to(self.bias, tf.concat([batch_shape, [self.units]], 0))

    def logits(self, value, context=None):
        raise NotImplementedError

    def log_prob(self, value, context=None):
        """log p(value | context), summed over the units: value and context broadcast against each other.
        For binary y, log Bernoulli(y; l) = y l - softplus(l) (tfd.Bernoulli's log_prob, in half the passes)."""
        value = tf.convert_to_tensor(value, self.bias.dtype)
        logits = self.logits(value, context)
        return tf.reduce_sum(value * logits - tf.nn.softplus(logits), -1)

    def distribution(self, context=None, value=None):
        """p(. | context) as a `tfd.Independent(tfd.Bernoulli)` over the units; an autoregressive layer's
        logits depend on the value, so it needs `value` (the units before each one) too."""
        if self.autoregressive and value is None:
            raise ValueError(f"a {self.kind.upper()} layer's conditionals depend on the units before them: give value")
        logits = self.logits(value, context) if value is not None else self._affine(context, None)
        return tfd.Independent(tfd.Bernoulli(logits=logits, dtype=self.bias.dtype), 1)

    def sample(self, context=None, seed=None, batch_shape=(), sample_shape=()):
        """A draw of shape (*sample_shape, *context.shape[:-1], units), or (*sample_shape, *batch_shape, units)
        without context."""
        raise NotImplementedError

    def _full_shape(self, context, batch_shape, sample_shape):
        return tf.concat([tf.convert_to_tensor(sample_shape, tf.int32), self._batch_shape(context, batch_shape)], 0)

    def _batch_shape(self, context, batch_shape):
        if self.n_in:
            return tf.shape(self._context(context))[:-1]
        return tf.convert_to_tensor(batch_shape, tf.int32)


class SBN(DirectedLayer):
    """Sigmoid belief layer: independent units given the context, p(y_j = 1 | x) = sigmoid(x @ kernel + bias)_j.
    With n_in = 0 it is the factorised Bernoulli prior of `BernoulliPrior`."""

    kind = "sbn"

    def build(self, input_shape=None):
        if self.n_in:
            self.kernel = self.add_weight(name="kernel", shape=(self.n_in, self.units),
                                          initializer=self._glorot(0))
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")
        self.built = True

    def logits(self, value=None, context=None):
        batch_shape = tf.shape(value)[:-1] if value is not None else tf.constant([], tf.int32)
        return self._affine(context, batch_shape)

    def mean(self, context):
        """E[y | context] = sigmoid(logits): the layer's deterministic path (an encoder)."""
        return tf.sigmoid(self._affine(context, None))

    def sample(self, context=None, seed=None, batch_shape=(), sample_shape=()):
        logits = self._affine(context, self._batch_shape(context, batch_shape))
        return tfd.Bernoulli(logits=logits, dtype=self.bias.dtype).sample(sample_shape, seed=seed)


class BernoulliPrior(SBN):
    """The factorised Bernoulli top prior, p(y_j = 1) = sigmoid(logits_j); its one variable is `logits`."""

    kind = "bernoulli"

    def __init__(self, units, n_in=0, seed=None, **kwargs):
        if n_in:
            raise ValueError("a BernoulliPrior has no context (n_in = 0): use SBN for a conditional layer")
        super().__init__(units, 0, seed=seed, **kwargs)

    def build(self, input_shape=None):
        self.bias = self.add_weight(name="logits", shape=(self.units,), initializer="zeros")
        self.built = True



class DARN(DirectedLayer):
    """Autoregressive within the layer: unit j also sees the units before it, through the strictly upper
    triangular part of `autoregressive_kernel` (row i, column j: the weight of y_i in the logit of y_j)."""

    kind = "darn"
    autoregressive = True

    def build(self, input_shape=None):
        if self.n_in:
            self.kernel = self.add_weight(name="kernel", shape=(self.n_in, self.units),
                                          initializer=self._glorot(0))
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")
        self.autoregressive_kernel = self.add_weight(name="autoregressive_kernel", shape=(self.units, self.units),
                                                     initializer=keras.initializers.RandomNormal(
                                                         stddev=0.01, seed=None if self.seed is None else self.seed * 10 + 1))
        self._triangle = tf.constant(np.triu(np.ones((self.units, self.units), np.float32), k=1))
        self.built = True

    def masked_kernel(self):
        return self.autoregressive_kernel * tf.cast(self._triangle, self.autoregressive_kernel.dtype)

    def logits(self, value, context=None):
        value = tf.convert_to_tensor(value, self.bias.dtype)
        return self._affine(context, tf.shape(value)[:-1]) + tf.tensordot(value, self.masked_kernel(), 1)

    def sample(self, context=None, seed=None, batch_shape=(), sample_shape=()):
        shape = self._full_shape(context, batch_shape, sample_shape)
        base = tf.broadcast_to(self._affine(context, self._batch_shape(context, batch_shape)),
                               tf.concat([shape, [self.units]], 0))
        kernel = self.masked_kernel()
        seed = tf.convert_to_tensor(seed if seed is not None else tf.random.uniform([2], 0, 2 ** 31 - 1, tf.int32))

        def body(j, y):
            logit = base[..., j] + tf.tensordot(y, kernel[:, j], 1)
            y_j = tfd.Bernoulli(logits=logit, dtype=y.dtype).sample(
                seed=tf.random.experimental.stateless_fold_in(seed, j))
            return j + 1, y + y_j[..., None] * tf.one_hot(j, self.units, dtype=y.dtype)

        _, y = tf.while_loop(lambda j, _: j < self.units, body, (tf.constant(0), tf.zeros_like(base)))
        return y


class NADE(DirectedLayer):
    """Autoregressive with its own hidden units: h_j = sigmoid(hidden_bias + x @ hidden_kernel +
    sum_{i<j} y_i input_kernel[i]), logit_j = bias_j + (x @ kernel)_j + h_j @ output_kernel[:, j].
    log_prob computes every h_j at once by an exclusive cumulative sum (memory: batch x units x hidden)."""

    kind = "nade"
    autoregressive = True

    def __init__(self, units, n_in=0, n_hidden=None, seed=None, **kwargs):
        super().__init__(units, n_in, seed=seed, **kwargs)
        self.n_hidden = checks.check_positive_int(n_hidden if n_hidden is not None else units, "n_hidden")

    def get_config(self):
        return {**super().get_config(), "n_hidden": self.n_hidden}

    def build(self, input_shape=None):
        glorot = self._glorot
        if self.n_in:
            self.kernel = self.add_weight(name="kernel", shape=(self.n_in, self.units), initializer=glorot(0))
            self.hidden_kernel = self.add_weight(name="hidden_kernel", shape=(self.n_in, self.n_hidden),
                                                 initializer=glorot(1))
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")
        self.hidden_bias = self.add_weight(name="hidden_bias", shape=(self.n_hidden,), initializer="zeros")
        self.input_kernel = self.add_weight(name="input_kernel", shape=(self.units, self.n_hidden),
                                            initializer=glorot(2))
        self.output_kernel = self.add_weight(name="output_kernel", shape=(self.n_hidden, self.units),
                                             initializer=glorot(3))
        self.built = True

    def _hidden_base(self, context, batch_shape):
        if self.n_in:
            return tf.tensordot(self._context(context), self.hidden_kernel, 1) + self.hidden_bias
        return tf.broadcast_to(self.hidden_bias, tf.concat([batch_shape, [self.n_hidden]], 0))

    def logits(self, value, context=None):
        value = tf.convert_to_tensor(value, self.bias.dtype)
        batch_shape = tf.shape(value)[:-1]
        # a_j = hidden base + sum_{i<j} y_i W_i: an exclusive cumulative sum over the units
        contributions = value[..., :, None] * self.input_kernel  # (..., units, hidden)
        hidden = tf.sigmoid(self._hidden_base(context, batch_shape)[..., None, :]
                            + tf.cumsum(contributions, axis=-2, exclusive=True))
        return self._affine(context, batch_shape) + tf.reduce_sum(hidden * tf.transpose(self.output_kernel), -1)

    def sample(self, context=None, seed=None, batch_shape=(), sample_shape=()):
        shape = self._full_shape(context, batch_shape, sample_shape)
        batch_shape = self._batch_shape(context, batch_shape)
        base = tf.broadcast_to(self._affine(context, batch_shape), tf.concat([shape, [self.units]], 0))
        a = tf.broadcast_to(self._hidden_base(context, batch_shape), tf.concat([shape, [self.n_hidden]], 0))
        seed = tf.convert_to_tensor(seed if seed is not None else tf.random.uniform([2], 0, 2 ** 31 - 1, tf.int32))

        def body(j, a, y):
            logit = base[..., j] + tf.tensordot(tf.sigmoid(a), self.output_kernel[:, j], 1)
            y_j = tfd.Bernoulli(logits=logit, dtype=y.dtype).sample(
                seed=tf.random.experimental.stateless_fold_in(seed, j))
            return j + 1, a + y_j[..., None] * self.input_kernel[j], y + y_j[..., None] * tf.one_hot(
                j, self.units, dtype=y.dtype)

        _, _, y = tf.while_loop(lambda j, *_: j < self.units, body, (tf.constant(0), a, tf.zeros_like(base)))
        return y


LAYERS = {"sbn": SBN, "darn": DARN, "nade": NADE}


def make(kind, units, n_in=0, name=None, seed=None, **kwargs):
    """A directed layer of `kind` ("sbn", "darn" or "nade"); an "sbn" layer without context is the
    factorised `BernoulliPrior`."""
    kind = checks.check_choice(str(kind).lower(), "layer type", KINDS)
    if kind == "sbn" and not n_in:
        return BernoulliPrior(units, name=name, seed=seed)
    if kind != "nade":
        kwargs.pop("n_hidden", None)
    return LAYERS[kind](units, n_in, name=name, seed=seed, **kwargs)
