"""Token embeddings that also take token indices stored as floating-point numbers."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..exceptions import UnsupportedLayerError


class TokenEmbedding(nn.Embedding):
    """``nn.Embedding`` whose input may be token indices in a floating dtype (``2.0`` is token 2).

    Explainers compute in a floating dtype and hand token ids on as such; indices below ``2**24`` are exact
    in float32 and below ``2**53`` in float64. :meth:`of` makes one that shares the weight of an existing
    embedding (no copy).
    """

    def forward(self, input: Tensor) -> Tensor:
        if input.is_floating_point():
            input = input.round().long()
        return super().forward(input)

    @classmethod
    def of(cls, embedding: nn.Embedding) -> TokenEmbedding:
        """The same embedding (same weight tensor's storage, same padding index)."""
        if embedding.max_norm is not None:
            raise UnsupportedLayerError(
                "nn.Embedding(max_norm=...) rescales its weight in place on every call; neon explains "
                "embeddings without max_norm."
            )
        weight = embedding.weight.detach()
        new = cls(weight.shape[0], weight.shape[1], padding_idx=embedding.padding_idx, _weight=weight,
                  _freeze=True, device=weight.device, dtype=weight.dtype)
        new.train(embedding.training)
        return new


def as_token_ids(x: Tensor) -> Tensor:
    """``x`` as integer token indices (floats are rounded)."""
    return x.round().long() if x.is_floating_point() else x.to(torch.long)
