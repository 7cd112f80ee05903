"""The rule protocol shared by every LRP rule."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor


@dataclass
class Context:
    """What a rule may know besides its own layer: the explained target of every sample."""

    target: Tensor
    extra: dict[str, Any] = field(default_factory=dict)
    #: Set per layer by the engine where the graph proves it (:mod:`neon.graph_facts`): every input
    #: of the layer is ``>= 0`` by construction.
    inputs_nonnegative: bool = False
    #: ``"positive"``: ``R`` is zero wherever the layer's output is ``<= 0`` (proven); ``"mixed"``: the
    #: output feeds a sum, expect relevance on both signs; ``None``: unknown, a rule checks ``R`` itself.
    relevance_support: str | None = None


def vjp(op: Callable[..., Tensor], inputs: Sequence[Tensor], grad: Tensor) -> tuple[Tensor | None, ...]:
    """Vector-Jacobian product of ``op`` at ``inputs``: one small forward and backward of ``op`` alone."""
    with torch.enable_grad():
        leaves = [x.detach().requires_grad_(True) for x in inputs]
        out = op(*leaves)
        grads = torch.autograd.grad(out, leaves, grad_outputs=grad, allow_unused=True)
    return tuple(g if g is None else g.detach() for g in grads)


class Rule:
    """Base class of all rules.

    A rule maps the relevance ``R`` of a layer's output to relevance on each of its inputs.
    Subclasses implement :meth:`relevance`; rules whose parameters depend on data (a reference
    point, a soft-min stiffness, a box) implement :meth:`fit`, which the :class:`neon.Explainer`
    calls once on its fit data so that every sample is explained the same way whatever batch it
    comes in (THEORY.md section 1).
    """

    #: Short name used in summaries.
    name: str = "rule"
    #: True if the relevance this rule gives an input unit is zero wherever that unit's value is zero,
    #: whatever ``R`` is (``R_j = a_j c_j``). The engine uses it to prove facts for the layers below.
    zero_preserving: bool = False

    def relevance(
        self, op: Callable[..., Tensor], inputs: Sequence[Tensor], output: Tensor, R: Tensor, ctx: Context
    ) -> tuple[Tensor | None, ...]:
        raise NotImplementedError

    def supports(self, op: Any) -> bool:
        """Whether this rule can be applied to ``op``."""
        return True

    @property
    def needs_fit(self) -> bool:
        """True while a data-dependent parameter is still unset."""
        return False

    def fit(self, op: Any, inputs: Sequence[Tensor], output: Tensor, ctx: Context) -> Rule:
        """Return a copy of this rule with its data-dependent parameters set from fit data."""
        return self

    def _replace(self, **changes: Any) -> Rule:
        new = copy.copy(self)
        for key, value in changes.items():
            setattr(new, key, value)
        return new

    def _params(self) -> dict[str, Any]:
        return {}

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in self._params().items())
        return f"{type(self).__name__}({params})"


def _fmt(value: Any) -> str:
    if isinstance(value, Tensor):
        if value.numel() == 1:
            return f"{value.item():.4g}"
        return f"tensor{tuple(value.shape)}"
    if isinstance(value, float):
        return f"{value:g}"
    return repr(value)
