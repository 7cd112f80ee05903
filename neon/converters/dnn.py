"""PyTorch modules -> :class:`neon.Network`, traced with ``torch.fx``.

The user's model is never touched: it is checked for what would make its trace another function
(:func:`~neon.converters.tracing.check_traceable`), copied (the copy shares the weights' storage and never
writes to it, see :class:`SharedWeights`), the copy is put in evaluation mode, stripped of hooks and
traced. BatchNorm layers are folded into the neighbouring linear or convolutional layer; one with no
foldable neighbour becomes a :class:`~neon.layers.ChannelAffine`. The network carries the model's own
forward as its :class:`~neon.network.ModelReference`, so that explainers check it against the model.
"""

from __future__ import annotations

import copy
import inspect
import operator
import weakref
from collections.abc import Callable, Sequence
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import fx, nn

from ..exceptions import UnsupportedModelError
from ..layers.affine import ChannelAffine, batchnorm_scale_shift
from ..layers.pooling import max_pool_indices
from ..layers.top import LogOdds
from ..network import SUPPORTED_TEXT, ModelReference, Network
from ._registry import register
from .canonizers import canonicalize
from .tracing import TRACE_LOCK, Tracer, cached, check_traceable, selector, structure_of, user_frame

_SOFTMAX_MODULES = (nn.Softmax, nn.LogSoftmax)
_SOFTMAX_FUNCTIONS = (F.softmax, F.log_softmax, torch.softmax, torch.log_softmax)


class SharedWeights:
    """Guards the parameters a network shares with the user's model (no copy of the weights).

    ``neuralize`` shares the storage of every parameter and buffer with the model (the model is never
    written to) instead of copying it, so explaining costs no second copy of the weights. If the
    model's tensors are then changed in place (an optimizer step, ``load_state_dict``), the network
    would mix old folded BatchNorm layers with new weights: calling the guard raises instead.
    Changes made through ``.data`` bypass PyTorch's version counters and are not detected.
    """

    def __init__(self, tensors: list[torch.Tensor]):
        self._tensors = [(t, t._version) for t in tensors]

    def __call__(self) -> None:
        for t, version in self._tensors:
            if t._version != version:
                raise UnsupportedModelError(
                    "the model's parameters or buffers were changed in place after it was neuralized; "
                    "neuralize it again (or call Explainer.fit again) to explain the current model."
                )

    def __deepcopy__(self, memo: dict) -> SharedWeights:
        return SharedWeights([])  # a deep copy owns its tensors: nothing shared left to guard

    def __reduce__(self) -> tuple[Any, ...]:
        return (SharedWeights, ([],))  # so does an unpickled network


def _copy_sharing_weights(model: nn.Module) -> tuple[nn.Module, SharedWeights]:
    """A deep copy of ``model`` whose parameters and buffers are new tensor objects on the same storage."""
    memo: dict[int, Any] = {}
    shared = []
    for t in list(model.parameters()) + list(model.buffers()):
        if id(t) in memo:
            continue
        view = t.detach()
        memo[id(t)] = nn.Parameter(view, requires_grad=False) if isinstance(t, nn.Parameter) else view
        shared.append(view)
    return copy.deepcopy(model, memo), SharedWeights(shared)


def _strip_hooks(model: nn.Module) -> None:
    for m in model.modules():
        for attr in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
                     "_forward_hooks_with_kwargs", "_forward_pre_hooks_with_kwargs"):
            hooks = getattr(m, attr, None)
            if hooks is not None:
                hooks.clear()


def _set_submodule(root: nn.Module, target: str, module: nn.Module) -> None:
    parent_name, _, name = target.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, name, module)


def _module_calls(gm: fx.GraphModule, target: str) -> int:
    return sum(1 for n in gm.graph.nodes if n.op == "call_module" and n.target == target)


_INPLACE_FUNCTIONS = (operator.iadd, operator.isub, operator.imul, operator.itruediv, torch.relu_)


