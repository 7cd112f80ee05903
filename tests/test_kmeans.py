"""k-means NEON (Kauffmann et al., TNNLS 2022): exact logits, exact midpoint relevance, ground truth, bad input.

References are written here from docs/theory.md §4 with numpy and sklearn's own ``transform``;
they share no code with neon.
"""

from __future__ import annotations

import joblib
import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.datasets import load_breast_cancer, load_digits, load_iris, load_wine, make_blobs
from sklearn.exceptions import NotFittedError
from sklearn.preprocessing import StandardScaler

import neon
from neon.layers import CentroidContrast, ReduceMin
from neon.rules import Context, Midpoint, SoftMin

DATASETS = {
    "iris": lambda: load_iris().data,
    "wine": lambda: StandardScaler().fit_transform(load_wine().data),
    "breast_cancer": lambda: load_breast_cancer().data,  # raw scale: features up to ~4000
    "digits": lambda: load_digits().data[:600],
}


def sklearn_logits(km, X: np.ndarray) -> np.ndarray:
    """``f_c = min_{k != c} (D_k^2 - D_c^2)`` from sklearn's own distances (``transform``)."""
    D2 = km.transform(X) ** 2
    K = D2.shape[1]
    out = np.empty_like(D2)
    for c in range(K):
        others = [k for k in range(K) if k != c]
        out[:, c] = (D2[:, others] - D2[:, [c]]).min(1)
    return out


def dense_midpoint(X: np.ndarray, mu: np.ndarray, target: np.ndarray, beta: float) -> tuple[np.ndarray, np.ndarray]:
    """Slow reference, one sample at a time, straight from the formula of docs/theory.md §4.

    ``h_k = ||x - mu_k||^2 - ||x - mu_c||^2``, ``f = min_k h_k``, ``p = softmin_beta(h)``,
    ``R_i = sum_{k != c} p_k f / h_k [(x_i - mu_k,i)^2 - (x_i - mu_c,i)^2]``.
    """
    R = np.zeros_like(X)
    f = np.zeros(len(X))
    for n, (x, c) in enumerate(zip(X, target)):
        ks = [k for k in range(len(mu)) if k != c]
        split = np.array([(x - mu[k]) ** 2 - (x - mu[c]) ** 2 for k in ks])  # (K-1, d)
        h = split.sum(1)
        f[n] = h.min()
        w = np.exp(-beta * (h - h.min()))
        p = w / w.sum()
        R[n] = ((p * f[n] / h)[:, None] * split).sum(0)
    return R, f


def fit_beta(km, X: np.ndarray) -> float:
    """``beta = 1 / mean f_c`` over the fit data, ``c`` the assigned cluster."""
    f = sklearn_logits(km, X)
    return 1.0 / np.abs(f[np.arange(len(X)), km.predict(X)]).mean()


@pytest.fixture(scope="module")
def fitted():
    return {name: (load(), KMeans(4, n_init=3, random_state=0).fit(load())) for name, load in DATASETS.items()}


@pytest.mark.parametrize("name", list(DATASETS))
def test_forward_equals_sklearn_logits_and_predict(fitted, name):
    X, km = fitted[name]
    out = neon.neuralize(km)(torch.from_numpy(X)).numpy()
    ref = sklearn_logits(km, X)
    scale = np.abs(ref).max()
    np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-9 * scale)
    assert (out.argmax(1) == km.predict(X)).all()
    assert (out[np.arange(len(X)), km.predict(X)] >= 0).all() and (np.sort(out, 1)[:, -2] <= 0).all()


