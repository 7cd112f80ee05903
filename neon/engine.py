"""The propagation engine: one forward pass that keeps what the rules need, one backward relevance pass.

The engine knows graphs, layers and rules, nothing of the models they came from. The backward
pass visits the nodes in reverse topological order, sums relevance over fan-out (residual
branches, a module called twice) and frees every activation as soon as no rule needs it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn
from torch.nn.modules.utils import _pair

from ._numeric import is_channels_last, safe_divide
from .exceptions import RuleError
from .graph import ACTIVATION_MODULES, ADD_TARGETS, Step
from .graph_facts import layer_facts
from .layers.affine import like_input
from .rules.base import Context, Rule, vjp
from .rules.pooling import Pass, Proportional, WinnerTakesAll

_SUM_RULE = Proportional()
_MAX_RULE = WinnerTakesAll()


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
    args = fx.node.map_arg(step.node.args, look)
    kwargs = fx.node.map_arg(step.node.kwargs, look)
    if step.kind == "layer":
        if type(step.module) is nn.Conv2d and len(args) == 1 and not kwargs and is_channels_last(args[0]):
            # the same convolution, with the weight kept in the input's layout instead of copied per call
            return step.module._conv_forward(args[0], like_input(step.module.weight, args[0]), step.module.bias)
        return step.module(*args, **kwargs)
    if step.kind == "move" and step.module is not None:
        return step.fn(*args)
    return step.fn(*args, **kwargs)


def op_of(step: Step, env: Mapping[fx.Node, Any]) -> Callable[..., Tensor]:
    """The node as a function of its tensor inputs (other arguments bound from the forward pass)."""

    def op(*values: Tensor) -> Tensor:
        return _run(step, _lookup(env, dict(zip(step.inputs, values))))

    return op


def _max_pool_with_indices(module: nn.MaxPool2d, a: Tensor) -> tuple[Tensor, Tensor]:
    return F.max_pool2d(a, module.kernel_size, module.stride, module.padding, module.dilation,
                        ceil_mode=module.ceil_mode, return_indices=True)


def _max_pool_backward(module: nn.MaxPool2d, a: Tensor, R: Tensor, indices: Tensor) -> Tensor:
    """Winner-takes-all through a max pool with the winners found in the forward pass (no recomputation)."""
    stride = module.stride if module.stride is not None else module.kernel_size
    layout = torch.channels_last if is_channels_last(a) else torch.contiguous_format
    return torch.ops.aten.max_pool2d_with_indices_backward(
        R.contiguous(memory_format=layout), a, _pair(module.kernel_size), _pair(stride), _pair(module.padding),
        _pair(module.dilation), module.ceil_mode, indices)


def forward(steps: list[Step], x: Tensor, keep: bool = True,
            recompute: frozenset[fx.Node] | set[fx.Node] = frozenset(),
            pool_indices: dict[fx.Node, Tensor] | None = None) -> tuple[Tensor, dict[fx.Node, Any]]:
    """Run the graph on ``x``; return its output and (if ``keep``) every intermediate value.

    Nodes in ``recompute`` are not kept once their last user has run, even with ``keep``: the
    backward pass recomputes them on demand (:func:`cheap_nodes`). With ``pool_indices``, the
    winners of every ``nn.MaxPool2d`` are kept there, so the backward pass need not recompute the pool
    (recomputing it with autograd costs about six times as much as routing relevance by the indices).
    """
    env: dict[fx.Node, Any] = {}
    users_left = {s.node: len(s.node.users) for s in steps}
    out = None
    for step in steps:
        if step.kind == "input":
            env[step.node] = x
        elif step.kind == "output":
            out = env[step.inputs[0]]
        elif pool_indices is not None and step.kind == "layer" and type(step.module) is nn.MaxPool2d \
                and len(step.inputs) == 1 and not step.node.kwargs:
            env[step.node], pool_indices[step.node] = _max_pool_with_indices(step.module, env[step.inputs[0]])
        else:
            env[step.node] = _run(step, _lookup(env))
        if not keep or recompute:
            for n in step.node.all_input_nodes:
                users_left[n] -= 1
                if users_left[n] == 0 and n in env and (not keep or n in recompute):
                    del env[n]
    if not isinstance(out, Tensor):
        raise RuleError("a neon network must return a single tensor of shape (n, n_targets).")
    return out, env


def cheap_nodes(steps: list[Step]) -> set[fx.Node]:
    """Nodes that cost less to recompute than to keep: activations and rearrangements of values.

    Keeping only the pre-activation ``z`` of a ``conv -> ReLU`` pair (the rules need ``z``, and the
    next layer's input ``relu(z)`` is recomputed when its rule runs) halves the memory of the
    kept activations, as PyTorch's own in-place ReLU does for the gradient.
    """
    cheap = set()
    for s in steps:
        if s.kind in ("pass", "move", "scale") or (s.kind == "layer" and isinstance(s.module, ACTIVATION_MODULES)):
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
    return any(s.kind == "layer" and type(s.module) is nn.Conv2d for s in steps)


def _relevance_step(step: Step, rule: Rule | None, env: dict[fx.Node, Any], R: Tensor,
                    ctx: Context, by_node: Mapping[fx.Node, Step] | None = None,
                    pool_indices: Mapping[fx.Node, Tensor] | None = None) -> tuple[Tensor | None, ...]:
    kind = step.kind
    if kind == "layer" and type(rule) is Pass and len(step.inputs) == 1:
        return (R,)  # element-wise: relevance passes unchanged, no value needed
    if kind in ("pass", "scale"):
        return (R,) if len(step.inputs) == 1 else _unsplittable(step)
    if by_node is not None:
        for n in step.inputs:
            _materialize(n, env, by_node)
        if kind != "move":  # a move's backward needs its inputs only
            _materialize(step.node, env, by_node)
    inputs = [env[n] for n in step.inputs]
    if kind == "layer":
        assert rule is not None
        if type(rule) is WinnerTakesAll and pool_indices and step.node in pool_indices:
            return (_max_pool_backward(step.module, inputs[0], R, pool_indices.pop(step.node)),)
        return rule.relevance(step.module, inputs, env[step.node], R, ctx)
    op = op_of(step, env)
    if kind == "move":
        return vjp(op, inputs, R)
    if kind == "sum":
        rule = rule or _SUM_RULE
        fast = _residual_add(step, rule, inputs, env[step.node], R)
        return fast if fast is not None else rule.relevance(op, inputs, env[step.node], R, ctx)
    if kind == "max":
        return (rule or _MAX_RULE).relevance(op, inputs, env[step.node], R, ctx)
    raise RuleError(f"no relevance rule for node {step.label} of kind {kind}.")  # pragma: no cover


def _residual_add(step: Step, rule: Rule, inputs: list[Tensor], z: Tensor, R: Tensor) -> tuple[Tensor, ...] | None:
    """``a + b`` under the proportional rule without recomputing the sum or a vector-Jacobian product.

    ``R_a = a R / stab(z)``, ``R_b = b R / stab(z)`` with the stored output ``z``: what
    :class:`~neon.rules.Proportional` computes for a residual addition, in a few element-wise passes.
    """
    if (type(rule) is not Proportional or not rule.stabilizer > 0 or step.node.target not in ADD_TARGETS
            or step.node.kwargs or len(step.node.args) != 2 or list(step.node.args) != step.inputs
            or any(t.shape != z.shape for t in inputs) or R.shape != z.shape):
        return None
    s = safe_divide(R, z, rule.stabilizer)
    a, b = inputs
    return a * s, s.mul_(b)


def _unsplittable(step: Step) -> tuple[Tensor | None, ...]:
    raise RuleError(f"{step.label} combines several tensors element-wise; neon cannot split its relevance.")


def propagate(
    steps: list[Step],
    rules: Mapping[str, Rule],
    x: Tensor,
    target: Tensor | None,
    record: bool = False,
    baseline: Tensor | None = None,
    channels_last: bool | None = None,
) -> Propagation:
    """Explain ``target`` (one index per sample; ``None``: the arg-max output) of the network at ``x``.

    The initial relevance is the value of the explained output (THEORY.md section 1), minus
    ``baseline`` (one value per sample, ``f(x~)`` of a reference point) when given: then the
    explained value is ``f(x) - f(x~)``. ``channels_last`` runs the pass on channels-last images
    (``None``: where :func:`prefers_channels_last` says so); the relevance comes back contiguous.
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
        lazy = cheap_nodes(steps)
        pool_indices: dict[fx.Node, Tensor] = {}
        out, env = forward(steps, x, keep=True, recompute=lazy, pool_indices=pool_indices)
        by_node = {s.node: s for s in steps}
        target = out.argmax(dim=1) if target is None else target
        target = target.to(device=out.device, dtype=torch.long).view(-1, 1)
        value = out.gather(1, target).squeeze(1)
        ctx = Context(target=target.squeeze(1))
        output_step = steps[-1]
        seed = value if baseline is None else value - baseline.to(value).reshape(-1)
        relevance: dict[fx.Node, Tensor] = {
            output_step.inputs[0]: torch.zeros_like(out).scatter(1, target, seed.unsqueeze(1))
        }
        layers: dict[str, Tensor] | None = {} if record else None
        facts = layer_facts(steps, rules)
        result = None
        for step in reversed(steps[:-1]):
            R = relevance.pop(step.node, None)
            if R is None:
                env.pop(step.node, None)
                continue
            if layers is not None:
                layers[step.name] = R
            if step.kind == "input":
                result = R
                continue
            known = facts.get(step.node)
            step_ctx = ctx if known is None else replace(ctx, inputs_nonnegative=known.inputs_nonnegative,
                                                         relevance_support=known.relevance_support)
            r_in = _relevance_step(step, rules.get(step.name), env, R, step_ctx, by_node, pool_indices)
            for node, r in zip(step.inputs, r_in):
                if r is None:
                    continue
                relevance[node] = relevance[node] + r if node in relevance else r
            env.pop(step.node, None)
        if result is None:
            result = torch.zeros_like(x)
        result = result.contiguous()
    return Propagation(outputs=out, value=value, relevance=result, layers=layers, target=ctx.target)
