"""Few-shot classification by fine-tuning pretrained models (issue 5).

Encoder interface: a model that can encode has `encoder_layers()` -> [(kernel, bias), ...], NumPy arrays of
a sigmoid MLP, first layer first (the RBM: [(W, hidden_bias)], so the MLP computes E[h | v]). Later model
families supply their own layers through the same method.

- `build_classifier`: those layers (or random Glorot layers of the same sizes) under a new softmax layer.
- `fine_tune`: Adam (or SGD) with a smaller learning rate for the pretrained layers, L2 on the kernels,
  early stopping on a validation set with the best weights restored, TensorBoard scalars.
- `frozen_features_baseline`: logistic regression (scikit-learn) on the frozen encoder's features.
- `few_shot`: the protocol: class-balanced draws of labelled examples from the train split only, per
  seed; pretrained, random-init and frozen-feature rows; test accuracy on the whole test split.

Per-layer learning rates. Keras 3 optimizers have a single learning rate. `Classifier.train_step` scales the
optimizer's *update* of each layer instead: it keeps the layer's variables from before the step and sets
v = v_before + m * (v_after - v_before). For Adam and SGD (with momentum) that is exactly the optimizer with
learning rate m * lr for that layer, since their state sees the same raw gradients either way. Scaling the
gradients would not do: Adam divides each gradient by its own running scale, so the step would not change.
"""
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from zoo import checks
from zoo import data as data_lib
from zoo.training import _SummaryCallback

ROWS = ("pretrained", "random", "frozen")
ROW_TITLES = {"pretrained": "pretrained (fine-tuned)", "random": "random init (same net)",
              "frozen": "frozen features + logreg"}


# -- the encoder interface ---------------------------------------------------------------------------------
def encoder_layers(model):
    """[(kernel, bias), ...] of `model`'s sigmoid encoder as float32 arrays, checked; ValueError for a model
    that cannot encode."""
    if not callable(getattr(model, "encoder_layers", None)):
        raise ValueError(f"{type(model).__name__} cannot encode: it has no encoder_layers() (the sigmoid "
                         "layers a classifier starts from)")
    layers = [(np.asarray(k, np.float32), np.asarray(b, np.float32)) for k, b in model.encoder_layers()]
    if not layers:
        raise ValueError(f"{type(model).__name__} cannot encode: encoder_layers() is empty")
    width = layers[0][0].shape[0] if layers[0][0].ndim == 2 else None
    for i, (kernel, bias) in enumerate(layers):
        if kernel.ndim != 2 or kernel.shape[0] != width or bias.shape != kernel.shape[1:]:
            raise ValueError(f"encoder layer {i + 1}: kernel {kernel.shape} and bias {bias.shape} do not form "
                             f"a layer on {width} inputs")
        if not (np.all(np.isfinite(kernel)) and np.all(np.isfinite(bias))):
            raise ValueError(f"encoder layer {i + 1} has NaN or infinite weights")
        width = kernel.shape[1]
    return layers


def encode(layers, x):
    """The encoder's features of `x`: the sigmoid layers applied in turn (the RBM: E[h | x])."""
    h = checks.as_float_matrix(x, "x", width=layers[0][0].shape[0])
    for kernel, bias in layers:
        h = tf.math.sigmoid(h @ kernel + bias).numpy()
    return h


