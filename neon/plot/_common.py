"""Shared pieces of the plots: colormaps, the symmetric colour range, array conversion, labels and figures."""

from __future__ import annotations

from typing import Any

import matplotlib
import matplotlib.pyplot as plt
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
            "absorbed": to_numpy(expl.absorbed) if getattr(expl, "absorbed", None) is not None else None,
        }
        if expl.data is not None and hasattr(expl.data, "columns") and meta["feature_names"] is None:
            meta["feature_names"] = [str(c) for c in expl.data.columns]
        return np.asarray(to_numpy(expl.relevance), dtype=np.float64), meta
    empty = {"data": None, "output": None, "target": None, "labels": None, "feature_names": None, "output_kind": "",
             "absorbed": None}
    return np.asarray(to_numpy(expl), dtype=np.float64), empty


def select(meta: dict[str, Any], rows: np.ndarray) -> dict[str, Any]:
    """The per-sample entries of ``meta`` (from :func:`unpack`) restricted to ``rows``."""
    out = dict(meta)
    for key in ("data", "output", "target", "absorbed"):
        if meta[key] is not None:
            out[key] = np.asarray(meta[key])[rows]
    if meta["labels"] is not None:
        out["labels"] = [meta["labels"][i] for i in rows]
    return out


#: ``absorbed`` is shown next to the output when it is more than this share of ``|output|``.
ABSORBED_SHARE = 0.01


def absorbed_matters(output: Any, absorbed: Any) -> bool:
    """Whether ``|absorbed| > 1% of |output|`` (for arrays: of the mean ``|absorbed|`` and ``|output|``).

    Below that share the relevance adds up to the output as printed (3 significant digits); above it a
    reader comparing the bars with the output needs the absorbed share to make the numbers add up
    (``output = sum R + absorbed``, docs/theory.md §1).
    """
    if output is None or absorbed is None:
        return False
    out = np.abs(np.asarray(output, dtype=np.float64)).mean()
    return bool(np.abs(np.asarray(absorbed, dtype=np.float64)).mean() > ABSORBED_SHARE * out)


def relevance_label(kind: str) -> str:
    """The relevance axis label with its units: ``"relevance (log-odds)"``, ``"relevance (cluster logit)"``.

    Relevance is measured in the units of the explained output (it adds up to it, docs/theory.md §1);
    a regressor's ``"value"`` is in the units of its target.
    """
    if not kind:
        return "relevance"
    return "relevance (units of the output)" if kind == "value" else f"relevance ({kind})"


def describe(meta: dict[str, Any], i: int, compact: bool = False) -> str:
    """``"class 3 (log-odds 4.2)"``: the explained target of sample ``i`` and its score.

    ``absorbed`` is added (``"class 3 (log-odds 20.5, absorbed -32.1)"``) when it is more than 1% of the
    output, so that the figure's numbers add up. ``compact=True`` gives the short lines of a small panel:
    ``"class 3: log-odds 20.5"`` with ``"absorbed -32.1"`` on a second line.
    """
    kind = meta["output_kind"] or "output"
    noun = "cluster" if "cluster" in kind else "class" if kind in ("log-odds", "logit") else "target"
    label = meta["labels"][i] if meta["labels"] is not None else "?"
    out = float(meta["output"][i])
    absorbed = meta.get("absorbed")
    extra = f"absorbed {float(absorbed[i]):.3g}" if absorbed is not None and absorbed_matters(out, absorbed[i]) \
        else ""
    if compact:
        return f"{noun} {label}: {kind} {out:.3g}" + (f"\n{extra}" if extra else "")
    return f"{noun} {label} ({kind} {out:.3g}" + (f", {extra}" if extra else "") + ")"


def new_figure(nrows: int = 1, ncols: int = 1, **kwargs: Any) -> tuple[Any, Any]:
    """``plt.subplots`` with tight layout, redone at every draw: tick labels, titles and colour bars stay inside.

    Tight rather than constrained layout: a user's own ``plt.tight_layout()`` afterwards then keeps working
    without matplotlib's warning that the layout engine changed.
    """
    return plt.subplots(nrows, ncols, layout="tight", **kwargs)
