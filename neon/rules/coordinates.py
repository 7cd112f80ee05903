"""The root-point rule of a change of coordinates (:class:`~neon.layers.coordinates.AffineProjection`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch.nn.functional as F
from torch import Tensor

from .._numeric import safe_divide
from ..layers.coordinates import AffineProjection
from .base import Context, Rule


class RootPoint(Rule):
    """Deep-Taylor root-point rule of an :class:`AffineProjection` ``u = M x + c`` with root ``M x0 + c = 0``.

    ``R_i = sum_j (x_i - x0_i) M_ji / sum_i' (x_i' - x0_i') M_ji' R_j`` (Montavon et al., "Explaining
    nonlinear classification decisions with deep Taylor decomposition", Pattern Recognit. 2017).
    Exactly conservative; a component with ``u_j = 0`` passes nothing (``0 / 0 := 0``).
    """

    name = "root point"

    def supports(self, op: Any) -> bool:
        return isinstance(op, AffineProjection)

    def relevance(self, op: Any, inputs: Sequence[Tensor], output: Tensor, R: Tensor,
                  ctx: Context) -> tuple[Tensor | None, ...]:
        (x,) = inputs
        d = x - op.root
        s = safe_divide(R, F.linear(d, op.weight), 0.0)
        return (d * (s @ op.weight),)
