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
    checked = checks.as_float_matrix(huge, dtype=np.float64)
    assert checked.dtype == np.float64 and checked.shape == (2, 2) and np.all(checked == 1e308)


def test_shapes_dtypes_and_binary():
    with pytest.raises(ValueError, match="2-D"):
        checks.as_float_matrix(np.zeros(3))
    with pytest.raises(ValueError, match="numeric"):
        checks.as_float_matrix(np.array([["a", "b"]]))
    with pytest.raises(ValueError, match="columns"):
        checks.as_float_matrix(np.zeros((2, 3)), width=4)
    with pytest.raises(ValueError, match="empty"):
        checks.as_float_matrix(np.zeros((0, 3)))
    converted = checks.as_float_matrix(np.array([[True, False], [False, True]]))
    assert converted.dtype == np.float32 and converted.tolist() == [[1.0, 0.0], [0.0, 1.0]]
    x = np.arange(6, dtype=np.float32).reshape(3, 2)
    assert checks.as_float_matrix(x, width=2) is x  # already right: no copy of a training array
    assert checks.as_float_matrix(np.zeros((0, 3)), allow_empty=True).shape == (0, 3)
    with pytest.raises(ValueError, match=r"2 entries are not \(e.g. 0.5\)"):
        checks.check_binary(np.array([[0.5, 1.0, 2.0]]))
    binary = np.array([[0.0, 1.0], [1.0, 1.0]])
    assert checks.check_binary(binary) is binary and checks.is_binary(binary)
    assert not checks.is_binary(np.array([0.0, 1.0, 1e-9]))


def test_scalar_and_label_checks_return_the_checked_value():
    labels = checks.check_labels(np.array([2, 0, -1], np.int32), 3, n_classes=3, unlabelled=-1)
    assert labels.dtype == np.int64 and labels.tolist() == [2, 0, -1]
    with pytest.raises(ValueError, match=r"class labels in \[0, 2\], got values in \[-1, 2\]"):
        checks.check_labels(np.array([2, 0, -1]), 3, n_classes=3)
    assert checks.check_positive_int(np.int64(3), "n") == 3 and type(checks.check_positive_int(np.int64(3), "n")) is int
    with pytest.raises(ValueError, match="n must be an integer >= 1, got True"):
        checks.check_positive_int(True, "n")
    assert checks.check_nonnegative("0.5", "lr") == 0.5 and checks.check_probability(1, "p", allow_one=True) == 1.0
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\), got 1"):
        checks.check_probability(1, "p")
    assert checks.check_choice("pcd", "method", ("cd", "pcd")) == "pcd"
