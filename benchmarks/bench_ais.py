"""Times forward AIS with the default schedule (Salakhutdinov & Murray, 14,501 temperatures) and 100 chains on
an RBM 784-500 (--model rbm, the default) or a DBM 784-500-1000 (--model dbm, moving the 500 units of x_1 with
v and x_2 summed out), next to the matrix-product bound measured in the same run: the same number of iterations
of the products each AIS step needs, in one compiled loop, in the same dtype, with a sigmoid after each so the
values stay normal. An RBM's step: (100 x 784) W and (100 x 500) W^T; a DBM's: x_1 W_0^T and x_1 W_1 (the
summed layers' inputs), then v W_0 + x_2 W_1^T (x_1's). Target: AIS within 1.5x of the bound. Printed: seconds
of each (median of --repeats), the ratio, PASS/FAIL (reported, exit 0).

    .venv/bin/python benchmarks/bench_ais.py                  # the benchmark (RBM, float64, the default)
    .venv/bin/python benchmarks/bench_ais.py --model dbm
    .venv/bin/python benchmarks/bench_ais.py --dtype float32
    .venv/bin/python benchmarks/bench_ais.py --n-betas 1000   # smoke run
"""
import json
import statistics
import sys
import time

import numpy as np

from zoo.cli import args as cli

N_CHAINS, TARGET = 100, 1.5
SIZES = {"rbm": (784, 500), "dbm": (784, 500, 1000)}


def parse_args(argv):
    parser = cli.Parser(prog="bench_ais.py",
                        description="Time AIS on an RBM 784-500 or a DBM 784-500-1000 against its "
                                    "matrix-product bound.")
    parser.add_argument("--model", choices=sorted(SIZES), default="rbm", help="(default: %(default)s)")
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


def matmul_loop(tf, model, dtype, n_steps):
    """A function running `n_steps` iterations of one AIS step's matrix products in one tf.function: an RBM's
    v -> h = sigmoid(v W) -> sigmoid(h W^T); a DBM's x_1 -> v = sigmoid(x_1 W_0^T), x_2 = sigmoid(x_1 W_1) ->
    sigmoid(v W_0 + x_2 W_1^T)."""
    sizes = SIZES[model]
    rng = np.random.default_rng(0)
    kernels = [tf.constant(0.01 * rng.standard_normal(shape), dtype) for shape in zip(sizes[:-1], sizes[1:])]
    moved = sizes[0] if model == "rbm" else sizes[1]
    x0 = tf.constant(rng.random((N_CHAINS, moved)) < 0.5, dtype)

    def rbm_step(v):
        h = tf.sigmoid(tf.matmul(v, kernels[0]))
        return tf.sigmoid(tf.matmul(h, kernels[0], transpose_b=True))

    def dbm_step(h1):
        v = tf.sigmoid(tf.matmul(h1, kernels[0], transpose_b=True))
        h2 = tf.sigmoid(tf.matmul(h1, kernels[1]))
        return tf.sigmoid(tf.matmul(v, kernels[0]) + tf.matmul(h2, kernels[1], transpose_b=True))

    step = rbm_step if model == "rbm" else dbm_step

    @tf.function
    def run(n):
        return tf.while_loop(lambda i, _: i < n, lambda i, x: (i + 1, step(x)), (0, x0))[1]

    run(tf.constant(2))  # trace
    return lambda: run(tf.constant(n_steps)).numpy()


def flops_per_step(model):
    """Multiply-adds x 2 of one AIS step's matrix products over the chains."""
    sizes = SIZES[model]
    return 2 * 2 * N_CHAINS * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))


def main(argv=None):
    return cli.run_script(parse_args, run, argv)


def run(args):
    import tensorflow as tf

    import zoo
    from zoo import evaluation

    dtype = tf.as_dtype(args.dtype)
    n_betas = args.n_betas or evaluation.DEFAULT_N_BETAS
    x = zoo.data.load("binarized_mnist").train.x
    sizes = SIZES[args.model]
    if args.model == "rbm":
        model = zoo.models.RBM(sizes[1], n_visible=sizes[0], seed=0)
    else:
        model = zoo.models.DBM(list(sizes[1:]), n_visible=sizes[0], seed=0)
    evaluation.ais(model, n_betas=10, n_chains=N_CHAINS, data=x, dtype=dtype, seed=0)  # trace
    bound = matmul_loop(tf, args.model, dtype, n_betas - 1)
    seconds = {"AIS": [], "bound": []}
    for _ in range(args.repeats):
        result = evaluation.ais(model, n_betas=n_betas, n_chains=N_CHAINS, data=x, dtype=dtype, seed=0)
        seconds["AIS"].append(result.seconds)
        start = time.perf_counter()
        bound()
        seconds["bound"].append(time.perf_counter() - start)
    median = {k: statistics.median(v) for k, v in seconds.items()}
    ratio = median["AIS"] / median["bound"]
    gflops = flops_per_step(args.model) * (n_betas - 1) / median["bound"] / 1e9
    products = (n_betas - 1) * (2 if args.model == "rbm" else 4)
    print(f"workload: forward AIS, {args.model.upper()} {'-'.join(map(str, sizes))}, {n_betas} temperatures "
          f"({result.settings['schedule']}), {N_CHAINS} chains, {args.dtype}, {args.repeats} run(s)")
    print(f"AIS    {median['AIS']:8.2f} s   (log Z {result.log_z:.2f}, ESS {result.ess:.1f})")
    print(f"bound  {median['bound']:8.2f} s   ({products} matrix products at {gflops:.0f} GFLOP/s)")
    print(f"AIS / bound: {ratio:.2f}x (target <= {TARGET}x: {'PASS' if ratio <= TARGET else 'FAIL'})")
    if args.json:
        print(json.dumps({"model": args.model, "n_betas": n_betas, "n_chains": N_CHAINS, "dtype": args.dtype,
                          "seconds": seconds, "median": median, "ratio": ratio, "gflops": gflops,
                          "pass": ratio <= TARGET}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
