"""Importance-sampled log-likelihood of latent-variable models with an inference network.

For a model with the `zoo.capabilities.LatentVariableModel` capability (`log_importance_weights(x, k, seed)`:
log w_k = log p(x, h_k) - log q(h_k | x) for h_k ~ q(. | x)),

    log p-hat(x) = logsumexp_k log w_k - log K,

a stochastic lower bound on log p(x) (Jensen: E[log p-hat] <= log p(x)) that tightens as K grows (Burda
et al. 2016). The K samples are drawn in chunks and combined by a running logsumexp, so that K = 10^5 fits
in memory for a whole test set. Per example it also gives the effective sample size (sum w)^2 / sum w^2
and the delta-method standard error of log p-hat, sqrt(K / (K - 1) (1 / ESS - 1 / K)).

Served to the Helmholtz machines (reweighted wake-sleep), the bidirectional Helmholtz machine and the hybrid
models' generative parts: one estimator for all of them.
"""
import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf

from zoo import capabilities, checks, files
from zoo import data as data_lib
from zoo.evaluation.results import Result, standard_error

DEFAULT_KS = (1, 10, 100, 1000, 10000)


class LogMeanExp:
    """Running log mean_k w_k and log sum_k w_k^2 per row, from chunks of log weights (n, k_chunk): the
    streaming form of logsumexp, exact up to round-off whatever the chunking."""

    def __init__(self):
        self.count, self.log_sum, self.log_sum_squares = 0, None, None

    def update(self, log_w):
        log_w = np.asarray(log_w, np.float64)
        chunk = (np.logaddexp.reduce(log_w, axis=1), np.logaddexp.reduce(2 * log_w, axis=1))
        if self.log_sum is None:
            self.log_sum, self.log_sum_squares = chunk
        else:
            self.log_sum = np.logaddexp(self.log_sum, chunk[0])
            self.log_sum_squares = np.logaddexp(self.log_sum_squares, chunk[1])
        self.count += log_w.shape[1]

    def log_mean(self):
        return self.log_sum - math.log(self.count)

    def ess(self):
        """(sum w)^2 / sum w^2 per row."""
        return np.exp(2 * self.log_sum - self.log_sum_squares)


class Progress:
    """The finished batches of a long estimate in a file (`log_likelihoods(..., progress_file=...)`), so that an
    interrupted run resumes where it stopped and gives the same numbers: each batch draws with its own seed. The
    file names its settings and a fingerprint of the data; a file of other settings is refused, and the file is
    removed when the estimate is complete."""

    def __init__(self, path, settings, x):
        self.path = None if path is None else Path(path)
        fingerprint = hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest()
        self.key = json.dumps({**settings, "data": fingerprint, "shape": list(x.shape)}, sort_keys=True)
        self.done = {}  # batch index -> [(log_sum, log_sum_squares, count) per power]
        if self.path is not None and self.path.is_file():
            try:
                with np.load(self.path, allow_pickle=False) as saved:
                    key, arrays = str(saved["key"]), {name: saved[name] for name in saved.files}
            except (OSError, ValueError, KeyError) as error:
                raise ValueError(f"cannot read the progress file {self.path} ({error}): delete it to start "
                                 "again") from None
            if key != self.key:
                raise ValueError(f"the progress file {self.path} holds an estimate with other settings or data: "
                                 "delete it, or run those settings again")
            for b in arrays["batches"]:
                self.done[int(b)] = [(arrays[f"sum_{b}_{i}"], arrays[f"squares_{b}_{i}"], int(arrays[f"count_{b}"]))
                                     for i in range(int(arrays["n_powers"]))]

    def restore(self, b, streams):
        """Fill `streams` (one LogMeanExp per power) with batch b's saved sums; False if b is not done."""
        if b not in self.done:
            return False
        for stream, (log_sum, log_sum_squares, count) in zip(streams, self.done[b]):
            stream.log_sum, stream.log_sum_squares, stream.count = log_sum, log_sum_squares, count
        return True

    def save(self, b, streams):
        if self.path is None:
            return
        self.done[b] = [(s.log_sum, s.log_sum_squares, s.count) for s in streams]
        arrays = {"key": np.array(self.key), "batches": np.array(sorted(self.done)),
                  "n_powers": np.array(len(streams))}
        for batch, sums in self.done.items():
            arrays[f"count_{batch}"] = np.array(sums[0][2])
            for i, (log_sum, log_sum_squares, _) in enumerate(sums):
                arrays[f"sum_{batch}_{i}"], arrays[f"squares_{batch}_{i}"] = log_sum, log_sum_squares
        self.path.parent.mkdir(parents=True, exist_ok=True)
        files.write_atomically(self.path, lambda tmp: np.savez(tmp, **arrays))

    def finish(self):
        if self.path is not None:
            self.path.unlink(missing_ok=True)
            if self.path.parent.is_dir() and not any(self.path.parent.iterdir()):
                self.path.parent.rmdir()


