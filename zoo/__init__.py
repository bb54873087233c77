"""zoo: a TensorFlow 2 / Keras model zoo of deep generative models with binary latent variables."""
import os as _os

_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from zoo import checks, data, units, viz  # noqa: E402
from zoo import models  # noqa: E402
from zoo import training  # noqa: E402
from zoo.models import RBM  # noqa: E402

__version__ = "0.1.0"
__all__ = ["checks", "data", "units", "viz", "models", "training", "RBM"]
