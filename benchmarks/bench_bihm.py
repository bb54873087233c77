"""Times the bidirectional Helmholtz machine of the paper, 784-300-200-100-75-50-35-30-25-20-15-10-10 (SBN p and
q, K = 10, batch 100), trained through `model.fit`, next to the bound of its matrix products alone measured in the
same run (bench_rws.py's: each weight matrix of both stacks in a forward product and the two of its gradient, on
K * batch rows); then the seconds of a K = 1000 evaluation of test examples and of a log Z estimate. Printed:
examples/s of each (median of --repeats), their ratio, the evaluation's and log Z's seconds and what the whole
test split and 10^6 samples of p would take at that rate.

    .venv/bin/python benchmarks/bench_bihm.py                                # 10,000 examples, 200 evaluated
    .venv/bin/python benchmarks/bench_bihm.py --n-examples 1000 --eval-examples 20 --z-samples 1000   # smoke run
"""
import json
import sys

import bench_rws
from bench_rws import BATCH

from zoo.cli import args as cli

LAYERS, K = (300, 200, 100, 75, 50, 35, 30, 25, 20, 15, 10, 10), 10


def parse_args(argv):
    parser = bench_rws.parser("bench_bihm.py", "Time BiHM training against its matrix-product bound, and its "
                              "evaluation.", eval_examples=200)
    parser.add_argument("--z-samples", type=cli.positive_int, default=100000,
                        help="samples of p for the timed log Z estimate (default 100000)")
    return bench_rws.parse(parser, argv)


def main(argv=None):
    return cli.run_script(parse_args, run, argv)


def run(args):
    import tensorflow as tf

    import zoo
    from zoo import evaluation

    dataset = zoo.data.load("binarized_mnist")
    x = dataset.train.x[:args.n_examples - args.n_examples % BATCH]
    model = zoo.BiHM(list(LAYERS), k=K, seed=0)
    seconds, rate = bench_rws.time_fit_against_bound(tf, model, x, args.repeats, layers=LAYERS)
    ratio = rate["fit"] / rate["bound"]
    evaluated = evaluation.importance.log_likelihood(model, dataset.test.x[:args.eval_examples], k=1000, power=2)
    log_z = evaluation.importance.log_partition(model, n_samples=args.z_samples, k=10,
                                                batch_size=min(10000, args.z_samples))
    print(f"workload: BiHM 784-{'-'.join(map(str, LAYERS))}, SBN p and q, K = {K}, batch {BATCH}, one epoch of "
          f"{len(x)} binarised MNIST images, {args.repeats} run(s)")
    print(f"model.fit  {rate['fit']:9.0f} examples/s")
    print(f"bound      {rate['bound']:9.0f} examples/s   (its matrix products alone)")
    print(f"fit / bound: {ratio:.2f}")
    print(f"evaluation: K = 1000 on {args.eval_examples} test images in {evaluated.seconds:.1f} s "
          f"({evaluated.seconds * 10000 / args.eval_examples:.0f} s for the 10,000 of the test split at this rate)")
    print(f"log Z: {args.z_samples} samples of p (10 of q each) in {log_z.seconds:.1f} s "
          f"({log_z.seconds * 10 ** 6 / args.z_samples:.0f} s for 10^6 at this rate)")
    if args.json:
        print(json.dumps({"n_examples": len(x), "seconds": seconds, "examples_per_second": rate, "ratio": ratio,
                          "eval_seconds": evaluated.seconds, "eval_examples": args.eval_examples,
                          "z_seconds": log_z.seconds, "z_samples": args.z_samples}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
