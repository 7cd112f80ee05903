"""Rules for element-wise, pooling and summing layers, and the NEON soft-min/soft-max pools."""

from __future__ import annotations

from collections.abc import Sequence
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
#: relevance is non-zero: ``(relevance tensor, row index per sample)``; checked by identity.
SINGLE_ROW = "neon.single_row"


def single_column(R: Tensor, ctx: Context) -> Tensor | None:
    """``ctx.target`` if ``R`` (``n x K``) is non-zero only in each sample's target column, else ``None``."""
    t = ctx.target
    if t is None or t.dim() != 1 or len(t) != R.shape[0] or R.shape[1] == 0:
        return None
    t = t.view(-1, 1)
    if bool(((t < 0) | (t >= R.shape[1])).any()):
        return None
    only = torch.zeros_like(R).scatter_(1, t, R.gather(1, t))
    return t.view(-1) if torch.equal(only, R) else None


class SoftMin(Rule):
    """Soft-min redistribution over the last axis: ``R_k = exp(-beta h_k) / sum_k' exp(-beta h_k') R_out``.

    The NEON pooling rule (Kauffmann et al., TNNLS 2022 and Pattern Recognit. 2020). It shapes
    the backward pass only; the forward stays the model's exact (hard or soft) minimum. Exactly
    conservative. ``beta -> inf``: the nearest competitor takes all; ``beta = 0``: uniform.

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
            # Only the explained column carries relevance (the usual case at the network's top):
            # soft-min over that row of units only; the rows of the other columns get zeros.
            idx = rows.view(-1, 1, 1).expand(-1, 1, h.shape[-1])
            weights = torch.softmax(self._sign * stiffness * h.gather(1, idx).squeeze(1), dim=-1)
            out = torch.zeros_like(h).scatter_(1, idx, (weights * R.gather(1, rows.view(-1, 1))).unsqueeze(1))
            ctx.extra[SINGLE_ROW] = (out, rows)
            return (out,)
        weights = torch.softmax(self._sign * stiffness * h, dim=-1)
        return (weights * R.unsqueeze(-1),)


class SoftMax(SoftMin):
    """Soft-max redistribution ``R_k = exp(beta h_k) / sum_k' exp(beta h_k') R_out``, mirror of :class:`SoftMin`."""

    name = "soft-max"
    _sign = 1.0
    _layer = ReduceMax
