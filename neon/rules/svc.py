"""Rules for the RBF SVC layer (:class:`neon.layers.RBFContrast`): midpoint, gradient x input, hybrid.

Bley, Kauffmann, Krug, Müller, Montavon, "Fast and accurate explanations of distance-based
classifiers" (2025); docs/theory.md §4. For one class pair with soft-min weights ``p+`` over the
terms of the positive side and ``p-`` over the negative side (``beta = gamma``, the intercept's
virtual support vector included in the normalisation but contributing no distance), the pair's
value ``g`` is decomposed over the input features ``d`` as

- midpoint:          ``m_d = gamma (sum_j p_j- (x_d - x_jd)^2 - sum_i p_i+ (x_d - x_id)^2)``
- gradient x input:  ``m_d = x_d [grad g(x)]_d = gamma x_d 2 (sum_i p_i+ x_id - sum_j p_j- x_jd + (P- - P+) x_d)``
- hybrid (default):  ``(1 - eta) GI + eta midpoint``

with ``P+-`` the real support vectors' total shares of each side. The authors' code places the intercept's
virtual support vector at ``x`` itself, so its share enters the weighted means; that is exactly the
gradient of ``g``. The short form without the ``(P- - P+) x_d`` term is wrong whenever the intercept's share
is not negligible.

docs/theory.md writes these for ``g / gamma``; neon multiplies by ``gamma`` so that relevance and the
explained value ``g`` (a log-ratio of kernel sums) have the same units. The midpoint sum is exactly
``g - B`` with ``B = sum_i p_i+ log|alpha_i| - sum_j p_j- log|alpha_j| + H(p+) - H(p-)`` (``H`` the
entropy, the virtual support vector counted with ``log|b|``): what the log-coefficients and the
soft-min take. A pair unit with incoming relevance ``R`` and value ``g`` passes on ``(R / g) m_d``
(``0 / 0 := 0``), so for a binary model (``R = g``) the relevance is exactly ``m``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from .._numeric import safe_divide
from ..exceptions import RuleError
from ..layers.kernel import RBFContrast
from .base import Context, Rule

#: At most this many fit rows enter the median pairwise distance of the eta heuristic.
ETA_FIT_ROWS = 1000


def median_squared_distance(x: Tensor, max_rows: int = ETA_FIT_ROWS) -> float:
    """Median of ``||x_i - x_j||^2`` over pairs ``i < j`` of (at most ``max_rows`` evenly spaced) rows."""
    x = x.reshape(len(x), -1)
    if len(x) < 2:
        raise RuleError("the SVC eta heuristic needs at least 2 fit samples for a median pairwise distance.")
    if len(x) > max_rows:
        x = x[torch.linspace(0, len(x) - 1, max_rows, device=x.device).round().long()]
    sq = (x * x).sum(-1)
    d = (sq[:, None] - 2.0 * (x @ x.T) + sq[None, :]).clamp_min(0.0)
    iu = torch.triu_indices(len(x), len(x), offset=1, device=x.device)
    return float(d[iu[0], iu[1]].median())


def eta_from_gamma(gamma_prime: float) -> float:
    """The authors' heuristic on the normalised kernel width ``gamma'`` (``compute_heuristic_eta_svm``, Bley et al.).

    ``eta = 0`` if ``log10 gamma' < -0.5``, ``1`` if ``log10 gamma' > 1.5``, else ``round(0.4 log10 gamma' + 0.4, 2)``.
    """
    if gamma_prime <= 0:
        return 0.0
    log_gamma = math.log10(gamma_prime)
    if log_gamma < -0.5:
        return 0.0
    if log_gamma > 1.5:
        return 1.0
    return round(0.4 * log_gamma + 0.4, 2)


def eta_heuristic(gamma: float, x: Tensor) -> float:
    """:func:`eta_from_gamma` of ``gamma' = gamma * median ||x_i - x_j||^2`` over the fit data ``x``.

    ``gamma'`` is the kernel width after rescaling the data so that the median pairwise squared
    distance is 1: a wide kernel (``gamma'`` small, nearly linear model) favours gradient x input, a
    narrow one (``gamma' > 10^1.5``) the midpoint rule.
    """
    return eta_from_gamma(gamma * median_squared_distance(x))


class SVCHybrid(Rule):
    """``(1 - eta) GI + eta midpoint`` for an RBF SVC pair layer (Bley et al. 2025).

    Parameters
    ----------
    eta
        In ``[0, 1]``, or ``"auto"``: the heuristic :func:`eta_heuristic` on the fit data, fixed by
        :meth:`neon.Explainer.fit`.
    """

    name = "svc-hybrid"

    def __init__(self, eta: float | str = "auto"):
        if isinstance(eta, str):
            if eta != "auto":
                raise RuleError(f"{type(self).__name__}(eta={eta!r}): use a number in [0, 1] or 'auto'.")
        elif not 0.0 <= float(eta) <= 1.0:
            raise RuleError(f"{type(self).__name__} needs 0 <= eta <= 1, got {eta}.")
        else:
            eta = float(eta)
        self.eta = eta

    def _params(self) -> dict[str, Any]:
        return {"eta": self.eta}

    def supports(self, op: Any) -> bool:
        return isinstance(op, RBFContrast)

    @property
    def needs_fit(self) -> bool:
        return self.eta == "auto"

    def fit(self, op: Any, inputs: Sequence[Tensor], output: Tensor, ctx: Context) -> Rule:
        if self.eta != "auto":
            return self
        return self._replace(eta=eta_heuristic(op.gamma, inputs[0]))

    def relevance(self, op, inputs, output, R, ctx):
        if self.needs_fit:
            raise RuleError(f"{type(self).__name__}(eta='auto') must be fitted on data first (Explainer.fit).")
        (x,) = inputs
        # Per pair: s_p = sum over both orientations of R / value (the oriented contributions flip with the value).
        ratio = (safe_divide(R, output) * op.sign).reshape(len(x), -1)
        s = x.new_zeros((len(x), op.n_pairs)).scatter_add_(1, op.pair_of.reshape(1, -1).expand(len(x), -1), ratio)
        out = torch.empty_like(x)
        for b in op.blocks(len(x)):
            out[b] = self._decompose(op, x[b], s[b])
        return (out,)

    def _decompose(self, op: RBFContrast, x: Tensor, s: Tensor) -> Tensor:
        # omega_k = sum_p s_p (p-_pk - p+_pk): the net weight of support vector k over all pairs, so that
        # midpoint = sum_k omega_k (x - x_k)^2 = x^2 sum(omega) - 2 x (omega SV) + omega SV^2 and
        # GI = 2 x (sum(omega) x - omega SV), without an n x n_SV x d tensor. sum_k omega_k = sum_p s_p (P-_p - P+_p)
        # is the intercept's term of the gradient (zero when the virtual support vector has no share).
        omega = op.net_weights(x, s)
        total = omega.sum(-1, keepdim=True)
        cross = omega @ op.sv_centered  # omega @ SV in centred coordinates (accurate for uncentred data)
        xc = x - op.center
        gi = 2.0 * x * (total * xc - cross)
        eta = float(self.eta)
        if eta == 0:
            return op.gamma * gi
        mid = xc * xc * total - 2.0 * xc * cross + omega @ (op.sv_centered * op.sv_centered)
        return op.gamma * ((1.0 - eta) * gi + eta * mid)


class SVCMidpoint(SVCHybrid):
    """Midpoint rule for an RBF SVC pair layer: :class:`SVCHybrid` with ``eta = 1`` (Bley et al. 2025).

    ``R_d = gamma (sum_j p_j- (x_d - x_jd)^2 - sum_i p_i+ (x_d - x_id)^2)``; sums to ``g - B`` (module docstring).
    """

    name = "svc-midpoint"

    def __init__(self) -> None:
        super().__init__(eta=1.0)

    def _params(self) -> dict[str, Any]:
        return {}


class SVCGradientInput(SVCHybrid):
    """Gradient x input for an RBF SVC pair layer: :class:`SVCHybrid` with ``eta = 0`` (Bley et al. 2025).

    ``R = x * grad g(x) = gamma x 2 (sum_i p_i+ x_i - sum_j p_j- x_j + (P- - P+) x)`` per pair, the intercept
    included (``P+-`` the real support vectors' total shares): the authors' rule with ``with_intercept=True``.
    """

    name = "svc-gradient-x-input"

    def __init__(self) -> None:
        super().__init__(eta=0.0)

    def _params(self) -> dict[str, Any]:
        return {}
