"""Partition functions and likelihoods of energy models: exact log Z, AIS, reverse AIS (RAISE).

One engine for every model with the `zoo.capabilities.EnergyModel` capability (an annealing path from a base
model fitted to the data, `annealing_path(base, dtype)`, with `terms`, `log_f`, `transition`,
`base_log_partition`, `base_sample`) and, for exact log Z, the `Enumerable` one (`enumerable_layers()`,
`unnormalized_log_marginal(states, layer)`): the RBM today, the DBM next.

Both sides of the truth:
- forward AIS (Neal 2001; Salakhutdinov & Murray 2008) estimates Z without bias, so log Z-hat is too low
  on average and the test log-likelihood mean(-F(v)) - log Z-hat too high (optimistic);
- RAISE (Burda, Grosse & Salakhutdinov 2015) anneals from each test example back to the base model and
  gives a stochastic lower bound on its log-likelihood (conservative). Averaged over the examples it
  implies an upper estimate of log Z: mean(-F(v) - log p-hat(v)).

Forward AIS is unbiased in Z only when its chains follow the annealing path; a schedule too short for a sharp
model leaves log Z-hat far too low, with weights whose spread says nothing of it. `check_convergence` runs it at
two schedule lengths: a log Z whose drift between them exceeds its error bar (three standard errors), or whose
error bar is too wide to show a drift of half a nat, has not converged, and `evaluate_energy_model` then reports
it as such, never as a bracket.
"""
import functools
import math
import time
import weakref
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf

from zoo import capabilities, checks
from zoo import data as data_lib
from zoo.evaluation.results import Result, effective_sample_size, standard_error

SCHEDULES = ("salakhutdinov", "linear")
#: the three segments of Salakhutdinov & Murray (2008): steps 1e-3 up to 0.5, 1e-4 up to 0.9, 1e-5 up to 1
_SEGMENTS = ((0.0, 0.5, 500), (0.5, 0.9, 4000), (0.9, 1.0, 10000))
DEFAULT_N_BETAS = sum(n for *_, n in _SEGMENTS) + 1  # 14,501 temperatures
BLOCK = 500  # temperatures per compiled call: progress and Ctrl-C between blocks
CHECK_FRACTION = 5  # the convergence check's shorter schedule: a fifth of the temperatures
DRIFT_SDS = 3.0  # the drift's error bar: this many standard errors
DRIFT_TOLERANCE = 0.5  # nats: an error bar wider than this cannot show a drift that matters


def schedule(kind="salakhutdinov", n_betas=DEFAULT_N_BETAS):
    """Inverse temperatures 0 = beta_0 < ... < beta_{n-1} = 1 (float64). "salakhutdinov": the three-segment
    schedule, its segments scaled to n_betas in total (14,501 gives the published one); "linear": evenly
    spaced."""
    n_betas = checks.check_positive_int(n_betas, "n_betas", minimum=2)
    kind = checks.check_choice(kind, "schedule", SCHEDULES)
    if kind == "linear":
        return np.linspace(0.0, 1.0, n_betas)
    total = DEFAULT_N_BETAS - 1
    counts = [max(1, round((n_betas - 1) * n / total)) for *_, n in _SEGMENTS]
    counts[-1] = max(1, n_betas - 1 - sum(counts[:-1]))
    parts = [np.linspace(lo, hi, n, endpoint=False) for (lo, hi, _), n in zip(_SEGMENTS, counts)]
    betas = np.concatenate(parts + [[1.0]])
    return np.unique(betas)  # tiny n_betas can merge segment starts


def _check_schedule(betas):
    betas = np.asarray(betas, np.float64)
    if betas.ndim != 1 or len(betas) < 2:
        raise ValueError(f"a schedule needs at least 2 inverse temperatures, got shape {betas.shape}")
    if not np.all(np.isfinite(betas)) or betas[0] != 0.0 or betas[-1] != 1.0 or np.any(np.diff(betas) <= 0):
        raise ValueError("a schedule must increase strictly from 0 to 1 (beta_0 = 0, beta_last = 1)")
    return betas


