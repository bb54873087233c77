"""What a model can do: small interfaces that evaluation, sampling, fine-tuning, export and the CLI ask for,
instead of class names or attributes.

A model offers a capability by having its methods (structural typing: the protocols below, checked with
`offers(model, Capability)`, which asks for methods of the model's class, so that an attribute of the same
name, say an inference network stored as `encoder`, does not count); it offers as many as it can. The families and what they offer:

| capability          | methods                                                  | served by                        |
|---------------------|----------------------------------------------------------|----------------------------------|
| EnergyModel         | unnormalized_log_prob, base_parameters, annealing_path,  | zoo/evaluation/ais.py (AIS,      |
|                     | validate_data                                            | RAISE)                           |
| Enumerable          | enumerable_layers, unnormalized_log_marginal             | zoo/evaluation/ais.py (exact)    |
| LatentVariableModel | log_importance_weights, validate_data                    | zoo/evaluation/importance.py     |
| GeometricMeanModel  | log_importance_weights, log_partition_weights,           | zoo/evaluation/importance.py     |
|                     | validate_data                                            | (log p*(x), log Z)               |
| Sampler             | sample                                                   | zoo sample, the run manager      |
| Inpainter           | inpaint                                                  | zoo inpaint                      |
| Encoder             | encoder                                                  | zoo.finetune                     |
| Classifier          | predict_probabilities, predict_classes                   | zoo classify, zoo eval accuracy  |
| Servable            | serving_endpoints                                        | zoo.export (SavedModel)          |

This module imports nothing heavy: it is safe to use before TensorFlow loads.
"""
from typing import Protocol


class EnergyModel(Protocol):
    """p(x) = exp(log f(x)) / Z with log f = `unnormalized_log_prob` (an RBM: -F(x)); Z by annealing from a
    tractable base model (`base_parameters(data)`: fitted to the data's means, or uniform for None) along
    `annealing_path(base, dtype)`, an object with `terms(x)`, `log_f(terms, beta)`, `transition(x, terms,
    beta, seed)`, `base_log_partition()` and `base_sample(n, seed)`."""

    def unnormalized_log_prob(self, x): ...

    def base_parameters(self, data=None): ...

    def annealing_path(self, base, dtype): ...

    def validate_data(self, x, name="x"): ...


class Enumerable(Protocol):
    """Exact log Z: `enumerable_layers()` -> {name: units with log_n_states() and states(start, stop)}, and
    `unnormalized_log_marginal(states, layer)` = log sum over the other layers of exp(-E)."""

    def enumerable_layers(self): ...

    def unnormalized_log_marginal(self, states, layer): ...


class LatentVariableModel(Protocol):
    """A model p(x, h) with an inference network q(h | x): `log_importance_weights(x, k, seed)` gives, for
    k samples h_k ~ q(. | x) per row of x, the tensor (n, k) of log p(x, h_k) - log q(h_k | x)."""

    def log_importance_weights(self, x, k, seed): ...

    def validate_data(self, x, name="x"): ...


class GeometricMeanModel(Protocol):
    """A latent-variable model whose distribution is the normalised geometric mean of p and q (a bidirectional
    Helmholtz machine): p*(x) = p~*(x) / Z with p~*(x) = (E_{h ~ q}[sqrt(w)])^2 from `log_importance_weights`,
    and `log_partition_weights(n, k, seed)` the logs of n independent unbiased estimates of Z."""

    def log_importance_weights(self, x, k, seed): ...

    def log_partition_weights(self, n, k, seed): ...

    def validate_data(self, x, name="x"): ...


class Sampler(Protocol):
    """`sample(n, seed=None, ...)`: n samples of the visible units as a NumPy array (n, n_features)."""

    def sample(self, n, seed=None): ...


class Inpainter(Protocol):
    """`inpaint(x, mask, n_chains, n_steps, seed)`: completions of the pixels of x where mask is 0, as a NumPy
    array (n, n_chains, n_features)."""

    def inpaint(self, x, mask, n_chains=10, n_steps=250, seed=None): ...


class Encoder(Protocol):
    """`encoder()`: a new keras.Model from inputs (None, n_features) to features, which fine-tuning wraps
    (the model itself is never changed by it)."""

    def encoder(self): ...


class Classifier(Protocol):
    """`predict_probabilities(x)`: p(y | x) of each row of x, (n, n_classes); `predict_classes(x)`: its argmax."""

    def predict_probabilities(self, x): ...

    def predict_classes(self, x): ...


class Servable(Protocol):
    """`serving_endpoints()` -> {name: (function, input_signature)}: the SavedModel's signatures."""

    def serving_endpoints(self): ...


#: name, protocol and what it gives, in the order they are listed to a user
CAPABILITIES = (
    ("energy model", EnergyModel, "log Z by AIS and RAISE, zoo eval"),
    ("exact enumeration", Enumerable, "exact log Z"),
    ("latent-variable model", LatentVariableModel, "importance-sampled log p(x), zoo eval"),
    ("normalised geometric mean", GeometricMeanModel, "log p*(x) with log Z by importance sampling, zoo eval"),
    ("sampler", Sampler, "zoo sample"),
    ("inpainter", Inpainter, "zoo inpaint"),
    ("encoder", Encoder, "zoo finetune"),
    ("classifier", Classifier, "class predictions"),
    ("servable", Servable, "SavedModel signatures"),
)


def methods(protocol):
    """The method names a capability asks for."""
    return [name for name, value in vars(protocol).items() if callable(value) and not name.startswith("_")]


def offers(model, protocol):
    """Whether `model`'s class defines every method of the capability `protocol`: methods, not attributes
    (an inference network stored as `model.encoder` is callable, yet not the Encoder capability)."""
    return all(callable(getattr(type(model), name, None)) for name in methods(protocol))


def of(model):
    """The names of the capabilities `model` offers, e.g. ['energy model', 'sampler', 'encoder']."""
    return [name for name, protocol, _ in CAPABILITIES if offers(model, protocol)]


def describe(model):
    """'<Class> offers: energy model (log Z by AIS ...), sampler (zoo sample)' in one line."""
    offered = [f"{name} ({gives})" for name, protocol, gives in CAPABILITIES if offers(model, protocol)]
    return f"{type(model).__name__} offers " + ("; ".join(offered) if offered else "none of the zoo's capabilities")


def require(model, protocols, action):
    """`model` if it offers one of `protocols` (a protocol or a tuple of them), else ValueError in one line:
    '<Class> cannot <action>: it is not a <needed>; <Class> offers ...'."""
    protocols = protocols if isinstance(protocols, tuple) else (protocols,)
    if any(offers(model, p) for p in protocols):
        return model
    names = {protocol: name for name, protocol, _ in CAPABILITIES}
    needed = " or ".join(names.get(p, p.__name__) for p in protocols)
    raise ValueError(f"{type(model).__name__} cannot {action}: that needs a model with the capability "
                     f"{needed}; {describe(model)}")
