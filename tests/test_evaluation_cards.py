"""zoo.evaluation.cards: the metrics a card records for an evaluation, built from results made by hand (no
estimate runs), checked as exact dicts."""
from zoo import export
from zoo.evaluation import Evaluation, ImportanceEvaluation, cards

COMMAND = "zoo eval m --k 1 10"


def energy_result():
    settings = {"forward": {"n_betas": 100, "n_chains": 8, "seed": 0}, "reverse": {"n_betas": 100, "n_examples": 5}}
    return Evaluation(dataset="digits", log_z_forward=10.5, log_z_reverse=10.75, log_z_exact=None,
                      nll={"train": {"lower": 20.0, "upper": 20.25, "exact": None},
                           "test": {"lower": 21.0, "upper": 21.25, "exact": None}},
                      forward={"log_z_lower": 10.25, "log_z_upper": 10.625, "ess": 7.5,
                               "settings": settings["forward"]},
                      reverse={"log_likelihood": -21.5, "log_likelihood_std": 0.5, "settings": settings["reverse"]},
                      seconds=3.0)


def test_energy_metrics():
    assert cards.energy_metrics(energy_result(), COMMAND) == {
        "dataset": "digits", "kind": "bracket",
        "test_nll": {"lower": 21.0, "upper": 21.25, "exact": None},
        "train_nll": {"lower": 20.0, "upper": 20.25, "exact": None},
        "log_z": {"forward": 10.5, "forward_lower": 10.25, "forward_upper": 10.625, "ess": 7.5, "reverse": 10.75,
                  "exact": None},
        "raise_test_log_likelihood": {"mean": -21.5, "std": 0.5},
        "settings": {"forward": {"n_betas": 100, "n_chains": 8, "seed": 0},
                     "reverse": {"n_betas": 100, "n_examples": 5}},
        "seconds": 3.0, "command": COMMAND}


def test_energy_metrics_of_a_log_z_that_did_not_converge_hold_no_nll_and_no_log_z():
    """A forward log Z that drifted between two schedule lengths is never a card's bracket or headline."""
    from dataclasses import replace

    from zoo import pages

    convergence = {"log_z_short": 9.0, "log_z_long": 10.5, "n_betas_short": 20, "n_betas_long": 100, "drift": 1.5,
                   "drift_std": 0.25, "ess_short": 2.0, "ess_long": 7.5, "converged": False, "tolerance": 0.5,
                   "kind": "estimate"}
    result = replace(energy_result(), convergence=convergence, kind="not converged")
    metrics = cards.energy_metrics(result, COMMAND)
    assert metrics == {"dataset": "digits", "kind": "not converged", "convergence": convergence,
                       "settings": {"forward": {"n_betas": 100, "n_chains": 8, "seed": 0},
                                    "reverse": {"n_betas": 100, "n_examples": 5}},
                       "seconds": 3.0, "command": COMMAND}
    assert export.stage_result(metrics) == {}
    assert pages.headline(metrics) == "log Z not converged (forward AIS moved 1.50 nats from 20 to 100 temperatures)"
    assert pages.describe_metrics(metrics) == "log Z not converged: drift 1.50 ± 0.25 (20 -> 100 temperatures)"
    converged = cards.energy_metrics(replace(energy_result(), convergence={**convergence, "converged": True}),
                                     COMMAND)
    assert converged["convergence"]["converged"] and converged["test_nll"]["lower"] == 21.0


def latent_result(ks=(1, 10), dataset="digits", log_z=None):
    results = [{"k": k, "nll": 30.0 - k / 10, "std": 0.5, "ess": float(k), "seconds": 1.0, "bound": "ignored"}
               for k in ks]
    if log_z:
        results = [{**r, "p_nll": 31.0, "p_ess": 2.0, "log_p_tilde": -29.0} for r in results]
    return ImportanceEvaluation(dataset=dataset, results=results, seconds=2.0, n_examples=50, log_z=log_z)


