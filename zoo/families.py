"""The zoo's model families, registered once: every other list of them (the classes `zoo.models` exports, the
names `import zoo` offers, the families of `zoo train`) is derived from `FAMILIES`.

Each entry names the Keras class, the module that defines it, and the `zoo train` family that trains it (a
`zoo.cli.family.Family` as "module:attribute"; None for a model trained inside another, or by `zoo finetune`).
What each family can do is not listed here: a model declares it by its methods (`zoo.capabilities`). This module
imports nothing heavy: `import zoo` reads it before TensorFlow loads.
"""
from dataclasses import dataclass


@dataclass(frozen=True)
class ModelFamily:
    name: str  # the family's name, `zoo train NAME` where it has a training command
    cls: str  # the Keras class, `zoo.<cls>`
    module: str  # where the class lives
    train: str = None  # "module:attribute" of its `zoo train` family, or None

    def load_class(self):
        """The Keras class (imports its module, which registers it with Keras)."""
        import importlib

        return getattr(importlib.import_module(self.module), self.cls)


FAMILIES = (
    ModelFamily("rbm", "RBM", "zoo.models.rbm", "zoo.cli.rbm:FAMILY"),
    ModelFamily("dbm", "DBM", "zoo.models.dbm", "zoo.cli.dbm:FAMILY"),
    ModelFamily("helmholtz", "HelmholtzMachine", "zoo.models.helmholtz", "zoo.cli.helmholtz:FAMILY"),
    ModelFamily("bihm", "BiHM", "zoo.models.bihm", "zoo.cli.helmholtz:BIHM_FAMILY"),
    ModelFamily("adgm", "AuxiliaryDeepGenerativeModel", "zoo.models.adgm"),  # a hybrid's generative part
    ModelFamily("hybrid", "HybridModel", "zoo.models.hybrid", "zoo.cli.hybrid:FAMILY"),
    ModelFamily("implicit-hybrid", "ImplicitHybrid", "zoo.models.implicit_hybrid", "zoo.cli.implicit_hybrid:FAMILY"),
    ModelFamily("classifier", "Classifier", "zoo.models.classifier"),  # made by zoo finetune --save
)


def by_class():
    """{class name: ModelFamily}."""
    return {family.cls: family for family in FAMILIES}


def trainable():
    """The families with a `zoo train` command, in the order `zoo train --help` lists them."""
    return [family for family in FAMILIES if family.train]
