"""Hugging Face ``transformers`` models -> :class:`neon.Network`, traced with ``torch.export``.

transformers 5 has no ``torch.fx`` tracer of its own any more (``transformers.utils.fx`` is gone), and its
forward passes branch on Python values (masks, caches, attention back-ends). ``torch.export`` traces such
code soundly: every branch is decided for the traced input, shapes stay symbolic in the batch size and
the sequence length, and guards refuse inputs the trace does not hold for. The exported graph is in ATen
operations; neon rewrites it into its own vocabulary (``nn.Linear`` for ``aten.linear`` and for GPT-2's
``Conv1D``, ``nn.LayerNorm``, :class:`~neon.layers.TokenEmbedding`, products, softmax, rearrangements)
and decomposes scaled dot-product attention (:mod:`neon.converters.canonizers`).

The model is not modified: it is copied (the copy shares the weights' storage and never writes to it),
and in the copy transformers' hand-written GELU variants (``NewGELUActivation``, ...) become
``nn.GELU(approximate="tanh")``, the same function, so that the identity rule sees one element-wise
non-linearity instead of its arithmetic. The network takes token ids (as integers or floats) and gives the
selected logits; relevance comes back per token: the relevance of the token's embedding vector summed over
the hidden dimension (``docs/theory.md §7``). Position and token-type embeddings are constants of the network:
their share is reported as absorbed.
"""

from __future__ import annotations

import operator
import weakref
from collections.abc import Callable
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import fx, nn

from ..exceptions import UnsupportedLayerError, UnsupportedModelError
from ..layers.embedding import TokenEmbedding, as_token_ids
from ..network import ModelReference, Network
from ..rules.composites import attnlrp
from ._registry import register
from .canonizers import canonicalize_functions, linear_layer
from .tracing import TRACE_LOCK, _depends_on_mode, cached, selector

#: transformers' GELU modules that compute ``gelu(x, approximate="tanh")`` in Python arithmetic.
_TANH_GELU = ("NewGELUActivation", "FastGELUActivation", "GELUTanh", "PytorchGELUTanh", "GELUPytorchTanh")
_ERF_GELU = ("GELUActivation",)
_SILU = ("SiLUActivation",)


def is_transformers_model(model: Any) -> bool:
    """A ``torch.nn.Module`` defined by Hugging Face ``transformers`` (checked without importing it)."""
    return isinstance(model, nn.Module) and type(model).__module__.startswith("transformers.")


@register(is_transformers_model, description="Hugging Face transformers model (BERT, GPT-2, ...), traced with "
          "torch.export", outputs=("logit",))
def neuralize_transformers(model: nn.Module, output: str | None = None, output_selector: Any = "logits",
                           position: int | None = -1, target_names: Any = None) -> Network:
    """Rewrite a Hugging Face model as a :class:`neon.Network` of token ids (the model is left as it was).

    Parameters
    ----------
    model
        A transformers model in evaluation mode, e.g. ``BertForSequenceClassification`` or ``GPT2LMHeadModel``.
    output
        ``"logit"`` (the only explained output: the model's raw logits).
    output_selector
        Which output to explain: ``"logits"`` (default), another key or index of the model's output, or a
        function of the output returning a tensor.
    position
        For outputs with a sequence axis, ``(n, L, k)`` (causal language models, token classification), the
        position whose logits are explained: ``-1`` (default) is the last token, i.e. the next-token
        prediction of a causal LM. ``None`` keeps the output as selected (it must then be ``(n, k)``).
    target_names
        A name per output (default: the model config's ``id2label`` for classifiers with few labels).
    """
    select = selector(output_selector)
    key = ("transformers", output_selector if not callable(output_selector) else id(output_selector), position)
    return cast(Network, cached(model, key, lambda: _build(model, select, position, target_names)))


