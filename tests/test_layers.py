"""The directed layers of binary units (zoo.layers: the Bernoulli prior, SBN, DARN, NADE) against exact answers.

Every layer is tiny (3 or 4 units), so all 2^units values can be enumerated, and every variable, including the
autoregressive and NADE weights, is given seeded random values of scale 1.5, so that the dependencies between
units matter. The exact answers come from an independent float64 NumPy transcription of the formulas in the
module's docstring, written with explicit loops over the units.
"""
import itertools

import numpy as np
import pytest
import tensorflow as tf

from zoo import layers

SCALE = 1.5
N_IN = 2
N_SAMPLES = 20000
TV_TOLERANCE = 0.02

# (kind, n_in): the three top priors and the three conditional layers
CASES = [("sbn", 0), ("darn", 0), ("nade", 0), ("sbn", N_IN), ("darn", N_IN), ("nade", N_IN)]
IDS = [f"{kind}-{'prior' if not n_in else 'conditional'}" for kind, n_in in CASES]
AUTOREGRESSIVE = [case for case in CASES if case[0] != "sbn"]
AUTOREGRESSIVE_IDS = [i for (kind, _), i in zip(CASES, IDS) if kind != "sbn"]
CONDITIONAL = [case for case in CASES if case[1]]
CONDITIONAL_IDS = [i for (_, n_in), i in zip(CASES, IDS) if n_in]

# a few contexts: binary (as from a stochastic layer) and real (as from a mean path)
CONTEXTS = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.7, -1.3]], np.float32)


def build(kind, n_in, units=4, seed=0, scale=SCALE):
    """A built layer with every variable set to seeded normal values of standard deviation `scale`."""
    layer = layers.make(kind, units, n_in, name=f"{kind}_{n_in}_{seed}", n_hidden=3)
    layer.build()
    rng = np.random.default_rng(seed)
    for variable in layer.weights:
        variable.assign(rng.normal(scale=scale, size=tuple(variable.shape)).astype(np.float32))
    return layer


def all_values(units):
    """The 2^units binary vectors, unit 0 the most significant bit: row r is the binary expansion of r."""
    return np.array(list(itertools.product([0.0, 1.0], repeat=units)), np.float32)


def value_index(values):
    units = values.shape[-1]
    return (values.astype(np.int64) @ (2 ** np.arange(units - 1, -1, -1))).astype(np.int64)


def weights_of(layer):
    return {v.name: v.numpy().astype(np.float64) for v in layer.weights}


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def log_sigmoid(z):
    return -np.logaddexp(0.0, -z)


def reference_logits(layer, y, x=None, darn_mask="upper"):
    """The documented p(y_j = 1 | y_<j, x) as logits, by loops over the units: float64, one vector y (units,).
    darn_mask="lower" is the reference code's other triangle (unit j sees the units after it)."""
    w = weights_of(layer)
    y = np.asarray(y, np.float64)
    n = len(y)
    if layer.kind == "bernoulli":
        return w["logits"].copy()
    base = w["bias"] + (np.asarray(x, np.float64) @ w["kernel"] if layer.n_in else 0.0)
    out = np.array(base, np.float64)
    if layer.kind == "darn":
        a = w["autoregressive_kernel"]
        for j in range(n):
            before = range(j) if darn_mask == "upper" else range(j + 1, n)
            out[j] += sum(y[i] * a[i, j] for i in before)
    elif layer.kind == "nade":
        c = w["hidden_bias"] + (np.asarray(x, np.float64) @ w["hidden_kernel"] if layer.n_in else 0.0)
        for j in range(n):
            a_j = c + sum((y[i] * w["input_kernel"][i] for i in range(j)), np.zeros_like(c))
            out[j] += sigmoid(a_j) @ w["output_kernel"][:, j]
    return out


def reference_log_prob(layer, y, x=None, **kwargs):
    logits = reference_logits(layer, y, x, **kwargs)
    y = np.asarray(y, np.float64)
    return float(np.sum(y * log_sigmoid(logits) + (1 - y) * log_sigmoid(-logits)))


