"""The installable package: a wheel built from the repository carries the registry and the bundled archives,
so that `zoo list`, `zoo fetch NAME` and `zoo.load(NAME)` work from an installed copy outside the repository;
and the start-up benchmark runs."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOP_LEVEL_SKIP = {".git", ".venv", "models", "tensorboard", "build", "dist", "demo_output", ".pytest_cache"}


def _skip(folder, names):
    """What the copy leaves out: the repository's local folders (at its top level only) and caches."""
    top = Path(folder) == ROOT
    return [n for n in names if (top and n in TOP_LEVEL_SKIP) or n == "__pycache__" or n.endswith(".egg-info")]


@pytest.mark.slow
def test_an_installed_wheel_lists_fetches_and_loads_the_bundled_models(tmp_path):
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=_skip)  # the build writes build/ and *.egg-info beside setup.py
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path / "dist"), str(source)], check=True, capture_output=True, timeout=600)
    [wheel] = (tmp_path / "dist").glob("zoo-*.whl")
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=600)
    script = """
import json, sys
import zoo
from zoo import cli, hub
assert zoo.__file__.startswith(sys.argv[1]), zoo.__file__
codes = [cli.main(["list"]), cli.main(["fetch", "grbm-digits"])]
model = zoo.load("grbm-digits")
print(json.dumps({"codes": codes, "model": type(model).__name__, "registry": str(hub.REGISTRY),
                  "n_visible": model.n_visible}))
"""
    env = {**os.environ, "PYTHONPATH": str(site), "ZOO_HOME": str(tmp_path / "home")}
    env.pop("ZOO_MODELS_URL", None)
    result = subprocess.run([sys.executable, "-c", script, str(site)], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["codes"] == [0, 0] and report["model"] == "RBM" and report["n_visible"] == 64
    assert report["registry"].startswith(str(site))
    assert "rbm500-bmnist" in result.stdout and "grbm-digits" in result.stdout
    assert (tmp_path / "home" / "models" / "grbm-digits" / "model.keras").is_file()


def test_the_startup_benchmark_runs(load_script, capsys, monkeypatch):
    bench = load_script("bench_startup")
    monkeypatch.setattr(bench, "COMMANDS", {"zoo --help": bench.COMMANDS["zoo --help"],
                                            bench.REFERENCE: [sys.executable, "-c", "pass"]})
    assert bench.main(["--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "zoo --help" in out and "x" in out.splitlines()[-1]
    assert bench.main(["--repeats", "0"]) == 2
    assert "--repeats" in capsys.readouterr().err
