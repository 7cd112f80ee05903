"""Every rule equals a slow dense reference written from its formula (float64, 1e-10).

Random Linear and Conv2d layers, signed inputs, signed relevance, biases of both signs.
"""

from __future__ import annotations

import dense_reference as ref
import numpy as np
import pytest
import torch
from torch import nn

from neon.exceptions import RuleError
from neon.layers import CentroidContrast, ChannelAffine, ReduceMin
from neon.rules import (
    AlphaBeta,
    Context,
    Epsilon,
    Flat,
    Gamma,
    Midpoint,
    Pass,
    Proportional,
    Reference,
    SoftMin,
    WinnerTakesAll,
    WSquare,
    ZBox,
    ZPlus,
)

LAYERS = {
    "linear": (lambda: nn.Linear(7, 5), (7,)),
    "conv": (lambda: nn.Conv2d(2, 3, 3, padding=1), (2, 5, 5)),
    "conv-stride": (lambda: nn.Conv2d(2, 4, 3, stride=2), (2, 7, 7)),
    "conv1d": (lambda: nn.Conv1d(3, 2, 2, padding=1, dilation=2), (3, 6)),
    "conv-groups": (lambda: nn.Conv2d(4, 6, 3, padding=1, groups=2), (4, 4, 4)),
    "channel-affine": (lambda: ChannelAffine(torch.randn(3), torch.randn(3)), (3, 4)),
}

RULES = {
    "lrp0": (Epsilon(0.0), lambda a, W, b, R, x: ref.epsilon(a, W, b, R, 0.0)),
    "epsilon": (Epsilon(0.1), lambda a, W, b, R, x: ref.epsilon(a, W, b, R, 0.1)),
    "gamma": (Gamma(0.25), lambda a, W, b, R, x: ref.gamma(a, W, b, R, 0.25)),
    "gamma-large": (Gamma(3.0, stabilizer=1e-4), lambda a, W, b, R, x: ref.gamma(a, W, b, R, 3.0, 1e-4)),
    "zplus": (ZPlus(), lambda a, W, b, R, x: ref.zplus(a, W, b, R)),
    "alpha2beta1": (AlphaBeta(2, 1), lambda a, W, b, R, x: ref.alpha_beta(a, W, b, R, 2, 1)),
    "alpha1beta0": (AlphaBeta(1, 0), lambda a, W, b, R, x: ref.alpha_beta(a, W, b, R, 1, 0)),
    "zbox": (ZBox(-1.5, 2.0), lambda a, W, b, R, x: ref.zbox(a, W, b, R, -1.5, 2.0)),
    "wsquare": (WSquare(), lambda a, W, b, R, x: ref.wsquare(a, W, b, R)),
    "flat": (Flat(), lambda a, W, b, R, x: ref.flat(a, W, b, R)),
    "reference": (None, lambda a, W, b, R, x: ref.reference(a, W, b, R, x)),
}


def _setup(layer_name: str, seed: int):
    torch.manual_seed(seed)
    make, in_shape = LAYERS[layer_name]
    layer = make().double()
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randn_like(p))
    layer.requires_grad_(False)
    a = torch.randn((4,) + in_shape, dtype=torch.float64)
    z = layer(a)
    R = torch.randn_like(z)
    return layer, in_shape, a, z, R


@pytest.mark.parametrize("layer_name", list(LAYERS))
@pytest.mark.parametrize("rule_name", list(RULES))
def test_rule_matches_dense_reference(layer_name: str, rule_name: str) -> None:
    layer, in_shape, a, z, R = _setup(layer_name, seed=hash((layer_name, rule_name)) % 1000)
    rule, reference = RULES[rule_name]
    x_ref = np.random.default_rng(0).normal(size=in_shape)
    if rule is None:
        rule = Reference(torch.from_numpy(x_ref))
    (got,) = rule.relevance(layer, [a], z, R, Context(target=torch.zeros(len(a), dtype=torch.long)))
    W, b = ref.dense_matrix(layer, in_shape)
    n = len(a)
    want = reference(a.reshape(n, -1).numpy(), W, b, R.reshape(n, -1).numpy(), x_ref.reshape(1, -1))
    assert got.shape == a.shape
    scale = np.abs(want).max()
    np.testing.assert_allclose(got.reshape(n, -1).numpy(), want, rtol=1e-10, atol=1e-10 * scale)


def test_zbox_per_channel_bounds() -> None:
    layer, in_shape, a, z, R = _setup("conv", seed=3)
    low, high = torch.tensor([-1.0, -2.0]), torch.tensor([1.5, 0.5])
    (got,) = ZBox(low, high).relevance(layer, [a], z, R, Context(target=torch.zeros(4, dtype=torch.long)))
    W, b = ref.dense_matrix(layer, in_shape)
    lo = np.broadcast_to(low.numpy()[:, None, None], in_shape).reshape(1, -1)
    hi = np.broadcast_to(high.numpy()[:, None, None], in_shape).reshape(1, -1)
    want = ref.zbox(a.reshape(4, -1).numpy(), W, b, R.reshape(4, -1).numpy(), lo, hi)
    np.testing.assert_allclose(got.reshape(4, -1).numpy(), want, rtol=1e-10, atol=1e-12)


