"""Cheap training metrics for models whose steps are dominated by a few matrix products."""
import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="zoo")
class RunningMeans(keras.metrics.Metric):
    """Running means of several per-example quantities, kept in one vector: a single update per step.

    Keras' `Mean` costs a dozen small ops per metric per step, which is a tenth of an RBM 784-500 update on
    this CPU; `result()` returns {name: mean}, which Keras merges into the logs.
    """

    def __init__(self, names, name="running_means", **kwargs):
        super().__init__(name=name, **kwargs)
        self.names = list(names)
        self.total = self.add_variable(shape=(len(self.names),), initializer="zeros", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, values):
        """values: one tensor of shape (batch,) per name, in order."""
        stacked = tf.stack([tf.cast(v, self.total.dtype) for v in values], axis=1)
        self.total.assign_add(tf.reduce_sum(stacked, axis=0))
        self.count.assign_add(tf.cast(tf.shape(stacked)[0], self.count.dtype))

    def result(self):
        means = self.total / tf.maximum(self.count, 1.0)
        return {name: means[i] for i, name in enumerate(self.names)}

    def get_config(self):
        return {**super().get_config(), "names": self.names}
