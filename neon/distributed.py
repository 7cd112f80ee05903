"""Explaining a dataset that does not fit in one process: dask arrays and DataFrames (extra ``neon-xai[dask]``).

``Explainer.explain(X)`` with a dask collection returns an :class:`~neon.Explanation` whose ``relevance``,
``output``, ``target``, ``absorbed`` and ``baseline`` are lazy dask arrays with the row chunks of ``X``. The
explainer is fitted once (on the fit data given to :meth:`~neon.Explainer.fit`, or on the first block of
``X``), shipped to the workers once as one task of the graph, and every block is explained by its own copy:
the result equals the in-memory explanation exactly (batch independence). Computing the fields together
(``dask.compute(expl.relevance, expl.output)``) explains every block once.

The same code runs on a laptop's threads, on a ``dask.distributed.LocalCluster`` or on any Dask cluster::

    from dask.distributed import Client
    client = Client("tcp://scheduler:8786")       # or Client(LocalCluster(n_workers=2))
    X = dask.array.from_zarr("features.zarr")     # or dask.dataframe.read_parquet(...)
    explainer = neon.Explainer(model).fit(sample)
    expl = explainer.explain(X)                   # lazy
    expl.relevance.to_zarr("relevance.zarr")      # computed block by block on the cluster
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .explanation import Explanation


def _explain_block(explainer: Any, block: np.ndarray, target: Any, columns: list[str] | None) -> dict[str, Any]:
    """One block on one worker: the explainer's own :meth:`~neon.Explainer.explain`, returned as numpy arrays."""
    data: Any = block
    if columns is not None:  # a DataFrame's blocks keep their column names, so feature names are checked
        import pandas as pd

        data = pd.DataFrame(block, columns=columns)
    expl = explainer.explain(data, target=target)
    return {field: np.asarray(getattr(expl, field)) for field in ("relevance", "output", "target", "absorbed",
                                                                 "baseline")}


def explain_dask(explainer: Any, X: Any, target: Any = None) -> Explanation:
    """The lazy explanation of a dask array or DataFrame (module docstring)."""
    import dask
    import dask.array as da

    columns = None
    if hasattr(X, "to_dask_array"):  # a dask DataFrame: rows with known lengths, columns as feature names
        columns = [str(c) for c in X.columns]
        X = X.to_dask_array(lengths=True)
    if any(np.isnan(c) for c in X.chunks[0]):
        raise ValueError("the dask array has unknown chunk sizes (e.g. after boolean indexing); call "
                         "X.compute_chunk_sizes() first.")
    if X.ndim < 2:
        raise ValueError(f"X must be a batch of shape (n_samples, ...); got a dask array of shape {X.shape}.")
    if target is not None and not isinstance(target, (int, str, np.integer)):
        raise ValueError("target for a dask collection must be None, one index or one target name.")
    if any(len(c) > 1 for c in X.chunks[1:]):
        X = X.rechunk({i: -1 for i in range(1, X.ndim)})  # a sample's features stay together
    first: Any = None
    if not hasattr(explainer, "network_") or explainer.verify:
        first = np.asarray(X.blocks[0].compute())
        if columns is not None:
            import pandas as pd

            first = pd.DataFrame(first, columns=columns)
    if not hasattr(explainer, "network_"):
        explainer.fit(first)
    if explainer.verify:
        # the run-time equivalence check needs the model itself: run it here, before the explainer is shipped
        explainer.explain(first[:16])
    shipped = dask.delayed(explainer, pure=True, traverse=False)  # one task: sent to each worker once
    parts = [dask.delayed(_explain_block, pure=True)(shipped, block, target, columns)
             for block in X.to_delayed().ravel()]
    rows = X.chunks[0]
    trailing = tuple(X.shape[1:])
    out_dtype = X.dtype if np.issubdtype(X.dtype, np.floating) else np.dtype(np.float64)

    def stack(field: str, shape: tuple[int, ...], dtype: Any) -> Any:
        return da.concatenate([da.from_delayed(part[field], shape=(n,) + shape, dtype=dtype)
                               for part, n in zip(parts, rows)]) if parts else da.zeros((0,) + shape, dtype=dtype)

    return Explanation(
        relevance=stack("relevance", trailing, out_dtype),
        output=stack("output", (), out_dtype),
        target=stack("target", (), np.int64),
        absorbed=stack("absorbed", (), out_dtype),
        baseline=stack("baseline", (), out_dtype),
        data=X,
        feature_names=columns or explainer.network_.feature_names,
        target_names=explainer.network_.target_names,
        output_kind=explainer.network_.output_kind,
        rules=repr(explainer.composite_),
    )
