"""zoo.evaluation against exact answers: enumeration of every joint state, closed forms, quadrature."""
import itertools
import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import special

import zoo
from zoo import evaluation as ev
from zoo import units
from zoo.models import RBM


def _random_rbm(visible="bernoulli", hidden="bernoulli", n_visible=12, n_hidden=6, scale=1.0, seed=0):
    model = RBM(n_hidden, visible=visible, hidden=hidden, n_visible=n_visible, seed=seed, weight_stddev=scale)
    rng = np.random.default_rng(seed)
    model.visible_bias.assign(rng.normal(size=n_visible).astype(np.float32))
    model.hidden_bias.assign(rng.normal(size=n_hidden).astype(np.float32))
    return model


def _binary(n, width, p=0.3, seed=0):
    return (np.random.default_rng(seed).random((n, width)) < p).astype(np.float32)


def _brute_force_log_z(model):
    """log sum_{v, h} exp(-E(v, h)) over every joint state, through model.energy (Bernoulli/softmax)."""
    def all_states(u):
        if u.kind == "bernoulli":
            return np.array(list(itertools.product([0.0, 1.0], repeat=u.n)))
        eye = np.eye(u.size)
        return np.array([np.concatenate(c) for c in itertools.product(eye, repeat=u.n_groups)])
    vs, hs = all_states(model.visible_units), all_states(model.hidden_units)
    v = np.repeat(vs, len(hs), axis=0)
    h = np.tile(hs, (len(vs), 1))
    return float(special.logsumexp(-model.energy(tf.constant(v), tf.constant(h)).numpy()))


def test_zero_model_has_log_z_n_log_2_and_ais_is_exact():
    model = RBM(5, n_visible=7, weight_stddev=0.0)
    assert ev.exact_log_partition(model) == pytest.approx(12 * math.log(2), abs=1e-12)
    res = ev.ais(model, n_betas=50, n_chains=10, base="uniform", seed=0)
    assert res.log_z == pytest.approx(12 * math.log(2), abs=1e-12)
    assert res.ess == pytest.approx(10) and np.all(res.log_weights == 0)


@pytest.mark.parametrize("n_visible, n_hidden, hidden", [(4, 7, "bernoulli"), (7, 4, "bernoulli"),
                                                          (6, 6, units.SoftmaxUnits(group_size=3))])
def test_exact_log_z_equals_the_sum_over_every_joint_state(n_visible, n_hidden, hidden):
    """Enumerates the visible layer (4 < 7), the hidden one (4 < 7) and softmax groups (3^2 < 2^6)."""
    model = _random_rbm(n_visible=n_visible, n_hidden=n_hidden, hidden=hidden)
    assert ev.exact_log_partition(model, chunk_size=5) == pytest.approx(_brute_force_log_z(model), abs=1e-9)


def test_exact_log_z_of_a_gaussian_rbm_equals_quadrature():
    """Gaussian visible units are integrated in closed form; here against a 2-D grid quadrature."""
    model = _random_rbm(units.GaussianUnits(sigma=[0.7, 1.3]), n_visible=2, n_hidden=3, scale=0.5)
    grid = np.linspace(-14, 14, 1401)
    vv = np.stack(np.meshgrid(grid, grid, indexing="ij"), -1).reshape(-1, 2)
    log_f = -model.free_energy(tf.constant(vv)).numpy()
    cell = (grid[1] - grid[0]) ** 2
    assert ev.exact_log_partition(model) == pytest.approx(special.logsumexp(log_f) + math.log(cell), abs=1e-6)


def test_log_likelihood_is_normalised():
    """exp(log p(v)) sums to 1 over all 2^n_v visible vectors."""
    model = _random_rbm(n_visible=8, n_hidden=5)
    everything = np.array(list(itertools.product([0.0, 1.0], repeat=8)), np.float32)
    ll = ev.log_likelihood(model, everything, ev.exact_log_partition(model))
    assert special.logsumexp(ll.per_example) == pytest.approx(0.0, abs=1e-9)
    assert ll.mean == pytest.approx(ll.per_example.mean()) and ll.std > 0


