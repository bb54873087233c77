"""Benchmark ONE EPOCH of CD-1 training of a Bernoulli RBM 784-500 (batch 100, learning rate 0.05) on the
50,000 binarised MNIST training images (`zoo.data.load("binarized_mnist").train.x`), three ways:

  zoo           zoo.models.RBM(n_hidden=500, cd_k=1, seed=0), compiled with keras.optimizers.SGD(0.05),
                model.fit(x, batch_size=100, epochs=1, verbose=0) on one model object, after an untimed
                warm-up fit on 5,000 examples (it traces the tf.function)
  NumPy         `NumpyRBM` below: the same CD-1 algorithm in plain float32 NumPy, the reference to beat
  scikit-learn  BernoulliRBM(n_components=500, batch_size=100, n_iter=1, learning_rate=0.05,
                random_state=0).fit(x) (PCD, with its own internals)

The machine is noisy, so the three are interleaved: each round (--repeats, default 3) times one epoch of
each in a rotating order. Reported: median (min, max) examples/s of each, the ratios zoo/NumPy and
zoo/scikit-learn of the medians, and PASS/FAIL against the targets zoo >= 1.0x NumPy and >= 1.8x
scikit-learn. Targets are reported, not asserted: exit code 0 (2 on bad arguments).

    .venv/bin/python scripts/bench_rbm.py --repeats 3                    # the benchmark (~1-2 min)
    .venv/bin/python scripts/bench_rbm.py --n-examples 5000 --repeats 1  # smoke run
"""
import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time

import numpy as np

N_VISIBLE, N_HIDDEN, BATCH_SIZE, LEARNING_RATE = 784, 500, 100, 0.05
N_TRAIN, N_WARMUP = 50_000, 5_000
TARGETS = {"numpy": 1.0, "sklearn": 1.8}  # zoo must be at least this many times as fast
LABELS = {"zoo": "zoo", "numpy": "NumPy", "sklearn": "scikit-learn"}


def sigmoid_(a):
    """Logistic sigmoid of a float32 array, in place (exp overflows to inf for a < -88: 1/(1+inf) = 0)."""
    np.negative(a, out=a)
    np.exp(a, out=a)
    a += 1.0
    return np.reciprocal(a, out=a)


def layer(x, weights, bias):
    """sigmoid(x weights + bias), computed in place in the product's buffer."""
    a = np.matmul(x, weights)
    a += bias
    return sigmoid_(a)


class NumpyRBM:
    """Bernoulli RBM trained with CD-1 in plain NumPy, float32 throughout.

    Random stream of `fit_epoch`: one `rng.permutation(len(x))`, then for each batch one
    `rng.random((batch, n_hidden), dtype=np.float32)` for the hidden samples.
    """

    def __init__(self, n_visible, n_hidden, seed=0, weight_stddev=0.01):
        self.rng = np.random.default_rng(seed)
        self.W = weight_stddev * self.rng.standard_normal((n_visible, n_hidden), dtype=np.float32)
        self.b = np.zeros(n_visible, np.float32)  # visible biases
        self.c = np.zeros(n_hidden, np.float32)  # hidden biases

    def fit_epoch(self, x, lr=LEARNING_RATE, batch_size=BATCH_SIZE):
        """One CD-1 epoch over the rows of `x` (float32, binary) in a random order; returns the mean
        reconstruction error sum((v0 - v1)^2) per example (what the zoo model reports as a metric)."""
        W, b, c, rng = self.W, self.b, self.c, self.rng
        positive, negative = np.empty_like(W), np.empty_like(W)
        order = rng.permutation(len(x))
        error = 0.0
        with np.errstate(over="ignore"):
            for start in range(0, len(x), batch_size):
                v0 = x[order[start:start + batch_size]]  # a fresh copy: overwritten with v0 - v1 below
                n = len(v0)
                h0 = layer(v0, W, c)
                hs = rng.random(h0.shape, dtype=np.float32)
                np.less(hs, h0, out=hs)  # hs ~ Bernoulli(h0), as 0./1.
                v1 = layer(hs, W.T, b)  # visible probabilities
                h1 = layer(v1, W, c)
                np.matmul(v0.T, h0, out=positive)
                np.matmul(v1.T, h1, out=negative)
                positive -= negative
                positive *= lr / n
                W += positive
                c += (lr / n) * (h0.sum(axis=0) - h1.sum(axis=0))
                v0 -= v1
                b += (lr / n) * v0.sum(axis=0)
                error += float(np.dot(v0.ravel(), v0.ravel()))
        return error / len(x)


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line (no usage block), exit code 2
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


