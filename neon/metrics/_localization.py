"""Localization: does the relevance fall on the features known to matter?"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..explanation import Explanation
from ._common import MetricResult, to_numpy


def localization(expl: Any, mask: Any, k: int | None = None) -> MetricResult:
    """Relevance mass inside a ground-truth mask, and the top-k hit rate (Kohlbrenner et al., IJCNN 2020).

    * mass accuracy (``scores``): ``sum_{i in mask} (R_i)+ / sum_i (R_i)+`` per sample;
    * rank accuracy (``details["top_k"]``): the share of the ``k`` most relevant features that lie
      in the mask, ``k`` = the size of each sample's mask unless given.

    Chance level is the mask's share of the features (``details["chance"]``).

    **Direction**: higher is better (1 = all positive relevance inside the mask).

    Parameters
    ----------
    expl
        A :class:`neon.Explanation` or an array of relevance ``(n, ...)``.
    mask
        Boolean (or 0/1) ground truth of the shape of the relevance, or of one sample (shared by all).
    k
        Features counted by the top-k hit rate; default the number of mask features of each sample.
    """
    rel = to_numpy(expl.relevance if isinstance(expl, Explanation) else expl).astype(np.float64)
    m = to_numpy(mask)
    if rel.ndim < 2:
        raise ValueError(f"localization needs relevance of shape (n_samples, ...); got shape {rel.shape}.")
    if m.shape == rel.shape[1:]:
        m = np.broadcast_to(m, rel.shape)
    if m.shape != rel.shape:
        raise ValueError(f"mask has shape {m.shape}; it must have the relevance's shape {rel.shape} or one "
                         f"sample's shape {rel.shape[1:]}.")
    if m.dtype != bool:
        if not np.isin(m, (0, 1)).all():
            raise ValueError("mask must be boolean or hold only 0 and 1.")
        m = m.astype(bool)
    n = len(rel)
    flat, mflat = rel.reshape(n, -1), m.reshape(n, -1)
    size = mflat.sum(1)
    if n and (size == 0).any():
        raise ValueError(f"the mask is empty for samples {np.flatnonzero(size == 0)[:10].tolist()}; localization "
                         "needs at least one ground-truth feature per sample.")
    pos = np.maximum(flat, 0)
    total = pos.sum(1)
    inside = (pos * mflat).sum(1)
    mass = np.divide(inside, total, out=np.zeros_like(total), where=total > 0)
    d = flat.shape[1]
    kk = size if k is None else np.full(n, int(k))
    if k is not None and not 1 <= k <= d:
        raise ValueError(f"k must be between 1 and the number of features ({d}); got {k}.")
    # Rank every feature once (stable: ties go to the lower index), then count hits below each sample's k.
    order = np.argsort(-flat, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(d)[None].repeat(n, 0), axis=1)
    top = ranks < kk[:, None]
    hits = (top & mflat).sum(1) / np.maximum(kk, 1)
    return MetricResult(name="localization", scores=mass, higher_is_better=True,
                        details={"top_k": hits, "k": kk, "chance": size / d})
