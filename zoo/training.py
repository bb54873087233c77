"""Training helpers shared by every model: schedules and callbacks (TensorBoard scalars, images,
histograms; log Z and the test NLL bracket by AIS; free-energy gap; NaN guard)."""
import os

import keras
import numpy as np
import tensorflow as tf

from zoo import capabilities, checks, evaluation, viz


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


def pretraining_rbms(layers, n_visible, visible="bernoulli", top="bernoulli", seed=None, **settings):
    """The untrained greedy stack of a deep Boltzmann machine with hidden `layers` (Salakhutdinov & Hinton 2009,
    2012): RBM i models layer i - 1 (the data for i = 1) and layer i; the first doubles its bottom-up input
    (up_scale 2), the last its top-down input (down_scale 2), those in between are plain (the DBM halves
    them: `zoo.DBM.from_rbms`). One RBM alone is a plain RBM. settings: the RBMs' other arguments."""
    from zoo.models.dbm import RBM, PretrainingRBM

    sizes = [n_visible] + list(layers)
    rbms = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        first, last = i == 0, i == len(layers) - 1
        scales = {} if len(layers) == 1 else dict(up_scale=2.0 if first else 1.0, down_scale=2.0 if last else 1.0)
        rbms.append((PretrainingRBM if scales else RBM)(
            n_out, visible=visible if first else "bernoulli", hidden=top if last else "bernoulli", n_visible=n_in,
            seed=None if seed is None else seed + i, **scales, **settings))
    return rbms


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


class HybridMonitor(keras.callbacks.Callback):
    """Add to each epoch's logs the objective's weights as they stand (`objective_weights()`, ramps included)
    and, given unlabelled training images with their hidden labels, `unlabelled_accuracy` on them: how well the
    hybrid labels the images it learns from without their labels (the labels never reach training)."""

    def __init__(self, unlabelled_x=None, unlabelled_y=None):
        super().__init__()
        self.x, self.y = unlabelled_x, unlabelled_y

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs.update({name: float(value) for name, value in self.model.objective_weights().items()})
            if self.x is not None and len(self.x):
                logs["unlabelled_accuracy"] = self.model.accuracy(self.x, self.y)


class RaiseOnNaN(keras.callbacks.Callback):
    """Stop training with a clear error as soon as a metric becomes NaN or infinite."""

    def on_epoch_end(self, epoch, logs=None):
        bad = {k: v for k, v in (logs or {}).items() if not np.isfinite(np.asarray(v, np.float64)).all()}
        if bad:
            self.model.stop_training = True
            raise FloatingPointError(f"training diverged at epoch {epoch + 1}: {bad}; lower the learning rate")


class _SummaryCallback(keras.callbacks.Callback):
    """Shared TensorBoard plumbing: `logdir` is a folder (a writer opened at the start of training and
    closed at its end), a `tf.summary.SummaryWriter` owned by the caller (used, never closed), or None (no
    writing); `due(epoch)` is True on the first epoch, every `every` epochs and on the last one."""

    def __init__(self, logdir, every):
        super().__init__()
        self.every = checks.check_positive_int(every, "every")
        self.writer = logdir if isinstance(logdir, tf.summary.SummaryWriter) else None
        self.logdir = None if logdir is None or self.writer is not None else os.fspath(logdir)

    def on_train_begin(self, logs=None):
        if self.logdir is not None:
            self.writer = tf.summary.create_file_writer(self.logdir)

    def on_train_end(self, logs=None):
        if self.logdir is not None and self.writer is not None:
            self.writer.close()

    def due(self, epoch):
        return epoch % self.every == 0 or epoch + 1 == self.params.get("epochs")

    def write_scalars(self, epoch, scalars):
        """{name: number} at step epoch + 1 (the epoch's number as Keras prints it)."""
        with self.writer.as_default(step=epoch + 1):
            for name, value in scalars.items():
                tf.summary.scalar(name, float(value))
        self.writer.flush()


class TensorBoardLogger(_SummaryCallback):
    """Write TensorBoard summaries under `logdir` (a folder or a `tf.summary.SummaryWriter`): every epoch
    the scalars of `logs` and the learning rate; every `every` epochs the model's images (`summary_images`),
    histograms (`summary_histograms`) and, if it has them, costlier scalars (`summary_scalars`) on the data
    sample `x`. Images are tiled with `image_shape`."""

    def __init__(self, logdir, x, image_shape, every=1):
        if logdir is None:
            raise ValueError("logdir must be a folder or a tf.summary.SummaryWriter, got None")
        super().__init__(logdir, every)
        self.x = np.asarray(x, np.float32)
        self.image_shape = tuple(image_shape)

    def on_epoch_end(self, epoch, logs=None):
        lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        self.write_scalars(epoch, {**(logs or {}), "learning_rate": lr})
        if self.due(epoch):
            with self.writer.as_default(step=epoch + 1):
                self.write_images_and_histograms()
            self.writer.flush()

    def write_images_and_histograms(self):
        if capabilities.offers(self.model, capabilities.SummaryScalars):  # optional: too costly for every epoch
            for name, value in self.model.summary_scalars(self.x).items():
                tf.summary.scalar(name, float(value))
        for name, (images, scale_each, *n_cols) in self.model.summary_images(self.x).items():  # n_cols optional
            grid = viz.tile(images, self.image_shape, n_cols=n_cols[0] if n_cols else None, scale_each=scale_each)
            tf.summary.image(name, viz.to_uint8(grid)[None])
        for name, values in self.model.summary_histograms(self.x).items():
            tf.summary.histogram(name, values)


