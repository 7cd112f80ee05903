"""The transformer rules against dense references written from docs/theory.md §7 (float64).

Each reference spells the rule out term by term (the contribution tensor of a product, the Jacobian of a
softmax, the explicit matrix of a LayerNorm with its statistics fixed); nothing is shared with neon.
"""

from __future__ import annotations

import operator

import pytest
import torch
from torch import nn

import neon
from neon.rules import Context, EmbeddingSum, HoldConstant, Normalization, SoftmaxTaylor, Uniform

torch.manual_seed(0)


def stab(z: torch.Tensor, eps: float) -> torch.Tensor:
    return z + eps * torch.where(z >= 0, 1.0, -1.0).to(z.dtype)


class Op:
    """A function node as the engine hands it to a rule: callable of its tensors, with ``target`` and ``kwargs``."""

    def __init__(self, fn, target, **kwargs):
        self.fn, self.target, self.kwargs = fn, target, kwargs

    def __call__(self, *xs):
        return self.fn(*xs)


def ctx(n: int, held=None) -> Context:
    return Context(target=torch.zeros(n, dtype=torch.long), constant_inputs=held)


@pytest.mark.parametrize("eps", [0.0, 1e-3])
def test_uniform_on_a_matrix_product_splits_every_term_half_and_half(eps):
    A = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    B = torch.randn(2, 3, 5, 6, dtype=torch.float64)
    O = A @ B
    R = torch.randn_like(O)
    got_a, got_b = Uniform(eps).relevance(Op(torch.matmul, torch.matmul), [A, B], O, R, ctx(2))
    terms = A[..., :, :, None] * B[..., None, :, :]  # (.., j, p, i): A_jp B_pi
    share = terms / stab(O, eps)[..., :, None, :] * R[..., :, None, :]
    torch.testing.assert_close(got_a, 0.5 * share.sum(-1))
    torch.testing.assert_close(got_b, 0.5 * share.sum(-3))
    if eps == 0:  # exactly conservative: every term is handed on whole
        torch.testing.assert_close(got_a.sum() + got_b.sum(), R.sum())


def test_uniform_with_a_factor_held_constant_is_the_epsilon_rule_of_the_fixed_map():
    A = torch.softmax(torch.randn(2, 4, 4, dtype=torch.float64), -1)
    V = torch.randn(2, 4, 3, dtype=torch.float64)
    O = A @ V
    R = torch.randn_like(O)
    got_a, got_v = Uniform(0.0).relevance(Op(torch.matmul, torch.matmul), [A, V], O, R, ctx(2, (True, False)))
    assert got_a is None
    want = (A[..., :, :, None] * V[..., None, :, :] / O[..., :, None, :] * R[..., :, None, :]).sum(-3)
    torch.testing.assert_close(got_v, want)
    torch.testing.assert_close(got_v.sum(), R.sum())


def test_uniform_on_a_gate_gives_each_factor_half_and_handles_broadcasting():
    a, b = torch.randn(3, 5, dtype=torch.float64), torch.randn(3, 5, dtype=torch.float64)
    R = torch.randn(3, 5, dtype=torch.float64)
    ra, rb = Uniform(1e-6).relevance(Op(operator.mul, operator.mul), [a, b], a * b, R, ctx(3))
    half = 0.5 * R * (a * b) / stab(a * b, 1e-6)
    torch.testing.assert_close(ra, half)
    torch.testing.assert_close(rb, half)
    c = torch.randn(3, 1, dtype=torch.float64)  # one gate value per row: its relevance sums over the row
    rc_a, rc_c = Uniform(0.0).relevance(Op(operator.mul, operator.mul), [a, c], a * c, R, ctx(3))
    torch.testing.assert_close(rc_a, 0.5 * R)
    torch.testing.assert_close(rc_c, 0.5 * R.sum(1, keepdim=True))


def test_uniform_on_a_three_factor_einsum_splits_in_thirds():
    A, B, C = (torch.randn(2, 3, 4, dtype=torch.float64), torch.randn(2, 4, 5, dtype=torch.float64),
               torch.randn(2, 5, 2, dtype=torch.float64))
    fn = lambda a, b, c: torch.einsum("nij,njk,nkl->nil", a, b, c)  # noqa: E731
    O = fn(A, B, C)
    R = torch.randn_like(O)
    ra, rb, rc = Uniform(0.0).relevance(Op(fn, torch.einsum), [A, B, C], O, R, ctx(2))
    terms = torch.einsum("nij,njk,nkl->nijkl", A, B, C) / O[:, :, None, None, :] * R[:, :, None, None, :]
    torch.testing.assert_close(ra, terms.sum((3, 4)) / 3)
    torch.testing.assert_close(rb, terms.sum((1, 4)) / 3)
    torch.testing.assert_close(rc, terms.sum((1, 2)) / 3)


def _softmax_reference(x: torch.Tensor, R: torch.Tensor) -> torch.Tensor:
    """``R_x_i = x_i sum_j (d s_j / d x_i) R_j / s_j`` per row, from the explicit Jacobian."""
    out = torch.zeros_like(x)
    for idx in range(x.shape[0]):
        row = x[idx]
        J = torch.autograd.functional.jacobian(lambda v: torch.softmax(v, -1), row)  # J[j, i] = ds_j / dx_i
        s = torch.softmax(row, -1)
        out[idx] = row * (J.T @ (R[idx] / s))
    return out


