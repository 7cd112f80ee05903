"""Presets equal zennit 0.5.1 and captum; composites assign rules by name, position and type."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import zennit.attribution as zennit_attribution
import zennit.composites as zennit_composites
from torch import nn

import neon
from neon.composites import EpsilonGammaBox, Overview, preset
from neon.exceptions import RuleError
from neon.rules import Epsilon, Gamma, ZBox


def vgg_like() -> nn.Sequential:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
        nn.Linear(64, 32), nn.ReLU(), nn.Dropout(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 10),
    )
    return model.double().eval()


PRESETS = [
    ("epsilon_gamma_box", "EpsilonGammaBox", {"low": -3.0, "high": 3.0}),
    ("epsilon_plus", "EpsilonPlus", {}),
    ("epsilon_plus_flat", "EpsilonPlusFlat", {}),
    ("epsilon_alpha2_beta1", "EpsilonAlpha2Beta1", {}),
    ("epsilon_alpha2_beta1_flat", "EpsilonAlpha2Beta1Flat", {}),
]


@pytest.mark.parametrize("name,zennit_name,params", PRESETS)
def test_preset_equals_zennit(name: str, zennit_name: str, params: dict) -> None:
    model = vgg_like()
    x = torch.randn(3, 3, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    target = torch.tensor([0, 4, 9])
    composite = getattr(zennit_composites, zennit_name)(**params)
    with zennit_attribution.Gradient(model, composite) as attributor:
        out, want = attributor(x, lambda o: o * torch.eye(10, dtype=o.dtype)[target])
    expl = neon.explain(model, x, target=target, rules=preset(name, **params), output="logit")
    err = (expl.relevance - want).norm() / want.norm()
    assert err <= 1e-8, err
    want_out = out.gather(1, target[:, None]).squeeze(1).detach().numpy()
    np.testing.assert_allclose(expl.output.numpy(), want_out, rtol=1e-12)


def test_epsilon_preset_equals_captum_lrp() -> None:
    import captum.attr as captum_lrp
    from captum.attr._utils.lrp_rules import EpsilonRule

    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 4)).double().eval()
    for layer in model:
        if isinstance(layer, nn.Linear):
            layer.rule = EpsilonRule(epsilon=1e-3)
    x = torch.randn(6, 10, dtype=torch.float64)
    target = torch.tensor([0, 1, 2, 3, 0, 1])
    want = captum_lrp.LRP(model).attribute(x, target=target)
    for layer in model:  # captum leaves its own bookkeeping behind on the model; neon works on a copy anyway
        if hasattr(layer, "rule"):
            del layer.rule
    expl = neon.explain(model, x, target=target, rules=neon.composites.epsilon(1e-3), output="logit")
    np.testing.assert_allclose(expl.relevance.numpy(), want.detach().numpy(), rtol=1e-9, atol=1e-12)


def test_preset_names_are_forgiving_and_unknown_names_list_the_presets() -> None:
    assert isinstance(preset("EpsilonGammaBox", low=0, high=1), EpsilonGammaBox)
    assert isinstance(preset("epsilon-gamma-box", low=0, high=1), EpsilonGammaBox)
    with pytest.raises(RuleError, match="epsilon_plus_flat"):
        preset("nonsense")


def _rules_by_module(model: nn.Module, rules) -> dict[str, object]:
    net = neon.neuralize(model, output="logit")
    assigned = net.assign_rules(rules)
    return {str(s.node.target): assigned.get(s.name) for s in net.steps if s.node.op == "call_module"}


def test_epsilon_gamma_box_assignment_follows_zennit() -> None:
    by_module = _rules_by_module(vgg_like(), EpsilonGammaBox(low=-1, high=1))
    assert isinstance(by_module["0"], ZBox)
    assert all(isinstance(by_module[k], Gamma) for k in ("2", "5", "7"))
    assert all(isinstance(by_module[k], Epsilon) for k in ("12", "15", "17"))


def test_overview_splits_layers_into_thirds() -> None:
    by_module = _rules_by_module(vgg_like(), Overview(low=-1, high=1))
    # 7 affine layers: input z^B, then 6 split 2 / 2 / 2.
    assert isinstance(by_module["0"], ZBox)
    assert [type(by_module[k]).__name__ for k in ("2", "5", "7", "12", "15", "17")] == [
        "Gamma", "Gamma", "Epsilon", "Epsilon", "Epsilon", "Epsilon"]
    assert by_module["7"].relative and by_module["12"].relative
    assert by_module["15"].epsilon == 0.0 and by_module["17"].epsilon == 0.0


def test_name_overrides_win_over_type_and_position() -> None:
    rules = EpsilonGammaBox(low=-1, high=1).with_overrides({"0": Epsilon(0.5), "17": Epsilon(0.0)})
    by_module = _rules_by_module(vgg_like(), rules)
    assert by_module["0"].epsilon == 0.5 and by_module["17"].epsilon == 0.0
    assert isinstance(by_module["2"], Gamma)  # the first-layer rule does not move to the next conv


def test_dict_rules_override_the_default_and_unknown_names_are_errors() -> None:
    model = vgg_like()
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    a = neon.explain(model, x, rules={"17": Epsilon(0.0)}, output="logit")
    b = neon.explain(model, x, rules=neon.Composite(by_type=[("affine", Epsilon())], by_name={"17": Epsilon(0.0)}),
                     output="logit")
    np.testing.assert_allclose(a.relevance.numpy(), b.relevance.numpy(), rtol=1e-12)
    with pytest.raises(RuleError, match="no layer named"):
        neon.explain(model, x, rules={"classifier.99": Epsilon()}, output="logit")


def test_a_rule_on_the_wrong_layer_type_is_an_error() -> None:
    with pytest.raises(RuleError, match="cannot be applied"):
        neon.explain(vgg_like(), torch.randn(1, 3, 16, 16, dtype=torch.float64),
                     rules=neon.Composite(by_name={"1": Epsilon()}), output="logit")


def test_a_single_specialised_rule_applies_to_the_layers_it_supports() -> None:
    from sklearn.cluster import KMeans

    X = np.random.default_rng(0).normal(size=(60, 3))
    km = KMeans(3, n_init=3, random_state=0).fit(X)
    sharp = neon.explain(km, X, rules=neon.rules.SoftMin(beta=50.0))
    soft = neon.explain(km, X, rules=neon.rules.SoftMin(beta=0.0))
    assert not np.allclose(sharp.relevance, soft.relevance)
    with pytest.raises(RuleError, match="applies to none"):
        neon.explain(vgg_like(), torch.randn(1, 3, 16, 16, dtype=torch.float64), rules=neon.rules.SoftMin(1.0))
    with pytest.raises(RuleError, match="put it in a Composite"):
        neon.explain(vgg_like(), torch.randn(1, 3, 16, 16, dtype=torch.float64), rules=neon.rules.Pass())
