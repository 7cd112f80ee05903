"""Real torchvision architectures (random weights, no downloads): exact forward, conservation, batch independence.

Every model is float64 with non-trivial BatchNorm statistics, so that folding is really exercised.
The conservation check is the independent one of docs/theory.md §5: with LRP-0 on every layer,
every bias and BatchNorm shift zero and exact (unstabilised) sums, relevance adds up to the logit.
"""

from __future__ import annotations

import dense_reference as ref
import pytest
import torch
import torchvision
from torch import nn

import neon
from neon.composites import Composite, EpsilonGammaBox
from neon.rules import Epsilon, Proportional

# name -> (smallest convenient input side, slow)
ARCHS = {
    "alexnet": (64, False),
    "resnet18": (32, False),
    "mobilenet_v2": (32, False),
    "densenet121": (32, True),
    "vgg16": (32, True),
    "vgg16_bn": (32, True),
    "resnet50": (32, True),
}


def params(names=ARCHS):
    return [pytest.param(n, marks=pytest.mark.slow) if ARCHS[n][1] else n for n in names]


def build(name: str, seed: int = 0, zero_bias: bool = False) -> nn.Module:
    """A torchvision model with random weights, random BatchNorm statistics, float64, evaluation mode."""
    torch.manual_seed(seed)
    model = getattr(torchvision.models, name)(weights=None, num_classes=10)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.weight.copy_(torch.rand(n) + 0.5)
                m.running_var.copy_(torch.rand(n) + 0.5)
                m.running_mean.copy_(torch.zeros(n) if zero_bias else 0.1 * torch.randn(n))
                m.bias.copy_(torch.zeros(n) if zero_bias else 0.1 * torch.randn(n))
            elif zero_bias and getattr(m, "bias", None) is not None:
                m.bias.zero_()
            elif isinstance(m, nn.Linear):  # torchvision starts some heads at zero bias / tiny weights
                m.bias.copy_(0.1 * torch.randn(m.out_features))
    return model.double().eval()


def inputs(name: str, n: int, seed: int = 1) -> torch.Tensor:
    side = ARCHS[name][0]
    return torch.randn(n, 3, side, side, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("name", params())
def test_forward_is_the_model_and_explanations_are_finite(name):
    model = build(name)
    x = inputs(name, 2)
    net = neon.neuralize(model)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())
    with torch.no_grad():
        ref = model(x)
        torch.testing.assert_close(net(x), ref, rtol=1e-10, atol=1e-12 * ref.abs().max().item())
    e = neon.explain(model, x, rules=EpsilonGammaBox(low=-3, high=3))
    assert e.relevance.shape == x.shape
    assert torch.isfinite(e.relevance).all() and e.relevance.abs().sum() > 0
    torch.testing.assert_close(e.output, ref.gather(1, ref.argmax(1, keepdim=True)).squeeze(1))


LRP0 = Composite(
    by_type=[("affine", Epsilon(0.0)), ("sum", Proportional(0.0)),
             ((nn.AvgPool2d, nn.AdaptiveAvgPool2d), Proportional(0.0))],
    name="exact lrp0",
)


@pytest.mark.parametrize("name", params())
def test_lrp0_without_biases_conserves_the_logit(name):
    model = build(name, zero_bias=True)
    x = inputs(name, 2)
    e = neon.explain(model, x, rules=LRP0, target=3)
    with torch.no_grad():
        logit = model(x)[:, 3]
    torch.testing.assert_close(e.output, logit)
    total = e.relevance.flatten(1).sum(1)
    assert ((total - logit).abs() <= 1e-6 * logit.abs()).all(), (total, logit)


@pytest.mark.parametrize("name", params(["resnet18", "vgg16_bn"]))
def test_a_sample_alone_or_in_a_batch_of_eight_gets_the_same_relevance(name):
    model = build(name)
    x = inputs(name, 8)
    explainer = neon.Explainer(model, rules=EpsilonGammaBox(low=-3, high=3)).fit()
    batch = explainer.explain(x, target=2).relevance
    for i in (0, 5):
        alone = explainer.explain(x[i : i + 1], target=2).relevance
        err = (alone[0] - batch[i]).norm() / batch[i].norm()
        assert err <= 1e-6


def test_log_odds_top_and_any_target():
    model = build("resnet18")
    x = inputs("resnet18", 3)
    with torch.no_grad():
        p = torch.softmax(model(x), dim=1)
    net = neon.neuralize(model, output="log-odds")
    with torch.no_grad():
        torch.testing.assert_close(net(x), torch.log(p / (1 - p)))
    explainer = neon.Explainer(model, output="log-odds", rules="epsilon_gamma_box").fit(x)
    e = explainer.explain(x, target=[7, 0, 4], record=True)
    torch.testing.assert_close(e.output, torch.log(p / (1 - p))[torch.arange(3), torch.tensor([7, 0, 4])])
    torch.testing.assert_close(e.relevance.flatten(1).sum(1) + e.absorbed, e.output)
    # absorbed is the sum of what every node keeps, each computed from its own formula (bias and stabiliser
    # terms of z^B, Gamma and the sums; the contrast bias of the log-odds top), not from the input relevance.
    shares = ref.node_shares(explainer.network_, explainer.rules_, x, e.layers, e.target)
    assert (shares["fc"].abs() > 1e-2).all() and len(shares) > 40
    torch.testing.assert_close(e.absorbed, sum(shares.values()), rtol=1e-9, atol=1e-12)
    assert torch.isfinite(e.relevance).all()


def test_train_mode_model_is_refused_and_left_in_train_mode():
    model = build("resnet18").train()
    x = inputs("resnet18", 2)
    with pytest.raises(neon.UnsupportedModelError, match=r"'bn1' \(BatchNorm2d\).*model\.eval\(\)"):
        neon.neuralize(model)
    assert model.training and all(m.training for m in model.modules())
    net = neon.neuralize(model.eval())  # the user's own call: then the network is the model
    with torch.no_grad():
        torch.testing.assert_close(net(x), model(x))
