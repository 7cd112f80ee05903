"""neon.metrics against direct per-sample loops written from the definitions (docs/theory.md §5)."""

from __future__ import annotations

import dense_reference as dense
import joblib
import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans
from sklearn.datasets import load_wine

import neon
from neon import metrics

RNG = np.random.default_rng(0)


def _mlp(d_in: int = 6, n_out: int = 3, bias: bool = True, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(d_in, 10, bias=bias), torch.nn.ReLU(),
                               torch.nn.Linear(10, n_out, bias=bias)).double()


def _log_odds(model: torch.nn.Module, x: np.ndarray, t: int) -> float:
    """eta_t = log p_t / (1 - p_t) straight from the model's logits."""
    with torch.no_grad():
        z = model(torch.as_tensor(x[None], dtype=torch.float64))[0]
    p = torch.softmax(z, 0)[t]
    return float(torch.log(p) - torch.log1p(-p))


def _ref_curve(f, x: np.ndarray, rel: np.ndarray, repl: np.ndarray, bounds: list[int], morf: bool) -> np.ndarray:
    """One sample at a time: sort, replace cumulatively, evaluate."""
    flat, r = x.reshape(-1), rel.reshape(-1)
    order = np.argsort(-r if morf else r, kind="stable")
    out = []
    for b in bounds:
        z = flat.copy()
        z[order[:b]] = repl.reshape(-1)[order[:b]]
        out.append(f(z.reshape(x.shape)))
    return np.array(out)


@pytest.fixture(scope="module")
def mlp_case():
    model = _mlp()
    X = RNG.normal(size=(12, 6))
    model_sm = torch.nn.Sequential(model, torch.nn.Softmax(-1))  # neon then explains the log-odds
    expl = neon.explain(model_sm, X)
    return model, model_sm, X, expl


