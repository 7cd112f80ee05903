"""torch in -> torch out on the same device: the explanation of a CUDA tensor equals the CPU one.

Skipped without a GPU; run on a GPU machine with ``pytest tests/test_device.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import neon

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _cnn() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                         nn.Linear(32, 5)).double().eval()


@cuda
@pytest.mark.parametrize("rules", ["epsilon", "epsilon_gamma_box", "epsilon_alpha2_beta1_flat", "overview"])
def test_cuda_explanation_equals_cpu(rules: str) -> None:
    model = _cnn()
    x = torch.rand(4, 3, 16, 16, dtype=torch.float64)
    cpu = neon.Explainer(model, rules=rules, output="log-odds").fit(x).explain(x)
    gpu_model = _cnn().cuda()
    xg = x.cuda()
    gpu = neon.Explainer(gpu_model, rules=rules, output="log-odds").fit(xg).explain(xg)
    assert gpu.relevance.device == xg.device and gpu.relevance.dtype == torch.float64
    assert gpu.output.device == xg.device
    torch.testing.assert_close(gpu.relevance.cpu(), cpu.relevance, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(gpu.target.cpu().numpy(), cpu.target.numpy())


@cuda
def test_cpu_model_explains_cuda_input_on_the_input_device() -> None:
    model = _cnn()
    xg = torch.rand(2, 3, 16, 16, dtype=torch.float64, device="cuda")
    expl = neon.explain(model, xg, rules="epsilon", output="logit")
    assert expl.relevance.device == xg.device
    ref = neon.explain(model, xg.cpu(), rules="epsilon", output="logit")
    torch.testing.assert_close(expl.relevance.cpu(), ref.relevance, rtol=1e-9, atol=1e-12)
    # the user's model stays where it was
    assert next(model.parameters()).device.type == "cpu"


@cuda
def test_neon_converters_run_on_cuda_inputs() -> None:
    from sklearn.cluster import KMeans
    from sklearn.datasets import load_wine
    from sklearn.svm import OneClassSVM

    X = load_wine().data
    X = (X - X.mean(0)) / X.std(0)
    for model in (KMeans(3, n_init=3, random_state=0).fit(X), OneClassSVM(gamma=0.1).fit(X)):
        explainer = neon.Explainer(model).fit(X)
        cpu = explainer.explain(X)
        gpu = explainer.explain(torch.from_numpy(X).cuda())
        assert gpu.relevance.device.type == "cuda"
        np.testing.assert_allclose(gpu.relevance.cpu().numpy(), cpu.relevance, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(gpu.output.cpu().numpy(), cpu.output, rtol=1e-12)