def _is_inplace(gm: fx.GraphModule, node: fx.Node) -> bool:
    """Whether ``node`` overwrites its first argument in the traced model."""
    if not node.args or not isinstance(node.args[0], fx.Node):
        return False
    if node.op == "call_module":
        module = gm.get_submodule(str(node.target))
        return bool(getattr(module, "inplace", False)) and not isinstance(module, nn.modules.dropout._DropoutNd)
    if node.op == "call_function":
        return node.target in _INPLACE_FUNCTIONS or node.kwargs.get("inplace") is True
    if node.op == "call_method":
        return isinstance(node.target, str) and node.target.endswith("_") and not node.target.startswith("_")
    return False


def resolve_inplace(gm: fx.GraphModule) -> None:
    """Make the aliasing of in-place operations explicit in the graph.

    neon runs every operation out of place (the rules need the values before and after an
    activation), but in the traced model ``h = conv(x); a = relu_(h); a + h`` adds ``relu(h)``
    to itself. Every later user of an overwritten value is therefore rewired to the result of
    the in-place operation, so the graph computes exactly what the model computed. Aliasing
    through views (``v = h.view(...)`` before ``relu_(h)``) is not tracked.
    """
    order = {n: i for i, n in enumerate(gm.graph.nodes)}
    for node in list(gm.graph.nodes):
        if not _is_inplace(gm, node):
            continue
        src = node.args[0]
        if src.op in ("get_attr",):
            continue
        for user in list(src.users):
            if user is not node and order[user] > order[node]:
                user.replace_input_with(src, node)


def fold_batchnorm(gm: fx.GraphModule) -> None:
    """Fold every evaluation-mode BatchNorm of ``gm`` into its neighbour, or make it a ChannelAffine."""
    for node in list(gm.graph.nodes):
        if node.op != "call_module":
            continue
        bn = gm.get_submodule(node.target)
        if not isinstance(bn, nn.modules.batchnorm._BatchNorm):
            continue
        scale, shift = batchnorm_scale_shift(bn)
        prev = node.args[0]
        if (isinstance(prev, fx.Node) and prev.op == "call_module" and len(prev.users) == 1
                and _module_calls(gm, str(prev.target)) == 1
                and isinstance(gm.get_submodule(str(prev.target)), (nn.Linear, nn.Conv1d, nn.Conv2d))):
            layer = cast("nn.Linear | nn.Conv1d | nn.Conv2d", gm.get_submodule(str(prev.target)))  # checked above
            _fold_after(layer, scale, shift)
            folded(gm)[str(prev.target)] = str(node.target)  # the layer now computes what the batch norm did
            node.replace_all_uses_with(prev)
            gm.graph.erase_node(node)
            continue
        nxt = list(node.users)
        if len(nxt) == 1 and _fold_before(gm, nxt[0], scale, shift):
            node.replace_all_uses_with(node.args[0])
            gm.graph.erase_node(node)
            continue
        _set_submodule(gm, node.target, ChannelAffine(scale, shift))
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()


def folded(gm: fx.GraphModule) -> dict[str, str]:
    """``{layer: batch norm}``: layers that now compute what the batch norm after them computed in the model."""
    if not hasattr(gm, "neon_folded"):
        gm.neon_folded = {}  # type: ignore[assignment]  # a plain attribute (stubs allow tensors/modules only)
    return cast("dict[str, str]", gm.neon_folded)


def _fold_after(layer: nn.Linear | nn.Conv1d | nn.Conv2d, scale: torch.Tensor, shift: torch.Tensor) -> None:
    """``bn(layer(x))`` as one layer: ``w' = s w``, ``b' = s b + t``."""
    w = layer.weight.detach()
    shape = (-1,) + (1,) * (w.dim() - 1)
    bias = layer.bias.detach() if layer.bias is not None else torch.zeros_like(shift)
    layer.weight = nn.Parameter(w * scale.reshape(shape).to(w), requires_grad=False)
    layer.bias = nn.Parameter(bias * scale.to(w) + shift.to(w), requires_grad=False)


