"""RBM: free energy by enumeration, the CD update against its formula, training, saving, seeds, bad input."""
import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import special

import zoo
from zoo import units
from zoo.models import RBM


def _tiny(visible="bernoulli", hidden="bernoulli", n_visible=5, n_hidden=3, seed=0, **kwargs):
    model = RBM(n_hidden, visible=visible, hidden=hidden, n_visible=n_visible, seed=seed,
                weight_stddev=0.8, **kwargs)
    rng = np.random.default_rng(seed)
    model.visible_bias.assign(rng.normal(size=n_visible).astype(np.float32))
    model.hidden_bias.assign(rng.normal(size=n_hidden).astype(np.float32))
    return model


def _hidden_states(model):
    """Every hidden configuration of the model, enumerated independently of zoo.units."""
    n = model.n_hidden
    if model.hidden_units.kind == "bernoulli":
        return np.array(list(itertools.product([0, 1], repeat=n)), np.float64)
    size = model.hidden_units.size
    groups = [np.eye(size)] * (n // size)
    return np.array([np.concatenate(c) for c in itertools.product(*groups)], np.float64)


def _numpy_energy(model, v, h):
    """E(v, h) from the textbook formulas, written out in NumPy."""
    W = model.kernel.numpy().astype(np.float64)
    b = model.visible_bias.numpy().astype(np.float64)
    c = model.hidden_bias.numpy().astype(np.float64)
    if model.visible_units.kind == "gaussian":
        s = model.visible_units.sigma(tf.float64).numpy()
        return ((v - b) ** 2 / (2 * s**2)).sum(-1) - ((v / s) @ W * h).sum(-1) - h @ c
    return -v @ b - h @ c - (v @ W * h).sum(-1)


def _visible_data(model, n=6, seed=1):
    rng = np.random.default_rng(seed)
    if model.visible_units.kind == "gaussian":
        return rng.normal(size=(n, model.n_visible))
    return (rng.random((n, model.n_visible)) < 0.5).astype(np.float64)


FAMILIES = [
    ("bernoulli", "bernoulli", {}),
    ("gaussian", "bernoulli", {}),
    ("bernoulli", units.SoftmaxUnits(group_size=3), {"n_hidden": 6}),
    (units.GaussianUnits(sigma=[0.5, 1.0, 2.0, 1.5, 0.7]), "bernoulli", {}),
]


@pytest.mark.parametrize("visible, hidden, kw", FAMILIES)
def test_free_energy_equals_sum_over_hidden_states(visible, hidden, kw):
    model = _tiny(visible, hidden, **kw)
    v = _visible_data(model)
    hs = _hidden_states(model)
    energies = np.stack([_numpy_energy(model, v, np.broadcast_to(h, (len(v), len(h)))) for h in hs], 1)
    expected = -special.logsumexp(-energies, axis=1)
    np.testing.assert_allclose(model.free_energy(tf.constant(v)).numpy(), expected, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(model.energy(tf.constant(v), tf.constant(hs[:1].repeat(len(v), 0))).numpy(),
                               energies[:, 0], rtol=1e-10, atol=1e-10)


def test_conditionals_match_the_energy():
    """p(h_j = 1 | v) = sigmoid(c_j + v W_j), the ratio of exp(-E) over h_j's two states."""
    model = _tiny()
    v = _visible_data(model)
    W, c = model.kernel.numpy().astype(np.float64), model.hidden_bias.numpy().astype(np.float64)
    np.testing.assert_allclose(model.transform(v.astype(np.float32)), special.expit(v @ W + c), rtol=1e-5)
    h = (np.random.default_rng(3).random((len(v), 3)) < 0.5).astype(np.float64)
    b = model.visible_bias.numpy().astype(np.float64)
    np.testing.assert_allclose(model.visible_distribution(tf.constant(h)).mean().numpy(),
                               special.expit(h @ W.T + b), rtol=1e-10)


def test_cd_update_is_the_free_energy_difference_gradient():
    """One PCD step with SGD(lr=1): the weights move by exactly <v h>_data - <v h>_model, where the model
    statistics use the chain state left in `persistent_chains` (independent NumPy computation)."""
    rng = np.random.default_rng(0)
    v0 = (rng.random((8, 5)) < 0.5).astype(np.float32)
    model = _tiny(persistent=True, n_chains=4, sample_visible=True, cd_k=3)
    model.compile(keras.optimizers.SGD(learning_rate=1.0), steps_per_execution=1)
    W, b, c = (t.numpy().astype(np.float64) for t in (model.kernel, model.visible_bias, model.hidden_bias))
    model.fit(v0, batch_size=8, epochs=1, shuffle=False, verbose=0)
    vn = model.persistent_chains.numpy().astype(np.float64)
    assert set(np.unique(vn)) <= {0.0, 1.0}
    v0d = v0.astype(np.float64)
    h_data, h_model = special.expit(v0d @ W + c), special.expit(vn @ W + c)
    dW = v0d.T @ h_data / len(v0) - vn.T @ h_model / len(vn)
    np.testing.assert_allclose(model.kernel.numpy() - W, dW, atol=2e-6)
    # visible_bias_init="data" moved b to the data's base rate before the first step
    b_init = np.log(np.clip(v0d.mean(0), 1e-3, 1 - 1e-3)) - np.log1p(-np.clip(v0d.mean(0), 1e-3, 1 - 1e-3))
    np.testing.assert_allclose(model.visible_bias.numpy() - b_init, v0d.mean(0) - vn.mean(0), atol=2e-6)
    np.testing.assert_allclose(model.hidden_bias.numpy() - c, h_data.mean(0) - h_model.mean(0), atol=2e-6)


def test_l2_adds_weight_decay_to_the_update():
    rng = np.random.default_rng(0)
    v0 = (rng.random((8, 5)) < 0.5).astype(np.float32)
    updates = []
    for l2 in (0.0, 0.5):
        model = _tiny(persistent=True, n_chains=4, sample_visible=True, l2=l2, visible_bias_init="zeros")
        model.compile(keras.optimizers.SGD(learning_rate=0.1), steps_per_execution=1)
        W = model.kernel.numpy()
        model.fit(v0, batch_size=8, epochs=1, shuffle=False, verbose=0)
        updates.append((model.kernel.numpy() - W, W))
    # the same seed gives the same chain, so the two updates differ by exactly -lr * l2 * W
    np.testing.assert_allclose(updates[1][0] - updates[0][0], -0.1 * 0.5 * updates[0][1], atol=1e-6)


def test_fast_weights_follow_the_gradient_without_l2_and_decay(tmp_path):
    """Fast-weights PCD: with SGD(lr=1) a step moves each parameter by -g, so the fast parameters must be
    fast_lr * (step 1's move), then fast_decay * that + fast_lr * (step 2's move); L2 is left out."""
    rng = np.random.default_rng(0)
    v0 = (rng.random((8, 5)) < 0.5).astype(np.float32)
    model = _tiny(persistent=True, n_chains=4, fast_lr=0.3, fast_decay=0.9, l2=0.01, visible_bias_init="zeros")
    model.compile(keras.optimizers.SGD(learning_rate=1.0), steps_per_execution=1)
    params = (model.kernel, model.visible_bias, model.hidden_bias)
    expected = [np.zeros(p.shape) for p in params]
    for _ in range(2):
        before = [p.numpy().astype(np.float64) for p in params]
        model.fit(v0, batch_size=8, epochs=1, shuffle=False, verbose=0)
        moves = [p.numpy() - b for p, b in zip(params, before)]
        moves[0] += 0.01 * before[0]  # the kernel's move without its L2 term (-lr * l2 * W)
        expected = [0.9 * e + 0.3 * m for e, m in zip(expected, moves)]
        for fast, want in zip(model.fast_params, expected):
            np.testing.assert_allclose(fast.numpy(), want, atol=1e-5)
    assert np.abs(expected[0]).max() > 1e-3  # they moved
    model.save(tmp_path / "fast.keras")
    loaded = keras.models.load_model(tmp_path / "fast.keras")
    assert (loaded.fast_lr, loaded.fast_decay) == (0.3, 0.9)
    for a, b in zip(loaded.fast_params, model.fast_params):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_fast_weights_drive_the_chains_but_not_the_model():
    v0 = np.zeros((8, 5), np.float32)
    model = RBM(3, n_visible=5, persistent=True, n_chains=50, fast_lr=1e-3, weight_stddev=0.0,
                visible_bias_init="zeros", seed=0)
    model.compile(keras.optimizers.SGD(learning_rate=0.0), steps_per_execution=1)
    model.fast_params[1].assign(np.full(5, 30.0, np.float32))  # the chains see visible biases of 30
    model.fit(v0, batch_size=8, epochs=1, verbose=0)
    np.testing.assert_array_equal(model.persistent_chains.numpy(), 1.0)
    np.testing.assert_allclose(model.sample(20, n_steps=3, seed=1), 0.5)  # the model itself: zero weights


def _tempered_log_f(model, states, beta):
    """log f_beta(v) of parallel tempering, by its formula in NumPy: -b.v + sum_j softplus(beta (v W + c)_j)."""
    kernel, b, c = (w.numpy().astype(np.float64) for w in (model.kernel, model.visible_bias, model.hidden_bias))
    return states @ b + np.logaddexp(0, beta * (states @ kernel + c)).sum(axis=1)


def _tempered_model(n_chains, betas=(0.0, 0.5, 1.0)):
    model = _tiny(n_visible=6, n_hidden=3, persistent=True, n_chains=n_chains, n_temperatures=len(betas),
                  min_beta=betas[0])
    model.kernel.assign(model.kernel * 2.5)  # strong weights: the temperatures differ a lot
    np.testing.assert_allclose(model.betas, betas)
    states = np.array(list(itertools.product([0, 1], repeat=6)), np.float64)
    exact = [special.softmax(_tempered_log_f(model, states, beta)) for beta in betas]
    return model, states, exact


def _histograms(chains, n_temperatures, n_states):
    codes = chains.reshape(n_temperatures, -1, 6) @ (2 ** np.arange(5, -1, -1))
    return [np.bincount(c.astype(int), minlength=n_states) / len(c) for c in codes]


def test_parallel_tempering_keeps_every_tempered_distribution_and_swaps_at_the_exact_rate():
    """Chains drawn exactly from p_beta (enumeration) stay so distributed after sweeps and swaps, and the swap
    rate equals E[min(1, r)] over independent pairs of neighbours, computed by enumeration."""
    n = 20000
    model, states, exact = _tempered_model(n)
    rng = np.random.default_rng(0)
    start = np.concatenate([states[rng.choice(64, n, p=p)] for p in exact]).astype(np.float32)
    model.persistent_chains.assign(start)
    _, rate = model.tempered_sweeps(tf.constant(1), tf.constant([3, 4]))  # round 0: the pair (0, 1) only
    for empirical, p in zip(_histograms(model.persistent_chains.numpy(), 3, 64), exact):
        assert 0.5 * np.abs(empirical - p).sum() < 0.03
    # Metropolis: the pair (v0 at beta 0, v1 at beta 0.5) swaps with probability min(1, r); its mean is exact
    # because the sweep before the swap leaves each chain at its stationary distribution.
    f = [_tempered_log_f(model, states, beta) for beta in (0.0, 0.5)]
    log_r = (f[1][:, None] + f[0][None, :]) - (f[0][:, None] + f[1][None, :])  # v0 = row, v1 = column
    expected = (exact[0][:, None] * exact[1][None, :] * np.minimum(1, np.exp(log_r))).sum()
    assert 0.2 < expected < 0.9  # a rate that tells right from wrong
    assert abs(float(rate) - expected) < 4 * np.sqrt(expected * (1 - expected) / n)


def test_the_tempering_path_shares_its_self_energy_and_matches_the_formula():
    """Tempering's path starts from the model's own visible biases and computes their self energy once; its
    log f_beta equals the NumPy formula and a path given a copy of the biases (two self energies)."""
    model, states, _ = _tempered_model(4)
    shared = model._annealing_path(None, tf.float64)
    copied = model.annealing_path(model.visible_bias.numpy())
    assert shared.base_biases[0] is shared.biases[0] and copied.base_biases[0] is not copied.biases[0]
    v = tf.constant(states)
    for beta in (0.0, 0.5, 1.0):
        np.testing.assert_allclose(shared.log_f(shared.terms(v), beta), _tempered_log_f(model, states, beta),
                                   rtol=1e-12)
        np.testing.assert_allclose(shared.log_f(shared.terms(v), beta), copied.log_f(copied.terms(v), beta),
                                   rtol=1e-12)


def test_parallel_tempering_chains_converge_from_a_bad_start():
    model, states, exact = _tempered_model(4000)
    model.persistent_chains.assign(np.zeros((3 * 4000, 6), np.float32))
    top, _ = model.tempered_sweeps(tf.constant(60), tf.constant([5, 6]))
    np.testing.assert_array_equal(top.numpy(), model.persistent_chains.numpy()[-4000:])
    for empirical, p in zip(_histograms(model.persistent_chains.numpy(), 3, 64), exact):
        assert 0.5 * np.abs(empirical - p).sum() < 0.06


def test_parallel_tempering_trains_reports_its_swap_rate_and_round_trips(tmp_path):
    x = _binary_digits()
    model = RBM(16, persistent=True, n_chains=20, n_temperatures=4, min_beta=0.2, cd_k=2, seed=0)
    model.compile(keras.optimizers.SGD(0.05))
    history = model.fit(x, batch_size=20, epochs=2, verbose=0).history
    assert 0 < history["swap_rate"][-1] <= 1 and model.persistent_chains.shape == (80, 64)
    model.save(tmp_path / "pt.keras")
    loaded = keras.models.load_model(tmp_path / "pt.keras")
    assert (loaded.n_temperatures, loaded.min_beta) == (4, 0.2)
    np.testing.assert_array_equal(loaded.persistent_chains.numpy(), model.persistent_chains.numpy())
    np.testing.assert_allclose(loaded.free_energy(x[:5]), model.free_energy(x[:5]), rtol=1e-6)


def _binary_digits():
    x = zoo.data.load("digits").train.x
    return (x > 0.5).astype(np.float32)


@pytest.mark.parametrize("kw", [{}, {"persistent": True, "cd_k": 2}, {"dropout": 0.1, "sparsity_cost": 1e-3}])
def test_training_lowers_reconstruction_error_on_digits(kw):
    x = _binary_digits()
    model = RBM(64, seed=0, **kw)
    model.compile(keras.optimizers.SGD(0.1, momentum=0.5))
    history = model.fit(x, batch_size=20, epochs=8, verbose=0).history
    assert history["reconstruction_error"][-1] < 0.7 * history["reconstruction_error"][0]
    assert history["pseudo_log_likelihood"][-1] > history["pseudo_log_likelihood"][0]


def _whole_data_reconstruction_error(model, x):
    return model.evaluate(x, batch_size=100, verbose=0, return_dict=True)["reconstruction_error"]


def test_gaussian_and_multinomial_rbms_train():
    """Measured on every example by `evaluate` (an unbuilt model too), before and after six epochs."""
    x = zoo.data.load("digits").train.x
    xs = (x - x.mean(0)) / (x.std(0) + 0.1)
    model = RBM(32, visible="gaussian", seed=0)
    model.compile(keras.optimizers.SGD(0.01))
    before = _whole_data_reconstruction_error(model, xs)
    model.fit(xs, batch_size=20, epochs=6, verbose=0)
    assert _whole_data_reconstruction_error(model, xs) < 0.95 * before
    model = RBM(20, hidden=units.SoftmaxUnits(group_size=10), seed=0)
    model.compile(keras.optimizers.SGD(0.1))
    before = _whole_data_reconstruction_error(model, _binary_digits())
    model.fit(_binary_digits(), batch_size=20, epochs=6, verbose=0)
    assert _whole_data_reconstruction_error(model, _binary_digits()) < 0.7 * before
    assert np.allclose(model.transform(_binary_digits()[:5]).reshape(5, 2, 10).sum(-1), 1, atol=1e-5)


def test_max_norm_bounds_every_hidden_units_weights():
    model = RBM(16, seed=0, max_norm=0.5)
    model.compile(keras.optimizers.SGD(0.5))
    model.fit(_binary_digits(), batch_size=20, epochs=2, verbose=0)
    assert np.linalg.norm(model.kernel.numpy(), axis=0).max() <= 0.5 + 1e-5


def test_sparsity_lowers_the_mean_hidden_activation():
    x = _binary_digits()
    means = []
    for cost in (0.0, 0.05):
        model = RBM(32, seed=0, sparsity_target=0.05, sparsity_cost=cost)
        model.compile(keras.optimizers.SGD(0.1))
        model.fit(x, batch_size=20, epochs=3, verbose=0)
        means.append(model.transform(x).mean())
    assert means[1] < means[0] - 0.05


def test_gibbs_steps_schedule_sets_k():
    model = RBM(8, seed=0)
    model.compile()
    schedule = zoo.training.GibbsStepsSchedule(zoo.training.linear_steps(1, 5, 3))
    model.fit(_binary_digits(), batch_size=50, epochs=3, verbose=0, callbacks=[schedule])
    assert int(model.cd_k.numpy()) == 5


def test_sample_transform_reconstruct_shapes_and_ranges():
    model = RBM(16, seed=0)
    model.compile()
    model.fit(_binary_digits(), batch_size=20, epochs=1, verbose=0)
    s = model.sample(7, n_steps=20, seed=3)
    assert s.shape == (7, 64) and s.min() >= 0 and s.max() <= 1
    np.testing.assert_array_equal(s, model.sample(7, n_steps=20, seed=3))
    assert model.reconstruct(_binary_digits()[:4]).shape == (4, 64)


def _roundtrip(model, tmp_path):
    path = tmp_path / "m.keras"
    model.save(path)
    return keras.models.load_model(path)


@pytest.mark.parametrize("visible, hidden", [("bernoulli", "bernoulli"),
                                             (units.GaussianUnits(sigma=0.7, learn_sigma=True), "bernoulli"),
                                             ("bernoulli", units.SoftmaxUnits(group_size=4))])
def test_keras_file_round_trip_gives_identical_free_energies(tmp_path, visible, hidden):
    model = RBM(8, visible=visible, hidden=hidden, persistent=True, n_chains=5, seed=1)
    model.compile()
    x = _binary_digits()
    model.fit(x, batch_size=20, epochs=1, verbose=0)
    loaded = _roundtrip(model, tmp_path)
    assert type(loaded) is RBM and loaded.get_config() == model.get_config()
    np.testing.assert_array_equal(loaded.free_energy(tf.constant(x)).numpy(), model.free_energy(tf.constant(x)).numpy())
    np.testing.assert_array_equal(loaded.persistent_chains.numpy(), model.persistent_chains.numpy())
    loaded.fit(x, batch_size=20, epochs=1, verbose=0)  # training continues after loading


def test_a_seed_reproduces_the_weights():
    x = _binary_digits()
    kernels = []
    for _ in range(2):
        keras.utils.set_random_seed(7)
        model = RBM(16, seed=7, persistent=True)
        model.compile()
        model.fit(x, batch_size=20, epochs=2, verbose=0)
        kernels.append(model.kernel.numpy())
    np.testing.assert_array_equal(kernels[0], kernels[1])


@pytest.mark.parametrize("bad, message", [
    (np.zeros((4, 5), np.float32), "must have 64 columns"),
    (np.zeros((4, 8, 8), np.float32), "must be 2-D"),
    (np.full((4, 64), np.nan, np.float32), "NaN or infinite"),
    (np.full((4, 64), 0.5, np.float32), "must be binary"),
    (np.zeros((0, 64), np.float32), "empty"),
    (np.array([["a"] * 64]), "numeric"),
])
def test_bad_data_is_refused(bad, message):
    model = RBM(8, n_visible=64)
    with pytest.raises(ValueError, match=message):
        model.fit(bad, batch_size=1, verbose=0)


def test_bad_settings_are_refused():
    x = _binary_digits()
    with pytest.raises(ValueError, match="batch_size 5000 is larger than the data"):
        RBM(8).fit(x, batch_size=5000, verbose=0)
    for kwargs, message in [({"n_hidden": 0}, "n_hidden"), ({"n_hidden": 4, "cd_k": 0}, "cd_k"),
                            ({"n_hidden": 4, "dropout": 1.5}, "dropout"),
                            ({"n_hidden": 4, "hidden": "softmax", "dropout": 0.5}, "Bernoulli hidden"),
                            ({"n_hidden": 4, "visible": "ising"}, "unknown unit type"),
                            ({"n_hidden": 4, "l2": -1}, "l2"), ({"n_hidden": 4, "max_norm": 0}, "max_norm"),
                            ({"n_hidden": 4, "fast_lr": 0.1}, "persistent=True"),
                            ({"n_hidden": 4, "persistent": True, "fast_decay": 1.5}, "fast_decay"),
                            ({"n_hidden": 4, "n_temperatures": 3}, "persistent=True"),
                            ({"n_hidden": 4, "persistent": True, "n_temperatures": 0}, "n_temperatures"),
                            ({"n_hidden": 4, "persistent": True, "n_temperatures": 3, "min_beta": 1.0}, "min_beta"),
                            ({"n_hidden": 4, "persistent": True, "n_temperatures": 3, "fast_lr": 0.1},
                             "use one"),
                            ({"n_hidden": 4, "hidden": "gaussian"}, "hidden units must be"),
                            ({"n_hidden": 4, "visible": "gaussian", "centering": True}, "linear self energy"),
                            ({"n_hidden": 4, "centering": True, "centering_rate": 0.0}, "centering_rate"),
                            ({"n_hidden": 4, "centering": True, "centering_rate": 1.5}, "centering_rate")]:
        with pytest.raises(ValueError, match=message):
            RBM(**kwargs)
    with pytest.raises(ValueError, match="no weights yet"):
        RBM(4).sample(3)


def test_probabilities_are_accepted_when_allowed():
    x = zoo.data.load("digits").train.x
    model = RBM(8, visible=units.BernoulliUnits(allow_nonbinary=True), seed=0)
    model.compile()
    model.fit(x, batch_size=50, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        model.transform(x * 2)


def _assert_one_step_matches_autodiff(model, v0, penalty=lambda model: 0.0):
    """One PCD step with SGD(lr=1) moves the weights by minus the autodiff gradient of
    mean F(v0) - mean F(vn) + penalty(model), with vn the chain state that step used."""
    model.compile(keras.optimizers.SGD(learning_rate=1.0), steps_per_execution=1)
    before = [w.numpy().copy() for w in model.trainable_variables]
    model.fit(v0, batch_size=len(v0), epochs=1, shuffle=False, verbose=0)
    vn = tf.constant(model.persistent_chains.numpy())
    after = [w.numpy().copy() for w in model.trainable_variables]
    for w, value in zip(model.trainable_variables, before):
        w.assign(value)
    with tf.GradientTape() as tape:
        objective = tf.reduce_mean(model.free_energy(tf.constant(v0))) - tf.reduce_mean(model.free_energy(vn)) \
            + penalty(model)
    grads = tape.gradient(objective, model.trainable_variables)
    for w0, w1, g in zip(before, after, grads):
        np.testing.assert_allclose(w1 - w0, -g.numpy(), atol=2e-5)
    return grads


def test_fused_update_matches_autodiff_for_a_gaussian_rbm_with_learned_sigma():
    """The update differentiates through the hidden inputs and one fused matrix product; a plain
    GradientTape over mean F(v0) - mean F(vn) (with the chain state vn it used) must agree, sigma included."""
    rng = np.random.default_rng(0)
    v0 = rng.normal(size=(8, 5)).astype(np.float32)
    model = _tiny(units.GaussianUnits(sigma=[0.5, 1.0, 2.0, 1.5, 0.7], learn_sigma=True), persistent=True,
                  n_chains=4, sample_visible=True, visible_bias_init="zeros", l2=0.1)
    grads = _assert_one_step_matches_autodiff(model, v0, lambda m: 0.05 * tf.reduce_sum(tf.square(m.kernel)))
    assert len(grads) == 4  # kernel, visible_bias, hidden_bias, log_sigma


@pytest.mark.parametrize("visible", ["bernoulli", "softmax"])  # softmax: one 5-way visible unit
def test_centered_update_is_the_gradient_step_of_the_centered_model(visible):
    """Centering: one step with SGD(lr=1) must equal a plain gradient step on the centered parameters
    (W, b_c = b + W lam, c_c = c + W^T mu) of mean F(v0) - mean F(vn) + l2/2 ||W||^2, mapped back to the
    model's (W, b_c - W lam, c_c - W^T mu); the first step's offsets are the batch's means of v0 and E[h | v0].
    Autodiff through that map, independent of the update's closed form. F(v) = -v.b - sum softplus(v W + c)
    for both visible families (a softmax group's self energy is linear too)."""
    rng = np.random.default_rng(0)
    v0 = ((rng.random((8, 5)) < 0.5) if visible == "bernoulli" else np.eye(5)[rng.integers(0, 5, 8)])
    v0 = v0.astype(np.float32)
    model = _tiny(visible, persistent=True, n_chains=4, sample_visible=True, visible_bias_init="zeros", l2=0.1,
                  centering=True)
    W, b, c = (tf.constant(w.numpy(), tf.float64) for w in (model.kernel, model.visible_bias, model.hidden_bias))
    v0d = tf.constant(v0, tf.float64)
    mu = tf.reduce_mean(v0d, 0)
    lam = tf.reduce_mean(tf.sigmoid(v0d @ W + c), 0)
    model.compile(keras.optimizers.SGD(learning_rate=1.0), steps_per_execution=1)
    model.fit(v0, batch_size=8, epochs=1, shuffle=False, verbose=0)
    vn = tf.constant(model.persistent_chains.numpy(), tf.float64)
    np.testing.assert_allclose(model.visible_offset.numpy(), mu, atol=1e-6)
    np.testing.assert_allclose(model.hidden_offset.numpy(), lam, atol=1e-6)

    def model_parameters(Wc, bc, cc):
        return Wc, bc - tf.linalg.matvec(Wc, lam), cc - tf.linalg.matvec(Wc, mu, transpose_a=True)

    def free_energy(v, W, b, c):
        return -tf.linalg.matvec(v, b) - tf.reduce_sum(tf.math.softplus(v @ W + c), -1)

    centered = [tf.Variable(W), tf.Variable(b + tf.linalg.matvec(W, lam)),
                tf.Variable(c + tf.linalg.matvec(W, mu, transpose_a=True))]
    with tf.GradientTape() as tape:
        params = model_parameters(*centered)
        objective = tf.reduce_mean(free_energy(v0d, *params)) - tf.reduce_mean(free_energy(vn, *params)) \
            + 0.05 * tf.reduce_sum(tf.square(params[0]))
    steps = tape.gradient(objective, centered)
    expected = model_parameters(*(w - g for w, g in zip(centered, steps)))
    for w, e in zip((model.kernel, model.visible_bias, model.hidden_bias), expected):
        np.testing.assert_allclose(w.numpy(), e.numpy(), atol=2e-5)
    plain = _tiny(visible, persistent=True, n_chains=4, sample_visible=True, visible_bias_init="zeros", l2=0.1)
    _assert_one_step_matches_autodiff(plain, v0, lambda m: 0.05 * tf.reduce_sum(tf.square(m.kernel)))
    # the same start and data without centering: a different step
    assert np.abs(plain.visible_bias.numpy() - model.visible_bias.numpy()).max() > 1e-2


def test_centering_offsets_follow_the_data_and_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    v0 = (rng.random((16, 5)) < 0.5).astype(np.float32)
    model = _tiny(persistent=True, n_chains=4, centering=True, centering_rate=0.25)
    model.compile(keras.optimizers.SGD(learning_rate=0.1), steps_per_execution=1)
    model.fit(v0, batch_size=8, epochs=1, shuffle=False, verbose=0)
    np.testing.assert_allclose(model.visible_offset.numpy(), 0.75 * v0[:8].mean(0) + 0.25 * v0[8:].mean(0),
                               atol=1e-6)
    model.save(tmp_path / "centered.keras")
    loaded = keras.models.load_model(tmp_path / "centered.keras")
    assert (loaded.centering, loaded.centering_rate) == (True, 0.25)
    np.testing.assert_array_equal(loaded.hidden_offset.numpy(), model.hidden_offset.numpy())


def test_update_with_sparsity_matches_autodiff():
    """The analytic hidden-input gradient plus the taped sparsity penalty equals autodiff of the whole
    objective mean F(v0) - mean F(vn) + cost * sum_j CE(p, q_j), q_j = mean_batch p(h_j = 1 | v0)."""
    rng = np.random.default_rng(1)
    v0 = (rng.random((8, 5)) < 0.5).astype(np.float32)
    model = _tiny(persistent=True, n_chains=4, sample_visible=True, visible_bias_init="zeros",
                  sparsity_target=0.1, sparsity_cost=0.5)

    def penalty(model):
        q = tf.reduce_mean(model(tf.constant(v0)), axis=0)
        return 0.5 * tf.reduce_sum(-0.1 * tf.math.log(q + 1e-7) - 0.9 * tf.math.log(1 - q + 1e-7))
    _assert_one_step_matches_autodiff(model, v0, penalty)


@pytest.mark.parametrize("make_units, n_hidden", [
    (lambda sigma: ("bernoulli", "bernoulli"), 3),
    (lambda sigma: (units.GaussianUnits(sigma=sigma, learn_sigma=True), "bernoulli"), 3),
    (lambda sigma: ("bernoulli", units.SoftmaxUnits(group_size=3)), 6),
])
def test_set_parameters_from_copies_the_model_exactly(make_units, n_hidden):
    source = _tiny(*make_units([0.5, 1.0, 1.5, 2.0, 0.7]), n_hidden=n_hidden)
    visible, hidden = make_units(1.0)
    target = RBM(n_hidden, visible=visible, hidden=hidden, n_visible=5, seed=7)  # another start, another sigma
    target.set_parameters_from(source)
    v = _visible_data(source)
    np.testing.assert_array_equal(target.free_energy(tf.constant(v)).numpy(),
                                  source.free_energy(tf.constant(v)).numpy())
    for name in ("kernel", "visible_bias", "hidden_bias"):
        np.testing.assert_array_equal(getattr(target, name).numpy(), getattr(source, name).numpy())


def test_fit_continues_from_copied_parameters_without_resetting_the_visible_biases():
    x = _binary_digits()
    source = RBM(8, n_visible=64, seed=0)
    source.fit(x, batch_size=100, epochs=1, verbose=0)
    target = RBM(8, n_visible=64, seed=1)  # visible_bias_init="data" would overwrite the copied biases
    target.set_parameters_from(source)
    target.compile(keras.optimizers.SGD(learning_rate=0.0))
    target.fit(x, batch_size=100, epochs=1, verbose=0)
    np.testing.assert_array_equal(target.visible_bias.numpy(), source.visible_bias.numpy())
    np.testing.assert_array_equal(target.kernel.numpy(), source.kernel.numpy())


def test_set_parameters_from_refuses_a_different_model():
    source = _tiny(n_hidden=3)
    with pytest.raises(ValueError, match=r"5 bernoulli visible, 3 bernoulli hidden units\) does not match this one "
                                         r"\(5 bernoulli visible, 4 bernoulli hidden"):
        RBM(4, n_visible=5).set_parameters_from(source)
    with pytest.raises(ValueError, match="does not match"):
        RBM(3, visible="gaussian", n_visible=5).set_parameters_from(source)
    with pytest.raises(ValueError, match="softmax groups of 3"):
        _tiny(n_hidden=6).set_parameters_from(_tiny(hidden=units.SoftmaxUnits(group_size=3), n_hidden=6))
    with pytest.raises(ValueError, match="only copy the parameters of an RBM"):
        RBM(3, n_visible=5).set_parameters_from(keras.Sequential())
    with pytest.raises(ValueError, match="not built"):
        RBM(3, n_visible=5).set_parameters_from(RBM(3))


def test_fit_and_evaluate_without_compile_use_the_default_optimizer():
    model = RBM(8, seed=0)
    model.fit(_binary_digits(), batch_size=50, epochs=1, verbose=0)
    assert isinstance(model.optimizer, keras.optimizers.SGD) and int(model.optimizer.iterations.numpy()) > 0
    assert np.isfinite(RBM(8, seed=0).evaluate(_binary_digits(), verbose=0, return_dict=True)["free_energy"])


def test_optional_arguments_are_keyword_only_and_the_pretraining_scales_belong_to_the_dbm():
    """RBM(n_hidden, *, ...): a positional unit type is refused; up_scale / down_scale are PretrainingRBM's (the DBM's
    side), and an RBM saved with them before they moved loads as one."""
    from zoo.models.dbm import PretrainingRBM

    with pytest.raises(TypeError, match="positional"):
        RBM(3, "bernoulli")
    with pytest.raises(ValueError, match="up_scale"):  # Keras: unrecognized keyword arguments
        RBM(3, n_visible=4, up_scale=2.0)
    assert "up_scale" not in RBM(3, n_visible=4).get_config() and RBM.up_scale == RBM.down_scale == 1.0
    stage = PretrainingRBM(3, n_visible=4, up_scale=2.0, seed=0)
    assert (stage.up_scale, stage.down_scale, stage.scaled) == (2.0, 1.0, True)
    assert RBM.from_config({**RBM(3, n_visible=4).get_config(), "up_scale": 1.0, "down_scale": 1.0}).__class__ is RBM
    legacy = RBM.from_config({**RBM(3, n_visible=4).get_config(), "up_scale": 2.0, "down_scale": 1.0})
    assert type(legacy) is PretrainingRBM and legacy.up_scale == 2.0
    with pytest.raises(ValueError, match="no partition function"):
        stage._check_has_partition_function()
