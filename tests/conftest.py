import importlib.util
import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture
def load_script():
    """load_script("name") -> scripts/name.py as a module; load_script("benchmarks/bench_dbm") or
    load_script("experiments/nll_table") -> that file of the repository's other script folders."""
    def load(name):
        folder, _, name = name.rpartition("/")
        spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parent.parent /
                                                      (folder or "scripts") / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture
def stop_after_epoch(monkeypatch):
    """stop_after_epoch(epoch, error): training raises `error` (an exception or its class) after the 0-based
    `epoch` has been logged, as an interruption or a failing callback would; stop_after_epoch(None) undoes it."""
    from zoo import training

    original = training.TensorBoardLogger.on_epoch_end

    def stop(epoch, error=KeyboardInterrupt):
        def on_epoch_end(self, done, logs=None):
            original(self, done, logs)
            if done == epoch:
                raise error

        monkeypatch.setattr(training.TensorBoardLogger, "on_epoch_end", original if epoch is None else on_epoch_end)

    return stop


@pytest.fixture(scope="session")
def toy_latent_class():
    """ToyHelmholtz: a tiny latent-variable model for exact answers (registered, so its folders load)."""
    from toy_models import ToyHelmholtz
    return ToyHelmholtz
