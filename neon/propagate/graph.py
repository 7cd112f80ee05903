"""What a neon network is made of: the supported operations of a ``torch.fx`` graph.

Every node of a :class:`neon.Network` graph is classified once, when the network is built, into
one :class:`~neon.propagate.kinds.NodeKind`:

``LAYER``       a module with an LRP rule: any module type with an entry in the default-rule
                registry :mod:`neon.rules.defaults` (affine layers, pools, activations, NEON layers);
``MOVE``        an exact rearrangement of values (flatten, view, reshape, cat, permute, slicing,
                identity, dropout in eval mode): relevance moves with the values;
``ACTIVATION``  an element-wise activation given as a function (``F.relu`` ...): a rule, ``Pass`` by default;
``SCALE``       multiplication/division by a constant number: relevance passes (it is conserved);
``SUM``         sums of tensors (residual ``a + b``, ``torch.add``, ``mean``/``sum`` over axes,
                functional average pooling): a rule, the proportional split by default;
``MAX``         functional max pooling: a rule, winner takes all by default;
``SOFTMAX``     a softmax given as a function (attention weights): a rule, AttnLRP's softmax rule by default;
``PRODUCT``     a product of tensors (``a * b``, ``q @ k.transpose(-2, -1)``, ``torch.bmm``, ``torch.einsum``):
                a rule, AttnLRP's uniform rule by default (``docs/theory.md §7``);
``CONST``       values that are not tensors (``x.size(0)``, shapes): no relevance.

Anything else is refused with an error naming the operation and where it is in the model.
In-place operations of the traced model (``ReLU(inplace=True)``, ``out += identity``) are run
out of place, so every value the rules need is still intact in the backward pass.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import fx, nn

from ..exceptions import UnsupportedLayerError
from ..layers.families import MOVE_MODULES
from ..layers.pooling import max_pool_indices
from ..rules.defaults import has_default
from .kinds import NodeKind


def _drop_inplace(fn: Callable[..., Any]) -> Callable[..., Any]:
    def run(*args: Any, **kwargs: Any) -> Any:
        kwargs.pop("inplace", None)
        return fn(*args, **kwargs)

    run.__name__ = getattr(fn, "__name__", "op")
    return run


_PASS_FUNCTIONS: dict[Any, Callable[..., Any]] = {
    F.relu: _drop_inplace(F.relu), torch.relu: torch.relu, F.relu6: _drop_inplace(F.relu6),
    F.leaky_relu: _drop_inplace(F.leaky_relu), F.elu: _drop_inplace(F.elu), F.gelu: F.gelu,
    F.silu: _drop_inplace(F.silu), F.hardswish: _drop_inplace(F.hardswish),
    F.hardtanh: _drop_inplace(F.hardtanh), F.hardsigmoid: _drop_inplace(F.hardsigmoid),
    torch.tanh: torch.tanh, torch.sigmoid: torch.sigmoid, F.softplus: F.softplus,
}
_PASS_METHODS = {"relu": torch.relu, "relu_": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh}

_MOVE_FUNCTIONS: dict[Any, Callable[..., Any]] = {
    torch.flatten: torch.flatten, torch.reshape: torch.reshape, torch.cat: torch.cat, torch.concat: torch.cat,
    torch.stack: torch.stack, torch.permute: torch.permute, torch.transpose: torch.transpose,
    torch.squeeze: torch.squeeze, torch.unsqueeze: torch.unsqueeze, torch.split: torch.split,
    torch.chunk: torch.chunk, torch.narrow: torch.narrow,
    F.dropout: lambda x, *a, **k: x, F.dropout2d: lambda x, *a, **k: x,
}
_MOVE_METHODS = {
    "view", "reshape", "flatten", "permute", "transpose", "contiguous", "squeeze", "unsqueeze", "unflatten",
    "expand", "expand_as", "clone", "split", "chunk", "narrow", "to", "type_as", "float", "double", "t",
}

_SUM_FUNCTIONS: dict[Any, Callable[..., Any]] = {
    operator.add: operator.add, operator.iadd: operator.add, torch.add: torch.add,
    torch.sum: torch.sum, torch.mean: torch.mean,
    F.avg_pool1d: F.avg_pool1d, F.avg_pool2d: F.avg_pool2d,
    F.adaptive_avg_pool1d: F.adaptive_avg_pool1d, F.adaptive_avg_pool2d: F.adaptive_avg_pool2d,
}
_SUM_METHODS: dict[str, Callable[..., Any]] = {
    "add": torch.add, "add_": torch.add, "sum": torch.sum, "mean": torch.mean,
}
#: The targets of a ``SUM`` node that add two tensors (``a + b``, ``torch.add``, ``a.add(b)``).
ADD_TARGETS = (operator.add, operator.iadd, torch.add, "add", "add_")

_MAX_FUNCTIONS: dict[Any, Callable[..., Any]] = {
    F.max_pool1d: F.max_pool1d, F.max_pool2d: F.max_pool2d,
    F.adaptive_max_pool1d: F.adaptive_max_pool1d, F.adaptive_max_pool2d: F.adaptive_max_pool2d,
}

_SOFTMAX_FUNCTIONS: dict[Any, Callable[..., Any]] = {F.softmax: F.softmax, torch.softmax: torch.softmax}
_SOFTMAX_METHOD: Callable[..., Any] = torch.softmax
#: Products of tensors. ``a * b`` is a product only when both factors are tensors; times a number it is a scale.
_PRODUCT_FUNCTIONS: dict[Any, Callable[..., Any]] = {
    operator.matmul: operator.matmul, torch.matmul: torch.matmul, torch.bmm: torch.bmm, torch.einsum: torch.einsum,
    operator.mul: operator.mul, operator.imul: operator.mul, torch.mul: torch.mul,
}
_PRODUCT_METHODS: dict[str, Callable[..., Any]] = {"matmul": torch.matmul, "bmm": torch.bmm, "mul": torch.mul,
                                                   "mul_": torch.mul}

_SCALE_FUNCTIONS = {operator.mul: operator.mul, operator.truediv: operator.truediv,
                    operator.imul: operator.mul, operator.itruediv: operator.truediv,
                    torch.mul: torch.mul, torch.div: torch.div}
_CONST_METHODS = {"size", "dim"}
#: Functions of tensors whose (integer) values carry no relevance.
_CONST_FUNCTIONS = {max_pool_indices}

SUPPORTED_TEXT = (
    "Supported: nn.Linear, nn.Conv1d, nn.Conv2d, nn.BatchNorm1d/2d (folded), element-wise activations "
    "(nn.ReLU, F.relu, ReLU6, ...; relevance passes), nn.MaxPool1d/2d, nn.AvgPool1d/2d, "
    "nn.AdaptiveAvgPool1d/2d, nn.AdaptiveMaxPool1d/2d, nn.Flatten, nn.Identity, nn.Dropout, torch.flatten, "
    "view/reshape/permute, torch.cat, residual additions (+, torch.add), mean/sum over axes, "
    "multiplication by constants, transformer parts (nn.LayerNorm, nn.RMSNorm, nn.Embedding, "
    "nn.MultiheadAttention, F.scaled_dot_product_attention, softmax, products of tensors a * b and matmul), "
    "and neon's NEON layers (ReduceMin/ReduceMax, SquaredDistance, CentroidContrast, LogOdds)."
)


@dataclass
class Step:
    """One node of the graph with what the engine needs to run it forward and backward."""

    node: fx.Node
    kind: NodeKind
    label: str
    module: nn.Module | None = None
    fn: Callable[..., Any] | None = None
    inputs: list[fx.Node] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.node.name

    @property
    def adds_tensors(self) -> bool:
        """A plain ``a + b`` of two tensors (no constant, no ``alpha``): what a residual addition is."""
        node = self.node
        return (self.kind is NodeKind.SUM and node.target in ADD_TARGETS and not node.kwargs
                and len(node.args) == 2 and list(node.args) == self.inputs)

    @property
    def args_are_inputs(self) -> bool:
        """The node is called with exactly its tensor inputs (no other argument)."""
        return not self.node.kwargs and list(self.node.args) == self.inputs


def _module_path(node: fx.Node) -> str | None:
    stack = node.meta.get("nn_module_stack")
    if not stack:
        return None
    path = list(stack.values())[-1]
    return str(path[0] if isinstance(path, tuple) else path) or None


def _label(node: fx.Node) -> str:
    """``torch.sort in block.1``: the operation and the module whose forward calls it."""
    if node.op == "call_module":
        return str(node.target)
    path = _module_path(node)
    return f"{_target_name(node)} in {path}" if path else f"{_target_name(node)} (node {node.name})"


def _where(node: fx.Node) -> str:
    if node.op == "call_module":
        return f"at module path '{node.target}'"
    path = _module_path(node)
    where = f"in the forward of module '{path}'" if path else "in the model's top-level forward"
    return f"{where} (graph node '{node.name}')"


def _target_name(node: fx.Node) -> str:
    t = node.target
    if isinstance(t, str):
        return f".{t}()" if node.op == "call_method" else t
    mod = getattr(t, "__module__", "") or ""
    return f"{mod}.{getattr(t, '__name__', repr(t))}".lstrip(".")


def _unsupported(node: fx.Node, what: str) -> UnsupportedLayerError:
    return UnsupportedLayerError(f"unsupported {what} {_where(node)}. {SUPPORTED_TEXT}")


def _is_scalar(arg: Any) -> bool:
    return isinstance(arg, (int, float)) and not isinstance(arg, bool)


def classify(gm: fx.GraphModule) -> list[Step]:
    """Classify every node of ``gm``; raise :class:`UnsupportedLayerError` for the first unsupported one."""
    steps: list[Step] = []
    const: set[fx.Node] = set()
    for node in gm.graph.nodes:
        inputs = [n for n in node.all_input_nodes if n not in const]
        if node.op == "placeholder":
            steps.append(Step(node, NodeKind.INPUT, node.name))
        elif node.op == "output":
            steps.append(Step(node, NodeKind.OUTPUT, "output", inputs=inputs))
        elif node.op == "get_attr":
            const.add(node)
            steps.append(Step(node, NodeKind.CONST, str(node.target), fn=_Attr(gm, str(node.target))))
        elif node.op == "call_module":
            module = gm.get_submodule(node.target)
            label = str(node.target)
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                raise UnsupportedLayerError(
                    f"{type(module).__name__} at {label} was not folded; build the network with "
                    "neon.neuralize(model), which folds BatchNorm into the neighbouring affine layer."
                )
            if isinstance(module, MOVE_MODULES):
                steps.append(Step(node, NodeKind.MOVE, label, module=module, fn=_identity_if_dropout(module),
                                  inputs=inputs))
            elif has_default(module):
                steps.append(Step(node, NodeKind.LAYER, label, module=_out_of_place(module), inputs=inputs))
            else:
                raise _unsupported(node, f"module {type(module).__name__}")
        elif node.op in ("call_function", "call_method"):
            steps.append(_classify_call(node, inputs, const))
            if steps[-1].kind is NodeKind.CONST:
                const.add(node)
        else:  # pragma: no cover - fx has no other node kinds
            raise _unsupported(node, f"node kind {node.op}")
    return steps


class _Attr:
    """Reads a constant attribute of the graph module when run (a callable object, so deep copies follow it)."""

    def __init__(self, owner: nn.Module, target: str):
        self.owner, self.target = owner, target

    def __call__(self) -> Any:
        obj: Any = self.owner
        for part in self.target.split("."):
            obj = getattr(obj, part)
        return obj


def _const(node: fx.Node, label: str) -> Step:
    """A node whose value depends on shapes only (``x.size(0)``, ``x.shape``): evaluated, never explained."""
    fn = _method(cast(str, node.target)) if node.op == "call_method" else cast("Callable[..., Any]", node.target)
    return Step(node, NodeKind.CONST, label, fn=fn, inputs=list(node.all_input_nodes))


def _identity_if_dropout(module: nn.Module) -> Callable[..., Any]:
    if isinstance(module, (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout, nn.Identity)):
        return lambda x: x
    return module


def _out_of_place(module: nn.Module) -> nn.Module:
    if getattr(module, "inplace", False):
        # nn.Module.__setattr__ is typed for tensors and modules only; plain attributes are allowed
        module.inplace = False  # type: ignore[assignment]  # our own copy: the user's model is never touched
    return module


def _classify_call(node: fx.Node, inputs: list[fx.Node], const: set[fx.Node]) -> Step:
    t, label = node.target, _label(node)
    if node.op == "call_method":
        if t in _CONST_METHODS or all(n in const for n in node.all_input_nodes):
            return _const(node, label)  # shapes, or a method of a constant (a class token's .expand)
        if t in _PASS_METHODS:
            return Step(node, NodeKind.ACTIVATION, label, fn=_PASS_METHODS[t], inputs=inputs)
        if t in _MOVE_METHODS:
            return Step(node, NodeKind.MOVE, label, fn=_method(t), inputs=inputs)
        if t in _SUM_METHODS:
            return Step(node, NodeKind.SUM, label, fn=_SUM_METHODS[t], inputs=inputs)
        if t in ("mul", "div", "mul_", "div_") and _scalar_only(node, inputs):
            return Step(node, NodeKind.SCALE, label, fn=_method(t.rstrip("_")), inputs=inputs)
        if t == "softmax":
            return Step(node, NodeKind.SOFTMAX, label, fn=_SOFTMAX_METHOD, inputs=inputs)
        if t in _PRODUCT_METHODS and _tensor_factors(node):
            return Step(node, NodeKind.PRODUCT, label, fn=_PRODUCT_METHODS[t], inputs=inputs)
        raise _unsupported(node, f"method .{t}()")
    if t is getattr and node.args[1] in ("shape", "dtype", "device"):
        return _const(node, label)
    if t is operator.getitem:
        if node.args[0] in const or not isinstance(node.args[0], fx.Node):
            return _const(node, label)
        return Step(node, NodeKind.MOVE, label, fn=operator.getitem, inputs=inputs)
    if t in _PASS_FUNCTIONS:
        return Step(node, NodeKind.ACTIVATION, label, fn=_PASS_FUNCTIONS[t], inputs=inputs)
    if t in _MOVE_FUNCTIONS:
        return Step(node, NodeKind.MOVE, label, fn=_MOVE_FUNCTIONS[t], inputs=inputs)
    if t in _SUM_FUNCTIONS:
        # constant + tensor is still a sum: the constant takes its share
        return Step(node, NodeKind.SUM, label, fn=_SUM_FUNCTIONS[t], inputs=inputs)
    if t in _MAX_FUNCTIONS:
        return Step(node, NodeKind.MAX, label, fn=_MAX_FUNCTIONS[t], inputs=inputs)
    if t in _SCALE_FUNCTIONS and _scalar_only(node, inputs):
        return Step(node, NodeKind.SCALE, label, fn=_SCALE_FUNCTIONS[t], inputs=inputs)
    if all(n in const for n in node.all_input_nodes) or t in _CONST_FUNCTIONS:
        return _const(node, label)
    if t in _SOFTMAX_FUNCTIONS:
        return Step(node, NodeKind.SOFTMAX, label, fn=_SOFTMAX_FUNCTIONS[t], inputs=inputs)
    if t in _PRODUCT_FUNCTIONS and _tensor_factors(node):
        return Step(node, NodeKind.PRODUCT, label, fn=_PRODUCT_FUNCTIONS[t], inputs=inputs)
    raise _unsupported(node, f"function {_target_name(node)}")


def _scalar_only(node: fx.Node, inputs: list[fx.Node]) -> bool:
    others = [a for a in node.args if not isinstance(a, fx.Node)]
    return len(inputs) == 1 and len(others) == 1 and _is_scalar(others[0])


def _tensor_factors(node: fx.Node) -> bool:
    """Every factor of the product is a tensor (``a * 2`` is a scale; ``a * b`` and ``a @ w`` are products)."""
    factors = [a for a in node.args if not isinstance(a, str)]  # einsum's equation is no factor
    return len(factors) >= 2 and all(isinstance(a, fx.Node) for a in factors)


def _method(name: str) -> Callable[..., Any]:
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        return getattr(self, name)(*args, **kwargs)

    call.__name__ = name
    return call
