"""Canonizers: transformer parts of a traced model rewritten into the operations neon has rules for.

Every rewrite computes exactly what it replaces (the network is checked against the model at run time) and
works on neon's own copy of the model: the user's model is never touched. After :func:`canonicalize`:

- ``nn.TransformerEncoder`` and ``nn.TransformerEncoderLayer`` are their sub-layers (self-attention, layer
  norms, the feed-forward block, residual additions), as their documented forward computes them;
- ``nn.MultiheadAttention`` is three ``nn.Linear`` projections (sharing the model's weight storage), the
  scores ``Q K^T`` (a product), the scale, the mask as an additive constant, a softmax, the product with the
  values and the output projection (``docs/theory.md §7``);
- ``F.scaled_dot_product_attention`` is the same chain of operations;
- every softmax names its axis (``torch.softmax(x, dim=d)``), so the softmax rule reads it;
- ``nn.Embedding`` is a :class:`~neon.layers.TokenEmbedding` (token ids may come as floats), and
  ``F.layer_norm`` / ``F.linear`` with constant parameters are ``nn.LayerNorm`` / ``nn.Linear`` modules.

What cannot be rewritten exactly (attention with ``add_bias_kv`` or ``add_zero_attn``, returned attention
weights, dropout inside attention, masks that depend on the input) raises
:class:`~neon.exceptions.UnsupportedLayerError` naming the layer and the reason.
"""

from __future__ import annotations

import inspect
import math
import operator
from collections.abc import Callable
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import fx, nn

from ..exceptions import UnsupportedLayerError
from ..layers.embedding import TokenEmbedding

_SDPA = F.scaled_dot_product_attention
_SOFTMAX = (F.softmax, torch.softmax, "softmax")


