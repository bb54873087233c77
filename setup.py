"""The package `zoo`. The wheel carries the registry of the pretrained models (pretrained/registry.json, copied in
as package data at build time), not their archives: `zoo fetch` gets those from a mirror, the registry's URLs or
a checkout's pretrained/ folder (zoo/hub.py)."""
import shutil
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
REGISTRY = ROOT / "pretrained" / "registry.json"


class BuildWithRegistry(build_py):
    """build_py, plus pretrained/registry.json as zoo/registry.json in the built package."""

    def run(self):
        super().run()
        if not REGISTRY.is_file():
            raise FileNotFoundError(f"{REGISTRY} is missing: run python scripts/make_registry.py")
        target = Path(self.build_lib) / "zoo" / "registry.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REGISTRY, target)


setup(
    name="zoo",
    version="0.1.0",
    description="A TensorFlow 2 / Keras model zoo of deep generative models with binary latent variables",
    packages=find_packages(include=["zoo", "zoo.*"]),
    cmdclass={"build_py": BuildWithRegistry},
    python_requires=">=3.10",
    # Exact pins live in requirements.txt; these are the loose requirements for a plain `pip install .`.
    install_requires=[
        "tensorflow>=2.21",
        "tf-keras>=2.21",
        "tensorflow-probability>=0.25",
        "keras>=3.15",
        "numpy>=2.0",
        "scipy",
        "scikit-learn",
        "pillow",
    ],
    extras_require={"tfds": ["tensorflow-datasets", "importlib_resources"]},
    entry_points={"console_scripts": ["zoo=zoo.cli:main"]},
)
