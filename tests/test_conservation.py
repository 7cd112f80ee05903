"""LRP-0 and epsilon -> 0 on random bias-free ReLU networks (property-based, hypothesis).

- LRP-0 on a bias-free ReLU network equals gradient x input (Montavon et al. 2019, section 10.2.1).
- Relevance is conserved layer by layer: every layer's input relevance sums to the explained output.
"""

from __future__ import annotations

import dense_reference as ref
import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import neon
from neon.layers.affine import is_affine


def _network(widths: list[int], seed: int, conv: bool) -> nn.Module:
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    if conv:
        layers += [nn.Conv2d(2, widths[0], 3, padding=1, bias=False), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten()]
        d = widths[0] * 4
    else:
        d = 6
    for w in widths[1:]:
        layers += [nn.Linear(d, w, bias=False), nn.ReLU()]
        d = w
    layers.append(nn.Linear(d, 3, bias=False))
    return nn.Sequential(*layers).double().eval()


def _input(conv: bool, seed: int, n: int = 5) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    shape = (n, 2, 4, 4) if conv else (n, 6)
    return torch.randn(shape, generator=g, dtype=torch.float64)


settings.register_profile("neon", deadline=None, max_examples=15, derandomize=True)
settings.load_profile("neon")

nets = st.tuples(
    st.lists(st.integers(1, 8), min_size=1, max_size=4),
    st.integers(0, 10_000),
    st.booleans(),
)


@given(nets)
def test_lrp0_equals_gradient_times_input(spec) -> None:
    widths, seed, conv = spec
    model = _network(widths, seed, conv)
    x = _input(conv, seed)
    expl = neon.explain(model, x, rules="lrp0", output="logit")
    xg = x.clone().requires_grad_(True)
    out = model(xg)
    target = out.argmax(1)
    (grad,) = torch.autograd.grad(out.gather(1, target[:, None]).sum(), xg)
    np.testing.assert_allclose(expl.relevance.numpy(), (grad * x).numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(expl.target.numpy(), target.numpy())


@given(nets, st.sampled_from([0.0, 1e-12]))
def test_relevance_is_conserved_layer_by_layer(spec, eps) -> None:
    widths, seed, conv = spec
    model = _network(widths, seed, conv)
    x = _input(conv, seed)
    exact_pool = neon.rules.Proportional(0.0)
    rules = neon.Composite(by_type=[("affine", neon.rules.Epsilon(eps)), (nn.AvgPool2d, exact_pool)])
    explainer = neon.Explainer(model, rules=rules, output="logit").fit()
    expl = explainer.explain(x, record=True)
    f = expl.output.numpy()
    net = explainer.network_
    # The relevance entering every affine layer (and the input) sums to f(x) for each sample.
    checked = 0
    for step in net.steps:
        if step.kind == "input" or (step.kind == "layer" and is_affine(step.module)):
            R = expl.layers[step.name].reshape(len(x), -1).sum(1).numpy()
            # eps > 0 moves each denominator by eps: a relative error of about eps / |z| per layer.
            np.testing.assert_allclose(R, f, rtol=1e-9 if eps == 0 else 1e-5, atol=1e-12)
            checked += 1
    n_affine = sum(1 for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d)))
    assert checked == n_affine + 1
    tol = 1e-9 if eps == 0 else 1e-5
    np.testing.assert_allclose(expl.absorbed.numpy(), 0.0, atol=tol * np.abs(f).max() + 1e-15)


def test_epsilon_absorbs_what_the_bias_takes() -> None:
    # With biases, LRP-epsilon does not conserve, and the explanation reports the difference.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2)).double()
    x = torch.randn(8, 4, dtype=torch.float64)
    expl = neon.explain(model, x, rules="epsilon", output="logit")
    total = expl.relevance.sum(1)
    np.testing.assert_allclose((expl.output - total).numpy(), expl.absorbed.numpy(), rtol=1e-12)
    assert np.abs(expl.absorbed.numpy()).max() > 1e-3
    # What each layer's bias and stabiliser take, from a dense reference: the absorbed total is their sum.
    layers = [(m.weight.detach().numpy(), m.bias.detach().numpy()) if isinstance(m, nn.Linear) else None
              for m in model]
    R, f, shares = ref.relu_chain(layers, x.numpy(), expl.target.numpy(),
                                  lambda a, W, b, R: ref.epsilon(a, W, b, R, 1e-6),
                                  lambda a, W, b, R: ref.epsilon_share(a, W, b, R, 1e-6))
    np.testing.assert_allclose(expl.output.numpy(), f, rtol=1e-12)
    np.testing.assert_allclose(expl.relevance.numpy(), R, rtol=1e-9, atol=1e-12)
    assert all(np.abs(s).max() > 1e-3 for s in shares)  # both layers' biases take a visible share
    np.testing.assert_allclose(expl.absorbed.numpy(), shares[0] + shares[1], rtol=1e-9, atol=1e-12)
