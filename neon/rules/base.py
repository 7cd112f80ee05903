"""The rule protocol shared by every LRP rule, and what the engine tells a rule besides its layer.

A rule is a small class: :meth:`Rule.relevance` maps the relevance of a node's output to relevance on
each of its inputs. What a rule *can do* beyond that it declares as class attributes, and the engine
asks for them instead of knowing rules by name:

``zero_preserving``
    ``R_j = a_j c_j``: an input unit with value zero receives nothing (proves facts for the layers below).
``passes_through``
    ``R_in = R`` for an element-wise node: the engine hands ``R`` on without recomputing any value.
``routes``
    the relevance of every output unit goes unchanged to the input unit that holds its value
    (a ReLU's pass-through, a max pool's winner).
``records_forward``
    the rule keeps state from the forward pass (:meth:`Rule.record`, e.g. a max pool's winners) and
    reads it back as :attr:`Context.forward_state`.
``detaches``
    the rule holds the node's output constant: its inputs receive no relevance, and the rules of the
    nodes that use the output treat it as a fixed parameter (CP-LRP's attention weights). The engine
    tells those rules which of their inputs are held constant (:attr:`Context.constant_inputs`).

A rule may also leave a hint for the rule of the node below (:meth:`Context.emit`, e.g. "only one row
of this relevance is non-zero"); that rule finds it in :attr:`Context.hint` when the relevance it gets
is exactly the one the hint describes. The engine leaves a :class:`SingleColumn` hint on the relevance it
starts from, and keeps a hint on relevance that a node hands on unchanged.

A rule may run and explain its node together with the layer feeding it (:meth:`Rule.fuse`), so that the
lower layer's output is never built: the k-means logits, whose ``n x K x (K - 1)`` contrast units the
soft-min and midpoint rules only need one row of.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

#: ``Context.relevance_support`` when the engine proved that ``R`` is zero wherever the layer's output is ``<= 0``.
POSITIVE = "positive"
#: ``Context.relevance_support`` when the layer's output feeds a sum: relevance on both signs is to be expected.
MIXED = "mixed"


@dataclass
class SingleRow:
    """A hint: ``relevance[n]`` (``n x K x J``) is zero except in row ``rows[n]``, which holds ``row_relevance[n]``.

    ``inputs`` is the emitting pool's input ``h`` and ``input_row`` its row ``rows[n]``: a rule below may
    use them instead of gathering again, after checking ``hint.relevance is R`` and ``hint.inputs is output``.
    """

    relevance: Tensor
    rows: Tensor
    row_relevance: Tensor
    inputs: Tensor
    input_row: Tensor


@dataclass
class SingleColumn:
    """A hint: ``relevance`` (``n x K``) is zero except in column ``columns[n]``, which holds ``values[n]``.

    What the engine starts the backward pass from (the explained output of each sample); known without
    looking at the data, so a rule needs no check (and no host synchronisation) to use it.
    """

    relevance: Tensor
    columns: Tensor
    values: Tensor


@dataclass
class Context:
    """What a rule may know besides its own layer.

    Attributes
    ----------
    target
        The explained output index of every sample, ``(n,)``.
    inputs_nonnegative
        Set per layer by the engine where the graph proves it (:mod:`neon.propagate.facts`): every input
        of the layer is ``>= 0`` by construction.
    relevance_support
        :data:`POSITIVE`: ``R`` is zero wherever the layer's output is ``<= 0`` (proven); :data:`MIXED`: the
        output feeds a sum, expect relevance on both signs; ``None``: unknown, a rule checks ``R`` itself.
    hint
        What the rule of the consuming node said about the structure of ``R`` (e.g. a :class:`SingleRow`),
        or ``None``. Valid only if it describes this very ``R`` (check by identity).
    forward_state
        What this rule's :meth:`Rule.record` kept in the forward pass, or ``None``.
    emitted
        The hint this rule leaves for the node below (set with :meth:`emit`).
    constant_inputs
        One flag per input of the node: ``True`` where the input is held constant by a rule below it
        (:attr:`Rule.detaches`, directly or through rearrangements), ``None`` when no input is.
    """

    target: Tensor
    inputs_nonnegative: bool = False
    relevance_support: str | None = None
    hint: Any = None
    forward_state: Any = None
    emitted: Any = None
    constant_inputs: tuple[bool, ...] | None = None

    def emit(self, hint: Any) -> None:
        """Leave ``hint`` for the rule of the node below (the engine drops it if that node's relevance is summed)."""
        self.emitted = hint


def vjp(op: Callable[..., Tensor], inputs: Sequence[Tensor], grad: Tensor) -> tuple[Tensor | None, ...]:
    """Vector-Jacobian product of ``op`` at ``inputs``: one small forward and backward of ``op`` alone."""
    with torch.enable_grad():
        leaves = [x.detach().requires_grad_(True) for x in inputs]
        out = op(*leaves)
        grads = torch.autograd.grad(out, leaves, grad_outputs=grad, allow_unused=True)
    return tuple(g if g is None else g.detach() for g in grads)


class Rule:
    """Base class of all rules.

    A rule maps the relevance ``R`` of a node's output to relevance on each of its inputs.
    Subclasses implement :meth:`relevance`; rules whose parameters depend on data (a reference
    point, a soft-min stiffness, a box) implement :meth:`fit`, which the :class:`neon.Explainer`
    calls once on its fit data so that every sample is explained the same way whatever batch it
    comes in (``docs/theory.md``, "Conventions").
    """

    #: Short name used in summaries.
    name: str = "rule"
    #: The relevance this rule gives an input unit is zero wherever that unit's value is zero,
    #: whatever ``R`` is (``R_j = a_j c_j``). The engine uses it to prove facts for the layers below.
    zero_preserving: bool = False
    #: ``R_in = R`` on the node's single input: no value of the forward pass is needed.
    passes_through: bool = False
    #: The relevance of every output unit goes unchanged to the input unit holding the output's value.
    routes: bool = False
    #: The rule keeps state from the forward pass: the engine calls :meth:`record` instead of the layer.
    records_forward: bool = False
    #: The node's output is held constant: no relevance to its inputs, and the nodes using it see it as a
    #: fixed parameter (:attr:`Context.constant_inputs`).
    detaches: bool = False

    def relevance(
        self, op: Callable[..., Tensor], inputs: Sequence[Tensor], output: Tensor, R: Tensor, ctx: Context
    ) -> tuple[Tensor | None, ...]:
        """Relevance of every input of the node (``None`` for inputs that take none).

        Parameters
        ----------
        op
            The node: its module, or for function nodes a callable of the node's tensor inputs with the
            attribute ``adds_tensors`` (true for a plain ``a + b`` of two tensors).
        inputs
            The node's tensor inputs in the forward pass.
        output
            The node's output in the forward pass.
        R
            The relevance of ``output``.
        ctx
            The :class:`Context`.
        """
        raise NotImplementedError

    def supports(self, op: Any) -> bool:
        """Whether this rule can be applied to ``op``."""
        return True

    def record(self, op: Any, inputs: Sequence[Tensor]) -> tuple[Tensor, Any] | None:
        """The node's output and the state to keep for the backward pass, or ``None`` to run it as usual.

        Called by the engine in the forward pass when :attr:`records_forward` is set.
        """
        return None

    def fuse(self, op: Any, below: Any, below_rule: Rule) -> Fused | None:
        """This node and the layer ``below`` feeding it as one :class:`Fused` step, or ``None`` (the default).

        Asked by the engine for a layer whose single input is the output of layer ``below`` (rule
        ``below_rule``), used by nothing else. The fused step must give what running both layers and both
        rules one after the other gives, up to rounding.
        """
        return None

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


class Fused:
    """Two layers run and explained as one (:meth:`Rule.fuse`): a node and the layer below it.

    The engine calls :meth:`forward` with the lower layer's inputs instead of running both layers, keeps
    the state it returns for the backward pass (:attr:`Context.forward_state`), and calls
    :meth:`relevance` for the relevance of the lower layer's inputs. The lower layer's own output is
    computed only if something else asks for it.
    """

    def forward(self, inputs: Sequence[Tensor]) -> tuple[Tensor, Any]:
        """The upper node's output from the lower layer's inputs, and the state to keep."""
        raise NotImplementedError

    def relevance(self, inputs: Sequence[Tensor], output: Tensor, R: Tensor,
                  ctx: Context) -> tuple[Tensor | None, ...]:
        """Relevance of the lower layer's inputs, given the relevance ``R`` of the upper node's ``output``."""
        raise NotImplementedError


def _fmt(value: Any) -> str:
    if isinstance(value, Tensor):
        if value.numel() == 1:
            return f"{value.item():.4g}"
        return f"tensor{tuple(value.shape)}"
    if isinstance(value, float):
        return f"{value:g}"
    return repr(value)