def test_latent_variable_metrics_merge_the_card_s_earlier_k_on_the_same_dataset():
    previous = {"dataset": "digits", "test_nll_by_k": {"100": {"nll": 29.0, "command": "zoo eval m --k 100"},
                                                       "10": {"nll": 99.0, "command": "old"}}}
    entry = {"std": 0.5, "seconds": 1.0, "n_examples": 50, "command": COMMAND}
    expected = {"dataset": "digits", "kind": "stochastic lower bound",
                "test_nll_by_k": {"1": {"nll": 29.9, "ess": 1.0, **entry}, "10": {"nll": 29.0, "ess": 10.0, **entry},
                                  "100": {"nll": 29.0, "command": "zoo eval m --k 100"}},
                "settings": {"batch_size": 25, "seed": 3}, "command": COMMAND}
    metrics = cards.latent_variable_metrics(latent_result(), COMMAND, batch_size=25, seed=3, previous=previous)
    assert metrics == expected
    assert list(metrics["test_nll_by_k"]) == ["1", "10", "100"]  # sorted by K as numbers
    # another dataset's numbers are not merged; no card metrics at all is a first run
    for other in ({**previous, "dataset": "mnist"}, None, "not a dict"):
        metrics = cards.latent_variable_metrics(latent_result(), COMMAND, batch_size=25, seed=3, previous=other)
        assert list(metrics["test_nll_by_k"]) == ["1", "10"]


def test_latent_variable_metrics_of_a_bihm_and_of_a_classifier():
    log_z = {"log_z": 5.0, "std": 0.1, "n_samples": 1000, "k": 10, "ess": 900.0, "seconds": 4.0}
    result = latent_result(ks=(10,), log_z=log_z)
    metrics = cards.latent_variable_metrics(result, COMMAND, batch_size=100, seed=0, accuracy=(0.875, 40))
    assert metrics["test_nll_by_k"] == {"10": {"nll": 29.0, "std": 0.5, "ess": 10.0, "seconds": 1.0, "p_nll": 31.0,
                                               "p_ess": 2.0, "log_p_tilde": -29.0, "n_examples": 50,
                                               "command": COMMAND}}
    assert metrics["log_z"] == {**log_z, "command": COMMAND}
    assert metrics["test_accuracy"] == {"accuracy": 0.875, "n_examples": 40, "command": COMMAND}
    # a log Z taken from the card keeps the command that measured it
    previous = {"dataset": "digits", "log_z": {**log_z, "command": "zoo eval m --z-samples 1000"}}
    metrics = cards.latent_variable_metrics(result, COMMAND, batch_size=100, seed=0, previous=previous,
                                            log_z_from_card=True)
    assert metrics["log_z"] == previous["log_z"] and "test_accuracy" not in metrics


def test_card_fields_set_the_last_stage_s_result_of_a_model_trained_in_stages():
    metrics = cards.energy_metrics(energy_result(), COMMAND)
    headline = export.stage_result(metrics) | {"ess": 7.5}
    assert cards.card_fields({"command": "zoo train rbm"}, metrics, headline) == {"metrics": metrics}
    card = {"lineage": [{"stage": 1, "command": "zoo train rbm --epochs 1", "result": {"test_nll": [1, 2]}},
                        {"stage": 2, "command": "zoo train rbm --epochs 2"}]}
    assert cards.card_fields(card, metrics, headline) == {"metrics": metrics, "lineage": [
        {"stage": 1, "command": "zoo train rbm --epochs 1", "result": {"test_nll": [1, 2]}},
        {"stage": 2, "command": "zoo train rbm --epochs 2", "eval_command": COMMAND,
         "result": {"test_nll": [21.0, 21.25], "train_nll": [20.0, 20.25], "ess": 7.5}}]}
    assert card["lineage"][1] == {"stage": 2, "command": "zoo train rbm --epochs 2"}  # the card is not changed