def _resolve_schedule(schedule_spec, n_betas):
    if isinstance(schedule_spec, str):
        return schedule(schedule_spec, n_betas), schedule_spec
    return _check_schedule(schedule_spec), "array"


def _check_model(model):
    capabilities.require(model, capabilities.EnergyModel, "have its partition function estimated by AIS (it has "
                         "no defined partition function to estimate)")
    if not model.built:
        raise ValueError("the model has no weights yet: fit it or give n_visible")


def _check_dtype(dtype):
    dtype = tf.as_dtype(dtype)
    if dtype not in (tf.float32, tf.float64):
        raise ValueError(f"dtype must be tf.float32 or tf.float64, got {dtype.name}")
    return dtype


def _seed(seed):
    if seed is None:
        seed = int(np.random.default_rng().integers(2**31 - 1))
    return checks.check_positive_int(seed, "seed", minimum=0)


@dataclass(frozen=True, eq=False)
class AISResult(Result):
    """Forward AIS: log Z-hat = log Z_0 + log mean_i w_i, and log(Z-hat -+ 3 sigma) with sigma the standard
    error of Z-hat (log_z_lower is -inf when Z-hat - 3 sigma <= 0)."""
    log_z: float
    log_z_lower: float
    log_z_upper: float
    log_z_std: float  # standard error of log Z-hat by the delta method: sigma / Z-hat
    ess: float
    log_weights: np.ndarray = field(repr=False)
    base_log_z: float = 0.0
    settings: dict = field(default_factory=dict)
    seconds: float = 0.0
    kind: str = "estimate"  # Z-hat is unbiased: log Z-hat is too low on average


@dataclass(frozen=True, eq=False)
class RAISEResult(Result):
    """Reverse AIS from data: per-example stochastic lower bounds log p-hat(v) on the log-likelihood (of the
    annealing model, which tends to the model as the schedule gets finer), their mean and its standard
    error, and the log Z they imply, mean(-F(v) - log p-hat(v)): on average above the true log Z.

    For a path over more layers than the visible one (a DBM), each chain starts at an example's hidden states
    and runs `burn_in` sweeps of the model before it is annealed down: log_likelihood is then None (log f(v)
    is not known exactly), per_example holds each chain's log Z estimate log Z_i = log f(x_K) - log Z_0 ... (its
    reverse weight is 1 / Z_i), and log_z = -log mean_i exp(-log Z_i): 1 / Z_i is unbiased for 1 / Z when the
    chains start at exact samples of the model, so log_z is then a stochastic upper bound on log Z (Jensen), and
    it is one as far as `burn_in` sweeps from the data reach the model's distribution."""
    log_likelihood: float
    log_likelihood_std: float
    log_z: float
    per_example: np.ndarray = field(repr=False)
    log_z_std: float = math.nan  # standard error of log_z over the examples
    settings: dict = field(default_factory=dict)
    seconds: float = 0.0
    kind: str = "stochastic lower bound"  # of each example's log-likelihood


@dataclass(frozen=True, eq=False)
class Convergence(Result):
    """Forward AIS at two schedule lengths: drift = log Z-hat(long) - log Z-hat(short), its standard error from
    both runs' (sqrt(s_long^2 + s_short^2)), and `converged`: |drift| within its error bar (DRIFT_SDS standard
    errors) and that error bar within `tolerance` nats. A log Z that still climbs as the schedule lengthens (a
    sharp model whose chains lag the path) fails the first; weights too uneven to tell (a low ESS), the second."""
    log_z_short: float
    log_z_long: float
    n_betas_short: int
    n_betas_long: int
    drift: float
    drift_std: float
    ess_short: float
    ess_long: float
    converged: bool
    tolerance: float = DRIFT_TOLERANCE
    kind: str = "estimate"


