"""The rule of token embeddings: relevance per token (``docs/theory.md §7``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from ..exceptions import RuleError
from .base import Context, Rule


class EmbeddingSum(Rule):
    """A token's relevance is the relevance of its embedding vector summed over the hidden dimension.

    ``R_token = sum_h R[token, h]`` at the output of ``nn.Embedding`` (Achtibat et al., ICML 2024; LXT sums
    gradient x input of the input embeddings the same way). Embeddings of constants (positions, token types)
    are constants of the network: where they are added to the token embeddings, they take their share of
    the relevance, which the explanation reports as absorbed.
    """

    name = "embedding-sum"

    def supports(self, op: Any) -> bool:
        return isinstance(op, nn.Embedding)

    def relevance(self, op: Any, inputs: Sequence[Tensor], output: Tensor, R: Tensor,
                  ctx: Context) -> tuple[Tensor | None, ...]:
        if len(inputs) != 1 or R.dim() != inputs[0].dim() + 1:
            raise RuleError("EmbeddingSum applies to nn.Embedding called on a tensor of token indices.")
        return (R.sum(dim=-1),)