def _fold_before(gm: fx.GraphModule, user: fx.Node, scale: torch.Tensor, shift: torch.Tensor) -> bool:
    """``layer(bn(x))`` as one layer, exact for nn.Linear and unpadded convolutions."""
    if user.op != "call_module" or _module_calls(gm, str(user.target)) != 1:
        return False
    layer = gm.get_submodule(str(user.target))
    if isinstance(layer, nn.Linear):
        if layer.in_features != scale.numel():
            return False
        w = layer.weight.detach()
        bias = layer.bias.detach() if layer.bias is not None else torch.zeros(w.shape[0], dtype=w.dtype)
        layer.bias = nn.Parameter(bias + w @ shift.to(w), requires_grad=False)
        layer.weight = nn.Parameter(w * scale.to(w), requires_grad=False)
        return True
    if isinstance(layer, (nn.Conv1d, nn.Conv2d)) and layer.groups == 1 and not isinstance(layer.padding, str) \
            and all(p == 0 for p in layer.padding):
        w = layer.weight.detach()
        bias = layer.bias.detach() if layer.bias is not None else torch.zeros(w.shape[0], dtype=w.dtype)
        shape = (1, -1) + (1,) * (w.dim() - 2)
        layer.bias = nn.Parameter(bias + (w * shift.reshape(shape).to(w)).flatten(1).sum(1), requires_grad=False)
        layer.weight = nn.Parameter(w * scale.reshape(shape).to(w), requires_grad=False)
        return True
    return False


def _strip_softmax(gm: fx.GraphModule) -> str | None:
    """Remove a final softmax / log-softmax (the explained quantity becomes the log-odds); return which."""
    out = next(n for n in gm.graph.nodes if n.op == "output")
    last = out.args[0]
    if not isinstance(last, fx.Node):
        return None
    if last.op == "call_module" and isinstance(gm.get_submodule(str(last.target)), _SOFTMAX_MODULES):
        kind = "log_softmax" if isinstance(gm.get_submodule(str(last.target)), nn.LogSoftmax) else "softmax"
    elif last.op == "call_function" and last.target in _SOFTMAX_FUNCTIONS:
        kind = "log_softmax" if last.target in (F.log_softmax, torch.log_softmax) else "softmax"
    elif last.op == "call_method" and last.target in ("softmax", "log_softmax"):
        kind = str(last.target)
    else:
        return None
    last.replace_all_uses_with(cast(fx.Node, last.args[0]))  # the softmax's input
    gm.graph.erase_node(last)
    gm.graph.lint()
    gm.recompile()
    return kind


def _log_odds_top(gm: fx.GraphModule) -> None:
    out = next(n for n in gm.graph.nodes if n.op == "output")
    last = out.args[0]
    if not (isinstance(last, fx.Node) and last.op == "call_module"
            and isinstance(gm.get_submodule(str(last.target)), nn.Linear)):
        raise UnsupportedModelError(
            "output='log-odds' needs a model whose logits come from a final nn.Linear layer "
            "(docs/theory.md §3); use output='logit' for this model."
        )
    if _module_calls(gm, str(last.target)) != 1:
        raise UnsupportedModelError("output='log-odds': the final nn.Linear is also used elsewhere in the model.")
    _set_submodule(gm, str(last.target), LogOdds(cast(nn.Linear, gm.get_submodule(str(last.target)))))
    gm.recompile()


