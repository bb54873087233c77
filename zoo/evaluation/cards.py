"""The metrics a model card records for an evaluation (`zoo eval --write-card`): pure functions from an
evaluation's result to the card's JSON fields, which `zoo.export.update_card` writes.

- `energy_metrics`: an energy model's `Evaluation` (`evaluate_energy_model`): the NLL bracket on both splits, log
  Z both ways, RAISE's test log-likelihood, the settings.
- `latent_variable_metrics`: an `ImportanceEvaluation` (`evaluate_latent_variable_model`): the test NLL at each
  K, merged with the card's earlier K (each K keeps the command and the number of test examples that measured
  it), a BiHM's log Z, a hybrid's test accuracy.
- `classifier_metrics`: a model with no likelihood that classifies (an implicit hybrid): its test accuracy.
- `card_fields`: the fields to set: the metrics, and the result of the last training stage of a model trained
  in stages.

Every number carries the command that measured it, so that running it again gives the card's numbers.
"""

__all__ = ["energy_metrics", "latent_variable_metrics", "classifier_metrics", "card_fields"]

#: the per-K numbers of a latent-variable model's result that its card keeps besides nll, std, ess, seconds
OPTIONAL_PER_K = ("p_nll", "p_std", "p_ess", "log_p_tilde")


def energy_metrics(result, command):
    """The card metrics of an energy model's evaluation `result` (`zoo.evaluation.Evaluation`), measured by
    `command`. A forward log Z that did not converge (kind "not converged") gives no NLL and no log Z as metrics:
    the card records the verdict and the convergence check's numbers, the command, the settings."""
    forward, reverse = result.forward, result.reverse
    if result.kind == "not converged":
        return {"dataset": result.dataset, "kind": result.kind, "convergence": result.convergence,
                "settings": {"forward": forward["settings"], "reverse": reverse["settings"]},
                "seconds": result.seconds, "command": command}
    return {"dataset": result.dataset, "kind": result.kind, "test_nll": result.nll["test"],
            "train_nll": result.nll["train"],
            "log_z": {"forward": result.log_z_forward, "forward_lower": forward["log_z_lower"],
                      "forward_upper": forward["log_z_upper"], "ess": forward["ess"],
                      "reverse": result.log_z_reverse, "exact": result.log_z_exact},
            "raise_test_log_likelihood": {"mean": reverse["log_likelihood"], "std": reverse["log_likelihood_std"]},
            "settings": {"forward": forward["settings"], "reverse": reverse["settings"]},
            **({} if result.convergence is None else {"convergence": result.convergence}),
            "seconds": result.seconds, "command": command}


def latent_variable_metrics(result, command, batch_size, seed, previous=None, log_z_from_card=False,
                            accuracy=None):
    """The card metrics of a latent-variable model's evaluation `result` (`zoo.evaluation.ImportanceEvaluation`
    on the test split), measured by `command` with `batch_size` and `seed`.

    previous: the card's metrics so far; its `test_nll_by_k` on the same dataset is kept, each K measured again
    replaced (a later run at other K, a larger K on fewer examples say, adds to the card). log_z_from_card: the
    run took its log Z from the card (`zoo eval --z-from-card`): the card keeps the one it has, with the command
    that measured it. accuracy: (test accuracy, test examples) of a model that also classifies."""
    previous = previous if isinstance(previous, dict) else {}
    by_k = dict(previous.get("test_nll_by_k") or {}) if previous.get("dataset") == result.dataset else {}
    by_k.update({str(r["k"]): {"nll": r["nll"], "std": r["std"], "ess": r["ess"], "seconds": r["seconds"],
                               **{name: r[name] for name in OPTIONAL_PER_K if name in r},
                               "n_examples": result.n_examples, "command": command} for r in result.results})
    metrics = {"dataset": result.dataset, "kind": result.kind,
               "test_nll_by_k": dict(sorted(by_k.items(), key=lambda item: int(item[0]))),
               "settings": {"batch_size": batch_size, "seed": seed}, "command": command}
    if result.log_z:
        metrics["log_z"] = previous["log_z"] if log_z_from_card else {**result.log_z, "command": command}
    if accuracy is not None:
        metrics["test_accuracy"] = {"accuracy": accuracy[0], "n_examples": accuracy[1], "command": command}
    return metrics


def classifier_metrics(dataset, accuracy, n_examples, command):
    """The card metrics of a model that classifies but has no likelihood: its `accuracy` on the first
    `n_examples` of `dataset`'s test split, measured by `command`."""
    return {"dataset": dataset, "kind": "test accuracy (no likelihood)",
            "test_accuracy": {"accuracy": accuracy, "n_examples": n_examples, "command": command},
            "command": command}


def card_fields(card, metrics, stage_result):
    """The fields of `card` that an evaluation sets: its `metrics`, and when the model was trained in stages (a
    card with a `lineage`) the last stage's `result` (`stage_result`: the headline of the metrics,
    `zoo.export.stage_result`, with any extra numbers) and the `eval_command` that measured it."""
    fields = {"metrics": metrics}
    if card.get("lineage"):
        stages = [dict(stage) for stage in card["lineage"]]
        stages[-1].update(result=stage_result, eval_command=metrics["command"])
        fields["lineage"] = stages
    return fields
