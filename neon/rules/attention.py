"""Rules of attention: products of activations and the softmax (AttnLRP and CP-LRP, ``docs/theory.md §7``).

- :class:`Uniform`: a product of activations (``a * b``, ``Q K^T``, attention weights times values): the
  epsilon rule over the sum of the product terms, each term split evenly among its activation factors
  (Achtibat et al., "AttnLRP: Attention-aware Layer-wise Relevance Propagation for Transformers", ICML 2024,
  the uniform rule, Eq. 7 of the paper).
- :class:`SoftmaxTaylor`: AttnLRP's softmax rule, ``R_x = x (R_s - s sum R_s)`` (the Taylor decomposition at
  the zero point).
- :class:`HoldConstant`: CP-LRP (Ali et al., "XAI for Transformers: Better Explanations through Conservative
  Propagation", ICML 2022): the attention weights are held constant, so relevance flows through the values
  only, by the epsilon rule of the fixed linear map ``O = A V``.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from .._numeric import safe_divide
from ..exceptions import RuleError
from .base import Context, Rule, vjp

_MATMUL = (operator.matmul, torch.matmul, "matmul", torch.bmm, "bmm")
_ELEMENTWISE = (operator.mul, operator.imul, torch.mul, "mul", "mul_")


class Uniform(Rule):
    """AttnLRP's uniform rule for a product of ``N`` activations (Achtibat et al., ICML 2024).

    For ``O = f(A_1, ..., A_N)`` multilinear in its factors (an element-wise product, a matrix product,
    an ``einsum``), every product term ``t`` of an output ``O_k = sum_t prod_n A_n[t]`` takes the share
    ``t / stab(O_k)`` of ``R_k`` (the epsilon rule over the sum), split evenly among its ``N`` factors:

    ``R_{A_n} = A_n * J_n^T (R / stab(O)) / N``,

    with ``J_n`` the Jacobian of ``O`` in ``A_n`` (``A_n J_n`` sums the terms ``A_n`` takes part in). For
    ``O = A B``: ``R_A = A * (s B^T) / 2``, ``R_B = B * (A^T s) / 2`` with ``s = R / stab(O)``. An element-wise
    gate ``a * act(b)`` gives each factor ``R / 2`` (up to the stabiliser). Factors that are constants of the
    network (a weight, a mask) are no factors: with a single activation factor the rule is the epsilon rule
    of a linear map. Factors held constant by a rule below (CP-LRP's attention weights,
    :attr:`Context.constant_inputs`) count as constants, so ``O = A V`` with ``A`` held gives all of ``R`` to
    ``V`` by the epsilon rule.

    Parameters
    ----------
    epsilon
        The stabiliser of ``O`` (sign-matched, ``docs/theory.md §1``); ``0`` divides exactly (``0/0 := 0``).
    """

    name = "uniform"
    zero_preserving = True

    def __init__(self, epsilon: float = 1e-6):
        if epsilon < 0:
            raise RuleError(f"Uniform needs epsilon >= 0, got {epsilon}.")
        self.epsilon = float(epsilon)

    def _params(self) -> dict[str, Any]:
        return {"epsilon": self.epsilon}

    def relevance(self, op: Callable[..., Tensor], inputs: Sequence[Tensor], output: Tensor, R: Tensor,
                  ctx: Context) -> tuple[Tensor | None, ...]:
        held = ctx.constant_inputs or (False,) * len(inputs)
        free = [i for i, h in enumerate(held) if not h]
        if not free:
            return (None,) * len(inputs)
        n = float(len(free))
        s = safe_divide(R, output, self.epsilon)
        target = getattr(op, "target", None)
        grads: list[Tensor | None]
        if target in _ELEMENTWISE and len(inputs) == 2 and all(t.shape == output.shape for t in inputs):
            share = s.mul_(output).div_(n)  # each factor: R O / stab(O) / N, no second product needed
            if len(free) == 2:
                return share, share.clone()
            return tuple(share if i in free else None for i in range(2))
        if target in _MATMUL and len(inputs) == 2 and _same_batch(*inputs):
            a, b = inputs
            grads = [s @ b.transpose(-1, -2) if 0 in free else None, a.transpose(-1, -2) @ s if 1 in free else None]
        else:
            fixed = list(inputs)

            def of_free(*values: Tensor) -> Tensor:
                for i, v in zip(free, values):
                    fixed[i] = v
                return op(*fixed)

            got = vjp(of_free, [inputs[i] for i in free], s)
            grads = [None] * len(inputs)
            for i, g in zip(free, got):
                grads[i] = g
        return tuple(None if g is None else g.mul_(x).div_(n) for x, g in zip(inputs, grads))


def _same_batch(a: Tensor, b: Tensor) -> bool:
    """A matrix product without broadcasting over batch axes (its transposed products need no reduction)."""
    return a.dim() >= 2 and a.dim() == b.dim() and a.shape[:-2] == b.shape[:-2]


class SoftmaxTaylor(Rule):
    """AttnLRP's softmax rule: ``R_x = x (R_s - s sum_j R_s_j)`` (Achtibat et al., ICML 2024, Eq. 9-10).

    The first-order Taylor decomposition of ``s = softmax(x)`` at ``x = 0`` (deep Taylor, the zero point):
    each input takes ``x_i`` times the gradient of the relevance-weighted outputs. It is not conservative: the
    Taylor remainder (the "bias" of the softmax) is absorbed and reported by the explanation. Masked inputs
    (``x = -inf``, ``s = 0``) receive nothing.
    """

    name = "softmax-taylor"

    def relevance(self, op: Any, inputs: Sequence[Tensor], output: Tensor, R: Tensor,
                  ctx: Context) -> tuple[Tensor | None, ...]:
        if len(inputs) != 1:
            raise RuleError("SoftmaxTaylor applies to a softmax of one tensor.")
        (x,) = inputs
        dim = _softmax_dim(op)
        if dim is not None:
            inner = R - output * R.sum(dim=dim, keepdim=True)
        else:  # any other softmax callable: s (g - <s, g>) with g = R / s is the same
            grad = vjp(op, [x], safe_divide(R, output, 0.0))[0]
            assert grad is not None
            inner = grad
        r = x * inner
        return (torch.where(torch.isfinite(x), r, torch.zeros_like(r)),)


def _softmax_dim(op: Any) -> int | None:
    dim = getattr(op, "dim", None)
    if isinstance(dim, int):
        return dim  # nn.Softmax
    kwargs = getattr(op, "kwargs", None) or {}
    dim = kwargs.get("dim")
    return dim if isinstance(dim, int) else None


class HoldConstant(Rule):
    """CP-LRP: the node's output is held constant (Ali et al., ICML 2022; LXT's ``stop_gradient``).

    Put on the softmax of an attention layer, the attention weights ``A`` become a fixed parameter: no
    relevance flows through the softmax into the queries and keys, and the product ``O = A V`` passes all of
    its relevance to the values by the epsilon rule of the fixed linear map (:class:`Uniform` sees ``A`` as a
    constant). Relevance is conserved through the attention block.
    """

    name = "hold-constant"
    detaches = True

    def relevance(self, op: Any, inputs: Sequence[Tensor], output: Tensor, R: Tensor,
                  ctx: Context) -> tuple[Tensor | None, ...]:
        return (None,) * len(inputs)