# -- the classifier ----------------------------------------------------------------------------------------
@keras.saving.register_keras_serializable(package="zoo")
class Classifier(keras.Model):
    """A sigmoid MLP (`hidden_sizes`) with a softmax output layer of `n_classes` units, input `n_inputs` wide.

    n_pretrained: how many of the first hidden layers were set from an encoder (`source` says which);
      `fine_tune` gives them the smaller learning rate.
    l2: adds l2 * sum ||kernel||^2 over every layer to the training loss (not to the validation loss).
    dropout: during training, each hidden unit's output is zeroed with this probability (and the others
      scaled by 1 / (1 - dropout)); at prediction the whole net is used.
    lr_multipliers: one learning-rate factor per Dense layer, output last (set by `fine_tune`).
    seed: seeds the Glorot initialisers of the hidden layers (hidden layer i gets seed + i); the softmax layer
      starts at zero, in pretrained and random classifiers alike.
    Serving: `serving_endpoints()` gives `zoo.export` a `classify` signature (input `x`, outputs
    `probabilities` and `class`).
    """

    def __init__(self, n_inputs, n_classes, hidden_sizes=(), n_pretrained=0, source=None, l2=0.0,
                 lr_multipliers=None, seed=None, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.n_inputs = checks.check_positive_int(n_inputs, "n_inputs")
        self.n_classes = checks.check_positive_int(n_classes, "n_classes", minimum=2)
        self.hidden_sizes = tuple(checks.check_positive_int(n, "hidden size") for n in hidden_sizes)
        self.n_pretrained = checks.check_positive_int(n_pretrained, "n_pretrained", minimum=0)
        if self.n_pretrained > len(self.hidden_sizes):
            raise ValueError(f"n_pretrained {n_pretrained} exceeds the {len(self.hidden_sizes)} hidden layers")
        self.source = source
        self.l2 = checks.check_nonnegative(l2, "l2")
        self.seed = None if seed is None else checks.check_positive_int(seed, "seed", minimum=0)
        self.dropout = checks.check_probability(dropout, "dropout")
        self.lr_multipliers = (1.0,) * (len(self.hidden_sizes) + 1)
        if lr_multipliers is not None:
            self.set_lr_multipliers(lr_multipliers)

        def glorot(i):
            return keras.initializers.GlorotUniform(None if self.seed is None else self.seed + i)

        self.dense = [keras.layers.Dense(n, activation="sigmoid", kernel_initializer=glorot(i), name=f"hidden_{i + 1}")
                      for i, n in enumerate(self.hidden_sizes)]
        # The new output layer starts at zero (uniform class probabilities): its first steps are a logistic
        # regression on the features below, not a fight against random weights. That beat Glorot by 1-3 points
        # with 1 and 10 labels per class (measured on MNIST's validation split, not the test split).
        self.dense.append(keras.layers.Dense(self.n_classes, activation="softmax", kernel_initializer="zeros",
                                             name="softmax"))
        self.dropouts = [keras.layers.Dropout(self.dropout, seed=None if self.seed is None else self.seed + 1000 + i,
                                              name=f"dropout_{i + 1}") for i in range(len(self.hidden_sizes))]
        self.build((None, self.n_inputs))

    def build(self, input_shape):
        width = input_shape[-1]
        for layer in self.dense:
            layer.build((None, width))
            width = layer.units
        self.built = True

    def call(self, x, training=False):
        for layer, drop in zip(self.dense, self.dropouts + [None]):
            x = layer(x)
            if drop is not None and self.dropout:
                x = drop(x, training=training)
        return x

    def get_config(self):
        return {**super().get_config(), "n_inputs": self.n_inputs, "n_classes": self.n_classes,
                "hidden_sizes": list(self.hidden_sizes), "n_pretrained": self.n_pretrained,
                "source": self.source, "l2": self.l2, "lr_multipliers": list(self.lr_multipliers),
                "seed": self.seed, "dropout": self.dropout}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def set_lr_multipliers(self, multipliers):
        multipliers = tuple(checks.check_nonnegative(m, "learning-rate multiplier") for m in multipliers)
        if len(multipliers) != len(self.hidden_sizes) + 1:
            raise ValueError(f"expected {len(self.hidden_sizes) + 1} learning-rate multipliers (one per layer), "
                             f"got {len(multipliers)}")
        self.lr_multipliers = multipliers
        self.train_function = None  # traced with the old factors

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        loss = super().compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training)
        if training and self.l2:
            loss += self.l2 * tf.add_n([tf.reduce_sum(tf.square(layer.kernel)) for layer in self.dense])
        return loss

    def train_step(self, data):
        # Per-layer learning rates by scaling each layer's update (see the module docstring).
        scaled = [(v, m) for layer, m in zip(self.dense, self.lr_multipliers) if m != 1.0
                  for v in layer.trainable_variables]
        before = [tf.identity(v) for v, _ in scaled]
        logs = super().train_step(data)
        for (v, m), old in zip(scaled, before):
            v.assign(old + m * (v - old))
        return logs

    def serving_endpoints(self):
        """{name: (function, input_signature)} for `zoo.export`: classify(x) -> probabilities and class."""
        def classify(x):
            probabilities = self(x)
            return {"probabilities": probabilities, "class": tf.argmax(probabilities, axis=-1)}

        return {"classify": (classify, [tf.TensorSpec([None, self.n_inputs], tf.float32, name="x")])}

    def predict_classes(self, x, batch_size=2000):
        """Predicted class of each row of `x` (NumPy in, NumPy out)."""
        x = checks.as_float_matrix(x, "x", width=self.n_inputs)
        return np.concatenate([np.argmax(self(x[i:i + batch_size]), axis=-1)
                               for i in range(0, len(x), batch_size)])