def split_pool_indices(gm: fx.GraphModule) -> None:
    """Max pools that return ``(values, indices)`` as a pool of values and, where the indices are used, a
    separate computation of them (:func:`~neon.layers.pooling.max_pool_indices`: integers carry no relevance).

    ``nn.MaxPool2d(return_indices=True)`` and ``F.max_pool2d(..., return_indices=True)`` give a tuple that the
    model unpacks with ``[0]`` and ``[1]``; the rules need the pool itself.
    """
    changed = False
    for node in list(gm.graph.nodes):
        if node.op == "call_module":
            module = gm.get_submodule(str(node.target))
            if not (isinstance(module, (nn.MaxPool1d, nn.MaxPool2d)) and module.return_indices):
                continue
            values = copy.copy(module)
            values.return_indices = False
            _set_submodule(gm, str(node.target), values)
            stride = module.stride if module.stride is not None else module.kernel_size
            pool_args: tuple[Any, ...] = (module.kernel_size, stride, module.padding, module.dilation,
                                          module.ceil_mode)
        elif node.op == "call_function" and node.target in (F.max_pool1d, F.max_pool2d) \
                and (node.kwargs.get("return_indices") or (len(node.args) > 6 and node.args[6])):
            bound = inspect.signature(F.max_pool2d).bind(*node.args, **node.kwargs)
            bound.apply_defaults()
            a = bound.arguments
            stride = a["stride"] if a["stride"] not in (None, []) else a["kernel_size"]
            pool_args = (a["kernel_size"], stride, a["padding"], a["dilation"], a["ceil_mode"])
            node.args = (a["input"],) + pool_args
            node.kwargs = {"return_indices": False}
        else:
            continue
        changed = True
        for user in list(node.users):
            if user.op == "call_function" and user.target is operator.getitem and user.args[1] == 0:
                user.replace_all_uses_with(node)
                gm.graph.erase_node(user)
            elif user.op == "call_function" and user.target is operator.getitem and user.args[1] == 1:
                with gm.graph.inserting_after(user):
                    idx = gm.graph.call_function(max_pool_indices, (node.args[0],) + pool_args)
                user.replace_all_uses_with(idx)
                gm.graph.erase_node(user)
            else:
                raise UnsupportedModelError(
                    f"the max pool '{node.target}' returns (values, indices) and its result is used as a pair; "
                    "neon supports unpacking it with [0] and [1]."
                )
    if changed:
        gm.graph.lint()
        gm.recompile()


class _TorchOutput:
    """The model's own forward (through ``select``) as ``(n, k)`` values in the space the network maps to.

    Holds the model by weak reference: a network kept in a cache must not keep its model alive. Pickled
    without it (an unpickled explainer has been checked already; it cannot check again).
    """

    def __init__(self, model: nn.Module, select: Callable[[Any], Any] | None, space: str | None):
        self._model = weakref.ref(model)
        self.select, self.space = select, space

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        model = self._model() if self._model is not None else None
        if model is None:
            raise UnsupportedModelError("the model this network was traced from no longer exists.")
        dtype = next((t.dtype for t in model.parameters() if t.is_floating_point()), x.dtype)
        with torch.no_grad():
            out = model(x.to(dtype) if x.is_floating_point() else x)  # the model runs in its own precision
            out = out if self.select is None else self.select(out)
            if not isinstance(out, torch.Tensor):
                raise UnsupportedModelError(f"the model returns {structure_of(out)}, not one tensor.")
            out = out.reshape(len(out), -1)
            return torch.softmax(out, dim=1) if self.space == "softmax" else out

    def __getstate__(self) -> dict[str, Any]:
        return {"_model": None, "select": None, "space": self.space}

    def __deepcopy__(self, memo: dict) -> _TorchOutput:
        # a copy of a network in another dtype still compares with the same model (not a copy of it)
        new = _TorchOutput.__new__(_TorchOutput)
        new.__dict__.update(self.__dict__)
        return new