class LogPartitionMonitor(_SummaryCallback):
    """Every `every` epochs (and on the first and last), log Z from both sides and the NLL bracket on test_x:

        test_nll/lower = mean F(test) + log Z-hat (forward AIS: log Z-hat too low on average, so optimistic)
        test_nll/upper = mean F(test) + log Z-hat_RAISE (reverse AIS on `reverse_examples` test examples:
                         too high on average, so conservative)

    Scalars `log_z/forward`, `log_z/reverse`, `log_z/ess` (effective sample size of the forward weights,
    out of `n_chains`), `test_nll/lower`, `test_nll/upper` (`split` renames "test", e.g. "validation" for
    a held-out split watched during training), at step epoch + 1 as TensorBoardLogger. They go into `logs`:
    into Keras' history, and into the scalars of a TensorBoardLogger placed after this callback (leave
    logdir=None then, or they are written twice); a folder or writer as `logdir` writes them there.

    The base model of the annealing has its visible biases fitted to `train_x`'s means when train_x is
    given (Salakhutdinov & Murray), else it is uniform: never fitted to test data, whose means would pull
    the coarse annealing path towards the test set and flatter the bound. `base` overrides the choice.
    Every estimate uses the same `seed` (common random numbers): changes between epochs come from the
    model, not from the sampling noise. The defaults (1,000 temperatures, 32 chains) are a cheap monitor,
    not a number to publish: use zoo.evaluation.evaluate (or `zoo eval`) on the final model.
    """

    def __init__(self, test_x, train_x=None, every=5, n_betas=1000, n_chains=32, reverse_examples=20,
                 logdir=None, seed=0, base=None, schedule="salakhutdinov", dtype=tf.float64, split="test"):
        super().__init__(logdir, every)
        self.split = str(split)
        self.test_x = checks.as_float_matrix(test_x, "test_x")
        self.train_x = None if train_x is None else checks.as_float_matrix(train_x, "train_x")
        self.base = checks.check_choice(base or ("uniform" if train_x is None else "data"), "base",
                                        ("data", "uniform"))
        if self.base == "data" and train_x is None:
            raise ValueError("base='data' needs train_x to fit the base model")
        self.n_betas = checks.check_positive_int(n_betas, "n_betas", minimum=2)
        self.n_chains = checks.check_positive_int(n_chains, "n_chains")
        self.reverse_examples = checks.check_positive_int(reverse_examples, "reverse_examples")
        self.seed = checks.check_positive_int(seed, "seed", minimum=0)
        self.schedule, self.dtype = schedule, dtype

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        # the model's own checks (width, binary data for Bernoulli units) before the first epoch, not after it
        self.model.validate_data(self.test_x, "test_x")
        if self.train_x is not None:
            self.model.validate_data(self.train_x, "train_x")

    def estimate(self):
        """The scalars of one evaluation, as {name: float}."""
        base = evaluation.fit_base(self.model, self.base, self.train_x)  # once for both runs
        common = dict(n_betas=self.n_betas, base=base, schedule=self.schedule, dtype=self.dtype, seed=self.seed)
        forward = evaluation.ais(self.model, n_chains=self.n_chains, data=self.train_x, **common)
        reverse = evaluation.reverse_ais(self.model, self.test_x, n_examples=self.reverse_examples,
                                         base_data=self.train_x, **common)
        mean_free_energy = evaluation.mean_free_energy(self.model, self.test_x)
        return {"log_z/forward": forward.log_z, "log_z/reverse": reverse.log_z, "log_z/ess": forward.ess,
                f"{self.split}_nll/lower": mean_free_energy + forward.log_z,
                f"{self.split}_nll/upper": mean_free_energy + reverse.log_z}

    def on_epoch_end(self, epoch, logs=None):
        if not self.due(epoch):
            return
        scalars = self.estimate()
        if logs is not None:
            logs.update(scalars)
        if self.writer is not None:
            self.write_scalars(epoch, scalars)
