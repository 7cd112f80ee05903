"""The fused k-means step (soft-min pool and midpoint rule run as one) gives what the general formulas give.

``MidpointSoftMin`` never builds the ``n x K x (K - 1)`` contrast units. It is compared here with

* the general rules, each on its own, with no hint (soft-min over every unit of every row, midpoint
  over every unit: ``Midpoint`` with ``A = R / h`` everywhere), on the network's own contrast units;
* a per-sample numpy reference written from docs/theory.md §4 (no code shared with neon);

on random data in float32 and float64, for the assigned cluster, another cluster for all samples, and
one random cluster per sample.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans

import neon
from neon.layers import CentroidContrast, ReduceMin
from neon.rules import Context, Midpoint, SoftMin
from neon.rules.base import SingleColumn
from neon.rules.distance import MidpointSoftMin

TOL = {torch.float64: dict(rtol=1e-9, atol=1e-10), torch.float32: dict(rtol=2e-4, atol=2e-4)}


def general(mu: torch.Tensor, x: torch.Tensor, target: torch.Tensor, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Both rules on their own, with no hint: every unit of every row is computed."""
    contrast, pool = CentroidContrast(mu), ReduceMin()
    h = contrast(x)
    y = pool(h)
    col = target.view(-1, 1)
    R = torch.zeros_like(y).scatter(1, col, y.gather(1, col))
    (r_h,) = SoftMin(beta).relevance(pool, [h], y, R, Context(target=None))
    (r_x,) = Midpoint().relevance(contrast, [x], h, r_h, Context(target=None))
    return r_x, y.gather(1, col).squeeze(1)


def dense(mu: np.ndarray, X: np.ndarray, target: np.ndarray, beta: float) -> np.ndarray:
    """``R_i = sum_{k != c} p_k f / h_k [(x_i - mu_k,i)^2 - (x_i - mu_c,i)^2]`` one sample at a time (0/0 := 0)."""
    R = np.zeros_like(X)
    for n, (x, c) in enumerate(zip(X, target)):
        ks = [k for k in range(len(mu)) if k != c]
        split = np.array([(x - mu[k]) ** 2 - (x - mu[c]) ** 2 for k in ks])
        h = split.sum(1)
        p = np.exp(-beta * (h - h.min()))
        p /= p.sum()
        share = np.divide(p * h.min(), h, out=np.zeros_like(h), where=h != 0)
        R[n] = (share[:, None] * split).sum(0)
    return R


def fused(mu: torch.Tensor, x: torch.Tensor, target: torch.Tensor | None, beta: float):
    """The fused step as the engine runs it: forward from x, backward from the engine's SingleColumn hint."""
    contrast, pool, rule = CentroidContrast(mu), ReduceMin(), SoftMin(beta)
    step = rule.fuse(pool, contrast, Midpoint())
    assert isinstance(step, MidpointSoftMin)
    f, state = step.forward([x])
    t = f.argmax(1) if target is None else target
    value = f.gather(1, t.view(-1, 1)).squeeze(1)
    R = torch.zeros_like(f).scatter_(1, t.view(-1, 1), value.view(-1, 1))
    ctx = Context(target=t, hint=SingleColumn(R, t, value), forward_state=state)
    (r_x,) = step.relevance([x], f, R, ctx)
    return f, r_x, t


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("k", [2, 3, 7])
def test_fused_step_equals_the_general_rules_and_the_dense_reference(dtype, k):
    g = torch.Generator().manual_seed(k)
    mu = torch.randn(k, 6, generator=g, dtype=torch.float64).to(dtype)
    x = (2.0 * torch.randn(200, 6, generator=g, dtype=torch.float64)).to(dtype)
    beta = 0.4
    f, _, assigned = fused(mu, x, None, beta)
    # the forward is the contrast units' minimum, bit for bit
    assert torch.equal(f, ReduceMin()(CentroidContrast(mu)(x)))
    every = torch.randint(0, k, (200,), generator=g)
    for t in (assigned, torch.full((200,), (k - 1), dtype=torch.long), every):
        _, r_fast, _ = fused(mu, x, t, beta)
        r_gen, value = general(mu, x, t, beta)
        torch.testing.assert_close(r_fast, r_gen, **TOL[dtype])
        # exactly conservative up to rounding
        torch.testing.assert_close(r_fast.sum(1), value, **TOL[dtype])
        if dtype is torch.float64:
            np.testing.assert_allclose(r_fast.numpy(), dense(mu.numpy(), x.numpy(), t.numpy(), beta),
                                       rtol=1e-9, atol=1e-10)
    assert (assigned == torch.cdist(x.double(), mu.double()).argmin(1)).float().mean() > 0.99


