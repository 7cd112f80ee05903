"""Tracing a PyTorch model with ``torch.fx``: safely, once, and only when what is traced is the model's function.

Three things go wrong when a model is traced naively, and each would make neon explain a function that is
not the user's model:

- *what the forward depends on besides the input*: modules in training mode whose forward depends on it
  (dropout, batch norm on batch statistics), forward hooks, extra forward arguments, outputs that are not
  one tensor. :func:`check_traceable` refuses these up front with the fix in the message; optional
  forward arguments are traced at their defaults, as constants, with a warning that says so.
- *threads*: ``torch.fx`` patches ``nn.Module.__call__`` for the whole process while it traces. Modules
  called by other threads during that time would be recorded into neon's graph (or fail). The tracer here
  lets every thread but its own through to the original ``__call__``, and traces run one at a time
  (:data:`TRACE_LOCK`).
- *repetition*: explaining the same model again need not trace it again. :func:`cached` keeps the network
  of a model while the model lives and its parameters, buffers and modes are unchanged.
"""

from __future__ import annotations

import inspect
import threading
import traceback
import warnings
import weakref
from collections.abc import Callable, Hashable
from typing import Any

import torch
from torch import fx, nn

from ..exceptions import UnsupportedModelError

#: One trace at a time: torch.fx's patches of ``nn.Module`` are process-wide.
TRACE_LOCK = threading.RLock()

#: Modules whose forward in training mode differs from evaluation mode.
TRAIN_DEPENDENT: tuple[type[nn.Module], ...] = (
    nn.modules.dropout._DropoutNd, nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm,
    nn.RReLU,
)


class Tracer(fx.Tracer):
    """Keeps torch.nn layers and neon layers as leaves; traces through user-defined containers.

    Only the thread that started :meth:`trace` is traced: a module called from any other thread while
    ``torch.fx``'s process-wide patches are in place runs as usual. Remembers the innermost module whose
    forward failed, so that the error can name it. With ``select``, the traced function is
    ``select(model(x))`` (an index or key of a tuple/dict output, or any function of it).
    """

    failed_in: str | None = None

    def __init__(self, select: Callable[[Any], Any] | None = None):
        super().__init__()
        self._select = select
        self._owner: int | None = None

    def trace(self, root: Any, concrete_args: dict[str, Any] | None = None) -> fx.Graph:
        self._owner = threading.get_ident()
        try:
            return super().trace(root, concrete_args)
        finally:
            self._owner = None

    def _foreign(self) -> bool:
        return threading.get_ident() != self._owner

    def create_args_for_root(self, root_fn: Any, is_module: bool, concrete_args: Any = None) -> Any:
        fn, args = super().create_args_for_root(root_fn, is_module, concrete_args)
        if self._select is None:
            return fn, args
        select = self._select

        def selected(*a: Any, **k: Any) -> Any:
            return select(fn(*a, **k))

        return selected, args

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if type(m).__module__.startswith("neon."):
            return True
        return super().is_leaf_module(m, module_qualified_name)

    def call_module(self, m: nn.Module, forward: Any, args: Any, kwargs: Any) -> Any:
        if self._foreign():
            return forward(*args, **kwargs)  # another thread's module call: not ours to trace
        try:
            return super().call_module(m, forward, args, kwargs)
        except Exception:
            if self.failed_in is None:
                try:
                    self.failed_in = self.path_of_module(m)
                except NameError:
                    self.failed_in = type(m).__name__
            raise

    def getattr(self, attr: str, attr_val: Any, parameter_proxy_cache: dict[str, Any]) -> Any:
        if self._foreign():
            return attr_val
        return super().getattr(attr, attr_val, parameter_proxy_cache)


def user_frame(err: BaseException) -> str:
    """``file:line: code`` of the last traceback frame outside torch (the user's failing line)."""
    frames = [f for f in traceback.extract_tb(err.__traceback__) if "/torch/" not in f.filename
              and "/neon/" not in f.filename]
    if not frames:
        return ""
    f = frames[-1]
    return f" at {f.filename}:{f.lineno}: {f.line}"


def _depends_on_mode(m: nn.Module) -> bool:
    if isinstance(m, nn.modules.dropout._DropoutNd):
        return m.p > 0
    if isinstance(m, nn.modules.instancenorm._InstanceNorm):
        return m.track_running_stats
    return isinstance(m, TRAIN_DEPENDENT)


