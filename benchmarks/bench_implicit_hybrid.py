"""Times the implicit-density hybrid's training step (`zoo.ImplicitHybrid`: ALI whose joint discriminator D(x, z)
classifies, with a Pi-model consistency term) next to the floor of its networks' work and next to its ablations,
side by side in one run, on the MNIST MLP configuration: 784 inputs, z of 100, D's x branch 1000-500-250-250-250
and z branch 500-250, G 500-500, E 500-500 (the defaults), batches of 200 rows of which 100 are labelled (from 100
labelled images), translations of up to 2 pixels in every contestant. Each contestant runs the same --steps batches
per timed run, one compiled call a step as `fit` makes them; runs of all contestants are interleaved in rounds
(--repeats) in a rotating order, and the medians compared:

  (a) hybrid       `model.train_step` in a tf.function: consistency weight 10, adversarial (ALI), translate 2;
      fit          the same model's steps through `model.fit` on a tf.data pipeline of the same batches;
  (b) floor        the same networks' calls alone, in one plain tf.function: E then D on the batch twice, G then D on
                   the fakes (as many as unlabelled rows), cross-entropy, consistency, GAN and feature-matching
                   losses by slicing (no masks), the two players' gradients, two Adam updates; no translations, no
                   weight average, no monitored terms: what the hybrid's step should approach;
  (c) classifier   the classifier alone (supervised only: adversarial=False, consistency 0);
      consistency  + the consistency term (adversarial=False);
      ali          + ALI (adversarial, consistency 0);
  parts            two of what (a) does outside (b), timed alone: the two translations of the batch, and the weight
                   average's update (`copy_to_average`).

Printed: rows/s and ms a step of each (median over the runs), the CPU share other processes used during each run,
the ratios hybrid / floor and fit / hybrid step (time a step), and each ablation's and the hybrid's time a step over
the classifier alone's (what each term costs). `--smoke` shrinks every width and z to a tenth and runs 2 steps once.

    .venv/bin/python benchmarks/bench_implicit_hybrid.py                    # 10 steps a run, 5 runs
    .venv/bin/python benchmarks/bench_implicit_hybrid.py --smoke            # smoke run (the test suite's)
"""
import json
import os
import statistics
import sys
import time

import numpy as np

from zoo.cli import args as cli

BATCH, N_LABELLED, CONSISTENCY, TRANSLATE = 200, 100, 10.0, 2
NETWORKS = {"n_latent": 100, "discriminator_hidden": (1000, 500, 250, 250, 250), "latent_hidden": (500, 250),
            "generator_hidden": (500, 500), "encoder_hidden": (500, 500)}
SMOKE = {"n_latent": 10, "discriminator_hidden": (100, 50, 25, 25, 25), "latent_hidden": (50, 25),
         "generator_hidden": (50, 50), "encoder_hidden": (50, 50)}
#: the models timed through their own train_step, and their objective's settings
VARIANTS = {"hybrid": {"consistency_weight": CONSISTENCY, "adversarial": True},
            "classifier": {"consistency_weight": 0.0, "adversarial": False},
            "consistency": {"consistency_weight": CONSISTENCY, "adversarial": False},
            "ali": {"consistency_weight": 0.0, "adversarial": True}}
LABELS = {"hybrid": "(a) hybrid step", "fit": "(a) hybrid, model.fit", "floor": "(b) floor",
          "classifier": "(c) classifier alone", "consistency": "(c) + consistency", "ali": "(c) + ALI"}
PARTS = {"translations": "two translations", "average": "weight average"}


def parse_args(argv):
    parser = cli.Parser(prog="bench_implicit_hybrid.py", description="Time the implicit hybrid's training step "
                        "against its networks' forward and backward passes alone, and its ablations'.")
    parser.add_argument("--steps", type=cli.positive_int, help="timed training steps a run (default 10; --smoke 2)")
    parser.add_argument("--repeats", type=cli.positive_int,
                        help="timed runs of each, interleaved (default 5; --smoke 1)")
    parser.add_argument("--batch-size", type=cli.positive_int, default=BATCH,
                        help=f"rows a batch, half of them labelled (default {BATCH})")
    parser.add_argument("--smoke", action="store_true", help="every width and z a tenth of the MNIST MLP's, "
                        "2 steps, 1 run: a check that the script works")
    parser.add_argument("--json", action="store_true", help="also print the results as one JSON object")
    args = parser.parse_args(argv)
    if args.batch_size < 2 or args.batch_size % 2:
        parser.error(f"--batch-size must be even and >= 2, got {args.batch_size}")
    if args.steps is None:
        args.steps = 2 if args.smoke else 10
    if args.repeats is None:
        args.repeats = 1 if args.smoke else 5
    return args