def check_convergence(long, short, tolerance=DRIFT_TOLERANCE):
    """The `Convergence` of forward AIS from two runs (`AISResult`) at a long and a short schedule."""
    tolerance = checks.check_nonnegative(tolerance, "tolerance")
    drift = long.log_z - short.log_z
    drift_std = math.sqrt(long.log_z_std ** 2 + short.log_z_std ** 2)
    bar = DRIFT_SDS * drift_std
    converged = bool(math.isfinite(drift) and math.isfinite(bar) and abs(drift) <= bar <= tolerance)
    return Convergence(log_z_short=short.log_z, log_z_long=long.log_z, n_betas_short=short.settings["n_betas"],
                       n_betas_long=long.settings["n_betas"], drift=drift, drift_std=drift_std, ess_short=short.ess,
                       ess_long=long.ess, converged=converged, tolerance=tolerance)


def exact_log_partition(model, max_states=2 ** 22, chunk_size=2 ** 14, dtype=tf.float64):
    """Exact log Z by enumerating the layer with fewest states (in chunks) and summing the other out in
    closed form: log Z = logsumexp_x log f(x). For RBMs whose smaller discrete layer has about 20 units."""
    _check_model(model)
    dtype = _check_dtype(dtype)
    max_states = checks.check_positive_int(max_states, "max_states")
    chunk_size = checks.check_positive_int(chunk_size, "chunk_size")
    layers = model.enumerable_layers() if capabilities.offers(model, capabilities.Enumerable) else {}
    if not layers:
        raise ValueError(f"{type(model).__name__} has no discrete layer to enumerate: use zoo.evaluation.ais")
    name, layer = min(layers.items(), key=lambda item: item[1].log_n_states())
    log_n = layer.log_n_states()
    if log_n > math.log(max_states):
        sizes = ", ".join(f"{k} {u.n} units" for k, u in layers.items())
        raise ValueError(f"too large for exact enumeration: the smallest layer ({name}) has "
                         f"e^{log_n:.1f} states > max_states={max_states} ({sizes}); use zoo.evaluation.ais")
    n_states = int(round(math.exp(log_n)))
    logs = []
    for start in range(0, n_states, chunk_size):
        states = layer.states(start, min(start + chunk_size, n_states), dtype)
        logs.append(tf.reduce_logsumexp(model.unnormalized_log_marginal(states, name)))
    return float(tf.reduce_logsumexp(tf.stack(logs)).numpy())


@dataclass(frozen=True, eq=False)
class BaseModel:
    """The base model of AIS, fitted once (`fit_base`) for the runs that share it: its name as the results' settings
    record it ("data", "uniform" or "given") and its parameters (`model.base_parameters`' form)."""
    name: str
    parameters: np.ndarray


def fit_base(model, base="data", data=None):
    """The `BaseModel` of `model`: fitted to `data` (base "data"), uniform, or given (an array of the length
    `model.base_parameters()` has); a BaseModel is returned as it is. Fitting a DBM's base runs its mean field, so
    runs that share a base take it from here once."""
    if isinstance(base, BaseModel):
        return base
    if not isinstance(base, str):
        given, uniform = np.asarray(base, np.float64), model.base_parameters(None)
        if given.shape != uniform.shape or not np.isfinite(given).all():
            raise ValueError(f"base as an array must hold {len(uniform)} finite numbers (the base model's "
                             f"parameters), got shape {given.shape}")
        return BaseModel("given", given)
    base = checks.check_choice(base, "base", ("data", "uniform"))
    if base == "uniform":
        return BaseModel(base, model.base_parameters(None))
    if data is None:
        raise ValueError("base='data' needs the training data (data=...) to fit the base model; or use "
                         "base='uniform'")
    return BaseModel(base, model.base_parameters(model.validate_data(data, "data")))


def _run_blocks(step, state, n_steps, progress):
    """Run the compiled `step(state, start, stop)` over [0, n_steps) in blocks (Ctrl-C lands in between)."""
    for start in range(0, n_steps, BLOCK):
        state = step(state, tf.constant(start), tf.constant(min(start + BLOCK, n_steps)))
        if progress:
            progress(min(start + BLOCK, n_steps), n_steps)
    return state