def test_default_schedule_is_salakhutdinov_and_murrays():
    betas = ev.schedule()
    assert len(betas) == 14_501 == ev.DEFAULT_N_BETAS
    assert betas[0] == 0 and betas[-1] == 1 and np.all(np.diff(betas) > 0)
    steps = np.diff(betas)
    np.testing.assert_allclose(steps[betas[:-1] < 0.5], 1e-3, rtol=1e-6)
    np.testing.assert_allclose(steps[(betas[:-1] >= 0.5) & (betas[:-1] < 0.9 - 1e-9)], 1e-4, rtol=1e-4)
    np.testing.assert_allclose(steps[betas[:-1] >= 0.9], 1e-5, rtol=1e-3)
    short = ev.schedule(n_betas=1000)
    assert len(short) == 1000 and short[0] == 0 and short[-1] == 1 and np.all(np.diff(short) > 0)
    np.testing.assert_allclose(ev.schedule("linear", 5), [0, 0.25, 0.5, 0.75, 1])


FAMILIES = [("bernoulli", "bernoulli"), ("gaussian", "bernoulli"), ("bernoulli", "softmax3")]


def _digits_rbm(visible, hidden):
    """A 64-6 RBM trained 3 epochs on digits (standardised for Gaussian units, thresholded otherwise)."""
    x = zoo.data.load("digits").train.x
    gaussian = units.get(visible).kind == "gaussian"
    x = ((x - x.mean(0)) / (x.std(0) + 0.1) if gaussian else x > 0.5).astype(np.float32)
    model = RBM(6, visible=visible, hidden=hidden, seed=0)
    model.compile(keras.optimizers.SGD(0.01 if gaussian else 0.1))
    model.fit(x, batch_size=20, epochs=3, verbose=0)
    return model, x


@pytest.mark.parametrize("trained", [False, True], ids=["random", "trained"])
@pytest.mark.parametrize("visible, hidden", FAMILIES, ids=["bernoulli", "gaussian", "multinomial"])
def test_ais_and_raise_agree_with_exact_log_z(visible, hidden, trained):
    """Tolerance from the estimators' own errors: forward AIS within 4 reported standard errors (plus 0.02
    for the bias of log Z-hat); RAISE's implied log Z within 4 standard errors of its mean over examples."""
    hidden = units.SoftmaxUnits(group_size=3) if hidden == "softmax3" else hidden
    if trained:
        model, x = _digits_rbm(visible, hidden)
    else:
        model = _random_rbm(visible, hidden, n_visible=12, n_hidden=6)
        gaussian = model.visible_units.kind == "gaussian"
        x = np.random.default_rng(1).normal(size=(300, 12)).astype(np.float32) if gaussian else _binary(300, 12)
    exact = ev.exact_log_partition(model)
    forward = ev.ais(model, n_betas=2000, n_chains=100, data=x, seed=3)
    assert abs(forward.log_z - exact) < 4 * forward.log_z_std + 0.02
    assert forward.log_z_lower < forward.log_z < forward.log_z_upper
    assert 10 < forward.ess <= 100
    reverse = ev.reverse_ais(model, x, n_betas=2000, n_examples=100, seed=3)
    assert reverse.settings["n_examples"] == 100 and len(reverse.per_example) == 100
    assert abs(reverse.log_z - exact) < 4 * reverse.log_likelihood_std + 0.05


def test_forward_is_below_and_reverse_above_the_truth_in_most_seeds():
    """With a short schedule (30 temperatures) the two biases show: Jensen puts forward log Z-hat below
    log Z on average, RAISE's lower bounds on log p(v) put its implied log Z above (observed over 20 seeds: 16 and
    20 of 20, mean errors -0.9 and +3.5 nats; a single short forward run is above the truth now and then)."""
    model = _random_rbm(n_visible=14, n_hidden=8, scale=1.5, seed=4)
    x = _binary(200, 14, seed=4)
    exact = ev.exact_log_partition(model)
    forward = np.array([ev.ais(model, n_betas=30, n_chains=20, data=x, seed=s).log_z for s in range(20)]) - exact
    reverse = np.array([ev.reverse_ais(model, x, n_betas=30, n_examples=50, seed=s).log_z for s in range(20)]) - exact
    assert forward.mean() < 0 < reverse.mean()
    assert (forward < 0).sum() >= 14 and (reverse > 0).sum() >= 18


