"""One-class SVM and Gaussian KDE as NEON networks (Kauffmann et al., Pattern Recognition 2020).

The network's outlier score is checked against sklearn's ``score_samples`` / ``decision_function`` /
``predict`` and against a dense numpy reference; relevance against a per-sample reference written
from docs/theory.md §4 (soft-min shares, then ``(x_i - x_ji)^2 / ||x - x_j||^2``).
"""

from __future__ import annotations

import dense_reference as ref
import joblib
import numpy as np
import pytest
import torch
from scipy.special import logsumexp
from sklearn.datasets import load_breast_cancer, load_digits, load_iris, load_wine
from sklearn.exceptions import NotFittedError
from sklearn.neighbors import KernelDensity
from sklearn.preprocessing import StandardScaler
from sklearn.svm import OneClassSVM

import neon
from neon.converters.density import kde_constant, ocsvm_threshold
from neon.layers import SquaredDistance
from neon.rules import Context, Distance


def standardized(loader, n=None):
    X = StandardScaler().fit_transform(loader().data)
    return X if n is None else X[:n]


DATASETS = {
    "iris": lambda: standardized(load_iris),
    "wine": lambda: standardized(load_wine),
    "breast_cancer": lambda: standardized(load_breast_cancer),
    "digits": lambda: load_digits().data[:500] / 16.0,
}


def split(X):
    return X[::2], X[1::2]  # fit on even rows, score held-out odd rows


def dense_outlier_relevance(X, points, weights, gamma):
    """Per sample: ``o = -1/g log sum a_j exp(-g D_j)``, ``R_j = softmin_g(D_j - log(a_j)/g) o``, then
    ``R_i = sum_j R_j (x_i - x_ji)^2 / D_j``. Returns ``(R, o)``."""
    alpha = weights / weights.sum()
    R = np.zeros_like(X)
    o = np.zeros(len(X))
    for n, x in enumerate(X):
        diff2 = (x - points) ** 2  # (J, d)
        D = diff2.sum(1)
        h = D - np.log(alpha) / gamma
        o[n] = -logsumexp(-gamma * D, b=alpha) / gamma
        p = np.exp(-gamma * (h - h.min()))
        p /= p.sum()
        R[n] = ((p * o[n] / D)[:, None] * diff2).sum(0)
    return R, o


# ------------------------------------------------------------------ one-class SVM
@pytest.mark.parametrize("name", list(DATASETS))
@pytest.mark.parametrize("gamma", ["scale", "auto", 0.05])
def test_ocsvm_score_equals_sklearn_and_predict_agrees(name, gamma):
    Xtr, Xte = split(DATASETS[name]())
    oc = OneClassSVM(gamma=gamma, nu=0.2).fit(Xtr)
    for X in (Xtr, Xte):
        o = neon.neuralize(oc)(torch.from_numpy(X)).numpy()[:, 0]
        S = oc.dual_coef_.sum()
        ss = oc.score_samples(X)
        ok = ss > 1e-250  # sklearn underflows to 0 far from the data; neon's log-sum-exp does not
        assert ok.mean() > 0.9
        np.testing.assert_allclose(o[ok], -np.log(ss[ok] / S) / oc._gamma, rtol=1e-6)
        np.testing.assert_allclose(S * np.exp(-oc._gamma * o) - oc.offset_, oc.decision_function(X),
                                   rtol=1e-6, atol=1e-9 * S)
        assert (o >= 0).all()
        inlier = o <= ocsvm_threshold(oc)
        np.testing.assert_array_equal(np.where(inlier, 1, -1), oc.predict(X))


def test_ocsvm_relevance_equals_dense_reference_and_conserves():
    Xtr, Xte = split(DATASETS["wine"]())
    oc = OneClassSVM(gamma="scale", nu=0.3).fit(Xtr)
    expl = neon.explain(oc, Xte)
    R_ref, o_ref = dense_outlier_relevance(Xte, oc.support_vectors_, oc.dual_coef_.ravel(), oc._gamma)
    np.testing.assert_allclose(expl.output, o_ref, rtol=1e-10)
    np.testing.assert_allclose(expl.relevance, R_ref, rtol=1e-8, atol=1e-12 * np.abs(R_ref).max())
    assert (np.abs(expl.relevance.sum(1) - expl.output) <= 1e-8 * np.abs(expl.output)).all()
    assert (expl.target == 0).all() and expl.output_kind == "outlier score"


