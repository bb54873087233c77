"""Bidirectional Helmholtz machines (Bornschein, Shabanian, Fischer & Bengio, ICML 2016).

Two directed models over the same binary layers, the Helmholtz machine's top-down p(x, h) and bottom-up
q(h | x), whose normalised geometric mean is the model:

    p*(x) = p~*(x) / Z,   p~*(x) = (sum_h sqrt(p(x, h) q(h | x)))^2,   Z = sum_x p~*(x) <= 1

(Cauchy-Schwarz: sum_h sqrt(p q) <= sqrt(p(x)), so p~*(x) <= p(x) and Z <= 1.) With K samples h_k ~ q(. | x)
and log w_k = log p(x, h_k) - log q(h_k | x):

    log p~*(x) ~ 2 (logsumexp_k (log w_k / 2) - log K)      (a stochastic lower bound, tightening with K)
    Z = E_{(x, h) ~ p}[sqrt(q(h | x) / p(x, h)) * E_{h' ~ q(. | x)}[sqrt(p(x, h') / q(h' | x))]]

Training ascends log p~*(x), itself a lower bound on log p*(x) since log Z <= 0. Its gradient is
grad log p~*(x) = sum_h pi(h | x) grad (log p(x, h) + log q(h | x)), pi(h | x) proportional to sqrt(p q); with the
self-normalised weights w~_k = softmax_k(log w_k / 2) (means over the batch):

    p:  sum_k w~_k grad log p(x, h_k)
    q:  sum_k (w~_k - 1 / K) grad log q(h_k | x)   (1 / K sum_k grad log q has expectation 0: a baseline)

No sleep phase. The derivation, and its check on a model small enough to enumerate, are in docs/bihm.md.
"""
import keras
import numpy as np
import tensorflow as tf

from zoo import checks, viz
from zoo.models.helmholtz import HelmholtzMachine


#: pixels the chain updates together (a row of an MNIST image): one joint proposal for hundreds of pixels is
#: almost never accepted
BLOCK_SIZE = 28


