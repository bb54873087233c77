"""Times deep Boltzmann machine training, 784-500-1000 (batch 100, 100 persistent chains, 10 mean-field rounds,
5 Gibbs sweeps per update, SGD with momentum), three ways in one run:
  zoo      zoo.DBM([500, 1000], mean_field_tol=0: every round runs) through `model.fit`;
  NumPy    `numpy_epoch` below: the same step in plain float32 NumPy, the reference to beat;
  bound    the step's matrix products alone (TensorFlow, one compiled loop over the batches): no sampling, no
           nonlinearity, no update; the speed no implementation of this step can exceed here.
After an untimed warm-up (zoo traces its step), --repeats rounds time one epoch of each in turn. Printed: the
median examples/s of each and the ratios zoo/NumPy and zoo/bound (reported, not asserted: exit 0; 2 on bad
arguments). The matrix products of a step: the mean-field start (v W0 once, mu1 W1), 10 rounds of mu2 W1^T and
mu1 W1, 5 sweeps of the chains (v W0 + h2 W1^T, h1 W0^T, h1 W1) and the two layers' statistics of data and chains.

    .venv/bin/python benchmarks/bench_dbm.py                                 # 10,000 examples a timed epoch
    .venv/bin/python benchmarks/bench_dbm.py --n-examples 1000 --repeats 1   # smoke run
"""
import json
import statistics
import sys
import time

import numpy as np

from zoo.cli import args as cli

SIZES, BATCH, CHAINS, MEAN_FIELD, GIBBS, LR, MOMENTUM = (784, 500, 1000), 100, 100, 10, 5, 0.001, 0.9


def parse_args(argv):
    parser = cli.Parser(prog="bench_dbm.py", description="Time DBM training: zoo vs NumPy vs its matrix products.")
    parser.add_argument("--n-examples", type=cli.positive_int, default=10000,
                        help="training examples per timed epoch (default 10000)")
    parser.add_argument("--repeats", type=cli.positive_int, default=3, help="timed rounds (default 3)")
    parser.add_argument("--json", action="store_true", help="also print the results as one JSON object")
    args = parser.parse_args(argv)
    if args.n_examples < BATCH:
        parser.error(f"--n-examples must be >= {BATCH}, got {args.n_examples}")
    return args


def sigmoid(a):
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-a))


def numpy_mean_field(v, w0, w1, b1, b2, rounds=MEAN_FIELD):
    """The 2-layer mean-field posterior (mu1, mu2): a bottom-up start with doubled weights, then `rounds` rounds."""
    from_v = v @ w0
    mu1 = sigmoid(2 * from_v + b1)
    mu2 = sigmoid(mu1 @ w1 + b2)
    for _ in range(rounds):
        mu1 = sigmoid(from_v + mu2 @ w1.T + b1)
        mu2 = sigmoid(mu1 @ w1 + b2)
    return mu1, mu2


def numpy_epoch(params, chains, x, rng):
    """One epoch of the DBM step on the rows of x (float32), in place: params = [W0, W1, b0, b1, b2, and a
    velocity for each], chains = [v, h1, h2] of CHAINS rows."""
    w0, w1, b0, b1, b2 = params[:5]
    velocities = params[5:]
    for start in range(0, len(x) - BATCH + 1, BATCH):
        v = x[start:start + BATCH]
        mu1, mu2 = numpy_mean_field(v, w0, w1, b1, b2)
        cv, c1, c2 = chains
        for _ in range(GIBBS):
            c1 = (rng.random(c1.shape, dtype=np.float32) < sigmoid(cv @ w0 + c2 @ w1.T + b1)).astype(np.float32)
            cv = (rng.random(cv.shape, dtype=np.float32) < sigmoid(c1 @ w0.T + b0)).astype(np.float32)
            c2 = (rng.random(c2.shape, dtype=np.float32) < sigmoid(c1 @ w1 + b2)).astype(np.float32)
        chains[:] = [cv, c1, c2]
        grads = [v.T @ mu1 / BATCH - cv.T @ c1 / CHAINS, mu1.T @ mu2 / BATCH - c1.T @ c2 / CHAINS,
                 v.mean(0) - cv.mean(0), mu1.mean(0) - c1.mean(0), mu2.mean(0) - c2.mean(0)]
        for p, velocity, g in zip(params[:5], velocities, grads):
            velocity *= MOMENTUM
            velocity += LR * g
            p += velocity


