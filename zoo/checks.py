"""Input checks at the public boundary: every bad input becomes a ValueError that says what was wrong
and what was expected."""
import numpy as np


def as_float_matrix(x, name="x", width=None, dtype=np.float32, allow_empty=False):
    """Return `x` as a finite 2-D float array of shape (n, width), or raise ValueError."""
    if hasattr(x, "numpy"):
        x = x.numpy()
    try:
        arr = np.asarray(x)
    except Exception as exc:  # ragged lists and other non-arrays
        raise ValueError(f"{name} must be a 2-D numeric array, got {type(x).__name__} ({exc})") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"{name} must be numeric (float, int or bool), got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"{name} must be real-valued, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_examples, n_features), got shape {arr.shape}")
    if width is not None and arr.shape[1] != width:
        raise ValueError(f"{name} must have {width} columns (features), got shape {arr.shape}")
    if arr.shape[0] == 0 and not allow_empty:
        raise ValueError(f"{name} is empty: expected at least one example, got shape {arr.shape}")
    arr = arr.astype(dtype, copy=False)
    # NaN and inf propagate into a float64 sum, which finite float32 values cannot overflow: one pass, no
    # temporary array (checked once per fit call, on every training array).
    with np.errstate(invalid="ignore", over="ignore"):
        total = np.sum(arr, dtype=np.float64)
    if not np.isfinite(total) and not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name} contains {bad} NaN or infinite values: expected finite numbers")
    return arr


def is_binary(arr, chunk=1 << 16):
    """True when every entry of `arr` is 0 or 1."""
    flat = np.asarray(arr).reshape(-1)
    # in cache-sized chunks: the temporaries never leave the cache (twice as fast on MNIST's 39M entries)
    return not any(np.any((part != 0) & (part != 1)) for part in
                   (flat[start:start + chunk] for start in range(0, flat.size, chunk)))


def check_binary(arr, name="x"):
    """Raise ValueError unless every entry of `arr` is 0 or 1."""
    arr = np.asarray(arr)
    if not is_binary(arr):
        bad = (arr != 0) & (arr != 1)
        example = arr[bad].flat[0]
        raise ValueError(
            f"{name} must be binary (0 or 1) for Bernoulli units, but {int(bad.sum())} entries are not "
            f"(e.g. {float(example):g}); binarise the data first (e.g. dataset 'binarized_mnist'), or allow "
            "probabilities (BernoulliUnits(allow_nonbinary=True), CLI --allow-nonbinary)")
    return arr


def check_labels(y, n, n_classes, name="y", unlabelled=None):
    """`y` as int64 labels of shape (n,) in [0, n_classes) (or the marker `unlabelled`, e.g. -1, for rows without
    a label), or ValueError."""
    y = np.asarray(y)
    if y.shape != (n,):
        raise ValueError(f"{name} must be a 1-D array of {n} labels (one per example), got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{name} must hold integer class labels, got dtype {y.dtype}")
    lowest = 0 if unlabelled is None else unlabelled
    if n and (y.min() < lowest or y.max() >= n_classes):
        marker = "" if unlabelled is None else f" or {unlabelled} for unlabelled rows"
        raise ValueError(f"{name} must be class labels in [0, {n_classes - 1}]{marker}, got values in "
                         f"[{y.min()}, {y.max()}]")
    return y.astype(np.int64)


def check_positive_int(value, name, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_nonnegative(value, name):
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number >= 0, got {value!r}") from None
    if not np.isfinite(v) or v < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return v


def check_probability(value, name, allow_one=False):
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}") from None
    upper_ok = v <= 1 if allow_one else v < 1
    if not (np.isfinite(v) and v >= 0 and upper_ok):
        raise ValueError(f"{name} must be in [0, {'1]' if allow_one else '1)'}, got {value!r}")
    return v


def check_tempering(n_temperatures, min_beta):
    """(n_temperatures, min_beta, betas) of parallel tempering, checked: betas evenly spaced from min_beta (in
    [0, 1)) to 1, or [1.0] alone for one temperature (no tempering)."""
    n_temperatures = check_positive_int(n_temperatures, "n_temperatures")
    min_beta = check_probability(min_beta, "min_beta")
    betas = np.linspace(min_beta, 1.0, n_temperatures) if n_temperatures > 1 else np.ones(1)
    return n_temperatures, min_beta, betas


def check_centering(centering, rate, layer_units):
    """(centering, centering_rate) of an energy model with `layer_units`, checked: the rate a probability and,
    with centering, above 0 and every layer's units with a linear self energy (the centered gradient needs them)."""
    centering, rate = bool(centering), check_probability(rate, "centering_rate", allow_one=True)
    if centering and not all(units.linear_self_energy for units in layer_units):
        raise ValueError("centering needs units with a linear self energy (bernoulli or softmax) in every layer, "
                         f"got {[units.kind for units in layer_units]}")
    if centering and not rate:
        raise ValueError("centering_rate must be in (0, 1]: the offsets follow the data at that rate")
    return centering, rate


def check_choice(value, name, choices):
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}: expected one of {', '.join(map(repr, choices))}")
    return value
