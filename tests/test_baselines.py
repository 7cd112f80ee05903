"""neon.baselines against independent references: finite differences, completeness, direct loops, captum."""

from __future__ import annotations

import sys

import joblib
import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans
from sklearn.datasets import load_wine

import neon
from neon import baselines

RNG = np.random.default_rng(0)


def _mlp(bias: bool = True, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(5, 8, bias=bias), torch.nn.ReLU(), torch.nn.Linear(8, 8, bias=bias),
                               torch.nn.ReLU(), torch.nn.Linear(8, 3, bias=bias)).double()


def _log_odds(model: torch.nn.Module, x: torch.Tensor, t: np.ndarray) -> torch.Tensor:
    with torch.no_grad():
        p = torch.softmax(model(x), 1).gather(1, torch.as_tensor(t).view(-1, 1))[:, 0]
    return torch.log(p) - torch.log1p(-p)


@pytest.fixture(scope="module")
def case():
    model = _mlp()
    model_sm = torch.nn.Sequential(model, torch.nn.Softmax(-1))  # explained output: log-odds
    return model, model_sm, RNG.normal(size=(7, 5))


def test_gradient_matches_finite_differences(case):
    model, model_sm, X = case
    e = baselines.gradient(model_sm, X)
    t = np.asarray(e.target)
    h = 1e-6
    x = torch.as_tensor(X)
    for i in range(5):
        dx = torch.zeros_like(x)
        dx[:, i] = h
        fd = (_log_odds(model, x + dx, t) - _log_odds(model, x - dx, t)) / (2 * h)
        np.testing.assert_allclose(e.relevance[:, i], fd.numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(e.output, _log_odds(model, x, t).numpy(), rtol=1e-12)
    np.testing.assert_array_equal(t, torch.softmax(model(x), 1).argmax(1).numpy())
    gi = baselines.gradient_x_input(model_sm, X)
    np.testing.assert_allclose(gi.relevance, X * e.relevance, rtol=1e-12)


def test_target_and_torch_round_trip(case):
    model, model_sm, X = case
    e = baselines.gradient(model_sm, torch.as_tensor(X), target=2)
    assert isinstance(e.relevance, torch.Tensor) and e.relevance.dtype == torch.float64
    assert (np.asarray(e.target) == 2).all()
    np.testing.assert_allclose(e.relevance.numpy(), baselines.gradient(model_sm, X, target=2).relevance, rtol=1e-12)
    with pytest.raises(ValueError, match="out of range"):
        baselines.gradient(model_sm, X, target=5)


def test_gradient_x_input_equals_lrp0_on_bias_free_relu_net():
    model = _mlp(bias=False)
    X = RNG.normal(size=(9, 5))
    gi = baselines.gradient_x_input(model, X)
    lrp = neon.explain(model, X, rules="lrp0")
    np.testing.assert_allclose(gi.relevance, lrp.relevance, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(gi.relevance.sum(1), gi.output, rtol=1e-9)  # Euler: homogeneous of degree 1


def test_integrated_gradients_completeness(case):
    model, model_sm, X = case
    e = baselines.integrated_gradients(model_sm, X, baseline=0.0, steps=512)
    t = np.asarray(e.target)
    f_x = _log_odds(model, torch.as_tensor(X), t).numpy()
    f_0 = _log_odds(model, torch.zeros(len(X), 5, dtype=torch.float64), t).numpy()
    np.testing.assert_allclose(e.relevance.sum(1), f_x - f_0, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(e.output, f_x - f_0, rtol=1e-12)
    np.testing.assert_allclose(e.baseline, f_0, rtol=1e-12)
    m = baselines.integrated_gradients(model_sm, X, baseline="mean", steps=512)
    f_m = _log_odds(model, torch.as_tensor(np.broadcast_to(X.mean(0), X.shape).copy()), t).numpy()
    np.testing.assert_allclose(m.relevance.sum(1), f_x - f_m, rtol=1e-3, atol=1e-4)
    with pytest.raises(ValueError, match="steps"):
        baselines.integrated_gradients(model_sm, X, steps=0)


def test_integrated_gradients_matches_captum():
    from captum.attr import IntegratedGradients

    model = _mlp()
    X = RNG.normal(size=(6, 5))
    e = baselines.integrated_gradients(model, X, steps=20)  # logits (no softmax): neon explains the logit
    t = torch.as_tensor(np.asarray(e.target))
    ref = IntegratedGradients(model).attribute(torch.as_tensor(X), target=t, n_steps=21, method="riemann_trapezoid")
    # same 21 points; captum weighs them 1/21 (ends 1/42), neon 1/20 (ends 1/40); captum's alphas are float32
    np.testing.assert_allclose(e.relevance * 20 / 21, ref.numpy(), rtol=1e-6, atol=1e-12)


def test_occlusion_matches_loop_and_captum():
    from captum.attr import Occlusion

    torch.manual_seed(3)
    cnn = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(2 * 4 * 4, 3)).double()
    X = RNG.normal(size=(4, 1, 6, 6))
    e = baselines.occlusion(cnn, X, target=1, patch=(1, 2, 2), stride=(1, 1, 1), value=0.5)
    ref = Occlusion(cnn).attribute(torch.as_tensor(X), target=1, sliding_window_shapes=(1, 2, 2), strides=(1, 1, 1),
                                   baselines=0.5)
    # captum divides by float32 window counts: agreement to float32 precision
    np.testing.assert_allclose(e.relevance, ref.numpy(), rtol=1e-6, atol=1e-9)
    # non-overlapping patches, checked by a loop over samples and patches
    e2 = baselines.occlusion(cnn, X, target=2, patch=3)
    with torch.no_grad():
        f = cnn(torch.as_tensor(X))[:, 2].numpy()
        for i in range(len(X)):
            for a in range(2):
                for b in range(2):
                    z = X[i:i + 1].copy()
                    z[..., 3 * a:3 * a + 3, 3 * b:3 * b + 3] = 0.0
                    drop = f[i] - float(cnn(torch.as_tensor(z))[0, 2])
                    np.testing.assert_allclose(e2.relevance[i, 0, 3 * a:3 * a + 3, 3 * b:3 * b + 3], drop, rtol=1e-9)


def test_occlusion_on_kmeans_feature_ablation():
    X = load_wine().data[:40, :4]
    km = KMeans(3, n_init=4, random_state=0).fit(X)
    h = joblib.hash(km)
    e = baselines.occlusion(km, X[:6], value="mean", background=X)
    mu = km.cluster_centers_

    def logit(z, c):
        d = ((z - mu) ** 2).sum(1)
        return min(d[k] - d[c] for k in range(3) if k != c)

    c = km.predict(X[:6])
    for i in range(6):
        for j in range(4):
            z = X[i].copy()
            z[j] = X[:, j].mean()
            np.testing.assert_allclose(e.relevance[i, j], logit(X[i], c[i]) - logit(z, c[i]), rtol=1e-8, atol=1e-8)
    assert joblib.hash(km) == h


@pytest.mark.slow
def test_shapley_sampling_exact_on_linear_model():
    torch.manual_seed(0)
    lin = torch.nn.Linear(4, 2).double()
    X = RNG.normal(size=(5, 4))
    bg = RNG.normal(size=(20, 4))
    e = baselines.shapley_sampling(lin, X, target=0, background=bg, n_permutations=2)
    w = lin.weight.detach().numpy()[0]
    np.testing.assert_allclose(e.relevance, w * (X - bg.mean(0)), rtol=1e-8, atol=1e-10)  # additive model: exact
    np.testing.assert_allclose(e.relevance.sum(1), e.output, rtol=1e-8)  # efficiency
    one = torch.nn.Linear(4, 1).double()  # a single output: shap drops the output axis
    e1 = baselines.shapley_sampling(one, X, background=bg, n_permutations=1)
    np.testing.assert_allclose(e1.relevance, one.weight.detach().numpy()[0] * (X - bg.mean(0)), rtol=1e-8, atol=1e-10)
    state = np.random.get_state()[1].copy()
    baselines.shapley_sampling(lin, X, background=bg, n_permutations=1)
    np.testing.assert_array_equal(np.random.get_state()[1], state)  # global numpy generator left alone


def test_shapley_without_shap_says_so(monkeypatch, case):
    model, model_sm, X = case
    monkeypatch.setitem(sys.modules, "shap", None)
    with pytest.raises(ImportError, match="pip install shap"):
        baselines.shapley_sampling(model_sm, X)


def test_baselines_do_not_modify_inputs(case):
    model, model_sm, X = case
    X0 = X.copy()
    xt = torch.as_tensor(X.copy())
    xt0 = xt.clone()
    for fn in (baselines.gradient, baselines.integrated_gradients, baselines.occlusion):
        fn(model_sm, X)
        fn(model_sm, xt)
    np.testing.assert_array_equal(X, X0)
    assert torch.equal(xt, xt0)


def test_bad_input(case):
    model, model_sm, X = case
    with pytest.raises(ValueError, match="patch"):
        baselines.occlusion(model_sm, X, patch=9)
    with pytest.raises(ValueError, match="shape"):
        baselines.integrated_gradients(model_sm, X, baseline=np.zeros(3))
