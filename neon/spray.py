"""Spectral Relevance Analysis (SpRAy): group the explanations of one class by the strategy they show.

Lapuschkin, Wäldchen, Binder, Montavon, Samek, Müller, "Unmasking Clever Hans predictors and assessing what
machines really learn", Nat. Commun. 2019 (docs/theory.md §6). The explanations of one class are summed over
channels, optionally pooled, normalised, linked in a symmetric k-nearest-neighbour graph, and embedded with the
eigenvectors of the graph's normalised Laplacian; the largest gap between consecutive eigenvalues proposes the
number of strategies, and k-means on the embedding assigns each explanation to one. Everything spectral is
scikit-learn's and SciPy's (:func:`sklearn.neighbors.kneighbors_graph`, :func:`scipy.sparse.csgraph.laplacian`,
:func:`scipy.linalg.eigh` / :func:`scipy.sparse.linalg.eigsh`, :func:`sklearn.manifold.spectral_embedding`,
:class:`sklearn.cluster.KMeans`).

>>> from neon.spray import SpRAy
>>> spray = SpRAy().fit(explanation)          # doctest: +SKIP
>>> spray.n_clusters_, spray.labels_          # doctest: +SKIP
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

__all__ = ["SpRAy", "relevance_maps"]

#: Up to this many explanations the eigenvalues come from a dense symmetric solver; above, from ARPACK.
_DENSE_LIMIT = 2000


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    if hasattr(x, "to_numpy"):
        return x.to_numpy()
    return np.asarray(x)


def relevance_maps(explanations: Any) -> np.ndarray:
    """The relevance of ``explanations`` as one float64 array ``(n, ...)``, summed over channels for images.

    ``explanations`` is a :class:`neon.Explanation`, an array (numpy, torch, pandas) of relevance with samples on
    the first axis, or a sequence of per-sample maps of one shape. ``(n, C, H, W)`` becomes ``(n, H, W)``
    (the channels' relevance adds up: the "spectral" preprocessing of CoRelAy); ``(n, d)`` and ``(n, H, W)``
    stay as they are.

    Raises
    ------
    ValueError
        Maps of different shapes, fewer than two axes, or values that are not finite numbers.
    """
    r = getattr(explanations, "relevance", explanations)
    if isinstance(r, (list, tuple)):
        maps = [_to_numpy(m) for m in r]
        shapes = sorted({tuple(m.shape) for m in maps})
        if len(shapes) > 1:
            raise ValueError(f"explanations of mixed shapes {shapes}: SpRAy compares maps of one shape (resize or "
                             "pool them to a common shape first).")
        arr = np.stack(maps) if maps else np.zeros((0, 0))
    else:
        arr = _to_numpy(r)
    if arr.dtype == object:
        raise ValueError("explanations of mixed shapes (a ragged array): SpRAy compares maps of one shape.")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"relevance must be numbers; got dtype {arr.dtype}.")
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim < 2:
        raise ValueError(f"relevance must have a sample axis and at least one feature axis; got shape {arr.shape}.")
    if not np.isfinite(arr).all():
        raise ValueError("relevance holds NaN or infinite values.")
    if arr.ndim == 4:
        arr = arr.sum(1)
    return arr


def _pool(maps: np.ndarray, size: Any) -> np.ndarray:
    """Average-pool 2-D maps ``(n, H, W)`` to ``size = (h, w)`` (torch's adaptive pooling: exact block means when
    ``h`` divides ``H`` and ``w`` divides ``W``)."""
    import torch
    import torch.nn.functional as F

    if maps.ndim != 3:
        raise ValueError("pool= needs image relevance (n, H, W) or (n, C, H, W); got per-sample shape "
                         f"{maps.shape[1:]}.")
    h, w = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    if not (0 < h <= maps.shape[1] and 0 < w <= maps.shape[2]):
        raise ValueError(f"pool={size!r} must lie between 1 and the map size {maps.shape[1:]}.")
    out = F.adaptive_avg_pool2d(torch.from_numpy(maps)[:, None], (int(h), int(w)))
    return out[:, 0].numpy()


def normalise(maps: np.ndarray, norm: str | None) -> np.ndarray:
    """Each map divided by its ``"l1"`` norm (``sum |R|``: relevance shares), its ``"l2"`` norm, or left as is
    (``None``). A map of zeros stays zero (``0 / 0 := 0``)."""
    if norm is None:
        return maps.copy()
    flat = maps.reshape(len(maps), -1)
    if norm == "l1":
        scale = np.abs(flat).sum(1)
    elif norm == "l2":
        scale = np.sqrt((flat * flat).sum(1))
    else:
        raise ValueError(f"normalize={norm!r}; use 'l1', 'l2' or None.")
    scale = np.where(scale > 0, scale, 1.0)
    return maps / scale.reshape((-1,) + (1,) * (maps.ndim - 1))


class SpRAy:
    """Spectral Relevance Analysis of the explanations of one class (Lapuschkin et al., Nat. Commun. 2019).

    The steps (docs/theory.md §6):

    1. **maps**: relevance summed over channels (images), optionally average-pooled to ``pool``, then each map
       normalised (``normalize="l1"``: divided by ``sum_i |R_i|``, so that maps are compared as shares);
    2. **affinity**: the symmetric k-nearest-neighbour graph ``A = (K + K^T) / 2`` with ``K_nm = 1`` when ``m`` is
       one of the ``n_neighbors`` nearest maps of ``n`` (euclidean), as in CoRelAy's ``SparseKNN``;
    3. **Laplacian**: ``L = I - D^{-1/2} A D^{-1/2}`` (``D`` the degrees) and its smallest eigenvalues
       ``0 = lambda_1 <= lambda_2 <= ...``;
    4. **eigengap**: the number of strategies ``k = argmax_{1 <= j <= max_clusters} (lambda_{j+1} - lambda_j)``
       (von Luxburg, "A tutorial on spectral clustering", 2007), unless ``n_clusters`` is given; a graph of ``c``
       disconnected groups has ``c`` zero eigenvalues and its largest gap after them;
    5. **clusters**: :func:`sklearn.manifold.spectral_embedding` (the first ``k`` eigenvectors, ``drop_first=False``)
       and :class:`sklearn.cluster.KMeans` on them; labels are numbered by decreasing cluster size.

    Parameters
    ----------
    n_clusters
        The number of strategies; ``None`` for the eigengap's proposal.
    n_neighbors
        Neighbours per map in the affinity graph (the paper's ``k = 10``). Needs more explanations than this.
    max_clusters
        The largest number of strategies the eigengap may propose.
    n_eigenvalues
        How many of the smallest eigenvalues to compute (for ``eigenvalues_`` and the spectrum plot);
        ``None`` for ``max(32, max_clusters + 1)`` (CoRelAy computes 32), at most the number of explanations.
    pool
        ``None``, or ``h`` / ``(h, w)``: average-pool image maps to that size before comparing them (the paper
        downsizes heatmaps; it makes the analysis look at regions rather than single pixels).
    normalize
        ``"l1"`` (default), ``"l2"`` or ``None``.
    embedding
        How ``embedding_`` (2-D, for plots) is made: ``"spectral"`` (eigenvectors 2 and 3 of the embedding) or
        ``"tsne"`` (:class:`sklearn.manifold.TSNE` of the spectral embedding, as ViRelAy shows it).
    random_state
        Seed of the eigensolvers, k-means and t-SNE: the same input gives the same result.

    Attributes
    ----------
    features_ : ndarray (n, m)
        The normalised (pooled) maps the graph is built on, flattened.
    affinity_ : scipy.sparse matrix (n, n)
        The symmetric kNN affinity.
    eigenvalues_ : ndarray
        The smallest eigenvalues of the normalised Laplacian, ascending.
    eigengap_ : ndarray
        ``lambda_{j+1} - lambda_j`` for ``j = 1 .. max_clusters`` (the gaps the proposal chose from).
    n_clusters_ : int
        The number of strategies (given or proposed).
    spectral_embedding_ : ndarray (n, max(n_clusters_, 3))
        scikit-learn's spectral embedding (first column: the trivial eigenvector).
    embedding_ : ndarray (n, 2)
        Two coordinates per explanation for plots.
    labels_ : ndarray (n,)
        The strategy of every explanation, ``0`` the largest.
    prototypes_ : ndarray (n_clusters_, *map shape)
        The mean normalised relevance map of every cluster (at full resolution, channels summed).
    map_shape_ : tuple
        The per-sample shape of the maps (after summing channels).
    """

    def __init__(self, n_clusters: int | None = None, n_neighbors: int = 10, *, max_clusters: int = 10,
                 n_eigenvalues: int | None = None, pool: Any = None, normalize: str | None = "l1",
                 embedding: str = "spectral", random_state: int | None = 0):
        self.n_clusters = n_clusters
        self.n_neighbors = n_neighbors
        self.max_clusters = max_clusters
        self.n_eigenvalues = n_eigenvalues
        self.pool = pool
        self.normalize = normalize
        self.embedding = embedding
        self.random_state = random_state

    # ------------------------------------------------------------------ steps
    def _check_params(self, n: int) -> None:
        if not isinstance(self.n_neighbors, (int, np.integer)) or self.n_neighbors < 1:
            raise ValueError(f"n_neighbors={self.n_neighbors!r}; use a positive integer.")
        if n <= self.n_neighbors:
            raise ValueError(f"SpRAy needs more explanations than n_neighbors={self.n_neighbors}; got {n}. Pass more "
                             "explanations or lower n_neighbors.")
        if self.n_clusters is not None and not 1 <= self.n_clusters <= n:
            raise ValueError(f"n_clusters={self.n_clusters!r}; use None or an integer between 1 and the number of "
                             f"explanations ({n}).")
        if self.max_clusters < 1:
            raise ValueError(f"max_clusters={self.max_clusters!r}; use a positive integer.")
        if self.embedding not in ("spectral", "tsne"):
            raise ValueError(f"embedding={self.embedding!r}; use 'spectral' or 'tsne'.")

    def _eigenvalues(self, laplacian: Any, count: int) -> np.ndarray:
        from scipy.linalg import eigh
        from scipy.sparse.linalg import eigsh

        n = laplacian.shape[0]
        if n <= _DENSE_LIMIT or count >= n - 1:
            values = eigh(laplacian.toarray(), eigvals_only=True, subset_by_index=[0, count - 1])
        else:
            # Shift-invert around -1 of -L (scikit-learn's choice in spectral_embedding): the smallest of L.
            rng = np.random.default_rng(self.random_state)
            values = -eigsh(-laplacian, k=count, sigma=1.0, which="LM", v0=rng.uniform(-1, 1, n),
                            return_eigenvectors=False)
        return np.clip(np.sort(values), 0.0, 2.0)

    def fit(self, explanations: Any) -> SpRAy:
        """Analyse ``explanations`` of one class: an :class:`~neon.Explanation` or relevance ``(n, ...)``.

        Returns ``self``. Raises ``ValueError`` for maps of mixed shapes, fewer explanations than
        ``n_neighbors + 1``, or non-finite relevance.
        """
        from scipy.sparse.csgraph import laplacian
        from sklearn.cluster import KMeans
        from sklearn.manifold import spectral_embedding
        from sklearn.neighbors import kneighbors_graph

        maps = relevance_maps(explanations)
        n = len(maps)
        self._check_params(n)
        self.map_shape_ = tuple(maps.shape[1:])
        shares = normalise(maps, self.normalize)
        pooled = maps if self.pool is None else _pool(maps, self.pool)
        self.features_ = normalise(pooled, self.normalize).reshape(n, -1)

        knn = kneighbors_graph(self.features_, self.n_neighbors, mode="connectivity", include_self=False)
        self.affinity_ = (0.5 * (knn + knn.T)).tocsr()
        lap = laplacian(self.affinity_, normed=True)
        count = min(n, self.n_eigenvalues or max(32, self.max_clusters + 1))
        count = max(count, min(n, 2))
        self.eigenvalues_ = self._eigenvalues(lap, count)
        top = min(self.max_clusters, len(self.eigenvalues_) - 1)
        self.eigengap_ = np.diff(self.eigenvalues_[: top + 1])
        if self.n_clusters is not None:
            k = int(self.n_clusters)
        else:
            k = int(np.argmax(self.eigengap_)) + 1 if len(self.eigengap_) else 1

        dims = min(max(k, 3), n - 1)
        with warnings.catch_warnings():
            # A graph of separate groups is what SpRAy looks for; scikit-learn warns that it is not connected.
            warnings.filterwarnings("ignore", message="Graph is not fully connected")
            emb = spectral_embedding(self.affinity_, n_components=dims, drop_first=False,
                                     random_state=self.random_state)
        self.spectral_embedding_ = emb
        if k > 1:
            raw = KMeans(n_clusters=k, n_init=10, random_state=self.random_state).fit_predict(emb[:, :k])
        else:
            raw = np.zeros(n, dtype=int)
        # Number clusters by decreasing size (ties by first appearance): label 0 is the largest strategy.
        sizes = np.bincount(raw, minlength=k)
        first = np.array([np.flatnonzero(raw == c)[0] if sizes[c] else n for c in range(k)])
        order = sorted(range(k), key=lambda c: (-sizes[c], first[c]))
        relabel = np.empty(k, dtype=int)
        relabel[order] = np.arange(k)
        self.labels_ = relabel[raw]
        self.n_clusters_ = int(len(np.unique(self.labels_)))
        self.prototypes_ = np.stack([shares[self.labels_ == c].mean(0) for c in range(self.n_clusters_)])
        self.embedding_ = self._embedding_2d(emb)
        return self

    def _embedding_2d(self, emb: np.ndarray) -> np.ndarray:
        if self.embedding == "tsne":
            from sklearn.manifold import TSNE

            n = len(emb)
            return TSNE(n_components=2, perplexity=float(min(30, max(2, (n - 1) // 3))), init="pca",
                        random_state=self.random_state).fit_transform(emb)
        cols = emb[:, 1:3]
        if cols.shape[1] < 2:  # two explanations: one non-trivial coordinate at most
            cols = np.concatenate([cols, np.zeros((len(emb), 2 - cols.shape[1]))], 1)
        return cols

    def fit_predict(self, explanations: Any) -> np.ndarray:
        """:meth:`fit`, then the labels."""
        return self.fit(explanations).labels_

    # ------------------------------------------------------------------ plots
    def plot(self, **kwargs: Any) -> Any:
        """The spectrum, the 2-D embedding and the prototypes side by side (:func:`neon.plot.spray_overview`).

        Returns the matplotlib Figure."""
        from .plot.spray import spray_overview

        return spray_overview(self, **kwargs)

    def __repr__(self) -> str:
        params = f"n_clusters={self.n_clusters}, n_neighbors={self.n_neighbors}"
        if hasattr(self, "labels_"):
            return (f"SpRAy({params}; fitted on {len(self.labels_)} explanations: {self.n_clusters_} strategies of "
                    f"sizes {np.bincount(self.labels_).tolist()})")
        return f"SpRAy({params})"