def matmul_bound(tf, n_steps):
    """The matrix products of `n_steps` training steps, in one tf.function. Each product takes the one before it
    as the real step does (identical products would be merged by TensorFlow's common-subexpression pass); the
    weights are scaled by 1 / sqrt(fan-in), so that the numbers stay finite without a nonlinearity."""
    rng = np.random.default_rng(0)
    w0 = tf.constant(rng.standard_normal(SIZES[:2]) / np.sqrt(SIZES[0]), tf.float32)
    w1 = tf.constant(rng.standard_normal(SIZES[1:]) / np.sqrt(SIZES[1]), tf.float32)
    start = [tf.constant(rng.random((BATCH, n)), tf.float32) for n in SIZES]

    @tf.function
    def run(n):
        def body(i, v, c1, c2):
            from_v = tf.matmul(v, w0)
            mu1 = 2 * from_v
            mu2 = tf.matmul(mu1, w1)
            for _ in range(MEAN_FIELD):
                mu1 = from_v + tf.matmul(mu2, w1, transpose_b=True) / 64
                mu2 = tf.matmul(mu1, w1)
            cv = v
            for _ in range(GIBBS):
                c1 = (tf.matmul(cv, w0) + tf.matmul(c2, w1, transpose_b=True)) / 8
                cv = tf.matmul(c1, w0, transpose_b=True)
                c2 = tf.matmul(c1, w1)
            g0 = tf.matmul(tf.concat([v, cv], 0), tf.concat([mu1, c1], 0), transpose_a=True)
            g1 = tf.matmul(tf.concat([mu1, c1], 0), tf.concat([mu2, c2], 0), transpose_a=True)
            return i + 1, v + g0[0, 0] * 1e-30, c1 + g1[0, 0] * 1e-30, c2
        return tf.while_loop(lambda i, *_: i < n, body, (0, *start))[1]

    return lambda: float(tf.reduce_sum(run(tf.constant(n_steps))))


def main(argv=None):
    try:
        args = parse_args(argv)
    except cli.UsageError as error:
        print(error, file=sys.stderr)
        return cli.EXIT_BAD_INPUT
    import keras
    import tensorflow as tf

    from zoo import data
    from zoo.models import DBM

    x = data.load("binarized_mnist").train.x[:args.n_examples]
    model = DBM(list(SIZES[1:]), n_chains=CHAINS, gibbs_steps=GIBBS, mean_field_steps=MEAN_FIELD, mean_field_tol=0.0,
                seed=0)
    model.compile(keras.optimizers.SGD(learning_rate=LR, momentum=MOMENTUM))
    model.fit(x[:10 * BATCH], batch_size=BATCH, epochs=1, verbose=0)  # trace
    rng = np.random.default_rng(0)
    params = [0.01 * rng.standard_normal(SIZES[:2], dtype=np.float32),
              0.01 * rng.standard_normal(SIZES[1:], dtype=np.float32)] + [np.zeros(n, np.float32) for n in SIZES]
    params += [np.zeros_like(p) for p in params]
    chains = [(rng.random((CHAINS, n)) < 0.5).astype(np.float32) for n in SIZES]
    bound = matmul_bound(tf, len(x) // BATCH)
    bound()
    runs = {"zoo": lambda: model.fit(x, batch_size=BATCH, epochs=1, verbose=0),
            "NumPy": lambda: numpy_epoch(params, chains, x, rng), "bound": bound}
    seconds = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - start)
    rates = {name: len(x) / statistics.median(s) for name, s in seconds.items()}
    print(f"DBM {'-'.join(map(str, SIZES))}, batch {BATCH}, {CHAINS} chains, {MEAN_FIELD} mean-field rounds, "
          f"{GIBBS} Gibbs sweeps; {len(x)} examples an epoch, median of {args.repeats}")
    for name, rate in rates.items():
        print(f"  {name:<6} {rate:9,.0f} examples/s  ({', '.join(f'{s:.2f}' for s in seconds[name])} s)")
    print(f"  zoo / NumPy {rates['zoo'] / rates['NumPy']:.2f}; zoo / bound {rates['zoo'] / rates['bound']:.2f}")
    if args.json:
        print(json.dumps({"examples_per_second": rates, "seconds": seconds, "n_examples": len(x)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
