"""The models' own computations of what their networks explain, for the run-time equivalence check.

Each function takes the fitted estimator and inputs ``x`` (a tensor) and returns ``(n, k)`` values computed
with scikit-learn's own methods (``predict_proba``, ``decision_function``, ``score_samples``, ``transform``,
its kernel functions) and nothing of the network: :func:`neon.verification.check_equivalence` compares them
with the network's outputs. They are module-level functions bound with :func:`functools.partial`, so
networks and explainers stay picklable.
"""

from __future__ import annotations

import copy
import functools
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..exceptions import EquivalenceError
from ..network import ModelReference


def _numpy(x: Tensor) -> np.ndarray:
    return x.detach().cpu().numpy()


def _quiet(method: Callable[..., Any], *args: Any) -> Any:
    """Call an estimator method on a plain array without its warning about missing feature names."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        return method(*args)


def _out(values: Any, like: Tensor) -> Tensor:
    arr = np.asarray(values, dtype=np.float64)
    return torch.as_tensor(arr.reshape(len(arr), -1))


def reference(fn: Callable[..., Any], model: Any, what: str, to_model: Callable[[Tensor], Tensor] | None = None,
              **kwargs: Any) -> ModelReference:
    """``ModelReference(partial(fn, model, **kwargs), what, to_model)``."""
    return ModelReference(functools.partial(fn, model, **kwargs), what, to_model)


def predict(model: Any, x: Tensor) -> Tensor:
    return _out(_quiet(model.predict, _numpy(x)), x)


def predict_proba(model: Any, x: Tensor) -> Tensor:
    return _out(_quiet(model.predict_proba, _numpy(x)), x)


def decision_two_columns(model: Any, x: Tensor) -> Tensor:
    """``decision_function`` as ``[-f, f]`` for a binary model, the ``K`` columns otherwise."""
    d = np.asarray(_quiet(model.decision_function, _numpy(x)), dtype=np.float64)
    return _out(np.stack([-d, d], 1) if d.ndim == 1 else d, x)


def to_probabilities(out: Tensor) -> Tensor:
    """Class probabilities from log-odds: ``P_c = sigmoid(eta_c)`` exactly."""
    return torch.sigmoid(out)


def softmax_or_sigmoid(out: Tensor) -> Tensor:
    """Class probabilities from logits: softmax of ``K > 2`` logits, ``sigmoid`` of a binary model's ``[-f, f]``."""
    return torch.sigmoid(out) if out.shape[1] == 2 else torch.softmax(out, dim=1)


def kmeans_logits(model: Any, x: Tensor) -> Tensor:
    """``f_c = min_{k != c} d_k^2 - d_c^2`` from ``KMeans.transform`` (the distances to the centroids)."""
    d2 = np.asarray(_quiet(model.transform, _numpy(x)), dtype=np.float64) ** 2
    k = d2.shape[1]
    others = np.where(np.eye(k, dtype=bool)[None], np.inf, d2[:, None, :])  # [n, c, k]: d_k^2, inf at k == c
    return _out(others.min(2) - d2, x)


def kmeans_min_distance(model: Any, x: Tensor) -> Tensor:
    """``min_k ||x - mu_k||^2`` from ``KMeans.transform`` (the k-means distance outlier score)."""
    d = np.asarray(_quiet(model.transform, _numpy(x)), dtype=np.float64)
    return _out((d * d).min(1), x)


def ocsvm_score(model: Any, x: Tensor) -> Tensor:
    """``o(x) = -(1/gamma) log(score_samples(x) / sum(dual_coef_))``."""
    total = float(np.sum(model.dual_coef_))
    with np.errstate(divide="ignore"):
        return _out(-np.log(_quiet(model.score_samples, _numpy(x)) / total) / float(model._gamma), x)


