"""The propagation engine: one forward pass that keeps what the rules need, one backward relevance pass.

The engine knows graphs, layers and rules, nothing of the models they came from. The backward
pass visits the nodes in reverse topological order, sums relevance over fan-out (residual
branches, a module called twice) and frees every activation as soon as no rule needs it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, fx

from .exceptions import RuleError
from .graph import Step
from .rules.base import Context, Rule, vjp
from .rules.pooling import Proportional, WinnerTakesAll

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
        return step.module(*args, **kwargs)
    if step.kind == "move" and step.module is not None:
        return step.fn(*args)
    return step.fn(*args, **kwargs)


def op_of(step: Step, env: Mapping[fx.Node, Any]) -> Callable[..., Tensor]:
    """The node as a function of its tensor inputs (other arguments bound from the forward pass)."""

    def op(*values: Tensor) -> Tensor:
        return _run(step, _lookup(env, dict(zip(step.inputs, values))))

    return op


def forward(steps: list[Step], x: Tensor, keep: bool = True) -> tuple[Tensor, dict[fx.Node, Any]]:
    """Run the graph on ``x``; return its output and (if ``keep``) every intermediate value."""
    env: dict[fx.Node, Any] = {}
    users_left = {s.node: len(s.node.users) for s in steps}
    out = None
    for step in steps:
        if step.kind == "input":
            env[step.node] = x
        elif step.kind == "output":
            out = env[step.inputs[0]]
        else:
            env[step.node] = _run(step, _lookup(env))
        if not keep:
            for n in step.node.all_input_nodes:
                users_left[n] -= 1
                if users_left[n] == 0 and n in env:
                    del env[n]
    if not isinstance(out, Tensor):
        raise RuleError("a neon network must return a single tensor of shape (n, n_targets).")
    return out, env


def _relevance_step(step: Step, rule: Rule | None, env: dict[fx.Node, Any], R: Tensor,
                    ctx: Context) -> tuple[Tensor | None, ...]:
    inputs = [env[n] for n in step.inputs]
    kind = step.kind
    if kind == "layer":
        assert rule is not None
        return rule.relevance(step.module, inputs, env[step.node], R, ctx)
    if kind in ("pass", "scale"):
        return (R,) if len(inputs) == 1 else _unsplittable(step)
    op = op_of(step, env)
    if kind == "move":
        return vjp(op, inputs, R)
    if kind == "sum":
        return (rule or _SUM_RULE).relevance(op, inputs, env[step.node], R, ctx)
    if kind == "max":
        return (rule or _MAX_RULE).relevance(op, inputs, env[step.node], R, ctx)
    raise RuleError(f"no relevance rule for node {step.label} of kind {kind}.")  # pragma: no cover


def _unsplittable(step: Step) -> tuple[Tensor | None, ...]:
    raise RuleError(f"{step.label} combines several tensors element-wise; neon cannot split its relevance.")


def propagate(
    steps: list[Step],
    rules: Mapping[str, Rule],
    x: Tensor,
    target: Tensor | None,
    record: bool = False,
    baseline: Tensor | None = None,
) -> Propagation:
    """Explain ``target`` (one index per sample; ``None``: the arg-max output) of the network at ``x``.

    The initial relevance is the value of the explained output (THEORY.md section 1), minus
    ``baseline`` (one value per sample, ``f(x~)`` of a reference point) when given: then the
    explained value is ``f(x) - f(x~)``.
    """
    with torch.no_grad():
        out, env = forward(steps, x, keep=True)
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
            r_in = _relevance_step(step, rules.get(step.name), env, R, ctx)
            for node, r in zip(step.inputs, r_in):
                if r is None:
                    continue
                relevance[node] = relevance[node] + r if node in relevance else r
            env.pop(step.node, None)
        if result is None:
            result = torch.zeros_like(x)
    return Propagation(outputs=out, value=value, relevance=result, layers=layers, target=ctx.target)