@keras.saving.register_keras_serializable(package="zoo")
class BiHM(HelmholtzMachine):
    """A bidirectional Helmholtz machine trained through `model.fit` on the bound log p~*(x).

    Args as `HelmholtzMachine` (layers from the data up, p and q layer types, `k` samples from q per example
    in training, nade_hidden, n_visible, seed), without `q_update`: p and q both follow the one objective.
    Same layout of the weights: `p_layers_[i]` from the top prior down, `q_layers_[i]` from q(h_1 | x) up.
    """

    def __init__(self, layers=(200, 200, 10), p_layers="sbn", q_layers="sbn", k=10, nade_hidden=None,
                 n_visible=None, seed=None, **kwargs):
        kwargs.pop("q_update", None)
        super().__init__(layers, p_layers=p_layers, q_layers=q_layers, k=k, q_update="wake",
                         nade_hidden=nade_hidden, n_visible=n_visible, seed=seed, **kwargs)

    def get_config(self):
        config = super().get_config()
        config.pop("q_update")
        return config

    # -- the objective --------------------------------------------------------------------------------------
    @staticmethod
    def bound_and_ess(log_w):
        """Per example, from log weights (k, batch): the K-sample estimate of log p~*(x),
        2 (logsumexp_k (log w_k / 2) - log K), and the effective sample size of the weights sqrt(w_k)."""
        half_bound, ess = HelmholtzMachine.bound_and_ess(log_w / 2)
        return 2 * half_bound, ess

    def bihm_losses(self, x, seed):
        """The two surrogate losses whose gradients are the updates of p and q (means over the batch), and the
        log weights (k, batch)."""
        hidden, log_q = self.sample_q(x, self.k, seed)
        log_p = self.log_joint(x, hidden)
        log_w = log_p - log_q
        weights = tf.stop_gradient(tf.nn.softmax(log_w / 2, axis=0))
        baseline = 1.0 / tf.cast(tf.shape(log_w)[0], log_w.dtype)
        p_loss = -tf.reduce_mean(tf.reduce_sum(weights * log_p, 0))
        q_loss = -tf.reduce_mean(tf.reduce_sum((weights - baseline) * log_q, 0))
        return p_loss, q_loss, tf.stop_gradient(log_w)

    def training_loss(self, x, seed):
        p_loss, q_loss, log_w = self.bihm_losses(x, seed)
        return p_loss + q_loss, log_w

    # -- the normaliser -------------------------------------------------------------------------------------
    def log_partition_weights(self, n, k, seed):
        """(n,): for n ancestral samples (x, h) ~ p and k samples h' ~ q(. | x) each, the log of
        sqrt(q(h | x) / p(x, h)) * mean_k sqrt(p(x, h'_k) / q(h'_k | x)), whose expectation is Z."""
        n = checks.check_positive_int(n, "n")
        k = checks.check_positive_int(k, "k")
        return self._log_partition_weights(tf.constant(n), tf.constant(k), tf.convert_to_tensor(seed, tf.int32))

    @tf.function(reduce_retracing=True)
    def _log_partition_weights(self, n, k, seed):
        seed_p, seed_q = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        x, hidden, _ = self.dream(n, seed_p)
        outer = (self.log_q(x, hidden) - self.log_joint(x, hidden)) / 2
        inner, _ = self.bound_and_ess(tf.transpose(self._log_weights(x, k, seed_q)))
        return outer + inner / 2

    # -- sampling from p* -----------------------------------------------------------------------------------
    # The chain runs on an augmented state (x, h, h'), two copies of the latent stack, with target
    #     pi(x, h, h') proportional to sqrt(p(x, h) q(h | x)) sqrt(p(x, h') q(h' | x)),
    # whose x-marginal is (sum_h sqrt(p q))^2 = p~*(x), proportional to p*. One step updates x, then every layer
    # of h and of h', each block by conditional importance resampling (i-SIR): the current value and m - 1
    # candidates from a proposal that does not depend on it, one of the m kept with probability proportional to
    # pi / proposal. That leaves pi exactly invariant whatever the proposal; the proposal, the even mixture of the
    # block's p and q conditionals given the current neighbours (without their autoregressive parts), decides
    # only how fast the chain mixes.
    def _block_update(self, current, logits_a, logits_b, free, log_pi, m, seed):
        """One i-SIR update of a block: `current` (n, units); the proposal's two components' logits (n, units);
        `free` (units or n x units) the units that move (the others keep their values); log_pi(values) the log
        target for values (..., n, units). Returns the new block (n, units)."""
        seed_pick, seed_draw, seed_keep = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
        n_units = tf.shape(current)
        pick = tf.random.stateless_uniform(tf.concat([[m - 1], n_units[:-1], [1]], 0), seed_pick) < 0.5
        logits = tf.where(pick, logits_a[None], logits_b[None])
        draws = tf.cast(tf.random.stateless_uniform(tf.concat([[m - 1], n_units], 0), seed_draw) < tf.sigmoid(logits),
                        current.dtype)
        values = tf.concat([current[None], free * draws + (1 - free) * current[None]], 0)  # (m, n, units)

        def log_component(logit):
            return tf.reduce_sum(free * (values * logit - tf.nn.softplus(logit)), -1)

        log_proposal = tf.reduce_logsumexp(tf.stack([log_component(logits_a), log_component(logits_b)]), 0)
        log_weights = log_pi(values) - log_proposal  # (m, n)
        index = tf.random.stateless_categorical(tf.transpose(log_weights), 1, seed_keep)[:, 0]
        return tf.gather(tf.transpose(values, [1, 0, 2]), index, batch_dims=1)

    def _update_x(self, x, stacks, known_mask, block_size, m, seed):
        """x's free pixels (known_mask 0), block after block of `block_size` consecutive pixels: a joint proposal
        for hundreds of pixels is almost never accepted, one for a few dozen is."""
        bottom, first_q = self.p_layers_[-1], self.q_layers_[0]
        logits = [bottom._affine(stack[0], None) for stack in stacks]
        if not bottom.autoregressive and first_q.kind in ("sbn", "darn"):
            return self._update_x_by_blocks(x, stacks, logits, known_mask, block_size, m, seed)
        blocks = self._pixel_blocks(block_size)

        def log_pi(values):  # the factors of pi that involve x: p(x | h_1) q(h_1 | x) of each copy
            return sum(bottom.log_prob(values, stack[0]) + first_q.log_prob(stack[0], values) for stack in stacks) / 2

        def body(i, x):
            free = (1.0 - known_mask) * blocks[i]
            return i + 1, self._block_update(x, logits[0], logits[1], free, log_pi, m,
                                             tf.random.experimental.stateless_fold_in(seed, i))

        return tf.while_loop(lambda i, _: i < tf.shape(blocks)[0], body, (tf.constant(0), x))[1]

    def _update_x_by_blocks(self, x, stacks, logits, known_mask, block_size, m, seed):
        """`_update_x` for a factorised p(x | h_1) and a q(h_1 | x) that sees x through a kernel: the factors of pi
        that change with a block are its pixels' terms of p(x | h_1) and q(h_1 | x), whose logits move by the
        block's change times the kernel's rows, so a block costs its own width, not the image's."""
        first_q, width = self.q_layers_[0], self.n_visible
        bases = [first_q.logits(stack[0], x) for stack in stacks]  # q(h_1 | x)'s logits of each copy, kept current

        def update(x, bases, start, size, seed):
            current, kernel = x[:, start:start + size], first_q.kernel[start:start + size]
            block_logits = [l[:, start:start + size] for l in logits]

            def log_pi(values):
                total = 0.0
                for stack, base, l in zip(stacks, bases, block_logits):
                    q_logits = base + tf.tensordot(values - current, kernel, 1)
                    total += (tf.reduce_sum(values * l - tf.nn.softplus(l), -1)
                              + tf.reduce_sum(stack[0] * q_logits - tf.nn.softplus(q_logits), -1))
                return total / 2

            free = 1.0 - known_mask[..., start:start + size]
            new = self._block_update(current, block_logits[0], block_logits[1], free, log_pi, m, seed)
            bases = [base + tf.matmul(new - current, kernel) for base in bases]
            x = tf.ensure_shape(tf.concat([x[:, :start], new, x[:, start + size:]], 1), x.shape)
            return x, bases

        full, rest = divmod(width, block_size)

        def body(i, x, bases):
            return (i + 1, *update(x, bases, i * block_size, block_size,
                                   tf.random.experimental.stateless_fold_in(seed, i)))

        _, x, bases = tf.while_loop(lambda i, *_: i < full, body, (tf.constant(0), x, bases))
        if rest:
            x, _ = update(x, bases, full * block_size, rest, tf.random.experimental.stateless_fold_in(seed, full))
        return x

    def _gibbs_step(self, x, stacks, known_mask, block_size, m, seed):
        """One sweep: x (its free pixels, where known_mask is 0, in blocks), then each layer of each latent copy."""
        seeds = tf.random.experimental.stateless_split(seed, 1 + 2 * len(self.layer_sizes))
        x = self._update_x(x, stacks, known_mask, block_size, m, seeds[0])
        n_layers, new_stacks = len(self.layer_sizes), []
        for c, stack in enumerate(stacks):
            stack = list(stack)
            for l in range(n_layers):
                below = x if l == 0 else stack[l - 1]
                above = stack[l + 1] if l + 1 < n_layers else None
                q_logits = self.q_layers_[l]._affine(below, None)
                p_layer = self.p_layers_[n_layers - 1 - l]  # p(h_l | h_{l+1}); the prior for the top layer
                p_logits = p_layer._affine(above, tf.shape(q_logits)[:-1])

                def log_pi(values, below=below, above=above, p_layer=p_layer, l=l):
                    # the four factors of sqrt(p q) that involve h_l: p(h_l | h_l+1), p(h_l-1 | h_l), q(h_l | h_l-1),
                    # q(h_l+1 | h_l); the others are the same for every candidate
                    terms = (p_layer.log_prob(values, above) + self.p_layers_[n_layers - l].log_prob(below, values)
                             + self.q_layers_[l].log_prob(values, below))
                    if above is not None:
                        terms += self.q_layers_[l + 1].log_prob(above, values)
                    return terms / 2

                stack[l] = self._block_update(stack[l], q_logits, p_logits, 1.0, log_pi, m,
                                              seeds[1 + c * n_layers + l])
            new_stacks.append(stack)
        return x, new_stacks

    @tf.function(reduce_retracing=True)
    def _run_chain(self, x, stacks, known_mask, block_size, n_steps, m, seed):
        def body(i, x, stacks):
            x, stacks = self._gibbs_step(x, stacks, known_mask, block_size, m,
                                         tf.random.experimental.stateless_fold_in(seed, i))
            return i + 1, x, stacks

        _, x, stacks = tf.while_loop(lambda i, *_: i < n_steps, body, (tf.constant(0), x, stacks))
        return x, stacks

    def _pixel_blocks(self, block_size):
        """(B, n_visible) masks of consecutive blocks of `block_size` pixels (a row of an MNIST image for 28)."""
        block_size = checks.check_positive_int(block_size, "block_size")
        index = np.arange(self.n_visible) // block_size
        return tf.constant((index[None, :] == np.arange(index.max() + 1)[:, None]).astype(np.float32))

    def _chains(self, x, stacks, known_mask, n_steps, n_candidates, seed, frames=0, block_size=BLOCK_SIZE):
        """Run the chains `n_steps` sweeps from (x, stacks); returns the final x, its picture (the mean of
        p(x | h_1) on the free pixels for an SBN bottom layer, the drawn x otherwise) and, if frames > 0, that many
        pictures along the way (the first one the start)."""
        n_steps = checks.check_positive_int(n_steps, "n_steps")
        n_candidates = checks.check_positive_int(n_candidates, "n_candidates", minimum=2)
        known_mask = tf.convert_to_tensor(known_mask, self.compute_dtype)
        block_size = checks.check_positive_int(block_size, "block_size")

        def picture(x, stacks):
            return self._picture(x, stacks, known_mask).numpy()

        frames = min(checks.check_positive_int(frames, "frames", minimum=0), n_steps + 1)
        pictures = [picture(x, stacks)] if frames else []
        segments = [n_steps] if frames < 2 else [len(part) for part in np.array_split(np.arange(n_steps), frames - 1)]
        for i, steps in enumerate(segments):
            if steps:
                x, stacks = self._run_chain(x, stacks, known_mask, block_size, tf.constant(steps),
                                            tf.constant(n_candidates),
                                            tf.random.experimental.stateless_fold_in(seed, i))
            if frames:
                pictures.append(picture(x, stacks))
        return x, picture(x, stacks), pictures

    def _picture(self, x, stacks, known_mask):
        """What the chains show: the known pixels and, on the others, the mean of p(x | h_1) for an SBN bottom
        layer (the reference's pictures), or the drawn x for an autoregressive one."""
        bottom = self.p_layers_[-1]
        if bottom.autoregressive:
            return x
        return known_mask * x + (1 - known_mask) * bottom.mean(stacks[0][0])

    def _start_from_p(self, n, seed):
        """The chains' start for sampling: ancestral samples (x, h) of p, and h' ~ q(. | x)."""
        x, hidden, _ = self.dream(n, seed)
        return x, [list(hidden), self._start_latents(x, seed)[1]]

    def _start_latents(self, x, seed):
        """Two copies of the latent stack drawn from q(. | x)."""
        stacks = []
        for c in range(2):
            hidden, _ = self.sample_q(x, 1, tf.random.experimental.stateless_fold_in(seed, c))
            stacks.append([h[0] for h in hidden])
        return stacks

    def _seed(self, seed):
        return (self._next_seed() if seed is None
                else tf.constant([checks.check_positive_int(seed, "seed", minimum=0), 0], tf.int32))

    def sample(self, n, seed=None, binary=False, n_steps=250, n_candidates=10, frames=0, block_size=BLOCK_SIZE):
        """`n` samples from p*: ancestral samples (x, h) of p, h' ~ q(. | x), then `n_steps` sweeps of the chain
        that leaves p* exactly invariant (`n_candidates` per block update, x in blocks of `block_size` pixels).
        Returns the pictures (the mean of p(x | h_1) for an SBN bottom layer) or, binary=True, the drawn x, shape
        (n, n_visible); with frames > 0, also a list of that many pictures along the chains (for an animation)."""
        if not self.built:
            raise ValueError("the model has no weights yet: fit it or give n_visible")
        n = checks.check_positive_int(n, "n")
        seed = self._seed(seed)
        seed_start, seed_chain = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        x, stacks = self._start_from_p(tf.constant(n), seed_start)
        x, picture, pictures = self._chains(x, stacks, tf.zeros([self.n_visible]), n_steps, n_candidates,
                                            seed_chain, frames, block_size)
        result = x.numpy() if binary else picture
        return (result, pictures) if frames else result

    def sample_sir(self, n, n_candidates=100, k=100, seed=None, binary=False):
        """`n` approximate samples of p* by sampling-importance-resampling from p (the reference code's method):
        for each, `n_candidates` ancestral samples x_m of p, one kept with probability proportional to
        p~*(x_m) / p(x_m), both estimated with `k` samples of q. Biased for finite n_candidates and k (the
        chain of `sample` is exact); returned like `sample`."""
        if not self.built:
            raise ValueError("the model has no weights yet: fit it or give n_visible")
        n = checks.check_positive_int(n, "n")
        m = checks.check_positive_int(n_candidates, "n_candidates")
        k = checks.check_positive_int(k, "k")
        seed_p, seed_q, seed_pick = tf.unstack(tf.random.experimental.stateless_split(self._seed(seed), 3))
        x, pictures = self._compiled_dream(tf.constant(n * m), seed_p)
        rows = max(1, 2 ** 16 // k)  # candidates per pass: k samples of q each, 2^16 in memory at a time
        log_ratio = []
        for i, start in enumerate(range(0, n * m, rows)):
            log_w = tf.transpose(self._log_weights(x[start:start + rows], tf.constant(k),
                                                   tf.random.experimental.stateless_fold_in(seed_q, i)))
            log_p = HelmholtzMachine.bound_and_ess(log_w)[0]
            log_ratio.append(self.bound_and_ess(log_w)[0] - log_p)  # log p~*(x) / p(x)
        index = tf.random.stateless_categorical(tf.reshape(tf.concat(log_ratio, 0), (n, m)), 1, seed_pick)[:, 0]
        chosen = index + tf.range(n, dtype=index.dtype) * m
        return tf.gather(x if binary else pictures, chosen).numpy()

    def ancestral_sample(self, n, seed=None, binary=False):
        """Samples from p alone (not p*): the Helmholtz machine's `sample`."""
        return super().sample(n, seed=seed, binary=binary)

    def inpaint(self, x, mask, n_chains=10, n_steps=250, n_candidates=10, seed=None, binary=False, frames=0,
                block_size=BLOCK_SIZE):
        """Complete the images `x` (n, n_visible) where `mask` is 0, keeping the pixels where it is 1: per image,
        `n_chains` chains start from the known pixels (the unknown ones 0) with latent states from q and run the
        kernel of `sample` over the unknown pixels and the latents, which leaves p*(unknown | known) exactly
        invariant. Returns (n, n_chains, n_visible) pictures or binary completions (and frames, as `sample`).
        `mask` is (n_visible,) or (n, n_visible), binary, with at least one unknown pixel."""
        x = self.validate_data(x, "x")
        mask = np.asarray(mask, np.float32)
        if mask.shape not in ((self.n_visible,), x.shape):
            raise ValueError(f"mask must have shape ({self.n_visible},) or {x.shape} (one per image), got {mask.shape}")
        if not np.all((mask == 0) | (mask == 1)):
            raise ValueError("mask must be binary: 1 for a known pixel, 0 for one to fill in")
        if np.any(mask.reshape(-1, self.n_visible).min(axis=1) == 1):
            raise ValueError("mask has no unknown pixel (no 0) for some image: nothing to inpaint")
        n_chains = checks.check_positive_int(n_chains, "n_chains")
        mask = np.broadcast_to(mask, x.shape)
        known_mask = np.repeat(mask, n_chains, axis=0)
        start = np.repeat(x * mask, n_chains, axis=0)
        seed = self._seed(seed)
        seed_start, seed_chain = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        start = tf.constant(start)
        stacks = self._start_latents(start, seed_start)
        x_final, picture, pictures = self._chains(start, stacks, known_mask, n_steps, n_candidates, seed_chain, frames,
                                                  block_size)
        shape = (len(x), n_chains, self.n_visible)
        result = (x_final.numpy() if binary else picture).reshape(shape)
        return (result, [p.reshape(shape) for p in pictures]) if frames else result

    def serving_endpoints(self):
        """{name: (function, input_signature)} for a SavedModel that loads without zoo: sample(n, seed, n_steps)
        from p* (the chain of `sample`, 10 candidates per block, the pictures), log_p_tilde(x, k, seed), the
        K-sample estimate of log p~*(x) (log p*(x) needs log Z: see zoo eval), and encode(x) for SBN q layers."""
        x_spec = tf.TensorSpec([None, self.n_visible], tf.float32, name="x")

        def sample(n, seed, n_steps):
            seed_start, seed_chain = tf.unstack(tf.random.experimental.stateless_split(tf.stack([seed, 0]), 2))
            x, stacks = self._start_from_p(n, seed_start)
            known_mask = tf.zeros([self.n_visible])
            x, stacks = self._run_chain(x, stacks, known_mask, BLOCK_SIZE, n_steps,
                                        tf.constant(10), seed_chain)
            return {"samples": self._picture(x, stacks, known_mask)}

        def log_p_tilde(x, k, seed):
            log_w = self._log_weights(x, k, tf.stack([seed, 0]))
            return {"log_p_tilde": self.bound_and_ess(tf.transpose(log_w))[0]}

        endpoints = {"sample": (sample, [tf.TensorSpec([], tf.int32, name="n"), tf.TensorSpec([], tf.int32, name="seed"),
                                         tf.TensorSpec([], tf.int32, name="n_steps")]),
                     "log_p_tilde": (log_p_tilde, [x_spec, tf.TensorSpec([], tf.int32, name="k"),
                                                   tf.TensorSpec([], tf.int32, name="seed")])}
        if self.q_kind == "sbn":
            endpoints["encode"] = (lambda x: {"features": self(x)}, [x_spec])
        return endpoints

    # -- what TensorBoard shows (zoo.training.TensorBoardLogger) ----------------------------------------------
    def summary_scalars(self, x, k=100, z_samples=10000):
        """The Helmholtz machine's per-layer statistics (`layers/`), and under `bihm/`: the bound log p~*(x) at
        K = 1, 10 and `k` from one draw of k samples, p's own k-sample bound, the Bhattacharyya distance between
        p(h | x) and q(h | x) that the bound pays for, D_B = (log p(x) - log p~*(x)) / 2 (from the two k-sample
        estimates), and log Z from `z_samples` samples of p."""
        scalars = super().summary_scalars(x)
        x = tf.convert_to_tensor(self.validate_data(x), self.compute_dtype)
        log_w = tf.transpose(self.log_importance_weights(x, k, tf.constant([0, 1])))  # (k, batch)
        for n in sorted({1, min(10, k), k}):
            scalars[f"bihm/bound_{n}"] = float(tf.reduce_mean(self.bound_and_ess(log_w[:n])[0]))
        scalars[f"bihm/p_bound_{k}"] = float(tf.reduce_mean(HelmholtzMachine.bound_and_ess(log_w)[0]))
        scalars["bihm/bhattacharyya"] = (scalars[f"bihm/p_bound_{k}"] - scalars[f"bihm/bound_{k}"]) / 2
        log_z = self.log_partition_weights(z_samples, 10, tf.constant([0, 2]))
        scalars["bihm/log_z"] = float(tf.reduce_logsumexp(log_z) - np.log(z_samples))
        return scalars

    def summary_images(self, x):
        """Samples of p* after 50 sweeps, ancestral samples of p, and inpainting of the lower half of the first
        10 images of x (three chains each, 50 sweeps)."""
        x = self.validate_data(x)[:10]
        side = int(round(np.sqrt(self.n_visible)))
        images = {"samples": (self.sample(100, seed=0, n_steps=50), False),
                  "ancestral_samples_of_p": (self.ancestral_sample(100, seed=0), False)}
        if side * side == self.n_visible:
            mask = viz.inpainting_mask("bottom", (side, side))
            completions = self.inpaint(x, mask, n_chains=3, n_steps=50, seed=0)
            # a row per image: it, its known half, three completions
            images["inpainting"] = (viz.inpainting_rows(x, mask, completions), False, 5)
        return images
