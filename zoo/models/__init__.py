"""Keras models of the zoo, one family a file; importing this package registers them all with Keras. The
families are listed once, in `zoo.families`; this package exports each family's class from it."""
from zoo import families as _families

for _family in _families.FAMILIES:
    globals()[_family.cls] = _family.load_class()

__all__ = [family.cls for family in _families.FAMILIES]
