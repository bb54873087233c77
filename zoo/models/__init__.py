"""Keras models of the zoo."""
from zoo.models.rbm import RBM

__all__ = ["RBM"]
