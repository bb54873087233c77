"""What the families share: checked arrays become the zoo's own tf.data pipeline (`fit_inputs`), the bound and ESS of
log weights, compiled state restored through `compile`, and the hybrids' semi-supervised classifier API."""
import keras
import numpy as np
import tensorflow as tf

from zoo import checks
from zoo import data as data_lib


def bound_and_ess(log_w):
    """Per example, from log importance weights (k, batch): the K-sample bound log mean_k w_k that the directed
    models train on, and the weights' effective sample size (sum w)^2 / sum w^2."""
    import tensorflow as tf

    k = tf.cast(tf.shape(log_w)[0], log_w.dtype)
    bound = tf.reduce_logsumexp(log_w, 0) - tf.math.log(k)
    return bound, tf.exp(2 * tf.reduce_logsumexp(log_w, 0) - tf.reduce_logsumexp(2 * log_w, 0))


@keras.saving.register_keras_serializable(package="zoo")
class HoldThenDecay(keras.optimizers.schedules.LearningRateSchedule):
    """`lr` for the first `hold_steps` updates, then linearly to `lr_final` over `decay_steps` (the reference
    GAN recipes' schedule: constant, then to 0 over the last third). Here, beside the models, not in
    `zoo.training`: a compiled model's file names it, and loading the model must find it."""

    def __init__(self, lr, lr_final, hold_steps, decay_steps):
        self.lr, self.lr_final = float(lr), float(lr_final)
        self.hold_steps, self.decay_steps = int(hold_steps), int(decay_steps)

    def __call__(self, step):
        progress = (tf.cast(step, tf.float32) - self.hold_steps) / max(self.decay_steps, 1)
        progress = tf.clip_by_value(progress, 0.0, 1.0)
        return self.lr + (self.lr_final - self.lr) * progress

    def get_config(self):
        return {"lr": self.lr, "lr_final": self.lr_final, "hold_steps": self.hold_steps,
                "decay_steps": self.decay_steps}


def next_seed(generator):
    """The next stateless int32 seed of shape (2,) from a Keras SeedGenerator. In a step spread over N > 1
    replicas it is folded with the replica's index, so that the replicas' draws for their shares of the batch (and
    of the persistent chains) are independent, not copies of one another."""
    seed = tf.cast(generator.next(), tf.int32)
    context = tf.distribute.get_replica_context()
    if context is not None and context.num_replicas_in_sync > 1:
        seed = tf.random.experimental.stateless_fold_in(seed, context.replica_id_in_sync_group)
    return seed


def check_chains_split(n_chains):
    """At compile time, under the model's strategy: `n_chains` persistent chains split evenly over its replicas
    (`replica_rows`), or ValueError (raised here, in one line, rather than inside the traced step)."""
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    if n_chains % replicas:
        raise ValueError(f"{n_chains} persistent chains do not split over {replicas} replicas: choose a number of "
                         f"chains that is a multiple of {replicas}")


def replica_rows(chains):
    """This replica's share of persistent chains (all of them outside a step spread over replicas): of N
    replicas, replica r owns rows [r n / N, (r + 1) n / N), so that the chains are split, not duplicated."""
    context = tf.distribute.get_replica_context()
    replicas = 1 if context is None else context.num_replicas_in_sync
    if replicas == 1:
        return tf.convert_to_tensor(chains)
    n = int(chains.shape[0])
    check_chains_split(n)
    share = n // replicas
    return tf.convert_to_tensor(chains)[context.replica_id_in_sync_group * share:][:share]


def gather_replica_rows(rows):
    """The inverse of `replica_rows`: every replica's share, in replica order (the same tensor on every
    replica, which each assigns to its copy of the chains)."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return rows
    return context.all_gather(rows, axis=0)


def replica_tempered_rows(chains, n_temperatures):
    """This replica's share of chains stored by temperature (rows [k n, (k + 1) n) at the k-th), by temperature:
    each replica tempers its share of the chains at every temperature (`replica_rows` on the chain index)."""
    return _by_temperature(replica_rows(_by_chain(chains, n_temperatures)), chains.shape[-1])


def gather_tempered_rows(rows, n_temperatures):
    """The inverse of `replica_tempered_rows`: every replica's share, stored by temperature."""
    return _by_temperature(gather_replica_rows(_by_chain(rows, n_temperatures)), rows.shape[-1])


def _by_chain(rows, n_temperatures):
    """(t n, width) rows stored by temperature -> (n, t, width), indexed by chain first."""
    return tf.transpose(tf.reshape(rows, (n_temperatures, -1, rows.shape[-1])), [1, 0, 2])


