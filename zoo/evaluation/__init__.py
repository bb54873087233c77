"""Evaluation you can trust: one engine per kind of estimate, chosen by what the model offers.

- `zoo.evaluation.ais`: energy models (`zoo.capabilities.EnergyModel`): exact log Z by enumeration, forward
  AIS (log Z too low on average) and its convergence check at two schedule lengths, RAISE (per-example
  stochastic lower bounds), the NLL bracket between them.
- `zoo.evaluation.importance`: latent-variable models with an inference network
  (`zoo.capabilities.LatentVariableModel`): importance-sampled log p(x) at K samples, streamed over K.
- `zoo.evaluation.results`: what every result shares: its `kind` ("exact", "estimate", "stochastic lower
  bound", "bracket"), its settings, its JSON form.
- `zoo.evaluation.cards`: the metrics a model card records for an evaluation (`zoo eval --write-card`).

`evaluate(model, dataset, ...)` dispatches on the model's capabilities.
"""
from zoo import capabilities
from zoo.evaluation import cards, importance
from zoo.evaluation.ais import (DEFAULT_N_BETAS, SCHEDULES, AISResult, BaseModel, Convergence, Evaluation,
                                LogLikelihood, RAISEResult, ais, check_convergence, evaluate_energy_model,
                                exact_log_partition, fit_base, log_likelihood, mean_free_energy, reverse_ais, schedule)
from zoo.evaluation.importance import (ImportanceEvaluation, ImportanceResult, PartitionResult,
                                      evaluate_latent_variable_model)
from zoo.evaluation.results import KINDS, effective_sample_size

__all__ = ["DEFAULT_N_BETAS", "SCHEDULES", "KINDS", "AISResult", "RAISEResult", "Evaluation", "LogLikelihood",
           "ImportanceResult", "ImportanceEvaluation", "PartitionResult", "Convergence", "BaseModel", "ais",
           "check_convergence", "fit_base", "reverse_ais", "exact_log_partition", "schedule",
           "log_likelihood", "mean_free_energy", "effective_sample_size", "evaluate", "evaluate_energy_model",
           "evaluate_latent_variable_model", "importance", "cards"]


def evaluate(model, dataset, **settings):
    """The model's likelihood on `dataset` by the estimator its capabilities allow:

    - an energy model: `evaluate_energy_model` (exact log Z when small enough, forward AIS, RAISE, the
      train/test NLL bracket; settings n_betas, n_chains, reverse_betas, reverse_examples, exact, base,
      schedule, dtype, seed, progress);
    - a latent-variable model: `evaluate_latent_variable_model` (the test NLL at each K of `ks`, with ESS;
      settings ks, batch_size, seed, progress).
    A model with neither: ValueError naming what it offers."""
    if capabilities.offers(model, capabilities.EnergyModel):
        return evaluate_energy_model(model, dataset, **settings)
    if capabilities.offers(model, capabilities.LatentVariableModel):
        return evaluate_latent_variable_model(model, dataset, **settings)
    capabilities.require(model, (capabilities.EnergyModel, capabilities.LatentVariableModel),
                         "be evaluated (log-likelihood)")
