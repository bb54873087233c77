"""Helmholtz machines trained by reweighted wake-sleep (Bornschein & Bengio, ICLR 2015).

Generative model p over binary layers, top-down:  p(x, h) = p(h_L) p(h_{L-1} | h_L) ... p(x | h_1)
Inference model q, bottom-up:                     q(h | x) = q(h_1 | x) q(h_2 | h_1) ... q(h_L | h_{L-1})

With K samples h_k ~ q(. | x) and log weights log w_k = log p(x, h_k) - log q(h_k | x), the self-normalised
weights w~_k = softmax_k(log w_k) give the reweighted wake-sleep updates (all means over the batch):

    p:       sum_k w~_k grad log p(x, h_k)          (the gradient of the K-sample bound log mean_k w_k)
    wake q:  sum_k w~_k grad log q(h_k | x)         (q towards the p posterior, KL(p || q))
    sleep q: grad log q(h | x) for dreams (x, h) ~ p

and log mean_k w_k is a stochastic lower bound on log p(x), the estimate of `zoo.evaluation.importance`.
"""
import keras
import numpy as np
import tensorflow as tf

from zoo import checks, viz
from zoo import layers as layers_lib
from zoo.models.base import RestoresCompiledState, bound_and_ess, fit_inputs, next_seed
from zoo.models.metrics import RunningMeans

Q_UPDATES = ("wake", "sleep", "both")


