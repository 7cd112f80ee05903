"""Rules for pooling layers: max pooling (winner takes all) and the NEON soft-min/soft-max pools."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.utils import _pair

from .._numeric import is_channels_last
from ..exceptions import RuleError
from ..layers.distance import CentroidContrast
from ..layers.pooling import Reduce
from .base import Context, Fused, Rule, SingleColumn, SingleRow, vjp
from .distance import Midpoint, MidpointSoftMin


class WinnerTakesAll(Rule):
    """Max pooling: all relevance of a pooled unit goes to the input that won the max.

    For ``nn.MaxPool2d`` the winners are kept from the forward pass (:meth:`record`) and relevance is
    routed by their indices: recomputing the pool with autograd costs about six times as much.
    """

    name = "winner-takes-all"
    routes = True
    records_forward = True

    def record(self, op: Any, inputs: Sequence[Tensor]) -> tuple[Tensor, Any] | None:
        if type(op) is not nn.MaxPool2d or len(inputs) != 1:
            return None
        return F.max_pool2d(inputs[0], op.kernel_size, op.stride, op.padding, op.dilation,
                            ceil_mode=op.ceil_mode, return_indices=True)

    def relevance(self, op, inputs, output, R, ctx):
        if ctx.forward_state is not None:
            (a,) = inputs
            stride = op.stride if op.stride is not None else op.kernel_size
            layout = torch.channels_last if is_channels_last(a) else torch.contiguous_format
            return (torch.ops.aten.max_pool2d_with_indices_backward(
                R.contiguous(memory_format=layout), a, _pair(op.kernel_size), _pair(stride), _pair(op.padding),
                _pair(op.dilation), op.ceil_mode, ctx.forward_state),)
        return vjp(op, inputs, R)


def single_column(R: Tensor, ctx: Context) -> Tensor | None:
    """The column of each sample that holds all of ``R`` (``n x K``), or ``None`` if ``R`` is spread wider.

    Known without looking at the data from the engine's :class:`~neon.rules.base.SingleColumn` hint, or when
    ``R`` has one column. Otherwise ``R`` is compared with its own target column (a pass over ``R`` and, on
    a GPU, a host synchronisation).
    """
    hint = ctx.hint
    if isinstance(hint, SingleColumn) and hint.relevance is R:
        return hint.columns
    if R.shape[1] == 1:
        return torch.zeros(R.shape[0], dtype=torch.long, device=R.device)
    t = ctx.target
    if t is None or t.dim() != 1 or len(t) != R.shape[0] or R.shape[1] == 0:
        return None
    t = t.view(-1, 1)  # targets are validated upstream; an index out of range makes gather raise
    only = torch.zeros_like(R).scatter_(1, t, R.gather(1, t))
    return t.view(-1) if torch.equal(only, R) else None


class SoftMin(Rule):
    """Soft-min redistribution over the last axis: ``R_k = exp(-beta h_k) / sum_k' exp(-beta h_k') R_out``.

    The NEON pooling rule (Kauffmann et al., TNNLS 2022 and Pattern Recognit. 2020). It shapes
    the backward pass only; the forward stays the model's exact (hard or soft) minimum. Exactly
    conservative. ``beta -> inf``: the nearest competitor takes all; ``beta = 0``: uniform.
    When the pooled relevance sits only in each sample's target column (a pool at the network's
    top), only that row is computed and a :class:`~neon.rules.base.SingleRow` hint lets the rule below
    skip the zero rows (the k-means midpoint rule uses it); results are those of the general formula.
    A hard minimum over k-means contrast units with the midpoint rule below runs as one fused step
    (:class:`~neon.rules.distance.MidpointSoftMin`): the ``n x K x (K - 1)`` units are never built.

    Parameters
    ----------
    beta
        A number; ``None`` for the layer's own stiffness; ``"auto"`` for ``1 / mean(y)`` over the
        fit data, ``y`` the pooled value of each sample's target (the k-means default).
    """

    name = "soft-min"
    _sign = -1.0

    def __init__(self, beta: float | str | None = None):
        if isinstance(beta, str) and beta != "auto":
            raise RuleError(f"{type(self).__name__}(beta={beta!r}): use a number, None or 'auto'.")
        if isinstance(beta, (int, float)) and beta < 0:
            raise RuleError(f"{type(self).__name__} needs beta >= 0, got {beta}.")
        self.beta = beta

    def _params(self) -> dict[str, Any]:
        return {"beta": self.beta}

    def supports(self, op: Any) -> bool:
        return isinstance(op, Reduce) and op.sign == self._sign

    @property
    def needs_fit(self) -> bool:
        return self.beta == "auto"

    def fuse(self, op: Any, below: Any, below_rule: Rule) -> Fused | None:
        if self._sign < 0 and self.supports(op) and op.stiffness is None and isinstance(below, CentroidContrast) \
                and type(below_rule) is Midpoint:
            return MidpointSoftMin(op, self, below, below_rule)
        return None

    def fit(self, op: Any, inputs: Sequence[Tensor], output: Tensor, ctx: Context) -> Rule:
        if self.beta != "auto":
            return self
        y = output
        if y.dim() == 2 and ctx.target is not None and y.shape[1] > 1:
            y = y.gather(1, ctx.target.view(-1, 1))
        scale = y.abs().mean().item() if y.numel() else 0.0
        return self._replace(beta=1.0 / scale if scale > 0 else 1.0)

    def _stiffness(self, op: Any) -> float:
        if self.beta is None:
            if getattr(op, "stiffness", None) is None:
                raise RuleError(
                    f"{type(self).__name__}(beta=None) uses the layer's stiffness, but this pool is a hard "
                    "min/max: give beta a number or 'auto'."
                )
            return op.stiffness
        if self.beta == "auto":
            raise RuleError(f"{type(self).__name__}(beta='auto') must be fitted on data first (Explainer.fit).")
        return float(self.beta)

    def relevance(self, op, inputs, output, R, ctx):
        (h,) = inputs
        stiffness = self._stiffness(op)
        rows = single_column(R, ctx) if h.dim() == 3 and R.dim() == 2 else None
        if rows is not None:
            return (self._one_row(op, h, output, R, rows, stiffness, ctx),)
        weights = torch.softmax(self._sign * stiffness * h, dim=-1)
        return (weights * R.unsqueeze(-1),)

    def _one_row(self, op, h: Tensor, output: Tensor, R: Tensor, rows: Tensor, stiffness: float,
                 ctx: Context) -> Tensor:
        """Only the explained column carries relevance (the usual case at the network's top): the
        soft-min runs over that row of units only; every other row gets zeros."""
        n, k, j = h.shape
        if k == 1:  # one row (an outlier score): it is all of h
            flat, h_row = None, h.reshape(n, j)
        else:
            # Row ``rows[n]`` of sample n as flat indices into h.view(n, k * j): 2-D gather/scatter are faster.
            flat = rows.view(-1, 1) * j + torch.arange(j, device=rows.device)
            h_row = h.reshape(n, k * j).gather(1, flat)
        col = rows.view(-1, 1)
        # exp(sign beta (h - y)) with y the row's min (max): every term <= 1, no overflow. A hard pool's
        # output is that extreme already; a soft pool's is not, so it is computed.
        if getattr(op, "stiffness", None) is None:
            extreme = output.gather(1, col)
        else:
            extreme = h_row.amin(-1, keepdim=True) if self._sign < 0 else h_row.amax(-1, keepdim=True)
        e = torch.exp((self._sign * stiffness) * (h_row - extreme))
        r_row = e * (R.gather(1, col) / e.sum(-1, keepdim=True))
        if flat is None:
            out = r_row.view(n, 1, j)
        else:
            out = torch.zeros(n, k * j, dtype=h.dtype, device=h.device).scatter_(1, flat, r_row).view(n, k, j)
        ctx.emit(SingleRow(out, rows, r_row, h, h_row))
        return out


class SoftMax(SoftMin):
    """Soft-max redistribution ``R_k = exp(beta h_k) / sum_k' exp(beta h_k') R_out``, mirror of :class:`SoftMin`."""

    name = "soft-max"
    _sign = 1.0
