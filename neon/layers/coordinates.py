"""Changes of input coordinates in front of a NEON model (scalers, PCA), with their own rules.

They are not affine *layers* for the composites (``rules="epsilon"`` leaves them alone): they
re-express the raw features, they do not weigh evidence. See ``neon/converters/pipeline.py``.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class FeatureAffine(nn.Module):
    """Per-feature affine map ``u_i = s_i x_i + t_i`` whose relevance passes one to one (default rule ``Pass``).

    A per-feature bijection: the contribution of scaled feature ``i`` is the contribution of raw
    feature ``i``.
    """

    scale: Tensor
    shift: Tensor

    def __init__(self, scale: Tensor, shift: Tensor):
        super().__init__()
        self.register_buffer("scale", scale.detach().clone())
        self.register_buffer("shift", shift.detach().clone())

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale + self.shift

    def extra_repr(self) -> str:
        return f"features={self.scale.numel()}"


class AffineProjection(nn.Module):
    """Affine map ``u = M x + c`` of the raw features (PCA and scalers), explained at a root point ``x0``.

    Its default rule is :class:`neon.rules.RootPoint`."""

    weight: Tensor
    bias: Tensor
    root: Tensor

    def __init__(self, weight: Tensor, bias: Tensor, root: Tensor):
        super().__init__()
        self.register_buffer("weight", weight.detach().clone())
        self.register_buffer("bias", bias.detach().clone())
        self.register_buffer("root", root.detach().clone())

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.weight.shape[1]}, out_features={self.weight.shape[0]}"