def cpu_seconds():
    """(CPU seconds busy on the whole machine incl. steal, CPU seconds of this process)."""
    with open("/proc/stat") as f:
        ticks = [int(t) for t in f.readline().split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK"), sum(os.times()[:2])


def floor_step(model, n_labelled, tf, keras):
    """The floor: a tf.function step(x, y) running `model`'s networks as its train_step calls them (training=True:
    their noise and dropout), on x whose first n_labelled rows are labelled, with plain losses of the same terms,
    each player's gradient and its own Adam update (3e-4, beta_1 0.5, as the model's default). Returns D's loss."""
    encoder, x_branch, z_branch, head, generator = (model.encoder_net, model.x_branch, model.z_branch, model.head,
                                                    model.generator)
    d_vars, g_vars = model.discriminator_variables(), model.generator_variables()
    d_optimizer, g_optimizer = (keras.optimizers.Adam(3e-4, beta_1=0.5) for _ in range(2))
    d_optimizer.build(d_vars)
    g_optimizer.build(g_vars)

    def discriminate(x, z):
        features = tf.concat([x_branch(x, training=True), z_branch(z, training=True)], axis=-1)
        return head(features), features

    @tf.function
    def step(x, y):
        n_fake = tf.shape(x)[0] - n_labelled
        with tf.GradientTape(persistent=True) as tape:
            logits, real_features = discriminate(x, encoder(x, training=True))
            logits2, _ = discriminate(x, encoder(x, training=True))
            z = tf.random.uniform([n_fake, model.n_latent])
            fake_logits, fake_features = discriminate(generator(z, training=True), z)
            real, fake = tf.reduce_logsumexp(logits[n_labelled:], -1), tf.reduce_logsumexp(fake_logits, -1)
            d_loss = (tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y[:n_labelled],
                                                                                    logits[:n_labelled])) +
                      tf.reduce_mean(tf.square(tf.nn.softmax(logits) - tf.nn.softmax(logits2))) +
                      0.5 * (tf.reduce_mean(tf.nn.softplus(-real)) + tf.reduce_mean(tf.nn.softplus(fake))))
            g_loss = tf.reduce_mean(tf.abs(tf.reduce_mean(real_features[n_labelled:], 0) -
                                           tf.reduce_mean(fake_features, 0)))
        d_grads, g_grads = tape.gradient(d_loss, d_vars), tape.gradient(g_loss, g_vars)
        g_optimizer.apply_gradients(zip(g_grads, g_vars))
        d_optimizer.apply_gradients(zip(d_grads, d_vars))
        return d_loss

    return step


def main(argv=None):
    return cli.run_script(parse_args, run, argv)


