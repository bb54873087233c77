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
| ChainSampler        | sample(..., n_steps)                                     | zoo sample --steps               |
| AnimatedSampler     | sample(..., frames)                                      | zoo sample --gif                 |
| TrainableBound      | training_loss, log_importance_weights, call              | the hybrid's generative part     |
| Initializable       | set_parameters_from                                      | zoo train --init-from            |
| DataInitialized     | prepare_visible_bias                                     | the run manager (before fit)     |
| Describable         | describe                                                 | zoo eval, cards                  |
| TrainingSummaries   | summary_images, summary_histograms                       | zoo.training.TensorBoardLogger   |
| SummaryScalars      | summary_scalars                                          | zoo.training.TensorBoardLogger   |
| LeanCopy            | without_training_state                                   | zoo.export (published folders)   |

A protocol may also name keyword arguments a method must accept (`__keywords__`): `sample` is one method,
but only a model whose `sample` runs a Markov chain takes `n_steps`.

This module imports nothing heavy: it is safe to use before TensorFlow loads.
"""
import inspect
from typing import Protocol


class EnergyModel(Protocol):
    """p(x) = exp(log f(x)) / Z with log f = `unnormalized_log_prob` (an RBM: -F(x)); Z by annealing from a
    tractable base model (`base_parameters(data)`: fitted to the data's means, or uniform for None) along
    `annealing_path(base, dtype)`, an object with `terms(x)`, `log_f(terms, beta)`, `transition(x, terms,
    beta, seed)`, `base_log_partition()` and `base_sample(n, seed)`. A model whose `unnormalized_log_prob` is a
    bound on log f(x), not log f(x) itself, says what it is in the class attribute `UNNORMALIZED_LOG_PROB` (a
    DBM: "mean-field lower bound"; default "exact"): its NLL is then a bound bracket. `visible_kind()` names the
    visible units ("bernoulli", "gaussian", "softmax"): a Gaussian one's p(x) is a density."""
    UNNORMALIZED_LOG_PROB = "exact"

    def unnormalized_log_prob(self, x): ...

    def visible_kind(self): ...

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


class ChainSampler(Protocol):
    """`sample(n, n_steps=..., seed=None)`: samples drawn by a Markov chain run for `n_steps` sweeps (an RBM, a
    DBM, a BiHM's exact chain)."""
    __keywords__ = {"sample": ("n_steps",)}

    def sample(self, n, seed=None, n_steps=None): ...


class AnimatedSampler(Protocol):
    """`sample(n, seed, frames=F)` -> (samples, F snapshots of the chains): the chains as an animation."""
    __keywords__ = {"sample": ("frames",)}

    def sample(self, n, seed=None, frames=0): ...


class TrainableBound(Protocol):
    """A latent-variable model that trains on its own bound: `training_loss(x, seed)` (a scalar whose gradient
    is the model's update), `log_importance_weights(x, k, seed)`, and `call(x)` -> differentiable features
    (the inference network's mean path). What a deep hybrid model's generative part must offer."""

    def training_loss(self, x, seed): ...

    def log_importance_weights(self, x, k, seed): ...

    def call(self, x): ...


class Initializable(Protocol):
    """`set_parameters_from(other)`: copy the parameters of a trained model of the same family and shape, to
    continue training it (`zoo train --init-from`)."""

    def set_parameters_from(self, other): ...


class DataInitialized(Protocol):
    """`prepare_visible_bias(x)`: set the visible biases from the training data's means before training (for
    data binarised afresh every epoch, which the model never sees whole)."""

    def prepare_visible_bias(self, x): ...


class Describable(Protocol):
    """`describe()`: the model's architecture in one line, e.g. 'RBM 784-500 (bernoulli-bernoulli)'."""

    def describe(self): ...


class TrainingSummaries(Protocol):
    """`summary_images(x)` -> {name: (images, scale_each[, n_cols])} and `summary_histograms(x)` -> {name:
    values}: what TensorBoard shows of the model on a data sample."""

    def summary_images(self, x): ...

    def summary_histograms(self, x): ...


class SummaryScalars(Protocol):
    """`summary_scalars(x)` -> {name: number}: statistics too costly for every epoch, logged with the images."""

    def summary_scalars(self, x): ...


class LeanCopy(Protocol):
    """`without_training_state()`: a copy for inference, evaluation and fine-tuning, without what only
    training needs (persistent chains, optimizer slots)."""

    def without_training_state(self): ...


class AnnealingPath(Protocol):
    """What `EnergyModel.annealing_path(base, dtype)` returns: the path from a tractable base model (beta 0) to
    the model (beta 1) that AIS and RAISE walk. `terms(x)`: the sufficient statistics of x; `log_f(terms, beta)`:
    the unnormalised log-probability at beta; `transition(x, terms, beta, seed)`: a Markov step leaving it
    invariant; `base_log_partition()`, `base_sample(n, seed)`: the base model's log Z and exact samples."""

    def terms(self, x): ...

    def log_f(self, terms, beta): ...

    def transition(self, x, terms, beta, seed): ...

    def base_log_partition(self): ...

    def base_sample(self, n, seed): ...


class StartsFromData(Protocol):
    """An annealing path whose reverse chains start at data by sampling the hidden layers given it
    (`start_from_data(v, seed)`), for models whose visible units alone are not the chain's state (a DBM)."""

    def start_from_data(self, v, seed): ...


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
    ("chain sampler", ChainSampler, "zoo sample --steps"),
    ("animated sampler", AnimatedSampler, "zoo sample --gif"),
    ("trainable bound", TrainableBound, "a deep hybrid's generative part"),
    ("initializable", Initializable, "zoo train --init-from"),
    ("data-initialised", DataInitialized, "visible biases from the data before training"),
    ("describable", Describable, "a one-line architecture"),
    ("training summaries", TrainingSummaries, "TensorBoard images and histograms"),
    ("summary scalars", SummaryScalars, "TensorBoard statistics"),
    ("lean copy", LeanCopy, "published checkpoints without training state"),
)

#: the capabilities a user acts on (the CLI's and the evaluation's); the rest are hooks of the house
USER_FACING = CAPABILITIES[:9]


def methods(protocol):
    """The method names a capability asks for."""
    return [name for name, value in vars(protocol).items() if callable(value) and not name.startswith("_")]


def offers(model, protocol):
    """Whether `model`'s class defines every method of the capability `protocol`: methods, not attributes
    (an inference network stored as `model.encoder` is callable, yet not the Encoder capability), each
    accepting the keyword arguments the protocol names in `__keywords__`."""
    cls = type(model)
    if not all(callable(getattr(cls, name, None)) for name in methods(protocol)):
        return False
    return all(set(keywords) <= _parameters(getattr(cls, name))
               for name, keywords in getattr(protocol, "__keywords__", {}).items())


def _parameters(function):
    try:
        return set(inspect.signature(function).parameters)
    except (TypeError, ValueError):  # a builtin without a signature
        return set()


def of(model, capabilities=None):
    """The names of the user-facing capabilities `model` offers, e.g. ['energy model', 'sampler', 'encoder']
    (`capabilities=CAPABILITIES`: the hooks too)."""
    return [name for name, protocol, _ in (capabilities or USER_FACING) if offers(model, protocol)]


def describe(model):
    """'<Class> offers: energy model (log Z by AIS ...), sampler (zoo sample)' in one line."""
    offered = [f"{name} ({gives})" for name, protocol, gives in USER_FACING if offers(model, protocol)]
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
