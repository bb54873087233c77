"""benchmarks/: the NumPy references compute exactly what the models do (CD-1, the DBM's mean field); every
benchmark refuses bad arguments in one line; a smoke run of each prints a report whose every number is consistent:
the JSON has every row, its medians, rates and ratios follow from the timings it records, and the printed ratio and
PASS/FAIL lines agree with them and with the targets; `make bench` runs them all or one by name."""
import importlib.util
import json
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
SCRIPT = BENCHMARKS / "bench_rbm.py"


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
    ("bench_hybrid.py", ["--n-examples", "150"], "--n-examples must be >= 200, got 150"),
    ("bench_implicit_hybrid.py", ["--batch-size", "3"], "--batch-size must be even and >= 2, got 3"),
    ("bench_startup.py", ["--repeats", "0"], "argument --repeats: expected a positive integer, got '0'"),
    ("bench_distributed.py", ["--examples", "150"], "--examples must be >= 200, got 150")])
def test_bad_arguments_exit_2_with_one_line(script, args, message):
    result = subprocess.run([sys.executable, str(BENCHMARKS / script), *args],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"{script}: {message} (see {script} --help)"]


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_make_bench_runs_every_benchmark_or_one_by_name():
    """The Makefile's loop, run with `echo` (or `false`) for Python and no install step."""
    names = sorted(p.stem[len("bench_"):] for p in BENCHMARKS.glob("bench_*.py"))
    assert {"rbm", "ais", "rws", "bihm", "dbm", "hybrid", "implicit_hybrid", "startup"} <= set(names)

    def make(*args, python="echo"):
        return subprocess.run(["make", "-s", "bench", f"PY={python}", "STAMP=", *args], cwd=ROOT, capture_output=True,
                              text=True, timeout=60)

    def ran(result):
        assert result.returncode == 0, result.stderr
        return [line for line in result.stdout.splitlines() if not line.startswith("== ")]

    assert ran(make()) == [f"benchmarks/bench_{name}.py" for name in names]
    assert ran(make("BENCH=rbm")) == ["benchmarks/bench_rbm.py"]
    assert ran(make("BENCH=dbm ais")) == ["benchmarks/bench_dbm.py", "benchmarks/bench_ais.py"]
    failing = make(python="false")  # a benchmark that fails stops the run with its error
    assert failing.returncode != 0 and failing.stdout.splitlines() == [f"== false benchmarks/bench_{names[0]}.py"]
    unknown = make("BENCH=rbm nope")
    assert unknown.returncode != 0 and unknown.stdout == ""
    [line] = unknown.stderr.strip().splitlines()
    assert "no benchmark named nope; BENCH is one or more of: " + " ".join(names) in line