def parse_args(argv):
    parser = _Parser(description="Time one CD-1 epoch of an RBM 784-500: zoo vs NumPy vs scikit-learn.")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of one epoch each (default 3)")
    parser.add_argument("--n-examples", type=int, default=N_TRAIN, help=f"examples (default {N_TRAIN})")
    parser.add_argument("--json", action="store_true", help="also print the results as one JSON object")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    if not BATCH_SIZE <= args.n_examples <= N_TRAIN:
        parser.error(f"--n-examples must be in [{BATCH_SIZE}, {N_TRAIN}], got {args.n_examples}")
    return args


def main(argv=None):
    args = parse_args(argv)
    onednn_env = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
    load_before = os.getloadavg()[0]
    import zoo  # imports TensorFlow quietly
    import keras
    import sklearn
    import tensorflow as tf
    from sklearn.neural_network import BernoulliRBM
    from threadpoolctl import threadpool_info
    try:  # the effective setting: unset means on only for CPUs with AVX512_VNNI, AVX512_BF16 or AMX
        from tensorflow.python.util._pywrap_util_port import IsMklEnabled
        onednn = "on" if IsMklEnabled() else "off"
    except ImportError:
        onednn = "unknown"

    x = zoo.data.load("binarized_mnist").train.x[:args.n_examples]
    model = zoo.models.RBM(n_hidden=N_HIDDEN, cd_k=1, seed=0)
    model.compile(optimizer=keras.optimizers.SGD(LEARNING_RATE))
    reference = NumpyRBM(N_VISIBLE, N_HIDDEN, seed=0)
    sklearn_rbm = BernoulliRBM(n_components=N_HIDDEN, batch_size=BATCH_SIZE, n_iter=1,
                               learning_rate=LEARNING_RATE, random_state=0, verbose=0)
    fits = {"zoo": lambda data: model.fit(data, batch_size=BATCH_SIZE, epochs=1, verbose=0),
            "numpy": reference.fit_epoch, "sklearn": sklearn_rbm.fit}
    for fit in fits.values():  # untimed warm-up: traces zoo's tf.function, starts the BLAS threads
        fit(x[:N_WARMUP])
    rates = {name: [] for name in fits}
    names = list(fits)
    for r in range(args.repeats):
        for name in names[r % 3:] + names[:r % 3]:
            gc.collect()
            start = time.perf_counter()
            fits[name](x)
            rates[name].append(len(x) / (time.perf_counter() - start))

    blas = next((f"{i['internal_api']} {i['version']}, {i['num_threads']} threads" for i in threadpool_info()
                 if i["user_api"] == "blas" and "numpy" in i["filepath"]), "unknown")
    env = {"python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__,
           "numpy": np.__version__, "numpy_blas": blas, "sklearn": sklearn.__version__,
           "cpu_count": os.cpu_count(), "cpus_usable": len(os.sched_getaffinity(0)),
           "TF_ENABLE_ONEDNN_OPTS": onednn_env, "onednn": onednn,
           "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)]}
    median = {name: statistics.median(r) for name, r in rates.items()}
    ratios = {other: median["zoo"] / median[other] for other in TARGETS}
    passed = {other: ratios[other] >= TARGETS[other] for other in TARGETS}

    print(f"environment: Python {env['python']}, TensorFlow {env['tensorflow']}, Keras {env['keras']}, "
          f"NumPy {env['numpy']} ({blas}), scikit-learn {env['sklearn']}")
    print(f"CPU: {env['cpu_count']} cores ({env['cpus_usable']} usable), load average (1 min) "
          f"{env['load_average_1min'][0]} before, {env['load_average_1min'][1]} after")
    setting = ("unset: TF's default, on only for CPUs with AVX512_VNNI, AVX512_BF16 or AMX"
               if onednn_env is None else repr(onednn_env))
    print(f"oneDNN: {onednn} (TF_ENABLE_ONEDNN_OPTS {setting})")
    print(f"workload: Bernoulli RBM {N_VISIBLE}-{N_HIDDEN}, CD-1, batch {BATCH_SIZE}, lr {LEARNING_RATE}, "
          f"one epoch of {len(x)} binarised MNIST images, {args.repeats} interleaved round(s)")
    print(f"{'examples/s':<14}{'median':>10}{'min':>10}{'max':>10}")
    for name, r in rates.items():
        print(f"{LABELS[name]:<14}{median[name]:>10.0f}{min(r):>10.0f}{max(r):>10.0f}")
    for other, ratio in ratios.items():
        print(f"zoo / {LABELS[other]}: {ratio:.2f}x (target >= {TARGETS[other]}x: "
              f"{'PASS' if passed[other] else 'FAIL'})")
    print(f"result: {'PASS' if all(passed.values()) else 'FAIL'} (zoo >= {TARGETS['numpy']}x NumPy and >= "
          f"{TARGETS['sklearn']}x scikit-learn)")
    if args.json:
        print(json.dumps({"environment": env, "n_examples": len(x), "repeats": args.repeats,
                          "examples_per_second": rates, "median": median, "ratios": ratios,
                          "targets": TARGETS, "passed": passed, "pass": all(passed.values())}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
