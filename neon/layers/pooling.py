"""Min/max pooling over the last axis: the NEON pooling layers (THEORY.md section 4).

The forward is always the exact quantity of the explained model: a hard minimum (k-means) or a
log-sum-exp soft-minimum with the model's own stiffness (one-class SVM, KDE, SVC). How relevance
is redistributed over the pooled units is the business of the rule (:class:`neon.rules.SoftMin`),
not of the layer.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class ReduceMin(nn.Module):
    """``y = min_k h_k`` (``stiffness=None``) or ``y = -1/s log sum_k exp(-s h_k)`` over the last axis."""

    def __init__(self, stiffness: float | None = None):
        super().__init__()
        self.stiffness = None if stiffness is None else float(stiffness)

    def forward(self, h: Tensor) -> Tensor:
        if self.stiffness is None:
            return h.amin(dim=-1)
        return -torch.logsumexp(-self.stiffness * h, dim=-1) / self.stiffness

    def extra_repr(self) -> str:
        return "hard" if self.stiffness is None else f"stiffness={self.stiffness:g}"


class ReduceMax(nn.Module):
    """``y = max_k h_k`` (``stiffness=None``) or ``y = 1/s log sum_k exp(s h_k)`` over the last axis."""

    def __init__(self, stiffness: float | None = None):
        super().__init__()
        self.stiffness = None if stiffness is None else float(stiffness)

    def forward(self, h: Tensor) -> Tensor:
        if self.stiffness is None:
            return h.amax(dim=-1)
        return torch.logsumexp(self.stiffness * h, dim=-1) / self.stiffness

    def extra_repr(self) -> str:
        return "hard" if self.stiffness is None else f"stiffness={self.stiffness:g}"