def test_trained_rbm_on_digits_bracket_contains_the_exact_nll():
    digits = zoo.data.load("digits")
    x, test = ((split.x > 0.5).astype(np.float32) for split in (digits.train, digits.test))
    model = RBM(10, seed=0)
    model.compile(keras.optimizers.SGD(0.1))
    model.fit(x, batch_size=20, epochs=3, verbose=0)
    result = ev.evaluate(model, {"train": x, "test": test}, n_betas=1000, n_chains=50,
                         reverse_examples=100, seed=0)
    exact = result.nll["test"]["exact"]
    assert math.isfinite(exact) and result.log_z_exact == pytest.approx(ev.exact_log_partition(model))
    assert result.nll["test"]["lower"] < exact + 0.1 and result.nll["test"]["upper"] > exact - 0.1
    assert result.nll["test"]["upper"] - result.nll["test"]["lower"] < 2.0
    assert set(result.to_dict()) >= {"log_z_forward", "log_z_reverse", "nll", "forward", "reverse"}


def test_check_convergence_is_the_drift_within_its_error_bar_within_the_tolerance():
    def run(log_z, std, n_betas, ess=50.0):
        return ev.AISResult(log_z=log_z, log_z_lower=log_z - 3 * std, log_z_upper=log_z + 3 * std, log_z_std=std,
                            ess=ess, log_weights=np.zeros(2), settings={"n_betas": n_betas})

    check = ev.check_convergence(run(10.3, 0.03, 1000), run(10.2, 0.04, 200, ess=30.0))
    assert check.drift == pytest.approx(0.1) and check.drift_std == pytest.approx(0.05)
    assert check.converged and (check.n_betas_short, check.n_betas_long, check.ess_short) == (200, 1000, 30.0)
    assert not ev.check_convergence(run(10.4, 0.03, 1000), run(10.2, 0.04, 200)).converged  # 0.2 > 3 x 0.05
    # a drift within a wide error bar shows nothing: 3 x 0.5 > the tolerance
    assert not ev.check_convergence(run(10.3, 0.3, 1000), run(10.2, 0.4, 200)).converged
    assert ev.check_convergence(run(10.3, 0.3, 1000), run(10.2, 0.4, 200), tolerance=2.0).converged
    assert not ev.check_convergence(run(10.3, math.inf, 1000), run(10.2, 0.4, 200), tolerance=2.0).converged


def test_the_convergence_check_fires_on_a_schedule_too_short_and_passes_a_long_one():
    """A sharp RBM (weights of std 2) whose exact log Z is known: 20 temperatures leave forward AIS 3 nats low with
    a drift inside its wide error bar (not converged: the bar is wider than half a nat); 4,000 against 800 agree
    and the estimate is right."""
    model = _random_rbm(scale=2.0)
    x = _binary(300, 12)
    exact = ev.exact_log_partition(model)
    data = {"train": x, "test": x}
    short = ev.evaluate_energy_model(model, data, n_betas=20, n_chains=100, reverse_examples=50, seed=0)
    assert short.kind == "not converged" and not short.convergence["converged"]
    assert short.convergence["n_betas_short"] == 4 and short.log_z_forward < exact - 1.0
    long = ev.evaluate_energy_model(model, data, n_betas=4000, check_betas=800, n_chains=100, reverse_examples=50,
                                    seed=0)
    assert long.kind == "bracket" and long.convergence["converged"]
    assert abs(long.convergence["drift"]) <= 3 * long.convergence["drift_std"] <= 0.5
    assert abs(long.log_z_forward - exact) < 4 * long.forward["log_z_std"] + 0.02
    unchecked = ev.evaluate_energy_model(model, data, n_betas=20, check_betas=0, n_chains=10, reverse_examples=5)
    assert unchecked.convergence is None and unchecked.kind == "bracket"
    with pytest.raises(ValueError, match="check_betas must lie in"):
        ev.evaluate_energy_model(model, data, n_betas=20, check_betas=20)
    with pytest.raises(ValueError, match="n_chains must be an integer >= 2"):
        ev.ais(model, n_betas=20, n_chains=1, data=x)


