"""Input checks shared by the detector, the CLI and the data loaders."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

_RANK_NAMES = {2: "(N, features)", 4: "(N, C, H, W)", 5: "(N, C, T, H, W)"}


def dense_array(X: Any, name: str = "X") -> np.ndarray:
    """``X`` (numpy array, torch tensor or nested sequence) as a numpy array of any dtype;
    ``TypeError`` for scipy sparse input, ``ValueError`` for ragged rows."""
    if hasattr(X, "detach") and hasattr(X, "cpu"):  # a torch tensor, without importing torch
        X = X.detach().cpu().numpy()
    if type(X).__module__.startswith("scipy.sparse"):
        raise TypeError(
            f"{name} is a scipy sparse {type(X).__name__}; sparse input is not supported: "
            "pass a dense array (X.toarray())"
        )
    try:
        return np.asarray(X)
    except ValueError as err:
        raise ValueError(f"{name} must be a rectangular array, got ragged input: {err}") from err


def as_float_array(X: Any, name: str = "X") -> np.ndarray:
    """``X`` (numpy array, torch tensor or nested sequence) as a finite float32 array.

    Raises ``TypeError`` for non-numeric input and ``ValueError`` for an empty array, a rank
    other than 2, 4 or 5, or NaN/inf values.
    """
    array = dense_array(X, name)
    if array.dtype == object:  # numbers held as Python objects convert; anything else is named
        try:
            array = array.astype(np.float64)
        except (TypeError, ValueError) as err:
            raise TypeError(f"{name} must hold numbers, got dtype object ({err})") from err
    if np.iscomplexobj(array):
        raise ValueError(
            f"{name} must hold real numbers, got dtype {array.dtype}: Complex data not supported"
        )
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise TypeError(f"{name} must hold numbers, got dtype {array.dtype}")
    if array.ndim not in _RANK_NAMES:
        hint = (
            ". Reshape your data: X.reshape(-1, 1) for one feature, X.reshape(1, -1) for one sample"
            if array.ndim == 1
            else ""
        )
        raise ValueError(
            f"{name} must be 2-D {_RANK_NAMES[2]}, 4-D {_RANK_NAMES[4]} or 5-D {_RANK_NAMES[5]}, "
            f"got {array.ndim}-D shape {array.shape}{hint}"
        )
    if array.shape[0] == 0:
        raise ValueError(f"{name} is empty: got shape {array.shape}, expected at least one sample")
    if array.ndim == 2 and array.shape[1] == 0:
        raise ValueError(f"{name} has 0 feature(s) (shape={array.shape}) while a minimum of 1 is required.")
    if 0 in array.shape[1:]:
        raise ValueError(f"{name} has a zero-sized sample dimension: shape {array.shape}")
    if not np.isfinite(array).all():
        bad = int(array.size - np.isfinite(array).sum())
        raise ValueError(f"{name} contains {bad} NaN or infinite value(s); expected finite numbers")
    with np.errstate(over="ignore"):
        converted = array.astype(np.float32, copy=False)
    if not np.isfinite(converted).all():
        bad = int(converted.size - np.isfinite(converted).sum())
        raise ValueError(
            f"{name} has {bad} value(s) beyond the float32 range (|x| > 3.4e38) that memae computes in"
        )
    return converted


def check_sample_shape(array: np.ndarray, expected: Sequence[int], name: str = "X") -> None:
    """Raise if the samples of ``array`` are not of the shape the model was fitted on."""
    expected = tuple(expected)
    if tuple(array.shape[1:]) != expected:
        if len(expected) == 1 and array.ndim == 2:
            raise ValueError(
                f"{name} has {array.shape[1]} features, "
                f"but MemAEDetector is expecting {expected[0]} features as input"
            )
        raise ValueError(f"expected {name} of shape (N, {', '.join(map(str, expected))}), got {array.shape}")