class _Explained(nn.Module):
    """``model(input_ids)`` -> the explained logits, ``(n, k)``: what is exported and what the network computes."""

    def __init__(self, model: nn.Module, select: Callable[[Any], Any] | None, position: int | None):
        super().__init__()
        self.model = model
        self._select = select
        self._position = position

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        out = self.model(input_ids=as_token_ids(input_ids))
        out = out if self._select is None else self._select(out)
        if not isinstance(out, torch.Tensor):
            raise UnsupportedModelError(f"output_selector gives {type(out).__name__}, not a tensor.")
        if out.dim() == 3 and self._position is not None:
            out = out[:, self._position]
        return out


class _ModelOutput:
    """The model's own forward on token ids (held by weak reference; pickled without the model)."""

    def __init__(self, model: nn.Module, select: Callable[[Any], Any] | None, position: int | None):
        self._model = weakref.ref(model)
        self.select, self.position = select, position

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        model = self._model() if self._model is not None else None
        if model is None:
            raise UnsupportedModelError("the model this network was traced from no longer exists.")
        with torch.no_grad():
            out = _Explained(model, self.select, self.position)(x)
        return out.reshape(len(out), -1)

    def __getstate__(self) -> dict[str, Any]:
        return {"_model": None, "select": None, "position": self.position}


def _check(model: nn.Module) -> None:
    name = type(model).__name__
    training = [p or name for p, m in model.named_modules() if m.training and _depends_on_mode(m)]
    if training:
        raise UnsupportedModelError(
            f"{name} is in training mode, and its forward depends on it (dropout in '{training[0]}'). Call "
            "model.eval() before explaining; neon never changes your model's mode."
        )
    hooked = [p or name for p, m in model.named_modules() if m._forward_hooks or m._forward_pre_hooks]
    if hooked:
        raise UnsupportedModelError(
            f"{name} has forward hooks that may change what it computes (at '{hooked[0]}'); remove them before "
            "explaining."
        )


def _example(model: nn.Module) -> torch.Tensor:
    config = getattr(model, "config", None)
    vocab = int(getattr(config, "vocab_size", 2) or 2)
    longest = int(getattr(config, "max_position_embeddings", 0) or getattr(config, "n_positions", 0) or 512)
    length = max(2, min(7, longest))
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    return (torch.arange(3 * length, device=device).reshape(3, length) % max(vocab - 1, 1) + 1).long()


def _canonical_activations(model: nn.Module) -> None:
    for name, module in list(model.named_modules()):
        kind = type(module).__name__
        new: nn.Module | None = None
        if kind in _TANH_GELU:
            new = nn.GELU(approximate="tanh")
        elif kind in _ERF_GELU and not getattr(module, "use_gelu_python", False):
            new = nn.GELU()
        elif kind in _SILU:
            new = nn.SiLU()
        if new is not None and name:
            parent, _, attr = name.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, attr, new)


def _build(model: nn.Module, select: Callable[[Any], Any] | None, position: int | None,
           target_names: Any) -> Network:
    from .dnn import _copy_sharing_weights  # here: dnn's converter must register after this module's

    _check(model)
    try:
        clone, shared = _copy_sharing_weights(model)
    except Exception as err:  # noqa: BLE001 - any failure to copy means we cannot work safely
        raise UnsupportedModelError(f"cannot copy {type(model).__name__} to neuralize it: {err}") from err
    clone.eval()
    for p in clone.parameters():
        p.requires_grad_(False)
    config = getattr(clone, "config", None)
    if config is not None and hasattr(config, "use_cache"):
        config.use_cache = False  # no key/value cache: one pass over the whole sequence
    _canonical_activations(clone)
    ids = _example(clone)
    longest = int(getattr(config, "max_position_embeddings", 0) or getattr(config, "n_positions", 0) or 4096)
    dims = {"input_ids": {0: torch.export.Dim("batch", min=1, max=1 << 20),
                          1: torch.export.Dim("length", min=2, max=max(longest, 3))}}
    try:
        with TRACE_LOCK, torch.no_grad():
            exported = torch.export.export(_Explained(clone, select, position), (ids,), dynamic_shapes=dims,
                                           strict=False)
    except Exception as err:  # noqa: BLE001 - export raises many types; all mean "cannot trace"
        raise UnsupportedModelError(
            f"torch.export cannot trace {type(model).__name__}: {type(err).__name__}: {str(err)[:600]}"
        ) from err
    gm = from_aten(exported.module(), prefix="model.")
    canonicalize_functions(gm)
    gm.graph.lint()
    gm.recompile()
    gm.neon_shared_weights = shared  # type: ignore[assignment]  # a plain attribute, checked by the engine
    names = target_names
    if names is None and select is not None and position is not None:
        labels = getattr(config, "id2label", None)
        n_out = int(getattr(config, "num_labels", 0) or 0)
        if isinstance(labels, dict) and labels and n_out == len(labels) and n_out <= 1000 \
                and not getattr(config, "is_decoder", False) and "LMHead" not in type(model).__name__:
            names = [labels[i] for i in range(n_out)]
    net = Network(gm, output_kind="logit", description=type(model).__name__, default_rules=attnlrp(),
                  target_names=names,
                  reference=ModelReference(_ModelOutput(model, select, position), f"{type(model).__name__}.forward"))
    if names is not None:
        with torch.no_grad():
            width = net(ids.to(net.dtype)).shape[1]
        if width != len(names):
            net.target_names = None
    return net