def check_traceable(model: nn.Module) -> dict[str, Any]:
    """Refuse what would make the traced network differ from the model; return the concrete forward arguments.

    Raises :class:`UnsupportedModelError` (with the fix in the message) for submodules in training mode
    whose forward depends on it, for forward hooks and pre-hooks, and for forward arguments beyond the input
    that have no default. Optional arguments are returned as ``{name: default}``, to be traced as constants
    (a warning says so).
    """
    name = type(model).__name__
    training = [path or name for path, m in model.named_modules() if m.training and _depends_on_mode(m)]
    if training:
        shown = ", ".join(f"'{p}' ({type(model.get_submodule(p) if p != name else model).__name__})"
                          for p in training[:4]) + (" ..." if len(training) > 4 else "")
        raise UnsupportedModelError(
            f"{name} is in training mode, and its forward depends on it ({shown}: dropout drops units at "
            "random and batch norm normalises with the batch's statistics). Call model.eval() before explaining; "
            "neon never changes your model's mode."
        )
    hooked = []
    for path, m in model.named_modules():
        for attr in ("_forward_hooks", "_forward_pre_hooks"):
            if getattr(m, attr, None):
                hooked.append(f"'{path or name}' ({attr[1:-1].replace('_', ' ')})")
    glob = nn.modules.module
    if getattr(glob, "_global_forward_hooks", None) or getattr(glob, "_global_forward_pre_hooks", None):
        hooked.append("global module hooks (register_module_forward_hook)")
    if hooked:
        raise UnsupportedModelError(
            f"{name} has forward hooks that may change what it computes: {', '.join(hooked[:4])}"
            + (" ..." if len(hooked) > 4 else "") + ". neon traces the model without them, so it would explain "
            "another function: remove them (handle.remove()) before explaining, or explain a copy without hooks."
        )
    return _concrete_args(model)


def _concrete_args(model: nn.Module) -> dict[str, Any]:
    try:
        params = list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
        return {}
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        raise UnsupportedModelError(
            f"{type(model).__name__}.forward takes *args; neon explains models called as model(x). Wrap it in a "
            "module whose forward takes the input alone."
        )
    if not positional:
        raise UnsupportedModelError(f"{type(model).__name__}.forward takes no input argument.")
    concrete: dict[str, Any] = {}
    for p in positional[1:]:
        if p.default is p.empty:
            raise UnsupportedModelError(
                f"{type(model).__name__}.forward has the argument '{p.name}' besides the input, without a default; "
                "neon explains models called as model(x). Wrap it in a module whose forward takes the input alone "
                f"(and fixes '{p.name}'), e.g. lambda-free: class Wrapped(nn.Module): forward(self, x): "
                f"return model(x, {p.name}=...)."
            )
        concrete[p.name] = p.default
    if concrete:
        shown = ", ".join(f"{k}={v!r}" for k, v in concrete.items())
        warnings.warn(
            f"{type(model).__name__}.forward has optional arguments besides the input; neon explains model(x) with "
            f"them at their defaults ({shown}), traced as constants.", UserWarning, stacklevel=4)
    return concrete


def model_state(model: nn.Module) -> tuple[Hashable, ...]:
    """What a traced network of ``model`` depends on: every parameter and buffer (identity and version) and
    every module's mode. Equal states mean the network is still the model's function."""
    tensors = [(id(t), t._version) for t in model.parameters()] + [(id(t), t._version) for t in model.buffers()]
    return tuple(tensors) + tuple(m.training for m in model.modules())


_CACHE: weakref.WeakKeyDictionary[nn.Module, dict[Hashable, tuple[tuple[Hashable, ...], Any]]] = \
    weakref.WeakKeyDictionary()


def cached(model: nn.Module, key: Hashable, build: Callable[[], Any]) -> Any:
    """``build()`` once per ``(model, key)`` and model state (:func:`model_state`); kept while the model lives."""
    state = model_state(model)
    with TRACE_LOCK:
        entries = _CACHE.setdefault(model, {})
        hit = entries.get(key)
        if hit is not None and hit[0] == state:
            return hit[1]
        value = build()
        entries[key] = (state, value)
        return value


def selector(output_selector: Any) -> Callable[[Any], Any] | None:
    """``output_selector`` (an int, a key, or a function of the model's output) as a function, or ``None``."""
    if output_selector is None:
        return None
    if callable(output_selector):
        return output_selector
    if isinstance(output_selector, (int, str)):
        key = output_selector

        def select(out: Any) -> Any:
            if isinstance(key, str) and not isinstance(out, dict) and hasattr(out, key):
                return getattr(out, key)
            return out[key]

        select.__qualname__ = f"output[{key!r}]"
        return select
    raise UnsupportedModelError(
        f"output_selector={output_selector!r}: give an index into a tuple output (e.g. 1), a key of a dict output "
        "(e.g. 'logits'), or a function of the model's output returning one tensor."
    )


def structure_of(value: Any) -> str:
    """A short description of a traced output that is not one tensor (for error messages)."""
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)} values"
    if isinstance(value, dict):
        return f"a dict with keys {list(value)[:6]}"
    return type(value).__name__


def is_tensor_like(value: Any) -> bool:
    return isinstance(value, (fx.Node, torch.Tensor))
