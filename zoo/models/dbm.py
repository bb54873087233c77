"""Deep Boltzmann machines of any depth (Salakhutdinov & Hinton 2009) with units from `zoo.units`.

Layers x_0 = v, x_1, ..., x_L (L hidden layers), kernels W_0 ... W_{L-1} (W_l of shape (n_l, n_{l+1})), biases
b_0 ... b_L; the energy

    E(x) = sum_l self_energy_l(x_l; b_l) - sum_{l < L} I(x_l) W_l I(x_{l+1}).

Given the layers of one parity (even: v, x_2, ...; odd: x_1, x_3, ...), those of the other are independent, each
with input I(x_{l-1}) W_{l-1} + I(x_{l+1}) W_l^T: Gibbs sweeps and mean-field updates alternate the parities, and
annealed importance sampling (`DBMAnnealingPath`) moves one parity with the other summed out in closed form.

Training (`fit`) follows mean E(v, mu) - mean E(x_model): the positive phase is the mean-field posterior mu of the
hidden layers given v (started bottom-up with doubled weights, stopped at a tolerance or a cap), the negative one
persistent Gibbs chains in all layers. The mean-field bound log p(v) >= -E(v, mu) + H(q) - log Z is what `zoo eval`
reports, with log Z from both directions of AIS.
"""
import math

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from zoo import checks, sampling
from zoo import units as units_lib
from zoo.models.base import (RestoresCompiledState, centered_gradients, check_chains_split, fit_inputs,
                             gather_replica_rows, gather_tempered_rows, move_offsets, next_seed, replica_rows,
                             replica_tempered_rows)
from zoo.models.metrics import RunningMeans
from zoo.models.rbm import RBM


