"""Min/max pooling over the last axis: the NEON pooling layers (``docs/theory.md``, "Soft-min pooling").

The forward is always the exact quantity of the explained model: a hard minimum (k-means) or a
log-sum-exp soft-minimum with the model's own stiffness (one-class SVM, KDE, SVC). How relevance
is redistributed over the pooled units is the business of the rule (:class:`neon.rules.SoftMin`),
not of the layer.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class Reduce(nn.Module):
    """``y = sign * max_k (sign * h_k)`` (hard) or ``y = (1 / (sign s)) log sum_k exp(sign s h_k)`` over the last axis.

    One layer for both extremes: ``sign = -1`` is the minimum (:class:`ReduceMin`), ``sign = +1`` the
    maximum (:class:`ReduceMax`).

    Parameters
    ----------
    sign
        ``-1`` (min) or ``+1`` (max).
    stiffness
        ``None`` for the hard extreme; ``s > 0`` for the log-sum-exp (soft) extreme of stiffness ``s``.
    """

    def __init__(self, sign: float, stiffness: float | None = None):
        super().__init__()
        if sign not in (-1, 1):
            raise ValueError(f"Reduce(sign={sign}): use -1 (min) or +1 (max).")
        if stiffness is not None and not float(stiffness) > 0:
            raise ValueError(f"Reduce needs stiffness > 0 (or None for the hard extreme), got {stiffness}.")
        self.sign = float(sign)
        self.stiffness = None if stiffness is None else float(stiffness)

    def forward(self, h: Tensor) -> Tensor:
        if self.stiffness is None:
            return h.amax(dim=-1) if self.sign > 0 else h.amin(dim=-1)
        s = self.sign * self.stiffness
        return torch.logsumexp(s * h, dim=-1) / s

    def extra_repr(self) -> str:
        return "hard" if self.stiffness is None else f"stiffness={self.stiffness:g}"


class ReduceMin(Reduce):
    """``y = min_k h_k`` (``stiffness=None``) or ``y = -1/s log sum_k exp(-s h_k)`` over the last axis."""

    def __init__(self, stiffness: float | None = None):
        super().__init__(-1, stiffness)


class ReduceMax(Reduce):
    """``y = max_k h_k`` (``stiffness=None``) or ``y = 1/s log sum_k exp(s h_k)`` over the last axis."""

    def __init__(self, stiffness: float | None = None):
        super().__init__(1, stiffness)


def max_pool_indices(x: Tensor, kernel_size: Any, stride: Any, padding: Any, dilation: Any, ceil_mode: bool) -> Tensor:
    """The winners' indices of a 1-D or 2-D max pool (what ``return_indices=True`` adds to its values).

    An integer-valued node of a network: it carries no relevance.
    """
    pool = F.max_pool1d if x.dim() == 3 else F.max_pool2d
    return pool(x, kernel_size, stride, padding, dilation, ceil_mode=ceil_mode, return_indices=True)[1]
