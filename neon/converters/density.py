"""One-class SVM (RBF) and Gaussian kernel density -> :class:`neon.Network` (NEON).

Both models score a point by a weighted sum of Gaussian kernels around reference points ``x_j``.
Kauffmann, Müller, Montavon, "Towards explaining anomalies: a deep Taylor decomposition of
one-class models", Pattern Recognition 2020 (docs/theory.md §4) rewrite it as the outlier score

``o(x) = -(1/gamma) log sum_j alpha_j exp(-gamma ||x - x_j||^2)``,  ``sum_j alpha_j = 1``,

a network of two layers: squared distances ``h_j = ||x - x_j||^2 - log(alpha_j) / gamma``
(:class:`~neon.layers.SquaredDistance`) and a soft-min pool of stiffness ``gamma``
(:class:`~neon.layers.ReduceMin`). ``o(x) >= min_j ||x - x_j||^2 >= 0``. Rules: soft-min
redistribution with ``beta = gamma`` and the distance rule (root point ``x_j``), both exactly
conservative.

Relation to scikit-learn (``S = sum_j dual_coef_j``):

- ``OneClassSVM``: ``score_samples(x) = S exp(-gamma o(x))``, ``decision_function = score_samples - offset_``,
  so ``o(x) = -(1/gamma) log(score_samples(x) / S)`` and ``x`` is an inlier iff
  ``o(x) <= -(1/gamma) log(offset_ / S)``. The network outputs ``o(x)``.
- ``KernelDensity`` (gaussian, bandwidth ``h``): ``alpha_j`` are the normalised sample weights,
  ``gamma = 1 / (2 h^2)`` and ``log p(x) = -gamma o(x) - (d/2) log(2 pi h^2)``. The network outputs
  ``gamma o(x) = -log p(x) - (d/2) log(2 pi h^2)`` (nats, ``>= 0``), i.e. ``-log p(x)`` up to that constant.
"""

from __future__ import annotations

import operator
from typing import Any, cast

import numpy as np
import torch
from sklearn.neighbors import KernelDensity
from sklearn.svm import OneClassSVM
from sklearn.utils.validation import check_is_fitted
from torch import fx, nn

from ..exceptions import UnsupportedModelError
from ..layers.distance import LeaveOneOutDistance, SquaredDistance
from ..layers.pooling import ReduceMin
from ..network import Network
from ..rules import Distance, SoftMin
from ..rules.composites import Composite
from . import references
from ._registry import register_types

#: Elements of the largest per-chunk temporary (``rows x points``): bounds memory for big KDEs.
_CHUNK_ELEMENTS = 1 << 20


def density_rules() -> Composite:
    """The NEON composite of OC-SVM/KDE networks: soft-min with the model's gamma, distance rule."""
    return Composite(by_type=[(ReduceMin, SoftMin(None)), (SquaredDistance, Distance())], name="outlier")


