"""``Explanation.absorbed`` against what every node's rule keeps, computed from its own formula.

``absorbed = output - sum(R)`` holds by construction, so a test of ``absorbed`` compares it with something
computed independently: here the bias and stabiliser share of every node (docs/theory.md §1-3), summed over
the network (``dense_reference.node_shares``). A small residual CNN with biases of both signs runs every
preset whose rules have such a formula; the shares are checked to be visible, so that a wrong bias term
in any rule (its sign, its positive or negative part) changes the expected total.
"""

from __future__ import annotations

import dense_reference as ref
import pytest
import torch
from torch import nn

import neon
from neon import composites


class ResidualCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, 4, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.conv3 = nn.Conv2d(4, 4, 3, padding=1)
        self.avg = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.pool(torch.relu(self.conv1(x)))
        b = torch.relu(self.conv2(a))
        a = torch.relu(self.conv3(b) + a)
        return self.fc(torch.flatten(self.avg(a), 1))


def _model() -> nn.Module:
    torch.manual_seed(0)
    model = ResidualCNN().double().eval()
    with torch.no_grad():
        for m in model.modules():
            if getattr(m, "bias", None) is not None:
                m.bias.copy_(0.5 * torch.randn_like(m.bias))
    return model


PRESETS = {
    "epsilon_gamma_box": lambda: composites.EpsilonGammaBox(low=-3.0, high=3.0),
    "epsilon_plus": composites.EpsilonPlus,
    "epsilon_plus_flat": composites.EpsilonPlusFlat,
    "epsilon_alpha2_beta1": composites.EpsilonAlpha2Beta1,
    "overview": lambda: composites.Overview(low=-3.0, high=3.0),
    "lrp0": lambda: "lrp0",
    "wsquare": lambda: neon.Composite(by_position={"first": neon.rules.WSquare()},
                                      by_type=[("affine", neon.rules.Epsilon(0.01))]),
}


@pytest.mark.parametrize("output", ["logit", "log-odds"])
@pytest.mark.parametrize("preset", list(PRESETS))
def test_absorbed_is_the_sum_of_every_nodes_bias_and_stabiliser_share(preset: str, output: str) -> None:
    model = _model()
    x = torch.randn(5, 2, 6, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    explainer = neon.Explainer(model, rules=PRESETS[preset](), output=output).fit(x)
    expl = explainer.explain(x, target=[0, 1, 2, 0, 1], record=True)
    shares = ref.node_shares(explainer.network_, explainer.rules_, x, expl.layers, expl.target)
    affine = [s.name for s in explainer.network_.steps if type(s.module).__name__ in ("Conv2d", "Linear", "LogOdds")]
    assert set(affine) <= set(shares) and len(affine) == 4
    # The biases really take something in the layers above the input (there z^B, Flat and w^2 cancel them or
    # weigh them little), so a wrong bias term changes the expected total.
    assert all(float(shares[name].abs().max()) > 1e-3 for name in affine[1:])
    torch.testing.assert_close(expl.absorbed, sum(shares.values()), rtol=1e-9, atol=1e-12)
