"""A process of tests/test_distributed.py (not a test module): `python distributed_worker.py MODE OUT [args...]`.

- `cli DEVICES COMMANDS`: `zoo` with each argument list of the JSON list COMMANDS, on DEVICES logical CPU
  devices (so that `--strategy mirrored` spreads over them); prints each exit code.
- `equal-step FAMILY...`: on two logical CPU devices, with every Bernoulli draw replaced by its most likely value
  and every Normal draw by its mean (so that a step is a function of its batch alone), one step of `fit_distributed` on one global batch of 40
  under MirroredStrategy over one device and over two, from the same initial weights; prints, per family, the
  largest absolute difference between the two models' weights after the step and the largest change the step
  made.
- `split-chains`: on two logical CPU devices under MirroredStrategy, what `zoo.models.base`'s replica helpers
  give each replica (its rows of the chains, their gathering, its seed), and after one real (random) step of a
  persistent RBM and of a DBM, whether both devices' copies of the chains agree; prints them as JSON.
- `fit OUT FAMILY...`: under `--strategy multi-worker`'s strategy (TF_CONFIG), one epoch of `fit_distributed` on a
  tiny model of each FAMILY in turn, its Bernoulli draws made deterministic, each worker's weights written to
  OUT/weights-<family>-<task>.npz (`fit-single OUT FAMILY...`: the same in one process on one device, to
  OUT/weights-<family>-single.npz); then Keras' own `model.fit` of a model with a custom train_step under the
  same strategy, its outcome written to OUT/keras-fit-<task>.txt ("ok", or the error).
"""
import json
import os
import sys


def _logical_cpus(n):
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)


def _task():
    return json.loads(os.environ["TF_CONFIG"])["task"]["index"]


def _tiny(family, n_visible):
    from zoo.models import RBM, HelmholtzMachine

    if family == "rbm":
        return RBM(8, n_visible=n_visible, seed=0, persistent=True, n_chains=20)
    return HelmholtzMachine([8, 4], n_visible=n_visible, seed=0)


def _deterministic_bernoulli():
    """tfd.Bernoulli draws 1 where p > 1/2, else 0: no randomness left in a step that samples only Bernoullis."""
    import tensorflow as tf
    import tensorflow_probability as tfp

    def most_likely(self, n, seed=None):
        p = self.probs_parameter()
        return tf.broadcast_to(tf.cast(p > 0.5, self.dtype), tf.concat([[n], tf.shape(p)], 0))

    def mean(self, n, seed=None):
        return tf.broadcast_to(self.loc + tf.zeros_like(self.scale), tf.concat([[n], tf.shape(self.loc)], 0))

    tfp.distributions.Bernoulli._sample_n = most_likely
    tfp.distributions.Normal._sample_n = mean  # the ADGM's codes: their means


EQUAL_STEP = {  # family -> (model maker, optimizer)
    "rbm": lambda n: __import__("zoo.models", fromlist=["RBM"]).RBM(8, n_visible=n, seed=0, l2=0.01),
    "rbm-pcd": lambda n: __import__("zoo.models", fromlist=["RBM"]).RBM(8, n_visible=n, seed=0, persistent=True,
                                                                        n_chains=20, cd_k=2),
    "dbm": lambda n: __import__("zoo.models", fromlist=["DBM"]).DBM([8, 4], n_visible=n, seed=0, n_chains=20,
                                                                    gibbs_steps=2, mean_field_steps=3, l2=0.01),
    # centering: the offsets are the means over both replicas' shares of the batch, or the replicas' steps differ
    "rbm-centering": lambda n: __import__("zoo.models", fromlist=["RBM"]).RBM(8, n_visible=n, seed=0, centering=True),
    # parallel tempering: each replica its share of the chains at every temperature; fast weights: the whole
    # batch's gradient on both replicas
    "rbm-tempering": lambda n: __import__("zoo.models", fromlist=["RBM"]).RBM(
        8, n_visible=n, seed=0, persistent=True, n_chains=20, n_temperatures=3, min_beta=0.5, cd_k=2),
    "rbm-fast": lambda n: __import__("zoo.models", fromlist=["RBM"]).RBM(8, n_visible=n, seed=0, persistent=True,
                                                                         n_chains=20, fast_lr=0.5, cd_k=2),
    "dbm-tempering": lambda n: __import__("zoo.models", fromlist=["DBM"]).DBM(
        [8, 4], n_visible=n, seed=0, n_chains=20, gibbs_steps=2, mean_field_steps=3, n_temperatures=3, min_beta=0.5),
    "dbm-centering": lambda n: __import__("zoo.models", fromlist=["DBM"]).DBM(
        [8, 4], n_visible=n, seed=0, n_chains=20, gibbs_steps=2, mean_field_steps=3, centering=True),
    "helmholtz": lambda n: __import__("zoo.models", fromlist=["HelmholtzMachine"]).HelmholtzMachine(
        [8, 4], n_visible=n, seed=0, k=3),
    "bihm": lambda n: __import__("zoo.models", fromlist=["BiHM"]).BiHM([8, 4], n_visible=n, seed=0, k=3),
    "hybrid": lambda n: __import__("zoo.models", fromlist=["HybridModel"]).HybridModel(
        __import__("zoo.models", fromlist=["AuxiliaryDeepGenerativeModel"]).AuxiliaryDeepGenerativeModel(
            latent=3, auxiliary=3, hidden=(8,), k=2, seed=0, n_visible=n), n_classes=10, hidden=(8,), seed=0),
}


