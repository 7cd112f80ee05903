"""Every preset equals zennit 0.5.1 (matching composite and canonizers) on vgg16_bn and resnet50.

float64, random weights with non-trivial BatchNorm statistics, relative L2 error <= 1e-6. zennit is
started from ``output * one_hot`` (the logit's value), neon's convention (docs/theory.md §1).
The VGG classifier heads are narrowed (same layers and names, 32 hidden units) to keep the test
light; the convolutional trunks are torchvision's.

BatchNorm layers get ``eps = 0`` here: zennit 0.5.1's ``MergeBatchNorm`` folds ``1/sqrt(var + eps)``
into the convolution but then leaves the BatchNorm as ``x / sqrt(1 + eps)`` instead of the identity,
so with the default ``eps = 1e-5`` its canonized model is not the model (relative error ~5e-6 per
BatchNorm layer, ~1e-4 on the relevance of vgg16_bn). ``test_zennit_canonizer_changes_the_model``
shows this; neon's folding is exact for any ``eps``.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torchvision
import zennit.composites as zc
import zennit.rules as zr
import zennit.types as zt
from torch import nn
from zennit.attribution import Gradient
from zennit.torchvision import ResNetCanonizer, VGGCanonizer

import neon
from neon import composites as nc
from neon import rules as nr

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def build(name: str, seed: int = 0, bn_eps: float = 0.0) -> nn.Module:
    torch.manual_seed(seed)
    model = getattr(torchvision.models, name)(weights=None, num_classes=10)
    if name.startswith("vgg"):
        model.classifier[0] = nn.Linear(512 * 7 * 7, 32)
        model.classifier[3] = nn.Linear(32, 32)
        model.classifier[6] = nn.Linear(32, 10)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.weight.copy_(torch.rand(n) + 0.5)
                m.bias.copy_(0.1 * torch.randn(n))
                m.running_mean.copy_(0.1 * torch.randn(n))
                m.running_var.copy_(torch.rand(n) + 0.5)
                m.eps = bn_eps
            elif isinstance(m, nn.Linear):
                m.bias.copy_(0.1 * torch.randn(m.out_features))
    return model.double().eval()


def zennit_relevance(model: nn.Module, x: torch.Tensor, target: torch.Tensor, composite) -> torch.Tensor:
    model = copy.deepcopy(model)  # zennit's canonizers rewrite the model while attached
    one_hot = torch.nn.functional.one_hot(target, 10).to(x)
    with Gradient(model, composite) as attributor:
        _, rel = attributor(x.clone(), lambda out: out * one_hot)
    return rel


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


CANONIZERS = {"vgg16_bn": VGGCanonizer, "resnet50": ResNetCanonizer}
PRESETS = {
    "EpsilonGammaBox": (lambda c: zc.EpsilonGammaBox(low=-3.0, high=3.0, canonizers=c),
                        lambda: nc.EpsilonGammaBox(low=-3.0, high=3.0)),
    "EpsilonPlus": (lambda c: zc.EpsilonPlus(canonizers=c), nc.EpsilonPlus),
    "EpsilonPlusFlat": (lambda c: zc.EpsilonPlusFlat(canonizers=c), nc.EpsilonPlusFlat),
    "EpsilonAlpha2Beta1": (lambda c: zc.EpsilonAlpha2Beta1(canonizers=c), nc.EpsilonAlpha2Beta1),
    "EpsilonAlpha2Beta1Flat": (lambda c: zc.EpsilonAlpha2Beta1Flat(canonizers=c), nc.EpsilonAlpha2Beta1Flat),
}


@pytest.fixture(scope="module", params=["vgg16_bn", pytest.param("resnet50", marks=pytest.mark.slow)])
def arch(request):
    name = request.param
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    return name, build(name), x


@pytest.mark.parametrize("preset", list(PRESETS))
def test_preset_equals_zennit(arch, preset):
    name, model, x = arch
    make_zennit, make_neon = PRESETS[preset]
    target = torch.tensor([3, 7])
    e = neon.explain(model, x, target=target, rules=make_neon())
    ref = zennit_relevance(model, x, target, make_zennit([CANONIZERS[name]()]))
    assert rel_err(e.relevance, ref) <= 1e-6
    assert ref.abs().sum() > 0


def test_overrides_by_module_name_equal_zennit_name_map():
    model = build("vgg16")
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    target = torch.tensor([1, 8])
    rules = nc.EpsilonGammaBox(low=-3, high=3).with_overrides(
        {"features.0": nr.ZBox(-2, 2), "classifier.6": nr.Epsilon(0)})
    e = neon.explain(model, x, target=target, rules=rules)
    composite = zc.MixedComposite([
        zc.NameMapComposite([(("features.0",), zr.ZBox(-2.0, 2.0)), (("classifier.6",), zr.Epsilon(0.0))]),
        zc.EpsilonGammaBox(low=-3.0, high=3.0),
    ])
    ref = zennit_relevance(model, x, target, composite)
    assert rel_err(e.relevance, ref) <= 1e-6
    # The override changes the result: the check above could fail.
    plain = neon.explain(model, x, target=target, rules=nc.EpsilonGammaBox(low=-3, high=3)).relevance
    assert rel_err(plain, ref) > 1e-3


def test_rules_dict_overrides_the_default_epsilon():
    model = build("vgg16")
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    target = torch.tensor([0, 5])
    e = neon.explain(model, x, target=target, rules={"features.0": nr.ZBox(-2, 2), "features.2": nr.Gamma(0.5)})
    composite = zc.MixedComposite([
        zc.NameMapComposite([(("features.0",), zr.ZBox(-2.0, 2.0)), (("features.2",), zr.Gamma(0.5))]),
        zc.LayerMapComposite([(zt.Activation, zr.Pass()), (zt.AvgPool, zr.Norm()), (zt.Linear, zr.Epsilon(1e-6))]),
    ])
    ref = zennit_relevance(model, x, target, composite)
    assert rel_err(e.relevance, ref) <= 1e-6


def test_zennit_canonizer_changes_the_model_neon_folding_does_not():
    model = build("vgg16_bn", bn_eps=1e-5)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    with torch.no_grad():
        ref = model(x)
        canonized = copy.deepcopy(model)
        handles = [h for c in [VGGCanonizer()] for h in c.apply(canonized)]
        off = rel_err(canonized(x), ref)
        for h in handles:
            h.remove()
        torch.testing.assert_close(neon.neuralize(model)(x), ref, rtol=1e-12, atol=1e-12 * ref.abs().max().item())
    assert off > 1e-6  # zennit's merged BatchNorm is x / sqrt(1 + eps), not the identity
