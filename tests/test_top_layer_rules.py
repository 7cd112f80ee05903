"""The log-odds top under every affine rule against a dense per-sample reference (docs/theory.md §2-3).

The reference (``dense_reference.log_odds_top``) builds the difference layer ``w_c - w_c'``, ``b_c - b_c'``
of each sample's class, the soft-min shares of ``eta_c`` and then the rule's dense formula. The models have
biases as large as the weighted inputs, so that the contrast bias changes every rule that reads it
(Gamma, z+, alpha-beta, w^2 through ``b^2``): each test first checks that the reference itself moves
when the contrast bias changes sign, so a sign error in neon's contrast bias cannot pass.
"""

from __future__ import annotations

import dense_reference as ref
import numpy as np
import pytest
import torch
from torch import nn

import neon
from neon.rules import AlphaBeta, Epsilon, Flat, Gamma, WSquare, ZBox, ZPlus

# rule, its dense formula, and whether it reads the bias (the contrast bias must then matter)
RULES = {
    "lrp0": (Epsilon(0.0), lambda a, W, b, R: ref.epsilon(a, W, b, R, 0.0), False),
    "epsilon": (Epsilon(0.1), lambda a, W, b, R: ref.epsilon(a, W, b, R, 0.1), False),
    "gamma": (Gamma(0.25), lambda a, W, b, R: ref.gamma(a, W, b, R, 0.25), True),
    "gamma-large": (Gamma(3.0, stabilizer=1e-4), lambda a, W, b, R: ref.gamma(a, W, b, R, 3.0, 1e-4), True),
    "zplus": (ZPlus(), lambda a, W, b, R: ref.zplus(a, W, b, R), True),
    "alpha2beta1": (AlphaBeta(2, 1), lambda a, W, b, R: ref.alpha_beta(a, W, b, R, 2, 1), True),
    "alpha1beta0": (AlphaBeta(1, 0), lambda a, W, b, R: ref.alpha_beta(a, W, b, R, 1, 0), True),
    "zbox": (ZBox(-3.0, 3.0), lambda a, W, b, R: ref.zbox(a, W, b, R, -3.0, 3.0), False),
    "wsquare": (WSquare(), lambda a, W, b, R: ref.wsquare(a, W, b, R), False),
    "flat": (Flat(), lambda a, W, b, R: ref.flat(a, W, b, R), False),
}
N_CLASSES = 4


def _linear(d_in: int, seed: int) -> nn.Linear:
    """A softmax layer whose biases are as large as its weighted inputs, of both signs."""
    torch.manual_seed(seed)
    lin = nn.Linear(d_in, N_CLASSES).double().requires_grad_(False)
    with torch.no_grad():
        lin.weight.copy_(torch.randn_like(lin.weight))
        lin.bias.copy_(torch.tensor([1.5, -2.0, 0.5, -0.7], dtype=torch.float64) * 2)
    return lin


def _targets(n: int) -> np.ndarray:
    return np.arange(n) % N_CLASSES  # every class, predicted or not: one batched step per class in neon


def _check_the_contrast_bias_matters(a, W, b, target, dense, reads_bias) -> None:
    if not reads_bias:
        return
    flipped = ref.log_odds_top(a, W, -b, target, dense)[0]  # eta changes too; the test is on the rule's R
    right = ref.log_odds_top(a, W, b, target, dense)[0]
    assert np.abs(flipped - right).max() > 1e-2 * np.abs(right).max()


@pytest.mark.parametrize("signed", [True, False], ids=["signed-inputs", "non-negative-inputs"])
@pytest.mark.parametrize("rule_name", list(RULES))
def test_single_layer_log_odds_top_equals_dense_reference(rule_name: str, signed: bool) -> None:
    rule, dense, reads_bias = RULES[rule_name]
    lin = _linear(6, seed=3)
    x = torch.randn(9, 6, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    if not signed:
        x = x.abs()
    target = _targets(len(x))
    expl = neon.explain(lin, x, target=target, rules=rule, output="log-odds")
    W, b = lin.weight.numpy(), lin.bias.numpy()
    a = x.numpy()
    _check_the_contrast_bias_matters(a, W, b, target, dense, reads_bias)
    R, eta, _ = ref.log_odds_top(a, W, b, target, dense)
    np.testing.assert_array_equal(expl.target.numpy(), target)
    np.testing.assert_allclose(expl.output.numpy(), eta, rtol=1e-12)
    np.testing.assert_allclose(expl.relevance.numpy(), R, rtol=1e-9, atol=1e-10 * np.abs(R).max())
    # What the top absorbed, from the reference's own relevance (single layer: nothing else absorbs).
    np.testing.assert_allclose(expl.absorbed.numpy(), eta - R.sum(1), rtol=1e-9, atol=1e-10 * np.abs(eta).max())


@pytest.mark.parametrize("rule_name", ["lrp0", "epsilon", "gamma", "zplus", "alpha2beta1"])
def test_log_odds_top_after_a_relu_equals_dense_reference(rule_name: str) -> None:
    # On top of a ReLU the engine proves the inputs non-negative and the rules take their fast paths.
    rule, dense, reads_bias = RULES[rule_name]
    torch.manual_seed(5)
    hidden = nn.Linear(5, 7).double()
    top = _linear(7, seed=6)
    model = nn.Sequential(hidden, nn.ReLU(), top).eval()
    x = torch.randn(8, 5, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    target = _targets(len(x))
    explainer = neon.Explainer(model, rules=neon.Composite(by_type=[("affine", rule)]), output="log-odds").fit()
    expl = explainer.explain(x, target=target, record=True)
    with torch.no_grad():
        a = torch.relu(hidden(x)).numpy()
    W, b = top.weight.numpy(), top.bias.numpy()
    _check_the_contrast_bias_matters(a, W, b, target, dense, reads_bias)
    R, eta, _ = ref.log_odds_top(a, W, b, target, dense)
    relu_node = [s.name for s in explainer.network_.steps if isinstance(s.module, nn.ReLU)][0]
    got = expl.layers[relu_node].numpy()  # the relevance the top gives its input
    np.testing.assert_allclose(expl.output.numpy(), eta, rtol=1e-12)
    np.testing.assert_allclose(got, R, rtol=1e-9, atol=1e-10 * np.abs(R).max())


def test_epsilon_top_absorbs_the_contrast_bias_share() -> None:
    # The share of the contrast bias and stabiliser, sum_c' R_c' (b_c - b_c' + eps sign h_c') / stab(h_c'),
    # computed from the bias itself: not as eta minus the relevance.
    lin = _linear(6, seed=8)
    x = torch.randn(10, 6, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    target = _targets(len(x))
    expl = neon.explain(lin, x, target=target, rules=Epsilon(0.01), output="log-odds")
    W, b = lin.weight.numpy(), lin.bias.numpy()
    _, eta, R_h = ref.log_odds_top(x.numpy(), W, b, target, lambda a, W, b, R: ref.epsilon(a, W, b, R, 0.01))
    share = np.array([ref.epsilon_share(x.numpy()[i:i + 1], *ref.contrast(W, b, int(target[i])), R_h[i][None],
                                        0.01)[0] for i in range(len(x))])
    assert np.abs(share).min() > 1e-2 * np.abs(eta).max()  # the bias share is not negligible here
    np.testing.assert_allclose(expl.absorbed.numpy(), share, rtol=1e-9, atol=1e-12)