def test_gamma_fast_path_for_relu_inputs_equals_reference() -> None:
    # Non-negative inputs and relevance only on z > 0 (as after a ReLU) take the fast path.
    layer, in_shape, a, z, R = _setup("conv", seed=5)
    a = a.clamp(min=0)
    z = layer(a)
    R = torch.where(z > 0, torch.rand_like(z), torch.zeros_like(z))
    (got,) = Gamma(0.5).relevance(layer, [a], z, R, Context(target=torch.zeros(4, dtype=torch.long)))
    W, b = ref.dense_matrix(layer, in_shape)
    want = ref.gamma(a.reshape(4, -1).numpy(), W, b, R.reshape(4, -1).numpy(), 0.5)
    np.testing.assert_allclose(got.reshape(4, -1).numpy(), want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("layer_name", list(LAYERS))
@pytest.mark.parametrize("gamma", [0.25, 3.0])
def test_gamma_on_relu_inputs_with_relevance_on_both_output_signs_equals_reference(layer_name, gamma) -> None:
    # Non-negative inputs, relevance on z > 0, z < 0 and on outputs that are exactly zero (a residual
    # branch feeding a sum gets such relevance): the shared-denominator path must match the two-part formula.
    layer, in_shape, a, z, R = _setup(layer_name, seed=11)
    a = a.clamp(min=0)
    a[0] = 0.0
    with torch.no_grad():
        layer.bias[0] = 0.0  # sample 0, first output channel: z == 0 exactly, with R != 0
    z = layer(a)
    assert bool((z == 0).any()) and bool((z < 0).any()) and bool((z > 0).any())
    (got,) = Gamma(gamma).relevance(layer, [a], z, R, Context(target=torch.zeros(4, dtype=torch.long)))
    W, b = ref.dense_matrix(layer, in_shape)
    want = ref.gamma(a.reshape(4, -1).numpy(), W, b, R.reshape(4, -1).numpy(), gamma)
    np.testing.assert_allclose(got.reshape(4, -1).numpy(), want, rtol=1e-10, atol=1e-12 * np.abs(want).max())
    assert np.isfinite(got.numpy()).all()


def test_gamma_fast_path_ignores_a_vanishing_denominator_off_the_relevant_outputs() -> None:
    # R = 0 where z < 0, and there the up-denominator W_up a + b_up + eps is exactly 0: no 0/0 may leak.
    layer = nn.Linear(2, 2).double().requires_grad_(False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=torch.float64))
        # unit 1 at a = (1, 0): z = -1e-6 < 0 and z_up + eps = 0
        layer.bias.copy_(torch.tensor([0.0, 1.0 - 1e-6], dtype=torch.float64))
    a = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    z = layer(a)
    R = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    assert float(torch.nn.functional.linear(a, layer.weight, layer.bias + 1e-6)[0, 1]) == 0.0
    (got,) = Gamma(0.0).relevance(layer, [a], z, R, Context(target=torch.zeros(1, dtype=torch.long)))
    np.testing.assert_allclose(got.numpy(), [[1.0 / (1.0 + 1e-6), 0.0]], rtol=1e-12)


def test_lrp0_conserves_without_bias() -> None:
    torch.manual_seed(0)
    layer = nn.Linear(6, 4, bias=False).double().requires_grad_(False)
    a = torch.randn(3, 6, dtype=torch.float64)
    z = layer(a)
    (got,) = Epsilon(0).relevance(layer, [a], z, z, Context(target=torch.zeros(3, dtype=torch.long)))
    np.testing.assert_allclose(got.sum(1).numpy(), z.sum(1).numpy(), rtol=1e-12)


def test_proportional_on_average_pooling_is_the_epsilon_rule_of_its_dense_map() -> None:
    torch.manual_seed(1)
    pool = nn.AvgPool2d(2)
    a = torch.rand(3, 2, 4, 4, dtype=torch.float64)
    z = pool(a)
    R = torch.randn_like(z)
    (got,) = Proportional().relevance(pool, [a], z, R, Context(target=torch.zeros(3, dtype=torch.long)))
    W, b = ref.dense_matrix(pool, (2, 4, 4))
    want = ref.epsilon(a.reshape(3, -1).numpy(), W, b, R.reshape(3, -1).numpy(), 1e-6)
    np.testing.assert_allclose(got.reshape(3, -1).numpy(), want, rtol=1e-10, atol=1e-13)


