"""neon.spray.SpRAy: the spectral steps against a dense reference written from docs/theory.md §6, the eigengap on
graphs with known groups, determinism, preprocessing, plots and bad input."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")

from neon.spray import SpRAy, normalise, relevance_maps  # noqa: E402


def strategies(sizes: tuple[int, ...], d: int = 30, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Relevance vectors of ``len(sizes)`` strategies: group g puts its relevance on its own block of features."""
    rng = np.random.default_rng(seed)
    block = d // len(sizes)
    maps, labels = [], []
    for g, n in enumerate(sizes):
        base = np.zeros(d)
        base[g * block:(g + 1) * block] = 1.0
        maps.append(base * rng.uniform(0.5, 2.0, (n, 1)) + 0.05 * rng.standard_normal((n, d)))
        labels += [g] * n
    return np.concatenate(maps), np.array(labels)


def dense_reference(features: np.ndarray, k: int) -> np.ndarray:
    """Eigenvalues of ``L = I - D^-1/2 A D^-1/2``, ``A = (K + K^T) / 2`` of the kNN graph, with numpy only."""
    d2 = ((features[:, None, :] - features[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d2, np.inf)
    K = np.zeros_like(d2)
    nearest = np.argsort(d2, axis=1, kind="stable")[:, :k]
    K[np.arange(len(K))[:, None], nearest] = 1.0
    A = 0.5 * (K + K.T)
    deg = A.sum(1)
    L = np.eye(len(A)) - A / np.sqrt(deg[:, None] * deg[None, :])
    return np.linalg.eigvalsh(L)


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    pairs = {(int(x), int(y)) for x, y in zip(a, b)}
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


def test_eigenvalues_equal_the_dense_laplacian_and_the_affinity_is_the_symmetric_knn_graph():
    R, _ = strategies((40, 25))
    spray = SpRAy(n_neighbors=7).fit(R)
    feats = R / np.abs(R).sum(1, keepdims=True)
    np.testing.assert_allclose(spray.features_, feats, rtol=1e-12)
    ref = dense_reference(feats, 7)
    np.testing.assert_allclose(spray.eigenvalues_, ref[: len(spray.eigenvalues_)], atol=1e-9)
    A = spray.affinity_.toarray()
    np.testing.assert_allclose(A, A.T)
    assert set(np.unique(A)) <= {0.0, 0.5, 1.0} and (A.sum(1) >= 7 * 0.5).all()


def test_large_inputs_take_the_sparse_eigensolver_with_the_same_eigenvalues(monkeypatch):
    import neon.spray

    R, truth = strategies((40, 30, 25), seed=2)
    dense = SpRAy(n_neighbors=7).fit(R)
    monkeypatch.setattr(neon.spray, "_DENSE_LIMIT", 20)  # ARPACK's shift-invert mode, as above 2000 explanations
    sparse = SpRAy(n_neighbors=7).fit(R)
    np.testing.assert_allclose(sparse.eigenvalues_, dense_reference(sparse.features_, 7)[:len(sparse.eigenvalues_)],
                               atol=1e-8)
    assert sparse.n_clusters_ == 3 and same_partition(sparse.labels_, truth)
    np.testing.assert_array_equal(sparse.labels_, dense.labels_)


@pytest.mark.parametrize("sizes", [(40, 25), (30, 30, 20), (25, 20, 20, 15)])
def test_the_eigengap_counts_separate_strategies_and_the_labels_recover_them(sizes):
    R, truth = strategies(sizes)
    spray = SpRAy().fit(R)
    assert spray.n_clusters_ == len(sizes)
    assert same_partition(spray.labels_, truth)
    # c separate groups: c eigenvalues at zero, then the gap
    assert np.all(spray.eigenvalues_[: len(sizes)] < 1e-9) and spray.eigenvalues_[len(sizes)] > 0.05
    assert np.argmax(spray.eigengap_) == len(sizes) - 1
    # labels numbered by size, largest first
    sizes_found = np.bincount(spray.labels_)
    assert list(sizes_found) == sorted(sizes, reverse=True)


def test_prototypes_are_the_mean_normalised_maps_and_scale_does_not_matter():
    R, truth = strategies((30, 20))
    spray = SpRAy().fit(R)
    shares = R / np.abs(R).sum(1, keepdims=True)
    for k in range(spray.n_clusters_):
        np.testing.assert_allclose(spray.prototypes_[k], shares[spray.labels_ == k].mean(0), rtol=1e-12)
    scaled = SpRAy().fit(R * np.linspace(0.1, 10, len(R))[:, None])
    np.testing.assert_array_equal(scaled.labels_, spray.labels_)
    np.testing.assert_allclose(scaled.eigenvalues_, spray.eigenvalues_, atol=1e-12)


def test_deterministic_and_n_clusters_overrides_the_eigengap():
    R, _ = strategies((30, 30, 20), seed=3)
    a, b = SpRAy(random_state=5).fit(R), SpRAy(random_state=5).fit(R)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    np.testing.assert_array_equal(a.embedding_, b.embedding_)
    forced = SpRAy(n_clusters=2).fit(R)
    assert forced.n_clusters_ == 2 and len(forced.prototypes_) == 2
    assert SpRAy(n_clusters=1).fit(R).labels_.max() == 0


def test_image_maps_sum_channels_and_pool_to_block_means():
    rng = np.random.default_rng(1)
    R = rng.standard_normal((24, 3, 8, 8))
    maps = relevance_maps(R)
    np.testing.assert_allclose(maps, R.sum(1))
    spray = SpRAy(pool=4, n_neighbors=5).fit(torch.from_numpy(R))
    blocks = maps.reshape(24, 4, 2, 4, 2).mean((2, 4)).reshape(24, -1)
    np.testing.assert_allclose(spray.features_, blocks / np.abs(blocks).sum(1, keepdims=True), rtol=1e-10)
    assert spray.prototypes_.shape[1:] == (8, 8) and spray.map_shape_ == (8, 8)
    np.testing.assert_allclose(normalise(maps, "l2").reshape(24, -1).__pow__(2).sum(1), 1.0)


def test_explanation_input_and_tsne_embedding():
    from sklearn.cluster import KMeans
    from sklearn.datasets import load_wine
    from sklearn.preprocessing import StandardScaler

    import neon

    X = StandardScaler().fit_transform(load_wine().data)
    km = KMeans(3, n_init=3, random_state=0).fit(X)
    expl = neon.explain(km, X)
    rows = np.flatnonzero(expl.target == 0)
    spray = SpRAy().fit(expl[rows])
    np.testing.assert_allclose(spray.features_, SpRAy().fit(expl.relevance[rows]).features_)
    assert spray.prototypes_.shape == (spray.n_clusters_, 13)
    R, truth = strategies((12, 10))
    tsne = SpRAy(n_neighbors=5, embedding="tsne").fit(R)
    assert tsne.embedding_.shape == (22, 2) and np.isfinite(tsne.embedding_).all()


def test_plots_draw_spectrum_embedding_and_prototypes():
    import neon.plot

    R, _ = strategies((30, 20))
    spray = SpRAy().fit(R)
    fig = spray.plot()
    assert len(fig.axes) == 2 + spray.n_clusters_
    ax = neon.plot.spectrum(spray)
    assert len(ax.lines) == 2  # the spectrum and the marked gap
    images = SpRAy(n_neighbors=5).fit(np.random.default_rng(0).standard_normal((20, 8, 8)))
    axes = neon.plot.spray_prototypes(images)
    assert len(axes) == images.n_clusters_ and axes[0].images
    import matplotlib.pyplot as plt

    plt.close("all")


def test_bad_input_is_a_clear_value_error():
    R, _ = strategies((30, 20))
    with pytest.raises(ValueError, match="mixed shapes"):
        SpRAy().fit([np.zeros(5), np.zeros(6)] * 10)
    with pytest.raises(ValueError, match="more explanations than n_neighbors=10; got 8"):
        SpRAy().fit(R[:8])
    bad = R.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        SpRAy().fit(bad)
    with pytest.raises(ValueError, match="normalize"):
        SpRAy(normalize="max").fit(R)
    with pytest.raises(ValueError, match="pool= needs image relevance"):
        SpRAy(pool=2).fit(R)
    with pytest.raises(ValueError, match="n_clusters"):
        SpRAy(n_clusters=0).fit(R)
    with pytest.raises(ValueError, match="embedding"):
        SpRAy(embedding="umap").fit(R)