def reference_probs(layer, x=None, **kwargs):
    """The exact distribution over all 2^units values, in the order of `all_values`."""
    return np.exp([reference_log_prob(layer, y, x, **kwargs) for y in all_values(layer.units)])


def contexts_for(n_in):
    return [None] if not n_in else list(CONTEXTS)


def histogram(samples, units):
    return np.bincount(value_index(samples.reshape(-1, units)), minlength=2 ** units) / len(samples)


def tv(p, q):
    return 0.5 * float(np.abs(np.asarray(p) - np.asarray(q)).sum())


# ---------------------------------------------------------------------------------------------------------------
# exact log-probabilities


@pytest.mark.parametrize("kind,n_in", CASES, ids=IDS)
def test_log_prob_and_logits_equal_the_documented_formula(kind, n_in):
    layer = build(kind, n_in)
    values = all_values(layer.units)
    for x in contexts_for(n_in):
        context = None if x is None else np.repeat(x[None], len(values), axis=0)
        logits = layer.logits(values, context).numpy()
        log_prob = layer.log_prob(values, context).numpy()
        assert logits.shape == values.shape and log_prob.shape == (len(values),)
        np.testing.assert_allclose(logits, [reference_logits(layer, y, x) for y in values], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(log_prob, [reference_log_prob(layer, y, x) for y in values], rtol=1e-5,
                                   atol=1e-5)


@pytest.mark.parametrize("kind,n_in", CASES, ids=IDS)
def test_probabilities_sum_to_one_over_all_values(kind, n_in):
    layer = build(kind, n_in)
    values = all_values(layer.units)  # (V, units)
    if not n_in:
        total = np.exp(layer.log_prob(values).numpy()).sum()
        assert total == pytest.approx(1.0, abs=1e-5)
        # with leading sample and batch axes on the value: (V, K, B, units)
        stacked = np.broadcast_to(values[:, None, None, :], (len(values), 3, 2, layer.units))
        totals = np.exp(layer.log_prob(stacked).numpy()).sum(axis=0)
        assert totals.shape == (3, 2)
        np.testing.assert_allclose(totals, 1.0, atol=1e-5)
        return
    for x in CONTEXTS:
        total = np.exp(layer.log_prob(values, np.repeat(x[None], len(values), axis=0)).numpy()).sum()
        assert total == pytest.approx(1.0, abs=1e-5)
    # a context with a leading sample axis, (K, B, n_in), the value (V, 1, 1, units) broadcast against it
    context = np.random.default_rng(1).normal(scale=SCALE, size=(3, 2, n_in)).astype(np.float32)
    log_prob = layer.log_prob(values[:, None, None, :], context).numpy()
    assert log_prob.shape == (len(values), 3, 2)
    np.testing.assert_allclose(np.exp(log_prob).sum(axis=0), 1.0, atol=1e-5)


def test_the_tests_weights_make_the_units_depend_on_each_other():
    """The normalisation test has power only if a wrong mask would not normalise: with these weights a DARN
    whose unit j also sees itself and the units after it (a full matrix) is far from summing to 1."""
    layer = build("darn", 0)
    w = weights_of(layer)
    values = all_values(layer.units).astype(np.float64)
    logits = w["bias"] + values @ w["autoregressive_kernel"]
    total = np.exp(np.sum(values * log_sigmoid(logits) + (1 - values) * log_sigmoid(-logits), axis=1)).sum()
    assert abs(total - 1.0) > 0.05


# ---------------------------------------------------------------------------------------------------------------
# sampling agrees with log_prob


def draw(layer, x, seed):
    if x is None:
        return layer.sample(seed=tf.constant([seed, 0]), batch_shape=(N_SAMPLES,)).numpy()
    return layer.sample(np.repeat(x[None], N_SAMPLES, axis=0), seed=tf.constant([seed, 0])).numpy()


@pytest.mark.parametrize("kind,n_in", CASES, ids=IDS)
def test_samples_follow_log_prob(kind, n_in):
    layer = build(kind, n_in, seed=2)
    values = all_values(layer.units)
    gaps = []
    for s, x in enumerate(contexts_for(n_in)[:3]):
        samples = draw(layer, x, seed=10 + s)
        assert samples.shape == (N_SAMPLES, layer.units)
        assert set(np.unique(samples)) <= {0.0, 1.0}
        context = None if x is None else np.repeat(x[None], len(values), axis=0)
        p = np.exp(layer.log_prob(values, context).numpy())
        empirical = histogram(samples, layer.units)
        assert tv(empirical, p) < TV_TOLERANCE, (x, empirical, p)
        if kind != "sbn":
            # the test can tell: the product of the marginals (the units made independent) is, for some
            # context, more than twice the tolerance away
            marginals = samples.mean(axis=0)
            independent = np.prod(np.where(values == 1, marginals, 1 - marginals), axis=1)
            gaps.append(tv(empirical, independent))
    assert not gaps or max(gaps) > 2 * TV_TOLERANCE


@pytest.mark.parametrize("kind,n_in", CASES, ids=IDS)
def test_a_sample_shape_draws_from_one_context_and_log_prob_broadcasts(kind, n_in):
    """sample(context, sample_shape=[K]) draws K samples from one context, as the Helmholtz machine draws
    h_1 ~ q(. | x); log_prob of (K, batch, n) values against a (batch, n_in) context equals log_prob against the
    context repeated K times."""
    layer = build(kind, n_in, seed=2)
    x = contexts_for(n_in)[0]
    seed = tf.constant([7, 0])
    if n_in:
        samples = layer.sample(x[None], seed=seed, sample_shape=(N_SAMPLES,)).numpy()
        assert samples.shape == (N_SAMPLES, 1, layer.units)
    else:
        samples = layer.sample(seed=seed, sample_shape=(N_SAMPLES,)).numpy()
        assert samples.shape == (N_SAMPLES, layer.units)
    values = all_values(layer.units)
    context = None if x is None else np.repeat(x[None], len(values), axis=0)
    p = np.exp(layer.log_prob(values, context).numpy())
    assert tv(histogram(samples.reshape(N_SAMPLES, layer.units), layer.units), p) < TV_TOLERANCE
    if n_in:
        contexts = np.stack(contexts_for(n_in)[:2]).astype(np.float32)  # (batch 2, n_in)
        value = samples[:6].reshape(3, 2, layer.units)  # (K 3, batch 2, units)
        np.testing.assert_allclose(layer.log_prob(value, contexts).numpy(),
                                   layer.log_prob(value, np.broadcast_to(contexts, (3, 2, n_in))).numpy(), rtol=1e-6)


@pytest.mark.parametrize("kind,n_in", CASES, ids=IDS)
def test_the_distribution_is_the_layer_s_log_prob(kind, n_in):
    layer = build(kind, n_in, seed=4)
    values = all_values(layer.units)
    x = contexts_for(n_in)[-1]
    context = None if x is None else np.repeat(x[None], len(values), axis=0)
    if layer.autoregressive:
        with pytest.raises(ValueError, match="give value"):
            layer.distribution(context)
    distribution = layer.distribution(context, value=values if layer.autoregressive else None)
    if context is None and not layer.autoregressive:
        assert distribution.batch_shape == ()
    np.testing.assert_allclose(distribution.log_prob(values).numpy(), layer.log_prob(values, context).numpy(),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("n_in", [0, N_IN], ids=["prior", "conditional"])
def test_darn_samples_from_the_triangle_of_its_log_prob(n_in):
    """The reference code's bug: log_prob with one triangle, sampling with the other. The model with the
    transposed mask (unit j sees the units after it), computed by hand, is a different distribution, and the
    samples are far from it while close to log_prob."""
    layer = build("darn", n_in, seed=3)
    for s, x in enumerate(contexts_for(n_in)[:2]):
        right = reference_probs(layer, x)
        wrong = reference_probs(layer, x, darn_mask="lower")
        assert wrong.sum() == pytest.approx(1.0)  # a valid model, only a different one
        empirical = histogram(draw(layer, x, seed=20 + s), layer.units)
        assert tv(empirical, right) < TV_TOLERANCE
        assert tv(right, wrong) > 5 * TV_TOLERANCE
        assert tv(empirical, wrong) > 5 * TV_TOLERANCE


# ---------------------------------------------------------------------------------------------------------------
# autoregressive structure


@pytest.mark.parametrize("kind,n_in", AUTOREGRESSIVE, ids=AUTOREGRESSIVE_IDS)
def test_unit_j_sees_only_the_units_before_it(kind, n_in):
    layer = build(kind, n_in, seed=4)
    units = layer.units
    values = all_values(units)
    for x in contexts_for(n_in)[:2]:
        context = None if x is None else np.repeat(x[None], len(values), axis=0)
        logits = layer.logits(values, context).numpy()
        for i in range(units):
            flipped = values.copy()
            flipped[:, i] = 1 - flipped[:, i]
            change = np.abs(layer.logits(flipped, context).numpy() - logits)  # (V, units)
            for j in range(units):
                if i >= j:
                    assert change[:, j].max() < 1e-6, f"logit {j} changes with unit {i} >= {j}"
                else:
                    assert change[:, j].max() > 1e-4, f"logit {j} ignores unit {i} < {j}"


def test_darn_logit_moves_by_exactly_the_autoregressive_weight():
    layer = build("darn", N_IN, seed=5)
    a = layer.autoregressive_kernel.numpy()
    values = all_values(layer.units)
    context = np.repeat(CONTEXTS[3][None], len(values), axis=0)
    logits = layer.logits(values, context).numpy()
    for i in range(layer.units):
        flipped = values.copy()
        flipped[:, i] = 1 - flipped[:, i]
        change = layer.logits(flipped, context).numpy() - logits
        expected = (flipped[:, i] - values[:, i])[:, None] * a[i] * (np.arange(layer.units) > i)
        np.testing.assert_allclose(change, expected, atol=1e-5)


@pytest.mark.parametrize("n_in", [0, N_IN], ids=["prior", "conditional"])
def test_sbn_logits_do_not_depend_on_the_value(n_in):
    layer = build("sbn", n_in, seed=6)
    values = all_values(layer.units)
    context = None if not n_in else np.repeat(CONTEXTS[3][None], len(values), axis=0)
    logits = layer.logits(values, context).numpy()
    np.testing.assert_allclose(logits, np.broadcast_to(logits[:1], logits.shape), atol=0)


# ---------------------------------------------------------------------------------------------------------------
# vectorisation over a leading sample axis


@pytest.mark.parametrize("kind,n_in", CASES, ids=IDS)
def test_log_prob_is_vectorised_over_leading_axes(kind, n_in):
    layer = build(kind, n_in, seed=7)
    rng = np.random.default_rng(8)
    k, b = 3, 2
    value = (rng.random((k, b, layer.units)) < 0.5).astype(np.float32)
    context = rng.normal(scale=SCALE, size=(k, b, n_in)).astype(np.float32) if n_in else None
    batched = layer.log_prob(value, context).numpy()
    assert batched.shape == (k, b)
    loop = np.array([[layer.log_prob(value[i, j], None if context is None else context[i, j]).numpy()
                      for j in range(b)] for i in range(k)])
    np.testing.assert_allclose(batched, loop, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(batched, [[reference_log_prob(layer, value[i, j], None if context is None else
                                                             context[i, j]) for j in range(b)] for i in range(k)],
                               rtol=1e-5, atol=1e-5)
    if n_in:
        # K samples of the layer against one context per example, (B, n_in): the inference network's first layer
        shared = layer.log_prob(value, context[0]).numpy()
        loop = np.array([[layer.log_prob(value[i, j], context[0, j]).numpy() for j in range(b)] for i in range(k)])
        np.testing.assert_allclose(shared, loop, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind,n_in", CASES, ids=IDS)
def test_sample_shape_follows_the_context_or_batch_shape(kind, n_in):
    layer = build(kind, n_in, units=3)
    seed = tf.constant([1, 0])
    if n_in:
        sample = layer.sample(np.zeros((4, 2, n_in), np.float32), seed=seed)
    else:
        sample = layer.sample(seed=seed, batch_shape=(4, 2))
    assert tuple(sample.shape) == (4, 2, 3)
    assert set(np.unique(sample.numpy())) <= {0.0, 1.0}


# ---------------------------------------------------------------------------------------------------------------
# numerical stability


@pytest.mark.parametrize("kind,n_in", CASES, ids=IDS)
def test_logits_of_a_hundred_give_the_analytic_log_prob(kind, n_in):
    """Only the bias (the prior's logits) is non-zero: logits (100, -100, 100). log p(y_j = 0 | 100) =
    -softplus(100) = -100 and log p(y_j = 1 | 100) = -softplus(-100) = -3.7e-44; log(sigmoid) would give -inf."""
    layer = build(kind, n_in, units=3)
    for variable in layer.weights:
        variable.assign(np.zeros(tuple(variable.shape), np.float32))
    logits = np.array([100.0, -100.0, 100.0], np.float32)
    layer.weights[[v.name for v in layer.weights].index("logits" if kind == "sbn" and not n_in else "bias")].assign(
        logits)
    values = all_values(3)
    context = np.ones((len(values), n_in), np.float32) if n_in else None
    with tf.GradientTape() as tape:
        log_prob = layer.log_prob(values, context)
        total = tf.reduce_sum(log_prob)
    log_prob = log_prob.numpy()
    mismatches = np.sum(values != (logits > 0), axis=1)
    expected = -100.0 * mismatches - 3 * np.log1p(np.exp(-100.0))
    assert np.all(np.isfinite(log_prob))
    np.testing.assert_allclose(log_prob, expected, rtol=1e-6, atol=1e-6)
    gradients = tape.gradient(total, layer.trainable_weights)
    assert all(np.all(np.isfinite(g.numpy())) for g in gradients if g is not None)


@pytest.mark.parametrize("kind,n_in", [case for case in CASES if case[0] != "sbn"],
                         ids=AUTOREGRESSIVE_IDS)
def test_large_autoregressive_logits_stay_finite_and_exact(kind, n_in):
    """Weights of scale 60: logits of hundreds, reached through the autoregressive and NADE weights."""
    layer = build(kind, n_in, units=3, seed=9, scale=60.0)
    values = all_values(3)
    for x in contexts_for(n_in)[:2]:
        context = None if x is None else np.repeat(x[None], len(values), axis=0)
        log_prob = layer.log_prob(values, context).numpy()
        assert np.all(np.isfinite(log_prob))
        assert np.abs(layer.logits(values, context).numpy()).max() > 80  # the test reaches the saturated range
        np.testing.assert_allclose(log_prob, [reference_log_prob(layer, y, x) for y in values], rtol=1e-5,
                                   atol=1e-5)
        assert np.exp(log_prob).sum() == pytest.approx(1.0, abs=1e-5)


# ---------------------------------------------------------------------------------------------------------------
# parameter layout (the documented layout of a checkpoint) and seeds


def shapes(layer):
    return {v.name: tuple(v.shape) for v in layer.weights}


def test_variable_names_and_shapes():
    assert isinstance(layers.make("sbn", 4, 0), layers.BernoulliPrior)
    assert shapes(build("sbn", 0)) == {"logits": (4,)}
    assert shapes(build("sbn", 2)) == {"kernel": (2, 4), "bias": (4,)}
    assert shapes(build("darn", 0)) == {"bias": (4,), "autoregressive_kernel": (4, 4)}
    assert shapes(build("darn", 2)) == {"kernel": (2, 4), "bias": (4,), "autoregressive_kernel": (4, 4)}
    assert shapes(build("nade", 0)) == {"bias": (4,), "hidden_bias": (3,), "input_kernel": (4, 3),
                                        "output_kernel": (3, 4)}
    assert shapes(build("nade", 2)) == {"kernel": (2, 4), "hidden_kernel": (2, 3), "bias": (4,),
                                        "hidden_bias": (3,), "input_kernel": (4, 3), "output_kernel": (3, 4)}
    assert layers.make("nade", 4, 0).n_hidden == 4  # n_hidden defaults to the units


def test_sbn_kernel_maps_the_context_to_the_units():
    """kernel is n_in x units: p(y_j = 1 | x) = sigmoid(x @ kernel + bias)_j, not x @ kernel.T."""
    layer = layers.make("sbn", 3, 2)
    layer.build()
    layer.kernel.assign(np.array([[1.0, 2.0, 3.0], [10.0, 20.0, 30.0]], np.float32))
    layer.bias.assign(np.array([0.5, -0.5, 0.25], np.float32))
    x = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    np.testing.assert_allclose(layer.logits(np.zeros((2, 3), np.float32), x).numpy(),
                               [[1.5, 1.5, 3.25], [10.5, 19.5, 30.25]])
    np.testing.assert_allclose(layer.mean(x).numpy(), sigmoid(np.array([[1.5, 1.5, 3.25], [10.5, 19.5, 30.25]])),
                               rtol=1e-6)


@pytest.mark.parametrize("kind,n_in", CASES, ids=IDS)
def test_a_seed_reproduces_a_draw(kind, n_in):
    layer = build(kind, n_in, seed=11)
    context = np.repeat(CONTEXTS[3][None], 500, axis=0) if n_in else None

    def sample(s):
        return layer.sample(context, seed=tf.constant([s, 0]), batch_shape=(500,)).numpy()

    np.testing.assert_array_equal(sample(5), sample(5))
    assert not np.array_equal(sample(5), sample(6))


@pytest.mark.parametrize("kind,n_in", CASES, ids=IDS)
def test_config_round_trip(kind, n_in):
    layer = layers.make(kind, 4, n_in, name="layer", n_hidden=3)
    again = type(layer).from_config(layer.get_config())
    assert type(again) is type(layer) and (again.units, again.n_in, again.name) == (4, n_in, "layer")
    if kind == "nade":
        assert again.n_hidden == 3


# ---------------------------------------------------------------------------------------------------------------
# bad input


def test_unknown_kind_is_a_clear_value_error():
    with pytest.raises(ValueError, match=r"unknown layer type 'ising'.*'sbn', 'darn', 'nade'"):
        layers.make("ising", 3)


@pytest.mark.parametrize("kind,n_in", CASES, ids=IDS)
@pytest.mark.parametrize("units", [0, -1])
def test_non_positive_units_is_a_clear_value_error(kind, n_in, units):
    with pytest.raises(ValueError, match=rf"units must be an integer >= 1, got {units}"):
        layers.make(kind, units, n_in)


def test_other_bad_sizes_are_value_errors():
    with pytest.raises(ValueError, match="n_hidden"):
        layers.make("nade", 3, 0, n_hidden=0)
    with pytest.raises(ValueError, match="n_in"):
        layers.make("darn", 3, -1)
    with pytest.raises(ValueError, match="no context"):
        layers.BernoulliPrior(3, n_in=2)


@pytest.mark.parametrize("kind,n_in", CONDITIONAL, ids=CONDITIONAL_IDS)
def test_a_conditional_layer_without_context_is_a_clear_value_error(kind, n_in):
    layer = build(kind, n_in, units=3)
    with pytest.raises(ValueError, match=f"this {kind} layer needs a context of {n_in} units"):
        layer.sample(seed=tf.constant([0, 0]))
    with pytest.raises(ValueError, match=f"this {kind} layer needs a context of {n_in} units"):
        layer.log_prob(np.zeros((2, 3), np.float32))


@pytest.mark.parametrize("kind,n_in", CONDITIONAL, ids=CONDITIONAL_IDS)
def test_a_context_of_the_wrong_width_is_a_clear_value_error(kind, n_in):
    """A context wider or narrower than the layer was built for (for NADE also its hidden units' context)."""
    layer = build(kind, n_in, units=3)
    for width in (n_in - 1, n_in + 1):
        with pytest.raises(ValueError, match=f"this {kind} layer takes a context of {n_in} units, got {width}"):
            layer.sample(np.zeros((2, width), np.float32), seed=tf.constant([0, 0]))
        with pytest.raises(ValueError, match=f"takes a context of {n_in} units, got {width}"):
            layer.log_prob(np.zeros((2, 3), np.float32), np.zeros((2, width), np.float32))