# ---------------------------------------------------------------------------------------------- ATen -> neon
def _packet(target: Any) -> Any:
    return getattr(target, "overloadpacket", None)


_aten = torch.ops.aten

#: ATen ops that are rearrangements or element-wise maps, as the torch calls neon's graph classifies.
_AS_METHOD = {
    _aten.view: "view", _aten.reshape: "reshape", _aten._unsafe_view: "reshape", _aten.transpose: "transpose",
    _aten.permute: "permute", _aten.unsqueeze: "unsqueeze", _aten.squeeze: "squeeze", _aten.expand: "expand",
    _aten.clone: "clone", _aten.contiguous: "contiguous", _aten.alias: "contiguous", _aten.split: "split",
    _aten.split_with_sizes: "split", _aten.chunk: "chunk", _aten.flatten: "flatten", _aten.sym_size: "size",
    _aten.t: "t",
}
_AS_FUNCTION: dict[Any, Callable[..., Any]] = {
    _aten.add: operator.add, _aten.mul: operator.mul, _aten.div: operator.truediv, _aten.sub: operator.sub,
    _aten.matmul: torch.matmul, _aten.bmm: torch.bmm, _aten.mm: torch.matmul, _aten.cat: torch.cat,
    _aten.stack: torch.stack, _aten.tanh: torch.tanh, _aten.sigmoid: torch.sigmoid, _aten.relu: torch.relu,
    _aten.silu: F.silu, _aten.gelu: F.gelu, _aten.mean: torch.mean, _aten.sum: torch.sum,
    _aten.scaled_dot_product_attention: F.scaled_dot_product_attention,
}
#: ATen ops without effect on values (checks of the trace).
_DROP = {_aten._assert_tensor_metadata, _aten._assert_scalar, _aten.sym_constrain_range_for_size,
         _aten._assert_async}


