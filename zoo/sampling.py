"""Annealing paths of the energy models: the one engine that AIS, RAISE (`zoo.evaluation.ais`), exact
enumeration and parallel tempering (`parallel_tempering`) share, for an RBM and a deep Boltzmann machine alike.

A layered energy model has layers x_0 (visible), x_1, ..., x_L in a chain, each of a unit family of
`zoo.units` (a self energy se_l(x; b), an interaction I(x), a log-partition and a sampler given an input and a
bias), and the energy

    E(x) = sum_l se_l(x_l; b_l) - sum_l I(x_l) W_l I(x_{l+1}).

`LayeredAnnealingPath` goes from a base model A (no weights, every layer independent at biases a_l) to the model
B (biases b_l) on the layers of one parity (the "moved" ones: the chain's state, their concatenation), the other
parity ("summed") summed out in closed form, which needs no weights between layers of one parity:

    log f_beta(x) = sum_{l moved} -[(1 - beta) se_l(x_l; a_l) + beta se_l(x_l; b_l)]
                    + sum_{l summed} log_partition_l(beta s_l(x); (1 - beta) a_l + beta b_l) - c_l(beta)

with s_l(x) = I(x_{l-1}) W_{l-1} + I(x_{l+1}) W_l^T, and c_l(beta) = beta (1 - beta) sum (a_l - b_l)^2 / (2 sigma^2)
for Gaussian units (mixing two quadratic self energies moves the bias linearly and adds that constant), zero for
the linear families. Its transition at beta samples the summed layers given the moved ones, then the moved ones
given those, each at the parameters of beta: a Gibbs sweep that leaves f_beta invariant and is reversible with
respect to it. An RBM is the chain v - h moving v (parity 0); a DBM moves the parity with fewer units.
"""
import tensorflow as tf
import tensorflow_probability as tfp


def layer_input(units, kernels, states, l):
    """The input to layer l of a chain of layers from its neighbours: I(x_{l-1}) W_{l-1} + I(x_{l+1}) W_l^T."""
    terms = []
    if l > 0:
        terms.append(tf.matmul(units[l - 1].interaction(states[l - 1]), kernels[l - 1]))
    if l < len(units) - 1:
        terms.append(tf.matmul(units[l + 1].interaction(states[l + 1]), kernels[l], transpose_b=True))
    return tf.add_n(terms)


class LayeredAnnealingPath:
    """The geometric path from independent layers at `base_biases` (beta 0) to the layered model of `units`,
    `kernels` (W_l between layers l and l + 1) and `biases` (beta 1), moving the layers of `parity` (0: x_0, x_2,
    ...; 1: x_1, x_3, ...). `beta` is a scalar or one value per row of the states (parallel tempering). Offers
    the `zoo.capabilities.AnnealingPath` interface: `terms`, `log_f`, `transition`, `base_log_partition`,
    `base_sample`. Tensors of `dtype`; a base bias given as the model's own bias object is shared (one self
    energy for both ends)."""

    def __init__(self, units, kernels, biases, base_biases, parity, dtype):
        if not len(units) == len(biases) == len(base_biases) == len(kernels) + 1:
            raise ValueError(f"a chain of {len(units)} layers needs {len(units)} biases and base biases and "
                             f"{len(units) - 1} kernels")
        self.units, self.kernels, self.biases, self.dtype = list(units), list(kernels), list(biases), dtype
        self.base_biases = list(base_biases)
        self.sizes = [int(b.shape[-1]) for b in self.biases]
        self.depth = len(self.units) - 1
        self.moved = list(range(parity, self.depth + 1, 2))
        self.summed = list(range(1 - parity, self.depth + 1, 2))

    def layer_input(self, states, l):
        return layer_input(self.units, self.kernels, states, l)

    def split(self, x):
        """[x_l for the moved layers] -> the full list of layer states, None where a layer is summed out."""
        states = [None] * (self.depth + 1)
        for l, part in zip(self.moved, tf.split(x, [self.sizes[l] for l in self.moved], axis=-1)):
            states[l] = part
        return states

    def mixed_bias(self, l, beta):
        return (1 - beta) * self.base_biases[l] + beta * self.biases[l]

    def _log_partition(self, l, inputs, beta):
        """log_partition_l at beta (a scalar, or a column with one beta per row) of the summed layer l."""
        units = self.units[l]
        log_z = units.log_partition(inputs, self.mixed_bias(l, beta))
        if not units.linear_self_energy:  # Gaussian: the constant of mixing two quadratics
            s = units.sigma(self.dtype)
            log_z -= tf.reshape(beta * (1 - beta), [-1]) * tf.reduce_sum(
                tf.square(self.base_biases[l] - self.biases[l]) / (2 * s * s))
        return log_z

    def terms(self, x):
        """What log f_beta(x) needs at any beta, as a flat tuple: the summed layers' inputs s_l(x), then the
        moved layers' base self energies and model self energies (each summed over the layers)."""
        states = self.split(x)
        inputs = [self.layer_input(states, l) for l in self.summed]
        own = [self.units[l].self_energy(states[l], self.biases[l]) for l in self.moved]
        base = [own_l if self.base_biases[l] is self.biases[l] else self.units[l].self_energy(states[l],
                                                                                             self.base_biases[l])
                for l, own_l in zip(self.moved, own)]
        base, own = tf.add_n(base), tf.add_n(own)
        return (*inputs, base, own)

    def log_f(self, terms, beta):
        """log f_beta(x) from `terms(x)`."""
        *inputs, base, own = terms
        beta = tf.convert_to_tensor(beta, self.dtype)
        scale = _per_row(beta)
        log_f = -(1 - beta) * base - beta * own
        for l, s in zip(self.summed, inputs):
            log_f += self._log_partition(l, scale * s, scale)
        return log_f

    def complete(self, x, terms, beta, seed):
        """Every layer's state: the moved layers' from x, the summed ones drawn given them at the parameters of
        beta (terms = terms(x)); a list [x_0, ..., x_L]."""
        return self._draw_summed(x, terms, *self._scale_and_seeds(beta, seed))

    def _scale_and_seeds(self, beta, seed):
        """beta as a scalar or a column over the rows, and a seed per layer."""
        return _per_row(tf.convert_to_tensor(beta, self.dtype)), tfp.random.split_seed(seed, self.depth + 1)

    def _draw_summed(self, x, terms, scale, seeds):
        states = self.split(x)
        for l, s in zip(self.summed, terms[:len(self.summed)]):
            states[l] = self.units[l].sample(scale * s, self.mixed_bias(l, scale), seeds[l])
        return states

    def transition(self, x, terms, beta, seed):
        """One sweep from x (with terms = terms(x)): the summed layers given the moved ones, then the moved ones
        given those, at the parameters of beta."""
        scale, seeds = self._scale_and_seeds(beta, seed)
        states = self._draw_summed(x, terms, scale, seeds)
        for l in self.moved:
            states[l] = self.units[l].sample(scale * self.layer_input(states, l), self.mixed_bias(l, scale), seeds[l])
        return tf.concat([states[l] for l in self.moved], axis=-1)

    def base_log_partition(self):
        """log Z_0: every layer independent at its base biases."""
        return tf.add_n([units.log_partition(tf.zeros((1, n), self.dtype), a)[0]
                         for units, n, a in zip(self.units, self.sizes, self.base_biases)])

    def base_sample(self, n, seed):
        """n exact samples of the moved layers under the base model."""
        seeds = tfp.random.split_seed(seed, len(self.moved))
        return tf.concat([self.units[l].sample(tf.zeros((n, self.sizes[l]), self.dtype), self.base_biases[l], s)
                          for l, s in zip(self.moved, seeds)], axis=-1)