_COMPILED = weakref.WeakKeyDictionary()  # model -> {(block function, dtype): tf.function}


def _compiled(model, block, dtype):
    """One tf.function per model, direction and dtype: it reads the model's weights when called, so
    repeated estimates (a monitor every few epochs) trace once."""
    cache = _COMPILED.setdefault(model, {})
    if (block, dtype) not in cache:
        cache[block, dtype] = tf.function(functools.partial(block, model, dtype), reduce_retracing=True)
    return cache[block, dtype]


def _forward_block(model, dtype, state, start, stop, betas, base_bias, key):
    """Forward AIS over temperatures start+1..stop: log w += log f_k(v) - log f_{k-1}(v), v ~ T_k(v)."""
    path = model.annealing_path(base_bias, dtype)

    def body(k, v, log_w):
        terms = path.terms(v)
        log_w += path.log_f(terms, betas[k + 1]) - path.log_f(terms, betas[k])
        return k + 1, path.transition(v, terms, betas[k + 1], tf.random.experimental.stateless_fold_in(key, k)), log_w
    _, v, log_w = tf.while_loop(lambda k, *_: k < stop, body, (start,) + tuple(state))
    return v, log_w


def _reverse_block(model, dtype, state, start, stop, betas, base_bias, key):
    """RAISE steps i = start..stop-1, k = K - i: v ~ T_k(v), then log w += log f_{k-1}(v) - log f_k(v)."""
    path = model.annealing_path(base_bias, dtype)
    n_steps = tf.shape(betas)[0] - 1

    def body(i, v, terms, log_w):
        k = n_steps - i
        v = path.transition(v, terms, betas[k], tf.random.experimental.stateless_fold_in(key, k))
        terms = path.terms(v)
        return i + 1, v, terms, log_w + path.log_f(terms, betas[k - 1]) - path.log_f(terms, betas[k])
    _, v, terms, log_w = tf.while_loop(lambda i, *_: i < stop, body, (start,) + tuple(state))
    return v, terms, log_w


def ais(model, n_betas=DEFAULT_N_BETAS, n_chains=100, base="data", data=None, schedule="salakhutdinov",
        dtype=tf.float64, seed=None, progress=None):
    """Forward AIS estimate of log Z (a frozen AISResult).

    base: "data" (zero-weight model whose units match `data`'s means: the visible ones, Salakhutdinov & Murray,
    and a DBM's hidden ones those of its mean-field posterior), "uniform" (zero biases), or the base model's
    parameters (an array, as `model.base_parameters` gives, or a `BaseModel` of `fit_base`). schedule: "salakhutdinov", "linear" (n_betas values) or an array from 0 to
    1. `progress(done, total)` is called between blocks of temperatures.
    """
    _check_model(model)
    n_chains = checks.check_positive_int(n_chains, "n_chains", minimum=2)  # an error bar needs two chains
    dtype = _check_dtype(dtype)
    betas, schedule_name = _resolve_schedule(schedule, n_betas)
    seed = _seed(seed)
    base = fit_base(model, base, data)
    base_bias = tf.constant(base.parameters, dtype)
    path = model.annealing_path(base_bias, dtype)
    key = tf.constant([seed, 0], tf.int32)
    begin = time.perf_counter()
    v0 = path.base_sample(n_chains, tf.random.experimental.stateless_fold_in(key, -1))
    step, betas_t = _compiled(model, _forward_block, dtype), tf.constant(betas, dtype)
    _, log_w = _run_blocks(lambda state, start, stop: step(state, start, stop, betas_t, base_bias, key),
                           (v0, tf.zeros((n_chains,), dtype)), len(betas) - 1, progress)
    log_w = log_w.numpy().astype(np.float64)
    base_log_z = float(path.base_log_partition().numpy())
    top = log_w.max()
    w = np.exp(log_w - top)
    mean, sem = w.mean(), standard_error(w)
    shift = base_log_z + top
    with np.errstate(divide="ignore"):
        lower = shift + (math.log(mean - 3 * sem) if mean - 3 * sem > 0 else -math.inf)
    return AISResult(
        log_z=shift + math.log(mean), log_z_lower=lower, log_z_upper=shift + math.log(mean + 3 * sem),
        log_z_std=sem / mean, ess=effective_sample_size(log_w), log_weights=log_w, base_log_z=base_log_z,
        settings={"method": "forward AIS", "n_betas": len(betas), "n_chains": n_chains, "base": base.name,
                  "schedule": schedule_name, "dtype": dtype.name, "seed": seed},
        seconds=time.perf_counter() - begin)


