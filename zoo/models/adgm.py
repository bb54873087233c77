"""The auxiliary deep generative model (Maaløe, Sønderby, Sønderby & Winther 2016), unsupervised: the explicit
generative part of the deep hybrid models of Kuleshov & Ermon (2017), on `tfp.distributions`.

Generative model:  p(x, z, a) = p(z) p(x | z) p(a | z, x),  p(z) = N(0, I),  p(x | z) Bernoulli,
                   p(a | z, x) Gaussian (the auxiliary a leaves the marginal p(x, z) unchanged)
Inference model:   q(a, z | x) = q(a | x) q(z | a, x), both Gaussian

With (a_k, z_k) ~ q(. | x) drawn by reparameterisation and log w_k = log p(x, z_k, a_k) - log q(a_k, z_k | x),
log mean_k w_k is a stochastic lower bound on log p(x) (K = 1: the ELBO) that training follows and
`zoo.evaluation.importance` estimates. The auxiliary variable makes q(z | x) = integral q(a | x) q(z | a, x) da
a mixture, richer than a single Gaussian.

With `n_classes`, the class y is a latent variable of the generative part too (Maaløe et al.'s semi-supervised
ADGM, Kingma et al.'s M2 with the auxiliary a): p(x, y, z, a) = p(z) p(y) p(x | z, y) p(a | z, x, y), p(y)
uniform, q(z | a, x, y). A labelled row's bound is the K-sample bound at its y; an unlabelled row's, given class
probabilities pi(x) (a hybrid's classifier), sum_y pi_y bound(x, y) + H(pi), which trains the classifier on
unlabelled data; evaluation sums y out exactly: w_k = sum_y p(x, y, z_ky, a_k) / q(a_k | x) q(z_ky | a_k, x, y).
"""
import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from zoo import checks, viz
from zoo.models.base import RestoresCompiledState, bound_and_ess, fit_inputs, next_seed
from zoo.models.metrics import RunningMeans

tfd = tfp.distributions
MIN_LOG_SCALE, MAX_LOG_SCALE = -7.0, 5.0  # Gaussian scales in [1e-3, 150]: no underflow, no explosion


def _mlp(sizes, name, seed):
    """Softplus Dense layers of `sizes` (each seeded from `seed`)."""
    return [keras.layers.Dense(n, activation="softplus", name=f"{name}_{i + 1}",
                               kernel_initializer=keras.initializers.GlorotUniform(None if seed is None else seed + i))
            for i, n in enumerate(sizes)]


