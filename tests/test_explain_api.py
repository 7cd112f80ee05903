"""The public API contract: neon.explain, neon.Explainer, neon.Explanation, and bad input."""

from __future__ import annotations

import dense_reference as ref
import numpy as np
import pytest
import torch
from torch import nn

import neon
from neon.exceptions import UnsupportedLayerError, UnsupportedModelError


def mlp(dtype=torch.float64) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)).to(dtype).eval()


def _dense_epsilon(model: nn.Sequential, X: np.ndarray, target) -> tuple:
    """Dense LRP-epsilon (the default rule, eps = 1e-6) through ``model``: ``(R, f, shares per layer)``."""
    layers = [(m.weight.detach().double().numpy(), m.bias.detach().double().numpy()) if isinstance(m, nn.Linear)
              else None for m in model]
    return ref.relu_chain(layers, X, np.asarray(target), lambda a, W, b, R: ref.epsilon(a, W, b, R, 1e-6),
                          lambda a, W, b, R: ref.epsilon_share(a, W, b, R, 1e-6))


def cnn() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(16, 3)).double().eval()


def test_numpy_in_numpy_out_and_fields_have_the_right_shapes() -> None:
    X = np.random.default_rng(0).normal(size=(6, 4))
    expl = neon.explain(mlp(), X, output="logit")
    assert isinstance(expl.relevance, np.ndarray) and expl.relevance.shape == X.shape
    assert expl.relevance.dtype == np.float64
    for field in (expl.output, expl.target, expl.absorbed):
        assert isinstance(field, np.ndarray) and field.shape == (6,)
    logits = mlp()(torch.from_numpy(X)).detach().numpy()
    np.testing.assert_array_equal(expl.target, logits.argmax(1))
    np.testing.assert_allclose(expl.output, logits.max(1), rtol=1e-12)
    np.testing.assert_allclose(expl.absorbed, expl.output - expl.relevance.sum(1), rtol=1e-12)
    # ... and absorbed is what the biases and stabilisers take, layer by layer, in a dense reference.
    R, f, shares = _dense_epsilon(mlp(), X, expl.target)
    np.testing.assert_allclose(expl.relevance, R, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(expl.absorbed, sum(shares), rtol=1e-9, atol=1e-12)
    assert np.abs(expl.absorbed).min() > 1e-3


def test_torch_in_torch_out_same_dtype() -> None:
    x = torch.randn(5, 4, dtype=torch.float32)
    expl = neon.explain(mlp(torch.float32), x, output="logit")
    assert isinstance(expl.relevance, torch.Tensor) and expl.relevance.dtype == torch.float32
    assert expl.relevance.device == x.device and expl.output.dtype == torch.float32
    # float32 numpy into a float64 model: computed in float64, returned as float32.
    e2 = neon.explain(mlp(), x.numpy(), output="logit")
    assert e2.relevance.dtype == np.float32
    e64 = neon.explain(mlp(), x.double().numpy(), output="logit")
    np.testing.assert_allclose(e2.relevance, e64.relevance, rtol=1e-5, atol=1e-6)


def test_explainer_fit_returns_self_and_call_equals_explain() -> None:
    X = np.random.default_rng(1).normal(size=(10, 4))
    explainer = neon.Explainer(mlp(), rules="epsilon", output="logit")
    assert explainer.fit(X) is explainer
    assert isinstance(explainer.network_, neon.Network)
    a, b = explainer.explain(X[:3], target=1), explainer(X[:3], target=1)
    np.testing.assert_array_equal(a.relevance, b.relevance)
    np.testing.assert_array_equal(a.target, [1, 1, 1])


def test_targets_per_sample_and_out_of_range() -> None:
    X = np.random.default_rng(2).normal(size=(4, 4))
    expl = neon.explain(mlp(), X, target=[0, 1, 2, 0], output="logit")
    logits = mlp()(torch.from_numpy(X)).detach().numpy()
    np.testing.assert_allclose(expl.output, logits[np.arange(4), [0, 1, 2, 0]], rtol=1e-12)
    with pytest.raises(ValueError, match="out of range"):
        neon.explain(mlp(), X, target=3, output="logit")
    with pytest.raises(ValueError, match="one per sample"):
        neon.explain(mlp(), X, target=[0, 1], output="logit")


def test_empty_input_gives_an_empty_explanation() -> None:
    expl = neon.Explainer(mlp(), output="logit").fit().explain(np.zeros((0, 4)))
    assert expl.relevance.shape == (0, 4) and expl.output.shape == (0,) and len(expl) == 0


@pytest.mark.parametrize("X,match", [
    (np.array([[1.0, np.nan, 0.0, 0.0]]), "NaN"),
    (np.array([[1.0, np.inf, 0.0, 0.0]]), "inf"),
    (np.array([["a", "b", "c", "d"]]), "numeric"),
    (np.zeros(4), "batch"),
])
def test_bad_input_raises_value_error(X, match) -> None:
    with pytest.raises(ValueError, match=match):
        neon.explain(mlp(), X, output="logit")


def test_wrong_per_sample_shape_is_named() -> None:
    explainer = neon.Explainer(cnn(), rules="epsilon", output="logit", input_shape=(1, 4, 4)).fit()  # no data needed
    with pytest.raises(ValueError, match=r"\(1, 5, 5\)"):
        explainer.explain(torch.zeros(2, 1, 5, 5, dtype=torch.float64))


def test_unsupported_layers_are_named_with_what_is_supported() -> None:
    class Sorts(nn.Module):
        def forward(self, x):
            return torch.sort(x, dim=1).values

    with pytest.raises(UnsupportedLayerError, match=r"torch\.sort.*Supported:"):
        neon.neuralize(nn.Sequential(nn.Linear(3, 3), Sorts()))
    with pytest.raises(UnsupportedLayerError, match="LSTM"):
        neon.neuralize(nn.Sequential(nn.LSTM(3, 3)))


def test_untraceable_models_are_refused() -> None:
    class Branchy(nn.Module):
        def forward(self, x):
            if x.sum() > 0:
                return x
            return -x

    with pytest.raises(UnsupportedModelError, match="cannot trace"):
        neon.neuralize(Branchy())


def test_unknown_model_types_are_refused() -> None:
    with pytest.raises(UnsupportedModelError, match="cannot neuralize"):
        neon.neuralize(object())


def _snapshot(model: nn.Module):
    return ({k: v.clone() for k, v in model.state_dict().items()},
            [(m.training, len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks))
             for m in model.modules()],
            [p.requires_grad for p in model.parameters()], set(vars(model)))


