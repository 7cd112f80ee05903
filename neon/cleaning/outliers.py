"""Corrupted cells of tabular records: explain an outlier score and read off which cells make a record anomalous.

An outlier score that neon explains exactly (docs/theory.md §4, §6) splits over the cells of a record: for a
one-class SVM or a Gaussian KDE by the NEON distance rule, for a k-means model by the squared deviation from
the centroids. A record that is anomalous because one cell is corrupted (an extreme value, a value typed into
the wrong column) puts most of its score on that cell.

Explaining the *training points* of a KDE or one-class SVM with the model's own score lets each point's own
kernel term (its support vector, its KDE term) hold part of the score; that term has no feature differences to
give relevance to and is reported as absorbed. :func:`find_outlier_cells` explains the **leave-one-out score**
instead (``leave_one_out=True``, the default): every point that coincides with the record is left out of the
sum, so the explanation of an in-sample record is that of its distance to the *other* points, fully conservative.
For a record that is none of the model's points the two scores are equal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..explainer import Explainer
from ..explanation import Explanation

__all__ = ["OutlierCells", "find_outlier_cells"]


def _final(model: Any) -> Any:
    steps = getattr(model, "steps", None)
    return steps[-1][1] if isinstance(steps, list) and steps else model


@dataclass(repr=False)
class OutlierCells:
    """The cells that make each record anomalous (the result of :func:`find_outlier_cells`).

    Attributes
    ----------
    scores
        ``(n,)`` the explained outlier score of every record (leave-one-out where asked for).
    relevance
        ``(n, d)`` each cell's share of it; rows add up to ``scores - absorbed``.
    absorbed
        ``(n,)`` what no cell received (zero for the leave-one-out score).
    ranking
        ``(n, d)`` cell indices of every record, most relevant first.
    feature_names
        Column names, where known.
    leave_one_out
        Whether the leave-one-out score was explained.
    explanation
        The underlying :class:`neon.Explanation`.
    """

    scores: np.ndarray
    relevance: np.ndarray
    absorbed: np.ndarray
    ranking: np.ndarray
    feature_names: list[str] | None
    leave_one_out: bool
    explanation: Explanation

    def top(self, k: int = 1) -> np.ndarray:
        """``(n, k)``: the ``k`` most relevant cells of every record."""
        return self.ranking[:, :k]

    def most_anomalous(self, count: int | None = None, fraction: float | None = None) -> np.ndarray:
        """Indices of the ``count`` records with the highest score (or the top ``fraction`` of them), highest first."""
        if (count is None) == (fraction is None):
            raise ValueError("give exactly one of count= and fraction=.")
        if count is None:
            assert fraction is not None
            if not 0 < fraction <= 1:
                raise ValueError(f"fraction={fraction!r}; use a number in (0, 1].")
            count = max(1, int(round(fraction * len(self.scores))))
        return np.argsort(-self.scores, kind="stable")[:count]

    def repair(self, X: Any, rows: Any, *, k: int = 1, value: Any = "median") -> Any:
        """A copy of ``X`` with the ``k`` most relevant cells of each record in ``rows`` replaced.

        ``value``: ``"median"`` (the column's median over the records not repaired), ``"mean"``, or a number.
        ``X`` (numpy or pandas) is not modified.
        """
        rows = np.asarray(rows, dtype=np.int64)
        arr = X.to_numpy(dtype=np.float64) if hasattr(X, "to_numpy") else np.asarray(X, dtype=np.float64)
        if arr.shape != self.relevance.shape:
            raise ValueError(f"X has shape {arr.shape}, but the cells were found in data of shape "
                             f"{self.relevance.shape}.")
        others = np.ones(len(arr), dtype=bool)
        others[rows] = False
        base = arr[others] if others.any() else arr
        if isinstance(value, str):
            if value not in ("median", "mean"):
                raise ValueError(f"value={value!r}; use 'median', 'mean' or a number.")
            fill = np.median(base, 0) if value == "median" else base.mean(0)
        else:
            fill = np.full(arr.shape[1], float(value))
        out = arr.copy()
        cols = self.ranking[rows, :k]
        out[rows[:, None], cols] = fill[cols]
        if hasattr(X, "iloc"):
            df = X.copy()
            df.iloc[:, :] = out
            return df
        return out

    def to_frame(self, rows: Any = None, k: int = 3) -> Any:
        """A pandas DataFrame: one row per record (of ``rows``, default all) with its score and its ``k`` most
        relevant cells and their shares of the score."""
        import pandas as pd

        rows = np.arange(len(self.scores)) if rows is None else np.asarray(rows, dtype=np.int64)
        names = self.feature_names or [f"x{j}" for j in range(self.relevance.shape[1])]
        data: dict[str, Any] = {"record": rows, "score": self.scores[rows]}
        for j in range(k):
            cells = self.ranking[rows, j]
            data[f"cell {j + 1}"] = [names[c] for c in cells]
            share = self.relevance[rows, cells] / np.where(self.scores[rows] != 0, self.scores[rows], 1.0)
            data[f"share {j + 1}"] = share
        return pd.DataFrame(data)

    def __repr__(self) -> str:
        kind = "leave-one-out " if self.leave_one_out else ""
        return (f"OutlierCells({len(self.scores)} records, {self.relevance.shape[1]} cells, {kind}outlier score "
                f"{self.explanation.output_kind!r})")


def find_outlier_cells(model: Any, X: Any, *, leave_one_out: bool = True) -> OutlierCells:
    """Explain the outlier score of every record of ``X`` and rank its cells.

    Parameters
    ----------
    model
        A fitted ``OneClassSVM`` (RBF), ``KernelDensity`` (Gaussian), a pipeline of per-feature scalers ending in
        one of them, or a ``KMeans`` (its distance to the nearest centroid). Not modified.
    X
        The records, ``(n, d)`` (numpy or pandas). Not modified.
    leave_one_out
        For the one-class SVM and the KDE: explain the leave-one-out score (docs/theory.md §6), in which the
        points a record coincides with are left out, so that records the model was fitted on are explained
        conservatively (nothing absorbed). It equals the full score for records that are none of the model's
        points. ``False``: the model's own score. (k-means: no effect.)

    Returns
    -------
    OutlierCells
    """
    from sklearn.cluster import KMeans, MiniBatchKMeans
    from sklearn.neighbors import KernelDensity
    from sklearn.svm import OneClassSVM

    final = _final(model)
    if type(final) in (KMeans, MiniBatchKMeans):
        if final is not model:
            raise ValueError("find_outlier_cells explains a bare KMeans (its distance to the nearest centroid); put "
                             "the scaling into the data (or use a OneClassSVM / KernelDensity pipeline).")
        from ..converters.kmeans import kmeans_distance_network  # scikit-learn only when it is used

        explainer = Explainer(kmeans_distance_network(model))
        loo = False
    elif type(final) in (OneClassSVM, KernelDensity):
        explainer = Explainer(model, leave_one_out=bool(leave_one_out))
        loo = bool(leave_one_out)
    else:
        raise ValueError(f"find_outlier_cells explains one-class models: OneClassSVM (rbf), KernelDensity "
                         f"(gaussian), KMeans, or a pipeline of scalers ending in the first two; got "
                         f"{type(final).__name__}.")
    expl = explainer.fit(X).explain(X)

    def arr(v: Any) -> np.ndarray:
        return np.asarray(v.detach().cpu().numpy() if hasattr(v, "detach") else v, dtype=np.float64)

    rel = arr(expl.relevance)
    ranking = np.argsort(-rel, axis=1, kind="stable")
    return OutlierCells(scores=arr(expl.output), relevance=rel, absorbed=arr(expl.absorbed), ranking=ranking,
                        feature_names=expl.feature_names, leave_one_out=loo, explanation=expl)

