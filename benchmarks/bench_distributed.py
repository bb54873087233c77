"""Times the distributed training path (`zoo.distributed.fit_distributed`: a compiled `strategy.run` of the model's
own `train_step`, logs reduced across replicas, Keras callbacks) against `model.fit` on one device, side by side in
one run, for an RBM 784-500 (CD-1, a hand-made update) and a Helmholtz machine 200-200-10 (reweighted wake-sleep,
K = 10, gradients through the optimizer), on binarised MNIST images, batches of 100:

  fit          `model.fit` under the default strategy (one device): what `zoo train` runs without --strategy;
  loop x1      `fit_distributed` under MirroredStrategy over that one device: the distributed path's own cost;
  loop x2      `fit_distributed` under MirroredStrategy over two logical CPU devices of this host, each replica
               half of every batch: the path with a real all-reduce (on this 2-core machine, no speed-up to
               expect: both replicas share the cores);
  2 workers    `fit_distributed` under MultiWorkerMirroredStrategy on two processes on 127.0.0.1 (TF_CONFIG,
               ports from a port-0 bind, each under a timeout), each half of every batch: the all-reduce crosses
               processes through gRPC, as between hosts;

each contestant a fresh model with the same initial weights, one warm-up epoch (tracing), then timed epochs of
--examples images, interleaved in rounds (--repeats) in a rotating order; the medians compared. The two worker
processes time their own --repeats epochs of each model after the others' rounds (a cluster cannot pause between
rounds); the chief's times are theirs.

It also prints the scaling on paper: for each model, the bytes all-reduced per step (its float32 gradients, all
trainable weights), the arithmetic per example (floating-point operations of the compiled `train_step`, counted by
TensorFlow's graph profiler), hence, for a ring all-reduce on a network of --bandwidth Gbit/s between devices of
--tflops TFLOP/s (assumptions, not measurements), the efficiency t_compute / (t_compute + t_allreduce) at 8 and 64
workers for a batch of 100 per worker, and the batch per worker each needs for 90 % efficiency. `--smoke` shrinks
the models and runs one short round.

    .venv/bin/python benchmarks/bench_distributed.py                    # 5 rounds of 5,000 images
    .venv/bin/python benchmarks/bench_distributed.py --smoke            # smoke run (the test suite's)
"""
import argparse
import json
import statistics
import sys
import time

import numpy as np

from zoo.cli import args as cli

BATCH = 100
FAMILIES = {"rbm": "RBM 784-500, CD-1", "helmholtz": "Helmholtz 200-200-10, RWS K=10"}
CONTESTANTS = ("fit", "loop x1", "loop x2")
WORKERS_CONTESTANT = "2 workers"
WORKER_TIMEOUT = 600  # seconds the worker processes may take (tracing, --repeats epochs), then they are killed
WORKERS = (8, 64)
TARGET_EFFICIENCY = 0.9


def parse_args(argv):
    parser = cli.Parser(prog="bench_distributed.py", description="Time fit_distributed under MirroredStrategy "
                        "(one and two devices) against model.fit on one device; print the scaling on paper.")
    parser.add_argument("--examples", type=cli.positive_int,
                        help="images a timed epoch (default 5000; --smoke 400)")
    parser.add_argument("--repeats", type=cli.positive_int, help="timed rounds (default 5; --smoke 1)")
    parser.add_argument("--bandwidth", type=float, default=100.0, metavar="GBIT_S",
                        help="the network's bandwidth per worker for the scaling on paper (default 100 Gbit/s)")
    parser.add_argument("--tflops", type=float, default=10.0,
                        help="each worker's sustained arithmetic for the scaling on paper (default 10 TFLOP/s)")
    parser.add_argument("--smoke", action="store_true", help="models a tenth the size, 400 images, one round")
    parser.add_argument("--json", action="store_true", help="also print the results as one JSON object")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # a process of '2 workers'
    args = parser.parse_args(argv)
    if args.bandwidth <= 0 or args.tflops <= 0:
        parser.error(f"--bandwidth and --tflops must be > 0, got {args.bandwidth:g} and {args.tflops:g}")
    if args.examples is None:
        args.examples = 400 if args.smoke else 5000
    if args.examples < 2 * BATCH:
        parser.error(f"--examples must be >= {2 * BATCH}, got {args.examples}")
    if args.repeats is None:
        args.repeats = 1 if args.smoke else 5
    return args


