from setuptools import find_packages, setup

setup(
    name="zoo",
    version="0.1.0",
    description="A TensorFlow 2 / Keras model zoo of deep generative models with binary latent variables",
    packages=find_packages(include=["zoo", "zoo.*"]),
    # the bundled checkpoints travel with the package: `zoo list`, `zoo fetch NAME` and `zoo.load(NAME)` work
    # from an installed wheel
    package_data={"zoo": ["pretrained/registry.json", "pretrained/*.tar.gz", "pretrained/README.md"]},
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
