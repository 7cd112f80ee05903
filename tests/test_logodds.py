"""The log-odds top (docs/theory.md §3): exact forward, soft-min redistribution, conservation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import neon
from neon.exceptions import UnsupportedModelError
from neon.layers import LogOdds


def _reference_log_odds(z: np.ndarray) -> np.ndarray:
    # log(p / (1 - p)) = z_c - logsumexp_{c' != c} z_c', written independently with numpy.
    out = np.empty_like(z)
    for c in range(z.shape[1]):
        others = np.delete(z, c, axis=1)
        out[:, c] = z[:, c] - np.logaddexp.reduce(others, axis=1)
    return out


def test_log_odds_equals_log_p_over_one_minus_p() -> None:
    z = torch.randn(50, 6, dtype=torch.float64) * 3
    p = torch.softmax(z, dim=1).numpy()
    np.testing.assert_allclose(LogOdds.log_odds(z).numpy(), np.log(p / (1 - p)), rtol=1e-9, atol=1e-12)


def test_log_odds_is_stable_for_confident_predictions() -> None:
    z = torch.tensor([[60.0, 0.0, -10.0], [0.0, 0.0, 0.0], [-700.0, 700.0, 0.0]], dtype=torch.float64)
    got = LogOdds.log_odds(z).numpy()
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, _reference_log_odds(z.numpy()), rtol=1e-12)


def _mlp(bias: bool) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 8, bias=bias), nn.ReLU(), nn.Linear(8, 4, bias=bias)).double().eval()


def test_network_forward_is_the_log_odds_of_every_class() -> None:
    model = _mlp(bias=True)
    x = torch.randn(20, 5, dtype=torch.float64)
    net = neon.neuralize(model, output="log-odds")
    p = torch.softmax(model(x), dim=1).detach().numpy()
    np.testing.assert_allclose(net(x).numpy(), np.log(p / (1 - p)), rtol=1e-9)


def test_relevance_sums_to_the_log_odds_with_lrp0_and_no_bias() -> None:
    model = _mlp(bias=False)
    x = torch.randn(30, 5, dtype=torch.float64)
    for target in (None, 2):
        expl = neon.explain(model, x, target=target, rules="lrp0", output="log-odds")
        p = torch.softmax(model(x), dim=1).detach().numpy()
        t = expl.target.numpy()
        eta = np.log(p / (1 - p))[np.arange(30), t]
        np.testing.assert_allclose(expl.output.numpy(), eta, rtol=1e-10)
        np.testing.assert_allclose(expl.relevance.sum(1).numpy(), eta, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(expl.absorbed.numpy(), 0.0, atol=1e-9)
    # The default target is the predicted class, whose log-odds may still be negative with 4 classes,
    # but a non-predicted class has lower log-odds than the predicted one.
    expl_pred = neon.explain(model, x, rules="lrp0", output="log-odds")
    assert (expl_pred.target.numpy() == model(x).argmax(1).numpy()).all()


def test_top_layer_matches_dense_formula() -> None:
    # One linear layer + log-odds: R_j = sum_c' a_j (w_c - w_c')_j / h_c' * softmin(h)_c' * eta_c (LRP-0).
    torch.manual_seed(1)
    lin = nn.Linear(4, 3).double()
    x = torch.randn(7, 4, dtype=torch.float64)
    expl = neon.explain(lin, x, rules="lrp0", output="log-odds")
    W, b = lin.weight.detach().numpy(), lin.bias.detach().numpy()
    xn = x.numpy()
    z = xn @ W.T + b
    want = np.zeros_like(xn)
    for n in range(7):
        c = int(expl.target[n])
        others = [k for k in range(3) if k != c]
        h = z[n, c] - z[n, others]
        share = np.exp(-h) / np.exp(-h).sum()
        eta = -np.log(np.exp(-h).sum())
        for k, hk, s in zip(others, h, share):
            want[n] += xn[n] * (W[c] - W[k]) / hk * s * eta
    np.testing.assert_allclose(expl.relevance.numpy(), want, rtol=1e-9)
    # The bias share is what is absorbed.
    np.testing.assert_allclose(expl.absorbed.numpy(), expl.output.numpy() - want.sum(1), rtol=1e-9, atol=1e-12)
    # ... computed from the contrast biases themselves, sum_c' softmin(h)_c' eta_c (b_c - b_c') / h_c', and
    # with the explained value eta_c of the reference (the line above would hold for any output).
    eta = np.zeros(7)
    share = np.zeros(7)
    for n in range(7):
        c = int(expl.target[n])
        others = [k for k in range(3) if k != c]
        h = z[n, c] - z[n, others]
        eta[n] = -np.log(np.exp(-h).sum())
        share[n] = (np.exp(-h) / np.exp(-h).sum() * eta[n] * (b[c] - b[others]) / h).sum()
    np.testing.assert_allclose(expl.output.numpy(), eta, rtol=1e-12)
    assert np.abs(share).min() > 1e-3
    np.testing.assert_allclose(expl.absorbed.numpy(), share, rtol=1e-9, atol=1e-12)


def test_binary_two_logit_model_gives_plus_minus_f() -> None:
    torch.manual_seed(2)
    lin = nn.Linear(3, 2).double()
    x = torch.randn(10, 3, dtype=torch.float64)
    net = neon.neuralize(lin, output="log-odds")
    z = lin(x).detach()
    f = (z[:, 1] - z[:, 0]).numpy()
    np.testing.assert_allclose(net(x)[:, 1].numpy(), f, rtol=1e-12)
    np.testing.assert_allclose(net(x)[:, 0].numpy(), -f, rtol=1e-12)


def test_softmax_at_the_end_means_log_odds_by_default() -> None:
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 3), nn.Softmax(dim=1)).double()
    x = torch.randn(5, 3, dtype=torch.float64)
    net = neon.neuralize(model)
    assert net.output_kind == "log-odds"
    p = model(x).detach().numpy()
    np.testing.assert_allclose(net(x).numpy(), np.log(p / (1 - p)), rtol=1e-9)


def test_log_odds_needs_a_final_linear_layer() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU())
    with pytest.raises(UnsupportedModelError, match="final nn.Linear"):
        neon.neuralize(model, output="log-odds")
