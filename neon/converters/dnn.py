"""PyTorch modules -> :class:`neon.Network`, traced with ``torch.fx``.

The user's model is never touched: it is copied (the copy shares the weights' storage and never
writes to it, see :class:`SharedWeights`), the copy is put in evaluation mode, stripped of hooks and
traced. BatchNorm layers are folded into the neighbouring linear or
convolutional layer; one with no foldable neighbour becomes a :class:`~neon.layers.ChannelAffine`.
"""

from __future__ import annotations

import copy
import operator
import traceback
from collections.abc import Sequence
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import fx, nn

from ..exceptions import UnsupportedModelError
from ..layers.affine import ChannelAffine, batchnorm_scale_shift
from ..layers.top import LogOdds
from ..network import SUPPORTED_TEXT, Network
from ._registry import register

_SOFTMAX_MODULES = (nn.Softmax, nn.LogSoftmax)
_SOFTMAX_FUNCTIONS = (F.softmax, F.log_softmax, torch.softmax, torch.log_softmax)


class _Tracer(fx.Tracer):
    """Keeps torch.nn layers and neon layers as leaves; traces through user-defined containers.

    Remembers the innermost module whose forward failed, so that the error can name it.
    """

    failed_in: str | None = None

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if type(m).__module__.startswith("neon."):
            return True
        return super().is_leaf_module(m, module_qualified_name)

    def call_module(self, m: nn.Module, forward: Any, args: Any, kwargs: Any) -> Any:
        try:
            return super().call_module(m, forward, args, kwargs)
        except Exception:
            if self.failed_in is None:
                try:
                    self.failed_in = self.path_of_module(m)
                except NameError:
                    self.failed_in = type(m).__name__
            raise


def _user_frame(err: BaseException) -> str:
    """``file:line: code`` of the last traceback frame outside torch (the user's failing line)."""
    frames = [f for f in traceback.extract_tb(err.__traceback__) if "/torch/" not in f.filename
              and "/neon/" not in f.filename]
    if not frames:
        return ""
    f = frames[-1]
    return f" at {f.filename}:{f.lineno}: {f.line}"


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


def _strip_softmax(gm: fx.GraphModule) -> bool:
    """Remove a final softmax / log-softmax (the explained quantity becomes the log-odds)."""
    out = next(n for n in gm.graph.nodes if n.op == "output")
    last = out.args[0]
    if not isinstance(last, fx.Node):
        return False
    is_softmax = (last.op == "call_module" and isinstance(gm.get_submodule(str(last.target)), _SOFTMAX_MODULES)) or (
        last.op == "call_function" and last.target in _SOFTMAX_FUNCTIONS) or (
        last.op == "call_method" and last.target in ("softmax", "log_softmax"))
    if not is_softmax:
        return False
    last.replace_all_uses_with(cast(fx.Node, last.args[0]))  # the softmax's input
    gm.graph.erase_node(last)
    gm.graph.lint()
    gm.recompile()
    return True


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


@register(lambda model: isinstance(model, nn.Module), description="torch.nn.Module traceable by torch.fx",
          outputs=("logit", "log-odds"))
def neuralize_module(
    model: nn.Module,
    output: str | None = None,
    input_shape: Sequence[int] | None = None,
    feature_names: Sequence[str] | None = None,
    target_names: Sequence[Any] | None = None,
) -> Network:
    """Rewrite a PyTorch model as a :class:`neon.Network` (the model itself is left as it was).

    Parameters
    ----------
    model
        An ``nn.Module`` that ``torch.fx`` can trace (no data-dependent control flow).
    output
        ``"logit"`` (explain the model's raw outputs) or ``"log-odds"`` (the final ``nn.Linear``
        becomes the log-odds top of docs/theory.md §3). Default: ``"log-odds"`` when the model
        ends in a softmax (which is then removed), else ``"logit"``: neon cannot tell a
        classifier's logits from the outputs of a multi-output regressor.
    """
    try:
        clone, shared = _copy_sharing_weights(model)
    except Exception as err:  # noqa: BLE001 - any failure to copy means we cannot work safely
        raise UnsupportedModelError(f"cannot copy {type(model).__name__} to neuralize it: {err}") from err
    clone.eval()
    _strip_hooks(clone)
    for p in clone.parameters():
        p.requires_grad_(False)
    tracer = _Tracer()
    if tracer.is_leaf_module(clone, ""):
        clone = nn.Sequential(clone)  # a bare layer: trace it as a call, not through its functional body
    try:
        graph = tracer.trace(clone)
    except Exception as err:  # noqa: BLE001 - fx raises many types; all mean "cannot trace"
        where = f" in module '{tracer.failed_in}'" if tracer.failed_in else ""
        raise UnsupportedModelError(
            f"torch.fx cannot trace {type(model).__name__}{where}{_user_frame(err)}: {type(err).__name__}: {err}. "
            "neon needs models without data-dependent control flow (no Python `if` or loop on tensor values), "
            "built from supported layers. " + SUPPORTED_TEXT
        ) from err
    gm = fx.GraphModule(clone, graph, class_name=type(model).__name__)
    # nn.Module.__setattr__ is typed for tensors and modules only; plain attributes are allowed
    gm.neon_shared_weights = shared  # type: ignore[assignment]  # checked by the engine before every propagation
    resolve_inplace(gm)
    fold_batchnorm(gm)
    had_softmax = _strip_softmax(gm)
    kind = output or ("log-odds" if had_softmax else "logit")
    if kind == "log-odds":
        _log_odds_top(gm)
    return Network(gm, output_kind=kind, input_shape=input_shape, feature_names=feature_names,
                   target_names=target_names, description=type(model).__name__)
