"""Training on several devices or hosts through `tf.distribute`: the strategy by name, who writes, and one training
loop that runs a model's own `train_step` (the code `model.fit` runs) under any strategy with Keras callbacks.

Keras 3's `model.fit` works under the default strategy and `MirroredStrategy` (several devices of one host); under
`MultiWorkerMirroredStrategy` it fails on this stack (Keras 3.15, TensorFlow 2.21: the per-replica logs of a
custom `train_step` are reduced along an axis that scalars lack, keras-team/keras#20585). `fit_distributed` is the
loop for that case: a `tf.function` over `strategy.run(model.train_step)` whose logs are reduced with axis=None,
the epoch's metrics read across replicas, and the same `keras.callbacks.CallbackList` that `fit` drives.

What a replica computes is the family's business: each `train_step` divides a hand-made objective by
`num_replicas_in_sync`, since the optimizer sums the replicas' gradients.
"""
import json
import os
import sys
import weakref
from pathlib import Path

import keras
import tensorflow as tf

from zoo import checks

STRATEGIES = ("default", "mirrored", "multi-worker")


def create_strategy(name="default", connect_timeout=120.0):
    """The `tf.distribute` strategy `name`: "default" (one device), "mirrored" (every local GPU, or the CPU), or
    "multi-worker" (the cluster of `TF_CONFIG`, or of Slurm's variables when there is no TF_CONFIG). A worker
    whose peers do not answer within `connect_timeout` seconds exits with one line (status 2) instead of
    waiting for ever."""
    name = checks.check_choice(name, "strategy", STRATEGIES)
    if name == "default":
        return tf.distribute.get_strategy()
    if name not in _CREATED:  # one per process: a second one's collectives would collide with the first's
        _CREATED[name] = _mirrored() if name == "mirrored" else _multi_worker(connect_timeout)
    return _CREATED[name]


_CREATED = {}


def _mirrored():
    """Every GPU, else every logical CPU device (one, unless configured otherwise)."""
    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy([device.name for device in devices])


def _multi_worker(connect_timeout):
    """The cluster's MultiWorkerMirroredStrategy, its collectives bounded by `connect_timeout`, once every worker
    answered (a barrier under the watchdog)."""
    resolver = cluster_resolver()
    peers = [address for task_type, addresses in resolver.cluster_spec().as_dict().items()
             for i, address in enumerate(_addresses(addresses))
             if (task_type, i) != (resolver.task_type, resolver.task_id)]
    with _watchdog(connect_timeout, f"zoo: error: the workers {', '.join(peers)} did not answer within "
                                    f"{connect_timeout:g} s (check TF_CONFIG and that every worker was started)"):
        strategy = tf.distribute.MultiWorkerMirroredStrategy(
            cluster_resolver=resolver,
            communication_options=tf.distribute.experimental.CommunicationOptions(timeout_seconds=connect_timeout))
        strategy.reduce("SUM", tf.constant(0.0), axis=None)  # a barrier: every worker is up
    return strategy


def cluster_resolver():
    """The cluster this process belongs to: TF_CONFIG's (TensorFlow's convention: {"cluster": {"worker": [host:port,
    ...]}, "task": {"type": "worker", "index": i}}), else Slurm's, else ValueError."""
    if os.environ.get("TF_CONFIG"):
        try:
            config = json.loads(os.environ["TF_CONFIG"])
            config["cluster"], config["task"]["type"], config["task"]["index"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"TF_CONFIG is not a cluster description ({exc}): expected {{\"cluster\": "
                             "{\"worker\": [\"host:port\", ...]}, \"task\": {\"type\": \"worker\", \"index\": 0}}") \
                from None
        return tf.distribute.cluster_resolver.TFConfigClusterResolver()
    if os.environ.get("SLURM_JOB_ID"):
        return tf.distribute.cluster_resolver.SlurmClusterResolver()
    raise ValueError("--strategy multi-worker needs a cluster: set TF_CONFIG on every worker (or run under Slurm); "
                     "docs/distributed.md shows how")


def _addresses(addresses):
    return list(addresses.values()) if isinstance(addresses, dict) else list(addresses)


