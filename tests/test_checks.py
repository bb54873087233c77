"""Input checks at the boundary."""
import numpy as np
import pytest

from zoo import checks


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_are_found(bad):
    x = np.zeros((3, 4), np.float32)
    x[2, 1] = bad
    with pytest.raises(ValueError, match="1 NaN or infinite"):
        checks.as_float_matrix(x)


def test_opposite_infinities_and_huge_finite_values():
    x = np.zeros((2, 2), np.float32)
    x[0, 0], x[1, 1] = np.inf, -np.inf  # their sum is NaN, still caught
    with pytest.raises(ValueError, match="2 NaN or infinite"):
        checks.as_float_matrix(x)
    huge = np.full((2, 2), 1e308)  # float64 whose sum overflows, but every value is finite
    assert checks.as_float_matrix(huge, dtype=np.float64) is not None


def test_shapes_dtypes_and_binary():
    with pytest.raises(ValueError, match="2-D"):
        checks.as_float_matrix(np.zeros(3))
    with pytest.raises(ValueError, match="numeric"):
        checks.as_float_matrix(np.array([["a", "b"]]))
    with pytest.raises(ValueError, match="columns"):
        checks.as_float_matrix(np.zeros((2, 3)), width=4)
    with pytest.raises(ValueError, match="empty"):
        checks.as_float_matrix(np.zeros((0, 3)))
    assert checks.as_float_matrix(np.ones((2, 2), bool)).dtype == np.float32
    with pytest.raises(ValueError, match=r"2 entries are not \(e.g. 0.5\)"):
        checks.check_binary(np.array([[0.5, 1.0, 2.0]]))