def test_winner_takes_all_routes_relevance_to_the_max() -> None:
    pool = nn.MaxPool2d(2)
    a = torch.randn(2, 1, 4, 4, dtype=torch.float64)
    z = pool(a)
    R = torch.randn_like(z)
    (got,) = WinnerTakesAll().relevance(pool, [a], z, R, Context(target=torch.zeros(2, dtype=torch.long)))
    want = np.zeros((2, 1, 4, 4))
    an = a.numpy()
    for n in range(2):
        for i in range(2):
            for j in range(2):
                block = an[n, 0, 2 * i:2 * i + 2, 2 * j:2 * j + 2]
                u, v = np.unravel_index(block.argmax(), block.shape)
                want[n, 0, 2 * i + u, 2 * j + v] = R[n, 0, i, j]
    np.testing.assert_array_equal(got.numpy(), want)


def test_pass_returns_relevance_unchanged() -> None:
    R = torch.randn(3, 4)
    (got,) = Pass().relevance(nn.ReLU(), [torch.randn(3, 4)], torch.randn(3, 4), R, None)
    assert got is R


@pytest.mark.parametrize("make", [lambda: AlphaBeta(2, 0.5), lambda: AlphaBeta(-1, -2), lambda: Gamma(-0.1),
                                  lambda: Epsilon(-1.0)])
def test_invalid_rule_parameters_raise(make) -> None:
    with pytest.raises(RuleError):
        make()


def test_epsilon_relative_uses_rms_of_each_sample() -> None:
    torch.manual_seed(2)
    layer = nn.Linear(5, 3).double().requires_grad_(False)
    a = torch.randn(2, 5, dtype=torch.float64)
    a[1] *= 100  # a sample's stabiliser must not depend on the other sample's scale
    z = layer(a)
    (got,) = Epsilon(0.25, relative=True).relevance(layer, [a], z, z, None)
    W, b = ref.dense_matrix(layer, (5,))
    for n in range(2):
        eps = 0.25 * np.sqrt((z[n].detach().numpy() ** 2).mean())
        want = ref.epsilon(a[n:n + 1].numpy(), W, b, z[n:n + 1].detach().numpy(), eps)
        np.testing.assert_allclose(got[n:n + 1].detach().numpy(), want, rtol=1e-10)