def kde_score(model: Any, x: Tensor) -> Tensor:
    """``-log p(x) - (d/2) log(2 pi h^2)`` from scikit-learn's Gaussian kernel on the model's fitted data.

    Not ``KernelDensity.score_samples``: its tree walk rounds its bounds (it differs from the exact kernel sum by
    up to ~5e-5 in log units: measured at 1000 points in 10 dimensions, far more than float64 rounding) and it
    counts its calls in the tree (calling it changes the estimator). The reference is the exact sum
    ``log sum_j w_j k(x, x_j) / sum w`` with ``sklearn.metrics.pairwise.rbf_kernel`` on ``tree_.data``,
    ``tree_.sample_weight`` and ``bandwidth_``; the test suite checks it against ``score_samples``.
    """
    from sklearn.metrics.pairwise import rbf_kernel

    xn = _numpy(x).astype(np.float64)
    data = np.asarray(model.tree_.data, dtype=np.float64)
    sw = model.tree_.sample_weight
    w = np.ones(len(data)) if sw is None else np.asarray(sw, dtype=np.float64)
    h = float(model.bandwidth_)
    with np.errstate(divide="ignore"):
        log_sum = np.log(rbf_kernel(xn, data, gamma=1.0 / (2.0 * h * h)) @ (w / w.sum()))
    return _out(-log_sum, x)


def _log_kernel_sums(x: np.ndarray, points: np.ndarray, weights: np.ndarray, gamma: float,
                     leave_one_out: bool) -> np.ndarray:
    """``log sum_j alpha_j exp(-gamma ||x - p_j||^2)`` with ``alpha = w / sum w`` over all points, or (leave-one-out)
    over the points ``x`` does not coincide with, ``alpha`` renormalised over them.

    In log space (``scipy.special.logsumexp`` over ``sklearn.metrics.pairwise.euclidean_distances``): far from
    the points every kernel term underflows, the log-sum does not. Coincidence is the one of
    :class:`~neon.layers.distance.LeaveOneOutDistance`: ``||x - p_j||^2 <= tol (||x - c||^2 + ||p_j - c||^2)``.
    """
    from scipy.special import logsumexp
    from sklearn.metrics.pairwise import euclidean_distances

    from ..layers.distance import COINCIDENT_RTOL

    keep = weights > 0
    points, weights = points[keep], weights[keep]
    center = points.mean(0)  # centred coordinates, as the network's distance layer
    xc, pc = x - center, points - center
    d2 = euclidean_distances(xc, pc, squared=True)
    logw = np.broadcast_to(np.log(weights / weights.sum()), d2.shape)
    if not leave_one_out:
        return logsumexp(-gamma * d2 + logw, axis=1)
    same = d2 <= COINCIDENT_RTOL * ((xc * xc).sum(1)[:, None] + (pc * pc).sum(1)[None])
    with np.errstate(divide="ignore"):
        kept = np.where(same, -np.inf, logw)
        return logsumexp(-gamma * d2 + kept, axis=1) - logsumexp(kept, axis=1)


def ocsvm_loo_score(model: Any, x: Tensor) -> Tensor:
    """``o_loo(x)`` from the one-class SVM's ``support_vectors_``, ``dual_coef_`` and fitted ``gamma``.

    ``-(1/gamma) log sum_{j: x_j != x} alpha_j k(x, x_j)`` with ``alpha`` renormalised over the support vectors
    ``x`` does not coincide with (docs/theory.md §6). The same sum over all support vectors is first checked against
    the model's own ``score_samples`` (``S exp(-gamma o(x))``): attributes that do not reproduce it are an
    :class:`~neon.EquivalenceError` by themselves.
    """
    xn = _numpy(x).astype(np.float64)
    sv = np.asarray(model.support_vectors_, dtype=np.float64)
    coef = np.asarray(model.dual_coef_, dtype=np.float64).ravel()
    gamma = float(model._gamma)
    full = np.exp(_log_kernel_sums(xn, sv, coef, gamma, False)) * coef[coef > 0].sum()
    own = np.asarray(_quiet(model.score_samples, xn), dtype=np.float64)
    scale = np.abs(own).max() if own.size else 0.0
    if np.abs(full - own).max(initial=0.0) > 1e-8 * max(scale, 1e-300):
        raise EquivalenceError(f"the support vectors and dual coefficients neon reads from {type(model).__name__} "
                               "do not reproduce its score_samples; this model's layout is not supported.")
    return _out(-_log_kernel_sums(xn, sv, coef, gamma, True) / gamma, x)


def kde_loo_score(model: Any, x: Tensor) -> Tensor:
    """``-log p_loo(x) - (d/2) log(2 pi h^2)`` from ``tree_.data``, ``tree_.sample_weight`` and ``bandwidth_``.

    ``p_loo`` is the Gaussian kernel density of the data without the points ``x`` coincides with, their weights
    renormalised (docs/theory.md §6); computed in log space with scikit-learn's pairwise distances.
    """
    data = np.asarray(model.tree_.data, dtype=np.float64)
    sw = model.tree_.sample_weight
    w = np.ones(len(data)) if sw is None else np.asarray(sw, dtype=np.float64)
    h = float(model.bandwidth_)
    return _out(-_log_kernel_sums(_numpy(x).astype(np.float64), data, w, 1.0 / (2.0 * h * h), True), x)


