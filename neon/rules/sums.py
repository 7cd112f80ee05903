"""The proportional rule of sums, residual additions and average pools."""

from __future__ import annotations

from typing import Any

import torch

from .._numeric import safe_divide
from .base import Rule, vjp


class Proportional(Rule):
    """``R_j = a_j [J^T (R / stab(z))]_j``: relevance split in proportion to the contributions.

    The LRP-epsilon rule on a positive linear map without parameters: average pooling, adaptive
    average pooling, sums and residual additions (``docs/theory.md``, "Other layers"; zennit's
    ``Norm``). On a max-pooling layer it treats the pool as average pooling of the same window.
    A residual addition ``a + b`` of two tensors of the output's shape is split in a few element-wise
    passes, ``R_a = a R / stab(z)`` and ``R_b = b R / stab(z)``, without recomputing the sum.
    """

    name = "proportional"
    zero_preserving = True

    def __init__(self, stabilizer: float = 1e-6):
        self.stabilizer = float(stabilizer)

    def relevance(self, op, inputs, output, R, ctx):
        if (getattr(op, "adds_tensors", False) and self.stabilizer > 0 and len(inputs) == 2
                and all(t.shape == output.shape for t in inputs) and R.shape == output.shape):
            s = safe_divide(R, output, self.stabilizer)
            a, b = inputs
            return a * s, s.mul_(b)
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