def build_classifier(model, n_inputs, n_classes, hidden_sizes=None, seed=0, dropout=0.0):
    """A `Classifier`: sigmoid layers set from `model.encoder_layers()` (its kernels and biases), or, with
    model=None, random Glorot layers of `hidden_sizes` (the baseline), then a new softmax layer of
    `n_classes` units. With a model, `hidden_sizes` may be given only to check the encoder's sizes.
    dropout: the hidden units' dropout rate during training."""
    if model is None:
        if hidden_sizes is None:
            raise ValueError("hidden_sizes is needed without a pretrained model (e.g. the encoder's sizes)")
        return Classifier(n_inputs, n_classes, tuple(hidden_sizes), seed=seed, dropout=dropout)
    layers = encoder_layers(model)
    sizes = tuple(k.shape[1] for k, _ in layers)
    if layers[0][0].shape[0] != n_inputs:
        raise ValueError(f"the encoder takes {layers[0][0].shape[0]} inputs, not n_inputs={n_inputs}")
    if hidden_sizes is not None and tuple(hidden_sizes) != sizes:
        raise ValueError(f"hidden_sizes {tuple(hidden_sizes)} differ from the encoder's layer sizes {sizes}")
    classifier = Classifier(n_inputs, n_classes, sizes, n_pretrained=len(layers), source=type(model).__name__,
                            seed=seed, dropout=dropout)
    for layer, (kernel, bias) in zip(classifier.dense, layers):
        layer.kernel.assign(kernel)
        layer.bias.assign(bias)
    return classifier


# -- training ----------------------------------------------------------------------------------------------
def check_labels(y, n, n_classes, name="y"):
    """`y` as int64 labels of shape (n,) in [0, n_classes), or ValueError."""
    y = np.asarray(y)
    if y.shape != (n,):
        raise ValueError(f"{name} must be a 1-D array of {n} labels (one per example), got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{name} must hold integer class labels, got dtype {y.dtype}")
    if n and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"{name} must be class labels in [0, {n_classes - 1}], got values in "
                         f"[{y.min()}, {y.max()}]")
    return y.astype(np.int64)


@dataclass(frozen=True)
class FineTuneLog:
    """What `fine_tune` did: epochs run, the epoch whose weights were kept (1-based), Keras' history."""
    epochs_run: int
    best_epoch: int
    history: dict


MONITORS = ("val_accuracy", "val_loss")


class _EarlyStopping(keras.callbacks.Callback):
    """Early stopping on (x, y) held out: after each epoch, `val_loss` (cross-entropy, no L2 term) and
    `val_accuracy` go into the logs. monitor="val_accuracy": the best epoch has the highest validation
    accuracy, ties (common with a few validation examples) broken by the lower loss; "val_loss": the lowest
    loss, ties broken by the higher accuracy. Training stops after `patience` epochs without a better one,
    and the best weights are restored. Computed here in one eager call rather than by Keras'
    `validation_data`, whose per-epoch `evaluate` costs more than a few-shot epoch itself."""

    def __init__(self, x, y, patience, monitor="val_accuracy"):
        super().__init__()
        self.x, self.y, self.patience, self.monitor = tf.constant(x), y, patience, monitor
        self.best, self.best_epoch, self.best_weights, self.wait = None, 0, None, 0

    def on_epoch_end(self, epoch, logs=None):
        probabilities = self.model(self.x).numpy()
        loss = float(np.mean(keras.losses.sparse_categorical_crossentropy(self.y, probabilities)))
        accuracy = float(np.mean(np.argmax(probabilities, axis=-1) == self.y))
        if logs is not None:
            logs.update(val_loss=loss, val_accuracy=accuracy)
        score = (accuracy, -loss) if self.monitor == "val_accuracy" else (-loss, accuracy)
        if self.best is None or score > self.best:
            self.best, self.best_epoch, self.best_weights, self.wait = score, epoch + 1, self.model.get_weights(), 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)


