"""Channels-last propagation (the CPU float32 default for convolutional nets) gives the NCHW relevance."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import neon
from neon.propagate.engine import prefers_channels_last, propagate


class Block(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu(x + self.conv2(self.relu(self.bn1(self.conv1(x)))))


def _net() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        Block(8), Block(8), nn.Conv2d(8, 16, 3, stride=2), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 5),
    )
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return net.eval()


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-10), (torch.float32, 1e-4)])
def test_channels_last_pass_equals_the_nchw_pass(dtype, tol) -> None:
    model = _net().to(dtype)
    explainer = neon.Explainer(model, rules=neon.composites.EpsilonGammaBox(low=-3.0, high=3.0)).fit()
    net = explainer.network_
    rules = explainer.rules_
    x = torch.randn(6, 3, 32, 32, dtype=dtype)
    nchw = propagate(net.steps, rules, x, None, record=True, channels_last=False)
    last = propagate(net.steps, rules, x, None, record=True, channels_last=True)
    assert last.relevance.is_contiguous() and not x.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(last.outputs, nchw.outputs, rtol=tol, atol=tol)
    torch.testing.assert_close(last.relevance, nchw.relevance, rtol=tol, atol=tol * nchw.relevance.abs().max())
    # inside, the pass really ran channels-last (a 4-D layer relevance is stored that way)
    four_d = [v for v in last.layers.values() if v.dim() == 4 and v.shape[1] > 1 and v.shape[-1] > 1]
    assert four_d and all(v.is_contiguous(memory_format=torch.channels_last) for v in four_d)


def test_the_layout_is_chosen_for_cpu_float32_images_through_convolutions_only() -> None:
    net32 = neon.neuralize(_net())
    mlp = neon.neuralize(nn.Sequential(nn.Flatten(), nn.Linear(12, 3)))
    x = torch.randn(2, 3, 2, 2)
    assert prefers_channels_last(net32.steps, x) == torch.backends.mkldnn.is_available()
    assert not prefers_channels_last(net32.steps, x.double())
    assert not prefers_channels_last(mlp.steps, x)
    # the default explanation of a float32 CNN equals the NCHW pass to float32 rounding
    explainer = neon.Explainer(_net(), rules="epsilon").fit()
    xs = torch.randn(3, 3, 32, 32)
    want = propagate(explainer.network_.steps, explainer.rules_, xs, None,
                     channels_last=False).relevance
    got = explainer.explain(xs).relevance
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4 * want.abs().max())