@pytest.mark.parametrize("rule,reference", [
    (ZPlus(), lambda a, W, b, R: ref.zplus(a, W, b, R)),
    (AlphaBeta(2, 1), lambda a, W, b, R: ref.alpha_beta(a, W, b, R, 2, 1)),
    (AlphaBeta(1, 0), lambda a, W, b, R: ref.alpha_beta(a, W, b, R, 1, 0)),
])
def test_non_negative_input_fast_paths_equal_the_reference(rule, reference) -> None:
    layer, in_shape, a, z, R = _setup("conv", seed=7)
    a = a.clamp(min=0)
    with torch.no_grad():  # biases of both signs: the fast paths must clamp them as the formulas do
        layer.bias.copy_(torch.tensor([0.6, -0.9, 0.3], dtype=torch.float64))
    z = layer(a)
    (got,) = rule.relevance(layer, [a], z, R, Context(target=torch.zeros(4, dtype=torch.long)))
    W, b = ref.dense_matrix(layer, in_shape)
    want = reference(a.reshape(4, -1).numpy(), W, b, R.reshape(4, -1).numpy())
    np.testing.assert_allclose(got.reshape(4, -1).numpy(), want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("rule_name", [r for r in RULES if r != "reference"])
def test_dense_layer_on_a_sequence_acts_per_position(rule_name) -> None:
    # nn.Linear on (n, positions, features): every rule equals the rule on the positions as a batch.
    torch.manual_seed(2)
    lin = nn.Linear(5, 3).double().requires_grad_(False)
    a = torch.randn(2, 4, 5, dtype=torch.float64)
    z = lin(a)
    R = torch.randn_like(z)
    rule, _ = RULES[rule_name]
    (got,) = rule.relevance(lin, [a], z, R, Context(target=torch.zeros(2, dtype=torch.long)))
    (want,) = rule.relevance(lin, [a.reshape(8, 5)], z.reshape(8, 3), R.reshape(8, 3),
                             Context(target=torch.zeros(8, dtype=torch.long)))
    assert got.shape == a.shape
    torch.testing.assert_close(got.reshape(8, 5), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("eps", [1e-6, 0.5])
@pytest.mark.parametrize("pool,in_shape", [
    (nn.MaxPool2d(3, 2, padding=1), (2, 5, 5)),
    (nn.MaxPool2d(3, 2, padding=1), (1, 6, 4)),
    (nn.MaxPool1d(3, 2, padding=1), (2, 7)),
], ids=["maxpool2d-odd", "maxpool2d-even", "maxpool1d"])
def test_proportional_through_a_padded_max_pool_is_average_pooling_with_the_padding_counted(pool, in_shape,
                                                                                            eps) -> None:
    # docs/theory.md §2: Proportional treats a max pool as average pooling of the same windows; the padded
    # positions hold zeros and count in the divisor (count_include_pad). The divisor cancels in the split
    # itself and shows only through the stabiliser: a large one (0.5) pins it, a small one the windows.
    a = torch.rand((3,) + in_shape, generator=torch.Generator().manual_seed(8), dtype=torch.float64) + 0.1
    z = pool(a)
    R = torch.randn(z.shape, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    (got,) = Proportional(eps).relevance(pool, [a], z, R, Context(target=torch.zeros(3, dtype=torch.long)))
    M = ref.average_pool_matrix(in_shape, 3, 2, 1)
    assert M.shape == (z[0].numel(), a[0].numel())
    want = ref.epsilon(a.reshape(3, -1).numpy(), M, np.zeros(len(M)), R.reshape(3, -1).numpy(), eps)
    assert got.shape == a.shape
    np.testing.assert_allclose(got.reshape(3, -1).numpy(), want, rtol=1e-10, atol=1e-13)
    if eps == 0.5:  # the padded positions count: dividing border windows by their in-bounds size differs
        in_bounds = M / M.sum(1, keepdims=True)  # count_include_pad=False: 1 / (in-bounds positions)
        other = ref.epsilon(a.reshape(3, -1).numpy(), in_bounds, np.zeros(len(M)), R.reshape(3, -1).numpy(), eps)
        assert np.abs(other - want).max() > 1e-3 * np.abs(want).max()


class _Add:
    """A residual addition as the engine hands it to a rule: a callable of its tensor inputs."""

    adds_tensors = True

    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a + b


@pytest.mark.parametrize("eps", [1e-6, 0.3, 0.0])
def test_proportional_split_of_a_residual_addition_equals_dense_reference(eps) -> None:
    # z = a + b is the linear map [I, I] of the stacked inputs; the proportional rule is LRP-epsilon on it:
    # R_a = a R / stab(z), R_b = b R / stab(z). Signed inputs, so that the two branches get different shares.
    g = torch.Generator().manual_seed(10)
    a, b = (torch.randn(3, 2, 4, 4, generator=g, dtype=torch.float64) for _ in range(2))
    z = a + b
    R = torch.randn(z.shape, generator=g, dtype=torch.float64)
    got_a, got_b = Proportional(eps).relevance(_Add(), [a, b], z, R, Context(target=torch.zeros(3, dtype=torch.long)))
    d = z[0].numel()
    M = np.hstack([np.eye(d), np.eye(d)])
    stacked = np.hstack([a.reshape(3, -1).numpy(), b.reshape(3, -1).numpy()])
    want = ref.epsilon(stacked, M, np.zeros(d), R.reshape(3, -1).numpy(), eps)
    np.testing.assert_allclose(got_a.reshape(3, -1).numpy(), want[:, :d], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got_b.reshape(3, -1).numpy(), want[:, d:], rtol=1e-10, atol=1e-12)


def test_midpoint_rule_equals_dense_reference_for_relevance_on_every_unit() -> None:
    # The general path (relevance on several rows, as when a sum feeds the pool) and the one-row path that
    # the soft-min pool's hint selects, both against the formula of docs/theory.md §4.
    g = torch.Generator().manual_seed(12)
    mu = torch.randn(4, 3, generator=g, dtype=torch.float64)
    x = torch.randn(6, 3, generator=g, dtype=torch.float64)
    cc, pool = CentroidContrast(mu), ReduceMin()
    h = cc(x)
    R = torch.randn(h.shape, generator=g, dtype=torch.float64)
    t = torch.arange(6) % 4
    (got,) = Midpoint().relevance(cc, [x], h, R, Context(target=t))
    np.testing.assert_allclose(got.numpy(), ref.midpoint_rule(x.numpy(), mu.numpy(), R.numpy()), rtol=1e-10,
                               atol=1e-12)
    y = pool(h)
    R_top = torch.zeros_like(y).scatter(1, t.view(-1, 1), y.gather(1, t.view(-1, 1)))
    top_ctx = Context(target=t)
    (r_h,) = SoftMin(0.7).relevance(pool, [h], y, R_top, top_ctx)
    assert top_ctx.emitted is not None  # the one-row hint: the rule below may take its shortcut
    (got,) = Midpoint().relevance(cc, [x], h, r_h, Context(target=t, hint=top_ctx.emitted))
    np.testing.assert_allclose(got.numpy(), ref.midpoint_rule(x.numpy(), mu.numpy(), r_h.numpy()), rtol=1e-10,
                               atol=1e-12)