def two_logical_cpus():
    """Split this host's CPU into two logical devices (before TensorFlow starts), for MirroredStrategy over two."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)


def make_model(family, smoke):
    import keras

    from zoo.models import RBM, HelmholtzMachine

    keras.utils.set_random_seed(0)
    if family == "rbm":
        model = RBM(50 if smoke else 500, n_visible=784, seed=0)
        model.compile(keras.optimizers.SGD(0.01))
    else:
        model = HelmholtzMachine([20, 20, 5] if smoke else [200, 200, 10], n_visible=784, k=10, seed=0)
        model.compile(keras.optimizers.Adam(1e-3))
    return model


def contestant(name, family, x, smoke, strategies):
    """A function that trains one epoch of `name`'s path on a fresh model (built and warmed up now)."""
    from zoo import distributed

    strategy = strategies[name]
    with strategy.scope():
        model = make_model(family, smoke)
    if name == "fit":
        def epoch():
            model.fit(x, batch_size=BATCH, epochs=1, verbose=0, shuffle=False)
    else:
        pipeline = distributed.as_pipeline(model, x, BATCH, seed=0)

        def epoch():
            distributed.fit_distributed(model, pipeline, 1, verbose=0)
    epoch()  # tracing and the optimizer's slots
    return epoch


def worker(args):
    """One of the '2 workers' processes (TF_CONFIG set by `two_workers`): for each family, a warm-up epoch, then
    --repeats timed epochs of the distributed path; the chief prints their seconds as JSON, by family."""
    from zoo import data, distributed

    strategy = distributed.create_strategy("multi-worker", connect_timeout=60)
    x = data.load("binarized_mnist").train.x[:args.examples // BATCH * BATCH]
    times = {}
    for family in FAMILIES:
        with strategy.scope():
            model = make_model(family, args.smoke)
        pipeline = distributed.as_pipeline(model, x, BATCH, seed=0)
        distributed.fit_distributed(model, pipeline, 1, verbose=0)  # tracing and the optimizer's slots
        times[family] = []
        for r in range(args.repeats):
            start = time.perf_counter()
            distributed.fit_distributed(model, pipeline, 1, verbose=0)
            times[family].append(time.perf_counter() - start)
    if distributed.is_chief(strategy):
        print(json.dumps(times))
    return 0


def two_workers(args):
    """{family: the seconds of the '2 workers' contestant's timed epochs}: this script started twice with --worker,
    as the two workers of a cluster on 127.0.0.1, each killed after WORKER_TIMEOUT seconds."""
    from zoo import distributed

    command = [sys.executable, __file__, "--worker", "--examples", str(args.examples), "--repeats",
               str(args.repeats), *(["--smoke"] if args.smoke else [])]
    results = distributed.run_local_workers(command, 2, WORKER_TIMEOUT)
    if any(code for code, _, _ in results):
        errors = [err.strip().splitlines()[-1] for code, _, err in results if code and err.strip()]
        raise RuntimeError(f"the two worker processes failed: {'; '.join(errors)}")
    return json.loads(results[0][1].strip().splitlines()[-1])


def scaling(family, smoke, bandwidth_gbit, tflops):
    """Bytes all-reduced and floating-point operations of one step on a batch of BATCH, and the efficiency of a
    ring all-reduce (each worker sends and receives 2 (n - 1) / n of the gradients' bytes) at each of WORKERS."""
    import tensorflow as tf
    from tensorflow.python.profiler import model_analyzer, option_builder

    model = make_model(family, smoke)
    model.optimizer.build(model.trainable_variables)
    graph = tf.function(model.train_step).get_concrete_function(tf.TensorSpec([BATCH, 784], tf.float32)).graph
    loops = [op.name for op in graph.get_operations() if "While" in op.type]
    if loops and not (family == "rbm" and model.cd_k_init == 1):  # CD-1's Gibbs loop runs its body once
        raise ValueError(f"{family}'s step has loops {loops}: the profiler would count each body once")
    options = option_builder.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    flops = model_analyzer.profile(graph, options=options).total_float_ops / BATCH
    gradient_bytes = 4 * sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    rows = {"flops_per_example": flops, "allreduce_bytes": gradient_bytes, "efficiency": {}, "batch_for_90": {}}
    for n in WORKERS:
        t_allreduce = 2 * (n - 1) / n * gradient_bytes * 8 / (bandwidth_gbit * 1e9)
        t_compute = BATCH * flops / (tflops * 1e12)
        rows["efficiency"][n] = t_compute / (t_compute + t_allreduce)
        # t_compute(b) >= 9 t_allreduce for 90 %: b = 9 t_allreduce / (flops / rate)
        need = TARGET_EFFICIENCY / (1 - TARGET_EFFICIENCY) * t_allreduce * tflops * 1e12 / flops
        rows["batch_for_90"][n] = int(np.ceil(need))
    return rows


def main(argv=None):
    return cli.run_script(parse_args, run, argv)


def run(args):
    if args.worker:
        return worker(args)
    two_logical_cpus()
    import tensorflow as tf

    from zoo import data

    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    strategies = {"fit": tf.distribute.get_strategy(), "loop x1": tf.distribute.MirroredStrategy(devices[:1]),
                  "loop x2": tf.distribute.MirroredStrategy(devices[:2])}
    x = data.load("binarized_mnist").train.x[:args.examples // BATCH * BATCH]
    times = {}
    for family in FAMILIES:
        epochs = {name: contestant(name, family, x, args.smoke, strategies) for name in CONTESTANTS}
        times[family] = {name: [] for name in CONTESTANTS}
        for r in range(args.repeats):
            for name in CONTESTANTS[r % 3:] + CONTESTANTS[:r % 3]:
                start = time.perf_counter()
                epochs[name]()
                times[family][name].append(time.perf_counter() - start)
    worker_times, results = two_workers(args), {}
    for family in FAMILIES:
        runs = {**times[family], WORKERS_CONTESTANT: worker_times[family]}
        steps = len(x) // BATCH
        ms = {name: 1000 * statistics.median(t) / steps for name, t in runs.items()}
        results[family] = {"ms_per_step": ms, "runs": runs,
                           **scaling(family, args.smoke, args.bandwidth, args.tflops)}
    report(results, args)
    return 0


def report(results, args):
    if args.smoke:
        print("(--smoke: every model's widths a tenth of those named)")
    print(f"ms a step (median of {args.repeats} epochs of {args.examples // BATCH} steps, batch {BATCH}):")
    names = CONTESTANTS + (WORKERS_CONTESTANT,)
    print(f"{'':<34}" + "".join(f"{name:>10}" for name in names) + f"{'x1/fit':>10}{'x2/fit':>10}{'w2/fit':>10}")
    for family, r in results.items():
        ms = r["ms_per_step"]
        print(f"{FAMILIES[family]:<34}" + "".join(f"{ms[name]:>10.2f}" for name in names)
              + "".join(f"{ms[name] / ms['fit']:>9.2f}x" for name in names[1:]))
    print(f"\nScaling on paper (ring all-reduce, {args.bandwidth:g} Gbit/s a worker, {args.tflops:g} TFLOP/s a worker, "
          f"batch {BATCH} a worker; assumptions, not measurements):")
    print(f"{'':<34}{'MFLOP/ex':>10}{'MB/step':>10}" + "".join(f"{f'eff@{n}':>9}{f'b90@{n}':>9}" for n in WORKERS))
    for family, r in results.items():
        print(f"{FAMILIES[family]:<34}{r['flops_per_example'] / 1e6:>10.2f}{r['allreduce_bytes'] / 1e6:>10.2f}"
              + "".join(f"{100 * r['efficiency'][n]:>8.0f}%{r['batch_for_90'][n]:>9}" for n in WORKERS))
    print("(eff@n: t_compute / (t_compute + t_allreduce) without overlap; b90@n: the batch per worker for 90 %)")
    if args.json:
        print(json.dumps({"args": vars(args), "results": results}))


if __name__ == "__main__":
    sys.exit(main())
