"""SVC converters: RBF SVC (NEON of Bley et al. 2025), linear SVC and LinearSVC.

References are independent of neon: sklearn's own ``decision_function``/``predict``, and a dense,
slow implementation of docs/theory.md §4 ("RBF SVC") written with explicit ``n x n_SV x d``
broadcasting on a few samples, reading sklearn's libsvm attributes directly.
"""

from __future__ import annotations

import joblib
import numpy as np
import pytest
import torch
from scipy.spatial.distance import pdist
from scipy.special import logsumexp, softmax
from sklearn.datasets import load_breast_cancer, load_iris, load_wine, make_classification, make_moons
from sklearn.exceptions import NotFittedError
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, LinearSVC, NuSVC

import neon
from neon.exceptions import UnsupportedModelError
from neon.rules import SVCGradientInput, SVCHybrid, SVCMidpoint


def _data(name: str) -> tuple[np.ndarray, np.ndarray]:
    if name == "breast_cancer":
        X, y = load_breast_cancer(return_X_y=True)
    elif name == "iris":
        X, y = load_iris(return_X_y=True)
    elif name == "wine":
        X, y = load_wine(return_X_y=True)
    elif name == "moons":
        X, y = make_moons(300, noise=0.25, random_state=0)
    else:
        X, y = make_classification(400, 6, n_informative=4, n_redundant=0, n_classes=3, n_clusters_per_class=1,
                                   random_state=0)
    return StandardScaler().fit_transform(X), y


BINARY = ["breast_cancer", "moons"]
MULTI = ["iris", "wine", "classification"]


# ---------------------------------------------------------------- dense reference (docs/theory.md §4)
def ref_pairs(model: SVC) -> list[dict]:
    """Every one-vs-one pair straight from sklearn's attributes, oriented so that f_ab > 0 votes for a."""
    k = len(model.classes_)
    flip = -1.0 if k == 2 else 1.0  # sklearn negates dual_coef_/intercept_ of binary models
    starts = np.r_[0, np.cumsum(model.n_support_)]
    out, p = [], 0
    for a in range(k):
        for b in range(a + 1, k):
            ca = flip * model.dual_coef_[b - 1, starts[a]:starts[a + 1]]
            cb = flip * model.dual_coef_[a, starts[b]:starts[b + 1]]
            out.append(dict(a=a, b=b, pos=model.support_vectors_[starts[a]:starts[a + 1]][ca != 0], cpos=ca[ca != 0],
                            neg=model.support_vectors_[starts[b]:starts[b + 1]][cb != 0], cneg=-cb[cb != 0],
                            b0=flip * model.intercept_[p]))
            p += 1
    return out


def ref_pair(pair: dict, X: np.ndarray, gamma: float) -> dict:
    """g, the soft-min weights and the three per-feature decompositions of one pair, by broadcasting."""
    diff_p = X[:, None, :] - pair["pos"][None]  # (n, n+, d): fine for a handful of samples
    diff_n = X[:, None, :] - pair["neg"][None]
    dp, dn = (diff_p ** 2).sum(-1), (diff_n ** 2).sum(-1)
    n = len(X)
    b0 = pair["b0"]
    vp = np.log(b0) if b0 > 0 else -np.inf
    vn = np.log(-b0) if b0 < 0 else -np.inf
    up = np.concatenate([-gamma * dp + np.log(pair["cpos"]), np.full((n, 1), vp)], 1)
    un = np.concatenate([-gamma * dn + np.log(pair["cneg"]), np.full((n, 1), vn)], 1)
    g = logsumexp(up, 1) - logsumexp(un, 1)
    pp, pn = softmax(up, 1), softmax(un, 1)
    pp_sv, pn_sv = pp[:, :-1], pn[:, :-1]
    mid = gamma * ((pn_sv[..., None] * diff_n ** 2).sum(1) - (pp_sv[..., None] * diff_p ** 2).sum(1))
    # x * grad g: the real support vectors' total shares P+- need not sum to 1 (the intercept takes the rest)
    Pp, Pn = pp_sv.sum(1, keepdims=True), pn_sv.sum(1, keepdims=True)
    gi = gamma * X * 2 * ((pp_sv[..., None] * pair["pos"][None]).sum(1) - (pn_sv[..., None] * pair["neg"][None]).sum(1)
                          + (Pn - Pp) * X)
    # B = sum p+ log|a+| - sum p- log|a-| + H(p+) - H(p-), the virtual support vector at distance 0.
    def ent(p):
        return -(np.where(p > 0, p * np.log(np.where(p > 0, p, 1)), 0)).sum(1)
    logs_p = np.concatenate([np.log(pair["cpos"]), [vp]])
    logs_n = np.concatenate([np.log(pair["cneg"]), [vn]])
    B = ((pp * np.where(np.isfinite(logs_p), logs_p, 0)).sum(1) - (pn * np.where(np.isfinite(logs_n), logs_n, 0))
         .sum(1) + ent(pp) - ent(pn))
    return dict(g=g, mid=mid, gi=gi, B=B, f=np.exp(logsumexp(up, 1)) - np.exp(logsumexp(un, 1)))


