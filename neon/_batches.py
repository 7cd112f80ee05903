"""Data in, relevance out, chunk by chunk: memory bounded by the chunk, never by a copy of the dataset.

A :class:`Source` reads rows ``[a, b)`` of the user's data as a validated tensor (numpy arrays and memmaps,
torch tensors, pandas DataFrames, pyarrow Tables), and a :class:`Sink` writes each chunk's results straight
into the output, which comes back in the input's form: numpy in, numpy out (a memmap gives an in-memory
array); torch in, torch out (same device and dtype); a DataFrame gives a DataFrame with the same index and
columns (and Series for the per-sample values); a pyarrow Table gives a Table.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ._arrays import ArrayInfo, as_tensor, is_dataframe


def is_arrow_table(X: Any) -> bool:
    return type(X).__module__.startswith("pyarrow") and hasattr(X, "num_rows") and hasattr(X, "column_names")


class Source:
    """Rows of the user's data as validated tensors, without converting all of it at once."""

    def __init__(self, X: Any, name: str = "X"):
        self.X, self.name = X, name
        if is_dataframe(X):
            self.kind = "pandas"
            self.n = len(X)
            self.shape: tuple[int, ...] = (len(X), X.shape[1])
            self.feature_names: list[str] | None = [str(c) for c in X.columns]
            self.dtype: Any = np.dtype(np.float64) if not all(np.dtype(d) == np.float32 for d in X.dtypes) \
                else np.dtype(np.float32)
        elif is_arrow_table(X):
            self.kind = "arrow"
            self.n, self.shape = X.num_rows, (X.num_rows, X.num_columns)
            self.feature_names = [str(c) for c in X.column_names]
            self.dtype = np.dtype(np.float64)
        else:
            head, info = as_tensor(X[:0] if hasattr(X, "__getitem__") and hasattr(X, "shape") else X, name)
            self.kind = info.kind
            self.feature_names = info.feature_names
            self.n = int(X.shape[0]) if hasattr(X, "shape") else len(head)
            self.shape = tuple(int(s) for s in (X.shape if hasattr(X, "shape") else head.shape))
            self.dtype = info.dtype
            self.device = info.device
            self._whole = None if hasattr(X, "shape") else head  # e.g. nested lists: converted once
        self.info = ArrayInfo(self.kind if self.kind in ("numpy", "torch") else "numpy",
                              self.dtype if self.kind != "torch" else self.X.dtype,
                              getattr(self, "device", torch.device("cpu")), self.feature_names)

    @property
    def torch_dtype(self) -> torch.dtype:
        """The data's dtype as a torch dtype (integers as they are: the caller decides what to compute in)."""
        if self.kind == "torch":
            return self.X.dtype
        return torch.from_numpy(np.empty(0, dtype=self.dtype)).dtype

    def rows(self, a: int, b: int) -> Tensor:
        """Rows ``a:b`` as a validated tensor (finite numbers)."""
        if self.kind == "pandas":
            part = self.X.iloc[a:b]
            t, _ = as_tensor(part, self.name)
            return t
        if self.kind == "arrow":
            part = self.X.slice(a, b - a)
            cols = [np.asarray(part.column(i).to_numpy(zero_copy_only=False), dtype=np.float64)
                    for i in range(part.num_columns)]
            arr = np.column_stack(cols) if cols else np.zeros((b - a, 0))
            t, _ = as_tensor(arr, self.name)
            return t
        if self._whole is not None:
            return self._whole[a:b]
        t, _ = as_tensor(self.X[a:b], self.name)
        return t

    def chunks(self, size: int) -> Iterator[tuple[int, Tensor]]:
        for a in range(0, self.n, size):
            yield a, self.rows(a, min(self.n, a + size))