def _burn_in_block(model, dtype, state, start, stop, base_bias, key):
    """Sweeps start..stop-1 of the model's own transition (beta = 1) from the chains' states."""
    path = model.annealing_path(base_bias, dtype)
    one = tf.constant(1.0, dtype)

    def body(i, x):
        return i + 1, path.transition(x, path.terms(x), one, tf.random.experimental.stateless_fold_in(key, i))
    _, x = tf.while_loop(lambda i, *_: i < stop, body, (start, state))
    return x


def reverse_ais(model, data, n_betas=DEFAULT_N_BETAS, n_examples=None, base="data", base_data=None,
                schedule="salakhutdinov", dtype=tf.float64, seed=None, progress=None, burn_in=1000):
    """RAISE: a stochastic lower bound log p-hat(v) on the log-likelihood of each example of `data` (the
    first `n_examples` of a seeded random subset, all by default) and the log Z it implies.

    Each example starts a chain at beta = 1 that is annealed down to the base model; with x_K = v,
    x_{k-1} ~ T_k(. | x_k): log p-hat(v) = log f_K(v) - log Z_0 + sum_k [log f_{k-1}(x_{k-1}) - log f_k(x_{k-1})].
    base_data: the data whose means fit the base model (default: `data` itself).

    A path whose state is more than the visible layer (a DBM's, with `start_from_data(v, seed)`) starts each
    chain at the example's hidden states, runs `burn_in` sweeps of the model, then anneals down: an estimate of
    log Z from above as far as the chains' states are then samples of the model (see RAISEResult).
    """
    _check_model(model)
    dtype = _check_dtype(dtype)
    x = model.validate_data(data, "data")
    seed = _seed(seed)
    if n_examples is not None:
        n_examples = checks.check_positive_int(n_examples, "n_examples")
        if n_examples < len(x):
            x = x[np.sort(np.random.default_rng(seed).choice(len(x), n_examples, replace=False))]
    betas, schedule_name = _resolve_schedule(schedule, n_betas)
    base = fit_base(model, base, x if base_data is None else base_data)
    base_bias = tf.constant(base.parameters, dtype)
    path = model.annealing_path(base_bias, dtype)
    betas_t = tf.constant(betas, dtype)
    key = tf.constant([seed, 1], tf.int32)
    begin = time.perf_counter()
    v = tf.constant(x, dtype)
    over_data = not capabilities.offers(path, capabilities.StartsFromData)
    settings = {"method": "reverse AIS (RAISE)", "n_betas": len(betas), "n_examples": len(x), "base": base.name,
                "schedule": schedule_name, "dtype": dtype.name, "seed": seed}
    if not over_data:
        burn_in = checks.check_positive_int(burn_in, "burn_in", minimum=0)
        v = path.start_from_data(v, tf.random.experimental.stateless_fold_in(key, -1))
        burn = _compiled(model, _burn_in_block, dtype)
        burn_key = tf.random.experimental.stateless_fold_in(key, -2)
        v = _run_blocks(lambda state, start, stop: burn(state, start, stop, base_bias, burn_key), v, burn_in, None)
        settings.update(method="reverse AIS from chains started at the data", burn_in=burn_in)
    terms = path.terms(v)
    log_f_data = path.log_f(terms, betas_t[-1])
    step = _compiled(model, _reverse_block, dtype)
    _, _, log_p = _run_blocks(lambda state, start, stop: step(state, start, stop, betas_t, base_bias, key),
                              (v, terms, log_f_data - path.base_log_partition()), len(betas) - 1, progress)
    log_p = log_p.numpy().astype(np.float64)
    log_z = log_f_data.numpy().astype(np.float64) - log_p  # each chain's estimate of log Z
    if over_data:  # the implied log Z: mean(log f(v) - log p-hat(v)), the NLL's stochastic upper bound's
        estimate, std = float(np.mean(log_z)), standard_error(log_z)
    else:  # the reverse weights 1 / Z_i: log Z-hat = -log mean_i exp(-log Z_i), std by the delta method
        w = np.exp(log_z.min() - log_z)
        estimate, std = float(log_z.min() - math.log(w.mean())), standard_error(w) / w.mean()
    return RAISEResult(
        log_likelihood=float(log_p.mean()) if over_data else None,
        log_likelihood_std=standard_error(log_p) if over_data else None, log_z=estimate,
        per_example=log_p if over_data else log_z, log_z_std=std, settings=settings,
        seconds=time.perf_counter() - begin)


