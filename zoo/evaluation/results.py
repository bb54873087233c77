"""What every estimate shares: its kind, its settings, JSON form, and the statistics of weights.

Every result says what kind of number it is (`kind`):
- "exact": computed without sampling (enumeration);
- "estimate": an unbiased estimate of a quantity whose log is reported (forward AIS: Z-hat is unbiased, so
  log Z-hat is too low on average);
- "stochastic lower bound": a number whose expectation is at most the truth (RAISE's per-example
  log-likelihood; importance sampling's log p(x) with K samples, tightening as K grows);
- "bracket": a pair from both sides (the NLL from forward AIS and from RAISE);
- "bound bracket": the same pair for a variational bound on the NLL (a DBM's mean-field bound, E(v, mu) - H(q)
  + log Z, with log Z from either side): both lie above the true NLL as far as log Z is right;
- "not converged": an estimate that moved between two settings by more than its error bar (forward AIS at two
  schedule lengths): its numbers are reported, never as a bracket or a card's headline;
- "mixed estimate": a difference of two estimates whose errors lean opposite ways (a bidirectional Helmholtz
  machine's log p*(x) = log p~*-hat(x) - log Z-hat: the first too low on average, the second too low as well,
  so that its negative leans high); the standard error says how far either can be.
"""
import math
from dataclasses import asdict

import numpy as np

KINDS = ("exact", "estimate", "stochastic lower bound", "bracket", "bound bracket", "not converged",
         "mixed estimate")


def standard_error(x):
    """Standard error of the mean of `x` (sample std / sqrt(n)); inf for a single value."""
    return float(np.std(x, ddof=1) / math.sqrt(len(x))) if len(x) > 1 else math.inf


def effective_sample_size(log_weights):
    """(sum w)^2 / sum w^2 of importance weights given in log space."""
    w = np.exp(np.asarray(log_weights, np.float64) - np.max(log_weights))
    return float(w.sum() ** 2 / np.sum(w ** 2))


def jsonable(value):
    """`value` with arrays as lists and non-finite floats as None / "inf" / "-inf" (strict JSON)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


class Result:
    """Base of the frozen result dataclasses: `kind` (one of KINDS) and `to_dict`."""

    def to_dict(self, arrays=True):
        """A JSON-ready dict (arrays as lists unless arrays=False; infinite values as "inf"/"-inf")."""
        return {k: jsonable(v) for k, v in asdict(self).items() if arrays or not isinstance(v, np.ndarray)}