class Sink:
    """Collects per-chunk results into outputs of the input's form, written in place chunk by chunk."""

    def __init__(self, source: Source, out_dtype: Any):
        self.source = source
        self.n = source.n
        self.relevance: Any = None
        self.vectors: dict[str, list[Tensor]] = {}
        self._out_dtype = out_dtype

    def put_relevance(self, a: int, rel: Tensor) -> None:
        src = self.source
        if self.relevance is None:
            shape = (self.n,) + tuple(rel.shape[1:])
            if src.kind == "torch":
                self.relevance = torch.empty(shape, dtype=src.X.dtype if src.X.is_floating_point() else rel.dtype,
                                             device=src.X.device)
            else:
                self.relevance = np.empty(shape, dtype=self._out_dtype)
        if src.kind == "torch":
            self.relevance[a:a + len(rel)] = rel.to(device=self.relevance.device, dtype=self.relevance.dtype)
        else:
            self.relevance[a:a + len(rel)] = rel.detach().cpu().numpy()

    def put(self, name: str, values: Tensor) -> None:
        self.vectors.setdefault(name, []).append(values.detach())

    def vector(self, name: str) -> Tensor:
        parts = self.vectors.get(name, [])
        return torch.cat(parts) if parts else torch.zeros(0)

    def finish_relevance(self) -> Any:
        src = self.source
        rel = self.relevance
        if src.kind == "pandas":
            import pandas as pd

            return pd.DataFrame(rel, index=src.X.index, columns=src.X.columns, copy=False)
        if src.kind == "arrow":
            import pyarrow as pa

            return pa.table({name: rel[:, i] for i, name in enumerate(src.X.column_names)})
        return rel

    def finish_vector(self, values: Tensor) -> Any:
        """Per-sample values (output, target, absorbed) in the input's library (pandas: a Series on its index)."""
        src = self.source
        if src.kind == "torch":
            dtype = src.X.dtype if (values.is_floating_point() and src.X.is_floating_point()) else values.dtype
            return values.to(device=src.X.device, dtype=dtype)
        arr = values.cpu().numpy()
        if arr.dtype.kind == "f":
            arr = arr.astype(self._out_dtype, copy=False)
        if src.kind == "pandas":
            import pandas as pd

            return pd.Series(arr, index=src.X.index)
        return arr


def is_dask(X: Any) -> bool:
    """Whether ``X`` is a dask array or dask DataFrame (duck-typed: dask is an optional dependency)."""
    return type(X).__module__.split(".")[0] in ("dask", "dask_expr") and hasattr(X, "__dask_graph__")


def is_batch_stream(X: Any) -> bool:
    """Whether ``X`` is an iterable of batches (a DataLoader, a generator) rather than one array of rows."""
    if isinstance(X, (str, bytes, dict, list, tuple, np.ndarray, Tensor)) or hasattr(X, "shape") \
            or hasattr(X, "__array__") or is_arrow_table(X) or is_dataframe(X):
        return False
    return hasattr(X, "__iter__")


def fit_tensor(X: Any) -> tuple[Tensor, ArrayInfo]:
    """Fit data as one tensor: arrays, tensors, DataFrames and Tables whole; a dask collection's first block."""
    if is_dask(X):
        arr = X.to_dask_array(lengths=True) if hasattr(X, "to_dask_array") else X
        if any(np.isnan(c) for c in arr.chunks[0]):
            raise ValueError("the dask collection has unknown chunk sizes; call X.compute_chunk_sizes() (arrays) or "
                             "use to_dask_array(lengths=True) (DataFrames) first.")
        X = np.asarray(arr.blocks[0].compute())
    if is_batch_stream(X):
        raise ValueError("fit needs data in memory (an array, tensor, DataFrame or Table), not an iterable of "
                         "batches: pass a representative sample, e.g. the first batch.")
    source = Source(X, "X_fit")
    return source.rows(0, source.n), source.info


def check_device(device: Any) -> torch.device:
    """``device`` as a ``torch.device`` that exists on this machine, or an error naming the ones that do."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device={device!r} is not a device: {err}") from err
    available = ["cpu"]
    if torch.cuda.is_available():
        available += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if hasattr(torch.backends, "mps") and torch.backends.mps.is_available():
        available.append("mps")
    if dev.type == "cpu":
        return dev
    name = f"{dev.type}:{dev.index if dev.index is not None else 0}" if dev.type == "cuda" else dev.type
    if name not in available:
        raise ValueError(f"device={device!r} does not exist here; available: {', '.join(available)}.")
    return dev


def _interactive() -> bool:
    if "ipykernel" in sys.modules:
        return True
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


@contextlib.contextmanager
def progress_bar(total: int | None, enabled: bool | None, worth_it: bool, unit: str = "rows") -> Iterator[Any]:
    """A tqdm bar (``tqdm.auto``: a widget in notebooks) when ``enabled`` says so, or when it is ``None``, the run
    has more than one chunk (``worth_it``) and someone can see it; otherwise a silent stand-in."""
    show = enabled if enabled is not None else (worth_it and _interactive())
    if not show:
        yield _Silent()
        return
    from tqdm.auto import tqdm

    bar = tqdm(total=total, unit=unit, desc="neon explain", leave=False)
    try:
        yield bar
    finally:
        bar.close()


class _Silent:
    def update(self, n: int = 1) -> None:
        pass
