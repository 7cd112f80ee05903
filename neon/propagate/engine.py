"""The propagation engine: one forward pass that keeps what the rules need, one backward relevance pass.

The engine knows graphs, node kinds and the rule protocol (:mod:`neon.rules.base`), nothing of any
concrete rule or of the models networks come from. What a rule can do beyond computing relevance
(pass relevance through without values, keep state from the forward pass, leave a hint for the node
below, run and explain two layers as one) it declares, and the engine asks. The backward pass visits
the nodes in reverse topological order, sums relevance over fan-out (residual branches, a module called
twice) and frees every activation as soon as no rule needs it.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import Tensor, fx, nn

from .._numeric import is_channels_last
from ..exceptions import RuleError, UnsupportedModelError
from ..layers.affine import like_input
from ..rules.base import Context, Fused, Rule, SingleColumn, vjp
from .facts import LayerFacts, layer_facts
from .graph import Step
from .kinds import NodeKind


@dataclass
class Propagation:
    """Result of one propagation: every output, the explained value, and input relevance."""

    outputs: Tensor
    value: Tensor
    relevance: Tensor
    layers: dict[str, Tensor] | None = None
    target: Tensor | None = None


def _lookup(env: Mapping[fx.Node, Any], sub: Mapping[fx.Node, Any] | None = None) -> Callable[[fx.Node], Any]:
    if sub:
        return lambda n: sub[n] if n in sub else env[n]
    return lambda n: env[n]


def _run(step: Step, look: Callable[[fx.Node], Any]) -> Any:
    args: tuple[Any, ...] = fx.node.map_arg(step.node.args, look)  # the nodes' values, no longer fx arguments
    kwargs = fx.node.map_arg(step.node.kwargs, look)
    if step.kind is NodeKind.LAYER:
        assert step.module is not None
        if type(step.module) is nn.Conv2d and len(args) == 1 and not kwargs and is_channels_last(args[0]):
            # the same convolution, with the weight kept in the input's layout instead of copied per call
            return step.module._conv_forward(args[0], like_input(step.module.weight, args[0]), step.module.bias)
        return step.module(*args, **kwargs)
    assert step.fn is not None
    if step.kind is NodeKind.MOVE and step.module is not None:
        return step.fn(*args)
    if step.node.target == "view" and args and isinstance(args[0], Tensor) and is_channels_last(args[0]):
        # .view depends on the memory layout: it must see the layout the model itself produces
        args = (args[0].contiguous(),) + tuple(args[1:])
    return step.fn(*args, **kwargs)


class NodeOp:
    """A function node as a function of its tensor inputs (other arguments bound from the forward pass).

    What a rule gets as ``op`` for a function node. ``adds_tensors`` says whether the node is a plain
    ``a + b`` of two tensors, ``target`` is the traced function or method name, ``kwargs`` the node's keyword
    arguments as traced (e.g. a softmax's ``dim``; graph nodes where a tensor is passed).
    """

    def __init__(self, step: Step, env: Mapping[fx.Node, Any]):
        self._step, self._env = step, env
        self.target = step.node.target
        self.adds_tensors = step.adds_tensors
        self.kwargs = step.node.kwargs

    def __call__(self, *values: Tensor) -> Tensor:
        return _run(self._step, _lookup(self._env, dict(zip(self._step.inputs, values))))


def op_of(step: Step, env: Mapping[fx.Node, Any]) -> Callable[..., Tensor]:
    """The node as a function of its tensor inputs (other arguments bound from the forward pass)."""
    return NodeOp(step, env)


def _recording(step: Step, rules: Mapping[str, Rule] | None) -> Rule | None:
    if rules is None or step.kind is not NodeKind.LAYER or not step.args_are_inputs:
        return None
    rule = rules.get(step.name)
    return rule if rule is not None and rule.records_forward else None


def fusions(steps: list[Step], rules: Mapping[str, Rule]) -> dict[fx.Node, tuple[Step, Fused]]:
    """Layers run and explained together with the layer feeding them (:meth:`Rule.fuse`).

    ``{node: (step below, fused)}`` for every layer whose single input is the output of a layer used by
    nothing else, where the node's rule offers a fused step for the pair.
    """
    by_node = {s.node: s for s in steps}
    fused: dict[fx.Node, tuple[Step, Fused]] = {}
    for s in steps:
        rule = rules.get(s.name) if s.kind is NodeKind.LAYER and len(s.inputs) == 1 else None
        below = by_node[s.inputs[0]] if rule is not None else None
        if rule is None or below is None or below.kind is not NodeKind.LAYER or len(below.node.users) != 1 \
                or not (s.args_are_inputs and below.args_are_inputs) or below.node in fused:
            continue
        below_rule = rules.get(below.name)
        pair = None if below_rule is None else rule.fuse(s.module, below.module, below_rule)
        if pair is not None:
            fused[s.node] = (below, pair)
    return fused


def forward(steps: list[Step], x: Tensor, keep: bool = True,
            recompute: frozenset[fx.Node] | set[fx.Node] = frozenset(),
            rules: Mapping[str, Rule] | None = None,
            states: dict[fx.Node, Any] | None = None,
            fused: Mapping[fx.Node, tuple[Step, Fused]] | None = None) -> tuple[Tensor, dict[fx.Node, Any]]:
    """Run the graph on ``x``; return its output and (if ``keep``) every intermediate value.

    Nodes in ``recompute`` are not kept once their last user has run, even with ``keep``: the
    backward pass recomputes them on demand (:func:`cheap_nodes`). With ``rules`` and ``states``, a
    layer whose rule records the forward (``Rule.records_forward``) is run by :meth:`Rule.record`, and
    what the rule keeps goes into ``states`` (e.g. the winners of a max pool). A node in ``fused``
    (:func:`fusions`, with ``states``) runs from the inputs of the layer below it, which is not run.
    """
    env: dict[fx.Node, Any] = {}
    users_left = {s.node: len(s.node.users) for s in steps}
    fused = fused if fused and states is not None else {}
    skipped = {below.node for below, _ in fused.values()}
    out = None
    for step in steps:
        if step.node in skipped:
            continue  # its inputs stay until the fused node above has run
        if step.kind is NodeKind.INPUT:
            env[step.node] = x
        elif step.kind is NodeKind.OUTPUT:
            out = env[step.inputs[0]]
        elif step.node in fused:
            below, pair = fused[step.node]
            env[step.node], states[step.node] = pair.forward([env[n] for n in below.inputs])  # type: ignore[index]
        else:
            rule = _recording(step, rules) if states is not None else None
            recorded = None if rule is None else rule.record(step.module, [env[n] for n in step.inputs])
            if recorded is not None:
                env[step.node], states[step.node] = recorded  # type: ignore[index]
            else:
                env[step.node] = _run(step, _lookup(env))
        if not keep or recompute:
            done = step.node.all_input_nodes
            if step.node in fused:
                done = done + fused[step.node][0].node.all_input_nodes
            for n in done:
                users_left[n] -= 1
                if users_left[n] == 0 and n in env and (not keep or n in recompute):
                    del env[n]
    return as_columns(out), env


def as_columns(out: Any) -> Tensor:
    """The network's output as ``(n, n_targets)``: a ``(n,)`` output is one column; anything else is refused."""
    if not isinstance(out, Tensor):
        raise UnsupportedModelError(f"the network returns {type(out).__name__}; neon explains one tensor of shape "
                                    "(n, n_targets) or (n,).")
    if out.dim() == 1:
        return out.unsqueeze(1)
    if out.dim() != 2:
        raise UnsupportedModelError(
            f"the model's output has shape {tuple(out.shape)}; neon explains outputs of shape (n, k) (one value per "
            "class or output) or (n,). For dense outputs (segmentation maps, sequences), explain a reduction of them: "
            "output_selector=lambda out: out.mean((2, 3)) (or the pixel, region or token you are interested in)."
        )
    return out


def cheap_nodes(steps: list[Step], rules: Mapping[str, Rule] | None = None) -> set[fx.Node]:
    """Nodes that cost less to recompute than to keep: activations and rearrangements of values.

    Keeping only the pre-activation ``z`` of a ``conv -> ReLU`` pair (the rules need ``z``, and the
    next layer's input ``relu(z)`` is recomputed when its rule runs) halves the memory of the
    kept activations, as PyTorch's own in-place ReLU does for the gradient. A node is cheap when it is a
    rearrangement or scaling, or when its rule passes relevance through (element-wise activations).
    """
    cheap = set()
    for s in steps:
        if s.kind in (NodeKind.ACTIVATION, NodeKind.MOVE, NodeKind.SCALE):
            cheap.add(s.node)
        elif s.kind is NodeKind.LAYER and rules is not None:
            rule = rules.get(s.name)
            if rule is not None and rule.passes_through and len(s.inputs) == 1:
                cheap.add(s.node)
    return cheap


def _materialize(n: fx.Node, env: dict[fx.Node, Any], by_node: Mapping[fx.Node, Step]) -> Any:
    """The value of ``n``: kept from the forward pass, or recomputed from its inputs (then kept until used)."""
    if n in env:
        return env[n]
    value = _run(by_node[n], lambda m: _materialize(m, env, by_node))
    env[n] = value
    return value


def prefers_channels_last(steps: list[Step], x: Tensor) -> bool:
    """Whether to propagate ``x`` in channels-last layout: float32 images through 2-D convolutions on CPU.

    oneDNN (mkldnn) convolutions reorder NCHW activations to a blocked layout and back on every call;
    on channels-last activations they do not. On ResNet-50 (batch 4, 224x224, two cores) that makes
    the forward and transposed convolutions about 12% faster; the element-wise work of the rules is
    the same in either layout. Relevance values agree with the NCHW pass to float32 rounding.
    """
    if x.dim() != 4 or x.device.type != "cpu" or x.dtype != torch.float32 or not torch.backends.mkldnn.is_available():
        return False
    return any(s.kind is NodeKind.LAYER and type(s.module) is nn.Conv2d for s in steps)


def held_constant(steps: list[Step], rules: Mapping[str, Rule]) -> set[fx.Node]:
    """Nodes whose values the rules hold constant: outputs of rules that detach, and rearrangements of them."""
    constant: set[fx.Node] = set()
    for s in steps:
        rule = rules.get(s.name)
        if rule is not None and rule.detaches:
            constant.add(s.node)
        elif s.kind in (NodeKind.MOVE, NodeKind.SCALE) and s.inputs and all(n in constant for n in s.inputs):
            constant.add(s.node)
    return constant


@dataclass
class _Plan:
    """What the engine derives from a graph and its rules alone, once per (graph, rule set)."""

    rules: tuple[tuple[str, Rule], ...]
    lazy: set[fx.Node]
    facts: dict[fx.Node, LayerFacts]
    fused: dict[fx.Node, tuple[Step, Fused]]


#: Plans per graph (keyed by its first step, dropped with it), at most ``_PLANS_PER_GRAPH`` rule sets each.
_PLANS: dict[int, dict[int, _Plan]] = {}
_PLANS_PER_GRAPH = 8


def _plan(steps: list[Step], rules: Mapping[str, Rule]) -> _Plan:
    """Cheap nodes, graph facts and fusions of ``steps`` under ``rules``, computed once per chunked explanation.

    Kept while the graph's first step lives and the rule set holds the same rule objects; nothing in a plan
    refers to that first step, so the plan cannot keep the graph alive.
    """
    key = id(steps[0])
    per_graph = _PLANS.get(key)
    if per_graph is None:
        per_graph = _PLANS[key] = {}
        weakref.finalize(steps[0], _PLANS.pop, key, None)
    items = tuple(rules.items())
    plan = per_graph.get(id(rules))
    if plan is None or plan.rules != items:
        if len(per_graph) >= _PLANS_PER_GRAPH:
            per_graph.pop(next(iter(list(per_graph))), None)  # the oldest; a copy, as other threads may add
        plan = per_graph[id(rules)] = _Plan(items, cheap_nodes(steps, rules), layer_facts(steps, rules),
                                            fusions(steps, rules))
    return plan


def _unsplittable(step: Step) -> tuple[Tensor | None, ...]:
    raise RuleError(f"{step.label} combines several tensors element-wise; neon cannot split its relevance.")


def _relevance_step(step: Step, rule: Rule | None, env: dict[fx.Node, Any], R: Tensor, ctx: Context,
                    by_node: Mapping[fx.Node, Step]) -> tuple[Tensor | None, ...]:
    kind = step.kind
    if kind is NodeKind.SCALE:
        return (R,) if len(step.inputs) == 1 else _unsplittable(step)
    if kind is NodeKind.MOVE:
        for n in step.inputs:
            _materialize(n, env, by_node)
        return vjp(op_of(step, env), [env[n] for n in step.inputs], R)
    if rule is None:
        raise RuleError(f"no relevance rule for node {step.label} ({kind}).")
    if rule.passes_through:
        return (R,) if len(step.inputs) == 1 else _unsplittable(step)
    for n in step.inputs:
        _materialize(n, env, by_node)
    _materialize(step.node, env, by_node)
    inputs = [env[n] for n in step.inputs]
    op = cast(nn.Module, step.module) if kind is NodeKind.LAYER else op_of(step, env)
    return rule.relevance(op, inputs, env[step.node], R, ctx)


def propagate(
    steps: list[Step],
    rules: Mapping[str, Rule],
    x: Tensor,
    target: Tensor | None,
    record: bool = False,
    baseline: Tensor | None = None,
    channels_last: bool | None = None,
    choose_target: Callable[[Tensor, Callable[[str], Tensor]], Tensor] | None = None,
) -> Propagation:
    """Explain ``target`` (one index per sample; ``None``: the arg-max output) of the network at ``x``.

    The initial relevance is the value of the explained output (``docs/theory.md``, "Conventions"),
    minus ``baseline`` (one value per sample, ``f(x~)`` of a reference point) when given: then the
    explained value is ``f(x) - f(x~)``. ``rules`` holds the rule of every node of a kind that has one
    (:meth:`neon.Network.assign_rules`). ``channels_last`` runs the pass on channels-last images
    (``None``: where :func:`prefers_channels_last` says so); the relevance comes back contiguous.
    ``choose_target(outputs, value)`` picks the default target from the forward pass (``value(name)`` is
    any node's value); ``None``: the arg-max output.
    """
    guard = getattr(steps[0].node.graph.owning_module, "neon_shared_weights", None) if steps else None
    if guard is not None:
        guard()  # the network shares its weights with the user's model: refuse if that model changed
    # Some rules take vector-Jacobian products with autograd, which inference mode forbids: a caller's
    # torch.inference_mode() must not break them (inference-tensor inputs are fine outside it).
    with torch.inference_mode(False), torch.no_grad():
        if channels_last is None and prefers_channels_last(steps, x):
            channels_last = True
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        elif channels_last is False:
            x = x.contiguous()
        plan = _plan(steps, rules)
        lazy = plan.lazy
        states: dict[fx.Node, Any] = {}
        fused = {} if record else plan.fused  # record=True reports every node's relevance
        out, env = forward(steps, x, keep=True, recompute=lazy, rules=rules, states=states, fused=fused)
        by_node = {s.node: s for s in steps}
        if target is None and choose_target is not None:
            names = {s.name: s.node for s in steps}
            target = choose_target(out, lambda name: _materialize(names[name], env, by_node))
        if target is None:  # the arg-max output: max gives the first of tied maxima too, with its value
            value, target = out.max(dim=1)
            target = target.view(-1, 1)
        else:
            target = target.to(device=out.device, dtype=torch.long).view(-1, 1)
            value = out.gather(1, target).squeeze(1)
        ctx = Context(target=target.squeeze(1))
        output_step = steps[-1]
        seed = value if baseline is None else value - baseline.to(value).reshape(-1)
        top = output_step.inputs[0]
        initial = torch.zeros_like(out).scatter_(1, target, seed.unsqueeze(1))
        top_value = _materialize(top, env, by_node)
        relevance: dict[fx.Node, Tensor] = {top: initial.view(top_value.shape) if top_value.dim() == 1 else initial}
        hints: dict[fx.Node, Any] = {} if top_value.dim() == 1 else {top: SingleColumn(initial, ctx.target, seed)}
        layers: dict[str, Tensor] | None = {} if record else None
        facts = plan.facts
        constant = held_constant(steps, rules)
        result = None
        for step in reversed(steps[:-1]):
            R = relevance.pop(step.node, None)
            if R is None:
                env.pop(step.node, None)
                continue
            if layers is not None:
                layers[step.name] = R
            if step.kind is NodeKind.INPUT:
                result = R
                continue
            known = facts.get(step.node)
            hint = hints.pop(step.node, None)
            step_ctx = Context(target=ctx.target, hint=hint, forward_state=states.pop(step.node, None))
            if known is not None:
                step_ctx.inputs_nonnegative = known.inputs_nonnegative
                step_ctx.relevance_support = known.relevance_support
            if constant and any(n in constant for n in step.inputs):
                step_ctx.constant_inputs = tuple(n in constant for n in step.inputs)
            inputs = step.inputs
            if step.node in fused:
                below, pair = fused[step.node]
                inputs = below.inputs
                r_in = pair.relevance([_materialize(n, env, by_node) for n in inputs], env[step.node], R, step_ctx)
            else:
                r_in = _relevance_step(step, rules.get(step.name), env, R, step_ctx, by_node)
            for node, r in zip(inputs, r_in):
                if r is None:
                    continue
                if node in relevance:  # fan-out: relevance is summed, a hint about one part no longer holds
                    relevance[node] = relevance[node] + r
                    hints.pop(node, None)
                else:
                    relevance[node] = r
                    if step_ctx.emitted is not None and len(inputs) == 1:
                        hints[node] = step_ctx.emitted
                    elif r is R and hint is not None:
                        hints[node] = hint  # relevance handed on unchanged: what the hint says still holds
            env.pop(step.node, None)
        if result is None:
            result = torch.zeros_like(x)
        result = result.contiguous()
    return Propagation(outputs=out, value=value, relevance=result, layers=layers, target=ctx.target)