def test_float32_and_float64_agree_within_their_errors():
    model = _random_rbm(n_visible=12, n_hidden=6)
    x = _binary(200, 12)
    r64 = ev.ais(model, n_betas=1000, n_chains=100, data=x, seed=0, dtype=tf.float64)
    r32 = ev.ais(model, n_betas=1000, n_chains=100, data=x, seed=0, dtype=tf.float32)
    assert abs(r64.log_z - r32.log_z) < 4 * math.hypot(r64.log_z_std, r32.log_z_std) + 0.01
    assert r32.settings["dtype"] == "float32"


def test_a_seed_reproduces_the_estimate():
    model = _random_rbm()
    x = _binary(100, 12)
    a, b = (ev.ais(model, n_betas=100, n_chains=10, data=x, seed=7) for _ in range(2))
    np.testing.assert_array_equal(a.log_weights, b.log_weights)


def test_bad_input_is_refused():
    model = _random_rbm()
    x = _binary(50, 12)
    with pytest.raises(ValueError, match="no defined partition function"):
        ev.ais(keras.Sequential([keras.layers.Dense(2)]), data=x)
    with pytest.raises(ValueError, match="12 columns"):
        ev.ais(model, data=_binary(50, 13), n_betas=10)
    with pytest.raises(ValueError, match="n_betas"):
        ev.ais(model, data=x, n_betas=1)
    with pytest.raises(ValueError, match="n_chains"):
        ev.ais(model, data=x, n_betas=10, n_chains=0)
    with pytest.raises(ValueError, match="increase strictly from 0 to 1"):
        ev.ais(model, data=x, schedule=[0.0, 0.5, 0.4, 1.0])
    with pytest.raises(ValueError, match="increase strictly from 0 to 1"):
        ev.ais(model, data=x, schedule=[0.1, 1.0])
    with pytest.raises(ValueError, match="base='data' needs the training data"):
        ev.ais(model, n_betas=10)
    with pytest.raises(ValueError, match="too large for exact enumeration.*ais"):
        ev.exact_log_partition(RBM(30, n_visible=40))
    with pytest.raises(ValueError, match="binary"):
        ev.reverse_ais(model, x + 0.5, n_betas=10)
    with pytest.raises(ValueError, match="log_z must be finite"):
        ev.log_likelihood(model, x, float("nan"))


def test_the_printed_verdict_names_the_failed_condition():
    from zoo.cli.eval_tables import convergence_verdict

    def check(drift, drift_std, converged):
        return {"drift": drift, "drift_std": drift_std, "converged": converged, "tolerance": 0.5}

    assert convergence_verdict(check(0.1, 0.05, True)) == \
        "converged (the drift within 3 se, 3 se within 0.5 nats)"
    assert convergence_verdict(check(0.2, 0.05, False)) == \
        "NOT CONVERGED (the drift exceeds 3 se (0.15 nats): a longer schedule): the NLL pair below is no bracket"
    # the published DBM at 20,000 temperatures against 4,000: agreeing, but the short run's error bar too wide
    assert convergence_verdict(check(-0.0696, 0.2754, False)) == ("NOT CONVERGED (3 se (0.83 nats) exceed 0.5 nats: "
                                                                  "more chains or a longer check): the NLL pair "
                                                                  "below is no bracket")
    assert "the drift exceeds 3 se (inf nats)" not in convergence_verdict(check(0.1, float("inf"), False))