def _vary_tempered_chains(model):
    """Tempering's chains at distinct random states and weights of std 1: with most-likely draws, fresh chains and
    small weights every chain sits in one state at every temperature, and a split or swap bug would go unseen."""
    import numpy as np

    rng = np.random.default_rng(1)
    chains = model.chains if hasattr(model, "chains") else [model.persistent_chains]
    kernels = model.kernels if hasattr(model, "kernels") else [model.kernel]
    for variable in chains:
        variable.assign((rng.random(variable.shape) < 0.5).astype(np.float32))
    for variable in kernels:
        variable.assign(rng.standard_normal(variable.shape).astype(np.float32))


def equal_step(families):
    _logical_cpus(2)
    _deterministic_bernoulli()
    import keras
    import numpy as np
    import tensorflow as tf

    from zoo import data, distributed

    digits = data.load("digits").train
    x = (digits.x[:40] > 0.5).astype(np.float32)
    # a semi-supervised batch: 10 labelled rows first, as zoo.data's batches put them, then 30 unlabelled (-1),
    # so that the two replicas' halves hold 10 and 0 labelled rows
    y = np.where(np.arange(40) < 10, digits.y[:40], -1).astype(np.int32)
    # one strategy of each size for the whole process: a second one's collectives would collide with the first's
    strategies = [tf.distribute.MirroredStrategy(devices) for devices in (["/CPU:0"], ["/CPU:0", "/CPU:1"])]
    report = {}
    for family in families:
        weights = []
        for strategy in strategies:
            keras.utils.set_random_seed(0)
            with strategy.scope():
                model = EQUAL_STEP[family](x.shape[1])
                model.compile(keras.optimizers.SGD(0.5))
                model(x[:1])
            if family.endswith("-tempering"):
                _vary_tempered_chains(model)
            if family == "hybrid":
                pipeline = tf.data.Dataset.from_tensors((x, y))
            else:
                pipeline = distributed.as_pipeline(model, x, 40, seed=0)  # the visible biases started from x
            start = [w.numpy() for w in model.trainable_weights]
            distributed.fit_distributed(model, pipeline, 1, verbose=0)
            # every weight, the state too (persistent chains, fast weights, centering offsets)
            weights.append([w.numpy() for w in model.trainable_weights + model.non_trainable_weights])
        report[family] = {"difference": max(float(np.abs(a - b).max()) for a, b in zip(*weights)),
                          "change": max(float(np.abs(a - b).max()) for a, b in zip(weights[0], start))}
    print(json.dumps(report))
    return 0