@dataclass(frozen=True, eq=False)
class LogLikelihood(Result):
    """mean_v [-F(v)] - log Z over examples: nats per example (log density for real-valued data)."""
    mean: float
    std: float  # standard error of the mean over examples
    per_example: np.ndarray = field(repr=False)
    log_z: float = 0.0


def mean_free_energy(model, x):
    """mean_v F(v) over the rows of x, in float64: the NLL of x is this plus log Z."""
    return -log_likelihood(model, x, 0.0).mean


def log_likelihood(model, x, log_z):
    """log p(v) = log f(v) - log Z (an RBM: -F(v) - log Z) for each row of x, with its mean and standard error."""
    capabilities.require(model, capabilities.EnergyModel, "give log p(x) from log Z (it has no unnormalised "
                         "log-probability)")
    log_z = float(log_z)
    if not math.isfinite(log_z):
        raise ValueError(f"log_z must be finite, got {log_z}")
    v = model.validate_data(x, "x")
    per_example = model.unnormalized_log_prob(tf.constant(v, tf.float64)).numpy() - log_z
    std = standard_error(per_example)
    return LogLikelihood(mean=float(per_example.mean()), std=std, per_example=per_example, log_z=log_z)


@dataclass(frozen=True, eq=False)
class Evaluation(Result):
    """log Z from both sides and the train/test NLL bracket it gives (nats per example):
    nll_lower uses the forward AIS log Z (optimistic), nll_upper the reverse one (conservative)."""
    dataset: str
    log_z_forward: float
    log_z_reverse: float
    log_z_exact: float
    nll: dict  # {"train": {"lower", "upper", "exact"}, "test": {...}}
    forward: dict
    reverse: dict
    seconds: float
    convergence: dict = None  # `Convergence` of forward AIS (to_dict), None when not checked
    bound: bool = False  # the NLL entries bound the NLL (a DBM's mean-field bound) rather than estimate it
    kind: str = "bracket"  # the NLL from both sides; the nll[...]["exact"] entries too when log Z was enumerated;
    # "not converged" when forward AIS drifted between two schedule lengths: the pair is then no bracket


