"""Rules for element-wise, pooling and summing layers, and the NEON soft-min/soft-max pools."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .._numeric import safe_divide
from ..exceptions import RuleError
from ..layers.pooling import ReduceMax, ReduceMin
from .base import Context, Rule, vjp


class Pass(Rule):
    """Relevance passes unchanged through an element-wise layer (ReLU and other activations).

    Exact for ReLU: a unit with ``z <= 0`` has ``a = 0`` and receives no relevance from above.
    For other activations (tanh, GELU, ReLU6, ...) this is a convention, not a derivation.
    """

    name = "pass"

    def relevance(self, op, inputs, output, R, ctx):
        if len(inputs) != 1 or inputs[0].shape != R.shape:
            raise RuleError("Pass applies to element-wise layers with one input of the output's shape.")
        return (R,)


class Proportional(Rule):
    """``R_j = a_j [J^T (R / stab(z))]_j``: relevance split in proportion to the contributions.

    The LRP-epsilon rule on a positive linear map without parameters: average pooling, adaptive
    average pooling, sums and residual additions (THEORY.md section 2, "Other layers"; zennit's
    ``Norm``). On a max-pooling layer it treats the pool as average pooling of the same window.
    """

    name = "proportional"
    zero_preserving = True

    def __init__(self, stabilizer: float = 1e-6):
        self.stabilizer = float(stabilizer)

    def relevance(self, op, inputs, output, R, ctx):
        op = _as_average(op)
        z = op(*inputs)
        s = safe_divide(R, z, self.stabilizer)
        grads = vjp(op, inputs, s)
        return tuple(None if g is None else x * g for x, g in zip(inputs, grads))


def _as_average(op: Any) -> Any:
    """A max-pooling module as the average pooling over the same windows; anything else as is."""
    if isinstance(op, torch.nn.MaxPool2d):
        return torch.nn.AvgPool2d(op.kernel_size, op.stride, op.padding, ceil_mode=op.ceil_mode,
                                  count_include_pad=True)
    if isinstance(op, torch.nn.MaxPool1d):
        return torch.nn.AvgPool1d(op.kernel_size, op.stride, op.padding, ceil_mode=op.ceil_mode,
                                  count_include_pad=True)
    if isinstance(op, torch.nn.AdaptiveMaxPool2d):
        return torch.nn.AdaptiveAvgPool2d(op.output_size)
    return op


class WinnerTakesAll(Rule):
    """Max pooling: all relevance of a pooled unit goes to the input that won the max."""

    name = "winner-takes-all"

    def relevance(self, op, inputs, output, R, ctx):
        return vjp(op, inputs, R)


#: ``ctx.extra`` key under which a pooling rule tells the layer below that only one row of its
#: relevance is non-zero (a :class:`SingleRow`); the layer below checks it by identity.
SINGLE_ROW = "neon.single_row"


@dataclass
class SingleRow:
    """``relevance[n]`` (``n x K x J``) is zero except in row ``rows[n]``, which holds ``row_relevance[n]``.

    ``inputs`` is the pool's input ``h`` and ``input_row`` its row ``rows[n]``: a rule below may use
    them instead of gathering again, after checking ``hint.relevance is R`` and ``hint.inputs is output``.
    """

    relevance: Tensor
    rows: Tensor
    row_relevance: Tensor
    inputs: Tensor
    input_row: Tensor


def single_column(R: Tensor, ctx: Context) -> Tensor | None:
    """``ctx.target`` if ``R`` (``n x K``) is non-zero only in each sample's target column, else ``None``."""
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
    top), only that row is computed and a :class:`SingleRow` hint lets the rule below skip the
    zero rows (the k-means midpoint rule uses it); results are those of the general formula.

    Parameters
    ----------
    beta
        A number; ``None`` for the layer's own stiffness; ``"auto"`` for ``1 / mean(y)`` over the
        fit data, ``y`` the pooled value of each sample's target (the k-means default).
    """

    name = "soft-min"
    _sign = -1.0
    _layer = ReduceMin

    def __init__(self, beta: float | str | None = None):
        if isinstance(beta, str) and beta != "auto":
            raise RuleError(f"{type(self).__name__}(beta={beta!r}): use a number, None or 'auto'.")
        if isinstance(beta, (int, float)) and beta < 0:
            raise RuleError(f"{type(self).__name__} needs beta >= 0, got {beta}.")
        self.beta = beta

    def _params(self) -> dict[str, Any]:
        return {"beta": self.beta}

    def supports(self, op: Any) -> bool:
        return isinstance(op, self._layer)

    @property
    def needs_fit(self) -> bool:
        return self.beta == "auto"

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
        out = torch.zeros(n, k * j, dtype=h.dtype, device=h.device).scatter_(1, flat, r_row).view(n, k, j)
        ctx.extra[SINGLE_ROW] = SingleRow(out, rows, r_row, h, h_row)
        return out


class SoftMax(SoftMin):
    """Soft-max redistribution ``R_k = exp(beta h_k) / sum_k' exp(beta h_k') R_out``, mirror of :class:`SoftMin`."""

    name = "soft-max"
    _sign = 1.0
    _layer = ReduceMax
