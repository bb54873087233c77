"""Few-shot classification by fine-tuning pretrained models (issue 5).

Encoder capability (`zoo.capabilities.Encoder`): a model that can encode has `encoder()`, which returns a
new `keras.Model` from inputs (None, n_inputs), float32, to features (None, n_features), a copy of the
model's weights (the RBM: x -> E[h | x], one sigmoid Dense layer with W and the hidden biases).
Fine-tuning wraps it (`zoo.models.classifier.Classifier`) and never changes the model itself.

- `build_classifier`: the model's encoder (or the same architecture with every variable re-initialised, the
  baseline) under a new softmax layer.
- `fine_tune`: Adam (or SGD) with a smaller learning rate for the pretrained encoder, L2 on the kernels,
  early stopping on a validation set with the best weights restored, TensorBoard scalars.
- `frozen_features_baseline`: logistic regression (scikit-learn) on the frozen encoder's features.
- `few_shot`: the protocol: class-balanced draws of labelled examples from the train split only, per
  seed; pretrained, random-init and frozen-feature rows; test accuracy on the whole test split.
- `SETTINGS_DEFAULTS`, `resolve_settings`: the settings of `few_shot` that `zoo finetune` exposes, from the
  user's flags, else the model card's recommended `finetune_defaults`, else the library's defaults.

Per-layer learning rates. Keras 3 optimizers have a single learning rate. `Classifier.train_step` scales the
optimizer's *update* of the encoder's variables instead: it keeps them from before the step and sets
v = v_before + m * (v_after - v_before). For Adam and SGD (with momentum) that is exactly the optimizer with
learning rate m * lr for those variables, since their state sees the same raw gradients either way. Scaling
the gradients would not do: Adam divides each gradient by its own running scale, so the step would not change.
"""
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from zoo import capabilities, checks
from zoo.checks import check_labels
from zoo.models.base import in_batches
from zoo import data as data_lib
from zoo.models.classifier import Classifier, check_encoder, dense_layers
from zoo.training import _SummaryCallback

__all__ = ["Classifier", "get_encoder", "encoder_summary", "encode", "reinitialized", "build_classifier",
           "fine_tune", "frozen_features_baseline", "few_shot", "FewShotResult", "FineTuneLog", "draw_labelled",
           "shifted_copies", "SETTINGS_DEFAULTS", "resolve_settings", "describe_sources", "describe_settings",
           "format_table", "markdown_table", "accuracy", "check_labels", "MONITORS", "ROWS", "ROW_TITLES"]

ROWS = ("pretrained", "random", "frozen")
ROW_TITLES = {"pretrained": "pretrained (fine-tuned)", "random": "random init (same net)",
              "frozen": "frozen features + logreg"}


# -- the encoder capability --------------------------------------------------------------------------------
def get_encoder(model):
    """`model.encoder()`, checked (`zoo.models.classifier.check_encoder`, finite weights). A model without the
    capability, or whose encoder() refuses (an RBM with softmax hidden units), gives one line of ValueError:
    "<Class> cannot encode: ..."."""
    capabilities.require(model, capabilities.Encoder, "encode")
    name = type(model).__name__
    if isinstance(model.encoder, keras.layers.Layer):  # e.g. an autoencoder's attribute, not the capability
        raise ValueError(f"{name} cannot encode: its `encoder` is a Keras layer, not the method encoder() that "
                         "returns a new keras.Model")
    try:
        encoder = model.encoder()
        check_encoder(encoder)
    except ValueError as exc:
        raise ValueError(f"{name} cannot encode: {exc}") from None
    if not all(np.all(np.isfinite(w)) for w in encoder.get_weights()):
        raise ValueError(f"{name} cannot encode: its encoder has NaN or infinite weights")
    return encoder


def encoder_summary(encoder):
    """The encoder's widths as text: inputs, then each Dense layer's units (the RBM's: '784-500'), and the
    features' width when the last Dense layer does not give it."""
    n_inputs, n_features = check_encoder(encoder)
    widths = [n_inputs] + [layer.units for layer in dense_layers(encoder)]
    if widths[-1] != n_features or len(widths) == 1:
        widths.append(n_features)
    return "-".join(map(str, widths))


def encode(encoder, x, batch_size=2000):
    """The encoder's features of the rows of `x` (NumPy in, NumPy out), `batch_size` rows at a time."""
    n_inputs, _ = check_encoder(encoder)
    x = checks.as_float_matrix(x, "x", width=n_inputs)
    return in_batches(lambda rows: keras.ops.convert_to_numpy(encoder(rows, training=False)), x, batch_size)


