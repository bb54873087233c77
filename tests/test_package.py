"""The installable package: a wheel built from the repository carries the registry of the pretrained models but
not their archives (under 1 MB), so that `zoo list` works from an installed copy outside the repository and
`zoo fetch NAME` / `zoo.load(NAME)` get the archives through a (loopback) mirror."""
import http.server
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import threading
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOP_LEVEL_SKIP = {".git", ".venv", "models", "tensorboard", "build", "dist", "demo_output", ".pytest_cache", "logs"}


def _skip(folder, names):
    """What the copy leaves out: the repository's local folders (at its top level only), caches, and the archives
    (the wheel must not need them)."""
    top = Path(folder) == ROOT
    return [n for n in names if (top and n in TOP_LEVEL_SKIP) or n == "__pycache__" or n.endswith(".egg-info")
            or n.endswith(".tar.gz")]


@pytest.fixture
def mirror():
    """A loopback HTTP server of the checkout's pretrained/ folder: the URL of a mirror."""
    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(ROOT / "pretrained"), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.slow
def test_a_wheel_installed_outside_the_repository_lists_and_fetches_through_a_mirror(tmp_path, mirror):
    """`pip wheel` of a copy of the repository without its archives, installed into a new virtual environment and
    used from a folder outside the repository through its `zoo` command. TensorFlow and the other dependencies
    (2.4 GB) are borrowed from this environment by a .pth file rather than downloaded again."""
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=_skip)  # the build writes build/ and *.egg-info beside setup.py
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path / "dist"), str(source)], check=True, capture_output=True, timeout=600)
    [wheel] = (tmp_path / "dist").glob("zoo-*.whl")
    assert wheel.stat().st_size < 1_000_000
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
    assert "zoo/registry.json" in names and not [n for n in names if n.endswith(".tar.gz")]
    with zipfile.ZipFile(wheel) as z:
        assert z.read("zoo/registry.json") == (ROOT / "pretrained" / "registry.json").read_bytes()

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=600)
    python, zoo_command = venv / "bin" / "python", venv / "bin" / "zoo"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "borrowed-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", str(wheel)],
                   check=True, capture_output=True, timeout=600)
    env = {**os.environ, "ZOO_HOME": str(tmp_path / "home"), "no_proxy": "127.0.0.1", "NO_PROXY": "127.0.0.1"}
    env.pop("ZOO_MODELS_URL", None)
    env.pop("PYTHONPATH", None)

    def run(*args, code=0, **extra_env):
        result = subprocess.run([str(a) for a in args], cwd=tmp_path, env={**env, **extra_env}, capture_output=True,
                                text=True, timeout=600)
        assert result.returncode == code, result.stderr[-2000:]
        return result

    listed = run(zoo_command, "list").stdout
    assert "rbm500-bmnist" in listed and "grbm-digits" in listed
    # no archive beside the wheel's registry and no URL: one line that says how to give a source
    err = run(zoo_command, "fetch", "grbm-digits", code=2).stderr
    assert len(err.strip().splitlines()) == 1 and "--mirror URL or $ZOO_MODELS_URL" in err, err
    fetched = run(zoo_command, "fetch", "grbm-digits", "--mirror", mirror).stdout
    assert str(tmp_path / "home" / "models" / "grbm-digits") in fetched
    script = """
import json, zoo
from zoo import export, hub
model = zoo.load("rbm500-bmnist")
card = export.read_card(hub.resolve("rbm500-bmnist"))
print(json.dumps({"zoo": zoo.__file__, "registry": str(hub.REGISTRY), "model": type(model).__name__,
                  "n_hidden": model.n_hidden, "card": card}))
"""
    report = json.loads(run(python, "-c", script, ZOO_MODELS_URL=mirror).stdout.strip().splitlines()[-1])
    assert report["zoo"].startswith(str(site)) and report["registry"] == str(site / "zoo" / "registry.json")
    assert report["model"] == "RBM" and report["n_hidden"] == 500
    cards = json.loads((ROOT / "pretrained" / "cards" / "rbm500-bmnist.json").read_text())
    assert report["card"] == cards  # the card comes from the registry, not from the archive
