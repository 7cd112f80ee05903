"""Numeric helpers shared by the rules and layers (docs/theory.md §1)."""

from __future__ import annotations

import torch
from torch import Tensor


def stabilize(z: Tensor, epsilon: float | Tensor = 1e-6) -> Tensor:
    """Sign-matched stabiliser ``z + eps * sign(z)`` with ``sign(0) = +1``.

    This is the convention of zennit's ``Stabilizer`` (docs/theory.md §1): it moves
    every denominator away from zero in the direction it already points to.
    """
    if isinstance(epsilon, (int, float)) and epsilon == 0:
        return z
    sign = torch.where(z >= 0, 1.0, -1.0).to(z.dtype)
    return z + sign * epsilon


def safe_divide(numerator: Tensor, denominator: Tensor, epsilon: float | Tensor = 0.0) -> Tensor:
    """``numerator / stabilize(denominator, epsilon)``, with ``0 / 0 := 0`` when ``epsilon == 0``.

    With ``epsilon == 0`` the division is exact wherever the denominator is non-zero; this is
    what the exactly conservative NEON rules use. A zero denominator with a non-zero numerator
    is still reported as zero relevance (it can only occur when the unit's value is zero).
    """
    if isinstance(epsilon, (int, float)) and epsilon == 0:
        zero = denominator == 0
        return torch.where(zero, torch.zeros_like(numerator), numerator / torch.where(zero, 1.0, denominator))
    if isinstance(epsilon, float) and epsilon > 0 and numerator.shape == denominator.shape:
        # The hot path of the LRP rules, in three element-wise passes: z + copysign(eps, z) is
        # z + eps * sign(z) bit for bit (rounding is symmetric in the sign). Only an exact -0.0
        # (every summand of z -0.0) takes -eps.
        den = torch.empty_like(denominator)
        torch.copysign(torch.tensor(epsilon, dtype=denominator.dtype, device=denominator.device), denominator,
                       out=den)
        den.add_(denominator)
        return torch.div(numerator, den, out=den)
    return numerator / stabilize(denominator, epsilon)


def flat(t: Tensor) -> Tensor:
    """All entries of ``t`` as one dimension, without a copy for contiguous and channels-last tensors.

    For whole-tensor reductions (min, max) whose result does not depend on the order of the entries:
    ``reshape`` of a channels-last tensor would copy it first.
    """
    if t.is_contiguous():
        return t.view(-1)
    if is_channels_last(t):
        return t.permute(0, 2, 3, 1).reshape(-1)
    return t.reshape(-1)


def is_channels_last(t: Tensor) -> bool:
    """Whether ``t`` is a 4-D tensor stored channels-last (and not also plain contiguous)."""
    return t.dim() == 4 and not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last)
