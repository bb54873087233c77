"""zoo: a TensorFlow 2 / Keras model zoo of deep generative models with binary latent variables."""
from zoo._quiet import import_tensorflow_quietly as _import_tensorflow_quietly

_import_tensorflow_quietly()

from zoo import checks, data, units, viz  # noqa: E402
from zoo import models  # noqa: E402
from zoo import evaluation, training  # noqa: E402
from zoo import export, hub  # noqa: E402
from zoo import finetune  # noqa: E402
from zoo.export import save  # noqa: E402
from zoo.hub import load  # noqa: E402
from zoo.models import RBM  # noqa: E402

__version__ = "0.1.0"
__all__ = ["checks", "data", "units", "viz", "models", "training", "export", "hub", "finetune", "RBM", "load", "save"]