@dataclass(frozen=True, eq=False)
class ImportanceResult(Result):
    """log p-hat(x) with K importance samples per example: the mean over examples (nats), its standard error
    over examples, the mean effective sample size, and per example the estimate and its delta-method
    standard error."""
    log_likelihood: float
    std: float  # standard error of the mean over examples
    nll: float  # -log_likelihood
    ess: float  # mean over examples of (sum w)^2 / sum w^2, out of k
    k: int
    per_example: np.ndarray = field(repr=False)
    per_example_std: np.ndarray = field(repr=False)
    settings: dict = field(default_factory=dict)
    seconds: float = 0.0
    kind: str = "stochastic lower bound"  # E[log p-hat(x)] <= log p(x), tightening with k


def log_mean_std(ess, count):
    """The delta-method standard error of log mean_i w_i over `count` weights whose effective sample size is
    `ess`: sqrt(count / (count - 1) (1 / ESS - 1 / count)); inf for a single weight."""
    ess = np.asarray(ess, np.float64)
    if count < 2:
        return np.full(ess.shape, math.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt(np.maximum(count / (count - 1) * (1 / ess - 1 / count), 0.0))


def _check_model(model):
    return capabilities.require(model, capabilities.LatentVariableModel,
                                "give an importance-sampled log-likelihood (it has no inference network)")


def log_likelihood(model, x, k=1000, batch_size=100, chunk_size=None, seed=0, max_elements=2 ** 16, power=1):
    """Importance-sampled log p(x) of each row of `x` with `k` samples from the model's inference network:
    power * log mean_k w_k^(1 / power), which is log p(x) for power 1 and a bidirectional Helmholtz machine's
    log p~*(x) = 2 log E_q[sqrt(w)] for power 2 (`log_likelihoods` computes several powers from one draw).

    The rows go in batches of `batch_size`, the samples in chunks of `chunk_size` (default: as many as keep
    batch_size * chunk_size <= max_elements: each sample carries the model's layers, so 2^16 samples of a
    784-200-200-10 machine take some hundreds of MB, and 2^20 ran out of 24 GB). Each (batch, chunk) draws with
    its own stateless seed derived from `seed`, so a result is reproducible; a different chunking draws other
    samples."""
    return log_likelihoods(model, x, k, batch_size, chunk_size, seed, max_elements, powers=(power,))[0]


def log_likelihoods(model, x, k=1000, batch_size=100, chunk_size=None, seed=0, max_elements=2 ** 16, powers=(1,),
                    progress_file=None):
    """[ImportanceResult] of `log_likelihood`, one per power in `powers`, all from the same samples.
    progress_file: keep the finished batches there (`Progress`): an interrupted run, started again with the same
    file, settings and data, resumes and gives the same numbers; the file goes when the estimate is done."""
    _check_model(model)
    k = checks.check_positive_int(k, "k")
    batch_size = checks.check_positive_int(batch_size, "batch_size")
    seed = checks.check_positive_int(seed, "seed", minimum=0)
    powers = [checks.check_positive_int(power, "power") for power in powers]
    chunk_size = (max(1, checks.check_positive_int(max_elements, "max_elements") // batch_size) if chunk_size is None
                  else checks.check_positive_int(chunk_size, "chunk_size"))
    chunk_size = min(chunk_size, k)
    x = model.validate_data(x, "x")
    if not len(x):
        raise ValueError("x has no rows: nothing to estimate")
    begin = time.perf_counter()
    key = tf.constant([seed, 2], tf.int32)
    weights = hashlib.sha256(b"".join(np.asarray(w).tobytes() for w in model.trainable_weights)).hexdigest()
    progress = Progress(progress_file, {"model": type(model).__name__, "weights": weights, "k": k,
                                        "batch_size": batch_size, "chunk_size": chunk_size, "seed": seed,
                                        "powers": powers}, x)
    streams_by_batch = []
    for b, start in enumerate(range(0, len(x), batch_size)):
        batch = tf.constant(x[start:start + batch_size])
        streams = [LogMeanExp() for _ in powers]
        streams_by_batch.append(streams)
        if progress.restore(b, streams):
            continue
        for c, first in enumerate(range(0, k, chunk_size)):
            chunk_key = tf.random.experimental.stateless_fold_in(tf.random.experimental.stateless_fold_in(key, b), c)
            log_w = model.log_importance_weights(batch, min(chunk_size, k - first), chunk_key)
            log_w = np.asarray(log_w, np.float64)
            if log_w.shape != (len(batch), min(chunk_size, k - first)):
                raise ValueError(f"{type(model).__name__}.log_importance_weights returned shape {log_w.shape}, "
                                 f"expected {(len(batch), min(chunk_size, k - first))}")
            if np.isnan(log_w).any():
                raise FloatingPointError(f"{type(model).__name__}.log_importance_weights returned NaN")
            for stream, power in zip(streams, powers):
                stream.update(log_w / power)
        progress.save(b, streams)
    progress.finish()
    seconds = time.perf_counter() - begin
    results = []
    for i, power in enumerate(powers):
        streams = [s[i] for s in streams_by_batch]
        per_example = power * np.concatenate([s.log_mean() for s in streams])
        ess = np.concatenate([s.ess() for s in streams])
        stds = power * log_mean_std(ess, k)
        mean = float(per_example.mean())
        settings = {"method": "importance sampling", "k": k, "n_examples": len(per_example), "batch_size": batch_size,
                    "chunk_size": chunk_size, "seed": seed}
        results.append(ImportanceResult(
            log_likelihood=mean, std=standard_error(per_example), nll=-mean, ess=float(ess.mean()), k=k,
            per_example=per_example, per_example_std=stds,
            settings=settings if power == 1 else {**settings, "power": power}, seconds=seconds))
    return results


@dataclass(frozen=True, eq=False)
class PartitionResult(Result):
    """log Z-hat from n_samples unbiased estimates of Z (each with k inner samples): log of their mean, its
    delta-method standard error, and the effective sample size of the estimates."""
    log_z: float
    std: float
    ess: float
    n_samples: int
    k: int
    settings: dict = field(default_factory=dict)
    seconds: float = 0.0
    kind: str = "estimate"  # Z-hat unbiased, so log Z-hat is too low on average (Jensen)

    @classmethod
    def from_dict(cls, fields):
        """The result again from its to_dict() (a model card's metrics.log_z), extra keys ignored."""
        names = ("log_z", "std", "ess", "n_samples", "k")
        missing = [name for name in names if not isinstance(fields.get(name), (int, float))]
        if missing:
            raise ValueError(f"a log Z result needs the numbers {', '.join(missing)}")
        return cls(**{name: fields[name] for name in names}, settings=dict(fields.get("settings") or {}),
                   seconds=float(fields.get("seconds", 0.0)))


def log_partition(model, n_samples=10 ** 6, k=10, batch_size=10 ** 4, seed=0):
    """log Z of a model with `log_partition_weights(n, k, seed)` (the log of n independent unbiased estimates
    of Z, e.g. a bidirectional Helmholtz machine's), streamed in batches of `batch_size`."""
    capabilities.require(model, capabilities.GeometricMeanModel, "estimate a normaliser Z")
    n_samples = checks.check_positive_int(n_samples, "n_samples")
    k = checks.check_positive_int(k, "k")
    batch_size = checks.check_positive_int(batch_size, "batch_size")
    seed = checks.check_positive_int(seed, "seed", minimum=0)
    begin, stream = time.perf_counter(), LogMeanExp()
    key = tf.constant([seed, 3], tf.int32)
    for b, first in enumerate(range(0, n_samples, batch_size)):
        n = min(batch_size, n_samples - first)
        log_w = np.asarray(model.log_partition_weights(n, k, tf.random.experimental.stateless_fold_in(key, b)),
                           np.float64)
        if log_w.shape != (n,) or np.isnan(log_w).any():
            raise FloatingPointError(f"{type(model).__name__}.log_partition_weights returned shape {log_w.shape} "
                                     f"(expected {(n,)}) or NaN")
        stream.update(log_w[None])
    ess = float(stream.ess()[0])
    std = float(log_mean_std(ess, n_samples))
    return PartitionResult(log_z=float(stream.log_mean()[0]), std=std, ess=ess, n_samples=n_samples, k=k,
                           settings={"n_samples": n_samples, "k": k, "batch_size": batch_size, "seed": seed},
                           seconds=time.perf_counter() - begin)


@dataclass(frozen=True, eq=False)
class ImportanceEvaluation(Result):
    """The test NLL at several K (`results`, one ImportanceResult.to_dict(arrays=False) per K). For a normalised
    geometric mean (a BiHM), `log_z` is the PartitionResult.to_dict() and each result carries, from the same
    samples, `log_p_tilde` (log p~*(x), its `log_p_tilde_std` and `ess` of the weights sqrt(w)) and the plain
    p's `p_nll` and `p_ess`; its `nll` is -(log p~*(x) - log Z-hat) and `std` adds both errors."""
    dataset: str
    results: list
    seconds: float
    kind: str = "stochastic lower bound"
    n_examples: int = 0
    log_z: dict = None


#: a BiHM's log p*(x): log p~*-hat is a stochastic lower bound (too low on average), and log Z-hat, the log of an
#: unbiased estimate, is too low on average too, so that -log Z-hat leans high: the two lean opposite ways
GEOMETRIC_MEAN_KIND = "mixed estimate"


def evaluate_latent_variable_model(model, dataset, ks=DEFAULT_KS, batch_size=100, seed=0, split="test",
                                   n_examples=None, progress=None, partition_samples=10 ** 6, partition_k=10,
                                   log_z=None, progress_dir=None):
    """Test NLL of `dataset` (a name, a zoo.data.Dataset or {"test": x}) at each K in `ks`, each with its
    ESS and seconds; n_examples: the first n examples of the split only. progress(k, result) is called after
    each K. A normalised geometric mean (`capabilities.GeometricMeanModel`) also gets log Z from
    `partition_samples` samples of p with `partition_k` inner samples each, first, and its NLL is that of p*;
    or `log_z`, a PartitionResult (or its to_dict()) measured before, is used instead of a new estimate.
    progress_dir: each K's finished batches are kept there (`Progress`), so that an interrupted evaluation, run
    again, resumes."""
    _check_model(model)
    ks = tuple(checks.check_positive_int(k, "k") for k in ([ks] if isinstance(ks, int) else ks))
    if not ks:
        raise ValueError("ks must list at least one number of samples")
    if isinstance(dataset, str):
        dataset = data_lib.load(dataset)
    if isinstance(dataset, dict):
        if split not in dataset:
            raise ValueError(f"dataset as a dict needs the key {split!r}, got {sorted(dataset)}")
        name, x = "arrays", dataset[split]
    else:
        name, x = dataset.name, getattr(dataset, split).x
    x = model.validate_data(x, f"dataset {name!r} ({split} split)")  # before any sampling
    if n_examples is not None:
        x = x[:checks.check_positive_int(n_examples, "n_examples")]
    begin, results = time.perf_counter(), []
    geometric = capabilities.offers(model, capabilities.GeometricMeanModel)
    if log_z is not None and not geometric:
        raise ValueError(f"log_z is for normalised geometric means: {type(model).__name__} is normalised")
    if isinstance(log_z, dict):
        log_z = PartitionResult.from_dict(log_z)
    if geometric and log_z is None:
        log_z = log_partition(model, partition_samples, partition_k, seed=seed)
    for k in sorted(set(ks)):
        progress_file = None if progress_dir is None else Path(progress_dir) / f"k{k}-seed{seed}-{split}.npz"
        if not geometric:
            result, = log_likelihoods(model, x, k=k, batch_size=batch_size, seed=seed, progress_file=progress_file)
            results.append(result.to_dict(arrays=False))
        else:
            plain, tilde = log_likelihoods(model, x, k=k, batch_size=batch_size, seed=seed, powers=(1, 2),
                                           progress_file=progress_file)
            log_p_star = tilde.per_example - log_z.log_z
            result = ImportanceResult(
                log_likelihood=float(log_p_star.mean()), std=math.hypot(tilde.std, log_z.std),
                nll=-float(log_p_star.mean()), ess=tilde.ess, k=k, per_example=log_p_star,
                per_example_std=np.hypot(tilde.per_example_std, log_z.std),
                settings={**tilde.settings, "log_z": log_z.log_z}, seconds=tilde.seconds, kind=GEOMETRIC_MEAN_KIND)
            results.append({**result.to_dict(arrays=False), "log_p_tilde": tilde.log_likelihood,
                            "log_p_tilde_std": tilde.std, "p_nll": plain.nll, "p_std": plain.std, "p_ess": plain.ess})
        if progress is not None:
            progress(k, result)
    return ImportanceEvaluation(dataset=name, results=results, seconds=time.perf_counter() - begin, n_examples=len(x),
                                kind=GEOMETRIC_MEAN_KIND if geometric else "stochastic lower bound",
                                log_z=None if log_z is None else log_z.to_dict())
