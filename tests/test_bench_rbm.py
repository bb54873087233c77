"""scripts/bench_rbm.py, bench_ais.py, bench_rws.py, bench_bihm.py, bench_dbm.py and bench_hybrid.py: the NumPy
reference does exactly CD-1; the scripts run end to end and refuse bad arguments in one line."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_rbm.py"


def load_script():
    """The script as a module (cheap: it imports only NumPy at module level)."""
    spec = importlib.util.spec_from_file_location("bench_rbm", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = load_script()


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def cd1_epoch(x, order, uniforms, W, b, c, lr, batch_size):
    """CD-1 over x[order] in float64, batch i drawing its hidden states from uniforms(i, shape); returns
    (W, b, c, mean squared reconstruction error)."""
    total_error = 0.0
    for i, start in enumerate(range(0, len(x), batch_size)):
        v0 = x[order[start:start + batch_size]].astype(np.float64)
        h0 = sigmoid(v0 @ W + c)
        hs = (uniforms(i, h0.shape) < h0).astype(np.float64)
        v1 = sigmoid(hs @ W.T + b)
        h1 = sigmoid(v1 @ W + c)
        W = W + lr * (v0.T @ h0 - v1.T @ h1) / len(v0)
        b = b + lr * np.mean(v0 - v1, axis=0)
        c = c + lr * np.mean(h0 - h1, axis=0)
        total_error += np.sum((v0 - v1) ** 2)
    return W, b, c, total_error / len(x)


def test_numpy_reference_epoch_follows_the_cd1_formulas():
    rng = np.random.default_rng(0)
    n, n_visible, n_hidden, batch_size, lr = 25, 12, 7, 10, 0.3  # the last batch has 5 examples
    x = (rng.random((n, n_visible)) < 0.4).astype(np.float32)
    model = bench.NumpyRBM(n_visible, n_hidden, seed=1, weight_stddev=0.5)
    model.b[:] = rng.normal(size=n_visible)
    model.c[:] = rng.normal(size=n_hidden)
    W, b, c = (p.astype(np.float64) for p in (model.W, model.b, model.c))

    error = model.fit_epoch(x, lr=lr, batch_size=batch_size)

    # Direct float64 computation, replaying the model's documented random stream from the same seed.
    replay = np.random.default_rng(1)
    replay.standard_normal((n_visible, n_hidden), dtype=np.float32)  # the initial weights
    order = replay.permutation(n)
    W, b, c, want_error = cd1_epoch(x, order, lambda i, shape: replay.random(shape, dtype=np.float32),
                                    W, b, c, lr, batch_size)

    for got, want in ((model.W, W), (model.b, b), (model.c, c)):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert not np.allclose(W, bench.NumpyRBM(n_visible, n_hidden, seed=1, weight_stddev=0.5).W)  # it moved
    assert error == pytest.approx(want_error, rel=1e-5)


def test_plain_tf_epochs_follow_the_cd1_formulas():
    import tensorflow as tf
    rng = np.random.default_rng(0)
    n, n_visible, n_hidden, batch_size, lr = 25, 12, 7, 10, 0.3  # the last batch has 5 examples
    x = (rng.random((n, n_visible)) < 0.4).astype(np.float32)
    fit_epoch, variables = bench.plain_tf_cd1(n_visible, n_hidden, tf, seed=1, weight_stddev=0.5, lr=lr,
                                              batch_size=batch_size)
    W = bench.NumpyRBM(n_visible, n_hidden, seed=1, weight_stddev=0.5).W.astype(np.float64)  # same start
    b, c = np.zeros(n_visible), np.zeros(n_hidden)

    errors = [fit_epoch(x) for _ in range(2)]

    # Direct float64 computation, replaying the documented random stream of each epoch.
    for epoch, error in enumerate(errors):
        order = tf.random.experimental.stateless_shuffle(tf.range(n), [1, epoch]).numpy()
        W, b, c, want_error = cd1_epoch(
            x, order, lambda i, shape: tf.random.stateless_uniform(shape, [epoch, i]).numpy(), W, b, c, lr,
            batch_size)
        assert error == pytest.approx(want_error, rel=1e-5)
    for got, want in zip(variables, (W, b, c)):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-5)


def test_numpy_reference_saturated_units_stay_finite():
    model = bench.NumpyRBM(4, 3, seed=0)
    model.c[:] = -200.0  # exp(200) overflows float32: the sigmoid must still be 0, silently
    with np.errstate(all="raise"):
        model.fit_epoch(np.ones((4, 4), np.float32), batch_size=2)
    assert np.isfinite(model.W).all() and np.isfinite(model.c).all()


@pytest.mark.parametrize("script, args, message", [
    ("bench_rbm.py", ["--repeats", "0"], "--repeats must be >= 1, got 0"),
    ("bench_ais.py", ["--n-betas", "1"], "--n-betas must be >= 2, got 1"),
    ("bench_rws.py", ["--n-examples", "50"], "--n-examples must be >= 100, got 50"),
    ("bench_bihm.py", ["--z-samples", "0"], "argument --z-samples: expected a positive integer, got '0'"),
    ("bench_dbm.py", ["--n-examples", "50"], "--n-examples must be >= 100, got 50"),
    ("bench_hybrid.py", ["--n-examples", "150"], "--n-examples must be >= 200, got 150")])
def test_bad_arguments_exit_2_with_one_line(script, args, message):
    result = subprocess.run([sys.executable, str(SCRIPT.with_name(script)), *args],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"{script}: {message} (see {script} --help)"]



@pytest.mark.slow
def test_smoke_run_prints_the_ratios():
    result = subprocess.run([sys.executable, str(SCRIPT), "--n-examples", "2000", "--repeats", "1", "--json"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert any(line.startswith("zoo / NumPy: ") for line in lines)
    assert any(line.startswith("zoo / scikit-learn: ") for line in lines)
    assert any(line.startswith(("targets PASS", "targets FAIL")) for line in lines)
    report = json.loads(lines[-1])
    assert report["n_examples"] == 2000 and set(report["median"]) == {"zoo", "NumPy", "scikit-learn", "plain TF",
                                                                  "bound"}
    assert all(rate > 0 for rate in report["median"].values())


AIS_SCRIPT = SCRIPT.with_name("bench_ais.py")


@pytest.mark.slow
def test_bench_ais_smoke_run_prints_the_ratio():
    result = subprocess.run([sys.executable, str(AIS_SCRIPT), "--n-betas", "200", "--json"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert any(line.startswith("AIS / bound: ") for line in result.stdout.splitlines())
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["n_betas"] == 200 and report["ratio"] > 0


RWS_SCRIPT = SCRIPT.with_name("bench_rws.py")


@pytest.mark.slow
def test_bench_rws_smoke_run_prints_the_ratio():
    result = subprocess.run([sys.executable, str(RWS_SCRIPT), "--n-examples", "1000", "--eval-examples", "20",
                             "--repeats", "1", "--json"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert any(line.startswith("fit / bound: ") for line in result.stdout.splitlines())
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["n_examples"] == 1000 and report["examples_per_second"]["fit"] > 0 and report["eval_seconds"] > 0


BIHM_SCRIPT = SCRIPT.with_name("bench_bihm.py")


@pytest.mark.slow
def test_bench_bihm_smoke_run_prints_the_ratio():
    result = subprocess.run([sys.executable, str(BIHM_SCRIPT), "--n-examples", "300", "--eval-examples", "5",
                             "--z-samples", "500", "--repeats", "1", "--json"], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert any(line.startswith("fit / bound: ") for line in result.stdout.splitlines())
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["n_examples"] == 300 and report["z_seconds"] > 0 and report["eval_seconds"] > 0


DBM_SCRIPT = SCRIPT.with_name("bench_dbm.py")


def test_bench_dbm_numpy_reference_computes_the_models_mean_field(load_script):
    import tensorflow as tf

    from zoo.models import DBM

    bench = load_script("bench_dbm")
    model = DBM([6, 5], n_visible=8, seed=0, weight_stddev=0.5)
    v = (np.random.default_rng(0).random((4, 8)) < 0.5).astype(np.float32)
    w0, w1 = (w.numpy() for w in model.kernels)
    _, b1, b2 = (b.numpy() for b in model.biases)
    means, _, _ = model._mean_field(tf.constant(v), 7, 0.0)
    for mine, theirs in zip(bench.numpy_mean_field(v, w0, w1, b1 + 0.1, b2, rounds=7), means[1:]):
        assert not np.allclose(mine, theirs.numpy(), atol=1e-5)  # it does see the biases
    for mine, theirs in zip(bench.numpy_mean_field(v, w0, w1, b1, b2, rounds=7), means[1:]):
        np.testing.assert_allclose(mine, theirs.numpy(), atol=1e-5)


@pytest.mark.slow
def test_bench_dbm_smoke_run_prints_the_ratios():
    result = subprocess.run([sys.executable, str(DBM_SCRIPT), "--n-examples", "300", "--repeats", "1", "--json"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert any(line.strip().startswith("zoo / NumPy ") for line in result.stdout.splitlines())
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["n_examples"] == 300 and set(report["examples_per_second"]) == {"zoo", "NumPy", "bound"}


HYBRID_SCRIPT = SCRIPT.with_name("bench_hybrid.py")


@pytest.mark.slow
def test_bench_hybrid_smoke_run_prints_the_ratios():
    result = subprocess.run([sys.executable, str(HYBRID_SCRIPT), "--n-examples", "200", "--repeats", "1", "--json"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert any(line.startswith("hybrid / generative part alone: ") for line in result.stdout.splitlines())
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["rows"] == 400 and report["ratio"] > 0 and report["classify_seconds"] > 0
    assert set(report["rows_per_second"]) == {"generative", "hybrid", "cnn", "class_latent"} and report["cnn_ratio"] > 0
