import importlib.util
import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture
def load_script():
    """load_script("name") -> scripts/name.py as a module."""
    def load(name):
        spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parent.parent / "scripts" /
                                                      f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture(scope="session")
def toy_latent_class():
    """ToyHelmholtz: a tiny latent-variable model for exact answers (registered, so its folders load)."""
    from toy_models import ToyHelmholtz
    return ToyHelmholtz