@pytest.mark.parametrize("beta", [0.0, 50.0])
def test_fused_step_extreme_stiffness(beta):
    g = torch.Generator().manual_seed(1)
    mu = torch.randn(4, 3, generator=g, dtype=torch.float64)
    x = torch.randn(60, 3, generator=g, dtype=torch.float64)
    t = torch.randint(0, 4, (60,), generator=g)
    _, r_fast, _ = fused(mu, x, t, beta)
    r_gen, _ = general(mu, x, t, beta)
    torch.testing.assert_close(r_fast, r_gen, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(r_fast.numpy(), dense(mu.numpy(), x.numpy(), t.numpy(), beta), rtol=1e-9, atol=1e-10)


def test_units_on_their_hyperplane_give_nothing():
    """Two equal centroids (h = 0 for every x) and points equidistant from two centroids: 0/0 := 0."""
    mu = torch.tensor([[0.0, 0.0], [2.0, 0.0], [2.0, 0.0], [0.0, 3.0]], dtype=torch.float64)
    x = torch.tensor([[1.0, 0.5], [1.0, -2.0], [3.0, 1.0], [0.0, 1.5], [-1.0, -1.0]], dtype=torch.float64)
    for t in (None, torch.tensor([1, 2, 0, 3, 2])):
        f, r_fast, tt = fused(mu, x, t, 0.7)
        assert torch.isfinite(r_fast).all()
        r_gen, value = general(mu, x, tt, 0.7)
        torch.testing.assert_close(r_fast, r_gen, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(r_fast.numpy(), dense(mu.numpy(), x.numpy(), tt.numpy(), 0.7), atol=1e-12)
    # tied nearest centroids (rows 0, 3): the first of them is the target, its logit is 0
    f, _, tt = fused(mu, x, None, 0.7)
    assert tt[0] == 0 and f[0, 0] == 0 and tt[3] == 0 and f[3, 0] == 0


def test_relevance_in_several_columns_runs_both_rules_in_turn():
    g = torch.Generator().manual_seed(2)
    mu = torch.randn(5, 4, generator=g, dtype=torch.float64)
    x = torch.randn(30, 4, generator=g, dtype=torch.float64)
    contrast, pool, rule = CentroidContrast(mu), ReduceMin(), SoftMin(0.7)
    step = rule.fuse(pool, contrast, Midpoint())
    f, state = step.forward([x])
    R = f.clone()  # every column: no SingleColumn hint, the general path
    (r_x,) = step.relevance([x], f, R, Context(target=f.argmax(1), forward_state=state))
    h = contrast(x)
    (r_h,) = rule.relevance(pool, [h], f, R, Context(target=None))
    (r_ref,) = Midpoint().relevance(contrast, [x], h, r_h, Context(target=None))
    torch.testing.assert_close(r_x, r_ref, rtol=1e-12, atol=1e-12)


def test_fuse_declines_what_it_does_not_cover():
    mu = torch.randn(3, 2, dtype=torch.float64)
    contrast = CentroidContrast(mu)
    assert SoftMin(1.0).fuse(ReduceMin(stiffness=2.0), contrast, Midpoint()) is None  # a soft pool
    assert SoftMin(1.0).fuse(ReduceMin(), torch.nn.Linear(2, 6), Midpoint()) is None

    class OtherMidpoint(Midpoint):
        pass

    assert SoftMin(1.0).fuse(ReduceMin(), contrast, OtherMidpoint()) is None  # a subclass may change the rule


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_explainer_runs_the_fused_step_and_equals_record_mode(dtype, monkeypatch):
    """Explaining never builds the contrast units; record=True (every layer, no fusion) gives the same relevance."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((500, 8)).astype(dtype)
    km = KMeans(6, n_init=2, random_state=0).fit(X)
    ex = neon.Explainer(km, batch_size=128).fit(X)
    recorded = ex.explain(X, record=True)  # the units of every node are reported: not fused
    built = []
    forward = CentroidContrast.forward
    monkeypatch.setattr(CentroidContrast, "forward", lambda self, x: built.append(1) or forward(self, x))
    for target in (None, 4, rng.integers(0, 6, 500)):
        fast = ex.explain(X, target=target)
        reference = ex.explain(X, target=target, record=True)
        tol = dict(rtol=1e-9, atol=1e-10) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(fast.relevance, reference.relevance, **tol)
        np.testing.assert_array_equal(fast.target, reference.target)
        np.testing.assert_allclose(fast.output, reference.output, **tol)
    assert fast.relevance.dtype == dtype
    assert len(built) == 3 * 4  # only the record=True runs (4 chunks each) built the units
    np.testing.assert_array_equal(ex.explain(X).target, km.predict(X))
    np.testing.assert_array_equal(recorded.target, km.predict(X))


def test_a_changed_rule_set_is_seen_by_the_engine():
    """The engine keeps its per-graph analysis per rule set: replacing a rule in the same dict takes effect."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((200, 5))
    km = KMeans(4, n_init=2, random_state=0).fit(X)
    net = neon.neuralize(km)
    rules = net.assign_rules()
    rules["pool"] = SoftMin(0.1)
    x = torch.from_numpy(X)
    soft = net.propagate(x, None, rules).relevance
    rules["pool"] = SoftMin(30.0)
    hard = net.propagate(x, None, rules).relevance
    t = net(x).argmax(1)
    torch.testing.assert_close(soft, general(torch.from_numpy(km.cluster_centers_), x, t, 0.1)[0])
    torch.testing.assert_close(hard, general(torch.from_numpy(km.cluster_centers_), x, t, 30.0)[0])
    assert not torch.allclose(soft, hard)


def test_the_engine_forgets_a_network_that_is_gone():
    """What the engine keeps per graph (cheap nodes, facts, fusions) does not keep the network alive."""
    import gc
    import weakref

    from neon.propagate import engine

    rng = np.random.default_rng(2)
    X = rng.standard_normal((50, 3))
    net = neon.neuralize(KMeans(3, n_init=1, random_state=0).fit(X))
    rules = net.assign_rules()
    rules["pool"] = SoftMin(1.0)
    net.propagate(torch.from_numpy(X), None, rules)
    key = id(net.steps[0])
    assert key in engine._PLANS
    gone = weakref.ref(net)
    del net, rules
    gc.collect()
    assert gone() is None
    assert key not in engine._PLANS