def _ovo(model: Any) -> Any:
    """A shallow copy of an SVC that reports one-vs-one decision values (the model itself is left alone)."""
    twin = copy.copy(model)
    twin.decision_function_shape = "ovo"
    return twin


def _oriented_min(pair_values: np.ndarray, k: int) -> np.ndarray:
    """``f_c = min_{c' != c} g_cc'`` from pair values ``(n, P)`` of the pairs ``(a < b)``."""
    g = np.zeros((len(pair_values), k, k))
    p = 0
    for a in range(k):
        for b in range(a + 1, k):
            g[:, a, b], g[:, b, a] = pair_values[:, p], -pair_values[:, p]
            p += 1
    return np.where(np.eye(k, dtype=bool)[None], np.inf, g).min(2)


def svc_class_values(model: Any, x: Tensor, pairs: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                                               float]]) -> Tensor:
    """``f_c`` from scikit-learn's distances: ``g_ab = log S+ - log S-`` of each pair's two kernel sums.

    ``log S = logsumexp(-gamma d^2 + log|alpha|)`` (with the intercept's term) over
    ``sklearn.metrics.pairwise.euclidean_distances``, in log space: far from the data every kernel term
    underflows, the log-sum does not. The sums are first checked against the model's own ``decision_function``
    (``S+ - S- = f_ab``): a pair layout that does not reproduce it is an :class:`~neon.EquivalenceError` by itself.
    """
    from scipy.special import logsumexp
    from sklearn.metrics.pairwise import euclidean_distances

    xn = _numpy(x).astype(np.float64)
    sv = np.asarray(model.support_vectors_, dtype=np.float64)
    center = sv.mean(0)  # distances in centred coordinates: the expansion loses less to cancellation
    logk = -float(model._gamma) * euclidean_distances(xn - center, sv - center, squared=True)
    g, dec = [], []
    for pos_i, pos_c, neg_i, neg_c, b in pairs:
        sides = []
        for idx, coef, bias in ((pos_i, pos_c, b), (neg_i, -neg_c, -b)):
            terms = logk[:, idx] + np.log(coef)[None]
            if bias > 0:
                terms = np.concatenate([terms, np.full((len(xn), 1), np.log(bias))], 1)
            sides.append(logsumexp(terms, axis=1) if terms.shape[1] else np.full(len(xn), -np.inf))
        g.append(sides[0] - sides[1])
        dec.append(np.exp(sides[0]) - np.exp(sides[1]))
    own = np.asarray(_quiet(_ovo(model).decision_function, xn), dtype=np.float64).reshape(len(xn), -1)
    k = len(model.classes_)
    mine = np.stack(dec, 1)
    if k == 2:
        mine = -mine  # scikit-learn negates a binary model's decision function (positive: the second class)
    scale = np.abs(own).max() if own.size else 0.0
    if own.shape != mine.shape or np.abs(own - mine).max(initial=0.0) > 1e-6 * max(scale, 1e-300):
        raise EquivalenceError(f"the one-vs-one pairs neon reads from {type(model).__name__} do not reproduce its "
                               "decision_function; this model's layout is not supported.")
    return _out(_oriented_min(np.stack(g, 1), k), x)


def svc_linear_class_values(model: Any, x: Tensor) -> Tensor:
    """``f_c = min_{c' != c} f_cc'`` from the model's one-vs-one ``decision_function`` (linear kernel)."""
    own = np.asarray(_quiet(_ovo(model).decision_function, _numpy(x)), dtype=np.float64).reshape(len(x), -1)
    k = len(model.classes_)
    if k == 2:
        return _out(np.concatenate([-own, own], 1), x)
    return _out(_oriented_min(own, k), x)


def pipeline_values(pipeline: Any, x: Tensor, final: ModelReference) -> Tensor:
    """The final model's reference on the preprocessed inputs ``pipeline[:-1].transform(x)``."""
    pre = pipeline[:-1]
    z = _quiet(pre.transform, _numpy(x)) if len(pipeline.steps) > 1 else _numpy(x)
    return final.compute(torch.as_tensor(np.asarray(z, dtype=np.float64)))