def reinitialized(encoder, seed=0):
    """A copy of `encoder`'s architecture with every variable initialised afresh (the random-initialisation
    baseline): Dense layer i (in `dense_layers` order) gets its kernel from GlorotUniform(seed + i) and a
    zero bias; any other layer its own configured initialisers. Nested Sequential/Functional models are
    copied layer by layer."""
    check_encoder(encoder)
    seed = checks.check_positive_int(seed, "seed", minimum=0)
    index = {id(layer): i for i, layer in enumerate(dense_layers(encoder))}

    def fresh(layer):
        config = layer.get_config()
        if id(layer) in index:
            config.update(kernel_initializer=keras.initializers.GlorotUniform(seed + index[id(layer)]),
                          bias_initializer="zeros")
        return type(layer).from_config(config)

    return keras.models.clone_model(encoder, clone_function=fresh, recursive=True)


def build_classifier(model, n_classes, pretrained=True, seed=0, dropout=0.0):
    """A `Classifier`: `model`'s encoder (`get_encoder`) under a new softmax layer of `n_classes` units that
    starts at zero. pretrained=False: the baseline, the same architecture from random initialisation
    (`reinitialized(encoder, seed)`). seed also seeds the dropout masks (seed + 1000); dropout: the rate on
    the encoder's features during training."""
    encoder = get_encoder(model)
    if not pretrained:
        encoder = reinitialized(encoder, seed)
    return Classifier(encoder, n_classes, dropout=dropout, pretrained=pretrained, source=type(model).__name__,
                      seed=seed)


# -- training ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FineTuneLog:
    """What `fine_tune` did: epochs run, the epoch whose weights were kept (1-based), Keras' history."""
    epochs_run: int
    best_epoch: int
    history: dict