class _Divergence:
    """Where a network and its model part: the first traced module whose output differs from the model's own.

    Runs a deep copy of the model with forward hooks (never the model itself) next to the network.
    """

    def __init__(self, model: nn.Module):
        self._model = weakref.ref(model)

    def __call__(self, network: Network, x: torch.Tensor, tol: float) -> str:
        model = self._model() if self._model is not None else None
        if model is None:
            return ""
        twin = copy.deepcopy(model)
        outputs: dict[str, Any] = {}

        def keep(name: str, out: Any) -> None:  # returns None: a hook's return value would replace the output
            # the first call of each module, copied: a later in-place operation must not change what it gave
            outputs.setdefault(name, out.detach().clone() if isinstance(out, torch.Tensor) else out)

        for name, module in twin.named_modules():
            module.register_forward_hook(lambda mod, inp, out, name=name: keep(name, out))
        with torch.no_grad():
            twin(x)
            values = network.activations(x)
        gm = network.graph_module
        renamed = getattr(gm, "neon_folded", {})
        for step in network.steps:
            if step.node.op != "call_module" or isinstance(step.module, LogOdds):
                continue
            target = str(step.node.target)
            want = outputs.get(renamed.get(target, target))
            got = values.get(step.name)
            if not isinstance(want, torch.Tensor) or not isinstance(got, torch.Tensor) or want.shape != got.shape:
                continue
            scale = float(want.abs().max()) if want.numel() else 0.0
            diff = float((got - want.to(got.dtype)).abs().max()) if want.numel() else 0.0
            if diff > tol * max(scale, 1e-30):
                return (f"The first traced module whose output differs from the model's own is '{target}' "
                        f"({type(step.module).__name__}): max |difference| {diff:.3g} at scale {scale:.3g}.")
        return ("Every traced module's output equals the model's own: the difference comes from code between "
                "the modules (functional calls, Python control flow) or after the last one.")

    def __getstate__(self) -> dict[str, Any]:
        return {"_model": None}

    def __deepcopy__(self, memo: dict) -> _Divergence:
        new = _Divergence.__new__(_Divergence)
        new.__dict__.update(self.__dict__)
        return new


