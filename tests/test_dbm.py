"""zoo.DBM against exact answers: tiny machines whose every joint state is enumerated by brute force, in NumPy,
independently of the model's own closed forms (log Z, log sum_h exp(-E(v, h)), the Gibbs conditionals)."""
import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo import evaluation
from zoo.models.base import centered_gradients
from zoo.models.dbm import DBM, PretrainingRBM
from zoo.models.rbm import RBM


def _tiny(layers=(3, 2), n_visible=4, seed=0, scale=1.0, **kwargs):
    model = DBM(list(layers), n_visible=n_visible, seed=seed, **kwargs)
    rng = np.random.default_rng(seed)
    for w in model.kernels + model.biases:
        w.assign(scale * rng.standard_normal(w.shape).astype(np.float32))
    return model


def _binary(n):
    return np.array(list(itertools.product([0.0, 1.0], repeat=n)))


def _joint(model):
    """(list of per-layer state arrays over every joint state, -E of each joint state), in float64 NumPy; a
    softmax layer (one group) takes its one-hot states."""
    kernels = [w.numpy().astype(np.float64) for w in model.kernels]
    biases = [b.numpy().astype(np.float64) for b in model.biases]
    grids = [np.eye(n) if units.kind == "softmax" else _binary(n) for units, n in zip(model.layer_units, model.sizes)]
    index = np.array(list(itertools.product(*[range(len(g)) for g in grids])))
    states = [g[index[:, l]] for l, g in enumerate(grids)]
    minus_energy = sum(x @ b for x, b in zip(states, biases))
    minus_energy = minus_energy + sum(np.einsum("ni,ij,nj->n", states[l], w, states[l + 1])
                                      for l, w in enumerate(kernels))
    return states, minus_energy


def _logsumexp(a, axis=None):
    top = np.max(a, axis=axis, keepdims=True)
    return np.squeeze(top, axis) + np.log(np.sum(np.exp(a - top), axis=axis))


def _exact(model):
    """(log Z, {visible state as a tuple: log sum_h exp(-E(v, h))}) by brute force."""
    states, minus_energy = _joint(model)
    log_f = {}
    for v in _binary(model.n_visible):
        rows = np.all(states[0] == v, axis=1)
        log_f[tuple(v)] = _logsumexp(minus_energy[rows])
    return _logsumexp(minus_energy), log_f


@pytest.mark.parametrize("layers", [(3, 2), (2, 3, 2), (2, 2, 2, 2)])
def test_exact_log_partition_and_both_parities_agree_with_brute_force(layers):
    model = _tiny(layers)
    log_z, _ = _exact(model)
    assert evaluation.exact_log_partition(model) == pytest.approx(log_z, abs=1e-9)
    for name, units in model.enumerable_layers().items():  # each parity enumerated, the other summed out
        states = units.states(0, int(round(np.exp(units.log_n_states()))), tf.float64)
        marginal = model.unnormalized_log_marginal(states, name).numpy()
        assert _logsumexp(marginal) == pytest.approx(log_z, abs=1e-9), name


@pytest.mark.parametrize("layers", [(3, 2), (2, 3, 2)])
def test_forward_and_reverse_ais_bracket_the_exact_log_partition(layers):
    model = _tiny(layers)
    log_z, _ = _exact(model)
    x = _binary(4)[np.random.default_rng(1).integers(0, 16, 40)].astype(np.float32)
    forward = evaluation.ais(model, n_betas=3000, n_chains=64, data=x, seed=0)
    reverse = evaluation.reverse_ais(model, x, n_betas=3000, seed=0, burn_in=200)
    assert abs(forward.log_z - log_z) < 4 * forward.log_z_std + 0.01
    assert abs(reverse.log_z - log_z) < 4 * reverse.log_z_std + 0.01
    assert reverse.log_likelihood is None and reverse.settings["burn_in"] == 200
    # the reverse weights are 1 / Z_i: log Z-hat = -log mean_i exp(-log Z_i), at most their arithmetic mean
    per_chain = reverse.per_example
    assert reverse.log_z == pytest.approx(-_logsumexp(-per_chain) + np.log(len(per_chain)), abs=1e-9)
    assert reverse.log_z <= per_chain.mean() + 1e-12
    # a short schedule errs on each side as it should: each forward chain's log weight low on average (Jensen),
    # each reverse chain's log Z high (from the uniform base: from the fitted one, 5 temperatures nearly suffice)
    short_f = evaluation.ais(model, n_betas=5, n_chains=400, base="uniform", seed=0, schedule="linear")
    short_r = evaluation.reverse_ais(model, x, n_betas=5, base="uniform", seed=0, schedule="linear", burn_in=200)
    assert short_f.base_log_z + short_f.log_weights.mean() < log_z - 0.05 and short_r.per_example.mean() > log_z + 0.05


