"""What every family's `fit` shares: checked arrays become the zoo's own tf.data pipeline."""
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