def split_chains():
    _logical_cpus(2)
    import keras
    import numpy as np
    import tensorflow as tf

    from zoo import data, distributed
    from zoo.models import DBM, RBM
    from zoo.models.base import (gather_replica_rows, gather_tempered_rows, next_seed, replica_rows,
                                 replica_tempered_rows)

    strategy = tf.distribute.MirroredStrategy(["/CPU:0", "/CPU:1"])
    rows = tf.reshape(tf.range(12.0), (6, 2))
    tempered = tf.reshape(tf.range(24.0), (12, 2))  # 4 chains at each of 3 temperatures
    local = lambda value: [t.numpy().tolist() for t in strategy.experimental_local_results(value)]  # noqa: E731
    with strategy.scope():
        generator = keras.random.SeedGenerator(0)
    report = {"rows": local(strategy.run(lambda: replica_rows(rows))),
              "gathered": local(strategy.run(lambda: gather_replica_rows(replica_rows(rows)))),
              "tempered_rows": local(strategy.run(lambda: replica_tempered_rows(tempered, 3))),
              "tempered_gathered": local(strategy.run(lambda: gather_tempered_rows(replica_tempered_rows(tempered, 3),
                                                                                   3))),
              "seeds": local(strategy.run(lambda: next_seed(generator))),
              "outside": next_seed(keras.random.SeedGenerator(0)).numpy().tolist()}
    try:
        strategy.run(lambda: replica_rows(tf.zeros((7, 2))))
    except ValueError as exc:
        report["odd"] = str(exc)
    x = (data.load("digits").train.x[:40] > 0.5).astype(np.float32)
    for name, make in (("rbm", lambda: RBM(8, n_visible=64, seed=0, persistent=True, n_chains=20)),
                       ("tempering", lambda: RBM(8, n_visible=64, seed=0, persistent=True, n_chains=20,
                                                 n_temperatures=3, min_beta=0.5)),
                       ("dbm", lambda: DBM([8, 4], n_visible=64, seed=0, n_chains=20, gibbs_steps=2))):
        with strategy.scope():
            model = make()
            model.compile(keras.optimizers.SGD(0.1))
        distributed.fit_distributed(model, distributed.as_pipeline(model, x, 40, seed=0), 1, verbose=0)
        chains = [model.persistent_chains] if name != "dbm" else model.chains
        copies = [strategy.experimental_local_results(c.value) for c in chains]
        report[name] = all(np.array_equal(a.numpy(), b.numpy()) for a, b in copies)
    for name, make in (("odd_rbm", lambda: RBM(8, persistent=True, n_chains=7)),
                       ("odd_dbm", lambda: DBM([8, 4], n_chains=7))):
        with strategy.scope():
            try:
                make().compile(keras.optimizers.SGD(0.1))
            except ValueError as exc:
                report[name] = str(exc)
    print(json.dumps(report))
    return 0


def main(mode, out=None, *rest):
    if mode == "split-chains":
        return split_chains()
    if mode == "equal-step":
        return equal_step([out, *rest])
    if mode == "cli":
        _logical_cpus(int(out))
        from zoo import cli

        codes = [cli.main(argv) for argv in json.loads(rest[0])]
        print(json.dumps(codes))
        return 0
    import keras
    import numpy as np

    from zoo import data, distributed

    if mode not in ("fit", "fit-single"):
        raise SystemExit(f"unknown mode {mode}")
    _deterministic_bernoulli()  # each step a function of its global batch: the one-process run must match
    if mode == "fit-single":
        import tensorflow as tf

        strategy = tf.distribute.MirroredStrategy(["/CPU:0"])
    else:
        strategy = distributed.create_strategy("multi-worker", connect_timeout=60)
    x = (data.load("digits").train.x[:400] > 0.5).astype(np.float32)
    for family in rest:
        keras.utils.set_random_seed(0)
        with strategy.scope():
            model = _tiny(family, x.shape[1])
            model.compile(keras.optimizers.SGD(0.05) if family == "rbm" else keras.optimizers.Adam(1e-3))
        distributed.fit_distributed(model, distributed.as_pipeline(model, x, 40, seed=0), 1, verbose=0)
        np.savez(os.path.join(out, f"weights-{family}-{'single' if mode == 'fit-single' else _task()}.npz"),
                 **{v.path: np.asarray(v.numpy()) for v in model.weights})
    if mode == "fit-single":
        return 0
    import tensorflow as tf

    class Step(keras.Model):  # the smallest custom train_step: one dense layer, scalar logs
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(1)

        def call(self, x):
            return self.dense(x)

        def train_step(self, batch):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.square(self(batch)))
            grads = tape.gradient(loss, self.trainable_variables)
            self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
            return {"loss": loss}

    with strategy.scope():
        model = Step()
        model.compile(keras.optimizers.SGD(0.01))
    try:
        model.fit(tf.data.Dataset.from_tensor_slices(x).batch(40), epochs=1, verbose=0)
        result = "ok"
    except Exception as exc:  # the failure the test pins
        result = f"{type(exc).__name__}: {exc}"
    with open(os.path.join(out, f"keras-fit-{_task()}.txt"), "w") as f:
        f.write(result)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
