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
import math
import time
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf

from zoo import capabilities, checks
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


def _check_model(model):
    return capabilities.require(model, capabilities.LatentVariableModel,
                                "give an importance-sampled log-likelihood (it has no inference network)")


def log_likelihood(model, x, k=1000, batch_size=100, chunk_size=None, seed=0, max_elements=2 ** 16):
    """Importance-sampled log p(x) of each row of `x` with `k` samples from the model's inference network.

    The rows go in batches of `batch_size`, the samples in chunks of `chunk_size` (default: as many as keep
    batch_size * chunk_size <= max_elements: each sample carries the model's layers, so 2^16 samples of a
    784-200-200-10 machine take some hundreds of MB, and 2^20 ran out of 24 GB). Each (batch, chunk) draws with its own stateless seed derived
    from `seed`, so a result is reproducible; a different chunking draws other samples."""
    _check_model(model)
    k = checks.check_positive_int(k, "k")
    batch_size = checks.check_positive_int(batch_size, "batch_size")
    seed = checks.check_positive_int(seed, "seed", minimum=0)
    chunk_size = (max(1, checks.check_positive_int(max_elements, "max_elements") // batch_size) if chunk_size is None
                  else checks.check_positive_int(chunk_size, "chunk_size"))
    chunk_size = min(chunk_size, k)
    x = model.validate_data(x, "x")
    if not len(x):
        raise ValueError("x has no rows: nothing to estimate")
    begin = time.perf_counter()
    key = tf.constant([seed, 2], tf.int32)
    estimates, stds, ess = [], [], []
    for b, start in enumerate(range(0, len(x), batch_size)):
        batch = tf.constant(x[start:start + batch_size])
        stream = LogMeanExp()
        for c, first in enumerate(range(0, k, chunk_size)):
            chunk_key = tf.random.experimental.stateless_fold_in(tf.random.experimental.stateless_fold_in(key, b), c)
            log_w = model.log_importance_weights(batch, min(chunk_size, k - first), chunk_key)
            log_w = np.asarray(log_w, np.float64)
            if log_w.shape != (len(batch), min(chunk_size, k - first)):
                raise ValueError(f"{type(model).__name__}.log_importance_weights returned shape {log_w.shape}, "
                                 f"expected {(len(batch), min(chunk_size, k - first))}")
            if np.isnan(log_w).any():
                raise FloatingPointError(f"{type(model).__name__}.log_importance_weights returned NaN")
            stream.update(log_w)
        estimates.append(stream.log_mean())
        batch_ess = stream.ess()
        ess.append(batch_ess)
        with np.errstate(divide="ignore", invalid="ignore"):
            stds.append(np.sqrt(np.maximum(k / (k - 1) * (1 / batch_ess - 1 / k), 0.0)) if k > 1
                        else np.full(len(batch_ess), math.inf))
    per_example, ess = np.concatenate(estimates), np.concatenate(ess)
    mean = float(per_example.mean())
    return ImportanceResult(
        log_likelihood=mean, std=standard_error(per_example), nll=-mean, ess=float(ess.mean()), k=k,
        per_example=per_example, per_example_std=np.concatenate(stds),
        settings={"method": "importance sampling", "k": k, "n_examples": len(per_example),
                  "batch_size": batch_size, "chunk_size": chunk_size, "seed": seed},
        seconds=time.perf_counter() - begin)


@dataclass(frozen=True, eq=False)
class ImportanceEvaluation(Result):
    """The test NLL at several K (`results`, one ImportanceResult.to_dict(arrays=False) per K)."""
    dataset: str
    results: list
    seconds: float
    kind: str = "stochastic lower bound"
    n_examples: int = 0


def evaluate_latent_variable_model(model, dataset, ks=DEFAULT_KS, batch_size=100, seed=0, split="test",
                                   n_examples=None, progress=None):
    """Test NLL of `dataset` (a name, a zoo.data.Dataset or {"test": x}) at each K in `ks`, each with its
    ESS and seconds; n_examples: the first n examples of the split only. progress(k, result) is called after
    each K."""
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
    for k in sorted(set(ks)):
        result = log_likelihood(model, x, k=k, batch_size=batch_size, seed=seed)
        results.append(result.to_dict(arrays=False))
        if progress is not None:
            progress(k, result)
    return ImportanceEvaluation(dataset=name, results=results, seconds=time.perf_counter() - begin, n_examples=len(x))