def run(args):
    import keras
    import tensorflow as tf

    import zoo
    from zoo import data
    from zoo.models import ImplicitHybrid

    networks = SMOKE if args.smoke else NETWORKS
    half = args.batch_size // 2
    n_labelled = max(N_LABELLED, half)
    train = zoo.data.load("mnist").train
    n_rows = max(n_labelled, (args.steps + 2) * half)
    x, y = train.x[:n_rows], train.y[:n_rows].astype(np.int64)
    pipeline = data.semi_supervised_batches(x, y, np.arange(n_labelled), args.batch_size, half, seed=0)
    batches = [(bx, tf.cast(by, tf.int32)) for bx, by in pipeline.take(args.steps + 2)]
    chunks = {"warm-up": batches[:2], "timed": batches[2:]}  # warm-up (untimed): the traces and first runs

    def model(**objective):
        m = ImplicitHybrid(784, n_classes=10, image_shape=(28, 28), translate=TRANSLATE, seed=0, **networks,
                           **objective)
        m.compile()
        return m

    def stepper(step):
        """A contestant: step(x, y) on each batch of a chunk, one call a step, its last results fetched."""
        def steps(chunk):
            for bx, by in chunks[chunk]:
                out = step(bx, by)
            tf.nest.map_structure(lambda t: t.numpy(), out)
        return steps

    models = {name: model(**objective) for name, objective in VARIANTS.items()}
    hybrid = models["hybrid"]
    runs = {name: stepper(tf.function(lambda bx, by, m=m: m.train_step((bx, by)))) for name, m in models.items()}
    as_datasets = {chunk: tf.data.Dataset.from_tensor_slices(tuple(tf.stack(t) for t in zip(*rows)))
                   for chunk, rows in chunks.items()}  # the same batches for fit, made once
    runs["fit"] = lambda chunk: hybrid.fit(as_datasets[chunk], epochs=1, verbose=0)
    runs["floor"] = stepper(floor_step(model(**VARIANTS["hybrid"]), half, tf, keras))
    seeds = tf.constant([[1, 2], [3, 4]], tf.int32)
    translations = tf.function(lambda bx: (hybrid.translated(bx, seeds[0]), hybrid.translated(bx, seeds[1])))
    average = tf.function(lambda: hybrid.copy_to_average(hybrid.average_rate()) or tf.constant(0.0))
    runs["translations"] = stepper(lambda bx, by: translations(bx))
    runs["average"] = stepper(lambda bx, by: average())
    runs = {name: runs[name] for name in [*LABELS, *PARTS]}  # in the order printed
    for contestant in runs.values():
        contestant("warm-up")

    seconds, others = {name: [] for name in runs}, {name: [] for name in runs}
    for r in range(args.repeats):  # in a rotating order, so that the machine's drifts touch each alike
        for name in list(runs)[r % len(runs):] + list(runs)[:r % len(runs)]:
            (busy, own), start = cpu_seconds(), time.perf_counter()
            runs[name]("timed")
            elapsed, (busy_end, own_end) = time.perf_counter() - start, cpu_seconds()
            seconds[name].append(elapsed)
            others[name].append(max(0.0, (busy_end - busy) - (own_end - own)) / (elapsed * os.cpu_count()))

    median = {name: statistics.median(s) for name, s in seconds.items()}
    ms = {name: 1000 * median[name] / args.steps for name in runs}  # a step
    rows = args.steps * args.batch_size
    rate = {name: rows / median[name] for name in LABELS}
    ratios = {"hybrid_over_floor": median["hybrid"] / median["floor"],
              "fit_over_step": median["fit"] / median["hybrid"],
              **{f"{name}_over_classifier": median[name] / median["classifier"]
                 for name in ("consistency", "ali", "hybrid")}}
    threads = ", ".join(f"{k}={os.environ.get(k, 'unset')}" for k in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
                                                                      "TF_NUM_INTEROP_THREADS"))
    print(f"workload: ImplicitHybrid mlp, 784 inputs, z {networks['n_latent']}, D x branch "
          f"{'-'.join(map(str, networks['discriminator_hidden']))}, z branch "
          f"{'-'.join(map(str, networks['latent_hidden']))}, G {'-'.join(map(str, networks['generator_hidden']))}, "
          f"E {'-'.join(map(str, networks['encoder_hidden']))}; batches of {args.batch_size} MNIST rows ({half} "
          f"labelled), translate {TRANSLATE}; {args.steps} timed steps a run, {args.repeats} run(s)")
    print(f"environment: TensorFlow {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} CPU cores, "
          f"{threads}")
    print(f"{'':<24}{'rows/s':>8}{'ms/step':>10}   CPU used by other processes (per run)")
    for name, label in LABELS.items():
        print(f"{label:<24}{rate[name]:>8.0f}{ms[name]:>10.1f}   " + " ".join(f"{s:.0%}" for s in others[name]))
    print(f"parts of (a) timed alone: {PARTS['translations']} {ms['translations']:.1f} ms, "
          f"{PARTS['average']} {ms['average']:.1f} ms a step; (a) - (b) = {ms['hybrid'] - ms['floor']:.1f} ms a step")
    print(f"hybrid step / floor: {ratios['hybrid_over_floor']:.2f} (time a step)")
    print(f"model.fit / hybrid step: {ratios['fit_over_step']:.2f} (time a step)")
    print(f"over the classifier alone (time a step): + consistency {ratios['consistency_over_classifier']:.2f}, "
          f"+ ALI {ratios['ali_over_classifier']:.2f}, hybrid {ratios['hybrid_over_classifier']:.2f}")
    if max(max(s) for s in others.values()) > 0.1:
        print("note: other processes used the CPU while timing; the numbers are indicative")
    if args.json:
        print(json.dumps({"networks": networks, "batch_size": args.batch_size, "labelled_per_batch": half,
                          "steps": args.steps, "repeats": args.repeats, "rows": rows, "seconds": seconds,
                          "rows_per_second": rate, "ms_per_step": ms, "ratios": ratios,
                          "other_processes_cpu_share": others}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
