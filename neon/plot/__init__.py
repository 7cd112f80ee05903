"""Plots of explanations (matplotlib).

Every function takes ``ax=`` and returns the Axes it drew on (an array of Axes for grids):

- :func:`heatmap`: image relevance, diverging colormap centred at zero, symmetric range.
- :func:`features`: tabular relevance, signed bars for one sample or a summary over many.
- :func:`clusters`: k-means, the mean explanation of every cluster beside its centroid.
- :func:`rules_comparison`: one input explained with LRP-0, LRP-epsilon, LRP-gamma and a composite.
- :func:`text`: text models, the tokens of each sample highlighted by relevance (:func:`text_html` for
  notebooks).
- :func:`explanation`: picks :func:`heatmap` or :func:`features` from the shape of the relevance
  (this is what :meth:`neon.Explanation.plot` calls).
- :func:`spray_overview`, :func:`spectrum`, :func:`spray_embedding`, :func:`spray_prototypes`,
  :func:`spray_figure`: a Spectral Relevance Analysis (:class:`neon.spray.SpRAy`).

Colormaps: ``"bwr"`` (default), ``"seismic"``, and ``"coldhot"`` (black at zero), which is registered
with matplotlib as ``"neon_coldhot"`` when this module is imported.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._common import COLDHOT, register_colormaps, symmetric_limit
from .images import default_comparison_rules, heatmap, relevance_maps, rules_comparison
from .spray import spectrum, spray_embedding, spray_figure, spray_overview, spray_prototypes
from .tabular import cluster_means, clusters, features
from .tokens import text, text_html

register_colormaps()


def explanation(expl: Any, **kwargs: Any) -> Any:
    """Plot an explanation the way its data suggests: heatmaps for images, bars for tables.

    Relevance with more than one axis per sample (``(n, C, H, W)``, ``(n, H, W)``) or a
    ``shape=`` argument gives :func:`heatmap`; ``(n, d)`` gives :func:`features`.
    Keyword arguments go to the chosen function.

    Returns
    -------
    matplotlib.axes.Axes or numpy.ndarray of Axes
    """
    r = expl.relevance if hasattr(expl, "relevance") else expl
    ndim = np.ndim(r.detach().cpu().numpy() if hasattr(r, "detach") else r)
    if ndim >= 3 or "shape" in kwargs:
        return heatmap(expl, **kwargs)
    return features(expl, **kwargs)


__all__ = [
    "COLDHOT",
    "cluster_means",
    "clusters",
    "default_comparison_rules",
    "explanation",
    "features",
    "heatmap",
    "relevance_maps",
    "rules_comparison",
    "spectrum",
    "spray_embedding",
    "spray_figure",
    "spray_overview",
    "spray_prototypes",
    "symmetric_limit",
    "text",
    "text_html",
]
