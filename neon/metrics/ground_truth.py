"""Ground truth: how much of the relevance lands on the object that decides the label?

The two metrics of CLEVR-XAI (Arras, Osman & Samek, "CLEVR-XAI: a benchmark dataset for the ground
truth evaluation of neural network explanations", Information Fusion 2022), for images whose
deciding pixels are known (e.g. :func:`neon.datasets.make_scenes`). Both first pool the relevance
of a pixel's channels into one non-negative value ``P_p`` (the paper's pooling functions,
:data:`POOLINGS`), then compare the pooled heatmap with the ground-truth mask ``GT``
(docs/theory.md §5):

* relevance mass accuracy: ``sum_{p in GT} P_p / sum_p P_p``;
* relevance rank accuracy: ``|top_K(P) ∩ GT| / K`` with ``K = |GT|``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..explanation import Explanation
from ._common import MetricResult, to_numpy

#: Channel poolings of Arras et al. 2022 (their evaluation code's names): each maps a pixel's
#: channel relevances ``R_c`` to one non-negative value.
POOLINGS: dict[str, str] = {
    "sum,pos": "max(0, sum_c R_c): the pixel's net evidence for the class, counter-evidence as zero",
    "sum,abs": "|sum_c R_c|",
    "max-norm": "max_c |R_c|",
    "l1-norm": "sum_c |R_c|",
    "l2-norm": "sqrt(sum_c R_c^2)",
    "l2-norm,sq": "sum_c R_c^2",
}


def pool_channels(relevance: Any, pooling: str = "sum,pos", channel_axis: int | None = 1) -> np.ndarray:
    """One non-negative value per pixel: the channel relevances pooled as in Arras et al. 2022.

    Parameters
    ----------
    relevance
        ``(n, C, H, W)`` relevance (or any ``(n, ...)`` array with a channel axis).
    pooling
        One of :data:`POOLINGS`.
    channel_axis
        The axis pooled over; ``None`` for relevance without channels (the pooling then acts on
        each value alone: ``"sum,pos"`` keeps the positive part, the norms take the magnitude).
    """
    if pooling not in POOLINGS:
        raise ValueError(f"pooling={pooling!r}; use one of {list(POOLINGS)}.")
    r = to_numpy(relevance).astype(np.float64)
    if channel_axis is None:
        r = r[:, None]
        channel_axis = 1
    if pooling == "sum,pos":
        return np.maximum(r.sum(channel_axis), 0.0)
    if pooling == "sum,abs":
        return np.abs(r.sum(channel_axis))
    if pooling == "max-norm":
        return np.abs(r).max(channel_axis)
    if pooling == "l1-norm":
        return np.abs(r).sum(channel_axis)
    if pooling == "l2-norm":
        return np.sqrt((r * r).sum(channel_axis))
    return (r * r).sum(channel_axis)


def _pooled_and_mask(expl: Any, mask: Any, pooling: str) -> tuple[np.ndarray, np.ndarray]:
    """The pooled heatmaps ``(n, d)`` and boolean masks ``(n, d)``, after checking their shapes."""
    rel = to_numpy(expl.relevance if isinstance(expl, Explanation) else expl)
    m = to_numpy(mask)
    if rel.ndim < 2:
        raise ValueError(f"relevance must have shape (n_samples, ...); got shape {rel.shape}.")
    n = len(rel)
    if m.shape in (rel.shape, rel.shape[1:]):
        pooled = pool_channels(rel, pooling, channel_axis=None)
    elif rel.ndim >= 3 and m.shape in (rel.shape[:1] + rel.shape[2:], rel.shape[2:]):
        pooled = pool_channels(rel, pooling, channel_axis=1)
    else:
        raise ValueError(f"mask has shape {m.shape}; for relevance of shape {rel.shape} it must have the "
                         f"relevance's shape, its shape without the channel axis {rel.shape[:1] + rel.shape[2:]}, "
                         "or one sample's shape (shared by all samples).")
    if m.dtype != bool:
        if not np.isin(m, (0, 1)).all():
            raise ValueError("mask must be boolean or hold only 0 and 1.")
        m = m.astype(bool)
    m = np.broadcast_to(m, pooled.shape).reshape(n, -1)
    size = m.sum(1)
    if n and (size == 0).any():
        raise ValueError(f"the mask is empty for samples {np.flatnonzero(size == 0)[:10].tolist()}; the ground truth "
                         "needs at least one pixel per sample.")
    return pooled.reshape(n, -1), m


def relevance_mass_accuracy(expl: Any, mask: Any, pooling: str = "sum,pos") -> MetricResult:
    """Share of the pooled relevance inside the ground truth (Arras, Osman & Samek, Inf. Fusion 2022).

    ``mass = sum_{p in GT} P_p / sum_p P_p``, with ``P_p`` the pixel's pooled relevance
    (:func:`pool_channels`). A sample whose pooled relevance is zero everywhere scores 0.

    **Direction**: higher is better (1: all relevance on the deciding object).

    Parameters
    ----------
    expl
        A :class:`neon.Explanation` or an array of relevance ``(n, C, H, W)`` (or ``(n, ...)``).
    mask
        Boolean (or 0/1) ground truth: ``(n, H, W)`` for relevance with channels, the relevance's own
        shape, or one sample's shape (shared by all samples).
    pooling
        How a pixel's channels are pooled; one of :data:`POOLINGS`. ``"sum,pos"`` (default) counts a
        pixel's net evidence for the explained class.

    Returns
    -------
    MetricResult
        ``scores`` per sample; ``details["chance"]``: the mask's share of the pixels (the score of
        relevance spread evenly); ``details["pooling"]``.
    """
    pooled, m = _pooled_and_mask(expl, mask, pooling)
    total = pooled.sum(1)
    inside = (pooled * m).sum(1)
    mass = np.divide(inside, total, out=np.zeros_like(total), where=total > 0)
    return MetricResult(name="relevance_mass_accuracy", scores=mass, higher_is_better=True,
                        details={"chance": m.mean(1), "pooling": pooling})


def relevance_rank_accuracy(expl: Any, mask: Any, pooling: str = "sum,pos") -> MetricResult:
    """Share of the ``K`` most relevant pixels that lie in the ground truth, ``K = |GT|`` (Arras et al. 2022).

    ``rank = |{p in top_K(P)} ∩ GT| / K``, with ``P`` the pooled relevance (:func:`pool_channels`).
    Ties in ``P`` are broken by pixel index (lower first), so zero relevance never counts as a hit
    unless the ranking reaches it.

    **Direction**: higher is better (1: the ``K`` top pixels are exactly the object).

    Parameters are those of :func:`relevance_mass_accuracy`. ``details["chance"]`` is the mask's
    share of the pixels (the expected score of a random ranking).
    """
    pooled, m = _pooled_and_mask(expl, mask, pooling)
    n, d = pooled.shape
    k = m.sum(1)
    order = np.argsort(-pooled, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.broadcast_to(np.arange(d), (n, d)), axis=1)
    hits = ((ranks < k[:, None]) & m).sum(1) / k
    return MetricResult(name="relevance_rank_accuracy", scores=hits.astype(np.float64), higher_is_better=True,
                        details={"chance": m.mean(1), "k": k, "pooling": pooling})


__all__ = ["POOLINGS", "pool_channels", "relevance_mass_accuracy", "relevance_rank_accuracy"]