def outlier_network(points: np.ndarray, weights: np.ndarray, gamma: float | None, *, scale: float = 1.0,
                    description: str, feature_names: Any = None, reference: Any = None,
                    leave_one_out: bool = False, rules: Composite | None = None) -> Network:
    """``scale * o(x)``, ``o(x) = -(1/gamma) log sum_j alpha_j exp(-gamma ||x - x_j||^2)``, ``alpha = w / sum w``.

    Points with zero weight are dropped (they do not contribute). Output shape ``(n, 1)``. With
    ``leave_one_out=True`` the sum runs over the points ``x`` does not coincide with, their weights
    renormalised (:class:`~neon.layers.distance.LeaveOneOutDistance`, docs/theory.md §6). ``gamma=None`` is the
    hard-min limit ``o(x) = min_j ||x - x_j||^2`` (the weights then only select the points), e.g. the k-means
    distance score. ``rules``: the default composite (:func:`density_rules` if not given).
    """
    if gamma is None and leave_one_out:
        raise ValueError("the leave-one-out score needs a finite gamma (a kernel sum), not the hard min.")
    weights = np.asarray(weights, dtype=np.float64)
    keep = weights > 0
    points = np.asarray(points)[keep]
    alpha = weights[keep] / weights[keep].sum()
    dtype = torch.float32 if points.dtype == np.float32 else torch.float64
    p = torch.tensor(points, dtype=dtype)
    offset = torch.tensor(-np.log(alpha) / gamma if gamma is not None else np.zeros(len(alpha)), dtype=dtype)
    n_points, d = p.shape
    root = nn.Module()
    root.add_module("distance", LeaveOneOutDistance(p, torch.tensor(alpha, dtype=dtype), cast(float, gamma))
                    if leave_one_out else SquaredDistance(p, offset))
    # (n, J) -> (n, 1, J): the pool then gives the (n, 1) output every neon network has.
    root.add_module("unflatten", nn.Unflatten(1, (1, n_points)))
    root.add_module("pool", ReduceMin(stiffness=gamma))
    graph = fx.Graph()
    x = graph.placeholder("x")
    for name in ("distance", "unflatten", "pool"):
        x = graph.call_module(name, (x,))
    if scale != 1.0:
        x = graph.call_function(operator.mul, (x, float(scale)))
    graph.output(x)
    return Network(
        fx.GraphModule(root, graph),
        output_kind="outlier score",
        target_names=["outlier score"],
        input_shape=(d,),
        feature_names=feature_names,
        default_rules=rules if rules is not None else density_rules(),
        chunk_size=max(1, _CHUNK_ELEMENTS // max(n_points, d)),
        description=description,
        reference=reference,
    )


@register_types(OneClassSVM, description="OneClassSVM with kernel='rbf' (outlier score; NEON, Kauffmann et al. "
                                         "Pattern Recognition 2020)", outputs=("outlier score",))
def neuralize_ocsvm(model: Any, output: str | None = None, leave_one_out: bool = False, **options: Any) -> Network:
    """Rewrite a fitted RBF ``OneClassSVM`` as the network of its outlier score ``o(x)``.

    ``o(x) = -(1/gamma) log(score_samples(x) / sum(dual_coef_))``; ``predict(x) == 1`` iff
    ``o(x) <= -(1/gamma) log(offset_ / sum(dual_coef_))`` (every point is an inlier if ``offset_ <= 0``).
    ``gamma="scale"``/``"auto"`` use the fitted value. The model is not modified.

    ``leave_one_out=True``: the network of the leave-one-out score ``o_loo(x)``, the same sum without the
    support vectors ``x`` coincides with, their weights renormalised (docs/theory.md §6). At a support vector
    it explains the score of the point's neighbours instead of absorbing the point's own kernel share; away
    from the support vectors it equals ``o(x)``. It is not the score of a model refitted without the point.
    """
    check_is_fitted(model, "support_vectors_")
    if model.kernel != "rbf":
        raise UnsupportedModelError(f"OneClassSVM(kernel={model.kernel!r}) is not supported; neon explains the "
                                    "kernel='rbf' one-class SVM (a Gaussian kernel sum).")
    if getattr(model, "_sparse", False):
        raise UnsupportedModelError("OneClassSVM fitted on sparse data is not supported; fit it on a dense array.")
    if leave_one_out:
        reference = references.reference(references.ocsvm_loo_score, model,
                                         "OneClassSVM.score_samples without the point's own support vectors")
    else:
        reference = references.reference(references.ocsvm_score, model, "OneClassSVM.score_samples")
    return outlier_network(model.support_vectors_, np.asarray(model.dual_coef_).ravel(), float(model._gamma),
                           description=type(model).__name__ + (" (leave-one-out)" if leave_one_out else ""),
                           feature_names=getattr(model, "feature_names_in_", None),
                           reference=reference, leave_one_out=leave_one_out)


def ocsvm_threshold(model: Any) -> float:
    """The outlier score above which ``model.predict`` says outlier: ``-(1/gamma) log(offset_ / sum alpha)``."""
    check_is_fitted(model, "support_vectors_")
    offset = float(np.ravel(model.offset_)[0])
    if offset <= 0:
        return float("inf")
    return -np.log(offset / float(np.sum(model.dual_coef_))) / float(model._gamma)


@register_types(KernelDensity, description="KernelDensity with kernel='gaussian', euclidean metric (-log p(x) "
                                           "up to a constant; NEON, Kauffmann et al. Pattern Recognition 2020)",
                outputs=("outlier score",))
def neuralize_kde(model: Any, output: str | None = None, leave_one_out: bool = False, **options: Any) -> Network:
    """Rewrite a fitted Gaussian ``KernelDensity`` as the network of ``-log p(x) - (d/2) log(2 pi h^2)``.

    With ``gamma = 1 / (2 h^2)`` (``h = bandwidth_``, so ``"scott"``/``"silverman"`` work) and
    ``alpha_j`` the normalised sample weights, the output is ``gamma o(x)``; add
    :func:`kde_constant` to get ``-model.score_samples(x)`` exactly. The model is not modified.

    ``leave_one_out=True``: the network of ``-log p_loo(x) - (d/2) log(2 pi h^2)``, where ``p_loo`` is the
    density of the data without the points ``x`` coincides with (weights renormalised, same bandwidth): the
    leave-one-out density of a training point (docs/theory.md §6); away from the data it equals ``p(x)``.
    """
    check_is_fitted(model, "tree_")
    if model.kernel != "gaussian":
        raise UnsupportedModelError(f"KernelDensity(kernel={model.kernel!r}) is not supported; neon explains "
                                    "kernel='gaussian' (a Gaussian kernel sum).")
    if model.metric != "euclidean" or model.metric_params:
        raise UnsupportedModelError(f"KernelDensity(metric={model.metric!r}) is not supported; neon explains the "
                                    "euclidean metric.")
    data = np.asarray(model.tree_.data)
    sw = model.tree_.sample_weight
    weights = np.ones(len(data)) if sw is None else np.asarray(sw, dtype=np.float64)
    gamma = 1.0 / (2.0 * float(model.bandwidth_) ** 2)
    what = "the Gaussian kernel sum over KernelDensity's data"
    return outlier_network(data, weights, gamma, scale=gamma,
                           description=type(model).__name__ + (" (leave-one-out)" if leave_one_out else ""),
                           feature_names=getattr(model, "feature_names_in_", None),
                           reference=references.reference(references.kde_loo_score, model, what + " without the "
                                                          "point itself") if leave_one_out
                           else references.reference(references.kde_score, model, what),
                           leave_one_out=leave_one_out)


def kde_constant(model: Any) -> float:
    """``C = (d/2) log(2 pi h^2)``: ``-model.score_samples(x) = network(x) + C``."""
    check_is_fitted(model, "tree_")
    d = np.asarray(model.tree_.data).shape[1]
    return 0.5 * d * float(np.log(2.0 * np.pi * float(model.bandwidth_) ** 2))