def test_the_users_model_is_untouched_also_after_errors() -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(inplace=True), nn.Flatten(),
                          nn.Linear(8, 2))
    model.train()
    model[0].weight.requires_grad_(False)
    before = _snapshot(model)
    with pytest.raises(neon.UnsupportedModelError, match="training mode"):  # batch norm on batch statistics
        neon.explain(model, torch.randn(3, 1, 4, 4), rules="epsilon_gamma_box", output="log-odds")
    after = _snapshot(model)
    for k in before[0]:
        assert torch.equal(before[0][k], after[0][k]), k
    assert before[1:] == after[1:]
    model.eval()
    before = _snapshot(model)
    neon.explain(model, torch.randn(3, 1, 4, 4), rules="epsilon_gamma_box", output="log-odds")
    with pytest.raises(ValueError):
        neon.explain(model, torch.full((1, 1, 4, 4), float("nan")))
    with pytest.raises(neon.RuleError):
        neon.explain(model, torch.randn(3, 1, 4, 4), rules={"nope": neon.rules.Epsilon()})
    after = _snapshot(model)
    for k in before[0]:
        assert torch.equal(before[0][k], after[0][k]), k
    assert before[1:] == after[1:]


def test_batch_independence_with_data_dependent_rules() -> None:
    x = torch.rand(8, 1, 4, 4, dtype=torch.float64)
    explainer = neon.Explainer(cnn(), rules="epsilon_gamma_box", output="logit").fit(x)
    batch = explainer.explain(x).relevance
    for i in (0, 5):
        alone = explainer.explain(x[i:i + 1]).relevance
        torch.testing.assert_close(alone, batch[i:i + 1], rtol=1e-12, atol=1e-14)


def test_data_dependent_rules_need_fit_data() -> None:
    with pytest.raises(ValueError, match="need fit data"):
        neon.Explainer(cnn(), rules="epsilon_gamma_box").fit()


def test_explanation_indexing_and_summary() -> None:
    X = np.random.default_rng(3).normal(size=(5, 4))
    expl = neon.explain(mlp(), X, output="logit")
    sub = expl[1:3]
    assert len(sub) == 2 and sub.relevance.shape == (2, 4)
    np.testing.assert_array_equal(expl[4].relevance, expl.relevance[4:5])
    assert "Explanation(n=5" in repr(expl)
    np.testing.assert_allclose(expl.conservation_error(), 0.0, atol=1e-12)
    # The bookkeeping above holds by construction; absorbed itself against a dense reference, and sliced along.
    _, _, shares = _dense_epsilon(mlp(), X, expl.target)
    np.testing.assert_allclose(expl.absorbed, sum(shares), rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(sub.absorbed, expl.absorbed[1:3])
    np.testing.assert_array_equal(expl[4].absorbed, expl.absorbed[4:5])


def test_chunked_explanations_equal_one_batch() -> None:
    X = np.random.default_rng(4).normal(size=(11, 4))
    a = neon.Explainer(mlp(), output="log-odds").fit().explain(X)
    b = neon.Explainer(mlp(), output="log-odds", batch_size=3).fit().explain(X)
    np.testing.assert_allclose(a.relevance, b.relevance, rtol=1e-12)


def test_explaining_inside_inference_mode_gives_the_same_relevance() -> None:
    # Average pooling and flatten take a vector-Jacobian product with autograd; a caller's
    # torch.inference_mode() (common in serving code and notebooks) must not break it.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                          nn.Linear(16, 3)).eval()
    x = torch.randn(4, 3, 8, 8)
    explainer = neon.Explainer(model, rules=neon.composites.EpsilonGammaBox(low=-3.0, high=3.0)).fit(x)
    want = explainer.explain(x)
    with torch.inference_mode():
        got = neon.Explainer(model, rules=neon.composites.EpsilonGammaBox(low=-3.0, high=3.0)).fit(x).explain(x)
    torch.testing.assert_close(got.relevance, want.relevance, rtol=0, atol=0)
    torch.testing.assert_close(got.output, want.output, rtol=0, atol=0)
    assert float(want.relevance.abs().sum()) > 0