def test_the_convergence_check_on_a_dbm_whose_log_partition_is_enumerated():
    """A sharper DBM 8-6-4 (weights of std 2): 20 temperatures against 4 from the uniform base cannot show
    convergence (not converged; the fitted base is close enough to this small model to agree at 20); 3,000 against
    600 agree, and forward and reverse AIS (chains from the data, 200 sweeps) sit on the exact log Z."""
    model = _tiny((6, 4), n_visible=8, scale=2.0)
    log_z, _ = _exact(model)
    x = _binary(8)[np.random.default_rng(1).integers(0, 256, 60)].astype(np.float32)
    data = {"train": x, "test": x}
    short = evaluation.evaluate_energy_model(model, data, n_betas=20, n_chains=100, reverse_examples=60, burn_in=200,
                                             base="uniform", seed=0)
    assert short.kind == "not converged" and short.bound
    long = evaluation.evaluate_energy_model(model, data, n_betas=3000, n_chains=100, reverse_examples=60,
                                            burn_in=200, seed=0)
    assert long.kind == "bound bracket" and long.convergence["converged"] and long.convergence["n_betas_short"] == 600
    assert abs(long.log_z_forward - log_z) < 4 * long.forward["log_z_std"] + 0.02
    assert abs(long.log_z_reverse - log_z) < 4 * long.reverse["log_z_std"] + 0.05
    assert long.log_z_exact == pytest.approx(log_z, abs=1e-9)


def test_an_evaluation_fits_its_base_once_for_its_three_runs(monkeypatch):
    model = _tiny((3, 2))
    x = _binary(4)[np.random.default_rng(1).integers(0, 16, 40)].astype(np.float32)
    calls = []
    fit = DBM.base_parameters
    monkeypatch.setattr(DBM, "base_parameters", lambda self, data=None: calls.append(data is None) or fit(self, data))
    result = evaluation.evaluate_energy_model(model, {"train": x, "test": x}, n_betas=50, n_chains=8,
                                              reverse_examples=8, burn_in=5, seed=0)
    assert calls == [False] and result.convergence is not None  # the check, forward and reverse AIS: one fit
    assert result.forward["settings"]["base"] == result.reverse["settings"]["base"] == "data"


def _exact_samples(model, n, seed=0):
    """n visible states drawn exactly from the model (its joint states enumerated)."""
    states, minus_energy = _joint(model)
    p = np.exp(minus_energy - _logsumexp(minus_energy))
    return states[0][np.random.default_rng(seed).choice(len(p), n, p=p / p.sum())].astype(np.float32)