def _by_temperature(by_chain, width):
    """The inverse of `_by_chain` (rows of `width`, known statically: an all-gather loses it)."""
    return tf.reshape(tf.transpose(by_chain, [1, 0, 2]), (-1, width))


def replica_mean(value):
    """The mean of `value` over the replicas of a step spread over N > 1 of them (`value` itself otherwise): a
    statistic every replica must share, such as a centering offset, so that the replicas stay copies."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return value
    return context.all_reduce("MEAN", value)


def move_offsets(offsets, batch_means, rate, iterations):
    """Centering offsets (variables) one step of `rate` towards this batch's means, shared by the replicas; the
    first step of a run (the optimizer's `iterations` 0) sets them to the means."""
    rate = tf.where(iterations == 0, 1.0, rate)
    for offset, mean in zip(offsets, batch_means):
        offset.assign((1.0 - rate) * offset + rate * replica_mean(mean))


def centered_gradients(kernel_grads, bias_grads, offsets):
    """The centered gradient (Montavon & Mueller 2012; Melchior et al. 2016) of a chain of layers x_0 - x_1 - ...
    (kernel W_l between x_l and x_{l+1}, bias b_l of x_l), given the plain gradients g: the gradient of the same
    model written with x_l - o_l in place of x_l, its step mapped back to the plain parameters (b_l = b'_l -
    W_l o_{l+1} - W_{l-1}^T o_{l-1}):

        G_{W_l} = g_{W_l} - g_{b_l} o_{l+1}^T - o_l g_{b_{l+1}}^T,
        G_{b_l} = g_{b_l} - G_{W_l} o_{l+1} - G_{W_{l-1}}^T o_{l-1}.

    Linear in g: summing the replicas' gradients commutes with it when they share the offsets (`replica_mean`).
    Returns (kernel gradients, bias gradients)."""
    kernels = [g - bias_grads[l][:, None] * offsets[l + 1][None, :] - offsets[l][:, None] * bias_grads[l + 1][None, :]
               for l, g in enumerate(kernel_grads)]
    biases = []
    for l, g in enumerate(bias_grads):
        if l < len(kernels):
            g = g - tf.linalg.matvec(kernels[l], offsets[l + 1])
        if l > 0:
            g = g - tf.linalg.matvec(kernels[l - 1], offsets[l - 1], transpose_a=True)
        biases.append(g)
    return kernels, biases


def in_batches(function, x, batch_size=2000):
    """`function` of `batch_size` rows of x at a time, its NumPy results concatenated: memory bounded by a batch
    however many rows x has."""
    return np.concatenate([np.asarray(function(x[i:i + batch_size])) for i in range(0, len(x), batch_size)])


class RestoresCompiledState:
    """`compile_from_config` for the zoo's models: a `.keras` file's compiled state (the optimizer and its
    variables) restored through the model's own `compile`, whose defaults differ by family."""

    def compile_from_config(self, config):
        import keras

        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)


def fit_inputs(model, x, batch_size, validation_data, kwargs, compact=True):
    """(x, batch_size, validation_data) for keras' fit: arrays checked by `model.validate_data`, the visible
    biases started by `model.prepare_visible_bias`, then batched by `zoo.data.batches` (Keras' array adapter
    costs about 0.5 ms per step here, as much as a sixth of an RBM 784-500 update: benchmarks/bench_rbm.py);
    compact: the checked binary data as uint8, a quarter of the bytes to copy and gather per epoch. Pops
    `shuffle` from kwargs (a pipeline shuffles itself) and compiles the model if it is not."""
    if isinstance(x, (np.ndarray, list)) or hasattr(x, "numpy"):
        x = model.validate_data(x)
        batch = 32 if batch_size is None else checks.check_positive_int(batch_size, "batch_size")
        if batch > len(x):
            raise ValueError(f"batch_size {batch} is larger than the data ({len(x)} examples)")
        model.prepare_visible_bias(x)
        if kwargs.get("validation_split"):
            raise ValueError("validation_split is not supported: pass validation_data")
        x = data_lib.batches(x.astype(np.uint8) if compact else x, batch, shuffle=kwargs.pop("shuffle", True))
        batch_size = None
    if isinstance(x, tf.data.Dataset):
        kwargs["shuffle"] = False
    if isinstance(validation_data, (np.ndarray, list)):
        validation_data = model.validate_data(validation_data, "validation_data")
    if getattr(model, "optimizer", None) is None:  # Keras sets it only in compile
        model.compile()
    return x, batch_size, validation_data


