"""Relevance of tabular features: signed bars for one sample, a summary for many, k-means clusters."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import Colormap

from ._common import (
    absorbed_matters,
    describe,
    get_cmap,
    new_figure,
    relevance_label,
    symmetric_limit,
    to_numpy,
    unpack,
)

POSITIVE = "#d62728"
NEGATIVE = "#1f77b4"


def _names(meta: dict[str, Any], d: int, feature_names: Sequence[str] | None) -> list[str]:
    names = feature_names if feature_names is not None else meta["feature_names"]
    if names is None:
        return [f"x{i}" for i in range(d)]
    names = [str(n) for n in names]
    if len(names) != d:
        raise ValueError(f"{len(names)} feature names for {d} features.")
    return names


def _top(score: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest scores (ties broken by feature order)."""
    return np.argsort(-score, kind="stable")[:k]


def _beeswarm_offsets(values: np.ndarray, width: float = 0.38, bins: int = 40) -> np.ndarray:
    """Vertical offsets that spread points with similar values, like a beeswarm plot.

    Points are binned along the value axis; the k-th point of a bin is placed at alternating
    offsets ``0, +s, -s, +2s, ...`` with ``s`` chosen so that the fullest bin spans ``width``.
    """
    n = len(values)
    if n == 0:
        return np.zeros(0)
    lo, hi = float(values.min()), float(values.max())
    b = np.zeros(n, dtype=int) if hi <= lo else np.minimum(((values - lo) / (hi - lo) * bins).astype(int), bins - 1)
    order = np.argsort(b, kind="stable")
    sorted_b = b[order]
    starts = np.searchsorted(sorted_b, sorted_b, side="left")
    rank = np.empty(n, dtype=int)
    rank[order] = np.arange(n) - starts
    step = width / max(int(rank.max()), 1)
    return np.where(rank % 2 == 1, 1.0, -1.0) * ((rank + 1) // 2) * step


def features(expl: Any, index: int | None = None, *, kind: str = "auto", max_features: int = 20,
             feature_names: Sequence[str] | None = None, ax: Axes | None = None) -> Axes:
    """Tabular relevance: signed bars for one sample, or a summary over many samples.

    ``kind="bar"`` (one sample, ``index``): the ``max_features`` features with the largest
    ``|R_i|``, sorted by signed relevance (most positive on top); red bars are evidence for the
    explained output, blue bars against it. The bars sum to ``output - absorbed``; the title gives the
    output, and ``absorbed`` beside it when that is more than 1% of the output. The relevance axis is
    labelled with its units (the explained output's: ``"relevance (log-odds)"``).

    ``kind="summary"`` (all samples): grey bars of the mean ``|R_i|`` per feature, sorted (largest
    on top), with every sample's ``R_i`` as a dot spread vertically like a beeswarm and coloured by
    the feature's value (blue low, red high, with a colour bar) when the data is known; the title gives
    the mean output (and the mean absorbed share when it is more than 1% of it).

    Parameters
    ----------
    expl
        A :class:`neon.Explanation` of tabular data (``(n, d)``) or a relevance array.
    index
        The sample for the bar plot; default the first (with ``kind="bar"``).
    kind
        ``"auto"`` (bars for one sample or an ``index``, else the summary), ``"bar"``, ``"summary"``.
    max_features
        How many features to show.
    feature_names
        Names; default the explanation's.
    ax
        The Axes to draw on; default a new figure.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> expl = neon.Explainer(model).fit(X_train).explain(X_test)   # doctest: +SKIP
    >>> ax = neon.plot.features(expl, index=0, max_features=10)      # doctest: +SKIP
    >>> ax = neon.plot.features(expl, kind="summary")                # doctest: +SKIP
    """
    r, meta = unpack(expl)
    r = r.reshape(len(r), -1)
    n, d = r.shape
    if kind == "auto":
        kind = "bar" if (n == 1 or index is not None) else "summary"
    if kind not in ("bar", "summary"):
        raise ValueError(f"kind={kind!r}; use 'auto', 'bar' or 'summary'.")
    if n == 0:
        raise ValueError("the explanation has no samples to plot.")
    names = _names(meta, d, feature_names)
    k = max(1, min(max_features, d))
    if ax is None:
        # wide enough for the longest name beside the bars; constrained layout keeps every label inside
        longest = max(len(n) for n in names)
        _, ax = new_figure(figsize=(4.5 + min(0.075 * longest, 5.0), 0.3 * k + 1.5))
    units = relevance_label(meta["output_kind"])
    if kind == "bar":
        i = 0 if index is None else int(index)
        ri = r[i]
        keep = _top(np.abs(ri), k)
        order = keep[np.argsort(ri[keep], kind="stable")]
        ax.barh(np.arange(k), ri[order], color=np.where(ri[order] > 0, POSITIVE, NEGATIVE))
        ax.set_yticks(np.arange(k), [names[j] for j in order])
        ax.axvline(0, color="black", lw=0.8)
        ax.set_xlabel(units)
        if meta["output"] is not None:
            ax.set_title(describe(meta, i), fontsize=10)
        return ax
    mean_abs = np.abs(r).mean(0)
    keep = _top(mean_abs, k)
    order = keep[np.argsort(mean_abs[keep], kind="stable")]
    ax.barh(np.arange(k), mean_abs[order], color="0.85", zorder=1, label="mean |R|")
    data = meta["data"]
    values = None
    if data is not None:
        values = np.asarray(data, dtype=np.float64).reshape(n, -1)[:, order]
        lo, hi = values.min(0), values.max(0)
        values = (values - lo) / np.where(hi > lo, hi - lo, 1.0)
    dots = None
    for row, j in enumerate(order):
        colour = {"c": values[:, row], "cmap": "coolwarm", "vmin": 0, "vmax": 1} if values is not None else {"c": "0.2"}
        dots = ax.scatter(r[:, j], row + _beeswarm_offsets(r[:, j]), s=6, zorder=2, linewidths=0, **colour)
    ax.set_yticks(np.arange(k), [names[j] for j in order])
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel(f"{units}\nbars: mean |R|; dots: one per sample")
    if values is not None and dots is not None:
        bar = ax.figure.colorbar(dots, ax=ax, ticks=[0, 1], fraction=0.05, pad=0.02, aspect=30)
        bar.ax.set_yticklabels(["low", "high"])
        bar.set_label("feature value")
    if meta["output"] is not None:
        out = np.asarray(meta["output"], dtype=np.float64)
        kind_name = meta["output_kind"] or "output"
        title = f"{n} samples: mean {kind_name} {out.mean():.3g}"
        if absorbed_matters(out, meta["absorbed"]):
            title += f", mean absorbed {float(np.mean(meta['absorbed'])):.3g}"
        ax.set_title(title, fontsize=10)
    return ax


def _centroids(centroids: Any) -> np.ndarray:
    """Centroids in input coordinates from an array, a fitted KMeans, or a pipeline ending in one."""
    if hasattr(centroids, "steps"):
        last = centroids.steps[-1][1]
        mu = np.asarray(last.cluster_centers_, dtype=np.float64)
        head = centroids[:-1]
        return np.asarray(head.inverse_transform(mu), dtype=np.float64) if len(centroids.steps) > 1 else mu
    if hasattr(centroids, "cluster_centers_"):
        return np.asarray(centroids.cluster_centers_, dtype=np.float64)
    return np.asarray(to_numpy(centroids), dtype=np.float64)


def cluster_means(relevance: np.ndarray, target: np.ndarray, n_clusters: int) -> np.ndarray:
    """``(K, d)`` mean relevance of the samples explained for each cluster (zeros for empty clusters)."""
    sums = np.zeros((n_clusters, relevance.shape[1]))
    np.add.at(sums, target, relevance)
    counts = np.bincount(target, minlength=n_clusters)
    return sums / np.maximum(counts, 1)[:, None]


def clusters(expl: Any, centroids: Any, *, feature_names: Sequence[str] | None = None,
             cmap: str | Colormap = "bwr", percentile: float = 100.0, ax: Any = None) -> np.ndarray:
    """k-means: the mean explanation of every cluster beside its centroid.

    Left: ``mean_{x in c} R(x)`` for every explained cluster ``c`` (features as rows, clusters
    as columns), the NEON cluster explanation of Kauffmann et al. ("From clustering to cluster
    explanations via neural networks", TNNLS 2022). Right: the centroids, standardised per feature
    with the mean and standard deviation of the explained data (of the centroids when the data is
    unknown), so that one sees *where* a cluster lies next to *what* makes its members belong to it.

    Parameters
    ----------
    expl
        A :class:`neon.Explanation` of a k-means model (targets are the cluster indices).
    centroids
        ``(K, d)`` array, a fitted ``KMeans``, or a pipeline ending in one (centroids are mapped
        back to input coordinates with the pipeline's ``inverse_transform``).
    feature_names, cmap, percentile
        Names; colormap; percentile of ``|value|`` that saturates each panel (symmetric range).
    ax
        Two Axes ``(relevance, centroids)``; default a new figure.

    Returns
    -------
    numpy.ndarray of Axes
        ``[relevance Axes, centroid Axes]``.

    Examples
    --------
    >>> kmeans = KMeans(3, n_init=10).fit(X)                             # doctest: +SKIP
    >>> axes = neon.plot.clusters(neon.Explainer(kmeans).fit(X).explain(X), kmeans)   # doctest: +SKIP
    """
    r, meta = unpack(expl)
    r = r.reshape(len(r), -1)
    mu = _centroids(centroids)
    k, d = mu.shape
    if d != r.shape[1]:
        raise ValueError(f"centroids have {d} features, the explanation {r.shape[1]}.")
    if meta["target"] is None:
        raise ValueError("clusters needs an Explanation (with the explained cluster of every sample).")
    target = np.asarray(meta["target"]).astype(int)
    means = cluster_means(r, target, k)
    data = meta["data"]
    ref = np.asarray(data, dtype=np.float64).reshape(len(r), -1) if data is not None and len(r) > 1 else mu
    scale = ref.std(0)
    z = (mu - ref.mean(0)) / np.where(scale > 0, scale, 1.0)
    names = _names(meta, d, feature_names)
    if ax is None:
        longest = max(len(n) for n in names)
        _, axes = new_figure(1, 2, figsize=(5.0 + 1.2 * k + min(0.075 * longest, 5.0), 0.3 * d + 1.8), sharey=True)
    else:
        axes = list(np.ravel(ax))
        if len(axes) != 2:
            raise ValueError(f"clusters draws two panels; got {len(axes)} Axes.")
    colormap = get_cmap(cmap)
    labels = meta["labels"]
    cluster_names = [str(i) for i in range(k)]
    if labels is not None and expl.target_names is not None and len(expl.target_names) == k:
        cluster_names = [str(t) for t in expl.target_names]
    panels = ((axes[0], means.T, "mean relevance", relevance_label(meta["output_kind"] or "cluster logit")),
              (axes[1], z.T, "centroid (standardised)", "standard deviations from the mean"))
    for a, m, title, units in panels:
        v = symmetric_limit(m, percentile)
        im = a.imshow(m, cmap=colormap, vmin=-v, vmax=v, aspect="auto", interpolation="nearest")
        a.set_xticks(np.arange(k), cluster_names)
        a.set_xlabel("cluster")
        a.set_title(title, fontsize=10)
        a.figure.colorbar(im, ax=a, fraction=0.08, pad=0.04).set_label(units)
    axes[0].set_yticks(np.arange(d), names)
    return np.array(axes, dtype=object)