MONITORS = ("val_accuracy", "val_loss")
#: the epoch each monitor keeps, in words (for the recorded settings)
EARLY_STOPPING_RULES = {"val_accuracy": "best validation accuracy (ties: lower validation loss)",
                        "val_loss": "lowest validation loss (ties: higher validation accuracy)"}


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
    Dense layer's effective learning rate (`learning_rate/<layer>`: the encoder's at lr * its multiplier)."""

    def __init__(self, logdir):
        super().__init__(logdir, 1)

    def on_epoch_end(self, epoch, logs=None):
        lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        m = self.model.encoder_lr_multiplier
        self.write_scalars(epoch, {**(logs or {}), "learning_rate": lr, **{
            f"learning_rate/{layer.name}": lr * (1.0 if layer is self.model.head else m) for layer in self.model.dense}})


def fine_tune(classifier, x, y, validation=None, pretrained_lr_multiplier=0.1, lr=1e-3, l2=1e-5, epochs=200,
              batch_size=32, patience=20, monitor="val_accuracy", seed=0, optimizer="adam", logdir=None, verbose=0,
              steps_per_epoch=None):
    """Train `classifier` in place on (x, y) with sparse categorical cross-entropy; returns a `FineTuneLog`.

    A pretrained encoder (`classifier.pretrained`) learns at lr * pretrained_lr_multiplier, the softmax layer
    (and a randomly initialised encoder) at lr; l2 * sum ||kernel||^2 over every Dense layer is added to the
    training loss. With validation=(xv, yv), early stopping: the
    epoch with the best `monitor` is kept ("val_accuracy": highest validation accuracy, ties: lower loss;
    "val_loss": lowest validation cross-entropy, ties: higher accuracy), and training stops after `patience`
    epochs without improvement; without validation, exactly `epochs` epochs. Batches of
    min(batch_size, n) examples, shuffled by `seed`. logdir: TensorBoard scalars (a folder or a writer).
    steps_per_epoch: batches per epoch (default ceil(n / batch_size)); with augmented copies in x, the
    count of the original examples keeps an epoch (and so `epochs` and `patience`) the same length.
    """
    if not isinstance(classifier, Classifier):
        raise ValueError(f"classifier must be a zoo.models.classifier.Classifier, got {type(classifier).__name__}")
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
    checks.check_choice(optimizer, "optimizer", OPTIMIZERS)
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
    classifier.set_encoder_lr_multiplier(multiplier if classifier.pretrained else 1.0)
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


def frozen_features_baseline(encoder, x, y, x_test, y_test, C=1.0):
    """Test accuracy of a multinomial logistic regression (scikit-learn, L2 strength 1/C) trained on the
    frozen features `encode(encoder, x)` of (x, y): the third row of the table."""
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=C, max_iter=2000)
    clf.fit(encode(encoder, x), y)
    return float(np.mean(clf.predict(encode(encoder, x_test)) == y_test))


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

    model: anything with the encoder capability (`get_encoder`). dataset: a `zoo.data.Dataset` or its name (the data the model
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
    dropout: the nets' dropout rate on the encoder's features during training (`Classifier`).
    evaluate_on: "test" (the whole test split, for the numbers to report) or "validation" (the dataset's
    validation split, which the draws never touch: for choosing encoders and settings without looking at
    the test split; not with k = "all", whose early stopping uses that split).
    logdir: TensorBoard scalars under logdir/<k>-per-class/seed-<s>/<row>.
    progress(k, seed, {row: accuracy}) is called after each draw.
    """
    start = time.perf_counter()
    # fails before any work for a model that cannot encode; the frozen row's features (never trained: each
    # net gets its own copy from build_classifier)
    encoder = get_encoder(model)
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
    n_inputs, _ = check_encoder(encoder)
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

    common = dict(lr=lr, l2=l2, batch_size=batch_size, optimizer=optimizer, patience=patience, monitor=monitor,
                  pretrained_lr_multiplier=pretrained_lr_multiplier)

    def train_net(pretrained, x, y, validation, epochs, seed, logdir):
        classifier = build_classifier(model, n_classes, pretrained=pretrained, seed=seed, dropout=dropout)
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
            for row, pretrained in (("pretrained", True), ("random", False)):
                run_logdir = None if logdir is None else Path(logdir) / f"{k}-per-class" / f"seed-{seed}" / row
                classifier, log = train_net(pretrained, xt, yt, validation, epochs if validation else fixed_epochs,
                                            seed, run_logdir)
                if refit and validation and k != "all":
                    classifier, _ = train_net(pretrained, np.concatenate([xt, xv]), np.concatenate([yt, yv]), None,
                                              log.best_epoch, seed,
                                              None if run_logdir is None else run_logdir.with_name(row + "-refit"))
                scores[row] = accuracy(classifier, test.x, test.y)
                scores_by_row[row][k].append(scores[row])
                best_epochs[row][k].append(log.best_epoch)
                if keep_classifier and row == "pretrained" and k == ks[-1] and seed == seeds[0]:
                    kept = classifier
            labelled_x, labelled_y = (xt, yt) if k == "all" else (np.concatenate([xt, xv]), np.concatenate([yt, yv]))
            scores["frozen"] = frozen_features_baseline(encoder, labelled_x, labelled_y, test.x, test.y, C=C)
            scores_by_row["frozen"][k].append(scores["frozen"])
            if progress is not None:
                progress(k, seed, scores)

    settings = {
        "dataset": dataset.name, "binarization": dataset.binarization, "evaluated_on": evaluate_on,
        "n_test": test.n,
        "encoder": encoder_summary(encoder), "hidden_sizes": [layer.units for layer in dense_layers(encoder)],
        "source": type(model).__name__, "n_classes": n_classes,
        "optimizer": optimizer, "lr": lr, "pretrained_lr_multiplier": pretrained_lr_multiplier, "l2": l2,
        "batch_size": batch_size, "max_epochs": epochs, "patience": patience, "monitor": monitor,
        "validation_fraction": validation_fraction, "fixed_epochs_without_validation": fixed_epochs,
        "early_stopping": f"{EARLY_STOPPING_RULES[monitor]}, best weights restored",
        "refit": bool(refit), "shift": shift, "dropout": float(dropout),
        "frozen": f"logistic regression (scikit-learn lbfgs, C={C}) on all labelled examples of the draw",
    }
    def frozen(by_row):
        return {row: {k: tuple(v) for k, v in d.items()} for row, d in by_row.items()}

    return FewShotResult(ks, seeds, frozen(scores_by_row), frozen(best_epochs), n_labelled, settings,
                         time.perf_counter() - start, draws, kept)


# -- settings: flags, else the model card's recommendation, else the library's defaults ------------------
OPTIMIZERS = ("adam", "sgd")
#: the library defaults of the `few_shot` settings that `zoo finetune` exposes (names are few_shot's)
SETTINGS_DEFAULTS = {"lr": 1e-3, "pretrained_lr_multiplier": 0.1, "l2": 1e-5, "batch_size": 32, "optimizer": "adam",
                     "epochs": 200, "patience": 20, "monitor": "val_accuracy", "fixed_epochs": 100, "shift": 0,
                     "dropout": 0.0, "refit": True}
SOURCES = ("flag", "card", "default")
CARD_FIELD = "finetune_defaults"


