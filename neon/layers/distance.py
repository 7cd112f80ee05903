"""Squared-distance layers: the first layer of every NEON distance model (docs/theory.md §4)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .pairs import competitors


def squared_distances(x: Tensor, points: Tensor, points_sq: Tensor | None = None) -> Tensor:
    """``||x_n - p_j||^2`` for all pairs, as ``(n, J)``, without an ``n x J x d`` tensor."""
    if points_sq is None:
        points_sq = (points * points).sum(-1)
    d = (x * x).sum(-1, keepdim=True) - 2.0 * (x @ points.T) + points_sq
    return d.clamp_min(0.0)


class SquaredDistance(nn.Module):
    """``h_j(x) = ||x - p_j||^2 + o_j`` for a fixed set of points ``p_j`` and offsets ``o_j``.

    In a one-class SVM or a KDE, ``p_j`` are the support vectors / data points and
    ``o_j = -log(alpha_j) / gamma`` (Kauffmann et al., Pattern Recognition 2020).
    """

    points: Tensor
    center: Tensor
    centered: Tensor
    points_sq: Tensor
    offset: Tensor

    def __init__(self, points: Tensor, offset: Tensor | None = None):
        super().__init__()
        points = torch.as_tensor(points)
        self.register_buffer("points", points.detach().clone())
        # Distances are computed in coordinates centred on the points' mean: the expansion
        # ||x||^2 - 2 x^T p + ||p||^2 loses ~1e-16 ||x||^2 to cancellation, so small norms matter.
        self.register_buffer("center", self.points.mean(0) if len(points) else torch.zeros_like(points[0]))
        self.register_buffer("centered", self.points - self.center, persistent=False)
        self.register_buffer("points_sq", (self.centered * self.centered).sum(-1))
        if offset is None:
            offset = torch.zeros(points.shape[0], dtype=points.dtype)
        self.register_buffer("offset", torch.as_tensor(offset, dtype=points.dtype).detach().clone())

    def distances(self, x: Tensor) -> Tensor:
        """``||x_n - p_j||^2`` as ``(n, J)`` (without the offsets)."""
        return squared_distances(x - self.center, self.centered, self.points_sq)

    def forward(self, x: Tensor) -> Tensor:
        return self.distances(x) + self.offset

    def extra_repr(self) -> str:
        return f"points={tuple(self.points.shape)}"


#: A point closer to ``x`` than this fraction of ``||x||^2 + ||x_j||^2`` (squared, centred) *is* ``x``: the
#: rounding noise of the distance expansion, the same bound the distance rule treats as zero distance.
COINCIDENT_RTOL = 1e-10


class LeaveOneOutDistance(SquaredDistance):
    """The distance layer of the leave-one-out outlier score: ``x``'s own kernel term left out (docs/theory.md §6).

    ``h_j(x) = ||x - p_j||^2 - log(alpha_j / (1 - A(x))) / gamma`` for the points ``p_j`` that ``x`` does not
    coincide with and ``+inf`` for those it does, where ``A(x)`` is the weight of the left-out points. A
    soft-min pool of stiffness ``gamma`` on top then outputs

    ``o_loo(x) = -(1/gamma) log sum_{j: p_j != x} alpha_j exp(-gamma ||x - p_j||^2) / sum_{j: p_j != x} alpha_j``,

    the outlier score of the model without ``x``'s own term, its weights renormalised (for a KDE: the density
    fitted without the point, same bandwidth). For an ``x`` that is none of the points it is the full score.
    ``x`` coincides with ``p_j`` when ``||x - p_j||^2 <= tol (||x - c||^2 + ||p_j - c||^2)`` (``c`` the points'
    mean, ``tol`` :data:`COINCIDENT_RTOL`, or ``32 eps`` of a coarser dtype): duplicates of ``x`` are left out
    with it.
    """

    weights: Tensor

    def __init__(self, points: Tensor, weights: Tensor, stiffness: float):
        points = torch.as_tensor(points)
        alpha = torch.as_tensor(weights, dtype=points.dtype)
        alpha = alpha / alpha.sum()
        super().__init__(points, -torch.log(alpha) / float(stiffness))
        self.register_buffer("weights", alpha.detach().clone())
        self.stiffness = float(stiffness)

    def coincident(self, x: Tensor, d: Tensor | None = None) -> Tensor:
        """``(n, J)``: whether ``x_n`` is point ``j`` (up to the rounding of the distance expansion)."""
        xc = x - self.center
        if d is None:
            d = self.distances(x)
        tol = max(COINCIDENT_RTOL, 32 * torch.finfo(d.dtype).eps)
        return d <= tol * ((xc * xc).sum(-1, keepdim=True) + self.points_sq)

    def forward(self, x: Tensor) -> Tensor:
        d = self.distances(x)
        out = self.coincident(x, d)
        left = (self.weights * out).sum(-1, keepdim=True)
        # -log(alpha_j / (1 - A)) / gamma = offset_j + log(1 - A) / gamma: the remaining weights sum to one.
        h = d + self.offset + torch.log1p(-left) / self.stiffness
        return h.masked_fill(out, float("inf"))

    def extra_repr(self) -> str:
        return f"points={tuple(self.points.shape)}, leave-one-out"


#: Up to this many clusters the contrast layer is one product with a +-1 selection matrix.
_MAX_K_PRODUCT = 32


class CentroidContrast(nn.Module):
    """``h_ck(x) = ||x - mu_k||^2 - ||x - mu_c||^2`` for every cluster ``c`` and competitor ``k != c``.

    Output shape ``(n, K, K - 1)``; the ``j``-th competitor of ``c`` is ``competitors[c, j]``.
    This is the k-means logit layer of Kauffmann et al., "From clustering to cluster explanations
    via neural networks" (TNNLS 2022): an affine map ``w_ck^T x + b_ck`` with
    ``w_ck = 2 (mu_c - mu_k)`` and ``b_ck = ||mu_k||^2 - ||mu_c||^2``, evaluated through the
    ``n x K`` distances rather than ``K (K - 1)`` weight vectors.
    """

    centroids: Tensor
    centroids_sq: Tensor
    midpoint_basis: Tensor
    competitors: Tensor
    selection: Tensor

    def __init__(self, centroids: Tensor):
        super().__init__()
        centroids = torch.as_tensor(centroids)
        k = centroids.shape[0]
        if k < 2:
            raise ValueError(f"CentroidContrast needs at least 2 centroids, got {k}.")
        self.register_buffer("centroids", centroids.detach().clone())
        self.register_buffer("centroids_sq", (self.centroids * self.centroids).sum(-1))
        # [-2 mu, mu^2]: the midpoint rule's relevance is x * (q @ -2 mu) + q @ mu^2 (one product).
        self.register_buffer("midpoint_basis", torch.cat([-2.0 * self.centroids, self.centroids ** 2], 1),
                             persistent=False)
        idx = torch.arange(k)
        comp = competitors(k)
        self.register_buffer("competitors", comp)
        # For few clusters, h = e @ S with the +-1 matrix S (column ck: +1 at k, -1 at c) is one small
        # product, ~2.5x faster than broadcasting and dropping the diagonal; each entry is still the
        # single rounding of e_k - e_c (the other terms are exact zeros).
        self._by_product = k <= _MAX_K_PRODUCT
        if self._by_product:
            cols = torch.arange(k * (k - 1))
            sel = torch.zeros(k, k * (k - 1), dtype=self.centroids.dtype)
            sel[comp.reshape(-1), cols] = 1.0
            sel[idx.repeat_interleave(k - 1), cols] = -1.0
            self.register_buffer("selection", sel, persistent=False)

    def distances(self, x: Tensor) -> Tensor:
        return squared_distances(x, self.centroids, self.centroids_sq)

    def terms(self, x: Tensor) -> Tensor:
        """``e_k = ||mu_k||^2 - 2 mu_k^T x``, ``(n, K)``, one ``addmm``: ``h_ck = e_k - e_c`` (``||x||^2`` cancels)."""
        return torch.addmm(self.centroids_sq, x, self.centroids.T, alpha=-2.0)

    def forward(self, x: Tensor) -> Tensor:
        e = self.terms(x)
        n, k = e.shape
        if self._by_product:
            return (e @ self.selection).view(n, k, k - 1)
        full = e.unsqueeze(1) - e.unsqueeze(2)  # full[:, c, k] = e_k - e_c
        # Drop the diagonal c == k, keeping the order of ``competitors`` (k ascending).
        return full.view(n, k * k)[:, 1:].reshape(n, k - 1, k + 1)[:, :, :k].reshape(n, k, k - 1)

    def extra_repr(self) -> str:
        return f"centroids={tuple(self.centroids.shape)}"