@pytest.mark.parametrize("how", ["module", "function", "any callable"])
def test_softmax_taylor_is_x_times_the_jacobian_of_the_relevance_weighted_outputs(how):
    x = torch.randn(4, 6, dtype=torch.float64)
    s = torch.softmax(x, -1)
    R = torch.randn_like(s)
    op = {"module": nn.Softmax(dim=-1), "function": Op(lambda t: torch.softmax(t, dim=-1), torch.softmax, dim=-1),
          "any callable": lambda t: torch.softmax(t, dim=-1)}[how]
    (got,) = SoftmaxTaylor().relevance(op, [x], s, R, ctx(4))
    torch.testing.assert_close(got, _softmax_reference(x, R))
    torch.testing.assert_close(got, x * (R - s * R.sum(-1, keepdim=True)))  # the closed form of docs/theory.md §7


def test_softmax_taylor_gives_masked_inputs_nothing():
    x = torch.randn(2, 5, dtype=torch.float64)
    x[:, 3] = float("-inf")
    s = torch.softmax(x, -1)
    R = s * torch.randn_like(s)  # relevance of an attention weight vanishes where it is zero
    (got,) = SoftmaxTaylor().relevance(nn.Softmax(-1), [x], s, R, ctx(2))
    assert torch.isfinite(got).all() and (got[:, 3] == 0).all()
    keep = [0, 1, 2, 4]
    torch.testing.assert_close(got[:, keep], _softmax_reference(x[:, keep], R[:, keep]))


def test_hold_constant_passes_nothing_and_says_so():
    x = torch.randn(2, 3)
    assert HoldConstant().relevance(nn.Softmax(-1), [x], torch.softmax(x, -1), x, ctx(2)) == (None,)
    assert HoldConstant.detaches and not SoftmaxTaylor.detaches


def _layer_norm_matrix(norm: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(W, b)`` with ``y = W x + b`` for one row ``x``, the statistics of ``x`` held fixed."""
    d = x.numel()
    if isinstance(norm, nn.LayerNorm):
        sigma = torch.sqrt(x.var(unbiased=False) + norm.eps)
        C = torch.eye(d, dtype=x.dtype) - torch.full((d, d), 1.0 / d, dtype=x.dtype)
    else:
        sigma = torch.sqrt(x.pow(2).mean() + norm.eps)
        C = torch.eye(d, dtype=x.dtype)
    gamma = norm.weight.detach() if norm.weight is not None else torch.ones(d, dtype=x.dtype)
    beta = norm.bias.detach() if getattr(norm, "bias", None) is not None else torch.zeros(d, dtype=x.dtype)
    return torch.diag(gamma / sigma) @ C, beta


@pytest.mark.parametrize("kind", ["layernorm", "layernorm without affine", "rmsnorm"])
def test_normalization_is_the_epsilon_rule_of_the_affine_map_with_fixed_statistics(kind):
    d = 7
    norm = {"layernorm": nn.LayerNorm(d), "layernorm without affine": nn.LayerNorm(d, elementwise_affine=False),
            "rmsnorm": nn.RMSNorm(d, eps=1e-5)}[kind].double()
    if norm.weight is not None:
        with torch.no_grad():
            norm.weight.copy_(torch.rand(d) + 0.5)
            if getattr(norm, "bias", None) is not None:
                norm.bias.copy_(0.3 * torch.randn(d))
    x = torch.randn(3, 2, d, dtype=torch.float64)
    R = torch.randn(3, 2, d, dtype=torch.float64)
    eps = 1e-3
    with torch.no_grad():  # as in the engine
        y = norm(x)
        (got,) = Normalization(eps).relevance(norm, [x], y, R, ctx(3))
    for n in range(3):
        for t in range(2):
            W, b = _layer_norm_matrix(norm, x[n, t])
            z = W @ x[n, t] + b
            torch.testing.assert_close(z.detach(), y[n, t])  # the map reproduces the layer's output
            want = (x[n, t][:, None] * W.T / stab(z, eps)[None, :] * R[n, t][None, :]).sum(1)
            torch.testing.assert_close(got[n, t], want)


def test_normalization_absorbs_only_the_shift():
    norm = nn.LayerNorm(5).double()
    with torch.no_grad():
        norm.bias.copy_(torch.randn(5))
    x = torch.randn(4, 5, dtype=torch.float64)
    R = torch.randn(4, 5, dtype=torch.float64)
    with torch.no_grad():
        y = norm(x)
        (got,) = Normalization(0.0).relevance(norm, [x], y, R, ctx(4))
    torch.testing.assert_close(got.sum(1), ((y - norm.bias.detach()) / y * R).sum(1))


def test_embedding_sum_is_the_relevance_of_each_token_vector():
    emb = nn.Embedding(11, 4)
    ids = torch.tensor([[1, 5, 7], [2, 2, 0]])
    R = torch.randn(2, 3, 4)
    (got,) = EmbeddingSum().relevance(emb, [ids], emb(ids), R, ctx(2))
    torch.testing.assert_close(got, R.sum(-1))


def test_the_registry_gives_transformer_parts_attnlrp_rules():
    net = neon.Network.sequential([("norm", nn.LayerNorm(4)), ("act", nn.GELU()), ("soft", nn.Softmax(-1))])
    table = {row["name"]: row["rule"] for row in net.rules_table()}
    assert isinstance(table["norm"], Normalization)
    assert type(table["act"]).__name__ == "Pass"  # AttnLRP's identity rule
    assert isinstance(table["soft"], SoftmaxTaylor)
    cp = {row["name"]: row["rule"] for row in net.rules_table(net.assign_rules("cp_lrp"))}
    assert isinstance(cp["soft"], HoldConstant)