class _Lowering:
    """Copies an exported (ATen) graph into a new graph module in neon's vocabulary."""

    def __init__(self, source: fx.GraphModule, prefix: str):
        self.source, self.prefix = source, prefix
        self.root = nn.Module()
        self.graph = fx.Graph()
        self.env: dict[fx.Node, Any] = {}
        self.names: set[str] = set()
        self.constant: set[fx.Node] = set()

    def tensor(self, node: Any) -> torch.Tensor | None:
        if isinstance(node, fx.Node) and node.op == "get_attr":
            obj: Any = self.source
            for part in str(node.target).split("."):
                obj = getattr(obj, part)
            return obj if isinstance(obj, torch.Tensor) else None
        return None

    def path(self, node: fx.Node) -> str:
        stack = node.meta.get("nn_module_stack") or {}
        entries = [v for v in stack.values() if isinstance(v, tuple) and not str(v[0]).startswith("_")]
        path = str(entries[-1][0]) if entries else node.name
        if path.startswith(self.prefix):
            path = path[len(self.prefix):]
        base = path.replace("-", "_") or node.name
        name, i = base, 1
        while name in self.names:
            name, i = f"{base}_call{i}", i + 1
        self.names.add(name)
        return name

    def module(self, node: fx.Node, module: nn.Module, x: Any) -> fx.Node:
        target = self.path(node)
        _install(self.root, target, module)
        return self.graph.call_module(target, (self.arg(x),))

    def meta(self, node: fx.Node) -> dict[str, Any]:
        """The node's module stack with the model's own paths (for labels in summaries and error messages)."""
        stack = node.meta.get("nn_module_stack") or {}
        entries = {k: (str(v[0])[len(self.prefix):] if str(v[0]).startswith(self.prefix) else str(v[0]), v[1])
                   for k, v in stack.items() if isinstance(v, tuple) and not str(v[0]).startswith("_")}
        return {"nn_module_stack": entries} if entries else {}

    def arg(self, a: Any) -> Any:
        return fx.node.map_arg(a, lambda n: self.env[n])

    def attr(self, node: fx.Node) -> fx.Node:
        value = self.tensor(node)
        name = "neon_const_" + str(node.target).replace(".", "_")
        if not hasattr(self.root, name):
            if isinstance(value, nn.Parameter):
                self.root.register_parameter(name, nn.Parameter(value.detach(), requires_grad=False))
            elif isinstance(value, torch.Tensor):
                self.root.register_buffer(name, value.detach(), persistent=False)
            else:
                setattr(self.root, name, value)
        return self.graph.get_attr(name)

    def lower(self) -> fx.GraphModule:
        out_value: Any = None
        for node in self.source.graph.nodes:
            if node.op == "placeholder":
                self.env[node] = self.graph.placeholder(node.name)
                continue
            if node.op == "get_attr":
                self.constant.add(node)
                self.env[node] = self.attr(node)
                continue
            if node.op == "call_module":
                if node.users:
                    raise UnsupportedModelError(f"the exported graph calls the module '{node.target}'.")
                continue  # torch.export's guard function: checks of the input, no value
            if node.op == "output":
                flat = node.args[0]
                out_value = flat[0] if isinstance(flat, (tuple, list)) else flat
                continue
            packet = _packet(node.target)
            if packet in _DROP:
                continue
            if packet is _aten.sym_size:  # a shape: a constant of the network, read from the input
                self.constant.add(node)
                self.env[node] = self.graph.call_method("size", self.arg(tuple(node.args)))
                continue
            if all(n in self.constant for n in node.all_input_nodes):
                self.constant.add(node)
            new = self.lower_call(node)
            if isinstance(new, fx.Node) and new.op != "placeholder":
                new.meta.update(self.meta(node))
            self.env[node] = new
        if not isinstance(out_value, fx.Node):
            raise UnsupportedModelError("the exported model does not return one tensor.")
        self.graph.output(self.env[out_value])
        return fx.GraphModule(self.root, self.graph, class_name="ExportedTransformer")

    def lower_call(self, node: fx.Node) -> Any:
        t = node.target
        args: tuple[Any, ...] = tuple(node.args)
        kwargs: dict[str, Any] = dict(node.kwargs)
        packet = _packet(t)
        g = self.graph
        if node in self.constant or node.op != "call_function":
            new = g.node_copy(node, lambda n: self.env[n])  # a constant: evaluated as exported
            return new
        if packet is _aten.linear and self.tensor(args[1]) is not None:
            w = self.tensor(args[1])
            b = self.tensor(args[2]) if len(args) > 2 else None
            return self.module(node, linear_layer(cast(torch.Tensor, w), b), args[0])
        if packet is _aten.addmm and self.tensor(args[0]) is not None and self.tensor(args[2]) is not None \
                and not kwargs:
            w = cast(torch.Tensor, self.tensor(args[2]))
            return self.module(node, linear_layer(w.t(), self.tensor(args[0])), args[1])
        if packet is _aten.layer_norm and all(self.tensor(a) is not None or a is None for a in args[2:4]):
            shape = list(args[1])
            eps = float(args[4]) if len(args) > 4 else 1e-5
            layer = nn.LayerNorm(shape, eps=eps, elementwise_affine=False)
            if len(args) > 2 and args[2] is not None:
                layer.weight = nn.Parameter(cast(torch.Tensor, self.tensor(args[2])).detach(), requires_grad=False)
            if len(args) > 3 and args[3] is not None:
                layer.bias = nn.Parameter(cast(torch.Tensor, self.tensor(args[3])).detach(), requires_grad=False)
            return self.module(node, layer, args[0])
        if packet is _aten.embedding and self.tensor(args[0]) is not None:
            w = cast(torch.Tensor, self.tensor(args[0]))
            pad = args[2] if len(args) > 2 and isinstance(args[2], int) and args[2] >= 0 else None
            emb = TokenEmbedding(w.shape[0], w.shape[1], padding_idx=pad, _weight=w.detach(), _freeze=True,
                                 device=w.device, dtype=w.dtype)
            return self.module(node, emb, args[1])
        if t is operator.getitem:
            return g.call_function(operator.getitem, self.arg(tuple(args)))
        if packet is _aten.dropout:
            if len(args) > 2 and args[2]:
                raise UnsupportedModelError("the exported model applies dropout in training mode; call model.eval().")
            return g.call_function(F.dropout, (self.arg(args[0]), 0.0, False))
        if packet in (_aten.softmax, _aten._softmax):
            return g.call_function(torch.softmax, (self.arg(args[0]),), {"dim": int(args[1])})
        if packet in (_aten.slice, _aten.select):
            return g.call_function(operator.getitem, (self.arg(args[0]), _index(packet, args)))
        if packet in (_aten.to, _aten._to_copy):
            dtype = kwargs.get("dtype", args[1] if len(args) > 1 and isinstance(args[1], torch.dtype) else None)
            if isinstance(dtype, torch.dtype) and not dtype.is_floating_point:
                return self.arg(args[0])  # token ids as integers: TokenEmbedding takes them in any dtype
            return g.call_method("to", (self.arg(args[0]),), {"dtype": dtype} if dtype is not None else {})
        if packet in _AS_METHOD:
            return g.call_method(_AS_METHOD[packet], self.arg(tuple(args)), self.arg(kwargs))
        if packet in _AS_FUNCTION:
            if packet is _aten.add and kwargs.get("alpha", 1) != 1:
                return g.call_function(torch.add, self.arg(tuple(args)), self.arg(kwargs))
            if packet is _aten.gelu:
                return g.call_function(cast("Callable[..., Any]", F.gelu), (self.arg(args[0]),),
                                       {"approximate": kwargs.get("approximate", "none")})
            return g.call_function(_AS_FUNCTION[packet], self.arg(tuple(args)), self.arg(kwargs))
        raise UnsupportedLayerError(
            f"unsupported operation {t} of the exported model, in '{self.path(node)}' (graph node '{node.name}'); "
            "neon explains transformers built from linear layers, layer norms, embeddings, element-wise "
            "activations, attention (softmax and products of activations), residual additions and rearrangements."
        )


def _install(root: nn.Module, target: str, module: nn.Module) -> None:
    parent = root
    *parts, last = target.split(".")
    for part in parts:
        if not hasattr(parent, part):
            parent.add_module(part, nn.Module())
        parent = getattr(parent, part)
    parent.add_module(last, module)


def _index(packet: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
    dim = int(args[1]) if len(args) > 1 else 0
    if packet is _aten.select:
        return (slice(None),) * dim + (args[2],)
    start = args[2] if len(args) > 2 else None
    end = args[3] if len(args) > 3 else None
    step = args[4] if len(args) > 4 else 1
    if isinstance(end, int) and end >= (1 << 62):
        end = None
    return (slice(None),) * dim + (slice(start, end, step),)


def from_aten(exported: fx.GraphModule, prefix: str = "") -> fx.GraphModule:
    """A graph module in neon's vocabulary from ``torch.export``'s ``ExportedProgram.module()``.

    ``prefix`` is removed from module paths (the wrapper's attribute name), so that layers keep the model's own
    names (``bert.encoder.layer.0.attention.self.query``).
    """
    return _Lowering(exported, prefix).lower()
