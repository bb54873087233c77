"""Times reweighted wake-sleep training of a Helmholtz machine 784-200-200-10 (SBN p and q, K = 10, batch 100)
through `model.fit`, next to the bound of its matrix products alone measured in the same run, and a K = 1000
evaluation of test examples. Target: training at least half the bound's speed (examples/s). Printed: the
examples/s of each (median of --repeats), their ratio, PASS/FAIL (reported, exit 0), the evaluation's seconds.

The bound: per training step, each weight matrix of both stacks (784x200, 200x200, 200x10) in three products of
(K * batch) rows, a forward product and the two of its gradient, in one compiled loop; the sleep phase's
products on `batch` rows are left out, so the bound is a little optimistic.

    .venv/bin/python benchmarks/bench_rws.py                                         # 10,000 examples, 1,000 evaluated
    .venv/bin/python benchmarks/bench_rws.py --n-examples 2000 --eval-examples 100   # smoke run
"""
import json
import statistics
import sys
import time

import numpy as np

from zoo.cli import args as cli

LAYERS, K, BATCH, TARGET = (200, 200, 10), 10, 100, 0.5


def parser(prog, description, eval_examples):
    """The options of the directed models' benchmarks (this one and bench_bihm.py); add more, then `parse`."""
    parser = cli.Parser(prog=prog, description=description)
    parser.add_argument("--n-examples", type=cli.positive_int, default=10000, help="training examples per timed "
                        "epoch (default 10000)")
    parser.add_argument("--eval-examples", type=cli.positive_int, default=eval_examples,
                        help=f"test examples of the K = 1000 evaluation (default {eval_examples})")
    parser.add_argument("--repeats", type=cli.positive_int, default=3, help="timed runs of each (default 3)")
    parser.add_argument("--json", action="store_true", help="also print the results as one JSON object")
    return parser


def parse(parser, argv):
    args = parser.parse_args(argv)
    if args.n_examples < BATCH:
        parser.error(f"--n-examples must be >= {BATCH}, got {args.n_examples}")
    return args


def parse_args(argv):
    return parse(parser("bench_rws.py", "Time reweighted wake-sleep training against its matrix-product bound.",
                        eval_examples=1000), argv)


def time_fit_against_bound(tf, model, x, repeats, layers=LAYERS):
    """Seconds of one `model.fit` epoch on x (batch BATCH) and of its matrix-product bound, `repeats` times each
    in turn after a traced warm-up, and the median examples/s of each: (seconds, rate)."""
    model.fit(x[:10 * BATCH], batch_size=BATCH, epochs=1, verbose=0)  # trace
    bound = matmul_bound(tf, len(x) // BATCH, layers=layers, k=model.k, batch=BATCH)
    seconds = {"fit": [], "bound": []}
    for _ in range(repeats):
        start = time.perf_counter()
        model.fit(x, batch_size=BATCH, epochs=1, verbose=0)
        seconds["fit"].append(time.perf_counter() - start)
        start = time.perf_counter()
        bound()
        seconds["bound"].append(time.perf_counter() - start)
    return seconds, {name: len(x) / statistics.median(s) for name, s in seconds.items()}


def matmul_bound(tf, n_steps, layers=LAYERS, k=K, batch=BATCH):
    """A function running the matrix products of `n_steps` training steps in one tf.function (also the bound
    of benchmarks/bench_bihm.py, whose model has the same two stacks)."""
    sizes = (784,) + tuple(layers)
    rng = np.random.default_rng(0)
    kernels = [tf.constant(0.01 * rng.standard_normal((a, b)), tf.float32) for a, b in zip(sizes, sizes[1:])]
    inputs = [tf.constant(rng.random((k * batch, a)), tf.float32) for a in sizes[:-1]]
    outputs = [tf.constant(rng.random((k * batch, b)), tf.float32) for b in sizes[1:]]

    @tf.function
    def run(n):
        def body(i, total):
            for w, x, y in zip(kernels, inputs, outputs):  # both stacks: q (x -> y) and p (y -> x)
                for a, b, kernel in ((x, y, w), (y, x, tf.transpose(w))):
                    out = tf.matmul(a, kernel)  # forward, then the gradients' two products
                    back = tf.matmul(out, kernel, transpose_b=True)
                    total += tf.reduce_sum(out[:1, :1]) + tf.reduce_sum(back[:1, :1])
                    total += tf.reduce_sum(tf.matmul(a, out, transpose_a=True)[:1, :1])
            return i + 1, total
        return tf.while_loop(lambda i, _: i < n, body, (0, tf.constant(0.0)))[1]

    run(tf.constant(1))  # trace
    return lambda: float(run(tf.constant(n_steps)))


def main(argv=None):
    return cli.run_script(parse_args, run, argv)


def run(args):
    import tensorflow as tf

    import zoo
    from zoo import evaluation

    dataset = zoo.data.load("binarized_mnist")
    x = dataset.train.x[:args.n_examples - args.n_examples % BATCH]
    model = zoo.HelmholtzMachine(list(LAYERS), k=K, seed=0)
    seconds, rate = time_fit_against_bound(tf, model, x, args.repeats)
    ratio = rate["fit"] / rate["bound"]
    evaluated = evaluation.importance.log_likelihood(model, dataset.test.x[:args.eval_examples], k=1000, seed=0)
    print(f"workload: Helmholtz machine 784-{'-'.join(map(str, LAYERS))}, SBN p and q, K = {K}, batch {BATCH}, "
          f"wake and sleep q updates, one epoch of {len(x)} binarised MNIST images, {args.repeats} run(s)")
    print(f"model.fit  {rate['fit']:9.0f} examples/s")
    print(f"bound      {rate['bound']:9.0f} examples/s   (its matrix products alone)")
    print(f"fit / bound: {ratio:.2f} (target >= {TARGET}: {'PASS' if ratio >= TARGET else 'FAIL'})")
    print(f"evaluation: K = 1000 on {args.eval_examples} test images in {evaluated.seconds:.1f} s "
          f"({evaluated.seconds * 10000 / args.eval_examples:.0f} s for the 10,000 of the test split at this rate)")
    if args.json:
        print(json.dumps({"n_examples": len(x), "seconds": seconds, "examples_per_second": rate, "ratio": ratio,
                          "pass": ratio >= TARGET, "eval_seconds": evaluated.seconds,
                          "eval_examples": args.eval_examples}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