class _watchdog:
    """Stop this process with `message` on stderr unless the block ends within `seconds`: TensorFlow's cluster
    set-up can wait for ever for a peer that never comes, inside C++ calls that hold the interpreter (no Python
    thread or signal handler runs then), so the watch is a small process of its own that sends SIGTERM."""

    SCRIPT = ("import os, signal, sys, time; time.sleep(float(sys.argv[2])); print(sys.argv[3], file=sys.stderr, "
              "flush=True); os.kill(int(sys.argv[1]), signal.SIGTERM); time.sleep(5); "
              "os.kill(int(sys.argv[1]), signal.SIGKILL)")

    def __init__(self, seconds, message):
        self.seconds, self.message = float(seconds), message

    def __enter__(self):
        import subprocess

        self.process = subprocess.Popen([sys.executable, "-c", self.SCRIPT, str(os.getpid()), str(self.seconds),
                                         self.message])

    def __exit__(self, *exc):
        self.process.kill()
        self.process.wait()


def local_cluster(n):
    """Addresses "127.0.0.1:port" of `n` workers on this host, each port free when asked (bound to port 0 and
    released): a cluster for trials and tests, as TF_CONFIG's "worker" list."""
    import socket

    sockets = [socket.socket() for _ in range(checks.check_positive_int(n, "n"))]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return [f"127.0.0.1:{port}" for port in ports]


