"""Rules for the NEON distance layers: exactly conservative root-point rules."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from .._numeric import safe_divide
from ..layers.distance import CentroidContrast, SquaredDistance
from .base import Context, Fused, Rule, SingleColumn, SingleRow

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
    records_forward = True

    def supports(self, op: Any) -> bool:
        return isinstance(op, SquaredDistance)

    def record(self, op: Any, inputs: Sequence[Tensor]) -> tuple[Tensor, Any] | None:
        """The layer's output ``d + o`` and the distances ``d``, kept so the backward pass needs no second product."""
        if type(op) is not SquaredDistance or len(inputs) != 1:
            return None  # a subclass computes its own output
        d = op.distances(inputs[0])
        return d + op.offset, d

    def relevance(self, op, inputs, output, R, ctx):
        (x,) = inputs
        xc = x - op.center
        d = ctx.forward_state if isinstance(ctx.forward_state, Tensor) else op.distances(x)
        # A point at (numerically) zero distance has no feature differences to share its relevance
        # with: it gets none, and what it held is reported as absorbed (docs/theory.md §1).
        noise = _DIST_RTOL * ((xc * xc).sum(-1, keepdim=True) + op.points_sq)
        s = (R / d.clamp_min(torch.finfo(d.dtype).tiny)).masked_fill_(d <= noise, 0.0)
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
            # 0/0 := 0: a unit on its hyperplane (h = 0) has nothing to give (docs/theory.md §1).
            a = safe_divide(hint.row_relevance, hint.input_row)
            spread = a.new_zeros((n, k)).scatter_(1, op.competitors[hint.rows], a)
            return (self._one_cluster(op, x, hint.rows, spread),)
        A = safe_divide(R, output)
        own = A.sum(-1)
        as_competitor = torch.zeros(n, k, dtype=A.dtype, device=A.device)
        as_competitor.scatter_add_(1, op.competitors.reshape(1, -1).expand(n, -1), A.reshape(n, -1))
        q = as_competitor - own
        mu = op.centroids
        rel = x * x * q.sum(-1, keepdim=True) - 2.0 * x * (q @ mu) + q @ (mu * mu)
        return (rel,)

    @staticmethod
    def _one_cluster(op: CentroidContrast, x: Tensor, rows: Tensor, a: Tensor) -> Tensor:
        """Only cluster ``c = rows[n]``'s units carry relevance: ``a`` (``n x K``) holds ``R_ck / h_ck`` at the
        competitors ``k`` and 0 at ``c``; it is overwritten with the net weights ``q``.

        ``q_k = a_k``, ``q_c = -sum_k a_k``, so ``sum_k q_k = 0`` and ``R = x * (q @ -2 mu) + q @ mu^2``: two
        ``(n, K) x (K, d)`` products and one fused multiply-add per feature (the closed form of Kauffmann et al.,
        TNNLS 2022).
        """
        q = a.scatter_(1, rows.view(-1, 1), a.sum(-1, keepdim=True).neg_())
        d = x.shape[1]
        basis = op.midpoint_basis
        # one fresh (n, d) buffer, three passes over it (measured ~10 % faster than two products and an addcmul)
        return torch.mm(q, basis[:, :d]).mul_(x).addmm_(q, basis[:, d:])


class MidpointSoftMin(Fused):
    """The k-means logits ``f_c = min_k h_ck`` run and explained as one step: soft-min, then midpoint.

    What :class:`~neon.rules.SoftMin` on a hard :class:`~neon.layers.ReduceMin` over a
    :class:`~neon.layers.CentroidContrast` with :class:`Midpoint` below gives (``Rule.fuse``), without the
    ``n x K x (K - 1)`` contrast units (Kauffmann et al., TNNLS 2022; docs/theory.md §4). With the
    ``n x K`` terms ``e_k = ||mu_k||^2 - 2 mu_k^T x`` (``h_ck = e_k - e_c``):

    - forward: ``f_c = min_{k != c} e_k - e_c``, i.e. ``m_1 - e_c`` for every cluster but the nearest,
      ``m_2 - m_1`` for the nearest (``m_1 <= m_2`` the two smallest ``e``): the same numbers as the
      minimum over the contrast units (rounding is monotone, so the minimum commutes with ``- e_c``);
    - backward, when only the explained cluster ``c`` carries relevance (the engine's
      :class:`~neon.rules.base.SingleColumn` hint): row ``c`` of the units is ``e - e_c`` (``n x K``), its
      soft-min shares ``p_k`` give ``a_k = p_k R_c / h_ck`` and the midpoint closed form
      :meth:`Midpoint._one_cluster`. Any other relevance runs both layers and both rules in turn.

    Cost per chunk: one ``(n, d) x (d, K)`` product forward, two ``(n, K) x (K, d)`` products and one
    multiply-add over ``(n, d)`` backward, and a few passes over ``(n, K)``.
    """

    def __init__(self, pool: Any, pool_rule: Rule, contrast: CentroidContrast, midpoint: Midpoint):
        self.pool, self.pool_rule, self.contrast, self.midpoint = pool, pool_rule, contrast, midpoint

    def forward(self, inputs: Sequence[Tensor]) -> tuple[Tensor, Any]:
        (x,) = inputs
        e = self.contrast.terms(x)
        m1, nearest = e.min(1, keepdim=True)  # the first of tied minima, as the contrast units' minimum takes
        m2 = e.scatter(1, nearest, float("inf")).amin(1, keepdim=True)
        f = torch.sub(m1, e).scatter_(1, nearest, m2 - m1)
        return f, e

    def relevance(self, inputs, output, R, ctx):
        (x,) = inputs
        hint, e = ctx.hint, ctx.forward_state
        if not (isinstance(hint, SingleColumn) and hint.relevance is R) or e is None:
            return self._in_turn(x, output, R, ctx)
        beta = self.pool_rule._stiffness(self.pool)
        col = hint.columns.view(-1, 1)
        h = e - e.gather(1, col)  # row c of the contrast units, bitwise; h_c = 0 is no unit
        # exp(-beta (h - y)) <= 1 off c, y the pool's value (the row's minimum), in two passes
        w = torch.add(beta * output.gather(1, col), h, alpha=-beta).exp_().scatter_(1, col, 0.0)
        a = w.mul_(hint.values.view(-1, 1) / w.sum(1, keepdim=True)).div_(h)
        # 0/0 := 0: a unit on its hyperplane (h = 0, and h_c) has nothing to give (docs/theory.md §1); r / 0 is
        # +-inf or nan exactly there (no finite r / h overflows: h is a difference of two rounded numbers).
        a = a.nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)
        return (Midpoint._one_cluster(self.contrast, x, hint.columns, a),)

    def _in_turn(self, x: Tensor, output: Tensor, R: Tensor, ctx: Context) -> tuple[Tensor | None, ...]:
        """Both layers and both rules one after the other (relevance in several columns of a sample)."""
        h = self.contrast(x)
        upper = Context(target=ctx.target, hint=ctx.hint)
        (r_h,) = self.pool_rule.relevance(self.pool, [h], output, R, upper)
        return self.midpoint.relevance(self.contrast, [x], h, r_h, Context(target=ctx.target, hint=upper.emitted))
