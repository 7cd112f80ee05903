"""Input validation and numpy/torch conversion (numpy in -> numpy out, torch in -> torch out)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor


@dataclass
class ArrayInfo:
    """How the user's array came in, so results go back out the same way."""

    kind: str  # "numpy" or "torch"
    dtype: Any
    device: torch.device
    feature_names: list[str] | None


def is_dataframe(X: Any) -> bool:
    """Whether ``X`` is a pandas DataFrame (duck-typed: pandas is not a dependency)."""
    return hasattr(X, "columns") and hasattr(X, "to_numpy") and hasattr(X, "dtypes")


def as_tensor(X: Any, name: str = "X") -> tuple[Tensor, ArrayInfo]:
    """Validate ``X`` (finite numbers, at least 2-D) and return it as a tensor with how it came in."""
    feature_names = None
    if isinstance(X, Tensor):
        if not (X.is_floating_point() or X.dtype in (torch.int8, torch.int16, torch.int32, torch.int64,
                                                     torch.uint8, torch.bool)):
            raise ValueError(f"{name} must hold real numbers; got a tensor of dtype {X.dtype}.")
        info = ArrayInfo("torch", X.dtype, X.device, None)
        t = X.detach()
    else:
        if is_dataframe(X):
            feature_names = [str(c) for c in X.columns]
            try:
                arr = X.to_numpy(dtype=np.float64)
            except (TypeError, ValueError) as err:
                bad = [str(c) for c, d in zip(X.columns, X.dtypes) if not np.issubdtype(np.dtype(d), np.number)
                       and str(d) != "bool"]
                raise ValueError(f"{name} must be numeric; non-numeric columns: {bad}.") from err
        else:
            if hasattr(X, "toarray") and type(X).__module__.startswith("scipy.sparse"):
                # np.asarray would wrap the matrix as one object, reported below as a puzzling dtype
                raise ValueError(f"{name} is a scipy sparse {type(X).__name__}; neon explains dense arrays: convert "
                                 f"with {name}.toarray() (relevance is dense: every feature of every row).")
            arr = np.asarray(X)
        if arr.dtype.kind not in "biuf":
            raise ValueError(f"{name} must be numeric; got an array of dtype {arr.dtype}.")
        info = ArrayInfo("numpy", arr.dtype if arr.dtype.kind == "f" else np.dtype(np.float64),
                         torch.device("cpu"), feature_names)
        arr = np.ascontiguousarray(arr)
        if not arr.flags.writeable:  # torch cannot wrap read-only memory (e.g. some DataFrame views)
            arr = arr.copy()
        t = torch.from_numpy(arr)
    if t.dim() < 2:
        raise ValueError(
            f"{name} must be a batch of shape (n_samples, ...); got shape {tuple(t.shape)}. "
            "Reshape a single sample with X.reshape(1, -1) or X[None]."
        )
    # A finite sum proves every entry finite (NaN and inf propagate) at a fraction of the cost of an
    # element-wise check; only a sum that overflows needs the full check.
    if t.is_floating_point() and t.numel() and not bool(torch.isfinite(t.sum())) \
            and not bool(torch.isfinite(t).all()):
        n_nan = int(torch.isnan(t).sum())
        n_inf = int(torch.isinf(t).sum())
        raise ValueError(
            f"{name} contains NaN or infinity ({n_nan} NaN, {n_inf} inf); explanations need finite inputs."
        )
    return t, info


def compute_dtype(t: Tensor, network_dtype: torch.dtype) -> torch.dtype:
    """Promote the input's float type with the network's (float32 data, float64 model -> float64)."""
    if not t.is_floating_point():
        return network_dtype
    return torch.promote_types(t.dtype, network_dtype)


def restore(t: Tensor, info: ArrayInfo) -> Any:
    """Return ``t`` the way the input came in: same library, device and floating dtype."""
    if info.kind == "torch":
        dtype = info.dtype if info.dtype.is_floating_point else t.dtype
        return t.to(device=info.device, dtype=dtype)
    return t.detach().cpu().numpy().astype(info.dtype, copy=False)


def restore_vector(t: Tensor, info: ArrayInfo) -> Any:
    """Per-sample values (output, target, absorbed) in the input's library."""
    if info.kind == "torch":
        return t.to(device=info.device, dtype=info.dtype if (t.is_floating_point() and info.dtype.is_floating_point)
                    else t.dtype)
    arr = t.detach().cpu().numpy()
    return arr.astype(info.dtype, copy=False) if arr.dtype.kind == "f" else arr
