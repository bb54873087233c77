"""Times a deep hybrid model's semi-supervised training through `model.fit` next to its generative part trained
alone, in the same run: the auxiliary deep generative model (z and a of 32, networks 500-500, K = 1) with the
MLP classifier (500 units) on x and its features, batches of 100 rows half labelled (100 labelled images), the
same with the small CNN classifier (`--classifier cnn`), and the same with the class y a latent variable of the
generative part (`--class-latent`: every unlabelled row bounded under each of the 10 classes). Printed: the
rows/s of each (median of --repeats), the ratios hybrid / generative part alone (target >= 0.5: the classifier
and the labelled rows cost at most as much as the generative part), CNN / MLP and class-latent / hybrid (what
the convolutions and the sum over classes cost), and the seconds to classify the 10,000 test images.

    .venv/bin/python benchmarks/bench_hybrid.py                                # 5,000 unlabelled images a timed epoch
    .venv/bin/python benchmarks/bench_hybrid.py --n-examples 500 --repeats 1   # smoke run
"""
import json
import statistics
import sys
import time

import numpy as np

from zoo.cli import args as cli

BATCH, LABELLED_PER_BATCH, N_LABELLED, TARGET = 100, 50, 100, 0.5


def parse_args(argv):
    parser = cli.Parser(prog="bench_hybrid.py", description="Time a hybrid's training against its generative "
                        "part's alone.")
    parser.add_argument("--n-examples", type=cli.positive_int, default=5000,
                        help="unlabelled images per timed epoch (default 5000)")
    parser.add_argument("--repeats", type=cli.positive_int, default=3, help="timed runs of each (default 3)")
    parser.add_argument("--json", action="store_true", help="also print the results as one JSON object")
    args = parser.parse_args(argv)
    if args.n_examples < 2 * BATCH:
        parser.error(f"--n-examples must be >= {2 * BATCH}, got {args.n_examples}")
    return args


def main(argv=None):
    return cli.run_script(parse_args, run, argv)


def run(args):
    import tensorflow as tf

    import zoo
    from zoo import data
    from zoo.models.hybrid import HybridModel

    dataset = zoo.data.load("binarized_mnist")
    x, y = dataset.train.x[:args.n_examples], dataset.train.y[:args.n_examples].astype(np.int64)
    labelled = np.arange(N_LABELLED)

    def adgm(n_classes=None):
        return zoo.AuxiliaryDeepGenerativeModel(32, 32, (500, 500), k=1, n_classes=n_classes, n_visible=784, seed=0)

    def semi_supervised(model):
        model.compile()
        batches = data.semi_supervised_batches(x, y, labelled, BATCH, LABELLED_PER_BATCH, seed=0)
        model.fit(batches.take(5), epochs=1, verbose=0)  # trace
        steps = len(x) // (BATCH - LABELLED_PER_BATCH)
        return lambda: model.fit(batches, epochs=1, verbose=0), steps * BATCH

    def generative_alone(model):
        model.compile()
        model.fit(x[:5 * BATCH], batch_size=BATCH, epochs=1, verbose=0)  # trace
        rows = len(x) // (BATCH - LABELLED_PER_BATCH) * BATCH  # as many rows as the hybrids' epoch
        repeated = np.concatenate([x] * (rows // len(x) + 1))[:rows]
        return lambda: model.fit(repeated, batch_size=BATCH, epochs=1, verbose=0), rows

    hybrid = HybridModel(adgm(), n_classes=10, hidden=(500,), seed=0)
    cnn = HybridModel(adgm(), n_classes=10, classifier="cnn", hidden=(500,), image_shape=(28, 28), seed=0)
    class_latent = HybridModel(adgm(10), n_classes=10, hidden=(500,), seed=0)
    runs = {"generative": generative_alone(adgm()), "hybrid": semi_supervised(hybrid), "cnn": semi_supervised(cnn),
            "class_latent": semi_supervised(class_latent)}
    seconds = {name: [] for name in runs}
    for _ in range(args.repeats):  # in turn, so that the machine's drifts touch each alike
        for name, (fit, _) in runs.items():
            start = time.perf_counter()
            fit()
            seconds[name].append(time.perf_counter() - start)
    rate = {name: runs[name][1] / statistics.median(s) for name, s in seconds.items()}
    start = time.perf_counter()
    hybrid.predict_classes(dataset.test.x)
    classify = time.perf_counter() - start
    ratio, cost = rate["hybrid"] / rate["generative"], rate["class_latent"] / rate["hybrid"]
    cnn_cost = rate["cnn"] / rate["hybrid"]
    print(f"workload: ADGM (z, a of 32, networks 500-500, K = 1) + MLP 500 classifier, batches of {BATCH} rows "
          f"({LABELLED_PER_BATCH} labelled of {N_LABELLED}), one epoch of {len(x)} unlabelled binarised MNIST images "
          f"({runs['hybrid'][1]} rows), {args.repeats} run(s)")
    print(f"generative part alone  {rate['generative']:8.0f} rows/s")
    print(f"hybrid                 {rate['hybrid']:8.0f} rows/s")
    print(f"hybrid, CNN classifier {rate['cnn']:8.0f} rows/s")
    print(f"hybrid, class latent   {rate['class_latent']:8.0f} rows/s")
    print(f"hybrid / generative part alone: {ratio:.2f} (target >= {TARGET}: {'PASS' if ratio >= TARGET else 'FAIL'})")
    print(f"CNN / MLP classifier: {cnn_cost:.2f} (two 5x5 convolutions of 32 and 64 channels)")
    print(f"class latent / hybrid: {cost:.2f} (the bound under each of 10 classes)")
    print(f"classify the 10,000 test images: {classify:.2f} s")
    if args.json:
        print(json.dumps({"rows": runs["hybrid"][1], "seconds": seconds, "rows_per_second": rate, "ratio": ratio,
                          "class_latent_ratio": cost, "cnn_ratio": cnn_cost, "pass": ratio >= TARGET,
                          "classify_seconds": classify}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