def parallel_tempering(path, x, betas, n_steps, seed):
    """`n_steps` rounds of parallel tempering (Desjardins et al. 2010) on `path` (a `LayeredAnnealingPath` whose
    beta scales the model, e.g. from base biases equal to the model's): x holds n chains at each inverse
    temperature of `betas` (t values), by temperature (rows [k n, (k + 1) n) at betas[k]). A round is one sweep of
    every chain at its own beta, then a Metropolis swap of each neighbour pair (k, k + 1) with k of the round's
    parity, chain i with chain i, accepted with probability min(1, f_k(x_k+1) f_k+1(x_k) / (f_k(x_k) f_k+1(x_k+1))).
    Returns (x, terms(x), the fraction of proposed swaps accepted)."""
    dtype = x.dtype
    t = int(betas.shape[0])
    n = tf.shape(x)[0] // t
    own, up, down = (tf.repeat(b, n) for b in (betas, tf.concat([betas[1:], betas[-1:]], 0),
                                                 tf.concat([betas[:1], betas[:-1]], 0)))
    pair_parity = tf.range(t - 1) % 2
    no_swap = tf.zeros((1, n), tf.int32)

    def round_(i, x, terms, accepted, proposed):
        seed_sweep, seed_swap = tfp.random.split_seed(tf.random.experimental.stateless_fold_in(seed, i), 2)
        x = path.transition(x, terms, own, seed_sweep)
        terms = path.terms(x)
        log_f = [tf.reshape(path.log_f(terms, b), (t, n)) for b in (own, up, down)]
        log_ratio = log_f[1][:-1] + log_f[2][1:] - log_f[0][:-1] - log_f[0][1:]  # pair (k, k + 1)
        offered = tf.equal(pair_parity, i % 2)[:, None]
        accept = tfp.distributions.Bernoulli(probs=tf.exp(tf.minimum(log_ratio, 0.0)), dtype=tf.bool)
        swap = tf.cast(tf.logical_and(offered, accept.sample(seed=seed_swap)), tf.int32)
        source = tf.range(t)[:, None] + tf.concat([swap, no_swap], 0) - tf.concat([no_swap, swap], 0)
        index = tf.reshape(source * n + tf.range(n)[None, :], (-1,))
        return (i + 1, tf.gather(x, index), tf.nest.map_structure(lambda a: tf.gather(a, index), terms),
                accepted + tf.reduce_sum(tf.cast(swap, dtype)),
                proposed + tf.reduce_sum(tf.cast(offered, dtype)) * tf.cast(n, dtype))

    zero = tf.zeros((), dtype)
    _, x, terms, accepted, proposed = tf.while_loop(lambda i, *_: i < n_steps, round_,
                                                    (tf.constant(0), x, path.terms(x), zero, zero))
    return x, terms, accepted / tf.maximum(proposed, 1.0)


def _per_row(beta):
    """A beta per row (shape (n,)) as a column that scales each row; a scalar as it is."""
    return beta[:, None] if beta.shape.rank == 1 else beta