def _to_probabilities(out: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(out)  # P_c from the log-odds eta_c = log(P_c / (1 - P_c))


def _to_log_probabilities(out: torch.Tensor) -> torch.Tensor:
    return F.logsigmoid(out)


def _softmax(out: torch.Tensor) -> torch.Tensor:
    return torch.softmax(out, dim=1)


def _log_softmax(out: torch.Tensor) -> torch.Tensor:
    return torch.log_softmax(out, dim=1)


def _reference(model: nn.Module, select: Callable[[Any], Any] | None, softmax: str | None, kind: str) -> \
        ModelReference:
    """Compare where the model's output lives: probabilities (softmax), log-probabilities, or the logits."""
    name = f"{type(model).__name__}.forward"
    diagnose = _Divergence(model)
    if softmax is None and kind == "logit":
        return ModelReference(_TorchOutput(model, select, None), name, diagnose=diagnose)
    if softmax is None:  # log-odds of a model without softmax: compare its softmax with the odds' sigmoid
        return ModelReference(_TorchOutput(model, select, "softmax"), f"softmax of {name}", _to_probabilities,
                              diagnose)
    if kind == "log-odds":
        to = _to_probabilities if softmax == "softmax" else _to_log_probabilities
    else:
        to = _softmax if softmax == "softmax" else _log_softmax
    return ModelReference(_TorchOutput(model, select, None), name, to, diagnose)


def _key(value: Any) -> Any:
    return tuple(value) if isinstance(value, (list, tuple)) else value


@register(lambda model: isinstance(model, nn.Module), description="torch.nn.Module traceable by torch.fx",
          outputs=("logit", "log-odds"))
def neuralize_module(
    model: nn.Module,
    output: str | None = None,
    input_shape: Sequence[int] | None = None,
    feature_names: Sequence[str] | None = None,
    target_names: Sequence[Any] | None = None,
    output_selector: Any = None,
) -> Network:
    """Rewrite a PyTorch model as a :class:`neon.Network` (the model itself is left as it was).

    The network of a model is traced once and kept while the model lives with unchanged parameters,
    buffers and modes; tracing is safe while other threads run the model.

    Parameters
    ----------
    model
        An ``nn.Module`` that ``torch.fx`` can trace (no data-dependent control flow), in evaluation mode
        if it has dropout or batch norm, without forward hooks, called as ``model(x)`` (other forward
        arguments are traced at their defaults, with a warning).
    output
        ``"logit"`` (explain the model's raw outputs) or ``"log-odds"`` (the final ``nn.Linear``
        becomes the log-odds top of docs/theory.md §3). Default: ``"log-odds"`` when the model
        ends in a softmax (which is then removed), else ``"logit"``: neon cannot tell a
        classifier's logits from the outputs of a multi-output regressor.
    output_selector
        Which output to explain when the model returns several: an index into a tuple (``1``), a key of a
        dict (``"logits"``, also an attribute of an output object), or a function of the output returning
        one ``(n, k)`` or ``(n,)`` tensor. A model returning a single tensor needs none.
    """
    select = selector(output_selector)
    key = (output, _key(input_shape), _key(feature_names), _key(target_names), output_selector)
    return cast(Network, cached(model, key, lambda: _build(model, output, input_shape, feature_names, target_names,
                                                           select)))


def _build(model: nn.Module, output: str | None, input_shape: Sequence[int] | None,
           feature_names: Sequence[str] | None, target_names: Sequence[Any] | None,
           select: Callable[[Any], Any] | None) -> Network:
    concrete = check_traceable(model)
    try:
        clone, shared = _copy_sharing_weights(model)
    except Exception as err:  # noqa: BLE001 - any failure to copy means we cannot work safely
        raise UnsupportedModelError(f"cannot copy {type(model).__name__} to neuralize it: {err}") from err
    clone.eval()
    _strip_hooks(clone)
    for p in clone.parameters():
        p.requires_grad_(False)
    tracer = Tracer(select)
    if tracer.is_leaf_module(clone, ""):
        clone = nn.Sequential(clone)  # a bare layer: trace it as a call, not through its functional body
        concrete = {}
    try:
        with TRACE_LOCK:
            graph = tracer.trace(clone, concrete_args=concrete or None)
    except Exception as err:  # noqa: BLE001 - fx raises many types; all mean "cannot trace"
        where = f" in module '{tracer.failed_in}'" if tracer.failed_in else ""
        raise UnsupportedModelError(
            f"torch.fx cannot trace {type(model).__name__}{where}{user_frame(err)}: {type(err).__name__}: {err}. "
            "neon needs models without data-dependent control flow (no Python `if` or loop on tensor values), "
            "built from supported layers. " + SUPPORTED_TEXT
        ) from err
    _check_single_output(graph, model, select)
    gm = fx.GraphModule(clone, graph, class_name=type(model).__name__)
    # nn.Module.__setattr__ is typed for tensors and modules only; plain attributes are allowed
    gm.neon_shared_weights = shared  # type: ignore[assignment]  # checked by the engine before every propagation
    _drop_constant_inputs(gm)
    resolve_inplace(gm)
    split_pool_indices(gm)
    fold_batchnorm(gm)
    canonicalize(gm)  # attention, transformer layers, embeddings: into the parts neon has rules for
    softmax = _strip_softmax(gm)
    kind = output or ("log-odds" if softmax else "logit")
    if kind == "log-odds":
        _log_odds_top(gm)
    return Network(gm, output_kind=kind, input_shape=input_shape, feature_names=feature_names,
                   target_names=target_names, description=type(model).__name__,
                   reference=_reference(model, select, softmax, kind))


def _check_single_output(graph: fx.Graph, model: nn.Module, select: Callable[[Any], Any] | None) -> None:
    out = next(n for n in graph.nodes if n.op == "output")
    value = out.args[0]
    if isinstance(value, fx.Node):
        return
    what = structure_of(value)
    if select is not None:
        raise UnsupportedModelError(f"output_selector gives {what} of {type(model).__name__}'s output, not one tensor.")
    raise UnsupportedModelError(
        f"{type(model).__name__} returns {what}, not one tensor; say which output to explain with "
        "output_selector= (an index such as 1, a key such as 'logits', or a function of the output)."
    )


def _drop_constant_inputs(gm: fx.GraphModule) -> None:
    """Placeholders of arguments traced as constants (their default values) are not inputs of the network."""
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    for node in placeholders[1:]:
        for user in list(node.users):  # fx guards a None default with an assertion node: not part of the function
            if user.op == "call_function" and getattr(user.target, "__name__", "") == "_assert_is_none":
                gm.graph.erase_node(user)
    extra = [n for n in placeholders[1:] if not n.users]
    for node in extra:
        gm.graph.erase_node(node)
    if extra:
        gm.graph.lint()
        gm.recompile()
