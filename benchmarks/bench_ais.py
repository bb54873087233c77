"""Times forward AIS on an RBM 784-500 with the default schedule (Salakhutdinov & Murray, 14,501
temperatures) and 100 chains, next to the matrix-product bound measured in the same run: the same number
of iterations of the two products each AIS step needs ((100 x 784) W and (100 x 500) W^T, with a sigmoid
after each so the values stay normal), in one compiled loop, in the same dtype. Target: AIS within 1.5x of
the bound. Printed: seconds of each (median of --repeats), the ratio, PASS/FAIL (reported, exit 0).

    .venv/bin/python benchmarks/bench_ais.py                  # the benchmark (float64, the default)
    .venv/bin/python benchmarks/bench_ais.py --dtype float32
    .venv/bin/python benchmarks/bench_ais.py --n-betas 1000   # smoke run
"""
import json
import statistics
import sys
import time

import numpy as np

from zoo.cli import args as cli

N_VISIBLE, N_HIDDEN, N_CHAINS, TARGET = 784, 500, 100, 1.5


def parse_args(argv):
    parser = cli.Parser(prog="bench_ais.py",
                        description="Time AIS on an RBM 784-500 against its matrix-product bound.")
    parser.add_argument("--n-betas", type=int, default=None, help="temperatures (default 14,501)")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs of each (default 1)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float64")
    parser.add_argument("--json", action="store_true", help="also print the results as one JSON object")
    args = parser.parse_args(argv)
    if args.n_betas is not None and args.n_betas < 2:
        parser.error(f"--n-betas must be >= 2, got {args.n_betas}")
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    return args


def matmul_loop(tf, x, dtype, n_steps):
    """A function running `n_steps` iterations of v -> sigmoid(v W) -> sigmoid(. W^T) in one tf.function."""
    kernel = tf.constant(0.01 * np.random.default_rng(0).standard_normal((N_VISIBLE, N_HIDDEN)), dtype)
    v0 = tf.constant(x[:N_CHAINS], dtype)

    @tf.function
    def run(n):
        def body(i, v):
            h = tf.sigmoid(tf.matmul(v, kernel))
            return i + 1, tf.sigmoid(tf.matmul(h, kernel, transpose_b=True))
        return tf.while_loop(lambda i, _: i < n, body, (0, v0))[1]

    run(tf.constant(2))  # trace
    return lambda: run(tf.constant(n_steps)).numpy()


def main(argv=None):
    return cli.run_script(parse_args, run, argv)


def run(args):
    import tensorflow as tf

    import zoo
    from zoo import evaluation

    dtype = tf.as_dtype(args.dtype)
    n_betas = args.n_betas or evaluation.DEFAULT_N_BETAS
    x = zoo.data.load("binarized_mnist").train.x
    model = zoo.models.RBM(N_HIDDEN, n_visible=N_VISIBLE, seed=0)
    evaluation.ais(model, n_betas=10, n_chains=N_CHAINS, data=x, dtype=dtype, seed=0)  # trace
    bound = matmul_loop(tf, x, dtype, n_betas - 1)
    seconds = {"AIS": [], "bound": []}
    for _ in range(args.repeats):
        result = evaluation.ais(model, n_betas=n_betas, n_chains=N_CHAINS, data=x, dtype=dtype, seed=0)
        seconds["AIS"].append(result.seconds)
        start = time.perf_counter()
        bound()
        seconds["bound"].append(time.perf_counter() - start)
    median = {k: statistics.median(v) for k, v in seconds.items()}
    ratio = median["AIS"] / median["bound"]
    gflops = 2 * 2 * N_CHAINS * N_VISIBLE * N_HIDDEN * (n_betas - 1) / median["bound"] / 1e9
    print(f"workload: forward AIS, RBM {N_VISIBLE}-{N_HIDDEN}, {n_betas} temperatures "
          f"({result.settings['schedule']}), {N_CHAINS} chains, {args.dtype}, {args.repeats} run(s)")
    print(f"AIS    {median['AIS']:8.2f} s   (log Z {result.log_z:.2f}, ESS {result.ess:.1f})")
    print(f"bound  {median['bound']:8.2f} s   ({2 * (n_betas - 1)} matrix products at {gflops:.0f} GFLOP/s)")
    print(f"AIS / bound: {ratio:.2f}x (target <= {TARGET}x: {'PASS' if ratio <= TARGET else 'FAIL'})")
    if args.json:
        print(json.dumps({"n_betas": n_betas, "n_chains": N_CHAINS, "dtype": args.dtype, "seconds": seconds,
                          "median": median, "ratio": ratio, "gflops": gflops, "pass": ratio <= TARGET}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