def test_minibatch_kmeans_forward_and_predict():
    X = load_wine().data
    mb = MiniBatchKMeans(3, n_init=3, random_state=0, batch_size=64).fit(X)
    net = neon.neuralize(mb)
    assert net.description == "MiniBatchKMeans" and net.output_kind == "cluster logit"
    out = net(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(out, sklearn_logits(mb, X), rtol=1e-6, atol=1e-9 * np.abs(out).max())
    assert (out.argmax(1) == mb.predict(X)).all()


@pytest.mark.parametrize("name", list(DATASETS))
def test_relevance_equals_dense_midpoint_reference_and_conserves(fitted, name):
    X, km = fitted[name]
    Xe = X[::7]
    expl = neon.Explainer(km).fit(X).explain(Xe)
    beta = fit_beta(km, X)
    R_ref, f_ref = dense_midpoint(Xe, km.cluster_centers_, km.predict(Xe), beta)
    np.testing.assert_array_equal(expl.target, km.predict(Xe))
    np.testing.assert_allclose(expl.output, f_ref, rtol=1e-6)
    scale = np.abs(R_ref).max()
    np.testing.assert_allclose(expl.relevance, R_ref, rtol=1e-6, atol=1e-9 * scale)
    err = np.abs(expl.relevance.sum(1) - expl.output)
    assert (err <= 1e-8 * np.abs(expl.output)).all()
    assert (np.abs(expl.absorbed) <= 1e-8 * np.abs(expl.output)).all()


@pytest.mark.parametrize("beta", [0.0, 0.05, 3.0])
def test_fixed_beta_relevance(beta):
    X = StandardScaler().fit_transform(load_wine().data)
    km = KMeans(3, n_init=3, random_state=0).fit(X)
    expl = neon.explain(km, X[:40], beta=beta)
    R_ref, _ = dense_midpoint(X[:40], km.cluster_centers_, km.predict(X[:40]), beta)
    np.testing.assert_allclose(expl.relevance, R_ref, rtol=1e-8, atol=1e-10)


def test_every_cluster_can_be_explained(fitted):
    X, km = fitted["wine"]
    ex = neon.Explainer(km).fit(X)
    beta = fit_beta(km, X)
    Xe = X[:30]
    assigned = km.predict(Xe)
    for c in range(4):
        expl = ex.explain(Xe, target=c)
        R_ref, f_ref = dense_midpoint(Xe, km.cluster_centers_, np.full(len(Xe), c), beta)
        np.testing.assert_allclose(expl.output, f_ref, rtol=1e-8)
        np.testing.assert_allclose(expl.relevance, R_ref, rtol=1e-8, atol=1e-10)
        assert ((expl.output < 0) == (assigned != c)).all()
        assert (np.abs(expl.relevance.sum(1) - expl.output) <= 1e-8 * np.abs(expl.output)).all()
    # one target per sample, mixed
    mixed = (assigned + 1) % 4
    expl = ex.explain(Xe, target=mixed)
    R_ref, _ = dense_midpoint(Xe, km.cluster_centers_, mixed, beta)
    np.testing.assert_allclose(expl.relevance, R_ref, rtol=1e-8, atol=1e-10)


def test_sample_alone_equals_sample_in_batch(fitted):
    X, km = fitted["digits"]
    ex = neon.Explainer(km).fit(X)
    batch = ex.explain(X[:300])
    scale = np.abs(batch.relevance).max()  # only rounding may differ (BLAS picks kernels by size)
    for i in (0, 17, 299):
        alone = ex.explain(X[i:i + 1])
        np.testing.assert_allclose(alone.relevance[0], batch.relevance[i], rtol=1e-12, atol=1e-12 * scale)
        assert alone.output[0] == pytest.approx(batch.output[i], rel=1e-14)
    small = neon.Explainer(km, batch_size=7).fit(X).explain(X[:300])
    np.testing.assert_allclose(small.relevance, batch.relevance, rtol=1e-12, atol=1e-12 * scale)


def test_fast_paths_equal_generic_rules():
    """The one-target shortcuts of SoftMin/Midpoint give what the general (all-rows) formulas give."""
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(5, 4, generator=g, dtype=torch.float64)
    x = torch.randn(30, 4, generator=g, dtype=torch.float64)
    cc, pool = CentroidContrast(mu), ReduceMin()
    h = cc(x)
    y = pool(h)
    t = torch.randint(0, 5, (30,), generator=g)
    R = torch.zeros_like(y).scatter(1, t.view(-1, 1), y.gather(1, t.view(-1, 1)))
    fast_ctx, slow_ctx = Context(target=t), Context(target=None)
    rule = SoftMin(0.7)
    (r_fast,) = rule.relevance(pool, [h], y, R, fast_ctx)
    (r_slow,) = rule.relevance(pool, [h], y, R, slow_ctx)
    torch.testing.assert_close(r_fast, r_slow, rtol=1e-13, atol=1e-13)
    (x_fast,) = Midpoint().relevance(cc, [x], h, r_fast, fast_ctx)
    (x_slow,) = Midpoint().relevance(cc, [x], h, r_slow, slow_ctx)
    torch.testing.assert_close(x_fast, x_slow, rtol=1e-10, atol=1e-12)
    # relevance in two columns at once: only the general path applies, and it sums both
    R2 = R.clone()
    R2[:, 0] += 1.0
    (r2,) = rule.relevance(pool, [h], y, R2, Context(target=t))
    torch.testing.assert_close(r2.sum((1, 2)), R2.sum(1))


def test_ground_truth_cluster_evidence_in_planted_features():
    """Clusters differ only in features 3, 7, 11; the other 17 features are shared noise."""
    rng = np.random.default_rng(0)
    d, informative = 20, [3, 7, 11]
    centers = np.zeros((4, d))
    centers[:, informative] = 6.0 * rng.standard_normal((4, 3))
    X, y = make_blobs(2000, d, centers=centers, cluster_std=1.0, random_state=0)
    km = KMeans(4, n_init=5, random_state=0).fit(X)
    expl = neon.Explainer(km).fit(X).explain(X[:500])
    top1 = np.argmax(expl.relevance, axis=1)
    assert np.isin(top1, informative).mean() >= 0.9, np.isin(top1, informative).mean()
    top3 = np.argsort(-expl.relevance, axis=1)[:, :3]
    in_top3 = np.isin(top3, informative).sum(1)
    assert (in_top3 >= 2).mean() >= 0.9, (in_top3 >= 2).mean()
    # noise features carry a small share of the total absolute relevance
    share = np.abs(expl.relevance[:, informative]).sum(1) / np.abs(expl.relevance).sum(1)
    assert np.median(share) >= 0.8, np.median(share)


def test_dataframe_feature_names_and_float32():
    import pandas as pd
    data = load_iris()
    df = pd.DataFrame(data.data, columns=data.feature_names)
    km = KMeans(3, n_init=3, random_state=0).fit(df)
    expl = neon.explain(km, df)
    assert list(expl.feature_names) == list(data.feature_names)
    assert (expl.target == km.predict(df)).all()
    e32 = neon.explain(km, data.data.astype(np.float32))
    assert e32.relevance.dtype == np.float32
    np.testing.assert_allclose(e32.relevance, expl.relevance, rtol=1e-4, atol=1e-4)


def test_bad_input():
    X = load_iris().data
    with pytest.raises(NotFittedError):
        neon.neuralize(KMeans(3))
    with pytest.raises(NotFittedError):
        neon.explain(MiniBatchKMeans(3), X)
    km = KMeans(3, n_init=3, random_state=0).fit(X)
    before = joblib.hash(km)
    ex = neon.Explainer(km).fit(X)
    with pytest.raises(ValueError, match="^X has 3 features, but KMeans is expecting 4 features as input.$"):
        ex.explain(X[:, :3])
    with pytest.raises(ValueError, match="X has 3 features, but KMeans is expecting 4 features as input."):
        km.predict(X[:, :3])  # the wording is sklearn's
    bad = X[:5].copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        ex.explain(bad)
    with pytest.raises(ValueError, match="cluster logit"):
        neon.explain(km, X, output="log-odds")
    with pytest.raises(ValueError, match="at least 2 clusters"):
        neon.neuralize(KMeans(1, n_init=1).fit(X))
    ex.explain(X, target=2)
    neon.explain(km, X)
    assert joblib.hash(km) == before


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_explanation_equals_cpu():
    X = StandardScaler().fit_transform(load_wine().data)
    km = KMeans(4, n_init=3, random_state=0).fit(X)
    ex = neon.Explainer(km).fit(X)
    cpu = ex.explain(X)
    gpu = ex.explain(torch.from_numpy(X).cuda())
    assert gpu.relevance.is_cuda and gpu.relevance.dtype == torch.float64
    np.testing.assert_array_equal(gpu.target.cpu().numpy(), cpu.target)
    np.testing.assert_allclose(gpu.relevance.cpu().numpy(), cpu.relevance, rtol=1e-9, atol=1e-12)
    other = ex.explain(torch.from_numpy(X).cuda(), target=1)
    np.testing.assert_allclose(other.relevance.cpu().numpy(), ex.explain(X, target=1).relevance, rtol=1e-9,
                               atol=1e-12)


def test_explainer_takes_the_one_cluster_path(monkeypatch):
    """The engine hands the soft-min's own output to the midpoint rule, so the O(n K d) path runs (speed)."""
    X = load_iris().data
    km = KMeans(3, n_init=3, random_state=0).fit(X)
    calls = []
    fast = Midpoint._one_cluster
    monkeypatch.setattr(Midpoint, "_one_cluster", staticmethod(lambda *a: calls.append(1) or fast(*a)))
    expl = neon.Explainer(km, batch_size=50).fit(X).explain(X)
    assert len(calls) == 3  # one per chunk
    R_ref, _ = dense_midpoint(X, km.cluster_centers_, km.predict(X), fit_beta(km, X))
    np.testing.assert_allclose(expl.relevance, R_ref, rtol=1e-8, atol=1e-10)
