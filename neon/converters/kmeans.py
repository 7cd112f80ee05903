"""k-means -> :class:`neon.Network` (NEON, Kauffmann et al., TNNLS 2022).

The logit of cluster ``c`` is

``f_c(x) = min_{k != c} (||x - mu_k||^2 - ||x - mu_c||^2)``

(Kauffmann, Esders, Ruff, Montavon, Müller, "From clustering to cluster explanations via neural
networks", IEEE TNNLS 2022; docs/theory.md §4). It is positive exactly for the cluster that
``KMeans.predict`` assigns and negative for every other cluster, so ``argmax_c f_c = predict(x)``.
As a network: :class:`~neon.layers.CentroidContrast` (the ``K (K - 1)`` affine units
``h_ck = w_ck^T x + b_ck``, ``w_ck = 2 (mu_c - mu_k)``, ``b_ck = ||mu_k||^2 - ||mu_c||^2``) then
a hard :class:`~neon.layers.ReduceMin`. Rules: soft-min pooling with ``beta = 1 / mean f_c`` over
the fit data (:class:`~neon.rules.SoftMin` ``("auto")``) and the midpoint rule
(:class:`~neon.rules.Midpoint`), which is exactly conservative.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.utils.validation import check_is_fitted

from ..exceptions import UnsupportedModelError
from ..layers.distance import CentroidContrast, SquaredDistance
from ..layers.pooling import ReduceMin
from ..network import Network
from ..rules import Distance, Midpoint, SoftMin
from ..rules.composites import Composite
from . import references
from ._registry import register_types

#: Rows per internal batch: ``2^19 / (d + K)`` rows, so that the temporaries of the fused soft-min and
#: midpoint step (``rows x K`` terms and weights, ``rows x d`` relevance) stay within a few MB while the
#: ~40 small operations per chunk are amortised (measured at d=50, K=10, one thread: 8192-16384 rows
#: ~10-15 % faster than 4096, 2048 slower again); at most ``2^23 / (K (K - 1))`` rows, which bounds the
#: ``rows x K x (K - 1)`` contrast units that ``record=True`` builds (64 MiB in float64).
_CHUNK_ELEMENTS = 1 << 19
_UNIT_ELEMENTS = 1 << 23


def kmeans_rules(beta: float | str = "auto") -> Composite:
    """The NEON composite of a k-means network: soft-min pooling (``beta``) and the midpoint rule."""
    return Composite(by_type=[(ReduceMin, SoftMin(beta)), (CentroidContrast, Midpoint())], name="kmeans")


@register_types(KMeans, MiniBatchKMeans,
                description="KMeans, MiniBatchKMeans (cluster logits; NEON, Kauffmann et al. TNNLS 2022)",
                outputs=("cluster logit",))
def neuralize_kmeans(model: Any, output: str | None = None, beta: float | str = "auto",
                     **options: Any) -> Network:
    """Rewrite a fitted ``KMeans`` / ``MiniBatchKMeans`` as the network of cluster logits.

    Parameters
    ----------
    model
        A fitted ``sklearn.cluster.KMeans`` or ``MiniBatchKMeans`` with at least 2 clusters. Not modified.
    output
        ``None`` or ``"cluster logit"`` (the only output).
    beta
        Stiffness of the soft-min redistribution: ``"auto"`` (``1 / mean f_c`` over the fit data, the
        paper's choice), or a number (``0``: every competitor equally; large: the nearest takes all).

    Returns
    -------
    Network
        ``forward(x)`` is ``(n, K)``: ``f_c(x)`` for every cluster ``c``; ``argmax`` is ``model.predict(x)``.
    """
    check_is_fitted(model, "cluster_centers_")
    centers = np.asarray(model.cluster_centers_)
    dtype = torch.float64 if centers.dtype != np.float32 else torch.float32
    mu = torch.tensor(centers, dtype=dtype)  # a copy: the estimator's array is never shared
    k, d = mu.shape
    if k < 2:
        raise ValueError(f"{type(model).__name__} has {k} cluster; cluster logits need at least 2 clusters.")
    return Network.sequential(
        [("contrast", CentroidContrast(mu)), ("pool", ReduceMin())],
        output_kind="cluster logit",
        target_names=list(range(k)),
        input_shape=(d,),
        feature_names=getattr(model, "feature_names_in_", None),
        default_rules=kmeans_rules(beta),
        chunk_size=max(256, min(_CHUNK_ELEMENTS // (d + k), _UNIT_ELEMENTS // (k * (k - 1)))),
        description=type(model).__name__,
        reference=references.reference(references.kmeans_logits, model, f"{type(model).__name__}.transform"),
    )


def kmeans_distance_network(model: Any) -> Network:
    """The k-means distance outlier score ``o(x) = min_k ||x - mu_k||^2`` as a :class:`neon.Network`.

    The hard-min limit of :func:`~neon.converters.density.outlier_network`: a squared-distance layer to the
    centroids and a min pool, exactly the model's squared distance to the nearest centroid (checked at run time
    against ``KMeans.transform``). Rules: soft-min redistribution over the centroids with ``beta = 1 / mean(o)``
    over the fit data (the k-means default, docs/theory.md §4, §6) and the distance rule,
    ``R_i = sum_k p_k (x_i - mu_ki)^2 / ||x - mu_k||^2 o(x)``, exactly conservative.
    """
    from .density import outlier_network

    if type(model) not in (KMeans, MiniBatchKMeans):
        raise UnsupportedModelError(f"{type(model).__name__} has no k-means distance score; use KMeans.")
    check_is_fitted(model, "cluster_centers_")
    centers = np.asarray(model.cluster_centers_, dtype=np.float64)
    name = type(model).__name__
    return outlier_network(
        centers, np.ones(len(centers)), None, description=f"{name} distance to the nearest centroid",
        feature_names=getattr(model, "feature_names_in_", None),
        rules=Composite(by_type=[(ReduceMin, SoftMin("auto")), (SquaredDistance, Distance())], name="k-means distance"),
        reference=references.reference(references.kmeans_min_distance, model,
                                       f"the smallest squared distance of {name}.transform"),
    )