UNLABELLED = -1  # the label of an unlabelled row in a semi-supervised batch


def masked_mean(mask, values):
    """The mean of `values` over the rows where `mask` (0/1 floats) is 1; 0 without any. In a step spread over
    N > 1 replicas, whose shares of a batch hold different numbers of masked rows, it is N times this replica's
    part of the mean over every replica's masked rows: a loss divided by N and summed over the replicas (as the
    optimizer sums their gradients) is then the mean over the global batch's masked rows."""
    total, count = tf.reduce_sum(mask * values), tf.reduce_sum(mask)
    context = tf.distribute.get_replica_context()
    if context is not None and context.num_replicas_in_sync > 1:
        count = context.all_reduce("SUM", tf.stop_gradient(count)) / context.num_replicas_in_sync
    return total / tf.where(count > 0, count, tf.ones_like(count))  # no masked rows: total is 0


class SemiSupervisedClassifier:
    """What the hybrids share as classifiers trained on batches (x, y) whose unlabelled rows have y = -1: labels
    checked, batches unpacked, `fit` on arrays or on a pipeline, and p(y | x) from `call` (the class logits) in
    NumPy. A subclass sets `n_classes` and `validate_data`; `default_batch_size` is `fit`'s on arrays."""

    default_batch_size = 32

    def validate_labels(self, y, n, name="y"):
        """`y` as int64 labels of shape (n,) in [0, n_classes), or -1 for unlabelled rows; ValueError otherwise."""
        return checks.check_labels(y, n, self.n_classes, name, unlabelled=UNLABELLED)

    def _unpack(self, data):
        """(x, y) of a batch as the model's float dtype and int32 labels, every row unlabelled without labels."""
        import keras

        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        if y is None:
            y = tf.fill(tf.shape(x)[:1], UNLABELLED)
        return tf.cast(x, self.compute_dtype), tf.cast(y, tf.int32)

    def labelled_loss_and_accuracy(self, logits, y):
        """(mean cross-entropy -log p(y | x), accuracy) of the class `logits` over the labelled rows of `y` (int32,
        -1 unlabelled); both 0 without any labelled row."""
        labelled = tf.cast(y >= 0, logits.dtype)
        cross_entropy = tf.nn.sparse_softmax_cross_entropy_with_logits(tf.maximum(y, 0), logits)
        correct = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), y), logits.dtype)
        return masked_mean(labelled, cross_entropy), masked_mean(labelled, correct)

    def fit(self, x=None, y=None, batch_size=None, epochs=1, validation_data=None, **kwargs):
        """Keras `fit` on a tf.data pipeline of (x, y) batches (`zoo.data.semi_supervised_batches`), or on arrays
        x and y (-1 for unlabelled rows), checked first and batched in a fresh order every epoch."""
        if isinstance(x, tf.data.Dataset):
            kwargs["shuffle"] = False  # a pipeline orders itself
        elif x is not None:
            x = self.validate_data(x)
            y = self.validate_labels(np.full(len(x), UNLABELLED) if y is None else y, len(x))
            batch = self.default_batch_size if batch_size is None else checks.check_positive_int(batch_size,
                                                                                                "batch_size")
            x, y, batch_size = data_lib.batches((x, y), batch, shuffle=kwargs.pop("shuffle", True)), None, None
            kwargs["shuffle"] = False
        if isinstance(validation_data, tuple) and len(validation_data) == 2:
            vx, vy = validation_data
            validation_data = (self.validate_data(vx, "validation x"),
                               self.validate_labels(vy, len(vx), "validation y"))
        if getattr(self, "optimizer", None) is None:
            self.compile()
        return super().fit(x, y, batch_size=batch_size, epochs=epochs, validation_data=validation_data, **kwargs)

    def predict_probabilities(self, x, batch_size=2000):
        """p(y | x) of each row of x, (n, n_classes) (NumPy in, NumPy out)."""
        return in_batches(lambda rows: tf.nn.softmax(self(rows)), self.validate_data(x), batch_size)

    def predict_classes(self, x, batch_size=2000):
        """The predicted class of each row of x (NumPy in, NumPy out)."""
        return np.argmax(self.predict_probabilities(x, batch_size), axis=-1)

    def accuracy(self, x, y):
        """The fraction of rows of x whose predicted class is y."""
        y = self.validate_labels(y, len(x))
        return float(np.mean(self.predict_classes(x) == y))
