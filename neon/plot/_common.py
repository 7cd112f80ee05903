"""Shared pieces of the plots: colormaps, the symmetric colour range, array conversion."""

from __future__ import annotations

from typing import Any

import matplotlib
import numpy as np
from matplotlib.colors import Colormap, LinearSegmentedColormap

#: Name under which neon registers its black-centred cold-hot colormap with matplotlib.
COLDHOT = "neon_coldhot"


def _coldhot() -> LinearSegmentedColormap:
    # Black at zero so that irrelevant pixels vanish on dark backgrounds; cyan/blue for negative,
    # red/yellow for positive evidence (the "cold-hot" map of the LRP toolbox).
    colors = [(0.0, (0.0, 1.0, 1.0)), (0.25, (0.0, 0.0, 1.0)), (0.5, (0.0, 0.0, 0.0)),
              (0.75, (1.0, 0.0, 0.0)), (1.0, (1.0, 1.0, 0.0))]
    return LinearSegmentedColormap.from_list(COLDHOT, colors)


def register_colormaps() -> None:
    """Register ``"neon_coldhot"`` with matplotlib (idempotent)."""
    if COLDHOT not in matplotlib.colormaps:
        matplotlib.colormaps.register(_coldhot(), name=COLDHOT)


def get_cmap(cmap: str | Colormap) -> Colormap:
    """A colormap by name (``"bwr"``, ``"seismic"``, ``"coldhot"``/``"neon_coldhot"``) or as given."""
    if isinstance(cmap, Colormap):
        return cmap
    register_colormaps()
    if cmap == "coldhot":
        cmap = COLDHOT
    try:
        return matplotlib.colormaps[cmap]
    except KeyError:
        raise ValueError(f"unknown colormap {cmap!r}; use 'bwr', 'seismic', 'coldhot' or any matplotlib "
                         "colormap name.") from None


def to_numpy(x: Any) -> np.ndarray | None:
    """numpy view of a numpy array, torch tensor or DataFrame (``None`` stays ``None``)."""
    if x is None:
        return None
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    if hasattr(x, "to_numpy"):
        return x.to_numpy()
    return np.asarray(x)


def symmetric_limit(values: np.ndarray, percentile: float = 99.5) -> float:
    """Half-width ``v`` of the colour range ``[-v, v]``: the ``percentile`` of ``|values|``.

    A high percentile rather than the maximum keeps a few extreme pixels from washing out the
    map. Falls back to the maximum, then to 1, when the percentile is zero (an all-zero map).
    """
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile={percentile}; use a value in (0, 100].")
    a = np.abs(np.asarray(values, dtype=np.float64))
    if a.size == 0:
        return 1.0
    v = float(np.percentile(a, percentile))
    if v <= 0:
        v = float(a.max())
    return v if v > 0 else 1.0


def symmetric_limits(maps: np.ndarray, percentile: float = 99.5) -> np.ndarray:
    """:func:`symmetric_limit` of every sample of a batch at once, shape ``(n,)``."""
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile={percentile}; use a value in (0, 100].")
    a = np.abs(np.asarray(maps, dtype=np.float64)).reshape(len(maps), -1)
    if a.shape[1] == 0:
        return np.ones(len(a))
    v = np.percentile(a, percentile, axis=1)
    v = np.where(v > 0, v, a.max(axis=1))
    return np.where(v > 0, v, 1.0)


def unpack(expl: Any) -> tuple[np.ndarray, dict[str, Any]]:
    """Relevance as numpy and the metadata of an :class:`~neon.Explanation` (or of a bare array)."""
    if hasattr(expl, "relevance"):
        meta = {
            "data": to_numpy(expl.data) if getattr(expl, "data", None) is not None else None,
            "output": to_numpy(expl.output),
            "target": to_numpy(expl.target),
            "labels": expl.target_labels if expl.target is not None else None,
            "feature_names": expl.feature_names,
            "output_kind": expl.output_kind,
        }
        if expl.data is not None and hasattr(expl.data, "columns") and meta["feature_names"] is None:
            meta["feature_names"] = [str(c) for c in expl.data.columns]
        return np.asarray(to_numpy(expl.relevance), dtype=np.float64), meta
    empty = {"data": None, "output": None, "target": None, "labels": None, "feature_names": None, "output_kind": ""}
    return np.asarray(to_numpy(expl), dtype=np.float64), empty


def select(meta: dict[str, Any], rows: np.ndarray) -> dict[str, Any]:
    """The per-sample entries of ``meta`` (from :func:`unpack`) restricted to ``rows``."""
    out = dict(meta)
    for key in ("data", "output", "target"):
        if meta[key] is not None:
            out[key] = np.asarray(meta[key])[rows]
    if meta["labels"] is not None:
        out["labels"] = [meta["labels"][i] for i in rows]
    return out


def describe(meta: dict[str, Any], i: int) -> str:
    """``"class 3 (log-odds 4.2)"``: the explained target of sample ``i`` and its score."""
    kind = meta["output_kind"] or "output"
    noun = "cluster" if "cluster" in kind else "class" if kind in ("log-odds", "logit") else "target"
    label = meta["labels"][i] if meta["labels"] is not None else "?"
    return f"{noun} {label} ({kind} {float(meta['output'][i]):.3g})"