def _normal_draws(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """The N(0, 1) draws the "noise" replacement documents: torch's generator seeded ``random_state``."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).numpy()


def _numpy_replacement(X: np.ndarray, replace, background: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
    """Every replacement value written with numpy from its definition (neon.metrics.replace)."""
    bg = X if background is None else background
    if replace == "zero":
        return np.zeros_like(X)
    if replace == "mean":
        return np.broadcast_to(bg.mean(0), X.shape)
    if replace == "min":  # each sample's own minimum over all its features
        return np.broadcast_to(X.reshape(len(X), -1).min(1).reshape((-1,) + (1,) * (X.ndim - 1)), X.shape)
    if replace == "noise":  # N(mean_i, std_i) of the background per feature (sample std, ddof=1)
        return bg.mean(0) + bg.std(0, ddof=1) * _normal_draws(X.shape, seed)
    return np.full_like(X, replace)


@pytest.mark.parametrize("order", ["morf", "lerf"])
@pytest.mark.parametrize("replace", ["zero", "mean", "min", "noise", 0.7])
def test_pixel_flipping_matches_loop(mlp_case, order, replace):
    model, model_sm, X, expl = mlp_case
    res = metrics.pixel_flipping(expl, model_sm, X, order=order, replace=replace)
    repl = _numpy_replacement(X, replace)
    tgt = np.asarray(expl.target)
    for i in range(len(X)):
        ref = _ref_curve(lambda z, t=tgt[i]: _log_odds(model, z, t), X[i], expl.relevance[i], repl[i],
                         list(range(7)), order == "morf")
        np.testing.assert_allclose(res.curve[i], ref, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(res.scores[i], np.trapezoid(ref, np.linspace(0, 1, 7)), rtol=1e-10)
    np.testing.assert_allclose(res.fractions, np.linspace(0, 1, 7))
    assert res.higher_is_better == (order == "lerf")
    assert "better" in res.direction and res.replace is not None
    np.testing.assert_allclose(res.details["aopc"], (res.curve[:, :1] - res.curve).mean(1))


def test_pixel_flipping_steps_and_features_per_step(mlp_case):
    model, model_sm, X, expl = mlp_case
    full = metrics.pixel_flipping(expl, model_sm, X)
    per2 = metrics.pixel_flipping(expl, model_sm, X, features_per_step=4)  # boundaries 0, 4, 6
    np.testing.assert_allclose(per2.curve, full.curve[:, [0, 4, 6]], rtol=1e-12)
    three = metrics.pixel_flipping(expl, model_sm, X, steps=3)  # boundaries 0, 2, 4, 6
    np.testing.assert_allclose(three.curve, full.curve[:, [0, 2, 4, 6]], rtol=1e-12)
    with pytest.raises(ValueError, match="not both"):
        metrics.pixel_flipping(expl, model_sm, X, steps=3, features_per_step=2)


def test_flipping_numpy_and_torch_agree_and_explainer_source(mlp_case):
    model, model_sm, X, expl = mlp_case
    ex = neon.Explainer(model_sm).fit(X)
    a = metrics.pixel_flipping(ex, None, X, replace="mean")
    b = metrics.pixel_flipping(ex, None, torch.as_tensor(X), replace="mean")
    c = metrics.pixel_flipping(np.asarray(expl.relevance), model_sm, X, replace="mean", target=expl.target)
    np.testing.assert_allclose(a.curve, b.curve, rtol=1e-12)
    np.testing.assert_allclose(a.curve, c.curve, rtol=1e-12)


def test_metrics_do_not_modify_inputs(mlp_case):
    model, model_sm, X, expl = mlp_case
    Xc, Rc = X.copy(), np.array(expl.relevance, copy=True)
    Xt = torch.as_tensor(X.copy())
    Xt0 = Xt.clone()
    mask = np.zeros(X.shape, bool)
    mask[:, :2] = True
    mask0 = mask.copy()
    for data in (X, Xt):
        metrics.pixel_flipping(expl, model_sm, data, replace="noise")
        metrics.region_perturbation(expl, model_sm, data, patch_size=2, replace="mean")
    metrics.continuity(neon.Explainer(model_sm).fit(X), Xt)
    metrics.localization(expl, mask)
    metrics.positivity(expl)
    metrics.conservation(expl)
    np.testing.assert_array_equal(X, Xc)
    np.testing.assert_array_equal(expl.relevance, Rc)
    assert torch.equal(Xt, Xt0)
    np.testing.assert_array_equal(mask, mask0)


def _images(n: int = 5, seed: int = 1) -> tuple[torch.nn.Module, np.ndarray]:
    torch.manual_seed(seed)
    cnn = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(3 * 5 * 5, 4)).double()
    return cnn, np.random.default_rng(seed).normal(size=(n, 1, 5, 5))


@pytest.mark.parametrize("patch", [2, 3])
def test_region_perturbation_matches_loop(patch):
    cnn, X = _images()
    R = np.random.default_rng(2).normal(size=X.shape)
    net = neon.neuralize(cnn)  # logits
    res = metrics.region_perturbation(R, net, X, patch_size=patch, target=1, replace="zero")
    n_side = -(-5 // patch)
    for i in range(len(X)):
        scores = np.array([[R[i, 0, a * patch:(a + 1) * patch, b * patch:(b + 1) * patch].sum()
                            for b in range(n_side)] for a in range(n_side)]).reshape(-1)
        order = np.argsort(-scores, kind="stable")
        z = X[i].copy()
        curve = []
        for k in range(len(order) + 1):
            if k:
                a, b = divmod(order[k - 1], n_side)
                z[:, a * patch:(a + 1) * patch, b * patch:(b + 1) * patch] = 0.0
            with torch.no_grad():
                curve.append(float(cnn(torch.as_tensor(z[None]))[0, 1]))
        curve = np.array(curve)
        np.testing.assert_allclose(res.curve[i], curve, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(res.scores[i], (curve[0] - curve).mean(), rtol=1e-10, atol=1e-12)
    assert res.higher_is_better


def test_blur_replacement_is_a_normalised_gaussian():
    x = torch.zeros(1, 1, 9, 9, dtype=torch.float64)
    x[0, 0, 4, 4] = 1.0
    blurred, desc = metrics.replacement(x, "blur", blur_sigma=1.0)
    k = np.exp(-0.5 * np.arange(-3, 4) ** 2)
    k /= k.sum()
    np.testing.assert_allclose(blurred[0, 0, 1:8, 1:8].numpy(), np.outer(k, k), rtol=1e-10)
    assert "blur" in desc



@pytest.mark.parametrize("shape", [(7, 5), (4, 2, 3, 3)], ids=["tabular", "images"])
def test_min_replacement_is_each_samples_own_minimum(shape):
    X = np.random.default_rng(5).normal(size=shape)
    X[1] -= 4.0  # samples with different minima: a batch-wide or per-feature minimum would differ
    got, desc = metrics.replacement(torch.as_tensor(X), "min")
    np.testing.assert_array_equal(got.numpy(), _numpy_replacement(X, "min"))
    assert "min" in desc


def test_noise_replacement_is_seeded_normal_noise_with_the_backgrounds_moments():
    rng = np.random.default_rng(6)
    X = rng.normal(size=(9, 4))
    B = rng.normal(loc=[0.0, 5.0, -3.0, 1.0], scale=[1.0, 0.1, 4.0, 2.0], size=(40, 4))
    for background, seed in ((B, 3), (None, 0), (None, 11)):
        got, desc = metrics.replacement(torch.as_tensor(X), "noise", background=background, random_state=seed)
        np.testing.assert_allclose(got.numpy(), _numpy_replacement(X, "noise", background, seed), rtol=1e-12,
                                   atol=1e-12)
        assert f"seed={seed}" in desc and ("background" in desc) == (background is not None)
    # The seed decides the draws: the same seed twice gives the same values, another seed others.
    a = metrics.replacement(torch.as_tensor(X), "noise", random_state=1)[0]
    np.testing.assert_array_equal(a.numpy(), metrics.replacement(torch.as_tensor(X), "noise", random_state=1)[0])
    assert not np.allclose(a.numpy(), metrics.replacement(torch.as_tensor(X), "noise", random_state=2)[0].numpy())
    # Without reproducing the generator: many rows of noise have the background's mean and std per feature.
    many = np.zeros((20_000, 4))
    noise = metrics.replacement(torch.as_tensor(many), "noise", background=B, random_state=4)[0].numpy()
    mu, sd = B.mean(0), B.std(0, ddof=1)
    assert (np.abs(noise.mean(0) - mu) < 5 * sd / np.sqrt(len(many))).all(), (noise.mean(0), mu)
    np.testing.assert_allclose(noise.std(0, ddof=1), sd, rtol=0.03)


def test_noise_and_min_replacement_in_region_perturbation_match_the_loop():
    cnn, X = _images()
    R = np.random.default_rng(4).normal(size=X.shape)
    B = np.random.default_rng(5).normal(loc=2.0, size=(30,) + X.shape[1:])
    net = neon.neuralize(cnn)
    for replace, background in (("min", None), ("noise", B)):
        res = metrics.region_perturbation(R, net, X, patch_size=5, target=2, replace=replace, background=background,
                                          random_state=7)
        repl = _numpy_replacement(X, replace, background, 7)
        with torch.no_grad():  # one patch, the whole image: the curve is [f(x), f(replacement)]
            want = cnn(torch.as_tensor(np.stack([X, repl]).reshape((-1,) + X.shape[1:])))[:, 2].reshape(2, -1).T
        np.testing.assert_allclose(res.curve, want.numpy(), rtol=1e-10, atol=1e-12)


def test_flipping_sklearn_kmeans_cluster_logit():
    X = load_wine().data[:, :5]
    km = KMeans(3, n_init=4, random_state=0).fit(X)
    h = joblib.hash(km)
    R = np.random.default_rng(3).normal(size=(10, 5))
    res = metrics.pixel_flipping(R, km, X[:10], replace="mean", background=X)
    mu = km.cluster_centers_
    c = km.predict(X[:10])
    for i in range(10):
        def f(z, c=c[i]):
            d = ((z - mu) ** 2).sum(1)
            return min(d[k] - d[c] for k in range(3) if k != c)
        ref = _ref_curve(f, X[i], R[i], np.broadcast_to(X.mean(0), (5,)), list(range(6)), True)
        np.testing.assert_allclose(res.curve[i], ref, rtol=1e-8, atol=1e-8)
    assert joblib.hash(km) == h


def test_localization_by_hand():
    R = np.array([[3.0, -1.0, 1.0, 0.0], [0.0, 2.0, 2.0, -5.0]])
    mask = np.array([[True, True, False, False], [False, False, False, True]])
    res = metrics.localization(R, mask)
    np.testing.assert_allclose(res.scores, [3 / 4, 0.0])
    # top-2 of row 0: features 0, 2 -> one hit of 2; top-1 of row 1: feature 1 (tie with 2, lower index) -> miss
    np.testing.assert_allclose(res.details["top_k"], [0.5, 0.0])
    np.testing.assert_allclose(res.details["chance"], [0.5, 0.25])
    np.testing.assert_allclose(metrics.localization(R, mask[0], k=1).details["top_k"], [1.0, 1.0])
    np.testing.assert_allclose(metrics.localization(R, mask[1], k=2).details["top_k"], [0.0, 0.0])
    assert res.higher_is_better


def test_positivity_by_hand():
    res = metrics.positivity(np.array([[1.0, -1.0, 2.0], [0.0, 0.0, 0.0], [-1.0, -3.0, 0.0]]))
    np.testing.assert_allclose(res.scores, [0.25, 0.0, 1.0])
    assert not res.higher_is_better


def test_positivity_of_zplus_is_zero():
    model = _mlp(bias=False)
    X = np.abs(RNG.normal(size=(8, 6)))  # z+ promises positive relevance for positive activations
    expl = neon.explain(model, X, rules=neon.rules.ZPlus())
    assert metrics.positivity(expl).mean == pytest.approx(0.0, abs=1e-12)
    assert metrics.positivity(neon.explain(model, X, rules="lrp0")).mean > 0


def test_conservation():
    model = _mlp(bias=False)
    X = RNG.normal(size=(8, 6))
    exact = metrics.conservation(neon.explain(model, X, rules="lrp0"))  # bias-free ReLU net: exact
    assert exact.scores.max() < 1e-10
    biased = _mlp(bias=True)
    expl = neon.explain(biased, X, rules="lrp0")
    res = metrics.conservation(expl)
    with torch.no_grad():
        out = biased(torch.as_tensor(X)).gather(1, torch.as_tensor(np.asarray(expl.target)).view(-1, 1))[:, 0].numpy()
    ref = np.abs(out - expl.relevance.sum(1)) / np.abs(out)
    np.testing.assert_allclose(res.scores, ref, rtol=1e-8)
    # The gap is what the biases take under LRP-0, layer by layer in a dense reference (not from neon's R).
    layers = [(m.weight.detach().numpy(), m.bias.detach().numpy()) if isinstance(m, torch.nn.Linear) else None
              for m in biased]
    _, f, shares = dense.relu_chain(layers, X, np.asarray(expl.target),
                                    lambda a, W, b, R: dense.epsilon(a, W, b, R, 0.0),
                                    lambda a, W, b, R: dense.epsilon_share(a, W, b, R, 0.0))
    np.testing.assert_allclose(res.scores, np.abs(sum(shares)) / np.abs(f), rtol=1e-8)
    assert res.scores.max() > 1e-3 and res.details["bookkeeping_error"].max() < 1e-10
    assert not res.higher_is_better


def test_continuity_linear_model():
    torch.manual_seed(0)
    lin = torch.nn.Linear(5, 2, bias=False).double()
    X = RNG.normal(size=(6, 5))
    ex = neon.Explainer(lin, rules="lrp0").fit(X)  # R = w_t * x on a linear model
    res = metrics.continuity(ex, X, noise=0.05, n_perturbations=3, random_state=4)
    # the same draws as the metric: N(0, 1) from a torch generator seeded 4, scaled by noise * std(X)
    eps = torch.randn((3,) + X.shape, generator=torch.Generator().manual_seed(4), dtype=torch.float64).numpy()
    w = lin.weight.detach().numpy()
    t = np.asarray(ex(X).target)
    ratio = np.linalg.norm(w[t][None] * eps, axis=2) / np.linalg.norm(eps, axis=2)
    np.testing.assert_allclose(res.scores, ratio.mean(0), rtol=1e-8)
    assert not res.higher_is_better


def test_bad_input(mlp_case):
    model, model_sm, X, expl = mlp_case
    with pytest.raises(ValueError, match="shape"):
        metrics.pixel_flipping(np.zeros((12, 5)), model_sm, X)
    with pytest.raises(ValueError, match="mask has shape"):
        metrics.localization(expl, np.ones((12, 5), bool))
    with pytest.raises(ValueError, match="empty"):
        metrics.localization(expl, np.zeros((12, 6), bool))
    with pytest.raises(ValueError, match="blur"):
        metrics.pixel_flipping(expl, model_sm, X, replace="blur")
    with pytest.raises(ValueError, match="replace"):
        metrics.pixel_flipping(expl, model_sm, X, replace="median")
    with pytest.raises(ValueError, match="order"):
        metrics.pixel_flipping(expl, model_sm, X, order="random")
    with pytest.raises(ValueError, match="Explanation"):
        metrics.conservation(np.asarray(expl.relevance))
    with pytest.raises(ValueError, match="explainer"):
        metrics.continuity(expl, X)
    with pytest.raises(ValueError, match="model"):
        metrics.pixel_flipping(np.asarray(expl.relevance), None, X)
    with pytest.raises(ValueError, match="NaN"):
        metrics.pixel_flipping(np.full(X.shape, np.nan), model_sm, X)
    with pytest.raises(ValueError, match="target differs"):
        metrics.pixel_flipping(expl, model_sm, X, target=(np.asarray(expl.target) + 1) % 3)
    with pytest.raises(ValueError, match="patch_size"):
        metrics.region_perturbation(expl, model_sm, X, patch_size=7)