@pytest.mark.parametrize("name", list(DATASETS))
def test_ocsvm_conservation_on_held_out_data(name):
    Xtr, Xte = split(DATASETS[name]())
    oc = OneClassSVM(gamma="scale", nu=0.1).fit(Xtr)
    expl = neon.explain(oc, Xte)
    assert (np.abs(expl.relevance.sum(1) - expl.output) <= 1e-8 * np.abs(expl.output)).all()


def test_ocsvm_at_a_support_vector_the_kernel_weight_term_is_absorbed():
    """At ``x = x_j`` unit ``j`` has no feature differences: its share ``p_j o(x)`` is reported as absorbed."""
    Xtr, _ = split(DATASETS["iris"]())
    oc = OneClassSVM(gamma=0.5, nu=0.2).fit(Xtr)
    sv = oc.support_vectors_
    expl = neon.explain(oc, sv)
    alpha = oc.dual_coef_.ravel() / oc.dual_coef_.sum()
    h = ((sv[:, None] - sv[None]) ** 2).sum(-1) - np.log(alpha) / oc._gamma
    p = np.exp(-oc._gamma * (h - h.min(1, keepdims=True)))
    p /= p.sum(1, keepdims=True)
    np.testing.assert_allclose(expl.absorbed, np.diag(p) * expl.output, rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(expl.relevance.sum(1) + expl.absorbed, expl.output, rtol=1e-10)


def _near(point, center, factor, direction):
    """``point + t u`` with ``||t u||^2 = factor * 1e-10 (||x - center||^2 + ||point - center||^2)``: a sample
    ``factor`` times the distance rule's zero-distance threshold away from ``point`` (solved by iteration)."""
    u = direction / np.linalg.norm(direction)
    t = 0.0
    for _ in range(5):
        x = point + t * u
        t = np.sqrt(factor * 1e-10 * (((x - center) ** 2).sum() + ((point - center) ** 2).sum()))
    return point + t * u


def test_distance_rule_zero_distance_threshold_equals_dense_reference():
    """Units closer than ``1e-10 (||x||^2 + ||x_j||^2)`` (coordinates centred on the points) keep their
    relevance; units just outside pass all of it to the features (docs/theory.md §4)."""
    rng = np.random.default_rng(0)
    points = rng.normal(size=(6, 4)) + 3.0  # away from the origin: the threshold's coordinates matter
    m = points.mean(0)
    X = np.stack([points[2], _near(points[2], m, 0.8, rng.normal(size=4)),
                  _near(points[2], m, 1.25, rng.normal(size=4)), _near(points[4], m, 0.8, rng.normal(size=4)),
                  _near(points[4], m, 1.25, rng.normal(size=4)), rng.normal(size=4)])
    R = rng.uniform(0.5, 1.5, size=(len(X), len(points)))
    layer = SquaredDistance(torch.from_numpy(points))
    x = torch.from_numpy(X)
    (got,) = Distance().relevance(layer, [x], layer(x), torch.from_numpy(R), Context(target=torch.zeros(len(X)).long()))
    want, kept = ref.distance_rule(X, points, R)
    np.testing.assert_allclose(kept, [R[0, 2], R[1, 2], 0.0, R[3, 4], 0.0, 0.0])  # the reference's own verdicts
    # Units at ~1e-10 of the norms lose ~1e-6 of their relevance to rounding (cancellation in the expansion).
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(R.sum(1) - got.numpy().sum(1), kept, atol=1e-5)


@pytest.mark.parametrize("factor", [0.8, 1.25], ids=["just-inside", "just-outside"])
def test_ocsvm_next_to_a_support_vector_absorbs_exactly_the_units_inside_the_threshold(factor):
    Xtr, _ = split(DATASETS["iris"]())
    oc = OneClassSVM(gamma=0.5, nu=0.2).fit(Xtr)
    sv = oc.support_vectors_
    m = sv.mean(0)
    rng = np.random.default_rng(1)
    X = np.stack([_near(sv[j], m, factor, rng.normal(size=sv.shape[1])) for j in (0, 3, 7)])
    expl = neon.explain(oc, X)
    alpha = oc.dual_coef_.ravel() / oc.dual_coef_.sum()
    D = ((X[:, None] - sv[None]) ** 2).sum(-1)
    h = D - np.log(alpha) / oc._gamma
    o = -logsumexp(-oc._gamma * D, b=alpha, axis=1) / oc._gamma
    p = np.exp(-oc._gamma * (h - h.min(1, keepdims=True)))
    p /= p.sum(1, keepdims=True)
    want, kept = ref.distance_rule(X, sv, p * o[:, None])
    np.testing.assert_allclose(expl.output, o, rtol=1e-10)
    np.testing.assert_allclose(expl.relevance, want, rtol=1e-5, atol=1e-5 * np.abs(o).max())
    np.testing.assert_allclose(expl.absorbed, kept, rtol=1e-5, atol=1e-5 * np.abs(o).max())
    if factor < 1:  # the support vector's own unit carries a visible share, and it is what was absorbed
        np.testing.assert_allclose(kept, p[np.arange(3), [0, 3, 7]] * o, rtol=1e-12)
        assert (kept > 1e-2 * o).all()
    else:
        np.testing.assert_array_equal(kept, 0.0)


def test_ocsvm_sample_alone_equals_sample_in_batch():
    Xtr, Xte = split(DATASETS["breast_cancer"]())
    ex = neon.Explainer(OneClassSVM(gamma="scale").fit(Xtr)).fit()
    batch = ex.explain(Xte)
    scale = np.abs(batch.relevance).max()  # only rounding may differ (BLAS picks kernels by size)
    for i in (0, 50, len(Xte) - 1):
        alone = ex.explain(Xte[i:i + 1])
        np.testing.assert_allclose(alone.relevance[0], batch.relevance[i], rtol=1e-12, atol=1e-12 * scale)


# ------------------------------------------------------------------ KDE
@pytest.mark.parametrize("name", list(DATASETS))
@pytest.mark.parametrize("bandwidth", ["scott", "silverman", 0.7])
def test_kde_output_is_minus_log_density_up_to_the_constant(name, bandwidth):
    Xtr, Xte = split(DATASETS[name]())
    kde = KernelDensity(bandwidth=bandwidth).fit(Xtr)
    g = neon.neuralize(kde)(torch.from_numpy(Xte)).numpy()[:, 0]
    h = kde.bandwidth_
    D = ((Xte[:, None] - Xtr[None]) ** 2).sum(-1)
    log_p = logsumexp(-D / (2 * h * h), axis=1) - np.log(len(Xtr)) - 0.5 * Xtr.shape[1] * np.log(2 * np.pi * h * h)
    np.testing.assert_allclose(g + kde_constant(kde), -log_p, rtol=1e-10)
    # sklearn's tree-based sum is itself off by up to ~5e-7 relative, and loses all precision once the
    # density is below ~e^-26 of a single kernel's peak (g > 26): compare where sklearn is reliable.
    near = g < 25
    assert near.mean() >= 0.9
    np.testing.assert_allclose(g[near] + kde_constant(kde), -kde.score_samples(Xte[near]), rtol=1e-6)
    assert (g >= 0).all()


def test_kde_sample_weights_relevance_and_conservation():
    Xtr, Xte = split(DATASETS["wine"]())
    w = np.random.default_rng(0).uniform(0.1, 2.0, len(Xtr))
    kde = KernelDensity(bandwidth=1.5).fit(Xtr, sample_weight=w)
    expl = neon.explain(kde, Xte)
    gamma = 1.0 / (2 * 1.5 ** 2)
    R_ref, o_ref = dense_outlier_relevance(Xte, Xtr, w, gamma)
    np.testing.assert_allclose(expl.output, gamma * o_ref, rtol=1e-10)
    np.testing.assert_allclose(expl.output + kde_constant(kde), -kde.score_samples(Xte), rtol=1e-6)
    np.testing.assert_allclose(expl.relevance, gamma * R_ref, rtol=1e-8, atol=1e-12 * np.abs(R_ref).max())
    assert (np.abs(expl.relevance.sum(1) - expl.output) <= 1e-8 * np.abs(expl.output)).all()


def test_kde_many_points_is_chunked_and_batch_independent():
    rng = np.random.default_rng(0)
    Xtr = rng.standard_normal((20_000, 5))
    kde = KernelDensity(bandwidth=0.5).fit(Xtr)
    net = neon.neuralize(kde)
    assert net.chunk_size * 20_000 <= 1 << 20  # the (rows x points) temporaries stay bounded
    Xte = rng.standard_normal((120, 5)) * 1.5
    ex = neon.Explainer(kde).fit()
    expl = ex.explain(Xte)
    assert (np.abs(expl.relevance.sum(1) - expl.output) <= 1e-8 * np.abs(expl.output)).all()
    np.testing.assert_allclose(expl.output + kde_constant(kde), -kde.score_samples(Xte), rtol=1e-6)
    alone = ex.explain(Xte[7:8])
    scale = np.abs(expl.relevance).max()
    np.testing.assert_allclose(alone.relevance[0], expl.relevance[7], rtol=1e-12, atol=1e-12 * scale)


# ------------------------------------------------------------------ ground truth
@pytest.mark.parametrize("model", ["ocsvm", "kde"])
def test_ground_truth_planted_anomalies(model):
    """Inliers from N(0, I_10); each test anomaly is an inlier with one known feature shifted by 6."""
    rng = np.random.default_rng(1)
    d = 10
    Xtr = rng.standard_normal((1000, d))
    est = OneClassSVM(gamma="scale", nu=0.05).fit(Xtr) if model == "ocsvm" else \
        KernelDensity(bandwidth="scott").fit(Xtr)
    Xa = rng.standard_normal((300, d))
    planted = rng.integers(0, d, 300)
    Xa[np.arange(300), planted] += rng.choice([-6.0, 6.0], 300)
    expl = neon.explain(est, Xa)
    hit = np.argmax(expl.relevance, axis=1) == planted
    assert hit.mean() >= 0.9, hit.mean()
    if model == "ocsvm":
        assert (est.predict(Xa) == -1).mean() > 0.9  # they are anomalies to the model too


# ------------------------------------------------------------------ bad input
def test_bad_input():
    X = load_iris().data
    for est in (OneClassSVM(), KernelDensity()):
        with pytest.raises(NotFittedError):
            neon.neuralize(est)
    with pytest.raises(neon.UnsupportedModelError, match="kernel='rbf'"):
        neon.neuralize(OneClassSVM(kernel="poly").fit(X))
    with pytest.raises(neon.UnsupportedModelError, match="kernel='gaussian'"):
        neon.neuralize(KernelDensity(kernel="tophat").fit(X))
    with pytest.raises(neon.UnsupportedModelError, match="euclidean"):
        neon.neuralize(KernelDensity(metric="manhattan").fit(X))
    for est, name in ((OneClassSVM(gamma="scale").fit(X), "OneClassSVM"), (KernelDensity().fit(X), "KernelDensity")):
        before = joblib.hash(est)
        ex = neon.Explainer(est).fit()
        with pytest.raises(ValueError, match=f"^X has 3 features, but {name} is expecting 4 features as input.$"):
            ex.explain(X[:, :3])
        bad = X[:4].copy()
        bad[0, 0] = np.inf
        with pytest.raises(ValueError, match="infinity"):
            ex.explain(bad)
        bad[0, 0] = np.nan
        with pytest.raises(ValueError, match="NaN"):
            ex.explain(bad)
        with pytest.raises(ValueError, match="outlier score"):
            neon.explain(est, X, output="logit")
        with pytest.raises(ValueError, match="target out of range"):
            ex.explain(X, target=1)
        ex.explain(X)
        assert joblib.hash(est) == before


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("model", ["ocsvm", "kde"])
def test_cuda_explanation_equals_cpu(model):
    Xtr, Xte = split(DATASETS["breast_cancer"]())
    est = OneClassSVM(gamma="scale").fit(Xtr) if model == "ocsvm" else KernelDensity(bandwidth="scott").fit(Xtr)
    ex = neon.Explainer(est).fit()
    cpu = ex.explain(Xte)
    gpu = ex.explain(torch.from_numpy(Xte).cuda())
    assert gpu.relevance.is_cuda
    np.testing.assert_allclose(gpu.output.cpu().numpy(), cpu.output, rtol=1e-10)
    np.testing.assert_allclose(gpu.relevance.cpu().numpy(), cpu.relevance, rtol=1e-8, atol=1e-12)
    assert (np.abs(gpu.absorbed.cpu().numpy()) <= 1e-8 * np.abs(cpu.output)).all()