@keras.saving.register_keras_serializable(package="zoo")
class AuxiliaryDeepGenerativeModel(RestoresCompiledState, keras.Model):
    """An auxiliary deep generative model of binary data, trained on its K-sample bound through `model.fit`.

    Args:
      latent: dimension of z; auxiliary: dimension of a.
      hidden: the sizes of the softplus hidden layers of each of the four networks (p(x | z), p(a | z, x),
        q(a | x), q(z | a, x)).
      k: importance samples per example in training (1: the ELBO).
      n_classes: None (unsupervised), or the number of classes of a latent class variable y (see the module).
      n_visible: builds the model at once when given; seed: the initial weights and all sampling.
    """

    def __init__(self, latent=32, auxiliary=32, hidden=(500, 500), k=1, n_classes=None, n_visible=None, seed=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.latent = checks.check_positive_int(latent, "latent")
        self.auxiliary = checks.check_positive_int(auxiliary, "auxiliary")
        hidden = [hidden] if isinstance(hidden, (int, np.integer)) else list(hidden)
        self.hidden = [checks.check_positive_int(n, "a hidden layer size") for n in hidden]
        self.k = checks.check_positive_int(k, "k")
        self.n_classes = None if n_classes is None else checks.check_positive_int(n_classes, "n_classes", minimum=2)
        self.seed = None if seed is None else checks.check_positive_int(seed, "seed", minimum=0)
        self.seed_generator = keras.random.SeedGenerator(self.seed)
        self.n_visible = None
        self.monitor = RunningMeans(["bound", "ess"], name="monitor")
        if n_visible is not None:
            self.build((None, checks.check_positive_int(n_visible, "n_visible")))

    def build(self, input_shape):
        if self.built:
            return
        self.n_visible = int(input_shape[-1])
        base = None if self.seed is None else self.seed * 100

        def net(name, n_in, n_out, offset):
            layers = _mlp(self.hidden, name, None if base is None else base + offset) + [keras.layers.Dense(
                n_out, name=f"{name}_out", kernel_initializer=keras.initializers.GlorotUniform(
                    None if base is None else base + offset + 50))]
            shape = (None, n_in)
            for layer in layers:
                layer.build(shape)
                shape = (None, layer.units)
            return layers

        c = self.n_classes or 0  # y's one-hot code joins the inputs of the networks conditioned on it
        self.p_x = net("p_x", self.latent + c, self.n_visible, 0)  # logits of p(x | z[, y])
        self.p_a = net("p_a", self.latent + self.n_visible + c, 2 * self.auxiliary, 10)  # p(a | z, x[, y])
        self.q_a = net("q_a", self.n_visible, 2 * self.auxiliary, 20)  # q(a | x)
        self.q_z = net("q_z", self.auxiliary + self.n_visible + c, 2 * self.latent, 30)  # q(z | a, x[, y])
        self.built = True

    def get_config(self):
        return {**super().get_config(), "latent": self.latent, "auxiliary": self.auxiliary, "hidden": self.hidden,
                "k": self.k, "n_classes": self.n_classes, "n_visible": self.n_visible, "seed": self.seed}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def describe(self):
        return (f"{type(self).__name__}, {self.n_visible} visible, z of {self.latent}, a of {self.auxiliary}"
                f"{'' if self.n_classes is None else f', class y of {self.n_classes}'}, "
                f"hidden {'-'.join(map(str, self.hidden))}")

    def _next_seed(self):
        return next_seed(self.seed_generator)

    # -- the distributions -------------------------------------------------------------------------------
    @staticmethod
    def _run(layers, inputs):
        h = inputs
        for layer in layers:
            h = layer(h)
        return h

    def _gaussian(self, layers, inputs):
        loc, log_scale = tf.split(self._run(layers, inputs), 2, axis=-1)
        return tfd.Independent(tfd.Normal(loc, tf.exp(tf.clip_by_value(log_scale, MIN_LOG_SCALE, MAX_LOG_SCALE))), 1)

    def q_a_given_x(self, x):
        return self._gaussian(self.q_a, x)

    def q_z_given_a_x(self, a, x, y=None):
        """q(z | a, x[, y]); y: one-hot codes (only with n_classes)."""
        return self._gaussian(self.q_z, tf.concat([a, x] + ([] if y is None else [y]), -1))

    def p_x_given_z(self, z, y=None):
        return tfd.Independent(tfd.Bernoulli(logits=self._run(self.p_x, tf.concat([z] + ([] if y is None else [y]),
                                                                                  -1)), dtype=z.dtype), 1)

    def p_a_given_z_x(self, z, x, y=None):
        return self._gaussian(self.p_a, tf.concat([z, x] + ([] if y is None else [y]), -1))

    def prior(self, dtype=tf.float32):
        return tfd.Independent(tfd.Normal(tf.zeros(self.latent, dtype), tf.ones(self.latent, dtype)), 1)

    def _log_weights_of(self, x, k, seed):
        """(k, batch) log weights for (a, z) ~ q(. | x) by reparameterisation (gradients flow through them); with
        a class variable, y summed out: log sum_y w_k(y)."""
        log_w = self._class_log_weights(x, k, seed)
        return log_w if self.n_classes is None else tf.reduce_logsumexp(log_w, axis=0)

    def _class_log_weights(self, x, k, seed):
        """(k, batch): log p(x, z_k, a_k) - log q(a_k, z_k | x); with a class variable (n_classes, k, batch):
        log p(x, y, z_ky, a_k) - log q(a_k | x) q(z_ky | a_k, x, y) for every class y, a_k ~ q(a | x) shared
        across the classes and z_ky ~ q(z | a_k, x, y)."""
        seed_a, seed_z = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        c = self.n_classes
        q_a = self.q_a_given_x(x)
        a = q_a.sample(k, seed=seed_a)  # (k, batch, auxiliary)
        shape = tf.concat([[k] if c is None else [c, k], tf.shape(x)[:1]], 0)
        xs = tf.broadcast_to(x, tf.concat([shape, tf.shape(x)[1:]], 0))
        y = None if c is None else tf.broadcast_to(tf.eye(c, dtype=x.dtype)[:, None, None, :],
                                                   tf.concat([shape, [c]], 0))
        a_y = tf.broadcast_to(a, tf.concat([shape, [self.auxiliary]], 0))
        q_z = self.q_z_given_a_x(a_y, xs, y)
        z = q_z.sample(seed=seed_z)  # ([classes,] k, batch, latent)
        log_p = self.prior(x.dtype).log_prob(z) + self.p_x_given_z(z, y).log_prob(xs) + self.p_a_given_z_x(
            z, xs, y).log_prob(a_y)
        if c is not None:
            log_p -= tf.math.log(tf.cast(c, x.dtype))  # p(y) uniform
        return log_p - q_a.log_prob(a) - q_z.log_prob(z)

    # -- the LatentVariableModel capability (zoo.evaluation.importance) ---------------------------------
    def log_importance_weights(self, x, k, seed):
        """(batch, k): log p(x, z_k, a_k) - log q(a_k, z_k | x) for (a_k, z_k) ~ q(. | x)."""
        self._check_built()
        return self._log_weights(tf.convert_to_tensor(x, self.compute_dtype), tf.constant(int(k)),
                                 tf.convert_to_tensor(seed, tf.int32))

    @tf.function(reduce_retracing=True)
    def _log_weights(self, x, k, seed):
        return tf.transpose(self._log_weights_of(x, k, seed))

    def validate_data(self, x, name="x"):
        """`x` as a float32 binary array of shape (n, n_visible), or ValueError."""
        arr = checks.as_float_matrix(x, name, width=self.n_visible)
        if not self.built:
            self.build(arr.shape)
        return checks.check_binary(arr, name)

    def _check_built(self):
        if not self.built:
            raise ValueError("the model has no weights yet: fit it or give n_visible")

    # -- training ---------------------------------------------------------------------------------------
    def compile(self, optimizer=None, **kwargs):
        """Adam (learning rate 1e-3) unless an optimizer is given."""
        super().compile(optimizer=optimizer if optimizer is not None else keras.optimizers.Adam(1e-3), **kwargs)

    @property
    def metrics(self):
        return [self.monitor]

    bound_and_ess = staticmethod(bound_and_ess)  # the K-sample bound training follows, and the ESS

    def training_loss(self, x, seed, labels=None, class_logits=None):
        """-mean K-sample bound (its gradient by reparameterisation), and the log weights (k, batch).

        With a class variable: a row labelled y >= 0 (`labels`) takes the bound at its y; an unlabelled one
        (y = -1, or no labels) sum_y pi_y bound(x, y) + H(pi) with pi = softmax(class_logits), or without class
        logits the bound with y summed out. The log weights are always those with y summed out."""
        if self.n_classes is None:
            log_w = self._log_weights_of(x, self.k, seed)
            bound, _ = self.bound_and_ess(log_w)
            return -tf.reduce_mean(bound), tf.stop_gradient(log_w)
        class_log_w = self._class_log_weights(x, self.k, seed)
        log_w = tf.reduce_logsumexp(class_log_w, axis=0)
        class_bounds = tf.transpose(tf.reduce_logsumexp(class_log_w, axis=1)) - tf.math.log(
            tf.cast(self.k, x.dtype))  # (batch, classes)
        if class_logits is None:
            unlabelled = tf.reduce_logsumexp(class_bounds, axis=-1)
        else:
            pi = tf.nn.softmax(class_logits)
            unlabelled = tf.reduce_sum(pi * (class_bounds - tf.nn.log_softmax(class_logits)), axis=-1)
        if labels is None:
            bound = unlabelled
        else:
            labels = tf.cast(labels, tf.int32)
            at_label = tf.gather(class_bounds, tf.maximum(labels, 0), batch_dims=1)
            bound = tf.where(labels >= 0, at_label, unlabelled)
        return -tf.reduce_mean(bound), tf.stop_gradient(log_w)

    def train_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        x = tf.cast(x, self.compute_dtype)
        with tf.GradientTape() as tape:
            loss, log_w = self.training_loss(x, self._next_seed())
            loss = loss / tf.distribute.get_strategy().num_replicas_in_sync
        self.optimizer.apply_gradients(zip(tape.gradient(loss, self.trainable_variables), self.trainable_variables))
        self.monitor.update_state(list(self.bound_and_ess(log_w)))
        return self.monitor.result()

    def test_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        log_w = self._log_weights_of(tf.cast(x, self.compute_dtype), self.k, self._next_seed())
        self.monitor.update_state(list(self.bound_and_ess(log_w)))
        return self.monitor.result()

    def fit(self, x=None, y=None, batch_size=None, epochs=1, validation_data=None, **kwargs):
        """Keras `fit`; arrays are checked first (shape, finiteness, binary)."""
        x, batch_size, validation_data = fit_inputs(self, x, batch_size, validation_data, kwargs)
        return super().fit(x, y, batch_size=batch_size, epochs=epochs, validation_data=validation_data, **kwargs)

    def prepare_visible_bias(self, x):
        """p(x | z)'s output biases at the data's base rate, logit(mean), before a first fit."""
        if getattr(self, "optimizer", None) is None or int(self.optimizer.iterations.numpy()) == 0:
            mean = np.clip(checks.as_float_matrix(x, "x", width=self.n_visible).mean(0), 1e-3, 1 - 1e-3)
            self.p_x[-1].bias.assign(np.log(mean / (1 - mean)).astype(np.float32))

    # -- features, samples, SavedModel ------------------------------------------------------------------
    def call(self, x):
        """The features of x: the mean of q(z | a, x) at a = the mean of q(a | x); with a class variable, the mean
        of q(a | x) (z's posterior depends on y)."""
        x = tf.convert_to_tensor(x, self.compute_dtype)
        a = self.q_a_given_x(x).mean()
        return a if self.n_classes is not None else self.q_z_given_a_x(a, x).mean()

    def _prior_samples(self, n, seed):
        """E[x | z] for z ~ p(z) and, with a class variable, y = 0, 1, ..., n_classes - 1, 0, ... in turn."""
        z = self.prior().sample(n, seed=seed)
        y = None if self.n_classes is None else tf.one_hot(tf.range(n) % self.n_classes, self.n_classes)
        return self.p_x_given_z(z, y).mean()

    def reconstruct(self, x):
        """E[x | z = E q(z | E a, x)] (with a class variable, at the y of the largest one-sample bound)."""
        x = tf.convert_to_tensor(x, self.compute_dtype)
        a = self.q_a_given_x(x).mean()
        if self.n_classes is None:
            return self.p_x_given_z(self.q_z_given_a_x(a, x).mean()).mean()
        bounds = self._class_log_weights(x, 1, tf.constant([0, 0]))[:, 0]  # (classes, batch)
        y = tf.one_hot(tf.argmax(bounds, axis=0), self.n_classes, dtype=x.dtype)
        return self.p_x_given_z(self.q_z_given_a_x(a, x, y).mean(), y).mean()

    def sample(self, n, seed=None):
        """E[x | z] for n draws z ~ p(z), shape (n, n_visible); with a class variable, at y = 0, 1, ... in turn
        (each column of a grid n_classes wide is one class)."""
        self._check_built()
        n = checks.check_positive_int(n, "n")
        seed = (self._next_seed() if seed is None
                else tf.constant([checks.check_positive_int(seed, "seed", minimum=0), 0], tf.int32))
        return self._prior_samples(n, seed).numpy()

    def summary_images(self, x):
        """100 samples E[x | z], z ~ p(z), and the data beside E[x | z = E q(z | E a, x)] (TensorBoard)."""
        x = tf.convert_to_tensor(self.validate_data(x)[:50], self.compute_dtype)
        pairs = viz.pairs(x.numpy(), self.reconstruct(x).numpy())
        return {"samples": (self.sample(100, seed=0), False), "reconstructions": (pairs, False, 10)}

    def summary_histograms(self, x):
        """The features E q(z | E a, x) of a data sample."""
        return {"features": self(self.validate_data(x)[:500]).numpy()}

    def serving_endpoints(self):
        """encode (x -> E q(z | E a, x)), sample(n, seed) and log_prob(x, k, seed), the k-sample estimate."""
        x = tf.TensorSpec([None, self.n_visible], tf.float32, name="x")
        scalar = [tf.TensorSpec([], tf.int32, name=name) for name in ("k", "seed")]

        def sample(n, seed):
            return {"samples": self._prior_samples(n, tf.stack([seed, 0]))}

        def log_prob(x, k, seed):
            bound, _ = self.bound_and_ess(self._log_weights_of(x, k, tf.stack([seed, 0])))
            return {"log_prob": bound}

        return {"encode": (lambda x: {"features": self(x)}, [x]),
                "sample": (sample, [tf.TensorSpec([], tf.int32, name="n"), scalar[1]]),
                "log_prob": (log_prob, [x, *scalar])}
