"""Rules for the NEON distance layers: exactly conservative root-point rules."""

from __future__ import annotations

from typing import Any

import torch

from .._numeric import safe_divide
from ..layers.distance import CentroidContrast, SquaredDistance
from .base import Rule


class Distance(Rule):
    """Root point ``x_j`` for a squared-distance unit (Kauffmann et al., Pattern Recognit. 2020).

    ``R_i = sum_j (x_i - x_ji)^2 / ||x - x_j||^2 R_j``: each distance unit gives its relevance to
    the features in proportion to their share of the distance. Exactly conservative. Evaluated as
    ``x^2 sum_j s_j - 2 x (s P) + s P^2`` with ``s_j = R_j / ||x - x_j||^2``: no ``n x J x d`` tensor.
    """

    name = "distance"

    def supports(self, op: Any) -> bool:
        return isinstance(op, SquaredDistance)

    def relevance(self, op, inputs, output, R, ctx):
        (x,) = inputs
        d = output - op.offset
        s = safe_divide(R, d)
        rel = x * x * s.sum(-1, keepdim=True) - 2.0 * x * (s @ op.points) + s @ (op.points * op.points)
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
        A = safe_divide(R, output)
        own = A.sum(-1)
        as_competitor = torch.zeros(n, k, dtype=A.dtype, device=A.device)
        as_competitor.scatter_add_(1, op.competitors.reshape(1, -1).expand(n, -1), A.reshape(n, -1))
        q = as_competitor - own
        mu = op.centroids
        rel = x * x * q.sum(-1, keepdim=True) - 2.0 * x * (q @ mu) + q @ (mu * mu)
        return (rel,)
