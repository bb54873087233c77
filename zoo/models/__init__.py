"""Keras models of the zoo, one family a file; importing this package registers them all with Keras."""
from zoo.models.adgm import AuxiliaryDeepGenerativeModel
from zoo.models.bihm import BiHM
from zoo.models.classifier import Classifier
from zoo.models.dbm import DBM
from zoo.models.helmholtz import HelmholtzMachine
from zoo.models.hybrid import HybridModel
from zoo.models.rbm import RBM

__all__ = ["RBM", "DBM", "HelmholtzMachine", "BiHM", "AuxiliaryDeepGenerativeModel", "HybridModel", "Classifier"]