def run_local_workers(command, n=2, timeout=600.0, env=None, cwd=None, started=None):
    """Run `command` (an argv list) as the `n` workers of a `local_cluster`, each with its own TF_CONFIG (worker
    index i), and wait for them all, any still running after `timeout` seconds in all killed; `started(processes)`
    is called once they run (to stop one, say). Returns [(returncode, stdout, stderr)] in worker order; a killed
    worker's stderr ends with "(killed after T s)". Output goes through files, so a chatty worker never blocks on
    a full pipe while its peer waits for it."""
    import subprocess
    import tempfile
    import time

    cluster, base = local_cluster(n), dict(os.environ if env is None else env)
    processes, files = [], []
    for i in range(n):
        out, err = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
        config = json.dumps({"cluster": {"worker": cluster}, "task": {"type": "worker", "index": i}})
        processes.append(subprocess.Popen(command, cwd=cwd, env={**base, "TF_CONFIG": config}, stdout=out, stderr=err,
                                          text=True))
        files.append((out, err))
    if started is not None:
        started(processes)
    deadline, results = time.time() + timeout, []
    for process, (out, err) in zip(processes, files):
        killed = ""
        try:
            process.wait(timeout=max(1.0, deadline - time.time()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            killed = f"\n(killed after {timeout:g} s)"
        with out, err:
            out.seek(0)
            err.seek(0)
            results.append((process.returncode, out.read(), err.read() + killed))
    return results


def is_chief(strategy):
    """Whether this process writes the model folder, the card and TensorBoard: always, but for a multi-worker
    strategy's workers other than the chief (or worker 0 when the cluster has no chief)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type in (None, "chief"):
        return True
    return task_type == "worker" and task_id == 0 and "chief" not in resolver.cluster_spec().as_dict()


def is_distributed(strategy):
    """Whether `strategy` spreads a model over devices or hosts (then `fit_distributed` trains it, not `fit`:
    Keras' fit fails under multi-worker on this stack, and under MirroredStrategy for an RBM, whose `fit` runs
    many steps in one call)."""
    return isinstance(strategy, (tf.distribute.MirroredStrategy, tf.distribute.MultiWorkerMirroredStrategy))


def as_pipeline(model, x, batch_size, seed=None):
    """The data of a `fit_stage` as a pipeline of global batches: arrays checked by the model, its visible biases
    started from them (as its `fit` does), shuffled by `seed`, the same on every worker; a pipeline as it is."""
    from zoo import capabilities
    from zoo import data as data_lib

    if isinstance(x, tf.data.Dataset):
        return x
    x = model.validate_data(x)
    if capabilities.offers(model, capabilities.DataInitialized):
        model.prepare_visible_bias(x)
    return data_lib.batches(x, checks.check_positive_int(batch_size, "batch_size"), seed=seed)


def validation_pipeline(model, validation_data, batch_size=1000):
    """Validation arrays x, or (x, y) for a model that classifies, checked by the model, as batches in order."""
    from zoo import data as data_lib

    if isinstance(validation_data, tuple):
        vx, vy = validation_data
        arrays = (model.validate_data(vx, "validation x"), model.validate_labels(vy, len(vx), "validation y"))
    else:
        arrays = model.validate_data(validation_data, "validation x")
    return data_lib.batches(arrays, batch_size, shuffle=False)


class Backup(keras.callbacks.Callback):
    """Keras' BackupAndRestore for a loop on several workers: the chief saves the weights (optimizer state and
    chains included) and the finished epoch in `folder` after every epoch; every worker, restarted, loads them and
    resumes at the next epoch (the folder must be one that all workers see): `restore(model)` gives that epoch."""

    def __init__(self, folder, chief=True):
        super().__init__()
        self.folder, self.chief = Path(folder), chief

    @property
    def weights_file(self):
        return self.folder / "latest.weights.h5"

    def restore(self, model):
        """The epoch to start at: 0, or the one after the last backed up (its weights loaded into `model`)."""
        state = self.folder / "state.json"
        if not state.is_file():
            return 0
        if getattr(model, "optimizer", None) is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        model.load_weights(self.weights_file)
        return json.loads(state.read_text())["epoch"] + 1

    def on_epoch_end(self, epoch, logs=None):
        if not self.chief:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        self.model.save_weights(self.weights_file, overwrite=True)
        tmp = self.folder / "state.json.tmp"
        tmp.write_text(json.dumps({"epoch": epoch}))
        tmp.replace(self.folder / "state.json")  # the weights first, then the epoch that names them


def fit_distributed(model, dataset, epochs, callbacks=(), validation_data=None, initial_epoch=0, verbose=2):
    """Train `model` (built and compiled under its strategy's scope) on `dataset`, a tf.data pipeline of global
    batches, for epochs initial_epoch..epochs-1: each step runs `model.train_step` on every replica's share of the
    batch; the callbacks see the epoch's metrics (each replica's running means, averaged) and `validation_data`'s
    (`val_`), as under `fit`. Returns the History."""
    strategy = model.distribute_strategy
    steps = int(dataset.cardinality())
    if steps <= 0:
        raise ValueError("fit_distributed needs a pipeline of known, finite length (tf.data cardinality)")
    distributed = strategy.experimental_distribute_dataset(dataset)
    if validation_data is not None:
        validation_data = strategy.experimental_distribute_dataset(validation_data)
    with strategy.scope():  # the optimizer's slots made now, as fit's symbolic build does, not inside a replica
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)

    train, test = _step_functions(model, strategy)
    callbacks = keras.callbacks.CallbackList(list(callbacks), add_history=True, add_progbar=verbose != 0,
                                             verbose=verbose, epochs=epochs, steps=steps, model=model)
    model.stop_training = False
    callbacks.on_train_begin()
    epoch_logs = {}
    for epoch in range(initial_epoch, epochs):
        try:
            epoch_logs = _epoch(model, epoch, steps, distributed, train, test, validation_data, callbacks)
        except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.CancelledError) as exc:
            if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
                raise
            reason = str(exc).strip().splitlines()[0][:200]
            raise ConnectionError(f"a worker was lost in epoch {epoch + 1} ({reason}); start every worker again "
                                  "with the same command to resume from the last finished epoch") from None
        if model.stop_training:
            break
    callbacks.on_train_end(epoch_logs)
    return model.history


def _step_functions(model, strategy):
    """The compiled training and test steps of `model` under `strategy`, kept on the model (as Keras keeps its
    `train_function`) so that each stage, or each call, of fit_distributed traces them once; made again when the
    model was compiled with another optimizer."""
    key = (id(strategy), id(model.optimizer))
    cached = _STEPS.get(model)
    if cached is not None and cached[0] == key:
        return cached[1]

    @tf.function
    def train(iterator):
        logs = strategy.run(model.train_step, args=(next(iterator),))
        return {k: strategy.reduce("MEAN", v, axis=None) for k, v in logs.items()}

    @tf.function
    def test(batch):
        logs = strategy.run(model.test_step, args=(batch,))
        return {k: strategy.reduce("MEAN", v, axis=None) for k, v in logs.items()}

    _STEPS[model] = (key, (train, test))
    return train, test


#: model -> ((strategy, optimizer) ids, its compiled steps); weak, so that a model is not kept alive by it (nor
#: are the functions an attribute of the model, which a SavedModel export would try to save)
_STEPS = weakref.WeakKeyDictionary()


def _epoch(model, epoch, steps, distributed, train, test, validation_data, callbacks):
    """One epoch of `fit_distributed`: its steps, the validation, the callbacks' epoch end; its logs."""
    model.reset_metrics()
    callbacks.on_epoch_begin(epoch)
    iterator = iter(distributed)
    for step in range(steps):
        callbacks.on_train_batch_begin(step)
        logs = train(iterator)
        callbacks.on_train_batch_end(step, logs)
    epoch_logs = {k: float(v) for k, v in logs.items()}
    if validation_data is not None:
        model.reset_metrics()
        for batch in validation_data:
            val = test(batch)
        epoch_logs.update({f"val_{k}": float(v) for k, v in val.items()})
    callbacks.on_epoch_end(epoch, epoch_logs)
    return epoch_logs
