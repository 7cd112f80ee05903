"""Rules for element-wise layers (activations, per-feature changes of coordinates)."""

from __future__ import annotations

from ..exceptions import RuleError
from .base import Rule


class Pass(Rule):
    """Relevance passes unchanged through an element-wise layer: ``R_in = R``.

    Exact for ReLU: a unit with ``z <= 0`` has ``a = 0`` and receives no relevance from above
    (Bach et al., PLOS ONE 2015). For other activations (tanh, GELU, ReLU6, ...) this is the identity
    rule of AttnLRP (Achtibat et al., ICML 2024), a convention rather than a derivation
    (``docs/theory.md``, "Element-wise layers").
    """

    name = "pass"
    passes_through = True
    routes = True

    def relevance(self, op, inputs, output, R, ctx):
        if len(inputs) != 1 or inputs[0].shape != R.shape:
            raise RuleError("Pass applies to element-wise layers with one input of the output's shape.")
        return (R,)