def attention_bias(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A boolean attention mask (``True``: attend) as the additive bias ``0`` / ``-inf``; a float mask as is."""
    if mask.dtype == torch.bool:
        bias = torch.zeros(mask.shape, dtype=dtype, device=mask.device)
        return bias.masked_fill(~mask, float("-inf"))
    return mask.to(dtype)


def blocked_bias(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``nn.MultiheadAttention``'s boolean ``attn_mask`` (``True``: not allowed to attend) as ``-inf`` / ``0``."""
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(mask, float("-inf"))
    return mask.to(dtype)


def causal_bias(n_queries: int, n_keys: int, dtype: torch.dtype, device: Any = None) -> torch.Tensor:
    """The additive causal mask of ``F.scaled_dot_product_attention(is_causal=True)`` (upper-left aligned)."""
    keep = torch.ones(n_queries, n_keys, dtype=torch.bool, device=device).tril()
    return attention_bias(keep, dtype)


def padding_bias(key_padding_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``nn.MultiheadAttention``'s ``key_padding_mask`` (``True``: ignore) as a bias ``(n, 1, 1, S)``."""
    if key_padding_mask.dtype == torch.bool:
        bias = torch.zeros(key_padding_mask.shape, dtype=dtype, device=key_padding_mask.device)
        bias = bias.masked_fill(key_padding_mask, float("-inf"))
    else:
        bias = key_padding_mask.to(dtype)
    return bias[:, None, None, :]


def inverse_sqrt(n: int) -> float:
    """``1 / sqrt(n)``, the default scale of dot-product attention."""
    return 1.0 / math.sqrt(n)


def canonicalize(gm: fx.GraphModule) -> bool:
    """Rewrite the transformer parts of ``gm`` (neon's traced copy of a model) in place; see the module doc.

    Returns whether anything was rewritten (the model has transformer parts).
    """
    changed = _decompose_modules(gm)
    changed = canonicalize_functions(gm) or changed
    if changed:
        gm.graph.lint()
        gm.delete_all_unused_submodules()
        gm.recompile()
    return changed


def canonicalize_functions(gm: fx.GraphModule) -> bool:
    """The function-level rewrites (attention, softmax axes, embeddings, functional layers); whether any ran."""
    changed = False
    for node in list(gm.graph.nodes):
        if node.op == "call_function" and node.target is _SDPA:
            _decompose_sdpa(gm, node)
            changed = True
    for node in list(gm.graph.nodes):
        changed = _split_as_slices(gm, node) or changed
        changed = _normalize_softmax(node) or changed
        changed = _functional_layer(gm, node) or changed
        if node.op == "call_module":
            module = gm.get_submodule(str(node.target))
            if type(module) is nn.Embedding:
                _set_submodule(gm, str(node.target), TokenEmbedding.of(module))
                changed = True
    return changed


# ---------------------------------------------------------------------------------------------- helpers
class _Emit:
    """Creates nodes before ``anchor`` that read, in the model's error messages, as parts of the module ``path``."""

    def __init__(self, gm: fx.GraphModule, anchor: fx.Node, path: str):
        self.graph = gm.graph
        self.anchor = anchor
        stack = dict(anchor.meta.get("nn_module_stack", {}))
        if anchor.op == "call_module":
            stack[path] = (path, type(gm.get_submodule(path)) if _has(gm, path) else nn.Module)
        self.meta = {"nn_module_stack": stack} if stack else {}

    def _made(self, node: fx.Node) -> fx.Node:
        node.meta.update(self.meta)
        return node

    def fn(self, target: Callable[..., Any], *args: Any, **kwargs: Any) -> fx.Node:
        with self.graph.inserting_before(self.anchor):
            return self._made(self.graph.call_function(target, args, kwargs))

    def method(self, name: str, *args: Any, **kwargs: Any) -> fx.Node:
        with self.graph.inserting_before(self.anchor):
            return self._made(self.graph.call_method(name, args, kwargs))

    def module(self, target: str, *args: Any) -> fx.Node:
        with self.graph.inserting_before(self.anchor):
            return self._made(self.graph.call_module(target, args))


def _has(gm: nn.Module, path: str) -> bool:
    try:
        gm.get_submodule(path)
    except AttributeError:
        return False
    return True


def _set_submodule(root: nn.Module, target: str, module: nn.Module) -> None:
    parent_name, _, name = target.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, name, module)


def _bind(fn: Callable[..., Any], node: fx.Node, skip_self: bool = True) -> dict[str, Any]:
    sig = inspect.signature(fn)
    args = (None,) + tuple(node.args) if skip_self else tuple(node.args)
    bound = sig.bind(*args, **node.kwargs)
    bound.apply_defaults()
    out = dict(bound.arguments)
    if skip_self:
        out.pop(next(iter(sig.parameters)))
    return out


def linear_layer(weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Linear:
    """An ``nn.Linear`` on the given tensors' storage (no copy)."""
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, device="meta")
    layer.weight = nn.Parameter(weight.detach(), requires_grad=False)
    if bias is not None:
        layer.bias = nn.Parameter(bias.detach(), requires_grad=False)
    return layer


def _replace_result(gm: fx.GraphModule, node: fx.Node, output: fx.Node, what: str) -> None:
    """Uses of ``node``'s ``(output, weights)`` pair: ``[0]`` becomes ``output``; used weights are refused."""
    for user in list(node.users):
        if user.op == "call_function" and user.target is operator.getitem and user.args[1] == 0:
            user.replace_all_uses_with(output)
            gm.graph.erase_node(user)
        elif user.op == "call_function" and user.target is operator.getitem and user.args[1] == 1 and not user.users:
            gm.graph.erase_node(user)
        else:
            raise UnsupportedLayerError(
                f"{what} returns its attention weights and the model uses them; neon explains attention whose "
                "weights are not an output (call it with need_weights=False, or use only its first result)."
            )
    gm.graph.erase_node(node)


# ---------------------------------------------------------------------------------------------- modules
def _decompose_modules(gm: fx.GraphModule) -> bool:
    changed = False
    for kind, rewrite in ((nn.TransformerEncoder, _encoder), (nn.TransformerEncoderLayer, _encoder_layer),
                          (nn.MultiheadAttention, _multihead_attention)):
        for node in list(gm.graph.nodes):
            if node.op == "call_module" and isinstance(gm.get_submodule(str(node.target)), kind):
                rewrite(gm, node)
                changed = True
    return changed


def _no_masks(what: str, *masks: Any, is_causal: Any = False) -> None:
    if is_causal:
        what += " (is_causal=True)"
    if is_causal or any(m is not None for m in masks):
        raise UnsupportedLayerError(
            f"{what} is called with a mask; neon rewrites nn.TransformerEncoder / nn.TransformerEncoderLayer without "
            "masks (use nn.MultiheadAttention with attn_mask in your own block, which neon supports)."
        )


def _encoder(gm: fx.GraphModule, node: fx.Node) -> None:
    path = str(node.target)
    encoder = cast(nn.TransformerEncoder, gm.get_submodule(path))
    a = _bind(nn.TransformerEncoder.forward, node)
    _no_masks(f"nn.TransformerEncoder '{path}'", a["mask"], a["src_key_padding_mask"], is_causal=a["is_causal"])
    emit = _Emit(gm, node, path)
    x = a["src"]
    for i in range(len(encoder.layers)):
        x = emit.module(f"{path}.layers.{i}", x)
    if encoder.norm is not None:
        x = emit.module(f"{path}.norm", x)
    node.replace_all_uses_with(x)
    gm.graph.erase_node(node)


def _encoder_layer(gm: fx.GraphModule, node: fx.Node) -> None:
    path = str(node.target)
    layer = cast(nn.TransformerEncoderLayer, gm.get_submodule(path))
    a = _bind(nn.TransformerEncoderLayer.forward, node)
    _no_masks(f"nn.TransformerEncoderLayer '{path}'", a["src_mask"], a["src_key_padding_mask"],
              is_causal=a["is_causal"])
    emit = _Emit(gm, node, path)

    def attention(x: fx.Node) -> fx.Node:
        pair = emit.module(f"{path}.self_attn", x, x, x)
        pair.kwargs = {"need_weights": False}
        return emit.module(f"{path}.dropout1", emit.fn(operator.getitem, pair, 0))

    def feed_forward(x: fx.Node) -> fx.Node:
        h = emit.module(f"{path}.linear1", x)
        act = layer.activation
        h = emit.module(f"{path}.activation", h) if isinstance(act, nn.Module) else emit.fn(act, h)
        h = emit.module(f"{path}.linear2", emit.module(f"{path}.dropout", h))
        return emit.module(f"{path}.dropout2", h)

    x = a["src"]
    if layer.norm_first:
        x = emit.fn(operator.add, x, attention(emit.module(f"{path}.norm1", x)))
        x = emit.fn(operator.add, x, feed_forward(emit.module(f"{path}.norm2", x)))
    else:
        x = emit.module(f"{path}.norm1", emit.fn(operator.add, x, attention(x)))
        x = emit.module(f"{path}.norm2", emit.fn(operator.add, x, feed_forward(x)))
    node.replace_all_uses_with(x)
    gm.graph.erase_node(node)


class DecomposedAttention(nn.Module):
    """The projections of an ``nn.MultiheadAttention`` as separate ``nn.Linear`` layers (shared storage)."""

    def __init__(self, mha: nn.MultiheadAttention):
        super().__init__()
        e = mha.embed_dim
        if mha._qkv_same_embed_dim:
            assert mha.in_proj_weight is not None
            w = mha.in_proj_weight.detach()
            wq, wk, wv = w[:e], w[e:2 * e], w[2 * e:]
        else:
            wq, wk, wv = (cast(torch.Tensor, t).detach() for t in (mha.q_proj_weight, mha.k_proj_weight,
                                                                     mha.v_proj_weight))
        b = None if mha.in_proj_bias is None else mha.in_proj_bias.detach()
        self.q_proj = linear_layer(wq, None if b is None else b[:e])
        self.k_proj = linear_layer(wk, None if b is None else b[e:2 * e])
        self.v_proj = linear_layer(wv, None if b is None else b[2 * e:])
        self.out_proj = mha.out_proj


def _multihead_attention(gm: fx.GraphModule, node: fx.Node) -> None:
    path = str(node.target)
    mha = cast(nn.MultiheadAttention, gm.get_submodule(path))
    what = f"nn.MultiheadAttention '{path}'"
    if mha.bias_k is not None or mha.add_zero_attn:
        raise UnsupportedLayerError(f"{what} has add_bias_kv or add_zero_attn; neon explains attention without them.")
    a = _bind(nn.MultiheadAttention.forward, node)
    if a["is_causal"] and a["attn_mask"] is None:
        raise UnsupportedLayerError(f"{what} is called with is_causal=True and no attn_mask, which torch refuses.")
    _set_submodule(gm, path, DecomposedAttention(mha))
    emit = _Emit(gm, node, path)
    heads, dim = mha.num_heads, mha.head_dim
    q, k, v = a["query"], a["key"], a["value"]
    if not mha.batch_first:  # (L, n, E) -> (n, L, E)
        q, k, v = (emit.method("transpose", t, 0, 1) for t in (q, k, v))

    def split(t: fx.Node, proj: str) -> fx.Node:  # (n, L, E) -> (n, heads, L, dim)
        t = emit.module(f"{path}.{proj}", t)
        return emit.method("transpose", emit.method("unflatten", t, -1, (heads, dim)), 1, 2)

    qh, kh, vh = split(q, "q_proj"), split(k, "k_proj"), split(v, "v_proj")
    scores = emit.fn(torch.matmul, qh, emit.method("transpose", kh, -2, -1))
    scores = emit.fn(operator.mul, scores, 1.0 / math.sqrt(dim))
    dtype = emit.fn(getattr, scores, "dtype")
    mask = a["attn_mask"]
    if mask is not None:
        bias = emit.fn(blocked_bias, mask, dtype)
        if isinstance(mask, fx.Node) and _is_3d_mask(mask):
            bias = emit.method("unflatten", bias, 0, (-1, heads))  # (n * heads, L, S) -> (n, heads, L, S)
        scores = emit.fn(operator.add, scores, bias)
    if a["key_padding_mask"] is not None:
        scores = emit.fn(operator.add, scores, emit.fn(padding_bias, a["key_padding_mask"], dtype))
    weights = emit.fn(torch.softmax, scores, dim=-1)
    out = emit.fn(torch.matmul, weights, vh)
    out = emit.method("flatten", emit.method("transpose", out, 1, 2), 2)
    out = emit.module(f"{path}.out_proj", out)
    if not mha.batch_first:
        out = emit.method("transpose", out, 0, 1)
    _replace_result(gm, node, out, what)


def _is_3d_mask(mask: fx.Node) -> bool:
    val = mask.meta.get("val", mask.meta.get("tensor_meta"))
    shape = getattr(val, "shape", None)
    return shape is not None and len(shape) == 3


# ---------------------------------------------------------------------------------------------- functions
def _decompose_sdpa(gm: fx.GraphModule, node: fx.Node) -> None:
    names = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa")
    defaults: dict[str, Any] = {"attn_mask": None, "dropout_p": 0.0, "is_causal": False, "scale": None,
                                "enable_gqa": False}
    a = {**defaults, **dict(zip(names, node.args)), **node.kwargs}
    what = "F.scaled_dot_product_attention" + (f" in '{_stack_path(node)}'" if _stack_path(node) else "")
    if a["dropout_p"] not in (0, 0.0):
        raise UnsupportedLayerError(f"{what} is called with dropout_p={a['dropout_p']}: its output is random. neon "
                                    "explains attention without dropout (dropout_p=0.0 in evaluation mode).")
    if a["enable_gqa"]:
        raise UnsupportedLayerError(f"{what} is called with enable_gqa=True; neon explains attention whose keys "
                                    "and values have as many heads as the queries.")
    emit = _Emit(gm, node, "")
    q, k, v = a["query"], a["key"], a["value"]
    scores = emit.fn(torch.matmul, q, emit.method("transpose", k, -2, -1))
    scale = a["scale"]
    if scale is None:
        head = _static_size(q, -1)
        scale = inverse_sqrt(head) if head is not None else emit.fn(inverse_sqrt, emit.method("size", q, -1))
    scores = emit.fn(operator.mul, scores, scale)
    dtype = emit.fn(getattr, scores, "dtype")
    if a["is_causal"]:
        bias = emit.fn(causal_bias, emit.method("size", q, -2), emit.method("size", k, -2), dtype)
        scores = emit.fn(operator.add, scores, bias)
    if a["attn_mask"] is not None:
        scores = emit.fn(operator.add, scores, emit.fn(attention_bias, a["attn_mask"], dtype))
    weights = emit.fn(torch.softmax, scores, dim=-1)
    out = emit.fn(torch.matmul, weights, v)
    node.replace_all_uses_with(out)
    gm.graph.erase_node(node)


def _static_size(node: Any, dim: int) -> int | None:
    val = node.meta.get("val") if isinstance(node, fx.Node) else None
    shape = getattr(val, "shape", None)
    if shape is None:
        return None
    try:
        return int(shape[dim])
    except (TypeError, ValueError):  # a symbolic size
        return None


def _stack_path(node: fx.Node) -> str:
    stack = node.meta.get("nn_module_stack")
    if not stack:
        return ""
    path = list(stack.values())[-1]
    return str(path[0] if isinstance(path, tuple) else path)


def _split_as_slices(gm: fx.GraphModule, node: fx.Node) -> bool:
    """``q, k, v = x.split(d, dim)``: each part as a slice of ``x`` (relevance moves with tensors, not tuples)."""
    if not ((node.op == "call_method" and node.target == "split")
            or (node.op == "call_function" and node.target is torch.split)):
        return False
    a = {"dim": 0, **dict(zip(("tensor", "split_size_or_sections", "dim"), node.args)), **node.kwargs}
    if "split_size" in a:
        a["split_size_or_sections"] = a.pop("split_size")
    size, dim = a["split_size_or_sections"], a["dim"]
    users = list(node.users)
    if not isinstance(dim, int) or not all(u.op == "call_function" and u.target is operator.getitem
                                           and isinstance(u.args[1], int) and u.args[1] >= 0 for u in users):
        return False
    if isinstance(size, int):
        index = [cast(int, u.args[1]) for u in users]
        bounds = {i: (i * size, (i + 1) * size) for i in index}
    elif isinstance(size, (list, tuple)) and all(isinstance(v, int) for v in size):
        starts = [sum(size[:i]) for i in range(len(size))]
        bounds = {i: (starts[i], starts[i] + size[i]) for i in range(len(size))}
    else:
        return False
    lead: tuple[Any, ...] = (slice(None),) * dim if dim >= 0 else (Ellipsis,)
    trail: tuple[Any, ...] = () if dim >= 0 else (slice(None),) * (-dim - 1)
    for user in users:
        start, stop = bounds[cast(int, user.args[1])]
        user.args = (a["tensor"], lead + (slice(start, stop),) + trail)
    gm.graph.erase_node(node)
    return True


def _normalize_softmax(node: fx.Node) -> bool:
    """``F.softmax(x, 1)``, ``x.softmax(-1)``: ``torch.softmax(x, dim=d)`` (the rule reads ``dim``)."""
    if node.op not in ("call_function", "call_method") or node.target not in _SOFTMAX:
        return False
    if node.op == "call_function" and node.target is torch.softmax and "dim" in node.kwargs:
        return False
    args = list(node.args)
    kwargs = dict(node.kwargs)
    x = args.pop(0)
    dim = kwargs.pop("dim", args.pop(0) if args else None)
    if not isinstance(dim, int):
        raise UnsupportedLayerError(
            f"a softmax without an explicit axis (dim={dim!r}) at graph node '{node.name}'; give softmax a dim."
        )
    dtype = kwargs.pop("dtype", args[1] if len(args) > 1 else None)
    node.op = "call_function"
    node.target = torch.softmax
    node.args = (x,)
    node.kwargs = {"dim": dim, **({"dtype": dtype} if dtype is not None else {})}
    return True


def _attr(gm: fx.GraphModule, arg: Any) -> torch.Tensor | None:
    if isinstance(arg, fx.Node) and arg.op == "get_attr":
        obj: Any = gm
        for part in str(arg.target).split("."):
            obj = getattr(obj, part)
        return obj if isinstance(obj, torch.Tensor) else None
    return None


def _functional_layer(gm: fx.GraphModule, node: fx.Node) -> bool:
    """``F.layer_norm`` / ``F.linear`` whose parameters are attributes of the model: the equivalent module."""
    if node.op != "call_function" or node.target not in (F.layer_norm, F.linear):
        return False
    if node.target is F.layer_norm:
        a: dict[str, Any] = {"weight": None, "bias": None, "eps": 1e-5,
             **dict(zip(("input", "normalized_shape", "weight", "bias", "eps"), node.args)), **node.kwargs}
        params = [a["weight"], a["bias"]]
        shape = a["normalized_shape"]
        if not isinstance(shape, (int, list, tuple)) or not all(isinstance(s, int) for s in
                                                                 ([shape] if isinstance(shape, int) else shape)):
            return False
    else:
        a = {"bias": None, **dict(zip(("input", "weight", "bias"), node.args)), **node.kwargs}
        params = [a["weight"], a["bias"]]
    tensors = [_attr(gm, p) for p in params]
    if any(p is not None and t is None for p, t in zip(params, tensors)) or (
            node.target is F.linear and tensors[0] is None):
        return False  # parameters computed in the forward: not a layer
    weight, bias = tensors
    layer: nn.Module
    if node.target is F.layer_norm:
        norm = nn.LayerNorm(a["normalized_shape"], eps=float(cast(float, a["eps"])), elementwise_affine=False)
        if weight is not None:
            norm.weight = nn.Parameter(weight.detach(), requires_grad=False)
        if bias is not None:
            norm.bias = nn.Parameter(bias.detach(), requires_grad=False)
        layer = norm
    else:
        assert weight is not None
        layer = linear_layer(weight, bias)
    name = f"neon_{node.name}"
    gm.add_submodule(name, layer)
    with gm.graph.inserting_before(node):
        new = gm.graph.call_module(name, (a["input"],))
    new.meta.update(node.meta)
    node.replace_all_uses_with(new)
    gm.graph.erase_node(node)
    return True
