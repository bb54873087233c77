"""zoo: a TensorFlow 2 / Keras model zoo of deep generative models with binary latent variables.

`import zoo` is cheap and changes nothing global: no environment variable, no stream redirection, and no
TensorFlow until a submodule that needs it is first used (`zoo.load`, `zoo.RBM`, `zoo.evaluation`, ...),
so that `zoo --help` and `zoo list` answer at once. To load a model folder with plain Keras, import the
module that registers the classes first: `import zoo.models; keras.models.load_model(".../model.keras")`.
"""
import importlib

__version__ = "0.1.0"

from zoo import families as _families

_SUBMODULES = ("capabilities", "checks", "cli", "data", "evaluation", "export", "families", "files", "finetune", "hub",
               "layers", "models", "pages", "sampling", "training", "units", "viz")
#: top-level names and the module that defines each: the model classes come from the one list of families
_ATTRIBUTES = {"load": "zoo.hub", "save": "zoo.export", **{f.cls: f.module for f in _families.FAMILIES}}

__all__ = list(_SUBMODULES) + list(_ATTRIBUTES)


def __getattr__(name):
    """Submodules and the top-level names, imported on first use (PEP 562)."""
    if name in _SUBMODULES:
        return importlib.import_module(f"zoo.{name}")
    if name in _ATTRIBUTES:
        value = getattr(importlib.import_module(_ATTRIBUTES[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