@keras.saving.register_keras_serializable(package="zoo")
class DBM(RestoresCompiledState, keras.Model):
    """A deep Boltzmann machine trained with mean-field and persistent Gibbs chains through `model.fit`.

    Args:
      layers: the hidden layer sizes from the data up, e.g. [500, 1000].
      visible: the visible units, 'bernoulli' or 'gaussian' (or a `zoo.units.Units`); top: the top layer's,
        'bernoulli' or 'softmax'. The layers in between are Bernoulli.
      n_visible: builds the model at once when given (otherwise on the first data seen).
      n_chains: persistent chains (fantasy particles), each a state of every layer.
      gibbs_steps: Gibbs sweeps of the chains per update.
      n_temperatures, min_beta: parallel tempering of the persistent chains (Desjardins et al. 2010, Cho et
        al. 2010, there for RBMs): n_chains chains at each of n_temperatures inverse temperatures evenly spaced from
        min_beta to 1, p_beta(x) ~ exp(-sum_l se_l(x_l; b_l) + beta sum_l I(x_l) W_l I(x_{l+1})) (beta scales
        the weights: at 0 every layer is independent at its biases); each of the gibbs_steps rounds sweeps every
        chain at its own beta (the parity with fewer units moved, as AIS does) and offers swaps between
        neighbouring temperatures. The beta = 1 chains give the negative phase. 1 (default): plain Gibbs chains.
      mean_field_steps, mean_field_tol: the positive phase's mean-field updates stop after mean_field_steps
        rounds or when the mean absolute change of every layer falls below mean_field_tol.
      l2: adds l2/2 sum_l ||W_l||^2 to the objective. max_norm: bound on each unit's incoming weights' norm.
      sparsity_targets, sparsity_cost: one target mean activation per hidden layer, penalised by the
        cross-entropy between the target and the batch mean of the mean-field posterior, times the cost.
      centering, centering_rate: centered gradient (Montavon & Mueller 2012, Melchior et al. 2016): follow the
        gradient of the same model written with x_l - o_l in place of every layer x_l, mapped back to the plain
        parameters (`zoo.models.base.centered_gradients`); the offsets o_l are moving averages (rate
        centering_rate; the first batch sets them) of the data's mean v and mean-field posterior means. The model
        stays a plain DBM: only the training path changes. Needs units with a linear self energy (Bernoulli,
        softmax) in every layer.
      weight_stddev: initial weights ~ N(0, weight_stddev^2); seed: weights and all sampling.
      training_state: whether the model holds its persistent chains (and centering offsets); a published
        checkpoint leaves them out and `fit` starts fresh ones.
    """

    #: mean-field rounds (at most) when the model is measured: more rounds only tighten the bound
    EVALUATION_MEAN_FIELD_STEPS = 100

    def __init__(self, layers, visible="bernoulli", top="bernoulli", n_visible=None, n_chains=100, gibbs_steps=5,
                 n_temperatures=1, min_beta=0.0, mean_field_steps=10, mean_field_tol=1e-7, l2=0.0, max_norm=None,
                 sparsity_targets=None, sparsity_cost=0.0, centering=False, centering_rate=0.01, weight_stddev=0.01,
                 seed=None, training_state=True, **kwargs):
        super().__init__(**kwargs)
        if isinstance(layers, (int, np.integer)) or not len(layers):
            raise ValueError(f"layers must list the hidden layer sizes, e.g. [500, 1000], got {layers!r}")
        self.hidden_sizes = [checks.check_positive_int(n, "a layer size") for n in layers]
        depth = len(self.hidden_sizes)
        self.layer_units = ([units_lib.get(visible)] + [units_lib.BernoulliUnits() for _ in range(depth - 1)]
                            + [units_lib.get(top)])
        if self.layer_units[-1].kind not in ("bernoulli", "softmax"):
            raise ValueError(f"the top layer's units must be 'bernoulli' or 'softmax', got "
                             f"{self.layer_units[-1].kind!r}")
        if self.layer_units[0].kind not in ("bernoulli", "gaussian"):
            raise ValueError(f"the visible units must be 'bernoulli' or 'gaussian', got {self.layer_units[0].kind!r}")
        self.n_chains = checks.check_positive_int(n_chains, "n_chains")
        self.gibbs_steps = checks.check_positive_int(gibbs_steps, "gibbs_steps")
        self.n_temperatures, self.min_beta, self.betas = checks.check_tempering(n_temperatures, min_beta)
        self.mean_field_steps = checks.check_positive_int(mean_field_steps, "mean_field_steps")
        self.mean_field_tol = checks.check_nonnegative(mean_field_tol, "mean_field_tol")
        self.l2 = checks.check_nonnegative(l2, "l2")
        self.max_norm = None if max_norm is None else checks.check_nonnegative(max_norm, "max_norm")
        if self.max_norm == 0:
            raise ValueError("max_norm must be > 0 (or None for no bound)")
        self.sparsity_cost = checks.check_nonnegative(sparsity_cost, "sparsity_cost")
        if sparsity_targets is not None:
            sparsity_targets = [checks.check_probability(t, "a sparsity target") for t in sparsity_targets]
            if len(sparsity_targets) != depth:
                raise ValueError(f"sparsity_targets needs one target per hidden layer ({depth}), got "
                                 f"{len(sparsity_targets)}")
            if self.sparsity_cost and not all(0 < t < 1 for t in sparsity_targets):
                raise ValueError("sparsity targets must lie in (0, 1) when sparsity_cost > 0")
        elif self.sparsity_cost:
            raise ValueError("sparsity_cost > 0 needs sparsity_targets, one per hidden layer")
        self.sparsity_targets = sparsity_targets
        self.centering, self.centering_rate = checks.check_centering(centering, centering_rate, self.layer_units)
        self.weight_stddev = checks.check_nonnegative(weight_stddev, "weight_stddev")
        self.seed = None if seed is None else checks.check_positive_int(seed, "seed", minimum=0)
        self.seed_generator = keras.random.SeedGenerator(self.seed)
        self.training_state = bool(training_state)
        # assembled from RBMs, copied, or a checkpoint saved without its training state: fit keeps the biases
        self._parameters_set = not self.training_state
        self.n_visible = None
        self.monitor = RunningMeans(["mean_field_free_energy", "mean_field_steps"], name="monitor")
        self.tempering_monitor = RunningMeans(["swap_rate"], name="tempering") if self.n_temperatures > 1 else None
        if n_visible is not None:
            self.build((None, checks.check_positive_int(n_visible, "n_visible")))

    # -- construction ------------------------------------------------------------------------------------
    @property
    def depth(self):
        """The number of hidden layers L."""
        return len(self.hidden_sizes)

    @property
    def sizes(self):
        """[n_visible, n_1, ..., n_L]."""
        return [self.n_visible] + self.hidden_sizes

    def build(self, input_shape):
        if self.built:
            return
        self.n_visible = int(input_shape[-1])
        for units, n in zip(self.layer_units, self.sizes):
            if not units.built:  # deserialised units arrive built
                units.build(n)
            elif units.n != n:
                raise ValueError(f"{units.kind} units were built for {units.n} units, the layer has {n}")
        constraint = None if self.max_norm is None else keras.constraints.MaxNorm(max_value=self.max_norm, axis=0)
        self.kernels = [self.add_weight(
            name=f"kernel_{l}", shape=(n_in, n_out), constraint=constraint,
            initializer=keras.initializers.RandomNormal(stddev=self.weight_stddev,
                                                        seed=None if self.seed is None else self.seed + l))
            for l, (n_in, n_out) in enumerate(zip(self.sizes[:-1], self.sizes[1:]))]
        self.biases = [self.add_weight(name=f"bias_{l}", shape=(n,), initializer="zeros")
                       for l, n in enumerate(self.sizes)]
        self.built = True
        if self.training_state:
            self._build_training_state()

    def _build_training_state(self):
        """The persistent chains (n_chains at each temperature, by temperature, the beta = 1 ones last), after the
        parameters (a checkpoint without them keeps the parameters' order)."""
        locked = self._tracker.locked  # a built layer's state is locked; a lean checkpoint adds it to train
        self._tracker.unlock()
        try:
            seed = tf.constant([self.seed or 0, 7], tf.int32)
            n_chains = self.n_temperatures * self.n_chains
            self.chains = [self.add_weight(
                name=f"chains_{l}", shape=(n_chains, n), trainable=False,
                initializer=keras.initializers.Constant(units.base_sample(
                    n_chains, tf.random.experimental.stateless_fold_in(seed, l)).numpy()))
                for l, (units, n) in enumerate(zip(self.layer_units, self.sizes))]
            if self.centering:  # moving means of v and of the mean-field posterior on the data
                self.offsets = [self.add_weight(name=f"offset_{l}", shape=(n,), trainable=False, initializer="zeros")
                                for l, n in enumerate(self.sizes)]
        finally:
            if locked:
                self._tracker.lock()
        self.training_state = True

    def describe(self):
        """What the model is, in one line."""
        return (f"{type(self).__name__} {'-'.join(map(str, self.sizes))} ({self.layer_units[0].kind} visible, "
                f"{self.layer_units[-1].kind} top)")

    def get_config(self):
        return {**super().get_config(), "layers": self.hidden_sizes, "n_visible": self.n_visible,
                "visible": keras.saving.serialize_keras_object(self.layer_units[0]),
                "top": keras.saving.serialize_keras_object(self.layer_units[-1]),
                "n_chains": self.n_chains, "gibbs_steps": self.gibbs_steps, "n_temperatures": self.n_temperatures,
                "min_beta": self.min_beta,
                "mean_field_steps": self.mean_field_steps, "mean_field_tol": self.mean_field_tol, "l2": self.l2,
                "max_norm": self.max_norm, "sparsity_targets": self.sparsity_targets,
                "sparsity_cost": self.sparsity_cost, "centering": self.centering,
                "centering_rate": self.centering_rate, "weight_stddev": self.weight_stddev, "seed": self.seed,
                "training_state": self.training_state}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def without_training_state(self):
        """A copy with the parameters only (no persistent chains, no optimizer): the published checkpoint."""
        self._check_built()
        lean = type(self).from_config({**self.get_config(), "training_state": False})
        lean.build((None, self.n_visible))
        for mine, theirs in zip(lean.kernels + lean.biases, self.kernels + self.biases):
            mine.assign(theirs)
        for mine, theirs in zip(lean.layer_units, self.layer_units):
            mine.set_weights(theirs.get_weights())
        return lean

    def set_parameters_from(self, source):
        """Copy the kernels, biases and units' parameters of `source`, a trained DBM of the same layers and unit
        types, to continue its training with other settings (fresh chains and optimizer; --init-from)."""
        if not isinstance(source, DBM) or not source.built:
            raise ValueError(f"can only copy the parameters of a trained DBM, got {type(source).__name__}")
        if not self.built:
            self.build((None, source.n_visible))
        mine = (self.sizes, [u.kind for u in self.layer_units])
        theirs = (source.sizes, [u.kind for u in source.layer_units])
        if mine != theirs:
            raise ValueError(f"the source DBM ({source.describe()}) does not match this one ({self.describe()})")
        for variable, value in zip(self.kernels + self.biases, source.kernels + source.biases):
            variable.assign(value)
        for units, other in zip(self.layer_units, source.layer_units):
            units.set_weights(other.get_weights())
        self._parameters_set = True

    def _check_built(self):
        if not self.built:
            raise ValueError("the model has no weights yet: fit it or give n_visible")

    def _next_seed(self):
        return next_seed(self.seed_generator)

    # -- the model's quantities (lists of per-layer tensors; float32 or float64) -------------------------
    def _params(self, dtype):
        return [tf.cast(w, dtype) for w in self.kernels], [tf.cast(b, dtype) for b in self.biases]

    def layer_input(self, states, l, kernels):
        """The input to layer l from its neighbours: I(x_{l-1}) W_{l-1} + I(x_{l+1}) W_l^T."""
        return sampling.layer_input(self.layer_units, kernels, states, l)

    def energy(self, states):
        """E(x) per example, for states [v, x_1, ..., x_L] (means in place of states give E(v, mu))."""
        kernels, biases = self._params(states[0].dtype)
        energy = tf.add_n([units.self_energy(x, b) for units, x, b in zip(self.layer_units, states, biases)])
        for l, w in enumerate(kernels):
            below = tf.matmul(self.layer_units[l].interaction(states[l]), w)
            energy -= tf.reduce_sum(below * self.layer_units[l + 1].interaction(states[l + 1]), axis=-1)
        return energy

    def _mean_field(self, v, n_steps, tol):
        """The mean-field posterior q(x_1, ..., x_L | v) = prod_l q_l: started by a bottom-up pass with doubled
        weights (each layer but the top stands in for the input it will get from above), then rounds of updates
        of the odd layers and of the even ones, each the exact coordinate ascent of the bound, until the mean
        absolute change of every layer is below `tol` or after `n_steps` rounds. Returns (means [v, mu_1, ...],
        inputs [None, a_1, ...] with mu_l = E_l[x | a_l], rounds)."""
        kernels, biases = self._params(v.dtype)
        from_visible = tf.matmul(self.layer_units[0].interaction(v), kernels[0])  # fixed: computed once
        means, inputs = [v], []
        for l in range(1, self.depth + 1):
            factor = 2.0 if l < self.depth else 1.0
            below = from_visible if l == 1 else tf.matmul(self.layer_units[l - 1].interaction(means[-1]),
                                                          kernels[l - 1])
            inputs.append(factor * below)
            means.append(self.layer_units[l].mean(inputs[-1], biases[l]))
        order = list(range(1, self.depth + 1, 2)) + list(range(2, self.depth + 1, 2))

        def layer_input(means, l):
            if l > 1:
                return self.layer_input(means, l, kernels)
            if self.depth == 1:
                return from_visible
            return from_visible + tf.matmul(self.layer_units[2].interaction(means[2]), kernels[1], transpose_b=True)

        def round_(i, means, inputs, change):
            means, inputs, changes = list(means), list(inputs), []
            for l in order:
                inputs[l - 1] = layer_input(means, l)
                new = self.layer_units[l].mean(inputs[l - 1], biases[l])
                changes.append(tf.reduce_mean(tf.abs(new - means[l])))
                means[l] = new
            return i + 1, means, inputs, tf.reduce_max(tf.stack(changes))

        tol = tf.cast(tol, v.dtype)
        rounds, means, inputs, _ = tf.while_loop(
            lambda i, means, inputs, change: tf.logical_and(i < n_steps, change > tol), round_,
            (tf.constant(0), means, inputs, tf.constant(math.inf, v.dtype)))
        return means, [None] + inputs, rounds

    def _mean_field_free_energy(self, means, inputs):
        """E(v, mu) - H(q) per example: q_l has inputs a_l, so E_q[E] = E(v, mu) (the energy is linear in each
        layer) and H(q) = sum_l H(q_l); -log p(v) <= this + log Z."""
        _, biases = self._params(means[0].dtype)
        entropy = tf.add_n([self.layer_units[l].distribution(inputs[l], biases[l]).entropy()
                            for l in range(1, self.depth + 1)])
        return self.energy(means) - entropy

    def _gibbs(self, states, n_steps, seed, clamp_visible=False):
        """`n_steps` sweeps of Gibbs sampling from `states`, each the odd layers given the even ones, then the
        even ones (the visible layer too unless clamp_visible); returns the states and E[v | x_1] of the last
        sweep."""
        kernels, biases = self._params(states[0].dtype)
        first = 0 if not clamp_visible else 2

        def sweep(i, states, v_mean):
            states = list(states)
            seeds = tfp.random.split_seed(tf.random.experimental.stateless_fold_in(seed, i), self.depth + 1)
            for l in list(range(1, self.depth + 1, 2)) + list(range(first, self.depth + 1, 2)):
                x, mean = self.layer_units[l].sample_and_mean(self.layer_input(states, l, kernels), biases[l],
                                                              seeds[l])
                states[l] = x
                if l == 0:
                    v_mean = mean
            return i + 1, states, v_mean

        _, states, v_mean = tf.while_loop(lambda i, *_: i < n_steps, sweep, (tf.constant(0), list(states), states[0]))
        return states, v_mean

    def call(self, inputs):
        """The mean-field posterior of the top layer given v (the paper's extra input of the fine-tuned net)."""
        means, _, _ = self._mean_field(tf.convert_to_tensor(inputs), self.EVALUATION_MEAN_FIELD_STEPS,
                                       self.mean_field_tol)
        return means[-1]

    # -- training ---------------------------------------------------------------------------------------
    def compile(self, optimizer=None, steps_per_execution=100, **kwargs):
        """Default optimizer: SGD with learning rate 0.001 and momentum 0.9 (the paper's joint training)."""
        if optimizer is None:
            optimizer = keras.optimizers.SGD(learning_rate=0.001, momentum=0.9)
        check_chains_split(self.n_chains)
        super().compile(optimizer=optimizer, steps_per_execution=steps_per_execution, **kwargs)

    @property
    def metrics(self):
        return [self.monitor] + ([self.tempering_monitor] if self.tempering_monitor is not None else [])

    def train_step(self, data):
        v0, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        v0 = tf.cast(v0, self.compute_dtype)
        seed = self._next_seed()
        means, inputs, rounds = self._mean_field(v0, self.mean_field_steps, self.mean_field_tol)
        means = [tf.stop_gradient(m) for m in means]
        if self.n_temperatures > 1:
            chains, swap_rate = self.tempered_sweeps(self.gibbs_steps, seed)
            self.tempering_monitor.update_state([tf.reshape(swap_rate, (1,))])
        else:
            chains, _ = self._gibbs([replica_rows(c) for c in self.chains], self.gibbs_steps, seed)
            for variable, state in zip(self.chains, chains):
                variable.assign(gather_replica_rows(state))
        with tf.GradientTape() as tape:
            # d/dtheta of mean E(v, mu) - mean E(x_model): the data's statistics minus the chains'
            objective = tf.reduce_mean(self.energy(means)) - tf.reduce_mean(self.energy(chains))
            if self.sparsity_cost:
                objective += self.sparsity_cost * self._sparsity_penalty(means)
            if self.l2:
                objective += 0.5 * self.l2 * tf.add_n([tf.reduce_sum(tf.square(w)) for w in self.kernels])
            # a hand-made objective: Keras scales only its own losses by the number of replicas, whose
            # gradients it sums
            objective = objective / tf.distribute.get_strategy().num_replicas_in_sync
        grads = tape.gradient(objective, self.trainable_variables, unconnected_gradients="zero")
        if self.centering:
            grads = self._centered(grads, means)
        self.optimizer.apply(grads, self.trainable_variables)
        self._monitor(means, inputs, rounds)
        if self.tempering_monitor is None:
            return self.monitor.result()
        return {**self.monitor.result(), **self.tempering_monitor.result()}

    def tempered_sweeps(self, n_steps, seed):
        """Parallel tempering of the persistent chains (`zoo.sampling.parallel_tempering` on the path from the
        model's own biases, `DBMAnnealingPath`): `n_steps` rounds of a sweep of every chain at its beta and
        swaps of neighbours, then the summed-out layers drawn given the moved ones. Assigns the chains; returns
        the beta = 1 chains' states [v, x_1, ...] and the fraction of proposed swaps that were accepted. Spread
        over replicas, each tempers its share of the chains at every temperature."""
        t = self.n_temperatures
        dtype = self.chains[0].dtype
        path = DBMAnnealingPath(self, None, dtype, self.annealing_parity())
        x = tf.concat([replica_tempered_rows(self.chains[l], t) for l in path.moved], axis=-1)
        betas = tf.constant(self.betas, dtype)
        seed_walk, seed_rest = tfp.random.split_seed(seed, 2)
        x, terms, rate = sampling.parallel_tempering(path, x, betas, n_steps, seed_walk)
        n = tf.shape(x)[0] // t
        states = path.complete(x, terms, tf.repeat(betas, n), seed_rest)
        for variable, state in zip(self.chains, states):
            variable.assign(gather_tempered_rows(state, t))
        return [state[-n:] for state in states], rate

    def _centered(self, grads, means):
        """`grads` (of the trainable variables) with the kernels' and biases' replaced by their centered
        gradient, after the offsets moved towards this batch's means of v and of the mean-field posterior."""
        move_offsets(self.offsets, [tf.reduce_mean(m, 0) for m in means], self.centering_rate,
                     self.optimizer.iterations)
        by_id = {id(v): g for v, g in zip(self.trainable_variables, grads)}
        kernels, biases = centered_gradients([by_id[id(w)] for w in self.kernels], [by_id[id(b)] for b in self.biases],
                                             self.offsets)
        by_id.update(zip([id(v) for v in self.kernels + self.biases], kernels + biases))
        return [by_id[id(v)] for v in self.trainable_variables]

    def _sparsity_penalty(self, means):
        """sum_l CE(target_l, batch mean of E_l[x | the mean-field input of layer l]): the input recomputed from
        the (fixed) means of the neighbours, so that the penalty moves the kernels and biases."""
        kernels, biases = self.kernels, self.biases
        penalty = []
        for l in range(1, self.depth + 1):
            q = tf.reduce_mean(self.layer_units[l].mean(self.layer_input(means, l, kernels), biases[l]), axis=0)
            p = self.sparsity_targets[l - 1]
            penalty.append(tf.reduce_sum(-p * tf.math.log(q + 1e-7) - (1 - p) * tf.math.log(1 - q + 1e-7)))
        return tf.add_n(penalty)

    def _monitor(self, means, inputs, rounds):
        n = tf.shape(means[0])[0]
        self.monitor.update_state([self._mean_field_free_energy(means, inputs),
                                   tf.fill([n], tf.cast(rounds, self.compute_dtype))])

    def test_step(self, data):
        v0, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        means, inputs, rounds = self._mean_field(tf.cast(v0, self.compute_dtype), self.mean_field_steps,
                                                 self.mean_field_tol)
        self._monitor(means, inputs, rounds)
        return self.monitor.result()

    # -- public NumPy-facing API -------------------------------------------------------------------------
    def validate_data(self, x, name="x"):
        """`x` as a float32 array of shape (n, n_visible) that the visible units accept, or ValueError."""
        arr = checks.as_float_matrix(x, name, width=self.n_visible)
        if not self.built:
            self.build(arr.shape)
        return self.layer_units[0].validate(arr, name)

    def fit(self, x=None, y=None, batch_size=None, epochs=1, validation_data=None, **kwargs):
        """Keras `fit`; arrays are checked first (shape, finiteness, binary for Bernoulli units)."""
        binary = self.layer_units[0].kind == "bernoulli" and not self.layer_units[0].allow_nonbinary
        x, batch_size, validation_data = fit_inputs(self, x, batch_size, validation_data, kwargs, compact=binary)
        if not self.training_state:  # a checkpoint published without its chains: training starts fresh ones
            self._build_training_state()
        return super().fit(x, y, batch_size=batch_size, epochs=epochs, validation_data=validation_data, **kwargs)

    def prepare_visible_bias(self, x):
        """Before the first training on `x`: the visible biases at the data's base rate (independent units
        matching its means), unless the model has trained, was assembled from RBMs or loaded as a checkpoint."""
        trained = getattr(self, "optimizer", None) is not None and int(self.optimizer.iterations.numpy()) > 0
        if not trained and not self._parameters_set:
            self.biases[0].assign(self.layer_units[0].bias_from_mean(x.mean(0)).astype(np.float32))

    def mean_field(self, v, n_steps=None, tol=None):
        """The mean-field posterior means [mu_1, ..., mu_L] of the hidden layers given each row of v (NumPy),
        after at most n_steps rounds (default EVALUATION_MEAN_FIELD_STEPS) or until the change is below tol."""
        self._check_built()
        v = tf.constant(self.validate_data(v, "v"))
        n_steps = self.EVALUATION_MEAN_FIELD_STEPS if n_steps is None else checks.check_positive_int(n_steps,
                                                                                                    "n_steps")
        tol = self.mean_field_tol if tol is None else checks.check_nonnegative(tol, "tol")
        means, _, _ = self._mean_field(v, n_steps, tol)
        return [m.numpy() for m in means[1:]]

    def sample(self, n, n_steps=1000, seed=None):
        """`n` samples of the visible units after `n_steps` Gibbs sweeps of every layer from independent units
        at zero input (E[v | x_1] of the last sweep), shape (n, n_visible)."""
        self._check_built()
        n = checks.check_positive_int(n, "n")
        n_steps = checks.check_positive_int(n_steps, "n_steps")
        seed = (self._next_seed() if seed is None
                else tf.constant([checks.check_positive_int(seed, "seed", minimum=0), 0], tf.int32))
        return self._sample_chain(self._chain_start(n, seed), tf.constant(n_steps), seed).numpy()

    def _chain_start(self, n, seed):
        _, biases = self._params(self.compute_dtype)
        return [units.sample(tf.zeros(tf.stack([n, units.n])), b, tf.random.experimental.stateless_fold_in(seed, -l - 1))
                for l, (units, b) in enumerate(zip(self.layer_units, biases))]

    @tf.function
    def _sample_chain(self, states, n_steps, seed):
        return self._gibbs(states, n_steps, seed)[1]

    # -- partition function and likelihood (zoo.evaluation; EnergyModel, Enumerable) ---------------------
    #: what `unnormalized_log_prob` gives: zoo.evaluation labels the NLL it implies with it
    UNNORMALIZED_LOG_PROB = "mean-field lower bound"

    def visible_kind(self):
        """The visible units' family: "bernoulli" or "gaussian" (p(v) a density)."""
        return self.layer_units[0].kind

    def unnormalized_log_prob(self, v):
        """The mean-field lower bound -E(v, mu) + H(q) <= log sum_h exp(-E(v, h)) (`EVALUATION_MEAN_FIELD_STEPS`
        rounds at most): log p(v) >= this - log Z."""
        v = tf.convert_to_tensor(v)
        means, inputs, _ = self._mean_field(v, self.EVALUATION_MEAN_FIELD_STEPS, self.mean_field_tol)
        return -self._mean_field_free_energy(means, inputs)

    #: at most this many rows of the data (evenly spaced) fit the hidden layers of the AIS base model
    BASE_FIT_EXAMPLES = 10000

    def base_parameters(self, data=None):
        """The biases of the AIS base model (independent units, no weights), every layer's concatenated: fitted so
        that each layer's units match the means of `data` (the visible layer; Salakhutdinov & Murray 2008) and of
        its mean-field posterior (the hidden ones, on at most BASE_FIT_EXAMPLES rows), or zeros (uniform) for None.
        A base near the model's own marginals is what lets AIS converge on a sharp DBM (docs/dbm.md)."""
        self._check_built()
        if data is None:
            return np.zeros(sum(self.sizes))
        x = self.validate_data(data, "data")
        fit = x[::-(-len(x) // self.BASE_FIT_EXAMPLES)]
        hidden = [np.zeros(n) for n in self.sizes[1:]]
        for start in range(0, len(fit), 1000):  # batches bound the memory of the mean field
            for total, mean in zip(hidden, self.mean_field(fit[start:start + 1000], n_steps=self.mean_field_steps)):
                total += mean.sum(0)
        means = [x.mean(0)] + [total / len(fit) for total in hidden]
        return np.concatenate([units.bias_from_mean(mean) for units, mean in zip(self.layer_units, means)])

    def annealing_parity(self):
        """The parity of layers that AIS moves (0: v, x_2, ...; 1: x_1, x_3, ...), the other summed out: the one
        with fewer units (784-500-1000: x_1; 784-500-500-1000: v and x_2, as Salakhutdinov & Hinton)."""
        return int(sum(self.sizes[1::2]) <= sum(self.sizes[0::2]))

    def annealing_path(self, base_bias, dtype=tf.float64):
        """The path of AIS from independent units (biases `base_bias`, every layer's concatenated, as
        `base_parameters` gives) to this model."""
        self._check_built()
        return DBMAnnealingPath(self, base_bias, dtype, self.annealing_parity())

    def enumerable_layers(self):
        """{'odd layers' | 'even layers': units} of the parities whose joint states can be enumerated (a single
        discrete layer, or Bernoulli layers only), the other parity summed out in closed form."""
        layers = {}
        for parity, name in ((1, "odd layers"), (0, "even layers")):
            members = list(range(parity, self.depth + 1, 2))
            units = [self.layer_units[l] for l in members]
            if len(units) == 1 and units[0].discrete:
                layers[name] = units[0]
            elif all(u.kind == "bernoulli" for u in units):
                joint = units_lib.BernoulliUnits()
                joint.build(sum(self.sizes[l] for l in members))
                layers[name] = joint
        return layers

    def unnormalized_log_marginal(self, states, layer):
        """log sum over the other parity of exp(-E), for joint states of the parity `layer` names."""
        parity = {"odd layers": 1, "even layers": 0}[layer]
        path = DBMAnnealingPath(self, None, states.dtype, parity)
        return path.log_f(path.terms(states), tf.constant(1.0, states.dtype))

    # -- fine-tuning (zoo.finetune; the Encoder capability) -----------------------------------------------
    def encoder(self):
        """The encoder of Salakhutdinov & Hinton (2009): a new keras.Model whose input is the image x and, from
        a frozen copy of this DBM, the mean-field posterior q_L of the top layer; sigmoid Dense layers then
        compute h_1 = sigma(x W_0 + b_1), ..., h_{L-1} = sigma(h_{L-2} W_{L-2} + q_L W_{L-1}^T + b_{L-1}) (the
        input the layer has in the DBM), h_L = sigma(h_{L-1} W_{L-1} + b_L), with copies of the DBM's weights.
        Fine-tuning trains the Dense layers; the posterior stays the pretrained DBM's."""
        self._check_built()
        if self.layer_units[-1].kind != "bernoulli":
            raise ValueError(f"a DBM with a {self.layer_units[-1].kind} top layer cannot encode as sigmoid layers")
        kernels = [w.numpy() for w in self.kernels]
        if self.layer_units[0].kind == "gaussian":  # interaction_v(v) = v / sigma
            kernels[0] = kernels[0] / self.layer_units[0].sigma().numpy()[:, None]
        biases = [b.numpy() for b in self.biases]
        x = keras.Input((self.n_visible,), dtype="float32", name="x")
        h, weights = x, []
        top = MeanFieldPosterior(self.without_training_state(), name="mean_field_top") if self.depth > 1 else None
        for l in range(1, self.depth + 1):
            kernel = kernels[l - 1]
            if l == self.depth - 1:  # the layer under the top also hears the top's posterior
                h = keras.layers.Concatenate(name="with_mean_field_top")([h, top(x)])
                kernel = np.concatenate([kernel, kernels[l].T], axis=0)
            dense = keras.layers.Dense(self.sizes[l], activation="sigmoid", kernel_initializer="zeros",
                                       name=f"hidden_{l}")
            h = dense(h)
            weights.append((dense, [kernel, biases[l]]))
        encoder = keras.Model(x, h, name="dbm_encoder")
        for dense, values in weights:
            dense.set_weights(values)
        return encoder

    # -- SavedModel and TensorBoard ---------------------------------------------------------------------
    def serving_endpoints(self):
        """encode (x -> the mean-field posterior of the top layer), mean_field_free_energy (E(v, mu) - H(q)) and
        sample(n, n_steps, seed)."""
        x = [tf.TensorSpec([None, self.n_visible], tf.float32, name="x")]
        scalars = [tf.TensorSpec([], tf.int32, name=name) for name in ("n", "n_steps", "seed")]

        def sample(n, n_steps, seed):
            key = tf.stack([seed, 0])
            return {"samples": self._gibbs(self._chain_start(n, key), n_steps, key)[1]}

        return {"encode": (lambda x: {"features": self(x)}, x),
                "mean_field_free_energy": (lambda x: {"free_energy": -self.unnormalized_log_prob(x)}, x),
                "sample": (sample, scalars)}

    def summary_images(self, x):
        """The chains' visible states, and each layer's filters in pixel space (W_0 W_1 ... W_{l-1} columns)."""
        filters, projection = {}, tf.eye(self.n_visible)
        for l, w in enumerate(self.kernels):
            projection = tf.matmul(projection, w)
            filters[f"filters_{l + 1}"] = (tf.transpose(projection[:, :100]).numpy(), True)
        particles = (self.chains[0][-self.n_chains:][:100].numpy() if self.training_state
                     else self.sample(min(100, len(x)), n_steps=100, seed=0))
        return {**filters, "negative_particles": (particles, False)}

    def summary_histograms(self, x):
        """Parameters and each hidden layer's mean-field posterior on a data sample."""
        means = self.mean_field(x[:500])
        return {**{w.name: w.numpy() for w in self.kernels + self.biases},
                **{f"mean_field_{l + 1}": m for l, m in enumerate(means)}}

    # -- greedy pretraining ------------------------------------------------------------------------------
    @classmethod
    def from_rbms(cls, rbms, **kwargs):
        """A DBM assembled from a stack of trained RBMs (Salakhutdinov & Hinton 2009, 2012): the first trained
        with doubled bottom-up input (`PretrainingRBM(..., up_scale=2)`), the last with doubled top-down input
        (`down_scale=2`), those in between plain and halved here. The visible layer takes the first RBM's visible
        biases, the top layer the last RBM's hidden biases, and a layer between RBMs l and l + 1 the mean of the
        hidden biases of RBM l and the visible biases of RBM l + 1: each learned the layer's whole bias while its
        other neighbour in the DBM was stood in for, as Salakhutdinov's code adds the two RBMs' halves (taking
        the lower RBM's alone made the assembled 784-500-1000 far sharper: experiments/README.md,
        dbm_pretraining_scales.py). kwargs: the DBM's other settings."""
        rbms = list(rbms)
        if not rbms or not all(isinstance(r, RBM) and r.built for r in rbms):
            raise ValueError("from_rbms needs a list of trained (built) zoo.RBM, one per hidden layer")
        for i, (below, above) in enumerate(zip(rbms[:-1], rbms[1:])):
            if below.n_hidden != above.n_visible:
                raise ValueError(f"RBM {i + 1} has {below.n_hidden} hidden units but RBM {i + 2} has "
                                 f"{above.n_visible} visible units: the stack does not chain")
            if above.visible_units.kind != "bernoulli" or below.hidden_units.kind != "bernoulli":
                raise ValueError(f"RBMs {i + 1} and {i + 2} meet in a layer that is not Bernoulli")
        expected = [(2.0, 1.0)] + [(1.0, 1.0)] * (len(rbms) - 2) + [(1.0, 2.0)] if len(rbms) > 1 else [(1.0, 1.0)]
        for i, (rbm, scales) in enumerate(zip(rbms, expected)):
            if (rbm.up_scale, rbm.down_scale) != scales:
                raise ValueError(f"RBM {i + 1} of {len(rbms)} was trained with up_scale {rbm.up_scale:g} and "
                                 f"down_scale {rbm.down_scale:g}; the pretraining rules need {scales[0]:g} and "
                                 f"{scales[1]:g} (first: doubled up, last: doubled down, others plain)")
        model = cls([r.n_hidden for r in rbms], visible=rbms[0].visible_units.__class__.from_config(
            rbms[0].visible_units.get_config()), top=rbms[-1].hidden_units.__class__.from_config(
            rbms[-1].hidden_units.get_config()), n_visible=rbms[0].n_visible, **kwargs)
        model.layer_units[0].set_weights(rbms[0].visible_units.get_weights())
        for l, rbm in enumerate(rbms):
            middle = 0 < l < len(rbms) - 1
            model.kernels[l].assign(rbm.kernel * (0.5 if middle else 1.0))
            above = rbms[l + 1].visible_bias if l + 1 < len(rbms) else None
            model.biases[l + 1].assign(rbm.hidden_bias if above is None else (rbm.hidden_bias + above) / 2)
        model.biases[0].assign(rbms[0].visible_bias)
        model._parameters_set = True
        return model


@keras.saving.register_keras_serializable(package="zoo")
class PretrainingRBM(RBM):
    """A modified RBM of a deep Boltzmann machine's greedy pretraining (Salakhutdinov & Hinton 2009, 2012;
    `DBM.from_rbms`): p(h | v) takes the input up_scale * I(v) W and p(v | h) down_scale * I(h) W^T (the first
    RBM of a stack doubles its bottom-up input, the last its top-down input), while the update stays the data's
    statistics minus the chains'. A component of a DBM, not a model of its own: with a scale other than 1 it has
    no partition function (AIS and exact log Z refuse it). Trained with CD or PCD; other arguments: `zoo.RBM`'s.
    """

    def __init__(self, n_hidden, *, up_scale=1.0, down_scale=1.0, **kwargs):
        super().__init__(n_hidden, **kwargs)
        self.up_scale = float(checks.check_nonnegative(up_scale, "up_scale"))
        self.down_scale = float(checks.check_nonnegative(down_scale, "down_scale"))
        if not self.up_scale or not self.down_scale:
            raise ValueError("up_scale and down_scale must be > 0 (2 for the first and last RBMs of a DBM's stack)")
        if self.scaled and (self.n_temperatures > 1 or self.centering):
            raise ValueError("up_scale and down_scale (a DBM's pretraining) work with CD and PCD: parallel tempering "
                             "and centering need an RBM with a partition function")

    def get_config(self):
        return {**super().get_config(), "up_scale": self.up_scale, "down_scale": self.down_scale}


class DBMAnnealingPath(sampling.LayeredAnnealingPath):
    """The DBM's path of AIS (`zoo.sampling.LayeredAnnealingPath` on its layers): from independent units at
    `base_bias` (every layer's biases concatenated; None: B's own biases at both ends, which
    `unnormalized_log_marginal` uses at beta = 1) to the DBM, moving the layers of `parity`. Reverse AIS starts
    its chains at data (`start_from_data`)."""

    def __init__(self, model, base_bias, dtype, parity):
        kernels, biases = model._params(dtype)
        if base_bias is not None and base_bias.shape[-1] != sum(model.sizes):
            raise ValueError(f"base_bias has {base_bias.shape[-1]} entries: the base model of a DBM needs every "
                             f"layer's biases, {sum(model.sizes)} for layers of {list(model.sizes)}")
        base_biases = list(biases) if base_bias is None else tf.split(tf.cast(base_bias, dtype), model.sizes)
        super().__init__(model.layer_units, kernels, biases, base_biases, parity, dtype)
        self.model = model

    def start_from_data(self, v, seed):
        """The moved layers' states for visible data v: v itself where it moves, the hidden layers drawn from
        the mean-field posterior given v (reverse AIS then runs the model's own sweeps from there)."""
        means, inputs, _ = self.model._mean_field(v, self.model.EVALUATION_MEAN_FIELD_STEPS,
                                                  self.model.mean_field_tol)
        seeds = tfp.random.split_seed(seed, len(self.sizes))
        states = [v if l == 0 else self.units[l].sample(inputs[l], self.biases[l], seeds[l]) for l in self.moved]
        return tf.concat(states, axis=-1)


@keras.saving.register_keras_serializable(package="zoo")
class MeanFieldPosterior(keras.layers.Layer):
    """x -> the mean-field posterior of the top layer of `dbm` (`DBM.call`), a frozen copy of the DBM inside the
    layer: the second input of the DBM's fine-tuned network (`DBM.encoder`)."""

    def __init__(self, dbm, **kwargs):
        kwargs["trainable"] = False
        super().__init__(**kwargs)
        self.dbm = dbm if isinstance(dbm, DBM) else keras.saving.deserialize_keras_object(dbm)
        self.dbm.trainable = False

    def call(self, x):
        return self.dbm(x)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.dbm.sizes[-1])

    def compute_output_spec(self, x):
        return keras.KerasTensor((x.shape[0], self.dbm.sizes[-1]), dtype=self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "dbm": keras.saving.serialize_keras_object(self.dbm)}