def evaluate_energy_model(model, dataset, n_betas=DEFAULT_N_BETAS, n_chains=100, reverse_betas=None,
                          reverse_examples=100, exact=None, base="data", schedule="salakhutdinov", dtype=tf.float64,
                          seed=0, progress=None, burn_in=1000, check_betas=None, tolerance=DRIFT_TOLERANCE):
    """Everything at once on `dataset` (a name, a zoo.data.Dataset or {"train": x, "test": x}): forward
    AIS (n_betas, n_chains, base fitted on the training split) and its convergence check (forward AIS again at
    `check_betas` temperatures, default a fifth of n_betas, seed + 1; 0: no check; `check_convergence` with
    `tolerance`), RAISE on `reverse_examples`
    test examples (reverse_betas temperatures, default n_betas; a DBM's chains start there and run `burn_in`
    sweeps first), exact log Z when the model is small enough (exact=None: when possible; True: required), and
    the train/test NLL bracket: of the NLL itself, or of the model's bound on it when its `unnormalized_log_prob`
    is a lower bound (`UNNORMALIZED_LOG_PROB`, a DBM's mean-field bound: kind "bound bracket"); kind "not
    converged" when the check failed."""
    if isinstance(dataset, str):
        dataset = data_lib.load(dataset)
    if isinstance(dataset, dict):
        if set(dataset) != {"train", "test"}:
            raise ValueError(f"dataset as a dict needs exactly the keys 'train' and 'test', got {sorted(dataset)}")
        name, train, test = "arrays", dataset["train"], dataset["test"]
    else:
        name, train, test = dataset.name, dataset.train.x, dataset.test.x
    begin = time.perf_counter()
    seed = _seed(seed)
    long_betas, _ = _resolve_schedule(schedule, n_betas)
    if check_betas is None:
        check_betas = max(2, len(long_betas) // CHECK_FRACTION)
    check_betas = checks.check_positive_int(check_betas, "check_betas", minimum=0)
    if check_betas and not 2 <= check_betas < len(long_betas):
        raise ValueError(f"check_betas must lie in [2, {len(long_betas) - 1}] (fewer temperatures than the "
                         f"{len(long_betas)} of the estimate) or be 0 (no check), got {check_betas}")
    log_z_exact = math.nan
    if exact or exact is None:  # first: a model too large for exact=True fails before the long runs
        try:
            log_z_exact = exact_log_partition(model)
        except ValueError:
            if exact:
                raise
    convergence = None
    base = fit_base(model, base, train)  # once for the three runs: a DBM's is a mean field over the training data
    if check_betas:
        short_schedule = schedule if isinstance(schedule, str) else _every(long_betas, check_betas)
        short = ais(model, n_betas=check_betas, n_chains=n_chains, base=base, data=train, schedule=short_schedule,
                    dtype=dtype, seed=seed + 1, progress=progress)
    forward = ais(model, n_betas=n_betas, n_chains=n_chains, base=base, data=train, schedule=schedule,
                  dtype=dtype, seed=seed, progress=progress)
    if check_betas:
        convergence = check_convergence(forward, short, tolerance)
    reverse = reverse_ais(model, test, n_betas=n_betas if reverse_betas is None else reverse_betas,
                          n_examples=reverse_examples, base=base, base_data=train, schedule=schedule,
                          dtype=dtype, seed=seed, progress=progress, burn_in=burn_in)
    nll = {}
    for split, x in (("train", train), ("test", test)):
        free_energy = mean_free_energy(model, x)
        nll[split] = {"lower": free_energy + forward.log_z, "upper": free_energy + reverse.log_z,
                      "exact": free_energy + log_z_exact}
    bound = getattr(model, "UNNORMALIZED_LOG_PROB", "exact") != "exact"
    kind = "not converged" if convergence is not None and not convergence.converged else \
        "bound bracket" if bound else "bracket"
    return Evaluation(dataset=name, log_z_forward=forward.log_z, log_z_reverse=reverse.log_z,
                      log_z_exact=log_z_exact, nll=nll, forward=forward.to_dict(arrays=False),
                      reverse=reverse.to_dict(arrays=False), seconds=time.perf_counter() - begin,
                      convergence=None if convergence is None else convergence.to_dict(), bound=bound, kind=kind)


def _every(betas, n):
    """About n of an explicit schedule's temperatures, evenly picked, 0 and 1 kept."""
    picked = betas[np.unique(np.round(np.linspace(0, len(betas) - 1, n)).astype(int))]
    return _check_schedule(picked)
