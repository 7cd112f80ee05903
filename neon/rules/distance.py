"""Rules for the NEON distance layers: exactly conservative root-point rules."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .._numeric import safe_divide
from ..layers.distance import CentroidContrast, SquaredDistance
from .base import Rule, SingleRow

#: Squared distances below this fraction of ``||x||^2 + ||x_j||^2`` are rounding noise of the expansion.
_DIST_RTOL = 1e-10


class Distance(Rule):
    """Root point ``x_j`` for a squared-distance unit (Kauffmann et al., Pattern Recognit. 2020).

    ``R_i = sum_j (x_i - x_ji)^2 / ||x - x_j||^2 R_j``: each distance unit gives its relevance to
    the features in proportion to their share of the distance. Exactly conservative. Evaluated as
    ``x^2 sum_j s_j - 2 x (s P) + s P^2`` with ``s_j = R_j / ||x - x_j||^2`` (in coordinates centred on
    the points): no ``n x J x d`` tensor. A unit whose squared distance is below ``1e-10 (||x||^2 +
    ||x_j||^2)`` (``x`` is one of the points, up to rounding) has no feature differences to give its
    relevance to: it keeps it, and the explanation reports it as absorbed.
    """

    name = "distance"

    def supports(self, op: Any) -> bool:
        return isinstance(op, SquaredDistance)

    def relevance(self, op, inputs, output, R, ctx):
        (x,) = inputs
        xc = x - op.center
        d = op.distances(x)
        # A point at (numerically) zero distance has no feature differences to share its relevance
        # with: it gets none, and what it held is reported as absorbed (docs/theory.md §1).
        noise = _DIST_RTOL * ((xc * xc).sum(-1, keepdim=True) + op.points_sq)
        s = torch.where(d > noise, R / d.clamp_min(torch.finfo(d.dtype).tiny), torch.zeros_like(R))
        p = op.centered
        rel = xc * (xc * s.sum(-1, keepdim=True) - 2.0 * (s @ p)) + s @ (p * p)
        return (rel,)


class Midpoint(Rule):
    """Midpoint rule for the k-means logit layer (Kauffmann et al., TNNLS 2022).

    Root point ``m_ck = (mu_c + mu_k) / 2`` on the hyperplane ``h_ck = 0``:
    ``R_i = sum_k (x_i - m_ck,i) w_ck,i / h_ck R_ck``, which per feature splits
    ``(x_i - mu_k,i)^2 - (x_i - mu_c,i)^2``. Exactly conservative. Evaluated in closed form:
    with ``A = R / h`` and ``q_k`` the net weight of centroid ``k`` (as competitor minus as
    owner), ``R = sum_k q_k (x - mu_k)^2`` — cost ``O(n K d)``, no ``n x K x d`` tensor.
    """

    name = "midpoint"

    def supports(self, op: Any) -> bool:
        return isinstance(op, CentroidContrast)

    def relevance(self, op, inputs, output, R, ctx):
        (x,) = inputs
        n, k = x.shape[0], op.centroids.shape[0]
        hint = ctx.hint
        if isinstance(hint, SingleRow) and hint.relevance is R and hint.inputs is output:
            return (self._one_cluster(op, x, hint),)
        A = safe_divide(R, output)
        own = A.sum(-1)
        as_competitor = torch.zeros(n, k, dtype=A.dtype, device=A.device)
        as_competitor.scatter_add_(1, op.competitors.reshape(1, -1).expand(n, -1), A.reshape(n, -1))
        q = as_competitor - own
        mu = op.centroids
        rel = x * x * q.sum(-1, keepdim=True) - 2.0 * x * (q @ mu) + q @ (mu * mu)
        return (rel,)

    @staticmethod
    def _one_cluster(op: CentroidContrast, x: Tensor, hint: SingleRow) -> Tensor:
        """Only cluster ``c = hint.rows[n]``'s units carry relevance: ``a_k = R_ck / h_ck``, ``q_c = -sum_k a_k``.

        Then ``sum_k q_k = 0`` and ``R = x * (-2 q @ mu) + q @ mu^2``: one ``(n, K) x (K, 2d)`` product
        and one fused multiply-add per feature (the closed form of Kauffmann et al., TNNLS 2022).
        """
        n, k = x.shape[0], op.centroids.shape[0]
        # 0/0 := 0: a unit on its hyperplane (h = 0) has nothing to give (docs/theory.md §1).
        a = safe_divide(hint.row_relevance, hint.input_row)
        q = torch.zeros(n, k, dtype=a.dtype, device=a.device)
        q.scatter_(1, op.competitors[hint.rows], a).scatter_(1, hint.rows.view(-1, 1), -a.sum(-1, keepdim=True))
        d = x.shape[1]
        coef = q @ op.midpoint_basis
        return torch.addcmul(coef[:, d:], x, coef[:, :d])
