"""Plots of a Spectral Relevance Analysis (:class:`neon.spray.SpRAy`) and of the samples it flagged.

- :func:`spectrum`: the smallest eigenvalues of the graph Laplacian, the gap that proposed the number of
  strategies marked;
- :func:`spray_embedding`: the 2-D embedding of the explanations, coloured by cluster;
- :func:`spray_prototypes`: the mean explanation of every cluster, heatmaps (images) or bars (tabular);
- :func:`spray_overview`: the three side by side for one class; :func:`spray_figure` one row per class;
- :func:`flagged_gallery`: flagged samples with their heatmaps (images) or their mean relevance (tabular).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ._common import get_cmap, symmetric_limit, to_numpy

__all__ = ["flagged_gallery", "spectrum", "spray_embedding", "spray_figure", "spray_overview", "spray_prototypes"]


def _ax(ax: Any, size: tuple[float, float] = (4.0, 3.0)) -> Any:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=size)[1]


def _colors(k: int) -> list[Any]:
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if k <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(k)]


def spectrum(spray: Any, ax: Any = None, *, count: int | None = None) -> Any:
    """The smallest eigenvalues of the normalised Laplacian, the proposed gap marked.

    The eigengap ``lambda_{k+1} - lambda_k`` that chose ``k = n_clusters_`` is drawn as a red bracket; a
    graph of ``c`` separate groups has ``c`` eigenvalues at zero. Returns the Axes.
    """
    ax = _ax(ax)
    ev = np.asarray(spray.eigenvalues_)
    shown = ev[: (count or min(len(ev), max(12, spray.n_clusters_ + 4)))]
    idx = np.arange(1, len(shown) + 1)
    ax.plot(idx, shown, "o-", color="0.3", ms=4, lw=1)
    k = spray.n_clusters_
    if k < len(shown):
        ax.plot([k, k + 1], [shown[k - 1], shown[k]], color="tab:red", lw=2.5)
        ax.annotate(f"gap: k = {k}", (k + 0.5, 0.5 * (shown[k - 1] + shown[k])), color="tab:red",
                    textcoords="offset points", xytext=(8, 0), va="center", fontsize=8)
    ax.set_xlabel("index j")
    ax.set_ylabel(r"eigenvalue $\lambda_j$")
    ax.set_title("spectrum", fontsize=9)
    return ax


def spray_embedding(spray: Any, ax: Any = None, *, scores: Mapping[int, tuple[float, bool]] | None = None) -> Any:
    """The 2-D embedding (``spray.embedding_``), one colour per cluster; suspicious clusters (``scores``:
    ``{cluster: (score, suspicious)}``) drawn with a black edge. Returns the Axes."""
    ax = _ax(ax)
    emb = np.asarray(spray.embedding_)
    colors = _colors(spray.n_clusters_)
    for k in range(spray.n_clusters_):
        pts = emb[spray.labels_ == k]
        score, flag = (scores or {}).get(k, (None, False))
        label = f"{k} ({len(pts)})" + ("" if score is None else f" s={score:.2f}")
        ax.scatter(pts[:, 0], pts[:, 1], s=14, color=colors[k], label=label,
                   edgecolors="black" if flag else "none", linewidths=0.8)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title("embedding (cluster: size, score)", fontsize=9)
    ax.legend(fontsize=7, loc="best", frameon=False)
    return ax


def spray_prototypes(spray: Any, axes: Any = None, *, feature_names: list[str] | None = None, top: int = 12,
               cmap: str = "bwr") -> Any:
    """The mean normalised explanation of every cluster: a heatmap per cluster for 2-D maps, signed bars of the
    ``top`` features with the largest ``|relevance|`` for tabular relevance. Returns the Axes (a list)."""
    import matplotlib.pyplot as plt

    protos = np.asarray(spray.prototypes_)
    k = len(protos)
    if axes is None:
        _, axes = plt.subplots(1, k, figsize=(2.2 * k if protos.ndim == 3 else 3.2 * k, 2.4), squeeze=False)
        axes = list(axes[0])
    axes = list(np.ravel(axes))
    colors = _colors(k)
    for i, ax in enumerate(axes[:k]):
        p = protos[i]
        size = int(np.sum(spray.labels_ == i))
        if p.ndim == 2:
            v = symmetric_limit(p, 100)
            ax.imshow(p, cmap=get_cmap(cmap), vmin=-v, vmax=v)
            ax.set_xticks([])
            ax.set_yticks([])
        else:
            order = np.argsort(-np.abs(p), kind="stable")[:top][::-1]
            names = feature_names or [f"x{j}" for j in range(len(p))]
            ax.barh(range(len(order)), p[order], color=["tab:red" if v > 0 else "tab:blue" for v in p[order]])
            ax.set_yticks(range(len(order)))
            ax.set_yticklabels([names[j] for j in order], fontsize=7)
            ax.axvline(0, color="0.5", lw=0.5)
        ax.set_title(f"cluster {i} ({size})", fontsize=8, color=colors[i])
    return axes


def spray_overview(spray: Any, *, feature_names: list[str] | None = None,
          scores: Mapping[int, tuple[float, bool]] | None = None) -> Any:
    """Spectrum, embedding and prototypes of one :class:`~neon.spray.SpRAy` in one figure. Returns the Figure."""
    return spray_figure({"": spray}, feature_names=feature_names,
                        scores=None if scores is None else {("", k): v for k, v in scores.items()})


def spray_figure(sprays: Mapping[Any, Any], *, scores: Mapping[tuple[Any, int], tuple[float, bool]] | None = None,
                 feature_names: list[str] | None = None) -> Any:
    """One row per class: spectrum, embedding, then the prototypes of its clusters. Returns the Figure."""
    import matplotlib.pyplot as plt

    rows = list(sprays.items())
    width = max([s.n_clusters_ for _, s in rows] or [1])
    tabular = bool(rows) and np.asarray(rows[0][1].prototypes_).ndim == 2
    proto_w = 3.0 if tabular else 1.8
    fig = plt.figure(figsize=(7.5 + proto_w * width, 3.0 * max(len(rows), 1)))
    # A fixed grid rather than a layout engine: constrained layout measures every label and costs seconds.
    grid = fig.add_gridspec(max(len(rows), 1), 2 + width, width_ratios=[3.0, 3.5] + [proto_w] * width,
                            left=0.05, right=0.98, bottom=0.12 / max(len(rows), 1) + 0.04, top=0.9,
                            wspace=0.9 if tabular else 0.3, hspace=0.5)
    for r, (label, s) in enumerate(rows):
        spectrum(s, fig.add_subplot(grid[r, 0]))
        per = {k: v for (lab, k), v in (scores or {}).items() if lab == label}
        ax = spray_embedding(s, fig.add_subplot(grid[r, 1]), scores=per)
        if label != "":
            ax.set_title(f"class {label}: embedding (cluster: size, score)", fontsize=9)
        spray_prototypes(s, [fig.add_subplot(grid[r, 2 + k]) for k in range(s.n_clusters_)],
                         feature_names=feature_names)
    return fig


def flagged_gallery(expl: Any, indices: np.ndarray, *, map_shape: tuple[int, ...],
                    feature_labels: list[str] | None = None, title: str = "") -> Any:
    """Flagged samples: input image above its heatmap (images), or a bar chart of their mean relevance and the
    values of the most relevant features (tabular). Returns the Figure, or ``None`` for nothing to show."""
    import matplotlib.pyplot as plt

    from ..spray import relevance_maps

    indices = np.asarray(indices, dtype=np.int64)
    if len(indices) == 0:
        return None
    rel = relevance_maps(expl[indices] if hasattr(expl, "relevance") else expl)
    data = getattr(expl, "data", None)
    x = None
    if data is not None:
        arr = to_numpy(data.iloc[indices] if hasattr(data, "iloc") else data[indices])
        x = None if arr is None else np.asarray(arr, dtype=np.float64)
    if len(map_shape) == 2:
        n = len(indices)
        cols = min(n, 12)
        nrows = 2 * int(np.ceil(n / cols))
        fig, axes = plt.subplots(nrows, cols, figsize=(1.1 * cols, 1.2 * nrows), squeeze=False)
        for ax in axes.ravel():
            ax.axis("off")
        for i in range(n):
            r, c = 2 * (i // cols), i % cols
            if x is not None:
                img = x[i]
                img = img.mean(0) if img.ndim == 3 and img.shape[0] in (1, 3, 4) else img
                axes[r, c].imshow(img.reshape(map_shape), cmap="gray_r")
                axes[r, c].set_title(str(int(indices[i])), fontsize=7)
            v = symmetric_limit(rel[i], 99.5)
            axes[r + 1, c].imshow(rel[i], cmap=get_cmap("bwr"), vmin=-v, vmax=v)
        fig.suptitle(title, fontsize=9)
        return fig
    mean = rel.reshape(len(rel), -1).mean(0)
    names = feature_labels or [f"x{j}" for j in range(len(mean))]
    order = np.argsort(-np.abs(mean), kind="stable")[:12][::-1]
    fig, ax = plt.subplots(figsize=(5, 0.3 * len(order) + 1))
    ax.barh(range(len(order)), mean[order], color=["tab:red" if v > 0 else "tab:blue" for v in mean[order]])
    ax.set_yticks(range(len(order)))
    ax.set_yticklabels([names[j] for j in order], fontsize=8)
    ax.set_title(title + " (mean relevance)", fontsize=9)
    return fig
