"""The installable package: a wheel built from the repository carries the registry and the bundled archives,
so that `zoo list`, `zoo fetch NAME` and `zoo.load(NAME)` work from an installed copy outside the repository;
and the start-up benchmark runs."""
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOP_LEVEL_SKIP = {".git", ".venv", "models", "tensorboard", "build", "dist", "demo_output", ".pytest_cache"}


def _skip(folder, names):
    """What the copy leaves out: the repository's local folders (at its top level only) and caches."""
    top = Path(folder) == ROOT
    return [n for n in names if (top and n in TOP_LEVEL_SKIP) or n == "__pycache__" or n.endswith(".egg-info")]


@pytest.mark.slow
def test_pip_install_in_a_fresh_environment_lists_fetches_and_loads_the_bundled_models(tmp_path):
    """`pip install .` (a wheel built from a copy of the repository) into a new virtual environment, used from a
    folder outside the repository through its `zoo` command. TensorFlow and the other dependencies (2.4 GB)
    are borrowed from this environment by a .pth file rather than downloaded again."""
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=_skip)  # the build writes build/ and *.egg-info beside setup.py
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=600)
    python, zoo_command = venv / "bin" / "python", venv / "bin" / "zoo"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "borrowed-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", str(source)],
                   check=True, capture_output=True, timeout=600)
    env = {**os.environ, "ZOO_HOME": str(tmp_path / "home")}
    env.pop("ZOO_MODELS_URL", None)
    env.pop("PYTHONPATH", None)

    def run(*args):
        result = subprocess.run([str(a) for a in args], cwd=tmp_path, env=env, capture_output=True, text=True,
                                timeout=600)
        assert result.returncode == 0, result.stderr[-2000:]
        return result.stdout

    listed = run(zoo_command, "list")
    assert "rbm500-bmnist" in listed and "grbm-digits" in listed
    fetched = run(zoo_command, "fetch", "grbm-digits", "rbm500-bmnist")
    assert str(tmp_path / "home" / "models" / "rbm500-bmnist") in fetched
    script = """
import json, zoo
from zoo import hub
model = zoo.load("rbm500-bmnist")
print(json.dumps({"zoo": zoo.__file__, "registry": str(hub.REGISTRY), "model": type(model).__name__,
                  "n_hidden": model.n_hidden}))
"""
    report = json.loads(run(python, "-c", script).strip().splitlines()[-1])
    assert report["zoo"].startswith(str(site)) and report["registry"].startswith(str(site))
    assert report["model"] == "RBM" and report["n_hidden"] == 500


def test_the_startup_benchmark_runs(load_script, capsys, monkeypatch):
    bench = load_script("bench_startup")
    monkeypatch.setattr(bench, "COMMANDS", {"zoo --help": bench.COMMANDS["zoo --help"],
                                            bench.REFERENCE: [sys.executable, "-c", "pass"]})
    assert bench.main(["--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "zoo --help" in out and "x" in out.splitlines()[-1]
    assert bench.main(["--repeats", "0"]) == 2
    assert "--repeats" in capsys.readouterr().err
