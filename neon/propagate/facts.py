"""What the engine can prove about values and relevance from the graph and the rules, before running them.

Two facts let the affine rules skip checks on the data (each a pass over a layer's activations):

*non-negative inputs*
    A value is ``>= 0`` by construction if it comes out of a ReLU, or out of a pooling, rearrangement
    or sum of such values. The rules with separate ``a+``/``a-`` terms (Gamma, z+, alpha-beta) then
    need no ``min(a) < 0`` test.
*relevance only on positive outputs*
    Every relevance rule of the form ``R_j = a_j c_j`` (epsilon, gamma, z+, alpha-beta, the
    proportional split of sums and average pools) gives nothing to an input unit whose value is zero.
    Relevance that is routed unchanged (through a ReLU, a max pool's winner, a rearrangement) keeps
    that property from above. So the relevance of a ReLU's output vanishes wherever the ReLU is zero,
    and a layer whose output ``z`` feeds only that ReLU receives relevance only where ``z > 0``: the
    generalized Gamma rule needs its positive half alone, with no test for relevance on ``z < 0``.

A fact that cannot be proven is left unknown and the rule checks the data itself, as before: the
facts change how much work a rule does, never its result.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import fx

from ..layers.families import AVG_POOL_MODULES, MAX_POOL_MODULES, RELU_MODULES
from ..rules.base import MIXED, POSITIVE, Rule
from .graph import ADD_TARGETS, Step
from .kinds import NodeKind

__all__ = ["MIXED", "POSITIVE", "LayerFacts", "layer_facts"]

_RELU_FUNCTIONS = {F.relu, torch.relu, F.relu6, "relu", "relu_"}


@dataclass(frozen=True)
class LayerFacts:
    """What a rule may rely on at one layer (``None``/``False``: not proven, check the data)."""

    inputs_nonnegative: bool = False
    relevance_support: str | None = None


def _is_relu(step: Step) -> bool:
    if step.kind is NodeKind.LAYER:
        return type(step.module) in RELU_MODULES
    return step.kind is NodeKind.ACTIVATION and step.node.target in _RELU_FUNCTIONS


def _routes(step: Step, rule: Rule | None) -> bool:
    """Relevance moves unchanged to input units holding the same value as the output unit, and a zero
    value stays a zero value (an element-wise map that only rectifiers are known to keep zero at zero)."""
    if step.kind in (NodeKind.MOVE, NodeKind.SCALE):
        return True
    if rule is None or not rule.routes:
        return False
    if step.kind is NodeKind.ACTIVATION or (step.kind is NodeKind.LAYER and rule.passes_through):
        return _is_relu(step)
    return step.kind is NodeKind.MAX or (step.kind is NodeKind.LAYER and isinstance(step.module, MAX_POOL_MODULES))


def _zero_preserving(step: Step, rule: Rule | None) -> bool:
    """The relevance the step gives an input unit is zero wherever that unit's value is zero, whatever R is."""
    if step.kind is NodeKind.CONST:
        return True
    return step.kind in (NodeKind.LAYER, NodeKind.SUM) and rule is not None and rule.zero_preserving


def _keeps_sign(step: Step) -> bool:
    """Non-negative inputs give a non-negative output."""
    if step.kind is NodeKind.SUM and step.node.target in ADD_TARGETS:
        # a + b of tensors only: a constant or torch.add's alpha could make it negative
        return not step.node.kwargs and all(isinstance(a, fx.Node) for a in step.node.args)
    if step.kind in (NodeKind.MOVE, NodeKind.SUM, NodeKind.MAX) or _is_relu(step):
        return True
    return step.kind is NodeKind.LAYER and isinstance(step.module, MAX_POOL_MODULES + AVG_POOL_MODULES)


def layer_facts(steps: list[Step], rules: Mapping[str, Rule]) -> dict[fx.Node, LayerFacts]:
    """The facts of every step that has at least one (only layers with a rule use them)."""
    nonneg: dict[fx.Node, bool] = {}
    for s in steps:
        if _is_relu(s):
            nonneg[s.node] = True
        elif s.kind is NodeKind.SCALE:
            factor = [a for a in s.node.args if isinstance(a, (int, float))]
            nonneg[s.node] = (bool(s.inputs) and all(nonneg.get(n, False) for n in s.inputs)
                              and s.node.target in (operator.mul, operator.imul, torch.mul)
                              and len(factor) == 1 and factor[0] >= 0)
        else:
            nonneg[s.node] = bool(s.inputs) and _keeps_sign(s) and all(nonneg.get(n, False) for n in s.inputs)

    users: dict[fx.Node, list[Step]] = {s.node: [] for s in steps}
    for s in steps:
        for n in s.inputs:
            users[n].append(s)
    vanishes: dict[fx.Node, bool] = {}  # relevance at the node is zero wherever its value is zero
    for s in reversed(steps):
        if s.kind is NodeKind.OUTPUT:
            vanishes[s.node] = False
            continue
        us = users[s.node]
        vanishes[s.node] = bool(us) and all(
            u.kind is not NodeKind.OUTPUT and (_zero_preserving(u, rules.get(u.name))
                                    or (_routes(u, rules.get(u.name)) and vanishes[u.node]))
            for u in us)

    facts: dict[fx.Node, LayerFacts] = {}
    for s in steps:
        if s.kind is not NodeKind.LAYER or not s.inputs:
            continue
        us = users[s.node]
        support = None
        if len(us) == 1 and _is_relu(us[0]) and _routes(us[0], rules.get(us[0].name)) and vanishes[us[0].node]:
            support = POSITIVE
        elif any(u.kind is NodeKind.SUM for u in us):
            support = MIXED
        nn_inputs = all(nonneg[n] for n in s.inputs)
        if nn_inputs or support:
            facts[s.node] = LayerFacts(inputs_nonnegative=nn_inputs, relevance_support=support)
    return facts