class _ScalarLogger(_SummaryCallback):
    """TensorBoard scalars every epoch: loss, accuracy (train and validation), the learning rate and each
    layer's effective learning rate (`learning_rate/<layer>`)."""

    def __init__(self, logdir):
        super().__init__(logdir, 1)

    def on_epoch_end(self, epoch, logs=None):
        lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        self.write_scalars(epoch, {**(logs or {}), "learning_rate": lr, **{
            f"learning_rate/{layer.name}": lr * m for layer, m in zip(self.model.dense, self.model.lr_multipliers)}})


def fine_tune(classifier, x, y, validation=None, pretrained_lr_multiplier=0.1, lr=1e-3, l2=1e-5, epochs=200,
              batch_size=32, patience=20, monitor="val_accuracy", seed=0, optimizer="adam", logdir=None, verbose=0,
              steps_per_epoch=None):
    """Train `classifier` in place on (x, y) with sparse categorical cross-entropy; returns a `FineTuneLog`.

    The pretrained layers (`classifier.n_pretrained`) learn at lr * pretrained_lr_multiplier, the others at
    lr; l2 * sum ||kernel||^2 is added to the training loss. With validation=(xv, yv), early stopping: the
    epoch with the best `monitor` is kept ("val_accuracy": highest validation accuracy, ties: lower loss;
    "val_loss": lowest validation cross-entropy, ties: higher accuracy), and training stops after `patience`
    epochs without improvement; without validation, exactly `epochs` epochs. Batches of
    min(batch_size, n) examples, shuffled by `seed`. logdir: TensorBoard scalars (a folder or a writer).
    steps_per_epoch: batches per epoch (default ceil(n / batch_size)); with augmented copies in x, the
    count of the original examples keeps an epoch (and so `epochs` and `patience`) the same length.
    """
    if not isinstance(classifier, Classifier):
        raise ValueError(f"classifier must be a zoo.finetune.Classifier, got {type(classifier).__name__}")
    x = checks.as_float_matrix(x, "x", width=classifier.n_inputs)
    y = check_labels(y, len(x), classifier.n_classes)
    epochs = checks.check_positive_int(epochs, "epochs")
    patience = checks.check_positive_int(patience, "patience")
    monitor = checks.check_choice(monitor, "monitor", MONITORS)
    batch_size = min(checks.check_positive_int(batch_size, "batch_size"), len(x))
    steps_per_epoch = -(-len(x) // batch_size) if steps_per_epoch is None else \
        checks.check_positive_int(steps_per_epoch, "steps_per_epoch")
    seed = checks.check_positive_int(seed, "seed", minimum=0)
    lr = checks.check_nonnegative(lr, "lr")
    multiplier = checks.check_nonnegative(pretrained_lr_multiplier, "pretrained_lr_multiplier")
    checks.check_choice(optimizer, "optimizer", ("adam", "sgd"))
    callbacks = []
    if validation is not None:
        if not isinstance(validation, (tuple, list)) or len(validation) != 2:
            raise ValueError("validation must be a pair (x, y)")
        xv = checks.as_float_matrix(validation[0], "validation x", width=classifier.n_inputs)
        callbacks.append(_EarlyStopping(xv, check_labels(validation[1], len(xv), classifier.n_classes,
                                                         "validation y"), patience, monitor))
    if logdir is not None:
        callbacks.append(_ScalarLogger(logdir))

    classifier.l2 = checks.check_nonnegative(l2, "l2")
    classifier.set_lr_multipliers([multiplier if i < classifier.n_pretrained else 1.0
                                   for i in range(len(classifier.dense))])
    opt = (keras.optimizers.Adam(learning_rate=lr) if optimizer == "adam"
           else keras.optimizers.SGD(learning_rate=lr, momentum=0.9))
    classifier.compile(optimizer=opt, loss=keras.losses.SparseCategoricalCrossentropy(),
                       metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    # One endless stream of shuffled epochs, cut into Keras epochs of ceil(n / batch_size) batches: Keras then
    # keeps one iterator, where a finite dataset costs a new one every epoch (a few-shot epoch is 1-3 steps).
    batches = data_lib.batches((x, y), batch_size, shuffle=True, seed=seed, repeat=True)
    history = classifier.fit(batches, epochs=epochs, steps_per_epoch=steps_per_epoch, callbacks=callbacks,
                             verbose=verbose, shuffle=False)
    epochs_run = len(history.history["loss"])
    best = callbacks[0].best_epoch if validation is not None else epochs_run
    return FineTuneLog(epochs_run, best, {k: [float(v) for v in vs] for k, vs in history.history.items()})


def accuracy(classifier, x, y):
    """Fraction of the rows of `x` whose predicted class is `y`."""
    y = check_labels(y, len(x), classifier.n_classes)
    return float(np.mean(classifier.predict_classes(x) == y))


def frozen_features_baseline(layers, x, y, x_test, y_test, C=1.0):
    """Test accuracy of a multinomial logistic regression (scikit-learn, L2 strength 1/C) trained on the
    frozen encoder features of (x, y): the third row of the table."""
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=C, max_iter=2000)
    clf.fit(encode(layers, x), y)
    return float(np.mean(clf.predict(encode(layers, x_test)) == y_test))


# -- the protocol ------------------------------------------------------------------------------------------
def shifted_copies(x, y, image_shape, radius):
    """Each image (a row of `x`, `image_shape` = (h, w) or (h, w, c)) followed by its copies translated by
    every offset of up to `radius` pixels in each direction, zero filled: (2 radius + 1)^2 times the rows,
    labels repeated. radius 0 returns the arrays unchanged."""
    radius = checks.check_positive_int(radius, "shift", minimum=0)
    x, y = np.asarray(x), np.asarray(y)
    if radius == 0:
        return x, y
    if image_shape is None or len(image_shape) < 2 or int(np.prod(image_shape)) != x.shape[1]:
        raise ValueError(f"shifting needs images: image_shape {image_shape} does not describe rows of "
                         f"{x.shape[1]} values")
    h, w = image_shape[:2]
    if radius >= min(h, w):
        raise ValueError(f"shift {radius} must be smaller than the image ({h}x{w})")
    images = x.reshape((len(x),) + tuple(image_shape))
    padded = np.pad(images, [(0, 0), (radius, radius), (radius, radius)] + [(0, 0)] * (images.ndim - 3))
    offsets = [(0, 0)] + [(dy, dx) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)
                          if (dy, dx) != (0, 0)]  # the original first
    copies = [padded[:, radius - dy:radius - dy + h, radius - dx:radius - dx + w].reshape(len(x), -1)
              for dy, dx in offsets]
    return np.concatenate(copies), np.tile(y, len(copies))


