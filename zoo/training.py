"""Training helpers shared by every model: schedules and callbacks (TensorBoard scalars, images,
histograms; free-energy gap; NaN guard)."""
import os

import keras
import numpy as np
import tensorflow as tf

from zoo import checks, viz


class GibbsStepsSchedule(keras.callbacks.Callback):
    """Set the model's Gibbs steps per update (`cd_k`) at the start of each epoch: k = schedule(epoch)."""

    def __init__(self, schedule):
        super().__init__()
        if not callable(schedule):
            raise ValueError("schedule must be a callable epoch -> number of Gibbs steps")
        self.schedule = schedule

    def on_epoch_begin(self, epoch, logs=None):
        k = checks.check_positive_int(self.schedule(epoch), "Gibbs steps from the schedule")
        self.model.cd_k.assign(k)


def linear_steps(start, end, epochs):
    """k rising linearly from `start` at epoch 0 to `end` at the last epoch."""
    def schedule(epoch):
        frac = epoch / max(epochs - 1, 1)
        return int(round(start + frac * (end - start)))
    return schedule


class FreeEnergyGap(keras.callbacks.Callback):
    """Log `free_energy_gap` = mean F(validation) - mean F(train) on fixed samples (Hinton's overfitting
    monitor: it grows when the model starts to prefer the training images)."""

    def __init__(self, train_sample, validation_sample):
        super().__init__()
        self.train_sample = tf.constant(train_sample, tf.float32)
        self.validation_sample = tf.constant(validation_sample, tf.float32)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            gap = tf.reduce_mean(self.model.free_energy(self.validation_sample)) - \
                tf.reduce_mean(self.model.free_energy(self.train_sample))
            logs["free_energy_gap"] = float(gap)


class RaiseOnNaN(keras.callbacks.Callback):
    """Stop training with a clear error as soon as a metric becomes NaN or infinite."""

    def on_epoch_end(self, epoch, logs=None):
        bad = {k: v for k, v in (logs or {}).items() if not np.isfinite(np.asarray(v, np.float64)).all()}
        if bad:
            self.model.stop_training = True
            raise FloatingPointError(f"training diverged at epoch {epoch + 1}: {bad}; lower the learning rate")


class TensorBoardLogger(keras.callbacks.Callback):
    """Write TensorBoard summaries under `logdir`: every epoch the scalars of `logs` and the learning rate;
    every `every` epochs the model's images (`summary_images`) and histograms (`summary_histograms`) on
    the data sample `x`. Images are tiled with `image_shape`."""

    def __init__(self, logdir, x, image_shape, every=1):
        super().__init__()
        self.logdir = os.fspath(logdir)
        self.x = np.asarray(x, np.float32)
        self.image_shape = tuple(image_shape)
        self.every = checks.check_positive_int(every, "every")
        self.writer = None

    def on_train_begin(self, logs=None):
        self.writer = tf.summary.create_file_writer(self.logdir)

    def on_epoch_end(self, epoch, logs=None):
        step = epoch + 1
        with self.writer.as_default(step=step):
            for name, value in (logs or {}).items():
                tf.summary.scalar(name, float(value))
            lr = self.model.optimizer.learning_rate
            tf.summary.scalar("learning_rate", float(keras.ops.convert_to_numpy(lr)))
            if epoch % self.every == 0 or step == self.params.get("epochs"):
                self.write_images_and_histograms()
        self.writer.flush()

    def write_images_and_histograms(self):
        for name, (images, scale_each) in self.model.summary_images(self.x).items():
            grid = viz.tile(images, self.image_shape, scale_each=scale_each)
            tf.summary.image(name, viz.to_uint8(grid)[None])
        for name, values in self.model.summary_histograms(self.x).items():
            tf.summary.histogram(name, values)

    def on_train_end(self, logs=None):
        if self.writer is not None:
            self.writer.close()