def run_benchmark(name, *args):
    """(the printed lines, the JSON report) of `benchmarks/bench_NAME.py ARGS --json`."""
    result = subprocess.run([sys.executable, str(BENCHMARKS / f"bench_{name}.py"), *args, "--json"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    return lines[:-1], json.loads(lines[-1])


def printed(lines, pattern):
    """The groups of the one printed line that `pattern` (a regular expression) matches whole."""
    found = [m.groups() for m in map(re.compile(pattern).fullmatch, lines) if m]
    assert len(found) == 1, (pattern, lines)
    return found[0]


def verdict(passed):
    return "PASS" if passed else "FAIL"


def two_decimals(text, value):
    """`text` is `value` printed with 2 decimals."""
    return float(text) == pytest.approx(value, abs=0.0051)


@pytest.mark.slow
def test_bench_rbm_smoke_run_reports_consistent_ratios():
    lines, report = run_benchmark("rbm", "--n-examples", "2000", "--repeats", "1")
    names = ["zoo", "NumPy", "scikit-learn", "plain TF", "bound"]
    assert report["n_examples"] == 2000 and report["repeats"] == 1 and report["targets"] == {"NumPy": 1.0,
                                                                                             "scikit-learn": 1.8}
    assert list(report["examples_per_second"]) == names and list(report["median"]) == names
    for name, rates in report["examples_per_second"].items():
        assert len(rates) == 1 and rates[0] > 0 and len(report["other_processes_cpu_share"][name]) == 1
        median = report["median"][name]
        assert median == statistics.median(rates)
        shown = printed(lines, rf"{re.escape(name)} +(\d+) +(\d+) +(\d+)   .*")
        assert [float(v) for v in shown] == [pytest.approx(v, abs=0.5) for v in (median, min(rates), max(rates))]
    for other, target in report["targets"].items():
        ratio = report["median"]["zoo"] / report["median"][other]
        assert report["ratios"][other] == pytest.approx(ratio, rel=1e-12)
        assert report["passed"][other] == (ratio >= target)
        shown, shown_target, word = printed(lines, rf"zoo / {re.escape(other)}: ([\d.]+)x "
                                                   r"\(target >= ([\d.]+)x: (\w+)\)")
        assert two_decimals(shown, ratio) and float(shown_target) == target and word == verdict(ratio >= target)
    assert report["pass"] == all(report["passed"].values())
    assert printed(lines, r"targets (\w+): zoo >= 1\.0x NumPy and >= 1\.8x scikit-learn \(ratios of the "
                          r"medians\)") == (verdict(report["pass"]),)
    assert printed(lines, r"workload: .* one epoch of (\d+) binarised MNIST images, 1 interleaved "
                          r"round\(s\)") == ("2000",)


@pytest.mark.slow
@pytest.mark.parametrize("model, n_betas, products, flops", [("rbm", 200, 2, 784 * 500),
                                                             ("dbm", 50, 4, 784 * 500 + 500 * 1000)])
def test_bench_ais_smoke_run_reports_a_consistent_ratio(model, n_betas, products, flops):
    lines, report = run_benchmark("ais", "--model", model, "--n-betas", str(n_betas))
    assert (report["model"], report["n_betas"], report["n_chains"], report["dtype"]) == (model, n_betas, 100, "float64")
    for name in ("AIS", "bound"):
        assert len(report["seconds"][name]) == 1 and report["median"][name] > 0
        assert report["median"][name] == statistics.median(report["seconds"][name])
    ratio = report["median"]["AIS"] / report["median"]["bound"]
    assert report["ratio"] == pytest.approx(ratio, rel=1e-12) and report["pass"] == (ratio <= 1.5)
    assert report["gflops"] == pytest.approx(2 * 2 * 100 * flops * (n_betas - 1) / report["median"]["bound"] / 1e9)
    shown, word = printed(lines, r"AIS / bound: ([\d.]+)x \(target <= 1\.5x: (\w+)\)")
    assert two_decimals(shown, ratio) and word == verdict(ratio <= 1.5)
    seconds, log_z, ess = printed(lines, r"AIS +([\d.]+) s   \(log Z (-?[\d.]+), ESS ([\d.]+)\)")
    assert two_decimals(seconds, report["median"]["AIS"]) and np.isfinite(float(log_z)) and 1 <= float(ess) <= 100
    seconds, shown_products, gflops = printed(lines, r"bound +([\d.]+) s   \((\d+) matrix products at (\d+) GFLOP/s\)")
    assert two_decimals(seconds, report["median"]["bound"]) and int(shown_products) == products * (n_betas - 1)
    assert float(gflops) == pytest.approx(report["gflops"], abs=0.5)
    assert printed(lines, r"workload: forward AIS, (\w+) .*") == (model.upper(),)


def check_fit_against_bound(lines, report, n_examples, eval_examples):
    """The report of bench_rws.py or bench_bihm.py: rates from the seconds, the ratio from the rates, as printed."""
    assert report["n_examples"] == n_examples and report["eval_examples"] == eval_examples
    rate = report["examples_per_second"]
    for name in ("fit", "bound"):
        assert len(report["seconds"][name]) == 1
        assert rate[name] == pytest.approx(n_examples / statistics.median(report["seconds"][name]), rel=1e-12)
    assert report["ratio"] == pytest.approx(rate["fit"] / rate["bound"], rel=1e-12)
    assert float(printed(lines, r"model\.fit +(\d+) examples/s")[0]) == pytest.approx(rate["fit"], abs=0.5)
    assert float(printed(lines, r"bound +(\d+) examples/s   \(its matrix products alone\)")[0]) == \
        pytest.approx(rate["bound"], abs=0.5)
    seconds, whole = printed(lines, rf"evaluation: K = 1000 on {eval_examples} test images in ([\d.]+) s \((\d+) s "
                                    r"for the 10,000 of the test split at this rate\)")
    assert float(seconds) == pytest.approx(report["eval_seconds"], abs=0.051) and report["eval_seconds"] > 0
    assert float(whole) == pytest.approx(report["eval_seconds"] * 10000 / eval_examples, abs=0.5)


@pytest.mark.slow
def test_bench_rws_smoke_run_reports_a_consistent_ratio():
    lines, report = run_benchmark("rws", "--n-examples", "1000", "--eval-examples", "20", "--repeats", "1")
    check_fit_against_bound(lines, report, 1000, 20)
    assert report["pass"] == (report["ratio"] >= 0.5)
    shown, word = printed(lines, r"fit / bound: ([\d.]+) \(target >= 0\.5: (\w+)\)")
    assert two_decimals(shown, report["ratio"]) and word == verdict(report["pass"])


@pytest.mark.slow
def test_bench_bihm_smoke_run_reports_a_consistent_ratio():
    lines, report = run_benchmark("bihm", "--n-examples", "300", "--eval-examples", "5", "--z-samples", "500",
                                  "--repeats", "1")
    check_fit_against_bound(lines, report, 300, 5)
    assert two_decimals(printed(lines, r"fit / bound: ([\d.]+)")[0], report["ratio"])
    assert report["z_samples"] == 500 and report["z_seconds"] > 0
    seconds, million = printed(lines, r"log Z: 500 samples of p \(10 of q each\) in ([\d.]+) s \((\d+) s for 10\^6 at "
                                      r"this rate\)")
    assert float(seconds) == pytest.approx(report["z_seconds"], abs=0.051)
    assert float(million) == pytest.approx(report["z_seconds"] * 10 ** 6 / 500, abs=0.5)


def test_bench_dbm_numpy_reference_computes_the_models_mean_field(load_script):
    import tensorflow as tf

    from zoo.models import DBM

    bench = load_script("benchmarks/bench_dbm")
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
def test_bench_dbm_smoke_run_reports_consistent_ratios():
    lines, report = run_benchmark("dbm", "--n-examples", "300", "--repeats", "1")
    rate, seconds = report["examples_per_second"], report["seconds"]
    assert report["n_examples"] == 300 and list(rate) == list(seconds) == ["zoo", "NumPy", "bound"]
    for name in rate:
        assert len(seconds[name]) == 1 and rate[name] == pytest.approx(300 / statistics.median(seconds[name]),
                                                                       rel=1e-12)
        shown, times = printed(lines, rf"  {name} +([\d,]+) examples/s  \(([\d., ]+) s\)")
        assert float(shown.replace(",", "")) == pytest.approx(rate[name], abs=0.5)
        assert [float(s) for s in times.split(", ")] == [pytest.approx(s, abs=0.0051) for s in seconds[name]]
    numpy_ratio, bound_ratio = printed(lines, r"  zoo / NumPy ([\d.]+); zoo / bound ([\d.]+)")
    assert two_decimals(numpy_ratio, rate["zoo"] / rate["NumPy"])
    assert two_decimals(bound_ratio, rate["zoo"] / rate["bound"])


@pytest.mark.slow
def test_bench_hybrid_smoke_run_reports_consistent_ratios():
    lines, report = run_benchmark("hybrid", "--n-examples", "200", "--repeats", "1")
    names = ["generative", "hybrid", "cnn", "class_latent"]
    rate, seconds = report["rows_per_second"], report["seconds"]
    assert report["rows"] == 200 // 50 * 100 and list(rate) == list(seconds) == names
    for name in names:
        assert len(seconds[name]) == 1
        assert rate[name] == pytest.approx(report["rows"] / statistics.median(seconds[name]), rel=1e-12)
    ratios = {"ratio": rate["hybrid"] / rate["generative"], "cnn_ratio": rate["cnn"] / rate["hybrid"],
              "class_latent_ratio": rate["class_latent"] / rate["hybrid"]}
    assert {k: report[k] for k in ratios} == {k: pytest.approx(v, rel=1e-12) for k, v in ratios.items()}
    assert report["pass"] == (ratios["ratio"] >= 0.5) and report["classify_seconds"] > 0
    for label, name in (("generative part alone", "generative"), ("hybrid", "hybrid"),
                        ("hybrid, CNN classifier", "cnn"), ("hybrid, class latent", "class_latent")):
        assert float(printed(lines, rf"{re.escape(label)} +(\d+) rows/s")[0]) == pytest.approx(rate[name], abs=0.5)
    shown, word = printed(lines, r"hybrid / generative part alone: ([\d.]+) \(target >= 0\.5: (\w+)\)")
    assert two_decimals(shown, ratios["ratio"]) and word == verdict(report["pass"])
    assert two_decimals(printed(lines, r"CNN / MLP classifier: ([\d.]+) .*")[0], ratios["cnn_ratio"])
    assert two_decimals(printed(lines, r"class latent / hybrid: ([\d.]+) .*")[0], ratios["class_latent_ratio"])
    assert two_decimals(printed(lines, r"classify the 10,000 test images: ([\d.]+) s")[0], report["classify_seconds"])



@pytest.mark.slow
def test_bench_implicit_hybrid_smoke_run_reports_consistent_ratios():
    lines, report = run_benchmark("implicit_hybrid", "--smoke")
    labels = {"hybrid": "(a) hybrid step", "fit": "(a) hybrid, model.fit", "floor": "(b) floor",
              "classifier": "(c) classifier alone", "consistency": "(c) + consistency", "ali": "(c) + ALI"}
    seconds, rate, ms = report["seconds"], report["rows_per_second"], report["ms_per_step"]
    assert (report["steps"], report["repeats"], report["batch_size"], report["labelled_per_batch"]) == (2, 1, 200, 100)
    assert report["networks"] == {"n_latent": 10, "discriminator_hidden": [100, 50, 25, 25, 25],
                                  "latent_hidden": [50, 25], "generator_hidden": [50, 50], "encoder_hidden": [50, 50]}
    assert report["rows"] == 400 and list(rate) == list(labels)
    assert list(seconds) == list(ms) == [*labels, "translations", "average"]
    for name, times in seconds.items():
        assert len(times) == 1 and times[0] > 0 and len(report["other_processes_cpu_share"][name]) == 1
        assert ms[name] == pytest.approx(1000 * statistics.median(times) / 2, rel=1e-12)
    for name, label in labels.items():
        assert rate[name] == pytest.approx(400 / statistics.median(seconds[name]), rel=1e-12)
        shown_rate, shown_ms = printed(lines, rf"{re.escape(label)} +(\d+) +([\d.]+)   .*")
        assert float(shown_rate) == pytest.approx(rate[name], abs=0.5)
        assert float(shown_ms) == pytest.approx(ms[name], abs=0.051)
    median = {name: statistics.median(times) for name, times in seconds.items()}
    ratios = {"hybrid_over_floor": median["hybrid"] / median["floor"],
              "fit_over_step": median["fit"] / median["hybrid"],
              **{f"{name}_over_classifier": median[name] / median["classifier"]
                 for name in ("consistency", "ali", "hybrid")}}
    assert report["ratios"] == {k: pytest.approx(v, rel=1e-12) for k, v in ratios.items()}
    translations, average, gap = printed(lines, r"parts of \(a\) timed alone: two translations ([\d.]+) ms, weight "
                                                r"average ([\d.]+) ms a step; \(a\) - \(b\) = (-?[\d.]+) ms a step")
    assert float(translations) == pytest.approx(ms["translations"], abs=0.051)
    assert float(average) == pytest.approx(ms["average"], abs=0.051)
    assert float(gap) == pytest.approx(ms["hybrid"] - ms["floor"], abs=0.051)
    assert two_decimals(printed(lines, r"hybrid step / floor: ([\d.]+) \(time a step\)")[0],
                        ratios["hybrid_over_floor"])
    assert two_decimals(printed(lines, r"model\.fit / hybrid step: ([\d.]+) \(time a step\)")[0],
                        ratios["fit_over_step"])
    shown = printed(lines, r"over the classifier alone \(time a step\): \+ consistency ([\d.]+), \+ ALI ([\d.]+), "
                           r"hybrid ([\d.]+)")
    assert all(two_decimals(text, ratios[f"{name}_over_classifier"])
               for text, name in zip(shown, ("consistency", "ali", "hybrid")))

@pytest.mark.slow
def test_bench_distributed_smoke_run_reports_consistent_times_and_scaling():
    lines, report = run_benchmark("distributed", "--smoke")
    args, results = report["args"], report["results"]
    assert (args["examples"], args["repeats"], args["bandwidth"], args["tflops"]) == (400, 1, 100.0, 10.0)
    labels = {"rbm": "RBM 784-500, CD-1", "helmholtz": "Helmholtz 200-200-10, RWS K=10"}
    for family, r in results.items():
        ms = r["ms_per_step"]
        assert ms == {name: pytest.approx(1000 * statistics.median(t) / 4, rel=1e-12) for name, t in r["runs"].items()}
        names = ("fit", "loop x1", "loop x2", "2 workers")
        assert set(ms) == set(names) and len(r["runs"]["2 workers"]) == 1  # the worker processes' timed epochs
        shown = printed(lines, rf"{re.escape(labels[family])}" + r" +([\d.]+)" * 4 + r" +([\d.]+)x" * 3)
        assert all(two_decimals(text, ms[name]) for text, name in zip(shown, names))
        assert all(two_decimals(text, ms[name] / ms["fit"]) for text, name in zip(shown[4:], names[1:]))
        for n in (8, 64):  # a ring all-reduce of the gradients against the step's arithmetic, recomputed
            t_allreduce = 2 * (n - 1) / n * r["allreduce_bytes"] * 8 / 100e9
            t_compute = r["flops_per_example"] / 10e12
            assert r["efficiency"][str(n)] == pytest.approx(100 * t_compute / (100 * t_compute + t_allreduce))
            b = r["batch_for_90"][str(n)]
            assert b * t_compute / (b * t_compute + t_allreduce) >= 0.9 > (b - 1) * t_compute / (
                (b - 1) * t_compute + t_allreduce)
    # the smoke RBM 784-50: its weights and biases all-reduced in float32; CD-1's five products of 784 x 50,
    # 2 operations a multiply-add, are nearly all its arithmetic
    assert results["rbm"]["allreduce_bytes"] == 4 * (784 * 50 + 784 + 50)
    assert results["rbm"]["flops_per_example"] == pytest.approx(5 * 2 * 784 * 50, rel=0.03)


def test_bench_startup_reports_each_median_against_importing_tensorflow(load_script, capsys, monkeypatch):
    bench = load_script("benchmarks/bench_startup")
    # the report, from known times: medians 0.3 and 2.0 s, so 0.15 of the reference
    monkeypatch.setattr(bench, "measure", lambda repeats: {"zoo --help": [0.5, 0.2, 0.3][:repeats],
                                                           bench.REFERENCE: [2.0, 1.0, 3.0][:repeats]})
    assert bench.main(["--repeats", "3"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[1:]]
    assert rows == [["zoo", "--help", "0.300", "0.150x"], ["python", "-c", "'import", "tensorflow'", "2.000", "1.000x"]]
    # the commands really run, each `repeats` times, interleaved; a failing one is a one-line error
    monkeypatch.undo()
    monkeypatch.setattr(bench, "COMMANDS", {"zoo --help": bench.COMMANDS["zoo --help"],
                                            bench.REFERENCE: [sys.executable, "-c", "pass"]})
    times = bench.measure(2)
    assert list(times) == ["zoo --help", bench.REFERENCE] and all(len(t) == 2 and min(t) > 0 for t in times.values())
    monkeypatch.setitem(bench.COMMANDS, "fails", [sys.executable, "-c", "import sys; sys.exit(3)"])
    assert bench.main(["--repeats", "1"]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("bench_startup.py: error: fails failed (3)")
