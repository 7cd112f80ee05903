"""Standardized copies of scikit-learn's embedded classification datasets, shared by the converter tests."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits, load_iris, load_wine


def standardized(loader: Callable, n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)`` of ``loader`` with zero-mean, unit-variance features (constant ones left as they are)."""
    X, y = loader(return_X_y=True)
    X = (X - X.mean(0)) / np.where(X.std(0) > 0, X.std(0), 1.0)
    return (X[:n], y[:n]) if n else (X, y)


def classification_sets(digits_rows: int) -> dict[str, Callable[[], tuple[np.ndarray, np.ndarray]]]:
    """iris, wine, breast_cancer and the first ``digits_rows`` digits, standardized, loaded on call."""
    return {
        "iris": lambda: standardized(load_iris),
        "wine": lambda: standardized(load_wine),
        "breast_cancer": lambda: standardized(load_breast_cancer),
        "digits": lambda: standardized(load_digits, digits_rows),
    }
