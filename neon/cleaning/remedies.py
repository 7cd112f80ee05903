"""Remedies for what :func:`neon.cleaning.find_artifacts` flagged: mask the artifact, or drop the samples.

Both return new data in the library it came in (numpy, torch, pandas); the inputs are never modified.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .report import ArtifactCluster, ArtifactReport

__all__ = ["drop_samples", "mask_features"]


def _as_array(X: Any) -> np.ndarray:
    if hasattr(X, "detach"):
        return X.detach().cpu().numpy()
    if hasattr(X, "to_numpy"):
        return X.to_numpy()
    return np.asarray(X)


def _restore(arr: np.ndarray, like: Any) -> Any:
    if hasattr(like, "detach"):
        import torch

        return torch.as_tensor(arr, dtype=like.dtype, device=like.device)
    if hasattr(like, "iloc"):
        out = like.copy()
        out.iloc[:, :] = arr.astype(like.to_numpy().dtype, copy=False) if arr.ndim == 2 else arr
        return out
    return arr


def _input_mask(feature_index: np.ndarray, map_shape: tuple[int, ...], sample_shape: tuple[int, ...]) -> np.ndarray:
    """The input elements of one sample that the map features ``feature_index`` stand for.

    Maps of images are summed over channels: a map pixel ``(h, w)`` stands for ``(c, h, w)`` in every channel.
    """
    flat = np.zeros(int(np.prod(map_shape)), dtype=bool)
    flat[feature_index] = True
    m = flat.reshape(map_shape)
    if tuple(sample_shape) == tuple(map_shape):
        return m
    if len(sample_shape) == 1 and sample_shape[0] == flat.size:  # images read from flat rows (image_shape=)
        return flat
    if len(sample_shape) == len(map_shape) + 1 and tuple(sample_shape[1:]) == tuple(map_shape):
        return np.broadcast_to(m, sample_shape)
    raise ValueError(f"X has per-sample shape {sample_shape}, but the report's relevance maps have shape "
                     f"{map_shape}: pass the X the report was made from.")


def mask_features(X: Any, report: ArtifactReport, *, value: Any = "median",
                  clusters: list[ArtifactCluster] | None = None) -> Any:
    """A copy of ``X`` with the artifact removed: in the samples of every suspicious cluster, the features that
    cluster relies on (:attr:`ArtifactCluster.features`) are replaced.

    Parameters
    ----------
    X
        The data the report was made from (``len(X) == report.n_samples``).
    report
        The result of :func:`~neon.cleaning.find_artifacts`.
    value
        ``"median"``: each masked element gets the median of that element over the samples that were not
        flagged (the background of images, a typical value of a column); ``"mean"`` likewise; or a number.
    clusters
        The clusters to mask; ``None`` for ``report.suspicious``.

    Returns
    -------
    The masked copy, in ``X``'s library and dtype.
    """
    arr = _as_array(X)
    if len(arr) != report.n_samples:
        raise ValueError(f"X has {len(arr)} samples, but the report was made from {report.n_samples}.")
    out = np.array(arr, copy=True)
    keep = np.ones(len(arr), dtype=bool)
    keep[report.flagged] = False
    if isinstance(value, str):
        if value not in ("median", "mean"):
            raise ValueError(f"value={value!r}; use 'median', 'mean' or a number.")
        base = arr[keep] if keep.any() else arr
        fill = np.median(base, 0) if value == "median" else base.mean(0)
    else:
        fill = np.broadcast_to(np.asarray(value, dtype=out.dtype), arr.shape[1:])
    for c in report.suspicious if clusters is None else clusters:
        m = _input_mask(c.feature_index, report.map_shape, arr.shape[1:])
        rows = out[c.indices]
        rows[:, m] = fill[m]
        out[c.indices] = rows
    return _restore(out, X)


def drop_samples(X: Any, y: Any, report: ArtifactReport) -> tuple[Any, Any]:
    """``(X, y)`` without the flagged samples (``y`` may be ``None``), in their own libraries.

    Raises ``ValueError`` when ``X`` or ``y`` does not have the report's number of samples.
    """
    n = len(X) if not hasattr(X, "shape") else int(X.shape[0])
    if n != report.n_samples:
        raise ValueError(f"X has {n} samples, but the report was made from {report.n_samples}.")
    if y is not None and len(y) != n:
        raise ValueError(f"y has {len(y)} labels for {n} samples.")
    keep = np.ones(n, dtype=bool)
    keep[report.flagged] = False
    idx = np.flatnonzero(keep)

    def take(a: Any) -> Any:
        if a is None:
            return None
        if hasattr(a, "iloc"):
            return a.iloc[idx]
        if hasattr(a, "detach"):
            import torch

            return a[torch.as_tensor(idx, device=a.device)]
        return np.asarray(a)[idx]

    return take(X), take(y)