def draw_labelled(y, labels_per_class, seed, n_classes, validation_fraction=0.2):
    """A class-balanced draw of `labels_per_class` examples per class: (train, validation) index arrays into
    `y`. Each class is permuted by default_rng(seed) and its first k examples are taken (so the draws of one
    seed are nested: the 10-per-class set holds the 1-per-class one); of those, the last
    round(validation_fraction * k) (at least 1, at most k - 1; none for k = 1) are the validation part."""
    k = checks.check_positive_int(labels_per_class, "labels_per_class")
    counts = np.bincount(y, minlength=n_classes)
    if counts.min() < k:
        poor = int(np.argmin(counts))
        raise ValueError(f"labels_per_class {k} is larger than class {poor} has ({counts[poor]} examples in the "
                         "train split)")
    n_val = 0 if k == 1 else min(k - 1, max(1, int(np.floor(validation_fraction * k + 0.5))))
    rng = np.random.default_rng(seed)
    train, validation = [], []
    for c in range(n_classes):
        chosen = rng.permutation(np.flatnonzero(y == c))[:k]
        train.append(chosen[:k - n_val])
        validation.append(chosen[k - n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(validation))


@dataclass(frozen=True)
class FewShotResult:
    """Test accuracies of `few_shot`, as fractions.

    accuracy[row][k]: per-seed accuracies, rows "pretrained", "random", "frozen"; k an int or "all".
    best_epochs[row][k]: per-seed epoch kept by early stopping (or the fixed epoch count), nets only.
    draws[(k, seed)]: (train, validation) indices of the labelled examples in the dataset's train split
      (for "all": the whole train split, and indices into the dataset's validation split).
    classifier: the pretrained classifier of the first seed of the largest k (keep_classifier=True).
    """
    labels_per_class: tuple
    seeds: tuple
    accuracy: dict
    best_epochs: dict
    n_labelled: dict  # {k: (n_train, n_validation)}
    settings: dict
    seconds: float
    draws: dict = field(repr=False, compare=False, default=None)
    classifier: object = field(repr=False, compare=False, default=None)

    def mean(self, row, k):
        return float(np.mean(self.accuracy[row][k]))

    def std(self, row, k):
        """Sample standard deviation over seeds (0 for one seed)."""
        values = self.accuracy[row][k]
        return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0

    def gain(self, k):
        """(mean, sample std) over seeds of pretrained - random, paired by seed (same labelled examples)."""
        diffs = np.subtract(self.accuracy["pretrained"][k], self.accuracy["random"][k])
        return float(diffs.mean()), float(diffs.std(ddof=1)) if len(diffs) > 1 else 0.0

    def to_dict(self):
        """Everything but the draws and the classifier, JSON-ready (labels_per_class keys as strings)."""
        rows = {row: {str(k): {"mean": self.mean(row, k), "std": self.std(row, k),
                               "per_seed": list(self.accuracy[row][k])} for k in self.labels_per_class}
                for row in ROWS}
        gain = {str(k): dict(zip(("mean", "std"), self.gain(k)),
                             per_seed=list(np.subtract(self.accuracy["pretrained"][k], self.accuracy["random"][k])))
                for k in self.labels_per_class}
        return {"labels_per_class": [str(k) if k == "all" else k for k in self.labels_per_class],
                "seeds": list(self.seeds), "accuracy": rows, "gain": gain,
                "best_epochs": {row: {str(k): list(v) for k, v in d.items()} for row, d in self.best_epochs.items()},
                "n_labelled": {str(k): {"train": n[0], "validation": n[1]} for k, n in self.n_labelled.items()},
                "settings": self.settings, "seconds": self.seconds}


def _check_labels_per_class(values):
    values = (values,) if isinstance(values, (int, np.integer, str)) else tuple(values)
    if not values:
        raise ValueError("labels_per_class is empty: give positive integers and/or 'all'")
    out = []
    for k in values:
        if k != "all":
            if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
                raise ValueError(f"labels_per_class must be positive integers or 'all', got {k!r}")
            k = int(k)
        if k in out:
            raise ValueError(f"labels_per_class lists {k!r} twice")
        out.append(k)
    return tuple(sorted(out, key=lambda k: float("inf") if k == "all" else k))


def few_shot(model, dataset, labels_per_class=(1, 10, 100), seeds=5, validation_fraction=0.2, fixed_epochs=100,
             epochs=200, patience=20, monitor="val_accuracy", lr=1e-3, pretrained_lr_multiplier=0.1, l2=1e-5,
             batch_size=32, optimizer="adam", C=1.0, refit=True, shift=0, dropout=0.0, evaluate_on="test", logdir=None,
             keep_classifier=False, progress=None):
    """The few-shot protocol: for each k in `labels_per_class` and each seed, draw k labelled examples per
    class from the train split (`draw_labelled`), fine-tune the pretrained classifier and the same net from
    random initialisation, fit logistic regression on the frozen features, and measure all three on the
    whole test split. Returns a `FewShotResult`.

    model: anything with `encoder_layers()`. dataset: a `zoo.data.Dataset` or its name (the data the model
    was trained on). seeds: a count n (seeds 0..n-1) or a list; a seed fixes the labelled draw, the
    initialisation and the batch order, the same for the pretrained and the random net.
    Validation: the nets stop early on the validation part of the draw (validation_fraction of the labelled
    examples); with 1 label per class there is none, and they train `fixed_epochs` epochs, a number fixed in
    advance. k = "all": the whole train split, with the dataset's validation split for early stopping.
    monitor: what early stopping keeps, "val_accuracy" or "val_loss" (`fine_tune`).
    The frozen-feature row uses every labelled example of the draw (it has no early stopping).
    refit: after early stopping, train the net again from the same initialisation on all labelled examples
    of the draw (train and validation parts) for the epoch count early stopping chose (not for "all").
    shift: train the nets on each labelled image and its copies translated by up to `shift` pixels
    (`shifted_copies`; epochs keep the length of one pass over the labelled examples); the frozen row and
    the validation examples are not shifted.
    dropout: the nets' hidden dropout rate during training (`Classifier`).
    evaluate_on: "test" (the whole test split, for the numbers to report) or "validation" (the dataset's
    validation split, which the draws never touch: for choosing encoders and settings without looking at
    the test split; not with k = "all", whose early stopping uses that split).
    logdir: TensorBoard scalars under logdir/<k>-per-class/seed-<s>/<row>.
    progress(k, seed, {row: accuracy}) is called after each draw.
    """
    start = time.perf_counter()
    layers = encoder_layers(model)
    if isinstance(dataset, str):
        dataset = data_lib.load(dataset)
    ks = _check_labels_per_class(labels_per_class)
    seeds = tuple(range(checks.check_positive_int(seeds, "seeds"))) if isinstance(seeds, (int, np.integer)) \
        else tuple(checks.check_positive_int(s, "seed", minimum=0) for s in seeds)
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct and at least one, got {seeds}")
    validation_fraction = checks.check_probability(validation_fraction, "validation_fraction")
    fixed_epochs = checks.check_positive_int(fixed_epochs, "fixed_epochs")
    shift = checks.check_positive_int(shift, "shift", minimum=0)
    dropout = checks.check_probability(dropout, "dropout")
    monitor = checks.check_choice(monitor, "monitor", MONITORS)
    if shift:
        shifted_copies(dataset.train.x[:1], dataset.train.y[:1], dataset.image_shape, shift)  # fails early
    n_inputs = layers[0][0].shape[0]
    if dataset.n_features != n_inputs:
        raise ValueError(f"the model encodes {n_inputs} inputs but dataset {dataset.name!r} has "
                         f"{dataset.n_features} features")
    evaluate_on = checks.check_choice(evaluate_on, "evaluate_on", ("test", "validation"))
    if evaluate_on == "validation" and "all" in ks:
        raise ValueError("labels_per_class 'all' stops early on the validation split, so it cannot also be "
                         "measured there: use evaluate_on='test'")
    train, test = dataset.train, getattr(dataset, evaluate_on)
    if train.y is None or test.y is None:
        raise ValueError(f"dataset {dataset.name!r} has no labels" + (
            "" if train.y is None or evaluate_on == "test" else " in its validation split"))
    n_classes = dataset.n_classes or int(max(train.y.max(), test.y.max())) + 1
    check_labels(train.y, train.n, n_classes, "train labels")
    check_labels(test.y, test.n, n_classes, "test labels")
    if "all" in ks and dataset.validation.y is None:
        raise ValueError(f"labels_per_class 'all' needs a labelled validation split; {dataset.name!r} has none")
    for k in ks:  # every bad k fails before any training
        if k != "all":
            draw_labelled(train.y, k, 0, n_classes, validation_fraction)

    hidden_sizes = tuple(kernel.shape[1] for kernel, _ in layers)
    common = dict(lr=lr, l2=l2, batch_size=batch_size, optimizer=optimizer, patience=patience, monitor=monitor,
                  pretrained_lr_multiplier=pretrained_lr_multiplier)

    def train_net(source, x, y, validation, epochs, seed, logdir):
        classifier = build_classifier(source, n_inputs, n_classes, hidden_sizes, seed=seed, dropout=dropout)
        xs, ys = shifted_copies(x, y, dataset.image_shape, shift)
        log = fine_tune(classifier, xs, ys, validation, epochs=epochs, seed=seed, logdir=logdir,
                        steps_per_epoch=-(-len(x) // min(batch_size, len(x))), **common)
        return classifier, log

    scores_by_row = {row: {} for row in ROWS}
    best_epochs = {row: {} for row in ROWS[:2]}
    draws, n_labelled, kept = {}, {}, None
    for k in ks:
        for row in ROWS:
            scores_by_row[row][k] = []
        for row in best_epochs:
            best_epochs[row][k] = []
        for seed in seeds:
            if k == "all":
                xt, yt, xv, yv = train.x, train.y, dataset.validation.x, dataset.validation.y
                draws[(k, seed)] = (np.arange(train.n), np.arange(dataset.validation.n))
            else:
                it, iv = draws[(k, seed)] = draw_labelled(train.y, k, seed, n_classes, validation_fraction)
                xt, yt, xv, yv = train.x[it], train.y[it], train.x[iv], train.y[iv]
            n_labelled[k] = (len(xt), len(xv))
            validation = (xv, yv) if len(xv) else None
            scores = {}
            for row, source in (("pretrained", model), ("random", None)):
                run_logdir = None if logdir is None else Path(logdir) / f"{k}-per-class" / f"seed-{seed}" / row
                classifier, log = train_net(source, xt, yt, validation, epochs if validation else fixed_epochs,
                                            seed, run_logdir)
                if refit and validation and k != "all":
                    classifier, _ = train_net(source, np.concatenate([xt, xv]), np.concatenate([yt, yv]), None,
                                              log.best_epoch, seed,
                                              None if run_logdir is None else run_logdir.with_name(row + "-refit"))
                scores[row] = accuracy(classifier, test.x, test.y)
                scores_by_row[row][k].append(scores[row])
                best_epochs[row][k].append(log.best_epoch)
                if keep_classifier and row == "pretrained" and k == ks[-1] and seed == seeds[0]:
                    kept = classifier
            labelled_x, labelled_y = (xt, yt) if k == "all" else (np.concatenate([xt, xv]), np.concatenate([yt, yv]))
            scores["frozen"] = frozen_features_baseline(layers, labelled_x, labelled_y, test.x, test.y, C=C)
            scores_by_row["frozen"][k].append(scores["frozen"])
            if progress is not None:
                progress(k, seed, scores)

    settings = {
        "dataset": dataset.name, "binarization": dataset.binarization, "evaluated_on": evaluate_on,
        "n_test": test.n,
        "hidden_sizes": list(hidden_sizes), "source": type(model).__name__, "n_classes": n_classes,
        "optimizer": optimizer, "lr": lr, "pretrained_lr_multiplier": pretrained_lr_multiplier, "l2": l2,
        "batch_size": batch_size, "max_epochs": epochs, "patience": patience, "monitor": monitor,
        "validation_fraction": validation_fraction, "fixed_epochs_without_validation": fixed_epochs,
        "early_stopping": "best validation accuracy (ties: lower validation loss), best weights restored",
        "refit": bool(refit), "shift": shift, "dropout": float(dropout),
        "frozen": f"logistic regression (scikit-learn lbfgs, C={C}) on all labelled examples of the draw",
    }
    def frozen(by_row):
        return {row: {k: tuple(v) for k, v in d.items()} for row, d in by_row.items()}

    return FewShotResult(ks, seeds, frozen(scores_by_row), frozen(best_epochs), n_labelled, settings,
                         time.perf_counter() - start, draws, kept)


# -- tables ------------------------------------------------------------------------------------------------
def _cell(stats):
    return f"{100 * stats['mean']:.2f} ± {100 * stats['std']:.2f}"


def _accuracy_rows(report, ks):
    """[title, cell per k] for the three rows and the gain, shared by the text and Markdown tables."""
    rows = [[ROW_TITLES[row]] + [_cell(report["accuracy"][row][k]) for k in ks] for row in ROWS]
    rows.append(["gain (pretrained - random)"] + [f"{100 * report['gain'][k]['mean']:+.2f} ± "
                                                  f"{100 * report['gain'][k]['std']:.2f}" for k in ks])
    return rows


def format_table(report):
    """The text table of a `FewShotResult.to_dict()` (test accuracy in %, mean ± std over seeds)."""
    ks = [str(k) for k in report["labels_per_class"]]
    rows = [["labels per class"] + ks] + _accuracy_rows(report, ks)
    rows.append(["labelled (train + validation)"] + [
        f"{n['train']} + {n['validation']}" for n in (report["n_labelled"][k] for k in ks)])
    widths = [max(len(r[i]) for r in rows) for i in range(len(ks) + 1)]
    return "\n".join("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in
                               enumerate(zip(r, widths))) for r in rows)


def describe_settings(settings):
    """The fine-tuning settings of a `FewShotResult.settings` in one line (for the CLI and the README tables)."""
    s = settings
    return (f"optimizer {s['optimizer']}, lr {s['lr']:g}, pretrained layers x{s['pretrained_lr_multiplier']:g}, "
            f"L2 {s['l2']:g}, " + (f"dropout {s['dropout']:g}, " if s.get("dropout") else "")
            + f"batch {s['batch_size']}, patience {s['patience']}"
            + (f" on {s['monitor']}" if s.get("monitor", "val_accuracy") != "val_accuracy" else ""))


def markdown_table(report):
    """The same table in Markdown, for the README."""
    ks = [str(k) for k in report["labels_per_class"]]
    lines = ["| labels per class | " + " | ".join(ks) + " |", "|---|" + "---:|" * len(ks)]
    lines += ["| " + " | ".join(row) + " |" for row in _accuracy_rows(report, ks)]
    return "\n".join(lines)
