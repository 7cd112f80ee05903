"""The AttnLRP rule of normalisation layers: LayerNorm and RMSNorm as linear maps (``docs/theory.md §7``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .._numeric import safe_divide
from ..exceptions import RuleError
from .base import Context, Rule

#: ``nn.RMSNorm`` (torch >= 2.4), where this torch has it.
RMS_NORM: tuple[type[nn.Module], ...] = (nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()


class Normalization(Rule):
    """LayerNorm / RMSNorm with their statistics held fixed, explained by the epsilon rule.

    ``y = gamma * (x - mean(x)) / sigma + beta`` with ``sigma = sqrt(var(x) + eps)`` held fixed is an affine
    map of ``x``: the centering ``C = I - 1 1^T / d`` and the scale ``gamma / sigma``. AttnLRP (Achtibat et
    al., ICML 2024, Sec. 3.3; LXT's ``layer_norm_forward`` stops the gradient through ``sigma``) passes relevance
    through the division unchanged (the identity rule) and uses the epsilon rule on the rest, which together is
    the epsilon rule of that affine map:

    ``R_x = x * C^T (gamma / sigma * R / stab(y))``.

    The centering conserves relevance; ``beta`` takes its share ``beta R / y`` (absorbed, reported by the
    explanation). RMSNorm, ``y = gamma * x / sqrt(mean(x^2) + eps)``, has no centering and no shift: relevance
    passes unchanged up to the stabiliser. BatchNorm in evaluation mode is the same construction with the
    running statistics and is folded into the neighbouring affine layer (``docs/theory.md §2``).

    Parameters
    ----------
    epsilon
        The stabiliser of ``y`` (sign-matched); ``0`` divides exactly.
    """

    name = "normalization"
    zero_preserving = True

    def __init__(self, epsilon: float = 1e-6):
        if epsilon < 0:
            raise RuleError(f"Normalization needs epsilon >= 0, got {epsilon}.")
        self.epsilon = float(epsilon)

    def _params(self) -> dict[str, Any]:
        return {"epsilon": self.epsilon}

    def supports(self, op: Any) -> bool:
        return isinstance(op, (nn.LayerNorm,) + RMS_NORM)

    def relevance(self, op: Any, inputs: Sequence[Tensor], output: Tensor, R: Tensor,
                  ctx: Context) -> tuple[Tensor | None, ...]:
        if not self.supports(op):
            raise RuleError(f"Normalization applies to nn.LayerNorm and nn.RMSNorm, not {type(op).__name__}.")
        (x,) = inputs
        dims = tuple(range(-len(op.normalized_shape), 0))
        s = safe_divide(R, output, self.epsilon)
        if isinstance(op, nn.LayerNorm):
            centered = x - x.mean(dim=dims, keepdim=True)
            sigma = torch.sqrt(centered.pow(2).mean(dim=dims, keepdim=True) + op.eps)
        else:
            eps = op.eps if op.eps is not None else torch.finfo(x.dtype).eps
            sigma = torch.sqrt(x.pow(2).mean(dim=dims, keepdim=True) + eps)
        if op.weight is not None:
            s = s * op.weight
        t = s.div_(sigma)
        if isinstance(op, nn.LayerNorm):
            t = t - t.mean(dim=dims, keepdim=True)  # C^T t: the centering matrix is symmetric
        return (t.mul_(x),)
