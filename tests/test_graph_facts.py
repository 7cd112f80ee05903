"""The facts the engine proves from the graph hold on the data, and using them never changes a result."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import neon
import neon.propagate.engine
from neon.composites import Composite
from neon.propagate.facts import MIXED, POSITIVE, layer_facts
from neon.rules import Epsilon, Flat, Gamma, WSquare, ZBox


class Bottleneck(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c // 2, 1)
        self.conv2 = nn.Conv2d(c // 2, c // 2, 3, padding=1)
        self.conv3 = nn.Conv2d(c // 2, c, 1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        out = self.relu(self.conv1(x))
        out = F.relu(self.conv2(out))
        out = self.conv3(out.view(out.shape))  # a rearrangement between the ReLU and conv3
        out += x
        return out


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.block = Bottleneck(8)
        self.block2 = Bottleneck(8)
        self.head = nn.Sequential(nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))

    def forward(self, x):
        x = self.pool(torch.relu(self.stem(x)))
        x = self.block2(torch.relu(self.block(x)))
        return self.head(x)


def _model() -> nn.Module:
    torch.manual_seed(0)
    return Net().double().eval()


def _facts(explainer):
    net = explainer.network_
    facts = layer_facts(net.steps, explainer.rules_)
    return net, {s.name: facts.get(s.node) for s in net.steps if s.kind == "layer"}


def test_facts_of_a_residual_net() -> None:
    explainer = neon.Explainer(_model(), rules=neon.composites.EpsilonGammaBox(low=-3.0, high=3.0)).fit()
    _, facts = _facts(explainer)
    assert facts["stem"].relevance_support == POSITIVE and not facts["stem"].inputs_nonnegative
    for block in ("block", "block2"):
        assert facts[f"{block}_conv1"].relevance_support == POSITIVE
        assert facts[f"{block}_conv2"].relevance_support == POSITIVE  # through F.relu and a view to conv3
        assert facts[f"{block}_conv3"].relevance_support == MIXED  # conv3 feeds the residual sum
    assert facts["block_conv1"].inputs_nonnegative  # after max pool of a ReLU
    assert facts["block2_conv1"].inputs_nonnegative  # after torch.relu of a sum
    assert facts["block_conv3"].inputs_nonnegative  # a view of a ReLU
    assert facts["head_3"].inputs_nonnegative  # flatten of an average pool of a ReLU


def test_a_rule_that_does_not_preserve_zeros_below_a_relu_withdraws_the_fact() -> None:
    # block_conv3 gets Flat: its input relevance does not vanish where the ReLU below is zero, so
    # block_conv2 -> relu -> view -> block_conv3 proves nothing about block_conv2.
    rules = Composite(by_name={"block.conv3": Flat()}, by_type=[(nn.Conv2d, Gamma(0.25)), (nn.Linear, Epsilon(0.1))])
    explainer = neon.Explainer(_model(), rules=rules).fit()
    _, facts = _facts(explainer)
    assert facts["block_conv1"].relevance_support == POSITIVE
    assert facts["block_conv2"] is None or facts["block_conv2"].relevance_support is None
    rules = Composite(by_name={"block.conv1": ZBox(-1.0, 1.0)}, by_type=[(nn.Conv2d, Gamma(0.25)),
                                                                        (nn.Linear, Epsilon(0.1))])
    _, facts = _facts(neon.Explainer(_model(), rules=rules).fit())
    # block_conv1 (ZBox) takes relevance from the pool's output: the stem loses its proven support
    assert facts["stem"] is None


RULE_SETS = {
    "EpsilonGammaBox": lambda: neon.composites.EpsilonGammaBox(low=-3.0, high=3.0),
    "EpsilonPlus": lambda: neon.composites.EpsilonPlus(),
    "EpsilonAlpha2Beta1": lambda: neon.composites.EpsilonAlpha2Beta1(),
    "lrp0": lambda: neon.composites.lrp0(),
    "gamma-without-stabilizer": lambda: Composite(
        by_type=[(nn.Conv2d, Gamma(0.25, stabilizer=0.0)), (nn.Linear, Epsilon(0.1))]),
    # rules that do not preserve zeros in the middle of the net: the facts above them must be withdrawn
    "gamma-with-flat-and-wsquare": lambda: Composite(
        by_name={"block.conv3": Flat(), "block2.conv1": WSquare()},
        by_type=[(nn.Conv2d, Gamma(0.25)), (nn.Linear, Epsilon(0.1))]),
}


@pytest.mark.parametrize("rule_set", list(RULE_SETS))
def test_every_claimed_fact_holds_on_the_data_and_using_them_changes_nothing(rule_set, monkeypatch) -> None:
    model = _model()
    rules = RULE_SETS[rule_set]()
    explainer = neon.Explainer(model, rules=rules).fit()
    net = explainer.network_
    rule_map = explainer.rules_
    facts = layer_facts(net.steps, rule_map)
    torch.manual_seed(1)
    x = torch.randn(5, 3, 8, 8, dtype=torch.float64)
    with_facts = neon.propagate.engine.propagate(net.steps, rule_map, x, None, record=True)
    # the claims, checked on the data: inputs >= 0, and relevance zero wherever the output is <= 0
    _, env = neon.propagate.engine.forward(net.steps, x)
    claimed = 0
    for s in net.steps:
        f = facts.get(s.node)
        if f is None:
            continue
        if f.inputs_nonnegative:
            assert all(bool((env[n] >= 0).all()) for n in s.inputs), s.name
            claimed += 1
        if f.relevance_support == POSITIVE:
            R = with_facts.layers[s.name]
            assert bool((R[env[s.node] <= 0] == 0).all()), s.name
            claimed += 1
    assert claimed >= 8
    monkeypatch.setattr(neon.propagate.engine, "layer_facts", lambda steps, rules: {})
    without = neon.propagate.engine.propagate(net.steps, rule_map, x, None)
    torch.testing.assert_close(with_facts.relevance, without.relevance, rtol=1e-12, atol=1e-14)