@keras.saving.register_keras_serializable(package="zoo")
class HelmholtzMachine(RestoresCompiledState, keras.Model):
    """A Helmholtz machine trained by reweighted wake-sleep through `model.fit`.

    Args:
      layers: hidden layer sizes from the bottom (next to the data) to the top, e.g. (200, 200, 10).
      p_layers, q_layers: the generative and inference layer type: "sbn", "darn" or "nade" (the top prior
        of p is a factorised Bernoulli for "sbn", else the autoregressive layer without context).
      k: samples from q per example in training.
      q_update: "wake" (sum_k w~_k grad log q), "sleep" (dreams from p) or "both" (their sum, the default).
      nade_hidden: hidden units of each NADE layer (default: as many as its units).
      n_visible: builds the model at once when given (otherwise on the first data seen).
      seed: seeds the initial weights and all sampling.
    Layout of the weights: `p_layers_[i]` from the top prior (i = 0) down to p(x | h_1), `q_layers_[i]` from
    q(h_1 | x) up; SBN layers hold `kernel` (n_in x n_out) and `bias`, the factorised prior its `logits`.
    """

    def __init__(self, layers=(200, 200, 10), p_layers="sbn", q_layers="sbn", k=10, q_update="both",
                 nade_hidden=None, n_visible=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(layers, (int, np.integer)):
            layers = [layers]
        layers = list(layers)
        if not layers:
            raise ValueError("layers must list at least one hidden layer size, e.g. [200, 200, 10]")
        self.layer_sizes = [checks.check_positive_int(n, "layer size") for n in layers]
        self.p_kind = checks.check_choice(str(p_layers).lower(), "p layer type", layers_lib.KINDS)
        self.q_kind = checks.check_choice(str(q_layers).lower(), "q layer type", layers_lib.KINDS)
        self.k = checks.check_positive_int(k, "k")
        self.q_update = checks.check_choice(q_update, "q_update", Q_UPDATES)
        self.nade_hidden = None if nade_hidden is None else checks.check_positive_int(nade_hidden, "nade_hidden")
        if seed is not None:
            seed = checks.check_positive_int(seed, "seed", minimum=0)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.n_visible = None
        self.monitor = RunningMeans(["bound", "ess"], name="monitor")
        self.validation_monitor = RunningMeans(["bound_1", "bound", "ess"], name="validation_monitor")
        if n_visible is not None:
            self.build((None, checks.check_positive_int(n_visible, "n_visible")))

    # -- construction ------------------------------------------------------------------------------------
    def build(self, input_shape):
        if self.built:
            return
        self.n_visible = int(input_shape[-1])
        sizes = [self.n_visible] + self.layer_sizes
        extra = {"n_hidden": self.nade_hidden} if self.nade_hidden else {}

        def seed(i):  # each layer's initial weights from its own seed
            return None if self.seed is None else self.seed * 1000 + i

        # p: the top prior, then each layer given the one above, down to the data
        self.p_layers_ = [layers_lib.make(self.p_kind, sizes[-1], 0, name="p_prior", seed=seed(0), **extra)]
        self.p_layers_ += [layers_lib.make(self.p_kind, sizes[i], sizes[i + 1], name=f"p_{i}", seed=seed(10 + i),
                                           **extra) for i in reversed(range(len(sizes) - 1))]
        self.q_layers_ = [layers_lib.make(self.q_kind, sizes[i + 1], sizes[i], name=f"q_{i + 1}", seed=seed(100 + i),
                                          **extra) for i in range(len(sizes) - 1)]
        for layer in self.p_layers_ + self.q_layers_:
            layer.build()
        # the data's layer starts at the base rate once it is known (`initialize_visible_bias`); hidden biases at 0
        self.built = True

    def get_config(self):
        return {**super().get_config(), "layers": self.layer_sizes, "p_layers": self.p_kind,
                "q_layers": self.q_kind, "k": self.k, "q_update": self.q_update, "nade_hidden": self.nade_hidden,
                "n_visible": self.n_visible, "seed": self.seed}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def _next_seed(self):
        return next_seed(self.seed_generator)

    def describe(self):
        """What the model is, in one line."""
        sizes = "-".join(str(n) for n in [self.n_visible] + self.layer_sizes)
        return f"{type(self).__name__} {sizes}, p {self.p_kind.upper()}, q {self.q_kind.upper()}"

    # -- the two stacks ----------------------------------------------------------------------------------
    def sample_q(self, x, k, seed):
        """K samples of every hidden layer from q(. | x): ([h_1, ..., h_L], each (k, batch, n_l), log q (k, batch))."""
        below = tf.convert_to_tensor(x, self.compute_dtype)
        hidden, log_q = [], 0.0
        for i, layer in enumerate(self.q_layers_):
            # the first layer's context x is the same for the K samples: its logits are computed once
            h = tf.stop_gradient(layer.sample(below, seed=tf.random.experimental.stateless_fold_in(seed, i),
                                              sample_shape=[k] if i == 0 else []))
            log_q += layer.log_prob(h, below)
            hidden.append(h)
            below = h
        return hidden, log_q

    def log_q(self, x, hidden):
        """log q(h | x) for the layers `hidden` (bottom first), broadcasting x against them."""
        log_q = 0.0
        below = tf.convert_to_tensor(x, self.compute_dtype)
        for layer, h in zip(self.q_layers_, hidden):
            log_q += layer.log_prob(h, below)
            below = h
        return log_q

    def log_joint(self, x, hidden):
        """log p(x, h) for the layers `hidden` (bottom first, each (..., n_l)), broadcasting x against them (the
        terms of log p(x | h_1) that depend on x alone, as a DARN's, are computed once for the K samples)."""
        top_down = list(reversed(hidden)) + [tf.convert_to_tensor(x, self.compute_dtype)]
        log_p = self.p_layers_[0].log_prob(top_down[0])
        for layer, above, below in zip(self.p_layers_[1:], top_down, top_down[1:]):
            log_p += layer.log_prob(below, above)
        return log_p

    def dream(self, n, seed):
        """Ancestral samples (x, [h_1, ..., h_L]) from p, and the probabilities E[x | h_1]."""
        h = self.p_layers_[0].sample(seed=tf.random.experimental.stateless_fold_in(seed, 0), batch_shape=[n])
        top_down = [h]
        for i, layer in enumerate(self.p_layers_[1:-1]):
            h = layer.sample(h, seed=tf.random.experimental.stateless_fold_in(seed, i + 1))
            top_down.append(h)
        last = self.p_layers_[-1]
        x = last.sample(h, seed=tf.random.experimental.stateless_fold_in(seed, len(self.p_layers_)))
        probabilities = last.mean(h) if not last.autoregressive else x
        return x, list(reversed(top_down)), probabilities

    # -- the capability of zoo.evaluation.importance ------------------------------------------------------
    def log_importance_weights(self, x, k, seed):
        """(batch, k): log p(x, h_k) - log q(h_k | x) for h_k ~ q(. | x)."""
        if not self.built:
            raise ValueError("the model has no weights yet: fit it or give n_visible")
        return self._log_weights(tf.convert_to_tensor(x, self.compute_dtype), tf.constant(int(k)),
                                 tf.convert_to_tensor(seed, tf.int32))

    @tf.function(reduce_retracing=True)
    def _log_weights(self, x, k, seed):
        hidden, log_q = self.sample_q(x, k, seed)
        return tf.transpose(self.log_joint(x, hidden) - log_q)

    # -- training (reweighted wake-sleep) -----------------------------------------------------------------
    def compile(self, optimizer=None, **kwargs):
        """Adam (learning rate 1e-3) unless an optimizer is given."""
        super().compile(optimizer=optimizer if optimizer is not None else keras.optimizers.Adam(1e-3), **kwargs)

    @property
    def metrics(self):
        return [self.monitor, self.validation_monitor]

    bound_and_ess = staticmethod(bound_and_ess)  # the K-sample bound training follows, and the ESS

    def rws_losses(self, x, seed):
        """The three surrogate losses whose gradients are the RWS updates (means over the batch):
        (p loss, wake-q loss, sleep-q loss), and the log weights (k, batch)."""
        seed_q, seed_dream = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        hidden, log_q = self.sample_q(x, self.k, seed_q)
        log_p = self.log_joint(x, hidden)
        log_w = log_p - log_q
        weights = tf.stop_gradient(tf.nn.softmax(log_w, axis=0))
        p_loss = -tf.reduce_mean(tf.reduce_sum(weights * log_p, 0))
        wake_loss = -tf.reduce_mean(tf.reduce_sum(weights * log_q, 0))
        sleep_loss = tf.constant(0.0, x.dtype)
        if self.q_update in ("sleep", "both"):
            dream_x, dream_h, _ = self.dream(tf.shape(x)[0], seed_dream)
            sleep_loss = -tf.reduce_mean(self.log_q(tf.stop_gradient(dream_x), [tf.stop_gradient(h) for h in dream_h]))
        return p_loss, wake_loss, sleep_loss, tf.stop_gradient(log_w)

    def training_loss(self, x, seed):
        """The loss whose gradient is one update (the updates `q_update` asks for), and the log weights."""
        p_loss, wake_loss, sleep_loss, log_w = self.rws_losses(x, seed)
        return p_loss + sleep_loss + (wake_loss if self.q_update in ("wake", "both") else 0.0), log_w

    def train_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        x = tf.cast(x, self.compute_dtype)
        with tf.GradientTape() as tape:
            loss, log_w = self.training_loss(x, self._next_seed())
            # a hand-made objective: Keras scales only its own losses by the number of replicas
            loss = loss / tf.distribute.get_strategy().num_replicas_in_sync
        variables = self.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        bound, ess = self.bound_and_ess(log_w)
        self.monitor.update_state([bound, ess])
        return self.monitor.result()

    def test_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        x = tf.cast(x, self.compute_dtype)
        hidden, log_q = self.sample_q(x, self.k, self._next_seed())
        log_w = self.log_joint(x, hidden) - log_q
        bound, ess = self.bound_and_ess(log_w)
        # the mean log weight estimates the K = 1 bound (the ELBO; a BiHM's too) with the same samples
        self.validation_monitor.update_state([tf.reduce_mean(log_w, 0), bound, ess])
        return {f"bound_{self.k}" if name == "bound" else name: value
                for name, value in self.validation_monitor.result().items()}

    def validate_data(self, x, name="x"):
        """`x` as a float32 binary array of shape (n, n_visible), or ValueError."""
        arr = checks.as_float_matrix(x, name, width=self.n_visible)
        if not self.built:
            self.build(arr.shape)
        return checks.check_binary(arr, name)

    def initialize_visible_bias(self, x):
        """p(x | h_1)'s biases at the data's base rate, logit(mean): the model starts from the pixel means."""
        mean = np.clip(checks.as_float_matrix(x, "x", width=self.n_visible).mean(0), 1e-3, 1 - 1e-3)
        self.p_layers_[-1].bias.assign(np.log(mean / (1 - mean)).astype(np.float32))

    def fit(self, x=None, y=None, batch_size=None, epochs=1, validation_data=None, **kwargs):
        """Keras `fit`; arrays are checked first (shape, finiteness, binary) and the visible biases start at
        the data's base rate on a model's first fit."""
        x, batch_size, validation_data = fit_inputs(self, x, batch_size, validation_data, kwargs)
        return super().fit(x, y, batch_size=batch_size, epochs=epochs, validation_data=validation_data, **kwargs)

    def set_parameters_from(self, source):
        """Copy every layer's parameters of `source`, a trained Helmholtz machine of the same layers and types,
        to continue its training with other settings (`zoo train helmholtz --init-from`); the optimizer's
        state starts afresh, and the visible biases are no longer set from the data."""
        if not isinstance(source, HelmholtzMachine):
            raise ValueError(f"can only copy the parameters of a HelmholtzMachine, got {type(source).__name__}")
        if not source.built:
            raise ValueError("the source Helmholtz machine is not built: it has no parameters yet")
        if not self.built:
            self.build((None, source.n_visible))

        def shape(m):
            return (m.n_visible, tuple(m.layer_sizes), m.p_kind, m.q_kind, m.nade_hidden)

        if shape(self) != shape(source):
            raise ValueError(f"the source ({source.describe()}) does not match this model ({self.describe()})")
        for mine, theirs in zip(self.p_layers_ + self.q_layers_, source.p_layers_ + source.q_layers_):
            mine.set_weights(theirs.get_weights())
        self._parameters_copied = True

    def prepare_visible_bias(self, x):
        """Before the first training on `x`: the visible biases at the data's base rate."""
        optimizer = getattr(self, "optimizer", None)
        trained = optimizer is not None and int(optimizer.iterations.numpy()) > 0
        if not trained and not getattr(self, "_parameters_copied", False):
            self.initialize_visible_bias(x)

    # -- sampling, encoding, export --------------------------------------------------------------------------
    def sample(self, n, seed=None, binary=False):
        """`n` ancestral samples from p: the probabilities E[x | h_1] (binary=False; the drawn x for an
        autoregressive bottom layer) or the drawn binary x, shape (n, n_visible)."""
        if not self.built:
            raise ValueError("the model has no weights yet: fit it or give n_visible")
        n = checks.check_positive_int(n, "n")
        seed = (self._next_seed() if seed is None
                else tf.constant([checks.check_positive_int(seed, "seed", minimum=0), 0], tf.int32))
        x, probabilities = self._compiled_dream(tf.constant(n), seed)
        return (x if binary else probabilities).numpy()

    @tf.function(reduce_retracing=True)
    def _compiled_dream(self, n, seed):
        # compiled: an autoregressive bottom layer draws the pixels one by one, 50 times faster in a graph
        x, _, probabilities = self.dream(n, seed)
        return x, probabilities

    def encoder(self):
        """The encoder capability: q's mean path, a new keras.Sequential x -> E-propagated q(h_L | ...), each layer
        sigmoid(below @ kernel + bias) with copies of q's weights. Needs SBN q layers."""
        if self.q_kind != "sbn":
            raise ValueError(f"a Helmholtz machine with {self.q_kind.upper()} q layers has no sigmoid mean path to "
                             "encode with: the encoder needs SBN q layers")
        dense = [keras.layers.Dense(layer.units, activation="sigmoid", kernel_initializer="zeros",
                                    name=f"hidden_{i + 1}") for i, layer in enumerate(self.q_layers_)]
        encoder = keras.Sequential([keras.Input((self.n_visible,), dtype="float32"), *dense], name="rws_encoder")
        for d, layer in zip(dense, self.q_layers_):
            d.set_weights([layer.kernel.numpy(), layer.bias.numpy()])
        return encoder

    def call(self, x):
        """q's mean path for SBN q layers: the features of `x` (see `encoder`)."""
        h = tf.convert_to_tensor(x, self.compute_dtype)
        for layer in self.q_layers_:
            h = layer.mean(h) if layer.kind == "sbn" else layer.sample(h, seed=tf.constant([0, 0]))
        return h

    def serving_endpoints(self):
        """{name: (function, input_signature)} for a SavedModel that loads without zoo: the common sample(n,
        seed) and encode(x), and log_prob(x, k, seed), the importance-sampled estimate with k samples."""
        x = tf.TensorSpec([None, self.n_visible], tf.float32, name="x")

        def sample(n, seed):
            return {"samples": self.dream(n, tf.stack([seed, 0]))[2]}

        def log_prob(x, k, seed):
            log_w = self._log_weights(x, k, tf.stack([seed, 0]))
            return {"log_prob": tf.reduce_logsumexp(log_w, 1) - tf.math.log(tf.cast(k, log_w.dtype))}

        endpoints = {"sample": (sample, [tf.TensorSpec([], tf.int32, name="n"), tf.TensorSpec([], tf.int32, name="seed")]),
                     "log_prob": (log_prob, [x, tf.TensorSpec([], tf.int32, name="k"),
                                             tf.TensorSpec([], tf.int32, name="seed")])}
        if self.q_kind == "sbn":
            endpoints["encode"] = (lambda x: {"features": self(x)}, [x])
        return endpoints

    # -- per-layer statistics ------------------------------------------------------------------------------------
    def layer_statistics(self, x, k=100, seed=0):
        """Where the bound's gap lies, layer by layer, on data `x` with `k` samples h ~ q(. | x) per example
        (means over x and the samples; l = 1 ... L from the data up, h_0 = x, p(h_L | h_{L+1}) = the prior):

            q_entropy/h{l}   E_q[H(q(h_l | h_{l-1}))], the entropy of q's layer given the layer below (nats;
                             for an autoregressive layer, the chain rule's sum of each unit's entropy)
            kl/h{l}          E_q[log q(h_l | h_{l-1}) - log p(h_l | h_{l+1})], the layer's share of the gap
            reconstruction   E_q[log p(x | h_1)];  elbo = reconstruction - sum_l kl/h{l}  (the K = 1 bound)
            bound_{k}        log mean_k w_k, the k-sample bound
            kl_q_posterior   KL(q(h | x) || p(h | x)) = log p(x) - elbo, estimated by bound_{k} - elbo: too
                             low on average, by the bound's own gap, and exact as k grows
        """
        x = tf.convert_to_tensor(self.validate_data(x), self.compute_dtype)
        k = checks.check_positive_int(k, "k")
        seed = tf.constant([checks.check_positive_int(seed, "seed", minimum=0), 0], tf.int32)
        hidden, log_q = self.sample_q(x, k, seed)
        below = x
        statistics, gap = {}, []
        for i, (layer, h) in enumerate(zip(self.q_layers_, hidden)):
            logits = layer.logits(h, below)
            # H(Bernoulli(sigmoid(l))) = softplus(l) - sigmoid(l) * l, from the logits
            entropy = tf.reduce_sum(tf.nn.softplus(logits) - tf.sigmoid(logits) * logits, -1)
            statistics[f"q_entropy/h{i + 1}"] = entropy
            gap.append(layer.log_prob(h, below))
            below = h
        top_down = list(reversed(hidden)) + [x]
        log_p = [self.p_layers_[0].log_prob(top_down[0])]
        log_p += [layer.log_prob(b, a) for layer, a, b in zip(self.p_layers_[1:], top_down, top_down[1:])]
        for i in range(len(hidden)):  # log_p runs top-down: h_L, ..., h_1, then x
            statistics[f"kl/h{i + 1}"] = gap[i] - log_p[len(hidden) - 1 - i]
        statistics["reconstruction"] = log_p[-1]
        log_w = sum(log_p) - log_q
        elbo = tf.reduce_mean(log_w, 0)
        bound = HelmholtzMachine.bound_and_ess(log_w)[0]  # p's own bound, for a BiHM too
        statistics = {name: float(tf.reduce_mean(value)) for name, value in statistics.items()}
        statistics.update({"elbo": float(tf.reduce_mean(elbo)), f"bound_{k}": float(tf.reduce_mean(bound)),
                           "kl_q_posterior": float(tf.reduce_mean(bound - elbo))})
        return statistics

    # -- what TensorBoard shows (zoo.training.TensorBoardLogger) ----------------------------------------------
    def summary_scalars(self, x):
        """`layer_statistics` with K = 100 samples, under `layers/`."""
        return {f"layers/{name}": value for name, value in self.layer_statistics(x, k=100, seed=0).items()}

    def reconstruct(self, x, seed=0):
        """x through q then p: E[x | h_1] for one h ~ q(. | x) (a sample of x | h_1 for an autoregressive p
        layer), shape (batch, n_visible)."""
        x = tf.convert_to_tensor(self.validate_data(x), self.compute_dtype)
        seed = tf.constant([checks.check_positive_int(seed, "seed", minimum=0), 0], tf.int32)
        h = self.sample_q(x, 1, seed)[0][0][0]
        last = self.p_layers_[-1]
        return (last.sample(h, seed=seed) if last.autoregressive else last.mean(h)).numpy()

    def summary_images(self, x):
        """Samples from p and 50 data images, each beside its reconstruction through q then p."""
        x = self.validate_data(x)[:50]
        return {"samples": (self.sample(100, seed=0), False),
                "reconstructions": (viz.pairs(x, self.reconstruct(x)), False, 10)}

    def summary_histograms(self, x):
        """Each q layer's activation means on the data, and the parameters."""
        hists = {}
        h = tf.convert_to_tensor(x, self.compute_dtype)
        hidden, _ = self.sample_q(h, 1, tf.constant([0, 0]))
        for i, layer in enumerate(hidden):
            hists[f"q_{i + 1}_activity"] = tf.reduce_mean(layer[0], 0).numpy()
        for layer in self.p_layers_ + self.q_layers_:
            for variable in layer.trainable_variables:
                hists[f"{layer.name}/{variable.name}"] = variable.numpy()
        return hists