def test_the_base_model_fits_every_layer_to_the_data_and_its_posterior(monkeypatch):
    model = _tiny((3, 2))
    x = _binary(4)[np.random.default_rng(1).integers(0, 16, 40)].astype(np.float32)
    base = model.base_parameters(x)
    logit = lambda p: np.log(np.clip(p, 1e-3, 1 - 1e-3)) - np.log1p(-np.clip(p, 1e-3, 1 - 1e-3))
    hidden = model.mean_field(x, n_steps=model.mean_field_steps)
    want = np.concatenate([logit(x.mean(0))] + [logit(m.mean(0)) for m in hidden])
    np.testing.assert_allclose(base, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(model.base_parameters(None), np.zeros(4 + 3 + 2))
    # the hidden layers are fitted on evenly spaced rows when the data are many; the visible one on all of them
    monkeypatch.setattr(DBM, "BASE_FIT_EXAMPLES", 10)
    subset = np.concatenate([logit(m.mean(0)) for m in model.mean_field(x[::4], n_steps=model.mean_field_steps)])
    np.testing.assert_allclose(model.base_parameters(x), np.concatenate([logit(x.mean(0)), subset]), atol=1e-5)
    # the path starts at the independent units of the base: log Z_0 = sum of softplus over every layer
    path = model.annealing_path(base)
    assert float(path.base_log_partition()) == pytest.approx(np.logaddexp(0, base).sum(), abs=1e-9)
    with pytest.raises(ValueError, match="base_bias has 4 entries: the base model of a DBM needs every layer's "
                                         "biases, 9 for layers of \\[4, 3, 2\\]"):
        model.annealing_path(base[:4])


def test_a_given_base_is_the_fitted_one_and_a_bad_one_is_refused():
    model = _tiny((3, 2))
    x = _binary(4)[np.random.default_rng(1).integers(0, 16, 40)].astype(np.float32)
    fitted = evaluation.ais(model, n_betas=50, n_chains=8, data=x, seed=0)
    given = evaluation.ais(model, n_betas=50, n_chains=8, base=model.base_parameters(x), seed=0)
    np.testing.assert_array_equal(given.log_weights, fitted.log_weights)
    assert (fitted.settings["base"], given.settings["base"]) == ("data", "given")
    shared = evaluation.ais(model, n_betas=50, n_chains=8, base=evaluation.fit_base(model, "data", x), seed=0)
    np.testing.assert_array_equal(shared.log_weights, fitted.log_weights)
    assert shared.settings["base"] == "data"
    for bad in (np.zeros(4), np.full(9, np.nan)):
        with pytest.raises(ValueError, match="base as an array must hold 9 finite numbers"):
            evaluation.ais(model, n_betas=50, n_chains=8, base=bad)


@pytest.mark.parametrize("seed", [0, 1])
def test_a_base_fitted_on_every_layer_anneals_a_sharp_dbm_with_less_bias(seed):
    """On a sharp DBM 8-6-4 (weights of std 2) and exact samples of it, 20 linear temperatures: forward AIS's mean
    log weight falls short of log Z (the Jensen gap, its bias) by 0.30 and 0.33 nats from the base of fitted
    visible units alone (the zoo's until issue 32) and by 0.05 and 0.00 from the base fitted on every layer."""
    model = _tiny((6, 4), n_visible=8, scale=2.0, seed=seed)
    log_z, _ = _exact(model)
    x = _exact_samples(model, 500)
    gaps = []
    for base in (np.concatenate([model.layer_units[0].bias_from_mean(x.mean(0)), np.zeros(10)]),
                 model.base_parameters(x)):
        r = evaluation.ais(model, n_betas=20, n_chains=400, base=base, seed=0, schedule="linear")
        gaps.append(log_z - (r.base_log_z + r.log_weights.mean()))
    assert gaps[0] > 0.2 and gaps[1] < gaps[0] / 3, gaps


def test_a_softmax_top_layer_against_brute_force():
    model = DBM([3, 4], top="softmax", n_visible=4, seed=0)
    rng = np.random.default_rng(5)
    for w in model.kernels + model.biases:
        w.assign(rng.standard_normal(w.shape).astype(np.float32))
    log_z = _logsumexp(_joint(model)[1])
    assert evaluation.exact_log_partition(model) == pytest.approx(log_z, abs=1e-9)
    x = _binary(4)[rng.integers(0, 16, 40)].astype(np.float32)
    forward = evaluation.ais(model, n_betas=2000, n_chains=64, data=x, seed=0)
    assert abs(forward.log_z - log_z) < 4 * forward.log_z_std + 0.01
    samples = model.sample(50, n_steps=3, seed=0)
    assert samples.shape == (50, 4)
    _, top = model.mean_field(x[:5])
    np.testing.assert_allclose(top.sum(axis=1), 1.0, atol=1e-5)  # the top posterior is a distribution


def test_ais_with_gaussian_visible_units_against_quadrature():
    """The visible layer summed out of the path (the odd layers move) carries the constant of mixing two
    Gaussian self energies: AIS must still find log Z, here by quadrature over one real visible unit."""
    model = DBM([2, 2], visible="gaussian", n_visible=1, seed=0)
    rng = np.random.default_rng(3)
    for w in model.kernels + model.biases:
        w.assign(rng.standard_normal(w.shape).astype(np.float32))
    assert model.annealing_parity() == 1
    kernels = [w.numpy().astype(np.float64) for w in model.kernels]
    b = [w.numpy().astype(np.float64) for w in model.biases]
    grid = np.linspace(-30, 30, 200001)
    terms = []
    for h1 in _binary(2):
        for h2 in _binary(2):
            minus_e = -(grid - b[0][0]) ** 2 / 2 + grid * (kernels[0][0] @ h1) + h1 @ b[1] + h2 @ b[2] + h1 @ kernels[1] @ h2
            top = minus_e.max()
            terms.append(top + np.log(np.sum(np.exp(minus_e - top)) * (grid[1] - grid[0])))
    log_z = _logsumexp(np.array(terms))
    assert evaluation.exact_log_partition(model) == pytest.approx(log_z, abs=1e-6)
    x = rng.normal(2.0, 1.0, (50, 1)).astype(np.float32)
    forward = evaluation.ais(model, n_betas=2000, n_chains=64, data=x, seed=0)
    assert abs(forward.log_z - log_z) < 4 * forward.log_z_std + 0.01


def test_mean_field_reaches_a_fixed_point_and_bounds_the_exact_marginal():
    model = _tiny((3, 2), scale=0.8)
    _, log_f = _exact(model)
    v = _binary(4)
    bound = model.unnormalized_log_prob(tf.constant(v, tf.float64)).numpy()
    exact = np.array([log_f[tuple(row)] for row in v])
    assert np.all(bound <= exact + 1e-9) and np.all(exact - bound < 1.0)
    # the fixed point of mu_l = E_l[x | I(mu_{l-1}) W_{l-1} + I(mu_{l+1}) W_l^T + b_l]
    mu1, mu2 = model.mean_field(v, n_steps=500, tol=0.0)
    w0, w1 = (w.numpy() for w in model.kernels)
    _, b1, b2 = (b.numpy() for b in model.biases)
    sigmoid = lambda a: 1 / (1 + np.exp(-a))  # noqa: E731
    np.testing.assert_allclose(mu1, sigmoid(v @ w0 + mu2 @ w1.T + b1), atol=1e-5)
    np.testing.assert_allclose(mu2, sigmoid(mu1 @ w1 + b2), atol=1e-5)
    # each round is a coordinate ascent of the bound: more rounds never lower it
    bounds = []
    for steps in (1, 2, 5, 50):
        means, inputs, _ = model._mean_field(tf.constant(v, tf.float64), steps, 0.0)
        bounds.append(-model._mean_field_free_energy(means, inputs).numpy())
    assert all(np.all(later >= earlier - 1e-9) for earlier, later in zip(bounds, bounds[1:]))


def test_mean_field_stops_at_its_tolerance():
    model = _tiny((3, 2), scale=0.5)
    v = tf.constant(_binary(4), tf.float64)
    means, _, rounds = model._mean_field(v, 100, 1e-3)
    _, _, finer = model._mean_field(v, 100, 1e-9)
    assert 1 <= int(rounds) < int(finer) < 100
    further, _, _ = model._mean_field(v, int(rounds) + 1, 0.0)  # one round more moves no layer by tol on average
    assert max(float(tf.reduce_mean(tf.abs(a - b))) for a, b in zip(means[1:], further[1:])) < 1e-3
    _, _, capped = model._mean_field(v, 2, 1e-9)
    assert int(capped) == 2


def test_one_update_is_the_data_statistics_minus_the_chains():
    model = _tiny((3, 2), scale=0.5, n_chains=7, gibbs_steps=2, mean_field_steps=4, mean_field_tol=0.0)
    lr = 0.1
    model.compile(keras.optimizers.SGD(learning_rate=lr), steps_per_execution=1)
    v = _binary(4)[[1, 5, 6, 9, 14]].astype(np.float32)
    means, _, _ = model._mean_field(tf.constant(v), 4, 0.0)
    means = [m.numpy().astype(np.float64) for m in means]
    before = [w.numpy().astype(np.float64) for w in model.kernels + model.biases]
    model.fit(tf.data.Dataset.from_tensor_slices(v).batch(5), epochs=1, verbose=0)  # arrays would set b_0 first
    chains = [c.numpy().astype(np.float64) for c in model.chains]  # the states of the negative phase
    after = [w.numpy().astype(np.float64) for w in model.kernels + model.biases]
    for l in range(2):
        expected = lr * (means[l].T @ means[l + 1] / 5 - chains[l].T @ chains[l + 1] / 7)
        np.testing.assert_allclose(after[l] - before[l], expected, atol=1e-5)
    for l in range(3):
        expected = lr * (means[l].mean(0) - chains[l].mean(0))
        np.testing.assert_allclose(after[2 + l] - before[2 + l], expected, atol=1e-5)


def test_centered_gradient_is_the_step_of_the_centered_model_mapped_back():
    """`centered_gradients` against autodiff: a function J of the plain parameters (W_l, b_l), written in the
    centered ones (W_l, b'_l) with b_l = b'_l - W_l o_{l+1} - W_{l-1}^T o_{l-1}; a gradient step in the centered
    parameters, mapped back, is the plain parameters' step along the centered gradient."""
    rng = np.random.default_rng(0)
    sizes = [5, 4, 3, 2]
    kernels = [tf.constant(rng.standard_normal((a, b))) for a, b in zip(sizes[:-1], sizes[1:])]
    centered_biases = [tf.constant(rng.standard_normal(n)) for n in sizes]
    offsets = [tf.constant(rng.uniform(size=n)) for n in sizes]
    weights = [tf.constant(rng.standard_normal((a, b))) for a, b in zip(sizes[:-1], sizes[1:])]

    def plain_biases(kernels, centered_biases):
        return [b - (tf.linalg.matvec(kernels[l], offsets[l + 1]) if l < len(kernels) else 0)
                - (tf.linalg.matvec(kernels[l - 1], offsets[l - 1], transpose_a=True) if l else 0)
                for l, b in enumerate(centered_biases)]

    def objective(kernels, biases):  # any smooth function of the plain parameters
        return (tf.add_n([tf.reduce_sum(tf.tanh(w) * a) for w, a in zip(kernels, weights)])
                + tf.add_n([tf.reduce_sum(b) ** 2 + tf.reduce_sum(tf.sin(b)) for b in biases]))

    with tf.GradientTape() as tape:  # the centered model's gradient: b_l moves with W
        tape.watch(kernels + centered_biases)
        j = objective(kernels, plain_biases(kernels, centered_biases))
    c_kernels, c_biases = tape.gradient(j, [kernels, centered_biases])
    biases = plain_biases(kernels, centered_biases)
    with tf.GradientTape() as tape:  # the plain model's
        tape.watch(kernels + biases)
        j = objective(kernels, biases)
    g_kernels, g_biases = tape.gradient(j, [kernels, biases])
    lr = 0.1
    stepped = [w - lr * g for w, g in zip(kernels, c_kernels)]
    expected = stepped, plain_biases(stepped, [b - lr * g for b, g in zip(centered_biases, c_biases)])
    got_kernels, got_biases = centered_gradients(g_kernels, g_biases, offsets)
    for e, w, g in zip(expected[0], kernels, got_kernels):
        np.testing.assert_allclose((w - lr * g).numpy(), e.numpy(), atol=1e-12)
    for e, b, g in zip(expected[1], biases, got_biases):
        np.testing.assert_allclose((b - lr * g).numpy(), e.numpy(), atol=1e-12)


def test_one_centered_update_uses_the_statistics_of_the_centered_states():
    """With centering, the first update's offsets are the batch's means of v and of the mean-field posterior, and
    the step is Melchior et al.'s: W_l by lr (<(x_l - o_l)(x_{l+1} - o_{l+1})^T>_data - the same on the chains),
    b_l by lr (<x_l>_data - <x_l>_chains) - dW_l o_{l+1} - dW_{l-1}^T o_{l-1}."""
    model = _tiny((3, 2), scale=0.5, n_chains=7, gibbs_steps=2, mean_field_steps=4, mean_field_tol=0.0,
                  centering=True, centering_rate=0.3)
    lr = 0.1
    model.compile(keras.optimizers.SGD(learning_rate=lr), steps_per_execution=1)
    v = _binary(4)[[1, 5, 6, 9, 14]].astype(np.float32)
    means, _, _ = model._mean_field(tf.constant(v), 4, 0.0)
    means = [m.numpy().astype(np.float64) for m in means]
    offsets = [m.mean(0) for m in means]
    before = [w.numpy().astype(np.float64) for w in model.kernels + model.biases]
    model.fit(tf.data.Dataset.from_tensor_slices(v).batch(5), epochs=1, verbose=0)
    chains = [c.numpy().astype(np.float64) for c in model.chains]
    after = [w.numpy().astype(np.float64) for w in model.kernels + model.biases]
    for o, variable in zip(offsets, model.offsets):
        np.testing.assert_allclose(variable.numpy(), o, atol=1e-6)
    steps = [lr * ((means[l] - offsets[l]).T @ (means[l + 1] - offsets[l + 1]) / 5
                   - (chains[l] - offsets[l]).T @ (chains[l + 1] - offsets[l + 1]) / 7) for l in range(2)]
    for l in range(2):
        np.testing.assert_allclose(after[l] - before[l], steps[l], atol=1e-5)
    for l in range(3):
        expected = (lr * (means[l].mean(0) - chains[l].mean(0)) - (steps[l] @ offsets[l + 1] if l < 2 else 0)
                    - (steps[l - 1].T @ offsets[l - 1] if l else 0))
        np.testing.assert_allclose(after[2 + l] - before[2 + l], expected, atol=1e-5)
    with pytest.raises(ValueError, match="linear self energy"):
        DBM([3], visible="gaussian", centering=True)
    for rate in (0.0, 1.5):
        with pytest.raises(ValueError, match="centering_rate"):
            DBM([3], centering=True, centering_rate=rate)
    assert DBM([3], centering=True, centering_rate=1.0).centering_rate == 1.0  # offsets = each batch's means


def test_gibbs_chains_sample_the_model():
    model = _tiny((2, 2), n_visible=3, scale=1.0)
    states, minus_energy = _joint(model)
    p = np.exp(minus_energy - _logsumexp(minus_energy))
    codes = [tuple(row) for row in np.concatenate(states, axis=1)]
    exact = {}
    for code, prob in zip(codes, p):
        exact[code] = exact.get(code, 0.0) + prob
    n = 20000
    start = model._chain_start(n, tf.constant([0, 0]))
    final, _ = model._gibbs(start, tf.constant(30), tf.constant([1, 2]))
    codes, probs = list(exact), np.array(list(exact.values()))

    def distance(rows):
        counts = {}
        for row in map(tuple, rows):
            counts[row] = counts.get(row, 0) + 1
        return 0.5 * sum(abs(counts.get(code, 0) / len(rows) - prob) for code, prob in zip(codes, probs))

    iid = np.array(codes)[np.random.default_rng(0).choice(len(codes), n, p=probs / probs.sum())]
    tv = distance(np.concatenate([s.numpy() for s in final], axis=1))
    assert tv < distance(iid) + 0.015, (tv, distance(iid))


def _tempered(n_chains, betas=(0.0, 0.5, 1.0)):
    """A DBM 6-3-4 (h1 moved, 8 states) with strong weights for parallel tempering, and for each beta the exact
    distribution of (v, h1, h2) under p_beta(x) ~ exp(b.x + beta sum_l x_l W_l x_l+1), by enumeration."""
    model = _tiny((3, 4), n_visible=6, scale=2.0, n_chains=n_chains, n_temperatures=len(betas), min_beta=betas[0])
    np.testing.assert_allclose(model.betas, betas)
    kernels = [w.numpy() for w in model.kernels]
    exact = []
    for beta in betas:
        for w, k in zip(model.kernels, kernels):
            w.assign(beta * k)
        states, minus_energy = _joint(model)
        exact.append(np.exp(minus_energy - _logsumexp(minus_energy)))
    for w, k in zip(model.kernels, kernels):
        w.assign(k)
    return model, states, exact


def _distribution(rows, grid, p_of_grid):
    """(the empirical distribution of `rows` over the distinct rows of `grid`, their exact probabilities)."""
    codes, inverse = np.unique(grid, axis=0, return_inverse=True)
    exact = np.bincount(inverse.ravel(), weights=p_of_grid, minlength=len(codes))
    index = {tuple(c): i for i, c in enumerate(codes)}
    empirical = np.bincount([index[tuple(r)] for r in rows], minlength=len(codes)) / len(rows)
    return empirical, exact


def test_parallel_tempering_keeps_every_tempered_distribution_and_swaps_at_the_exact_rate():
    """Moved layers (h1) drawn exactly from each p_beta stay so after a round of sweeps and swaps; the summed-out
    layers are then drawn at each chain's own beta (v at beta 1, h2 at beta 0.5, against enumeration); and the
    swap rate of the pair (0, 1) is E[min(1, r)] under independent exact draws, by enumeration."""
    n = 20000
    model, (v, h1, h2), exact = _tempered(n)
    rng = np.random.default_rng(0)
    start = [np.zeros((3 * n, k), np.float32) for k in (6, 3, 4)]
    start[1] = np.concatenate([h1[rng.choice(len(h1), n, p=p)] for p in exact]).astype(np.float32)
    for variable, value in zip(model.chains, start):
        variable.assign(value)
    top, rate = model.tempered_sweeps(tf.constant(1), tf.constant([3, 4]))  # round 0: the pair (0, 1) only
    chains = [c.numpy() for c in model.chains]
    for k, p in enumerate(exact):
        empirical, marginal = _distribution(chains[1][k * n:(k + 1) * n], h1, p)
        assert 0.5 * np.abs(empirical - marginal).sum() < 0.03, k
    for layer, grid, k in ((0, v, 2), (2, h2, 1)):
        empirical, marginal = _distribution(chains[layer][k * n:(k + 1) * n], grid, exact[k])
        iid, _ = _distribution(grid[rng.choice(len(grid), n, p=exact[k])], grid, exact[k])
        assert 0.5 * np.abs(empirical - marginal).sum() < 0.5 * np.abs(iid - marginal).sum() + 0.015, (layer, k)
    for state, chain in zip(top, chains):
        np.testing.assert_array_equal(state.numpy(), chain[-n:])
    marginals = [_distribution(h1[:1], h1, p)[1] for p in exact[:2]]  # p_beta(h1) over its 8 states
    log_f = [np.log(m) for m in marginals]  # log p_beta(h1) + a constant per beta: the ratio cancels it
    log_r = (log_f[1][:, None] + log_f[0][None, :]) - (log_f[0][:, None] + log_f[1][None, :])
    expected = (marginals[0][:, None] * marginals[1][None, :] * np.minimum(1, np.exp(log_r))).sum()
    assert 0.2 < expected < 0.9  # a rate that tells right from wrong
    assert abs(float(rate) - expected) < 4 * np.sqrt(expected * (1 - expected) / n)


def test_parallel_tempering_chains_converge_from_a_bad_start():
    n = 4000
    model, (_, h1, _), exact = _tempered(n)
    for variable in model.chains:
        variable.assign(tf.zeros_like(variable))
    model.tempered_sweeps(tf.constant(60), tf.constant([5, 6]))
    for k, p in enumerate(exact):
        empirical, marginal = _distribution(model.chains[1].numpy()[k * n:(k + 1) * n], h1, p)
        assert 0.5 * np.abs(empirical - marginal).sum() < 0.06, k


def test_parallel_tempering_trains_on_the_coldest_chains_and_round_trips(tmp_path):
    """One update: the data's statistics minus those of the beta = 1 chains (the last n_chains); the swap rate is
    reported; the chains (all temperatures) and settings survive saving."""
    model = _tiny((3, 2), scale=0.5, n_chains=7, gibbs_steps=2, mean_field_steps=4, mean_field_tol=0.0,
                  n_temperatures=3, min_beta=0.5)
    lr = 0.1
    model.compile(keras.optimizers.SGD(learning_rate=lr), steps_per_execution=1)
    v = _binary(4)[[1, 5, 6, 9, 14]].astype(np.float32)
    means, _, _ = model._mean_field(tf.constant(v), 4, 0.0)
    means = [m.numpy().astype(np.float64) for m in means]
    before = [w.numpy().astype(np.float64) for w in model.kernels]
    history = model.fit(tf.data.Dataset.from_tensor_slices(v).batch(5), epochs=1, verbose=0).history
    assert [c.shape for c in model.chains] == [(21, 4), (21, 3), (21, 2)]
    assert 0 <= history["swap_rate"][-1] <= 1
    cold = [c.numpy().astype(np.float64)[-7:] for c in model.chains]
    for l in range(2):
        expected = lr * (means[l].T @ means[l + 1] / 5 - cold[l].T @ cold[l + 1] / 7)
        np.testing.assert_allclose(model.kernels[l].numpy() - before[l], expected, atol=1e-5)
    model.save(tmp_path / "pt.keras")
    loaded = keras.models.load_model(tmp_path / "pt.keras")
    assert (loaded.n_temperatures, loaded.min_beta) == (3, 0.5)
    for a, b in zip(loaded.chains, model.chains):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_assembled_from_rbms_with_the_pretraining_rules():
    rng = np.random.default_rng(0)

    def rbm(n_visible, n_hidden, up, down):
        r = PretrainingRBM(n_hidden, n_visible=n_visible, up_scale=up, down_scale=down, seed=0)
        for w in (r.kernel, r.visible_bias, r.hidden_bias):
            w.assign(rng.standard_normal(w.shape).astype(np.float32))
        return r

    first, middle, last = rbm(4, 3, 2.0, 1.0), rbm(3, 3, 1.0, 1.0), rbm(3, 2, 1.0, 2.0)
    model = DBM.from_rbms([first, middle, last], n_chains=5)
    assert model.sizes == [4, 3, 3, 2]
    np.testing.assert_allclose(model.kernels[0].numpy(), first.kernel.numpy())
    np.testing.assert_allclose(model.kernels[1].numpy(), 0.5 * middle.kernel.numpy())
    np.testing.assert_allclose(model.kernels[2].numpy(), last.kernel.numpy())
    np.testing.assert_allclose(model.biases[0].numpy(), first.visible_bias.numpy())
    # a layer between two RBMs: the mean of the lower one's hidden and the upper one's visible biases (the
    # halves Salakhutdinov's code adds); the top layer: the last RBM's hidden biases
    np.testing.assert_allclose(model.biases[1].numpy(), (first.hidden_bias.numpy() + middle.visible_bias.numpy()) / 2)
    np.testing.assert_allclose(model.biases[2].numpy(), (middle.hidden_bias.numpy() + last.visible_bias.numpy()) / 2)
    np.testing.assert_allclose(model.biases[3].numpy(), last.hidden_bias.numpy())
    v = _binary(4).astype(np.float32)
    # the DBM's first bottom-up mean-field pass is the first RBM's doubled input, with the layer's bias
    means, _, _ = model._mean_field(tf.constant(v), 0, 0.0)
    np.testing.assert_allclose(means[1].numpy(), tf.sigmoid(first.hidden_input(tf.constant(v))
                                                            + model.biases[1]).numpy(), atol=1e-6)
    # the conditionals of the outer layers are the RBMs' own: p(v | h1) the first's down pass, p(h3 | h2) the
    # last's up pass (single weights both)
    h = _binary(3).astype(np.float32)
    states = [None, tf.constant(h), tf.constant(h), None]
    kernels, biases = model._params(tf.float32)
    np.testing.assert_allclose(tf.sigmoid(model.layer_input(states, 0, kernels) + biases[0]).numpy(),
                               tf.sigmoid(first.visible_input(tf.constant(h)) + first.visible_bias).numpy(), atol=1e-6)
    np.testing.assert_allclose(tf.sigmoid(model.layer_input(states[:3] + [tf.zeros((8, 2))], 3, kernels)
                                          + biases[3]).numpy(), last(tf.constant(h)).numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="does not chain"):
        DBM.from_rbms([rbm(4, 3, 2.0, 1.0), rbm(2, 2, 1.0, 2.0)])
    with pytest.raises(ValueError, match="the pretraining rules need 2 and 1"):
        DBM.from_rbms([rbm(4, 3, 1.0, 1.0), rbm(3, 2, 1.0, 2.0)])
    with pytest.raises(ValueError, match="no partition function"):
        evaluation.ais(first, n_betas=10, n_chains=2, base="uniform")


def test_keras_round_trip_keeps_everything(tmp_path):
    model = _tiny((3, 2), sparsity_targets=[0.2, 0.1], sparsity_cost=0.01, l2=0.001)
    model.compile()
    model.fit(_binary(4).astype(np.float32), batch_size=8, epochs=2, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert loaded.get_config() == model.get_config()
    for a, b in zip(loaded.weights, model.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    v = _binary(4)
    np.testing.assert_allclose(loaded.unnormalized_log_prob(tf.constant(v)).numpy(),
                               model.unnormalized_log_prob(tf.constant(v)).numpy(), atol=1e-6)


def test_a_saved_model_answers_without_zoo(tmp_path):
    import json
    import subprocess
    import sys

    from zoo import export

    model = _tiny((3, 2))
    folder = export.save(model, tmp_path / "dbm", training_state=False)
    loaded, _ = export.load_folder(folder)
    assert type(loaded) is DBM and not loaded.training_state
    v = _binary(4)[:5]
    script = f"""
import json, sys, tensorflow as tf
s = tf.saved_model.load({str(folder / "saved_model")!r}).signatures
x = tf.constant({v.tolist()!r}, tf.float32)
print(json.dumps({{"names": sorted(s), "zoo": "zoo" in sys.modules,
    "features": s["encode"](x=x)["features"].numpy().tolist(),
    "free_energy": s["mean_field_free_energy"](x=x)["free_energy"].numpy().tolist(),
    "samples": s["sample"](n=tf.constant(3), n_steps=tf.constant(4), seed=tf.constant(1))["samples"].numpy().tolist()}}))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert not out["zoo"] and {"encode", "mean_field_free_energy", "sample"} <= set(out["names"])
    np.testing.assert_allclose(out["features"], model.mean_field(v)[-1], atol=1e-5)
    np.testing.assert_allclose(out["free_energy"], -model.unnormalized_log_prob(tf.constant(v, tf.float32)).numpy(),
                               atol=1e-4)
    assert np.array(out["samples"]).shape == (3, 4)


@pytest.mark.parametrize("kwargs, message", [
    ({"layers": []}, "layers must list"), ({"layers": [3, 0]}, "a layer size"),
    ({"layers": [3], "top": "gaussian"}, "top layer's units"), ({"layers": [3], "visible": "softmax"}, "visible units"),
    ({"layers": [3, 2], "sparsity_targets": [0.1]}, "one target per hidden layer"),
    ({"layers": [3], "sparsity_cost": 0.1}, "needs sparsity_targets"), ({"layers": [3], "max_norm": 0}, "max_norm"),
    ({"layers": [3], "gibbs_steps": 0}, "gibbs_steps"), ({"layers": [3], "n_temperatures": 0}, "n_temperatures"),
    ({"layers": [3], "n_temperatures": 3, "min_beta": 1.0}, "min_beta")])
def test_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DBM(**kwargs)


def test_bad_data():
    model = _tiny((3, 2))
    with pytest.raises(ValueError, match="binary"):
        model.fit(np.full((4, 4), 0.5, np.float32), batch_size=2, verbose=0)
    with pytest.raises(ValueError, match="4"):
        model.mean_field(np.zeros((2, 5), np.float32))
    with pytest.raises(ValueError, match="NaN|finite"):
        model.mean_field(np.full((2, 4), np.nan, np.float32))


@pytest.mark.parametrize("layers", [(3,), (3, 2), (3, 3, 2)])
def test_the_encoder_is_the_papers_network_with_the_dbms_weights(layers):
    from zoo import finetune

    model = _tiny(layers, scale=0.7)
    encoder = finetune.get_encoder(model)
    v = _binary(4).astype(np.float32)
    kernels = [w.numpy() for w in model.kernels]
    biases = [b.numpy() for b in model.biases]
    top = model.mean_field(v)[-1]
    sigmoid = lambda a: 1 / (1 + np.exp(-a))  # noqa: E731
    h = v
    for l in range(1, len(layers) + 1):
        above = top @ kernels[l].T if l == len(layers) - 1 else 0.0
        h = sigmoid(h @ kernels[l - 1] + above + biases[l])
    np.testing.assert_allclose(encoder(v).numpy(), h, atol=1e-5)
    assert [d.name for d in finetune.dense_layers(encoder)] == [f"hidden_{l}" for l in range(1, len(layers) + 1)]
    assert len(encoder.trainable_weights) == 2 * len(layers)  # the posterior's copy of the DBM stays frozen
    model.kernels[0].assign(model.kernels[0] + 1.0)  # a copy: the encoder does not follow the model
    np.testing.assert_allclose(encoder(v).numpy(), h, atol=1e-5)


def test_tensorboard_shows_each_layers_filters_particles_and_mean_field_rounds(tmp_path):
    from tensorboard.backend.event_processing import event_accumulator

    from zoo import data, training

    x = data.load("binarized_mnist").validation.x[:60]
    model = DBM([5, 3], n_chains=10, gibbs_steps=1, mean_field_steps=3, seed=0)
    model.compile()
    model.fit(x, batch_size=30, epochs=1, verbose=0, validation_data=x[:30],
              callbacks=[training.TensorBoardLogger(tmp_path, x[:12], (28, 28), every=1)])
    acc = event_accumulator.EventAccumulator(str(tmp_path), size_guidance={event_accumulator.TENSORS: 0})
    acc.Reload()
    tags = set(acc.Tags()["tensors"])
    assert {"filters_1", "filters_2", "negative_particles", "mean_field_steps", "val_mean_field_free_energy",
            "mean_field_1", "kernel_0"} <= tags, tags
