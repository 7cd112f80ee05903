"""The one-vs-one layout shared by the SVC layers and converters.

libsvm orders the class pairs ``(a, b)``, ``a < b``, as ``(0, 1), (0, 2), ..., (1, 2), ...``. neon's
pair layers output, for every class ``c``, one unit per competitor ``c' != c`` (ascending), shape
``(K, K - 1)``: the unit is pair ``(min(c, c'), max(c, c'))``, with sign ``+1`` when ``c < c'`` (the
pair's decision function votes for ``c`` when positive) and ``-1`` otherwise.
"""

from __future__ import annotations

import torch
from torch import Tensor


def class_pairs(k: int) -> list[tuple[int, int]]:
    """The ``K (K - 1) / 2`` pairs ``(a, b)``, ``a < b``, in libsvm's order."""
    return [(a, b) for a in range(k) for b in range(a + 1, k)]


def competitors(k: int) -> Tensor:
    """``(K, K - 1)``: the competitors ``c' != c`` of every class ``c``, ascending."""
    idx = torch.arange(k)
    return torch.stack([torch.cat([idx[:c], idx[c + 1:]]) for c in range(k)]) if k > 1 else idx.new_zeros((k, 0))


def oriented_pairs(k: int) -> tuple[Tensor, Tensor]:
    """``(pair_of, sign)``, both ``(K, K - 1)``: the pair index of unit ``(c, j)`` and its orientation ``+-1``."""
    index = {ab: p for p, ab in enumerate(class_pairs(k))}
    comp = competitors(k).tolist()
    pair_of = torch.tensor([[index[(min(c, o), max(c, o))] for o in comp[c]] for c in range(k)], dtype=torch.long)
    sign = torch.tensor([[1.0 if c < o else -1.0 for o in comp[c]] for c in range(k)], dtype=torch.float64)
    return pair_of.reshape(k, k - 1), sign.reshape(k, k - 1)


def ovo_votes(oriented: Tensor) -> Tensor:
    """libsvm's one-vs-one votes ``(n, K)`` from oriented pair values ``(n, K, K - 1)`` (decision functions or
    anything of their sign).

    Pair ``(a, b)``, ``a < b``, votes for ``a`` when its value is ``> 0`` and for ``b`` otherwise (a zero goes to
    ``b``, as libsvm's ``svm_predict`` counts). ``argmax`` of the votes (the first of tied classes) is libsvm's
    prediction.
    """
    k = oriented.shape[1]
    first = (torch.arange(k, device=oriented.device).view(k, 1) < competitors(k).to(oriented.device))
    return torch.where(first, oriented > 0, oriented >= 0).sum(-1)


def ovr_decision(oriented: Tensor) -> Tensor:
    """scikit-learn's one-vs-rest decision ``(n, K)`` from oriented one-vs-one decision values ``(n, K, K - 1)``.

    ``votes + conf / (3 (|conf| + 1))`` with ``conf_c`` the sum of class ``c``'s oriented decision values, and a
    pair's zero counted for its first class (``sklearn.utils.multiclass._ovr_decision_function``): what
    ``SVC(break_ties=True).predict`` takes the arg-max of.
    """
    k = oriented.shape[1]
    first = (torch.arange(k, device=oriented.device).view(k, 1) < competitors(k).to(oriented.device))
    votes = torch.where(first, oriented >= 0, oriented > 0).sum(-1).to(oriented.dtype)
    conf = oriented.sum(-1)
    return votes + conf / (3.0 * (conf.abs() + 1.0))
