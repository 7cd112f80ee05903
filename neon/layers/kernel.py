"""The RBF SVC as a NEON layer: one log-ratio unit per one-vs-one class pair (THEORY.md section 4).

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

import math
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor, nn

from .distance import squared_distances

#: Elements of the ``(rows, pairs, support vectors)`` intermediates per internal block.
BLOCK_ELEMENTS = 1 << 18


def _pad(rows: Sequence[Tensor], fill: float, dtype: torch.dtype) -> Tensor:
    width = max(1, max(len(r) for r in rows))
    out = torch.full((len(rows), width), fill, dtype=dtype)
    for p, r in enumerate(rows):
        out[p, : len(r)] = r
    return out


class RBFContrast(nn.Module):
    """``g_cc'(x)`` for every class ``c`` and competitor ``c' != c`` of an RBF SVC, shape ``(n, K, K - 1)``.

    ``out[:, c, j] = g_{c, competitors[c, j]}`` with ``g_{c'c} = -g_{cc'}``; the ``j``-th competitor of
    ``c`` is ``competitors[c, j]`` (as in :class:`neon.layers.CentroidContrast`). Binary models are
    the case ``K = 2``.

    Parameters
    ----------
    support_vectors
        ``(n_SV, d)``.
    gamma
        The RBF kernel width ``gamma > 0``.
    pairs
        One entry per class pair ``(a, b)``, ``a < b``, in the order ``(0, 1), (0, 2), ..., (1, 2), ...``:
        ``(pos_index, pos_coef, neg_index, neg_coef, intercept)``, the support vectors of class ``a``
        (coefficients ``> 0``) and of class ``b`` (coefficients ``< 0``) and the intercept, oriented so
        that ``f_ab > 0`` votes for ``a``.
    n_classes
        ``K``.
    """

    def __init__(self, support_vectors: Tensor, gamma: float, pairs: Sequence[tuple[Tensor, Tensor, Tensor, Tensor,
                                                                                   float]], n_classes: int):
        super().__init__()
        sv = torch.as_tensor(support_vectors).detach().clone()
        dtype = sv.dtype
        k = int(n_classes)
        if len(pairs) != k * (k - 1) // 2:
            raise ValueError(f"RBFContrast: {k} classes need {k * (k - 1) // 2} pairs, got {len(pairs)}.")
        if not gamma > 0:
            raise ValueError(f"RBFContrast needs gamma > 0, got {gamma}.")
        self.gamma = float(gamma)
        self.n_classes = k
        self.register_buffer("support_vectors", sv)
        self.register_buffer("sv_sq", (sv * sv).sum(-1))
        pos_idx, pos_log, neg_idx, neg_log, pos_bias, neg_bias = [], [], [], [], [], []
        for p, (pi, pc, ni, nc, b) in enumerate(pairs):
            pi, ni = torch.as_tensor(pi, dtype=torch.long), torch.as_tensor(ni, dtype=torch.long)
            pc, nc = torch.as_tensor(pc, dtype=dtype), torch.as_tensor(nc, dtype=dtype)
            if bool((pc <= 0).any()) or bool((nc >= 0).any()):
                raise ValueError(f"RBFContrast pair {p}: positive-side coefficients must be > 0, negative-side < 0.")
            if (len(pc) == 0 and not b > 0) or (len(nc) == 0 and not b < 0):
                raise ValueError(f"RBFContrast pair {p} has an empty side: its decision function has a constant "
                                 "sign, which no log-ratio can represent.")
            pos_idx.append(pi)
            neg_idx.append(ni)
            pos_log.append(pc.log())
            neg_log.append((-nc).log())
            b = float(b)
            # float64 logs: torch.tensor(float) would round the intercept to float32
            pos_bias.append(math.log(b) if b > 0 else float("-inf"))
            neg_bias.append(math.log(-b) if b < 0 else float("-inf"))
        # Padding: index 0 with log-coefficient -inf, i.e. a term exp(-inf) = 0 that gets zero weight.
        self.register_buffer("pos_index", _pad(pos_idx, 0, torch.long))
        self.register_buffer("neg_index", _pad(neg_idx, 0, torch.long))
        self.register_buffer("pos_log", _pad(pos_log, float("-inf"), dtype))
        self.register_buffer("neg_log", _pad(neg_log, float("-inf"), dtype))
        self.register_buffer("pos_bias", torch.tensor(pos_bias, dtype=dtype))
        self.register_buffer("neg_bias", torch.tensor(neg_bias, dtype=dtype))
        idx = torch.arange(k)
        competitors = torch.stack([torch.cat([idx[:c], idx[c + 1:]]) for c in range(k)])
        pair_id = {}
        for a in range(k):
            for b_ in range(a + 1, k):
                pair_id[(a, b_)] = len(pair_id)
        pair_of = torch.tensor([[pair_id[(min(c, o), max(c, o))] for o in competitors[c].tolist()] for c in range(k)],
                               dtype=torch.long).reshape(k, k - 1)
        sign = torch.tensor([[1.0 if c < o else -1.0 for o in competitors[c].tolist()] for c in range(k)],
                            dtype=dtype).reshape(k, k - 1)
        self.register_buffer("competitors", competitors)
        self.register_buffer("pair_of", pair_of)
        self.register_buffer("sign", sign)

    @property
    def n_pairs(self) -> int:
        return self.pos_index.shape[0]

    def blocks(self, n: int) -> Iterator[slice]:
        """Row blocks that keep the ``(rows, pairs, support vectors)`` intermediates small (memory and cache)."""
        width = self.n_pairs * (self.pos_index.shape[1] + self.neg_index.shape[1] + 2) + self.support_vectors.shape[0]
        step = max(1, BLOCK_ELEMENTS // width)
        for start in range(0, n, step):
            yield slice(start, min(n, start + step))

    def exponents(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``-gamma z`` of every term of every pair, ``(n, P, M+ + 1)`` and ``(n, P, M- + 1)``; the last column
        is the intercept's virtual support vector (``-inf`` where it is on the other side or zero)."""
        d = squared_distances(x, self.support_vectors, self.sv_sq)
        n = x.shape[0]
        up = torch.cat([-self.gamma * d[:, self.pos_index] + self.pos_log, self.pos_bias.expand(n, -1)[..., None]], -1)
        un = torch.cat([-self.gamma * d[:, self.neg_index] + self.neg_log, self.neg_bias.expand(n, -1)[..., None]], -1)
        return up, un

    def log_sums(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``log S+`` and ``log S-`` per pair, ``(n, P)``: ``exp(log S+) - exp(log S-)`` is libsvm's decision."""
        outs = [(torch.logsumexp(up, -1), torch.logsumexp(un, -1))
                for up, un in (self.exponents(x[s]) for s in self.blocks(x.shape[0]))]
        if not outs:
            empty = x.new_zeros((0, self.n_pairs))
            return empty, empty
        return torch.cat([o[0] for o in outs]), torch.cat([o[1] for o in outs])

    def pair_values(self, x: Tensor) -> Tensor:
        """``g_ab(x)`` per pair ``(a < b)``, ``(n, P)``."""
        lp, ln = self.log_sums(x)
        return lp - ln

    def orient(self, g: Tensor) -> Tensor:
        """Pair values ``(n, P)`` as the oriented ``(n, K, K - 1)`` layout."""
        return g[:, self.pair_of] * self.sign

    def forward(self, x: Tensor) -> Tensor:
        return self.orient(self.pair_values(x))

    def default_rule(self):  # noqa: ANN201 - avoids importing the rules package in the layers package
        from ..rules.svc import SVCHybrid

        return SVCHybrid()

    def extra_repr(self) -> str:
        return (f"support_vectors={tuple(self.support_vectors.shape)}, gamma={self.gamma:.4g}, "
                f"classes={self.n_classes}")
