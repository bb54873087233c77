"""Restricted Boltzmann machines with any unit types from `zoo.units`.

Energy  E(v, h) = self_energy_v(v; b) + self_energy_h(h; c) - interaction_v(v) W interaction_h(h)
Free    F(v) = self_energy_v(v; b) - log_partition_h(interaction_v(v) W; c)

Training (`fit`) follows the gradient of mean F(v_data) - mean F(v_model), with v_model from k Gibbs steps
started at the data (CD-k) or from persistent chains (PCD), held fixed: that is the CD update for every
unit type, so one code path serves all of them.
"""
import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from zoo import checks, sampling
from zoo import units as units_lib
from zoo.models.base import (RestoresCompiledState, centered_gradients, check_chains_split, fit_inputs,
                             gather_replica_rows, gather_tempered_rows, move_offsets, next_seed, replica_mean,
                             replica_rows, replica_tempered_rows)
from zoo.models.metrics import RunningMeans


@keras.saving.register_keras_serializable(package="zoo")
class RBM(RestoresCompiledState, keras.Model):
    """A restricted Boltzmann machine trained with CD-k or persistent CD through `model.fit`.

    Args:
      n_hidden: number of hidden units.
      visible, hidden: unit types: 'bernoulli', 'gaussian', 'softmax' or a `zoo.units.Units` instance.
      n_visible: builds the model at once when given (otherwise on the first data seen).
      cd_k: Gibbs steps per update (change it during training with `zoo.training.GibbsStepsSchedule`).
      persistent: persistent CD with `n_chains` fantasy particles kept across updates.
      fast_lr, fast_decay: fast-weights PCD (Tieleman & Hinton 2009): the chains sample from the model with
        W + W_fast (and b + b_fast, c + c_fast); the fast parameters follow the same gradient (without L2) with
        learning rate fast_lr and shrink by fast_decay every update, pushing the chains away from the modes
        they have just visited. fast_lr = 0 (default): plain PCD. Needs persistent=True.
      n_temperatures, min_beta: parallel tempering of the persistent chains (Desjardins et al. 2010, Cho et
        al. 2010): n_chains chains at each of n_temperatures inverse temperatures, evenly spaced from
        min_beta to 1, of p_beta(v, h) ~ exp(-se_v(v; b) + beta (I(v) W I(h) - se_h(h; c))); neighbours swap
        states by Metropolis after every sweep, and the beta = 1 chains give the negative statistics. A
        sweep costs n_temperatures times a PCD sweep. n_temperatures = 1 (default): plain PCD.
      centering, centering_rate: centered gradient (Montavon & Mueller 2012, Melchior et al. 2016): follow
        the gradient of the same model written as E = -(I(v) - mu) W (h - lam) - b_c.(I(v) - mu) - c_c.(h - lam)
        and map the step back, so W moves by -(g_W - g_b lam^T - mu g_c^T) = -G_W, b by -(g_b - G_W lam), c by
        -(g_c - G_W^T mu). The offsets mu, lam are moving averages (rate centering_rate; the first batch sets
        them) of the data's mean I(v0) and E[h | v0]. The model stays a plain RBM: only the training path
        changes. Needs visible units with a linear self energy (Bernoulli, softmax).
      l2: weight decay on the kernel, adds l2/2 ||W||^2 to the objective.
      sparsity_target, sparsity_cost: penalise cross-entropy between the target and the batch-mean
        hidden activation.
      dropout: probability of dropping each hidden unit for a training example (Bernoulli hidden only).
      max_norm: upper bound on the L2 norm of each hidden unit's incoming weights.
      sample_visible: use sampled visible states (not probabilities) for the negative statistics.
      visible_bias_init: 'data' sets the visible biases from the training data's means on the first fit.
      seed: seeds the initial weights and all sampling.
      training_state: whether the model holds its training state (persistent chains, fast weights, centering
        offsets) besides its parameters. A published checkpoint leaves it out (`without_training_state`,
        `zoo.export.save(..., training_state=False)`); `fit` creates a fresh one when it is missing.
    """

    MONITORED_EXAMPLES = 10
    #: the conditionals' scales: p(h | v) takes up_scale * I(v) W, p(v | h) down_scale * I(h) W^T. 1 for an RBM;
    #: a deep Boltzmann machine's pretraining stack changes them (`zoo.models.dbm.PretrainingRBM`)
    up_scale = down_scale = 1.0

    def __init__(self, n_hidden, *, visible="bernoulli", hidden="bernoulli", n_visible=None, cd_k=1,
                 persistent=False, n_chains=100, fast_lr=0.0, fast_decay=0.95, n_temperatures=1, min_beta=0.0,
                 centering=False, centering_rate=0.01, l2=0.0, sparsity_target=0.1, sparsity_cost=0.0,
                 dropout=0.0, max_norm=None, sample_visible=False, visible_bias_init="data", weight_stddev=0.01,
                 seed=None, training_state=True, **kwargs):
        super().__init__(**kwargs)
        self.n_hidden = checks.check_positive_int(n_hidden, "n_hidden")
        self.visible_units = units_lib.get(visible)
        self.hidden_units = units_lib.get(hidden)
        # Hidden inputs and biases enter as their sum, which needs a linear self energy.
        if not self.hidden_units.linear_self_energy:
            raise ValueError(f"hidden units must be 'bernoulli' or 'softmax', got {self.hidden_units.kind!r}")
        self.cd_k_init = checks.check_positive_int(cd_k, "cd_k")
        self.persistent = bool(persistent)
        self.n_chains = checks.check_positive_int(n_chains, "n_chains")
        self.fast_lr = checks.check_nonnegative(fast_lr, "fast_lr")
        self.fast_decay = checks.check_probability(fast_decay, "fast_decay")
        if self.fast_lr and not self.persistent:
            raise ValueError("fast weights (fast_lr > 0) drive persistent chains: set persistent=True")
        self.n_temperatures, self.min_beta, self.betas = checks.check_tempering(n_temperatures, min_beta)
        if self.n_temperatures > 1 and not self.persistent:
            raise ValueError("parallel tempering (n_temperatures > 1) runs persistent chains: set persistent=True")
        if self.n_temperatures > 1 and self.fast_lr:
            raise ValueError("fast weights and parallel tempering are two ways to move the chains: use one")
        self.centering, self.centering_rate = checks.check_centering(centering, centering_rate,
                                                                     [self.visible_units, self.hidden_units])
        self.l2 = checks.check_nonnegative(l2, "l2")
        self.sparsity_target = checks.check_probability(sparsity_target, "sparsity_target")
        self.sparsity_cost = checks.check_nonnegative(sparsity_cost, "sparsity_cost")
        if self.sparsity_cost and not 0 < self.sparsity_target < 1:
            raise ValueError(f"sparsity_target must be in (0, 1) when sparsity_cost > 0, got {sparsity_target}")
        self.dropout = checks.check_probability(dropout, "dropout")
        if self.dropout and self.hidden_units.kind != "bernoulli":
            raise ValueError("dropout needs Bernoulli hidden units, got "
                             f"{self.hidden_units.kind!r} hidden units")
        self.max_norm = None if max_norm is None else checks.check_nonnegative(max_norm, "max_norm")
        if self.max_norm == 0:
            raise ValueError("max_norm must be > 0 (or None for no bound)")
        self.sample_visible = bool(sample_visible)
        self.visible_bias_init = checks.check_choice(visible_bias_init, "visible_bias_init", ("data", "zeros"))
        self.weight_stddev = checks.check_nonnegative(weight_stddev, "weight_stddev")
        if seed is not None:
            seed = checks.check_positive_int(seed, "seed", minimum=0)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.training_state = bool(training_state)
        # set_parameters_from, or a checkpoint saved without its training state (so, trained): fit must not
        # reset the visible biases
        self._parameters_copied = not self.training_state
        self.n_visible = None
        names = ["free_energy", "reconstruction_error"]
        if self.visible_units.kind == "bernoulli":
            names.append("pseudo_log_likelihood")
        self.monitor = RunningMeans(names, name="monitor")
        # training only (validation runs no chains): the fraction of proposed swaps accepted
        self.tempering_monitor = RunningMeans(["swap_rate"], name="tempering") if self.n_temperatures > 1 else None
        if n_visible is not None:
            self.build((None, checks.check_positive_int(n_visible, "n_visible")))

    # -- construction ------------------------------------------------------------------------------------
    def build(self, input_shape):
        if self.built:
            return
        n_visible = int(input_shape[-1])
        self.n_visible = n_visible
        for layer, n in ((self.visible_units, n_visible), (self.hidden_units, self.n_hidden)):
            if not layer.built:  # deserialised units arrive built
                layer.build(n)
            elif layer.n != n:
                raise ValueError(f"{layer.kind} units were built for {layer.n} units, the model needs {n}")
        constraint = (None if self.max_norm is None
                      else keras.constraints.MaxNorm(max_value=self.max_norm, axis=0))
        self.kernel = self.add_weight(
            name="kernel", shape=(n_visible, self.n_hidden), constraint=constraint,
            initializer=keras.initializers.RandomNormal(stddev=self.weight_stddev, seed=self.seed))
        self.visible_bias = self.add_weight(name="visible_bias", shape=(n_visible,), initializer="zeros")
        self.hidden_bias = self.add_weight(name="hidden_bias", shape=(self.n_hidden,), initializer="zeros")
        self.cd_k = self.add_weight(name="cd_k", shape=(), dtype="int32", trainable=False,
                                    initializer=keras.initializers.Constant(self.cd_k_init))
        self.built = True
        if self.training_state:
            self._build_training_state()

    def _build_training_state(self):
        """The variables only training needs, after the parameters (so that a checkpoint without them keeps
        the parameters' order): persistent chains, fast weights, centering offsets."""
        # Keras locks a built layer's state; a lean checkpoint adds its training state when training resumes
        # (Keras' own quantize() unlocks the same way)
        locked = self._tracker.locked
        self._tracker.unlock()
        try:
            self._add_training_state()
        finally:
            if locked:
                self._tracker.lock()
        self.training_state = True

    def _add_training_state(self):
        n_visible = self.n_visible
        if self.persistent:
            n_chains = self.n_temperatures * self.n_chains  # by temperature, the beta = 1 chains last
            start = self.visible_units.base_sample(n_chains, self._next_seed())
            self.persistent_chains = self.add_weight(
                name="persistent_chains", shape=(n_chains, n_visible), trainable=False,
                initializer=keras.initializers.Constant(start.numpy()))
        if self.fast_lr:
            self.fast_params = [self.add_weight(name=f"fast_{w.name}", shape=w.shape, trainable=False,
                                                initializer="zeros")
                                for w in (self.kernel, self.visible_bias, self.hidden_bias)]
        if self.centering:  # training state, like the chains: moving means of I(v) and E[h | v] on the data
            self.visible_offset = self.add_weight(name="visible_offset", shape=(n_visible,), trainable=False,
                                                  initializer="zeros")
            self.hidden_offset = self.add_weight(name="hidden_offset", shape=(self.n_hidden,), trainable=False,
                                                 initializer="zeros")

    @property
    def scaled(self):
        """Whether the conditionals are scaled (a DBM pretraining component, without a partition function)."""
        return self.up_scale != 1.0 or self.down_scale != 1.0

    def _check_has_partition_function(self):
        self._check_built()
        if self.scaled:
            raise ValueError(f"an RBM with up_scale {self.up_scale:g} and down_scale {self.down_scale:g} is a "
                             "component of a DBM's pretraining, with no partition function: assemble the DBM "
                             "(zoo.DBM.from_rbms) and measure that")

    def _check_built(self):
        if not self.built:
            raise ValueError("the model has no weights yet: fit it or give n_visible")

    def describe(self):
        """What the model is, in one line."""
        scales = (f" (pretraining component: up_scale {self.up_scale:g}, down_scale {self.down_scale:g})"
                  if self.scaled else "")
        return f"{type(self).__name__}, {self.n_visible} visible and {self.n_hidden} hidden units{scales}"

    def without_training_state(self):
        """A copy of this model with its parameters only (the lean checkpoint of `zoo.export.save(...,
        training_state=False)`): the same kernel, biases, units' parameters and Gibbs steps; no persistent
        chains, fast weights, centering offsets or optimizer. Its `fit` starts a fresh training state."""
        if not self.built:
            raise ValueError("the model has no weights yet: fit it or give n_visible")
        lean = type(self).from_config({**self.get_config(), "training_state": False})
        lean.build((None, self.n_visible))
        mine = {v.path: v for v in self.variables}
        for variable in lean.variables:
            if variable.path in mine:  # all but the seed generator's state, which starts afresh
                variable.assign(mine[variable.path])
        return lean

    def get_config(self):
        return {
            **super().get_config(),
            "n_hidden": self.n_hidden, "n_visible": self.n_visible,
            "visible": keras.saving.serialize_keras_object(self.visible_units),
            "hidden": keras.saving.serialize_keras_object(self.hidden_units),
            "cd_k": self.cd_k_init, "persistent": self.persistent, "n_chains": self.n_chains,
            "fast_lr": self.fast_lr, "fast_decay": self.fast_decay,
            "n_temperatures": self.n_temperatures, "min_beta": self.min_beta, "centering": self.centering,
            "centering_rate": self.centering_rate, "l2": self.l2, "sparsity_target": self.sparsity_target,
            "sparsity_cost": self.sparsity_cost, "dropout": self.dropout, "max_norm": self.max_norm,
            "sample_visible": self.sample_visible, "visible_bias_init": self.visible_bias_init,
            "weight_stddev": self.weight_stddev, "seed": self.seed, "training_state": self.training_state,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        scales = config.pop("up_scale", 1.0), config.pop("down_scale", 1.0)
        if cls is RBM and scales != (1.0, 1.0):  # saved before the pretraining RBMs had their own class
            from zoo.models.dbm import PretrainingRBM

            return PretrainingRBM(**config, up_scale=scales[0], down_scale=scales[1])
        return cls(**config, **({} if cls is RBM else dict(zip(("up_scale", "down_scale"), scales))))

    def _next_seed(self):
        return next_seed(self.seed_generator)

    # -- the model's quantities (tensors in, tensors out; float32 or float64) ------------------------------
    def _params(self, dtype):
        return (tf.cast(self.kernel, dtype), tf.cast(self.visible_bias, dtype),
                tf.cast(self.hidden_bias, dtype))

    def hidden_input(self, v):
        """Input to the hidden layer: up_scale interaction_v(v) W."""
        return self.up_scale * tf.matmul(self.visible_units.interaction(v), tf.cast(self.kernel, v.dtype))

    def visible_input(self, h):
        """Input to the visible layer: down_scale interaction_h(h) W^T."""
        return self.down_scale * tf.matmul(self.hidden_units.interaction(h), tf.cast(self.kernel, h.dtype),
                                           transpose_b=True)

    def energy(self, v, h):
        """E(v, h) per example."""
        v = tf.convert_to_tensor(v)
        h = tf.cast(h, v.dtype)
        _, b, c = self._params(v.dtype)
        coupling = tf.reduce_sum(self.hidden_input(v) * self.hidden_units.interaction(h), axis=-1)
        return self.visible_units.self_energy(v, b) + self.hidden_units.self_energy(h, c) - coupling

    def free_energy(self, v):
        """F(v) = -log sum_h exp(-E(v, h)) per example."""
        v = tf.convert_to_tensor(v)
        _, b, c = self._params(v.dtype)
        return self.visible_units.self_energy(v, b) - self.hidden_units.log_partition(self.hidden_input(v), c)

    def hidden_distribution(self, v):
        """p(h | v) as a tfp distribution."""
        return self.hidden_units.distribution(self.hidden_input(v), tf.cast(self.hidden_bias, v.dtype))

    def visible_distribution(self, h):
        """p(v | h) as a tfp distribution."""
        return self.visible_units.distribution(self.visible_input(h), tf.cast(self.visible_bias, h.dtype))

    def gibbs_step(self, v, seed, params=None):
        """One sweep v -> h ~ p(h|v) -> v' ~ p(v|h); returns (v', E[v'|h], h). params: (kernel, visible_bias,
        hidden_bias) to sample with instead of the model's (fast-weights PCD)."""
        kernel, b, c = self._params(v.dtype) if params is None else params
        seed_h, seed_v = tfp.random.split_seed(seed, 2)
        h = self.hidden_units.sample(self.up_scale * tf.matmul(self.visible_units.interaction(v), kernel), c, seed_h)
        v_sample, v_mean = self.visible_units.sample_and_mean(
            self.down_scale * tf.matmul(self.hidden_units.interaction(h), kernel, transpose_b=True), b, seed_v)
        return v_sample, v_mean, h

    def call(self, inputs):
        """E[h | v]: the hidden representation (what `transform` returns)."""
        inputs = tf.convert_to_tensor(inputs)
        return self.hidden_units.mean(self.hidden_input(inputs), tf.cast(self.hidden_bias, inputs.dtype))

    # -- training ---------------------------------------------------------------------------------------
    def compile(self, optimizer=None, steps_per_execution=100, **kwargs):
        """Default optimizer: SGD with learning rate 0.05 (momentum through `keras.optimizers.SGD`)."""
        if optimizer is None:
            optimizer = keras.optimizers.SGD(learning_rate=0.05)
        if self.persistent:
            check_chains_split(self.n_chains)
        super().compile(optimizer=optimizer, steps_per_execution=steps_per_execution, **kwargs)

    @property
    def metrics(self):
        return [self.monitor] + ([self.tempering_monitor] if self.tempering_monitor is not None else [])

    def _monitor(self, v0, h0_input, log_partition0, reconstruction, seed):
        """Update the metrics: free energy, reconstruction error and a one-bit pseudo-log-likelihood, reusing
        log_partition0 = log_partition_h(h0_input) of the update."""
        values = [self.visible_units.self_energy(v0, self.visible_bias) - log_partition0,
                  tf.reduce_sum(tf.square(v0 - reconstruction), axis=-1)]
        if self.visible_units.kind == "bernoulli":
            # log PL(v) ~ n_v log sigmoid(F(v_flip) - F(v)) for one random bit i per example; flipping bit i
            # changes the hidden input by (1 - 2 v_i) W_i, so no new matrix product is needed.
            idx = tf.random.stateless_uniform(tf.shape(v0)[:1], seed, maxval=self.n_visible, dtype=tf.int32)
            sign = 1.0 - 2.0 * tf.gather(v0, idx, axis=1, batch_dims=1)
            flipped_input = h0_input + self.up_scale * sign[:, None] * tf.gather(self.kernel, idx)
            flip_change = -sign * tf.gather(self.visible_bias, idx) + \
                log_partition0 - self.hidden_units.log_partition(flipped_input, self.hidden_bias)
            values.append(self.n_visible * tf.math.log_sigmoid(flip_change))
        self.monitor.update_state(values)

    def train_step(self, data):
        v0, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        v0 = tf.cast(v0, self.compute_dtype)
        seed_mask, seed_h, seed_v, seed_chain, seed_pll = tfp.random.split_seed(self._next_seed(), 5)
        b, c = self.visible_bias, self.hidden_bias
        v, h = self.visible_units, self.hidden_units

        # Positive phase. CD's first Gibbs step goes down from h0 ~ p(h | v0), and its mean is the
        # reconstruction; PCD needs only the hidden means, and reconstructs the monitored examples alone.
        i0 = v.interaction(v0)
        a0 = self.up_scale * tf.matmul(i0, self.kernel)
        m = tf.minimum(tf.shape(v0)[0], self.MONITORED_EXAMPLES)
        keep, swap_rate = None, None
        if self.dropout:  # a dropped hidden unit is absent for this example: no term, nothing sent down
            keep = tf.cast(tf.random.stateless_uniform(tf.shape(a0), seed_mask) >= self.dropout, a0.dtype)
        if self.persistent:
            h0_mean, h0 = h.mean(a0, c), h.sample(a0[:m], c, seed_h)
            if keep is not None:
                h0_mean, h0 = h0_mean * keep, h0 * keep[:m]
            reconstruction = v.mean(self.visible_input(h0), b)
            chain_params = None if not self.fast_lr else [w + f for w, f in zip((self.kernel, b, c),
                                                                                 self.fast_params)]
            if self.n_temperatures > 1:
                v_sample, swap_rate = self.tempered_sweeps(self.cd_k, seed_chain)
                v_mean = v_sample
            else:
                v_sample, v_mean = self._run_chain(replica_rows(self.persistent_chains), self.cd_k, seed_chain,
                                                   params=chain_params)
                self.persistent_chains.assign(gather_replica_rows(v_sample))
        else:
            h0, h0_mean = h.sample_and_mean(a0, c, seed_h)
            if keep is not None:
                h0, h0_mean = h0 * keep, h0_mean * keep
            down = self.visible_input(h0)
            if self._chain_samples_visible():
                v_start, reconstruction = v.sample_and_mean(down, b, seed_v)
            else:
                reconstruction = v_start = v.mean(down, b)
            v_sample, v_mean = self._run_chain(v_start, self.cd_k - 1, seed_chain, reconstruction)
        vn = v_sample if self.sample_visible else v_mean
        i_n = v.interaction(vn)
        an = self.up_scale * tf.matmul(i_n, self.kernel)

        # Objective mean F(v0) - mean F(vn) with F(v) = self_energy(v; b) - log_partition_h(I(v) W + c).
        # d log_partition_h / da = E[h | a] for every unit family, so the gradient with respect to the hidden
        # inputs is analytic, and one matrix product I(v)^T dF/da over both batches gives the kernel's.
        # The tape covers the rest: visible self energies, the sparsity penalty, a learned sigma.
        g0 = -h0_mean / tf.cast(tf.shape(v0)[0], a0.dtype)
        gn = h.mean(an, c) / tf.cast(tf.shape(vn)[0], an.dtype)
        unit_params = v.trainable_weights
        with tf.GradientTape() as tape:
            tape.watch(a0)
            objective = tf.reduce_mean(v.self_energy(v0, b)) - tf.reduce_mean(v.self_energy(vn, b))
            if self.sparsity_cost:
                q = tf.reduce_mean(h.mean(a0, c), axis=0)
                p = self.sparsity_target
                objective += self.sparsity_cost * tf.reduce_sum(
                    -p * tf.math.log(q + 1e-7) - (1 - p) * tf.math.log(1 - q + 1e-7))
        g_b, g_sparsity, *g_units = tape.gradient(objective, [b, a0] + unit_params,
                                                  unconnected_gradients="zero")
        if self.sparsity_cost:
            g0 += g_sparsity
        g_c = tf.reduce_sum(g0, axis=0) + tf.reduce_sum(gn, axis=0)  # hidden biases enter as a + c
        g_kernel = tf.matmul(tf.concat([i0, i_n], 0), tf.concat([g0, gn], 0), transpose_a=True)
        if self.centering:
            self._update_offsets(i0, h0_mean)
        if self.fast_lr:
            fast_grads = self._centered(g_kernel, g_b, g_c) if self.centering else (g_kernel, g_b, g_c)
            for fast, g in zip(self.fast_params, fast_grads):  # the whole batch's gradient: the copies stay equal
                fast.assign(self.fast_decay * fast - self.fast_lr * replica_mean(g))
        if self.l2:
            g_kernel += self.l2 * self.kernel
        if self.centering:
            g_kernel, g_b, g_c = self._centered(g_kernel, g_b, g_c)
        if unit_params:  # a learned sigma also acts through I(v) = v / sigma inside a = I(v) W
            with tf.GradientTape() as unit_tape:
                interactions = [v.interaction(v0), v.interaction(vn)]
            through_kernel = unit_tape.gradient(
                interactions, unit_params, output_gradients=[self.up_scale * tf.matmul(g, self.kernel, transpose_b=True)
                                                             for g in (g0, gn)])
            g_units = [g1 + g2 for g1, g2 in zip(g_units, through_kernel)]
        # a hand-made update: the optimizer sums the replicas' gradients, each a mean over its share of the batch
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        grads = dict(zip([id(w) for w in [self.kernel, b, c] + unit_params],
                         [g / replicas if replicas > 1 else g for g in [g_kernel, g_b, g_c] + g_units]))
        self.optimizer.apply([grads[id(w)] for w in self.trainable_variables], self.trainable_variables)
        # Training metrics are estimated on the first MONITORED_EXAMPLES of each (shuffled) batch: on all of
        # it they cost a sixth of an RBM 784-500 step; `evaluate` and validation use every example.
        self._monitor(v0[:m], a0[:m], h.log_partition(a0[:m], c), reconstruction[:m], seed_pll)
        if swap_rate is None:
            return self.monitor.result()
        self.tempering_monitor.update_state([tf.reshape(swap_rate, (1,))])
        return {**self.monitor.result(), **self.tempering_monitor.result()}

    def _update_offsets(self, i0, h0_mean):
        """Move the centering offsets towards this batch's mean I(v0) and E[h | v0]; the first update of a
        run (a fresh optimizer) sets them to it."""
        move_offsets([self.visible_offset, self.hidden_offset], [tf.reduce_mean(i0, 0), tf.reduce_mean(h0_mean, 0)],
                     self.centering_rate, self.optimizer.iterations)

    def _centered(self, g_kernel, g_b, g_c):
        """The centered gradient in the model's own parameters (`zoo.models.base.centered_gradients` of the two
        layers, offsets mu and lam)."""
        (g_kernel,), (g_b, g_c) = centered_gradients([g_kernel], [g_b, g_c], [self.visible_offset, self.hidden_offset])
        return g_kernel, g_b, g_c

    def _chain_samples_visible(self):
        # Chains carry probabilities only for non-persistent Bernoulli chains without sample_visible
        # (Hinton's practical guide); persistent chains must hold real states to stay a Markov chain.
        return self.sample_visible or self.persistent or self.visible_units.kind != "bernoulli"

    def _run_chain(self, v, n_steps, seed, v_mean=None, carry_samples=None, params=None):
        """`n_steps` Gibbs sweeps from v (with `params` as in `gibbs_step`); returns the last (sampled, mean)
        visible states. Sweeps start from the sampled states, or from the means where
        `_chain_samples_visible` says so."""
        if carry_samples is None:
            carry_samples = self._chain_samples_visible()

        def sweep(i, v_sample, v_mean):
            v_sample, v_mean, _ = self.gibbs_step(v_sample if carry_samples else v_mean,
                                                  tf.random.experimental.stateless_fold_in(seed, i), params)
            return i + 1, v_sample, v_mean

        # An explicit while_loop: Keras traces train_step without AutoGraph, and k may change between epochs.
        _, v_sample, v_mean = tf.while_loop(lambda i, *_: i < n_steps, sweep,
                                            (tf.constant(0), v, v if v_mean is None else v_mean))
        return v_sample, v_mean

    def tempered_sweeps(self, n_steps, seed):
        """Parallel tempering of the persistent chains (`zoo.sampling.parallel_tempering`): `n_steps` rounds of
        a Gibbs sweep of every chain at its own beta (the annealing path from the zero-weight model with the same
        visible biases) and Metropolis swaps of neighbours. Assigns the chains; returns the beta = 1 states and
        the fraction of proposed swaps that were accepted. Spread over replicas, each runs its share of the chains
        at every temperature (swaps pair chains of one index, so they stay within it)."""
        t = self.n_temperatures
        dtype = self.persistent_chains.dtype
        v = replica_tempered_rows(self.persistent_chains, t)
        v, _, rate = sampling.parallel_tempering(self._annealing_path(None, dtype), v, tf.constant(self.betas, dtype),
                                                 n_steps, seed)
        self.persistent_chains.assign(gather_tempered_rows(v, t))
        return v[-(tf.shape(v)[0] // t):], rate

    def test_step(self, data):
        v0, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        v0 = tf.cast(v0, self.compute_dtype)
        seed_h, seed_pll = tfp.random.split_seed(self._next_seed(), 2)
        a0 = self.hidden_input(v0)
        h0 = self.hidden_units.sample(a0, self.hidden_bias, seed_h)
        reconstruction = self.visible_units.mean(self.visible_input(h0), self.visible_bias)
        self._monitor(v0, a0, self.hidden_units.log_partition(a0, self.hidden_bias), reconstruction, seed_pll)
        return self.monitor.result()

    # -- public NumPy-facing API -------------------------------------------------------------------------
    def validate_data(self, x, name="x"):
        """`x` as a float32 array of shape (n, n_visible) that the visible units accept, or ValueError."""
        arr = checks.as_float_matrix(x, name, width=self.n_visible)
        if not self.built:
            self.build(arr.shape)
        return self.visible_units.validate(arr, name)

    def fit(self, x=None, y=None, batch_size=None, epochs=1, validation_data=None, **kwargs):
        """Keras `fit`; arrays are checked first (shape, finiteness, binary for Bernoulli units)."""
        if isinstance(x, tf.data.Dataset):
            self._check_dataset(x)
        binary = self.visible_units.kind == "bernoulli" and not self.visible_units.allow_nonbinary
        x, batch_size, validation_data = fit_inputs(self, x, batch_size, validation_data, kwargs, compact=binary)
        if not self.training_state:  # a checkpoint published without it: training starts a fresh one
            self._build_training_state()
        return super().fit(x, y, batch_size=batch_size, epochs=epochs, validation_data=validation_data, **kwargs)

    def evaluate(self, x=None, y=None, batch_size=None, **kwargs):
        """Keras `evaluate` (every example counts in the metrics); arrays are checked first."""
        if isinstance(x, (np.ndarray, list)) or hasattr(x, "numpy"):
            x = self.validate_data(x)
        elif isinstance(x, tf.data.Dataset):
            self._check_dataset(x)
        if getattr(self, "optimizer", None) is None:  # Keras sets it only in compile
            self.compile()
        return super().evaluate(x, y, batch_size=batch_size, **kwargs)

    def _check_dataset(self, ds):
        """Batches of a dataset must be (batch, n_visible); an unbuilt model is built from them."""
        spec = ds.element_spec[0] if isinstance(ds.element_spec, tuple) else ds.element_spec
        if spec.shape.rank != 2 or (self.built and spec.shape[-1] != self.n_visible):
            raise ValueError(f"the dataset must yield batches of shape (batch, {self.n_visible or 'n_visible'}), "
                             f"got {spec.shape}")
        if not self.built:
            self.build(spec.shape)

    def _has_trained(self):
        optimizer = getattr(self, "optimizer", None)
        return optimizer is not None and int(optimizer.iterations.numpy()) > 0

    def set_parameters_from(self, source):
        """Copy the kernel, the biases and the units' own parameters (a Gaussian sigma) of `source`, a trained
        RBM of the same shape and unit types, to continue its training with other settings. Not copied: the
        optimizer's state, the persistent chains and fast weights (they start afresh), the training settings.
        The visible biases are then no longer initialised from the data by `fit`."""
        if not isinstance(source, RBM):
            raise ValueError(f"can only copy the parameters of an RBM, got {type(source).__name__}")
        if not source.built:
            raise ValueError("the source RBM is not built: it has no parameters yet")
        if not self.built:
            self.build((None, source.n_visible))

        def shape(rbm):  # what must agree; how sigma trains or which data are accepted is this run's choice
            return (rbm.n_visible, rbm.n_hidden) + tuple(
                (type(u), getattr(u, "group_size", None)) for u in (rbm.visible_units, rbm.hidden_units))

        if shape(self) != shape(source):
            def describe(rbm):
                return (f"{rbm.n_visible} {rbm.visible_units.kind} visible, {rbm.n_hidden} {rbm.hidden_units.kind} "
                        f"hidden units" + "".join(f", {u.kind} groups of {u.group_size}" for u in
                                                  (rbm.visible_units, rbm.hidden_units)
                                                  if getattr(u, "group_size", None)))
            raise ValueError(f"the source RBM ({describe(source)}) does not match this one ({describe(self)})")
        for mine_w, theirs_w in ((self.kernel, source.kernel), (self.visible_bias, source.visible_bias),
                                 (self.hidden_bias, source.hidden_bias)):
            mine_w.assign(theirs_w)
        for mine_u, theirs_u in ((self.visible_units, source.visible_units), (self.hidden_units, source.hidden_units)):
            mine_u.set_weights(theirs_u.get_weights())
        self._parameters_copied = True

    def prepare_visible_bias(self, x):
        """Before training on `x`: `initialize_visible_bias(x)` if visible_bias_init='data', unless the model has
        trained already or copied its parameters (`set_parameters_from`). `fit` on arrays calls it; a caller
        that feeds a pipeline calls it with the training arrays."""
        if self.visible_bias_init == "data" and not self._has_trained() and not self._parameters_copied:
            self.initialize_visible_bias(x)

    def initialize_visible_bias(self, x):
        """Set the visible biases so that independent visible units match the data's mean (e.g. b =
        logit(mean) for Bernoulli units): the model starts from the data's base rate."""
        x = checks.as_float_matrix(x, "x", width=self.n_visible)
        self.visible_bias.assign(self.visible_units.bias_from_mean(x.mean(0)).astype(np.float32))

    def transform(self, v):
        """E[h | v] for each input (the features of the data itself)."""
        v = self.validate_data(v, "v")
        return self(tf.constant(v)).numpy()

    def encoder(self):
        """The encoder capability (`zoo.finetune`): a new keras.Sequential v -> E[h | v] = sigmoid(v W + c),
        one Dense layer `hidden_1` on n_visible float32 inputs whose kernel and bias are copies of W and the
        hidden biases c (Gaussian visible units fold their 1/sigma into the kernel), so training it never
        changes the RBM. Softmax hidden units are not a sigmoid layer: ValueError."""
        if not self.built:
            raise ValueError("the model has no weights yet: fit it or give n_visible")
        if self.hidden_units.kind != "bernoulli":
            raise ValueError(f"an RBM with {self.hidden_units.kind} hidden units cannot encode as a sigmoid layer")
        kernel = self.up_scale * self.kernel.numpy()
        if self.visible_units.kind == "gaussian":  # interaction_v(v) = v / sigma
            kernel = kernel / self.visible_units.sigma().numpy()[:, None]
        # zeros, not the default Glorot: the weights are set at once, and an unseeded initialiser would draw
        dense = keras.layers.Dense(self.n_hidden, activation="sigmoid", kernel_initializer="zeros", name="hidden_1")
        encoder = keras.Sequential([keras.Input((self.n_visible,), dtype="float32"), dense], name="rbm_encoder")
        dense.set_weights([kernel, self.hidden_bias.numpy()])
        return encoder

    def reconstruct(self, v):
        """E[v | h = E[h | v]]: a deterministic up-down pass."""
        return self._up_down(tf.constant(self.validate_data(v, "v"))).numpy()

    def _up_down(self, v):
        return self.visible_units.mean(self.visible_input(self(v)), self.visible_bias)

    def sample(self, n, n_steps=1000, seed=None, init=None):
        """`n` samples after `n_steps` Gibbs sweeps from independent visible units at the visible biases
        (or from `init`); returns E[v | h] of the last sweep, shape (n, n_visible)."""
        if not self.built:
            raise ValueError("the model has no weights yet: fit it or give n_visible")
        n = checks.check_positive_int(n, "n")
        n_steps = checks.check_positive_int(n_steps, "n_steps", minimum=0)
        seed = (self._next_seed() if seed is None
                else tf.constant([checks.check_positive_int(seed, "seed", minimum=0), 0], tf.int32))
        if init is None:
            v = self._chain_start(n, seed)
        else:
            v = tf.constant(self.validate_data(init, "init"))
        _, v_mean = self._sample_chain(v, tf.constant(n_steps), seed)
        return v_mean.numpy()

    def _chain_start(self, n, seed):
        """`n` (an int or a scalar tensor) independent visible states at the visible biases."""
        return self.visible_units.sample(tf.zeros(tf.stack([n, self.n_visible])), self.visible_bias,
                                         tf.random.experimental.stateless_fold_in(seed, -1))

    @tf.function
    def _sample_chain(self, v, n_steps, seed):
        return self._run_chain(v, n_steps, seed, v_mean=self._up_down(v), carry_samples=True)

    # -- partition function (zoo.evaluation; the EnergyModel and Enumerable capabilities) ----------------
    def unnormalized_log_prob(self, v):
        """log f(v) = -F(v), so that log p(v) = -F(v) - log Z."""
        return -self.free_energy(v)

    def visible_kind(self):
        """The visible units' family: "bernoulli", "gaussian" (p(v) a density) or "softmax"."""
        return self.visible_units.kind

    def base_parameters(self, data=None):
        """Visible biases of the AIS base model (zero weights, the model's units): fitted so that independent
        visible units match the means of `data` (Salakhutdinov & Murray 2008), or zeros (uniform) for None."""
        self._check_has_partition_function()
        if data is None:
            return np.zeros(self.n_visible)
        return self.visible_units.bias_from_mean(self.validate_data(data, "data").mean(0))

    def enumerable_layers(self):
        """{name: units} of the layers whose states can be summed over for exact log Z."""
        self._check_has_partition_function()
        return {name: u for name, u in (("visible", self.visible_units), ("hidden", self.hidden_units))
                if u.discrete}

    def unnormalized_log_marginal(self, states, layer):
        """log sum_other exp(-E) for states of `layer`: -F(v) for "visible", -F_h(h) for "hidden"."""
        kernel, b, c = self._params(states.dtype)
        if layer == "visible":
            return -self.free_energy(states)
        return -self.hidden_units.self_energy(states, c) + self.visible_units.log_partition(
            tf.matmul(self.hidden_units.interaction(states), kernel, transpose_b=True), b)

    def annealing_path(self, base_bias, dtype=tf.float64):
        """The path of AIS from independent visible units with biases `base_bias` to this model."""
        self._check_has_partition_function()
        return self._annealing_path(base_bias, dtype)

    def _annealing_path(self, base_bias, dtype):
        """`zoo.sampling.LayeredAnnealingPath` on v - h, moving v: from a base RBM A (zero weights, visible
        biases b_A = `base_bias`, hidden biases 0; b_A = b_B when `base_bias` is None, as in parallel tempering,
        where p_beta(v, h) ~ exp(-se_v(v; b) + beta (I(v) W I(h) - se_h(h; c)))) to the model B."""
        kernel, bias, hidden_bias = self._params(dtype)
        base = bias if base_bias is None else tf.cast(base_bias, dtype)
        return sampling.LayeredAnnealingPath([self.visible_units, self.hidden_units], [kernel], [bias, hidden_bias],
                                             [base, tf.zeros_like(hidden_bias)], parity=0, dtype=dtype)

    # -- SavedModel (zoo.export) ------------------------------------------------------------------------
    def serving_endpoints(self):
        """{name: (function, input_signature)} for a SavedModel that loads without zoo: the common encode (x -> features = E[h | x]) and sample(n, n_steps, seed) (E[v | h] after n_steps
        sweeps), and the RBM's own free_energy and reconstruct."""
        v = [tf.TensorSpec([None, self.n_visible], tf.float32, name="v")]
        scalars = [tf.TensorSpec([], tf.int32, name=name) for name in ("n", "n_steps", "seed")]

        def sample(n, n_steps, seed):
            key = tf.stack([seed, 0])
            return {"samples": self._sample_chain(self._chain_start(n, key), n_steps, key)[1]}

        return {"free_energy": (lambda v: {"free_energy": self.free_energy(v)}, v),
                "encode": (lambda x: {"features": self(x)}, [tf.TensorSpec([None, self.n_visible], tf.float32,
                                                                            name="x")]),
                "reconstruct": (lambda v: {"reconstruction": self._up_down(v)}, v),
                "sample": (sample, scalars)}

    # -- what TensorBoard shows (zoo.training.TensorBoardLogger) -----------------------------------------
    def summary_images(self, x):
        """Flat images to show, as {name: (images, scale_each)}: filters, reconstructions, particles."""
        x = tf.convert_to_tensor(x[:50], self.compute_dtype)
        recon = self._up_down(x)
        pairs = tf.reshape(tf.stack([x, recon], axis=1), (-1, self.n_visible))  # data, reconstruction, ...
        if self.persistent:
            particles = self.persistent_chains[-self.n_chains:][:100]  # the beta = 1 chains
        else:
            particles = self._sample_chain(x, self.cd_k, self._next_seed())[1]
        return {
            "filters": (tf.transpose(self.kernel[:, :100]).numpy(), True),
            "reconstructions": (pairs.numpy(), False),
            "negative_particles": (tf.convert_to_tensor(particles).numpy(), False),
        }

    def summary_histograms(self, x):
        """Tensors to histogram: parameters and the hidden activations E[h | x] on a data sample."""
        hists = {"kernel": self.kernel, "visible_bias": self.visible_bias, "hidden_bias": self.hidden_bias,
                 "hidden_activations": self(tf.convert_to_tensor(x, self.compute_dtype))}
        if self.visible_units.kind == "gaussian":
            hists["visible_sigma"] = self.visible_units.sigma()
        return {name: tf.convert_to_tensor(t).numpy() for name, t in hists.items()}