def _number(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    return float(value)


def _flag(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return bool(value)


_SETTING_CHECKS = {
    "lr": lambda v, name: checks.check_nonnegative(_number(v, name), name),
    "pretrained_lr_multiplier": lambda v, name: checks.check_nonnegative(_number(v, name), name),
    "l2": lambda v, name: checks.check_nonnegative(_number(v, name), name),
    "batch_size": lambda v, name: checks.check_positive_int(v, name),
    "optimizer": lambda v, name: checks.check_choice(v, name, OPTIMIZERS),
    "epochs": lambda v, name: checks.check_positive_int(v, name),
    "patience": lambda v, name: checks.check_positive_int(v, name),
    "monitor": lambda v, name: checks.check_choice(v, name, MONITORS),
    "fixed_epochs": lambda v, name: checks.check_positive_int(v, name),
    "shift": lambda v, name: checks.check_positive_int(v, name, minimum=0),
    "dropout": lambda v, name: checks.check_probability(_number(v, name), name),
    "refit": _flag,
}


def _checked(values, what):
    unknown = sorted(set(values) - set(SETTINGS_DEFAULTS))
    if unknown:
        raise ValueError(f"{what} has unknown setting{'s' if len(unknown) > 1 else ''} "
                         f"{', '.join(map(repr, unknown))}: expected some of {', '.join(SETTINGS_DEFAULTS)}")
    return {key: _SETTING_CHECKS[key](value, f"{what}.{key}") for key, value in values.items()}


def resolve_settings(card=None, overrides=None):
    """(settings, sources): each setting of `SETTINGS_DEFAULTS` from `overrides` (the flags the user gave;
    None values count as not given), else the model card's `finetune_defaults` (its recommended settings,
    e.g. chosen on the validation split), else `SETTINGS_DEFAULTS`; sources[name] is "flag", "card" or
    "default". Both are checked: an unknown setting or a bad value is a ValueError naming the card field
    (e.g. "card field finetune_defaults.shift must be an integer >= 0, got -1"). The settings are keyword
    arguments of `few_shot`, in the order of SETTINGS_DEFAULTS."""
    if card is not None and not isinstance(card, dict):
        raise ValueError(f"the model card must be a JSON object, got {type(card).__name__}")
    recommended = (card or {}).get(CARD_FIELD)
    if recommended is None:
        recommended = {}
    if not isinstance(recommended, dict):
        raise ValueError(f"card field {CARD_FIELD} must be an object {{setting: value}}, got {recommended!r}")
    recommended = _checked({k: v for k, v in recommended.items() if k != "dataset"}, f"card field {CARD_FIELD}")
    flags = _checked({k: v for k, v in (overrides or {}).items() if v is not None}, "fine-tuning settings")
    settings, sources = {}, {}
    for key, default in SETTINGS_DEFAULTS.items():
        for source, values in (("flag", flags), ("card", recommended), ("default", {key: default})):
            if key in values:
                settings[key], sources[key] = values[key], source
                break
    return settings, sources


def recommended_dataset(card):
    """The dataset a card's `finetune_defaults` names for the classifier's data, or None: e.g. "mnist" (grey
    images) for a model trained on fresh binary samples of them and measured on binarized_mnist."""
    recommended = (card or {}).get(CARD_FIELD) if isinstance(card, dict) else None
    name = recommended.get("dataset") if isinstance(recommended, dict) else None
    if name is not None and not isinstance(name, str):
        raise ValueError(f"card field {CARD_FIELD}.dataset must be a dataset name, got {name!r}")
    return name


def describe_sources(settings, sources):
    """Which setting came from where, in one line: 'flags: epochs 30; model card: shift 2, ...; defaults: ...'."""
    groups = [(title, [f"{key} {settings[key]:g}" if isinstance(settings[key], float) else f"{key} {settings[key]}"
                       for key in settings if sources.get(key) == source])
              for title, source in (("flags", "flag"), ("model card", "card"), ("defaults", "default"))]
    return "; ".join(f"{title}: {', '.join(items)}" for title, items in groups if items)


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
    """The fine-tuning settings of a `FewShotResult.settings` in one line (for the CLI and the docs' tables)."""
    s = settings
    return (f"optimizer {s['optimizer']}, lr {s['lr']:g}, pretrained layers x{s['pretrained_lr_multiplier']:g}, "
            f"L2 {s['l2']:g}, " + (f"dropout {s['dropout']:g}, " if s.get("dropout") else "")
            + f"batch {s['batch_size']}, patience {s['patience']}"
            + (f" on {s['monitor']}" if s.get("monitor", "val_accuracy") != "val_accuracy" else ""))


def markdown_table(report):
    """The same table in Markdown, for the README and docs/finetuning.md."""
    ks = [str(k) for k in report["labels_per_class"]]
    lines = ["| labels per class | " + " | ".join(ks) + " |", "|---|" + "---:|" * len(ks)]
    lines += ["| " + " | ".join(row) + " |" for row in _accuracy_rows(report, ks)]
    return "\n".join(lines)
