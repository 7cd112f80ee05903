"""The RBF SVC as a NEON layer: one log-ratio unit per one-vs-one class pair (docs/theory.md §4).

Bley, Kauffmann, Krug, Müller, Montavon, "Fast and accurate explanations of distance-based
classifiers" (2025). For a class pair ``(a, b)`` the libsvm decision function is
``f_ab(x) = sum_i |alpha_i| k(x, x_i) - sum_j |alpha_j| k(x, x_j) + b_ab`` with ``k(x, x') =
exp(-gamma ||x - x'||^2)``, the ``i`` running over the support vectors of class ``a`` and the
``j`` over those of class ``b``. With ``z_i = ||x - x_i||^2 - log|alpha_i| / gamma`` each kernel
term is ``exp(-gamma z_i)``, and

``g_ab(x) = logsumexp_i(-gamma z_i) - logsumexp_j(-gamma z_j)``

has the sign of ``f_ab`` everywhere. The intercept is a *virtual support vector*: a constant
term ``exp(log |b_ab|)`` inside the log-sum-exp of class ``a`` when ``b_ab > 0`` and of class
``b`` when ``b_ab < 0``. It has no position, so it enters the soft-min weights but no distance.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor, nn

from .distance import squared_distances
from .pairs import class_pairs, competitors, oriented_pairs

#: Elements of the ``(rows, support vectors)`` intermediates per internal row block (memory and cache).
BLOCK_ELEMENTS = 1 << 17

#: Scaled kernel sums below this are recomputed exactly (underflow of every term of one side).
_TINY = 1e-280


class RBFContrast(nn.Module):
    """``g_cc'(x)`` for every class ``c`` and competitor ``c' != c`` of an RBF SVC, shape ``(n, K, K - 1)``.

    ``out[:, c, j] = g_{c, competitors[c, j]}`` with ``g_{c'c} = -g_{cc'}``; the ``j``-th competitor of
    ``c`` is ``competitors[c, j]`` (as in :class:`neon.layers.CentroidContrast`). Binary models are
    the case ``K = 2``.

    Evaluation (no ``n x n_SV x d`` and no ``n x pairs x n_SV`` tensor): the distances
    ``||x||^2 - 2 x.x_i + ||x_i||^2`` by one matrix product (in coordinates centred on the support
    vectors' mean), ``E_i = exp(-gamma d_i - m_c(i))`` scaled by
    the row maximum ``m_c`` of each class, then every pair's kernel sums at once as ``E @ |coef|``
    (``log S = log(E @ |coef|) + m_c``, the intercept added by ``logaddexp``). Rows where a scaled sum
    underflows (all of one side's support vectors ``> ~700 / gamma`` squared units further than its
    class's nearest one) are recomputed pair by pair with ``logsumexp``.

    Parameters
    ----------
    support_vectors
        ``(n_SV, d)``, grouped by class (as sklearn stores them).
    gamma
        The RBF kernel width ``gamma > 0``.
    pos_coef, neg_coef
        ``(n_SV, P)``, ``P = K (K - 1) / 2`` pairs ``(a, b)``, ``a < b``, in the order ``(0, 1), (0, 2), ...,
        (1, 2), ...``: ``|alpha|`` of the support vectors of class ``a`` (``pos_coef``) and of class ``b``
        (``neg_coef``) in that pair's decision function, zero elsewhere.
    intercept
        ``(P,)``, oriented so that ``f_ab > 0`` votes for ``a``.
    sv_class
        ``(n_SV,)`` class index of each support vector.
    n_classes
        ``K``.
    """

    support_vectors: Tensor
    center: Tensor
    sv_centered: Tensor
    sv_sq: Tensor
    sv_class: Tensor
    pos_coef: Tensor
    neg_coef: Tensor
    pair_a: Tensor
    pair_b: Tensor
    pos_bias: Tensor
    neg_bias: Tensor
    has_pos: Tensor
    has_neg: Tensor
    competitors: Tensor
    pair_of: Tensor
    sign: Tensor

    def __init__(self, support_vectors: Tensor, gamma: float, pos_coef: Tensor, neg_coef: Tensor,
                 intercept: Tensor, sv_class: Tensor, n_classes: int):
        super().__init__()
        sv = torch.as_tensor(support_vectors).detach().clone()
        dtype = sv.dtype
        k = int(n_classes)
        n_pairs = k * (k - 1) // 2
        pos_coef = torch.as_tensor(pos_coef, dtype=dtype).detach().clone()
        neg_coef = torch.as_tensor(neg_coef, dtype=dtype).detach().clone()
        intercept = torch.as_tensor(intercept, dtype=torch.float64).reshape(-1)
        sv_class = torch.as_tensor(sv_class, dtype=torch.long).reshape(-1)
        if not gamma > 0:
            raise ValueError(f"RBFContrast needs gamma > 0, got {gamma}.")
        if pos_coef.shape != (len(sv), n_pairs) or neg_coef.shape != (len(sv), n_pairs) or len(intercept) != n_pairs:
            raise ValueError(f"RBFContrast: {k} classes and {len(sv)} support vectors need coefficient matrices of "
                             f"shape ({len(sv)}, {n_pairs}) and {n_pairs} intercepts.")
        if bool((pos_coef < 0).any()) or bool((neg_coef < 0).any()):
            raise ValueError("RBFContrast: pos_coef and neg_coef hold absolute values |alpha| >= 0.")
        if len(sv_class) != len(sv) or bool((sv_class[1:] < sv_class[:-1]).any()):
            raise ValueError("RBFContrast: support vectors must be grouped by class, in class order.")
        has_pos, has_neg = (pos_coef > 0).any(0), (neg_coef > 0).any(0)
        empty = (~has_pos & ~(intercept > 0)) | (~has_neg & ~(intercept < 0))
        if bool(empty.any()):
            raise ValueError(f"RBFContrast pairs {empty.nonzero().flatten().tolist()} have an empty side: the decision "
                             "function has a constant sign there, which no log-ratio can represent.")
        pairs = class_pairs(k)
        pair_a = torch.tensor([a for a, _ in pairs], dtype=torch.long)
        pair_b = torch.tensor([b for _, b in pairs], dtype=torch.long)
        for p, (a, b) in enumerate(pairs):
            if bool((pos_coef[sv_class != a, p] != 0).any()) or bool((neg_coef[sv_class != b, p] != 0).any()):
                raise ValueError(f"RBFContrast pair {p} = ({a}, {b}): coefficients outside the classes of the pair.")
        self.gamma = float(gamma)
        self.n_classes = k
        counts = torch.bincount(sv_class, minlength=k)
        starts = torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)])
        self.class_slices = [(int(starts[c]), int(starts[c + 1])) for c in range(k)]
        self.register_buffer("support_vectors", sv)
        # Distances in coordinates centred on the support vectors' mean: the expansion
        # ||x||^2 - 2 x.x_i + ||x_i||^2 then stays accurate for data far from the origin.
        self.register_buffer("center", sv.mean(0) if len(sv) else torch.zeros(sv.shape[1], dtype=dtype))
        self.register_buffer("sv_centered", sv - self.center)
        self.register_buffer("sv_sq", (self.sv_centered * self.sv_centered).sum(-1))
        self.register_buffer("sv_class", sv_class)
        self.register_buffer("pos_coef", pos_coef)
        self.register_buffer("neg_coef", neg_coef)
        self.register_buffer("pair_a", pair_a)
        self.register_buffer("pair_b", pair_b)
        # float64 logs: torch.tensor(float) would round the intercept to float32
        self.register_buffer("pos_bias", torch.where(intercept > 0, intercept.abs().log(), float("-inf")).to(dtype))
        self.register_buffer("neg_bias", torch.where(intercept < 0, intercept.abs().log(), float("-inf")).to(dtype))
        self.register_buffer("has_pos", has_pos)
        self.register_buffer("has_neg", has_neg)
        pair_of, sign = oriented_pairs(k)
        self.register_buffer("competitors", competitors(k))
        self.register_buffer("pair_of", pair_of)
        self.register_buffer("sign", sign.to(dtype))

    @property
    def n_pairs(self) -> int:
        return self.pos_coef.shape[1]

    def blocks(self, n: int) -> Iterator[slice]:
        """Row blocks that keep the ``(rows, support vectors)`` intermediates small (memory and cache)."""
        step = max(1, BLOCK_ELEMENTS // max(1, self.support_vectors.shape[0] + self.support_vectors.shape[1]))
        for start in range(0, n, step):
            yield slice(start, min(n, start + step))

    # ------------------------------------------------------------------ evaluation on one row block
    def _scaled(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
        """``E`` (n, n_SV) scaled per class, ``log S+``, ``log S-`` (n, P), the scales ``exp(m - log S)`` of
        both sides (n, P), and the rows that need the exact path."""
        v = -self.gamma * squared_distances(x - self.center, self.sv_centered, self.sv_sq)
        m = torch.stack([v[:, s:e].amax(1) if e > s else v.new_full((len(v),), float("-inf"))
                         for s, e in self.class_slices], 1)
        e_ = torch.exp(v - m[:, self.sv_class])
        tp, tn = e_ @ self.pos_coef, e_ @ self.neg_coef
        mp, mn = m[:, self.pair_a], m[:, self.pair_b]
        lp = torch.logaddexp(tp.log() + mp, self.pos_bias)
        ln = torch.logaddexp(tn.log() + mn, self.neg_bias)
        bad = ((tp < _TINY) & self.has_pos).any(1) | ((tn < _TINY) & self.has_neg).any(1)
        return e_, lp, ln, torch.exp(mp - lp), torch.exp(mn - ln), bad

    def _exact_side(self, v: Tensor, coef: Tensor, bias: Tensor, cls: Tensor) -> list[tuple[int, Tensor, Tensor]]:
        """Per pair: the class's column range start, ``log S`` and the soft-min weights of its support vectors."""
        out = []
        for p in range(self.n_pairs):
            s, e = self.class_slices[int(cls[p])]
            u = torch.cat([v[:, s:e] + coef[s:e, p].log(), bias[p].expand(len(v), 1)], 1)
            lse = torch.logsumexp(u, 1)
            out.append((s, lse, torch.exp(u[:, :-1] - lse[:, None])))
        return out

    def _exact(self, x: Tensor) -> tuple[list, list]:
        v = -self.gamma * squared_distances(x - self.center, self.sv_centered, self.sv_sq)
        return (self._exact_side(v, self.pos_coef, self.pos_bias, self.pair_a),
                self._exact_side(v, self.neg_coef, self.neg_bias, self.pair_b))

    def _log_sums_block(self, x: Tensor) -> tuple[Tensor, Tensor]:
        _, lp, ln, _, _, bad = self._scaled(x)
        if bool(bad.any()):
            pos, neg = self._exact(x[bad])
            lp[bad] = torch.stack([t[1] for t in pos], 1)
            ln[bad] = torch.stack([t[1] for t in neg], 1)
        return lp, ln

    def net_weights(self, x: Tensor, s: Tensor) -> Tensor:
        """``omega_i = sum_p s_p (p-_pi - p+_pi)`` per support vector, ``(n, n_SV)``, for pair factors ``s`` (n, P).

        ``p+-`` are the soft-min weights (``beta = gamma``) of each side of each pair, the intercept's
        virtual support vector counted in the normalisation; by construction ``omega`` has no column for it.
        """
        e_, _, _, wp, wn, bad = self._scaled(x)
        omega = e_ * ((s * wn) @ self.neg_coef.T - (s * wp) @ self.pos_coef.T)
        if bool(bad.any()):
            pos, neg = self._exact(x[bad])
            sb = s[bad]
            ob = torch.zeros_like(omega[bad])
            for p, ((sp_, _, w_p), (sn_, _, w_n)) in enumerate(zip(pos, neg)):
                ob[:, sp_:sp_ + w_p.shape[1]] -= sb[:, p:p + 1] * w_p
                ob[:, sn_:sn_ + w_n.shape[1]] += sb[:, p:p + 1] * w_n
            omega[bad] = ob
        return omega

    # ------------------------------------------------------------------ public
    def log_sums(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``log S+`` and ``log S-`` per pair, ``(n, P)``: ``exp(log S+) - exp(log S-)`` is libsvm's decision."""
        outs = [self._log_sums_block(x[b]) for b in self.blocks(x.shape[0])]
        if not outs:
            empty = x.new_zeros((0, self.n_pairs))
            return empty, empty
        return torch.cat([o[0] for o in outs]), torch.cat([o[1] for o in outs])

    def pair_values(self, x: Tensor) -> Tensor:
        """``g_ab(x)`` per pair ``(a < b)``, ``(n, P)``."""
        lp, ln = self.log_sums(x)
        return lp - ln

    def decision(self, x: Tensor) -> Tensor:
        """libsvm's pairwise decision functions ``S+ - S-`` per pair ``(a < b)``, ``(n, P)``."""
        lp, ln = self.log_sums(x)
        return lp.exp() - ln.exp()

    def orient(self, g: Tensor) -> Tensor:
        """Pair values ``(n, P)`` as the oriented ``(n, K, K - 1)`` layout."""
        return g[:, self.pair_of] * self.sign

    def forward(self, x: Tensor) -> Tensor:
        return self.orient(self.pair_values(x))

    def extra_repr(self) -> str:
        return (f"support_vectors={tuple(self.support_vectors.shape)}, gamma={self.gamma:.4g}, "
                f"classes={self.n_classes}")