def ref_explain(model: SVC, X: np.ndarray, eta: float, target: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """Relevance of f_c = min_c' g_cc' (soft-min over pairs, beta=1), each pair passing (R_p / g_p) m_p."""
    k, gamma = len(model.classes_), model._gamma
    pairs = [(pr, ref_pair(pr, X, gamma)) for pr in ref_pairs(model)]
    G = np.zeros((len(X), k, k))
    for pr, r in pairs:
        G[:, pr["a"], pr["b"]], G[:, pr["b"], pr["a"]] = r["g"], -r["g"]
    off = ~np.eye(k, dtype=bool)
    F = np.where(off[None], G, np.inf).min(2)
    t = F.argmax(1) if target is None else target
    rel = np.zeros_like(X)
    for i in range(len(X)):
        c = t[i]
        others = [o for o in range(k) if o != c]
        q = softmax(-G[i, c, others])
        for o, qo in zip(others, q):
            R = qo * F[i, c]
            for pr, r in pairs:
                if {pr["a"], pr["b"]} == {c, o}:
                    m = (1 - eta) * r["gi"][i] + eta * r["mid"][i]
                    # the oriented unit (c, o) has value G[c, o] and contributions +-m
                    rel[i] += R / G[i, c, o] * (m if pr["a"] == c else -m)
    return rel, F[np.arange(len(X)), t], t


# ---------------------------------------------------------------- exactness of the forward
@pytest.mark.parametrize("name", BINARY + MULTI)
@pytest.mark.parametrize("gamma", ["scale", 3.0])
def test_kernel_sums_equal_libsvm_decision_and_labels_agree(name: str, gamma) -> None:
    X, y = _data(name)
    model = SVC(gamma=gamma, decision_function_shape="ovo").fit(X, y)
    net = neon.neuralize(model)
    x = torch.as_tensor(X)
    lp, ln = net.graph_module.pairs.log_sums(x)
    dec = model.decision_function(X).reshape(len(X), -1)
    if len(model.classes_) == 2:
        dec = -dec  # libsvm orientation: positive votes for the first class
    # exp(log S+) - exp(log S-) is libsvm's decision function: the log-ratio is an exact rewriting.
    # (cancellation: the tolerance is relative to the size of the two sums, not only of their difference)
    sp, sn = lp.exp().numpy(), ln.exp().numpy()
    assert (np.abs(sp - sn - dec) <= 1e-6 * np.abs(dec) + 1e-9 * (sp + sn)).all()
    g = (lp - ln).numpy()
    assert (np.sign(g) == np.sign(dec)).all()
    out = net(x).numpy()
    pred = np.searchsorted(model.classes_, model.predict(X))
    assert (out.argmax(1) == pred).all()
    if len(model.classes_) == 2:
        assert (np.sign(out[:, 1]) == np.sign(model.decision_function(X))).all()
        np.testing.assert_array_equal(out[:, 0], -out[:, 1])


def test_uncentred_raw_data() -> None:
    # raw breast-cancer features (up to ~4,000) shifted by 1e4: the distance expansion must not cancel
    X, y = load_breast_cancer(return_X_y=True)
    X = X + 1e4
    model = SVC().fit(X, y)
    out = neon.neuralize(model)(torch.as_tensor(X)).numpy()
    assert (np.sign(out[:, 1]) == np.sign(model.decision_function(X))).all()
    np.testing.assert_allclose(out[:, 1], -ref_pair(ref_pairs(model)[0], X, model._gamma)["g"], rtol=1e-8,
                               atol=1e-8)


@pytest.mark.parametrize("name", ["moons", "wine"])
def test_nusvc_same_layout(name: str) -> None:
    X, y = _data(name)
    model = NuSVC(nu=0.3).fit(X, y)
    out = neon.neuralize(model)(torch.as_tensor(X)).numpy()
    assert (out.argmax(1) == np.searchsorted(model.classes_, model.predict(X))).all()
    rel, value, _ = ref_explain(model, X[::10], 0.4)
    expl = neon.Explainer(model, rules={"pairs": SVCHybrid(0.4)}).fit(X).explain(X[::10])
    np.testing.assert_allclose(expl.output, value, rtol=1e-9)
    np.testing.assert_allclose(expl.relevance, rel, rtol=1e-8, atol=1e-10 * np.abs(rel).max())


@pytest.mark.parametrize("flip", [False, True])
def test_intercept_virtual_support_vector_on_either_side(flip: bool) -> None:
    X, y = _data("moons")
    y = 1 - y if flip else y
    model = SVC(C=0.3, gamma=0.5).fit(X, y)
    assert model.intercept_[0] != 0
    x = np.random.default_rng(0).normal(size=(2000, 2)) * 3  # also far from the data, where b dominates
    out = neon.neuralize(model)(torch.as_tensor(x)).numpy()
    assert (np.sign(out[:, 1]) == np.sign(model.decision_function(x))).all()
    np.testing.assert_allclose(out[:, 1], ref_pair(ref_pairs(model)[0], x, model._gamma)["g"] * -1, rtol=1e-9)


def test_multiclass_default_target_is_predict_even_where_votes_tie() -> None:
    # Off the data, one-vs-one votes can form cycles; libsvm then breaks ties by class index, which no
    # min-pooling reproduces: the arg-max of f agrees with predict only where some class wins all its duels.
    # The default target is predict itself (the votes), and the explained value for it stays f_c.
    X, y = _data("iris")
    model = SVC().fit(X, y)
    Z = np.random.default_rng(1).normal(size=(3000, 4)) * 1.5
    out = neon.neuralize(model)(torch.as_tensor(Z)).numpy()
    pred = np.searchsorted(model.classes_, model.predict(Z))
    winner = out.max(1) > 0
    assert 0.8 < winner.mean() < 1.0  # some points have no class that beats all others
    assert (out.argmax(1)[winner] == pred[winner]).all()
    assert (out.argmax(1)[~winner] != pred[~winner]).any()  # there, the arg-max of f is not predict...
    assert ((out > 0).sum(1) <= 1).all()  # at most one class beats all others
    expl = neon.Explainer(model).fit(X).explain(Z)
    np.testing.assert_array_equal(expl.target, pred)  # ...but the explained class is
    np.testing.assert_allclose(expl.output, out[np.arange(len(Z)), pred], rtol=1e-12)
    assert (expl.output[~winner] < 0).all()


@pytest.mark.parametrize("kernel", ["rbf", "linear"])
def test_default_target_follows_break_ties(kernel: str) -> None:
    X, y = _data("classification")
    Z = np.random.default_rng(2).normal(size=(2000, X.shape[1])) * 2.0
    for break_ties in (False, True):
        model = SVC(kernel=kernel, break_ties=break_ties).fit(X, y)
        expl = neon.Explainer(model).fit(X).explain(Z)
        np.testing.assert_array_equal(expl.target, np.searchsorted(model.classes_, model.predict(Z)))
    plain = SVC(kernel=kernel).fit(X, y).predict(Z)
    assert (plain != model.predict(Z)).any(), "break_ties must change some predictions for this test to bite"


def authors_explain(model: SVC, X: np.ndarray, rule: str, eta: float) -> np.ndarray:
    """The rules of Bley et al.'s released code (NeuralisedSVM.explain, with_intercept=True), for binary SVC.

    Written from their formulas: the intercept is a virtual support vector at x itself (distance 0,
    z = -log(|b| + 1e-10) / gamma, on the positive side when b >= 0); relevance in units of g / gamma.
    """
    gamma = model._gamma
    d = model.dual_coef_[0]
    b = model.intercept_[0]
    xp, xn = model.support_vectors_[d > 0], model.support_vectors_[d < 0]
    ap, an = d[d > 0], -d[d < 0]
    zp = ((X[:, None] - xp[None]) ** 2).sum(-1) - np.log(ap)[None] / gamma
    zn = ((X[:, None] - xn[None]) ** 2).sum(-1) - np.log(an)[None] / gamma
    zb = np.full((len(X), 1), -np.log(abs(b) + 1e-10) / gamma)
    svp = np.repeat(xp[None], len(X), 0)
    svn = np.repeat(xn[None], len(X), 0)
    if b >= 0:
        zp, svp = np.concatenate([zp, zb], 1), np.concatenate([svp, X[:, None]], 1)
    else:
        zn, svn = np.concatenate([zn, zb], 1), np.concatenate([svn, X[:, None]], 1)
    pp, pn = softmax(-gamma * zp, 1), softmax(-gamma * zn, 1)
    gi = X * 2 * ((pp[..., None] * svp).sum(1) - (pn[..., None] * svn).sum(1))
    mid = (pn[..., None] * (X[:, None] - svn) ** 2).sum(1) - (pp[..., None] * (X[:, None] - svp) ** 2).sum(1)
    return {"GI": gi, "midpoint": mid, "hybrid": (1 - eta) * gi + eta * mid}[rule]


@pytest.mark.parametrize("gamma", [0.05, 1.0, 10.0])
@pytest.mark.parametrize("rule", ["GI", "midpoint", "hybrid"])
def test_rules_equal_the_authors_code_times_gamma(rule: str, gamma: float) -> None:
    X, y = _data("moons")
    model = SVC(gamma=gamma, C=0.5).fit(X, y)
    x = np.random.default_rng(3).normal(size=(200, 2)) * 2.0
    neon_rule = {"GI": SVCGradientInput(), "midpoint": SVCMidpoint(), "hybrid": SVCHybrid("auto")}[rule]
    explainer = neon.Explainer(model, rules={"pairs": neon_rule}).fit(X)
    eta = explainer.rules_["pairs"].eta
    expl = explainer.explain(x, target=1)  # the positive class: g itself (sklearn's sign)
    want = model._gamma * authors_explain(model, x, rule, eta)
    # the authors' virtual support vector carries |b| + 1e-10: a relative difference of 1e-10 / |b|
    np.testing.assert_allclose(expl.relevance, want, rtol=1e-7, atol=1e-9 * np.abs(want).max())


# ---------------------------------------------------------------- rules against the dense reference
@pytest.mark.parametrize("name", BINARY + MULTI)
@pytest.mark.parametrize("rule,eta", [(SVCMidpoint(), 1.0), (SVCGradientInput(), 0.0), (SVCHybrid(0.3), 0.3)])
def test_rules_match_dense_reference(name: str, rule, eta: float) -> None:
    X, y = _data(name)
    model = SVC(gamma=0.4).fit(X, y)
    x = X[::15]
    expl = neon.Explainer(model, rules={"pairs": rule}).fit(X).explain(x)
    rel, value, t = ref_explain(model, x, eta)
    np.testing.assert_array_equal(expl.target, t)
    np.testing.assert_allclose(expl.output, value, rtol=1e-9)
    np.testing.assert_allclose(expl.relevance, rel, rtol=1e-8, atol=1e-10 * np.abs(rel).max())
    # a non-predicted target too
    other = (t + 1) % len(model.classes_)
    expl2 = neon.Explainer(model, rules={"pairs": rule}).fit(X).explain(x, target=other)
    rel2, value2, _ = ref_explain(model, x, eta, target=other)
    np.testing.assert_allclose(expl2.output, value2, rtol=1e-9)
    np.testing.assert_allclose(expl2.relevance, rel2, rtol=1e-7, atol=1e-9 * np.abs(rel2).max())


@pytest.mark.parametrize("name", BINARY)
def test_binary_relevance_sums_to_the_named_quantities(name: str) -> None:
    X, y = _data(name)
    model = SVC().fit(X, y)
    gamma = model._gamma
    pair = ref_pairs(model)[0]
    r = ref_pair(pair, X, gamma)
    sign = np.where(np.sign(r["g"]) > 0, 1.0, -1.0)  # default target: the predicted class, value |g|
    x = torch.as_tensor(X)
    # midpoint: sum R = g - B (B: log-coefficient and entropy terms), exactly
    mid = neon.Explainer(model, rules={"pairs": SVCMidpoint()}).fit(X).explain(X)
    np.testing.assert_allclose(mid.output, np.abs(r["g"]), rtol=1e-10)
    np.testing.assert_allclose(mid.relevance.sum(1), sign * (r["g"] - r["B"]), rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(mid.absorbed, sign * r["B"], rtol=1e-8, atol=1e-8)
    # gradient x input: exactly x * grad g, the intercept (a virtual support vector) included
    gi = neon.Explainer(model, rules={"pairs": SVCGradientInput()}).fit(X).explain(X)
    xg = x.clone().requires_grad_(True)
    lp, ln = neon.neuralize(model).graph_module.pairs.log_sums(xg)
    grad = torch.autograd.grad((lp - ln).sum(), xg)[0].numpy()
    expected = X * grad
    np.testing.assert_allclose(gi.relevance, sign[:, None] * expected, rtol=1e-9, atol=1e-9 * np.abs(expected).max())
    np.testing.assert_allclose(gi.relevance.sum(1), sign * r["gi"].sum(1), rtol=1e-8, atol=1e-10)
    # hybrid: (1 - eta) GI + eta midpoint, eta from the heuristic
    hyb = neon.Explainer(model).fit(X)
    eta = hyb.rules_["pairs"].eta
    h = hyb.explain(X)
    np.testing.assert_allclose(h.relevance.sum(1), sign * ((1 - eta) * r["gi"].sum(1) + eta * r["mid"].sum(1)),
                               rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(h.relevance, (1 - eta) * gi.relevance + eta * mid.relevance, rtol=1e-8, atol=1e-12)


def test_eta_heuristic_from_fit_data() -> None:
    X, y = _data("wine")
    for gamma, expected_range in [(1e-4, (0.0, 0.0)), ("scale", (0.0, 1.0)), (50.0, (1.0, 1.0))]:
        model = SVC(gamma=gamma).fit(X, y)
        explainer = neon.Explainer(model).fit(X)
        gp = model._gamma * np.median(pdist(X, "sqeuclidean"))
        # the authors' compute_heuristic_eta_svm on the normalised width: thresholds, then 2 decimals
        lg = np.log10(gp)
        expected = 0.0 if lg < -0.5 else 1.0 if lg > 1.5 else round(0.4 * lg + 0.4, 2)
        assert explainer.rules_["pairs"].eta == pytest.approx(expected, rel=1e-10)
        assert expected_range[0] <= expected <= expected_range[1]
    with pytest.raises(ValueError, match="fit data"):
        neon.Explainer(SVC().fit(X, y)).fit()


def test_batch_independence_and_chunking(monkeypatch) -> None:
    X, y = _data("wine")
    model = SVC().fit(X, y)
    explainer = neon.Explainer(model).fit(X)
    whole = explainer.explain(X)
    parts = [explainer.explain(X[i:i + 7]).relevance for i in range(0, len(X), 7)]
    np.testing.assert_allclose(np.concatenate(parts), whole.relevance, rtol=1e-12, atol=1e-14)
    import neon.layers.kernel as kernel

    monkeypatch.setattr(kernel, "BLOCK_ELEMENTS", 3000)  # many tiny internal row blocks
    small = neon.Explainer(model).fit(X).explain(X)
    np.testing.assert_allclose(small.relevance, whole.relevance, rtol=1e-12, atol=1e-14)
    # the exact pair-by-pair path (taken where a scaled kernel sum underflows) on every row
    monkeypatch.setattr(kernel, "_TINY", np.inf)
    exact = neon.Explainer(model).fit(X).explain(X)
    np.testing.assert_allclose(exact.output, whole.output, rtol=1e-12)
    np.testing.assert_allclose(exact.relevance, whole.relevance, rtol=1e-10, atol=1e-12)


def test_far_points_where_scaled_sums_underflow() -> None:
    # Far from the data the nearest support vector of a class can have a zero coefficient in a pair while
    # the others are ~1e4 squared units further: their scaled kernel terms underflow, the layer then takes
    # the exact pair-by-pair path for those rows. The log-ratio and the relevance stay exact.
    X, y = _data("iris")
    model = SVC().fit(X, y)
    far = np.random.default_rng(0).normal(size=(40, 4)) * 1e4
    layer = neon.neuralize(model).graph_module.pairs
    assert 0 < int(layer._scaled(torch.as_tensor(far))[-1].sum()) < len(far)
    out = neon.neuralize(model)(torch.as_tensor(far)).numpy()
    rel, value, t = ref_explain(model, far, 1.0)
    np.testing.assert_allclose(out.max(1), value, rtol=1e-9)
    assert np.isfinite(out).all()
    # the arg-max class of f (the reference's target; off the data predict may vote for another one)
    expl = neon.Explainer(model, rules={"pairs": SVCMidpoint()}).fit(X).explain(far, target=t)
    np.testing.assert_allclose(expl.relevance, rel, rtol=1e-6, atol=1e-9 * np.abs(rel).max())


# ---------------------------------------------------------------- ground truth
def test_ground_truth_planted_features() -> None:
    rng = np.random.default_rng(0)
    n, d, k = 450, 10, 3
    y = rng.integers(0, k, n)
    X = rng.normal(size=(n, d))
    X[np.arange(n), 2 * y + 1] += 3.0  # class c is told by feature 2c + 1 alone
    model = SVC(gamma=0.1).fit(X, y)
    expl = neon.explain(model, X)
    ok = expl.target == y
    assert ok.mean() > 0.9
    top = expl.relevance.argmax(1)
    assert (top[ok] == 2 * y[ok] + 1).mean() >= 0.9
    # binary: class 1 is told by feature 3, class 0 by feature 7
    yb = rng.integers(0, 2, n)
    Xb = rng.normal(size=(n, d))
    Xb[:, 3] += 3.0 * yb
    Xb[:, 7] += 3.0 * (1 - yb)
    eb = neon.explain(SVC(gamma=0.1).fit(Xb, yb), Xb)
    okb = eb.target == yb
    assert okb.mean() > 0.9
    assert np.isin(eb.relevance.argmax(1)[okb], [3, 7]).mean() >= 0.9


# ---------------------------------------------------------------- linear kernels
@pytest.mark.parametrize("name", BINARY + MULTI)
def test_linear_svc_and_linearsvc_forward(name: str) -> None:
    X, y = _data(name)
    svc = SVC(kernel="linear", decision_function_shape="ovo").fit(X, y)
    net = neon.neuralize(svc)
    x = torch.as_tensor(X)
    pred = np.searchsorted(svc.classes_, svc.predict(X))
    dec = svc.decision_function(X)
    if len(svc.classes_) == 2:
        out = net(x).numpy()
        np.testing.assert_allclose(out[:, 1], dec, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(out[:, 0], -dec, rtol=1e-6, atol=1e-9)
    else:
        k = len(svc.classes_)
        pairs = net.graph_module.linear(x).reshape(len(X), k, k - 1).numpy()
        p = 0
        for a in range(k):
            for b in range(a + 1, k):
                np.testing.assert_allclose(pairs[:, a, b - 1], dec[:, p], rtol=1e-6, atol=1e-9)
                np.testing.assert_allclose(pairs[:, b, a], -dec[:, p], rtol=1e-6, atol=1e-9)
                p += 1
        out = net(x).numpy()
        # make_classification has a few training points in a vote cycle (no class beats all others, every
        # f_c < 0); libsvm breaks those ties by class index, see test_multiclass_disagrees_with_votes_only...
        winner = out.max(1) > 0
        assert winner.mean() > 0.97
        pred, out = pred[winner], out[winner]
    assert (out.argmax(1) == pred).all()
    lin = LinearSVC().fit(X, y)
    out = neon.neuralize(lin)(x).numpy()
    dec = lin.decision_function(X)
    np.testing.assert_allclose(out[:, 1] if dec.ndim == 1 else out, dec, rtol=1e-6, atol=1e-9)
    assert (out.argmax(1) == np.searchsorted(lin.classes_, lin.predict(X))).all()


def test_linearsvc_with_reference_mean_is_exact() -> None:
    X, y = _data("wine")
    lin = LinearSVC().fit(X, y)
    expl = neon.Explainer(lin, reference="mean").fit(X).explain(X)
    dec = lin.decision_function(X)
    dec_ref = lin.decision_function(X.mean(0, keepdims=True))[0]
    t = expl.target
    np.testing.assert_allclose(expl.output, dec[np.arange(len(X)), t] - dec_ref[t], rtol=1e-9)
    np.testing.assert_allclose(expl.relevance.sum(1), expl.output, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(expl.relevance, lin.coef_[t] * (X - X.mean(0)), rtol=1e-8, atol=1e-10)


# ---------------------------------------------------------------- bad input
def test_bad_input() -> None:
    X, y = _data("iris")
    with pytest.raises(NotFittedError):
        neon.neuralize(SVC())
    with pytest.raises(NotFittedError):
        neon.explain(LinearSVC(), X)
    model = SVC().fit(X, y)
    h = joblib.hash(model)
    explainer = neon.Explainer(model).fit(X)
    with pytest.raises(ValueError, match=r"^X has 3 features, but SVC is expecting 4 features as input\.$"):
        explainer.explain(X[:, :3])
    explainer.explain(X)
    assert joblib.hash(model) == h
    for kernel in ("poly", "sigmoid", "precomputed", lambda a, b: a @ b.T):
        Xk = X @ X.T if kernel == "precomputed" else X
        bad = SVC(kernel=kernel).fit(Xk, y)
        with pytest.raises(UnsupportedModelError, match="supported: kernel='rbf'.*kernel='linear'"):
            neon.neuralize(bad)
    with pytest.raises(ValueError, match="output='log-odds'"):
        neon.neuralize(model, output="log-odds")


def test_dataframe_feature_names() -> None:
    import pandas as pd
    X, y = _data("iris")
    df = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    model = SVC().fit(df, y)
    expl = neon.explain(model, df)
    assert expl.feature_names == ["a", "b", "c", "d"]
    with pytest.raises(ValueError, match="feature names"):
        neon.Explainer(model).fit(df).explain(df[["b", "a", "c", "d"]])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_explanation_equals_cpu() -> None:
    X, y = _data("wine")
    model = SVC().fit(X, y)
    x = torch.as_tensor(X)
    cpu = neon.Explainer(model).fit(x).explain(x)
    xg = x.cuda()
    gpu = neon.Explainer(model).fit(xg).explain(xg)
    assert gpu.relevance.device == xg.device and gpu.relevance.dtype == torch.float64
    torch.testing.assert_close(gpu.relevance.cpu(), cpu.relevance, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(gpu.target.cpu().numpy(), cpu.target.numpy())
