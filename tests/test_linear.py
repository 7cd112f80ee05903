"""Linear models: exact forward, exact conservation with a reference, SHAP parity, bad input.

References are independent of neon: sklearn's own decision_function / predict_proba / predict,
shap.LinearExplainer, and dense numpy formulas written from docs/theory.md §3 and §4.
"""

from __future__ import annotations

import joblib
import numpy as np
import pytest
import torch
from sklearn.datasets import (
    load_diabetes,
    load_iris,
    make_classification,
    make_regression,
)
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import (
    BayesianRidge,
    ElasticNet,
    ElasticNetCV,
    HuberRegressor,
    Lasso,
    LassoCV,
    LinearRegression,
    LogisticRegression,
    LogisticRegressionCV,
    Perceptron,
    Ridge,
    RidgeClassifier,
    RidgeClassifierCV,
    RidgeCV,
    SGDClassifier,
    SGDRegressor,
)
from sklearn_data import classification_sets

import neon
from neon.exceptions import UnsupportedModelError

DATA = classification_sets(digits_rows=600)

CLASSIFIERS = {
    "logreg": lambda: LogisticRegression(C=0.5, max_iter=2000),
    "sgd_hinge": lambda: SGDClassifier(random_state=0),
    "sgd_log": lambda: SGDClassifier(loss="log_loss", alpha=1e-2, random_state=0),
    "ridge": lambda: RidgeClassifier(),
    "perceptron": lambda: Perceptron(random_state=0),
}


def _torch(X: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(X)


def _log_odds_from_proba(P: np.ndarray) -> np.ndarray:
    """``log(p_c / (1 - p_c))`` with ``1 - p_c`` summed from the other classes (no cancellation)."""
    others = P @ (1.0 - np.eye(P.shape[1]))
    return np.log(P) - np.log(others)


@pytest.mark.parametrize("data", list(DATA))
@pytest.mark.parametrize("name", list(CLASSIFIERS))
def test_classifier_forward_matches_sklearn(name: str, data: str) -> None:
    X, y = DATA[data]()
    model = CLASSIFIERS[name]().fit(X, y)
    net = neon.neuralize(model)
    out = net(_torch(X)).numpy()
    assert out.shape == (len(X), len(model.classes_))
    assert list(net.target_names) == list(model.classes_)
    np.testing.assert_array_equal(model.classes_[out.argmax(1)], model.predict(X))
    d = model.decision_function(X)
    if d.ndim == 1:
        np.testing.assert_allclose(out[:, 1], d, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(out[:, 0], -d, rtol=1e-6, atol=1e-9)
    if net.output_kind == "log-odds":
        eta = _log_odds_from_proba(model.predict_proba(X))
        ok = np.isfinite(eta)
        assert ok.mean() > 0.99
        np.testing.assert_allclose(out[ok], eta[ok], rtol=1e-6, atol=1e-8)
    else:
        assert name != "logreg"
        np.testing.assert_allclose(out if d.ndim > 1 else out[:, 1], d, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("make", [lambda: LogisticRegressionCV(Cs=3, cv=3, max_iter=1000), lambda: RidgeClassifierCV()])
def test_cv_classifiers(make) -> None:
    X, y = DATA["wine"]()
    model = make().fit(X, y)
    net = neon.neuralize(model)
    out = net(_torch(X)).numpy()
    np.testing.assert_array_equal(model.classes_[out.argmax(1)], model.predict(X))
    if net.output_kind == "log-odds":
        P = model.predict_proba(X)
        np.testing.assert_allclose(out, np.log(P) - np.log(P @ (1.0 - np.eye(3))), rtol=1e-6, atol=1e-8)
    else:
        np.testing.assert_allclose(out, model.decision_function(X), rtol=1e-6, atol=1e-9)


def test_output_defaults_and_logit_option() -> None:
    X, y = DATA["iris"]()
    lr = LogisticRegression(max_iter=1000).fit(X, y)
    assert neon.neuralize(lr).output_kind == "log-odds"
    logit = neon.neuralize(lr, output="logit")
    assert logit.output_kind == "logit"
    np.testing.assert_allclose(logit(_torch(X)).numpy(), lr.decision_function(X), rtol=1e-9)
    assert neon.neuralize(RidgeClassifier().fit(X, y)).output_kind == "logit"
    assert neon.neuralize(SGDClassifier(random_state=0).fit(X, y)).output_kind == "logit"
    # One-vs-rest normalised sigmoids have no exact log-odds network: logit by default, log-odds refused.
    sgd_log = SGDClassifier(loss="log_loss", random_state=0).fit(X, y)
    assert neon.neuralize(sgd_log).output_kind == "logit"
    with pytest.raises(UnsupportedModelError, match="output='logit'"):
        neon.neuralize(sgd_log, output="log-odds")
    with pytest.raises(UnsupportedModelError, match="no softmax"):
        neon.neuralize(Perceptron().fit(X, y), output="log-odds")
    with pytest.raises(ValueError, match="'log-odds' or 'logit'"):
        neon.neuralize(lr, output="probability")


REGRESSORS = {
    "ols": lambda: LinearRegression(),
    "ridge": lambda: Ridge(alpha=1.0),
    "lasso": lambda: Lasso(alpha=0.05),
    "enet": lambda: ElasticNet(alpha=0.05, l1_ratio=0.5),
    "sgd": lambda: SGDRegressor(random_state=0),
    "ridge_cv": lambda: RidgeCV(),
    "lasso_cv": lambda: LassoCV(cv=3),
    "enet_cv": lambda: ElasticNetCV(cv=3),
    "bayes": lambda: BayesianRidge(),
    "huber": lambda: HuberRegressor(max_iter=500),
}


@pytest.mark.parametrize("name", list(REGRESSORS))
def test_regressor_forward_reference_and_shap(name: str) -> None:
    import shap

    X, y = load_diabetes(return_X_y=True)
    model = REGRESSORS[name]().fit(X * 10, y)  # scaled so SGD converges
    X = X * 10
    net = neon.neuralize(model)
    assert net.output_kind == "value"
    np.testing.assert_allclose(net(_torch(X)).numpy()[:, 0], model.predict(X), rtol=1e-6, atol=1e-9)

    expl = neon.Explainer(model, reference="mean").fit(X).explain(X[:50])
    x_ref = X.mean(0)
    f, f_ref = model.predict(X[:50]), model.predict(x_ref[None])[0]
    np.testing.assert_allclose(expl.output, f - f_ref, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(expl.baseline, f_ref, rtol=1e-12)
    dense = np.ravel(model.coef_) * (X[:50] - x_ref)
    np.testing.assert_allclose(expl.relevance, dense, rtol=1e-9, atol=1e-9)
    gap = np.abs(expl.relevance.sum(1) - (f - f_ref))
    assert np.all(gap <= 1e-8 * np.abs(f - f_ref) + 1e-12)
    phi = shap.LinearExplainer(model, shap.maskers.Independent(X, max_samples=len(X))).shap_values(X[:50])
    np.testing.assert_allclose(expl.relevance, phi, rtol=1e-7, atol=1e-7)

    default = neon.explain(model, X)  # the default for linear models: the mean of the (fit) data
    np.testing.assert_allclose(default.relevance, np.ravel(model.coef_) * (X - x_ref), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(default.absorbed, 0.0, atol=1e-9)
    plain = neon.explain(model, X[:50], reference=None)  # no reference: LRP-0, R_i = w_i x_i, the bias is absorbed
    np.testing.assert_allclose(plain.relevance, np.ravel(model.coef_) * X[:50], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(plain.absorbed, np.ravel(model.intercept_)[0], rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name", ["logreg", "sgd_log", "ridge", "perceptron"])
def test_binary_classifier_reference_is_dense_formula_and_shap(name: str) -> None:
    import shap

    X, y = DATA["breast_cancer"]()
    model = CLASSIFIERS[name]().fit(X, y)
    explainer = neon.Explainer(model, reference="mean").fit(X)
    expl = explainer.explain(X)
    x_ref = X.mean(0)
    f, f_ref = model.decision_function(X), model.decision_function(x_ref[None])[0]
    sign = np.where(model.predict(X) == model.classes_[1], 1.0, -1.0)
    np.testing.assert_allclose(expl.output, sign * (f - f_ref), rtol=1e-9, atol=1e-9)
    dense = sign[:, None] * np.ravel(model.coef_) * (X - x_ref)
    np.testing.assert_allclose(expl.relevance, dense, rtol=1e-8, atol=1e-10)
    assert np.all(np.abs(expl.relevance.sum(1) - expl.output) <= 1e-8 * np.abs(expl.output) + 1e-12)
    # SHAP explains the margin of class 1: compare on target 1 for every sample.
    phi = shap.LinearExplainer(model, shap.maskers.Independent(X, max_samples=len(X))).shap_values(X)
    np.testing.assert_allclose(explainer.explain(X, target=1).relevance, phi, rtol=1e-7, atol=1e-7)


def test_multiclass_logit_reference_equals_shap_per_class() -> None:
    import shap

    X, y = DATA["wine"]()
    model = LogisticRegression(max_iter=1000).fit(X, y)
    explainer = neon.Explainer(model, output="logit", reference="mean").fit(X)
    phi = np.asarray(shap.LinearExplainer(model, shap.maskers.Independent(X, max_samples=len(X))).shap_values(X))
    if phi.shape[0] == 3 and phi.ndim == 3 and phi.shape[1] == len(X):
        phi = np.moveaxis(phi, 0, -1)
    for c in range(3):
        expl = explainer.explain(X, target=c)
        dense = model.coef_[c] * (X - X.mean(0))
        np.testing.assert_allclose(expl.relevance, dense, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(expl.relevance, phi[:, :, c], rtol=1e-7, atol=1e-7)
        assert np.all(np.abs(expl.relevance.sum(1) - expl.output) <= 1e-8 * np.abs(expl.output) + 1e-12)


def _dense_log_odds_relevance(W, b, X, target, x_ref=None):
    """docs/theory.md §3 in numpy: soft-min over differences, then LRP-0 / reference per difference."""
    Z = X @ W.T + b
    out = np.zeros_like(X)
    for i, c in enumerate(target):
        keep = np.arange(W.shape[0]) != c
        h = Z[i, c] - Z[i, keep]
        eta = -np.log(np.exp(-h).sum())
        Wd = W[c] - W[keep]
        if x_ref is not None:
            h_ref = (x_ref @ W.T + b)[c] - (x_ref @ W.T + b)[keep]
            eta = eta + np.log(np.exp(-h_ref).sum())
            d = X[i] - x_ref
            contrib = d[None, :] * Wd / (Wd @ d)[:, None]
        else:
            contrib = X[i][None, :] * Wd / h[:, None]
        share = np.exp(-h) / np.exp(-h).sum()
        out[i] = (share[:, None] * contrib).sum(0) * eta
    return out


@pytest.mark.parametrize("reference", [None, "mean"])
def test_multinomial_log_odds_relevance_matches_dense(reference) -> None:
    X, y = DATA["iris"]()
    model = LogisticRegression(max_iter=1000).fit(X, y)
    expl = neon.Explainer(model, reference=reference).fit(X).explain(X)
    np.testing.assert_array_equal(expl.target, model.predict(X))
    x_ref = None if reference is None else X.mean(0)
    dense = _dense_log_odds_relevance(model.coef_, model.intercept_, X, expl.target, x_ref)
    np.testing.assert_allclose(expl.relevance, dense, rtol=1e-8, atol=1e-10)
    if reference is not None:
        assert np.all(np.abs(expl.relevance.sum(1) - expl.output) <= 1e-8 * np.abs(expl.output))


def test_fitted_explainer_is_batch_independent_and_targets_by_name() -> None:
    X, y = load_iris(return_X_y=True)
    names = np.array(load_iris().target_names)[y]
    model = LogisticRegression(max_iter=1000).fit(X, names)
    explainer = neon.Explainer(model, reference="mean").fit(X)
    whole = explainer.explain(X)
    parts = np.vstack([explainer.explain(X[i:i + 7]).relevance for i in range(0, len(X), 7)])
    np.testing.assert_allclose(parts, whole.relevance, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(model.classes_[whole.target], model.predict(X))
    by_name = explainer.explain(X, target="virginica")
    assert np.all(by_name.target == list(model.classes_).index("virginica"))


def test_ground_truth_features_rank_first() -> None:
    # Evidence planted in features 0-2 (shuffle=False keeps the informative ones first); 17 noise features.
    X, y = make_classification(1000, 20, n_informative=3, n_redundant=0, n_repeated=0, shuffle=False,
                               class_sep=2.0, random_state=0)
    model = LogisticRegression(max_iter=1000).fit(X, y)
    R = neon.Explainer(model, reference="mean").fit(X).explain(X).relevance
    assert np.mean(np.abs(R).argmax(1) < 3) >= 0.9
    Xr, yr = make_regression(1000, 20, n_informative=3, shuffle=False, noise=1.0, random_state=0)
    reg = Ridge().fit(Xr, yr)
    R = neon.Explainer(reg, reference="mean").fit(Xr).explain(Xr).relevance
    assert np.mean(np.abs(R).argmax(1) < 3) >= 0.9


def test_bad_input() -> None:
    X, y = load_iris(return_X_y=True)
    with pytest.raises(NotFittedError):
        neon.explain(LogisticRegression(), X)
    with pytest.raises(NotFittedError):
        neon.neuralize(Ridge())
    model = LogisticRegression(max_iter=1000).fit(X, y)
    before = joblib.hash(model)
    with pytest.raises(ValueError, match="X has 3 features, but LogisticRegression is expecting 4 features as input."):
        neon.explain(model, X[:, :3])
    neon.Explainer(model, reference="mean").fit(X).explain(X)
    neon.explain(model, X, output="logit")
    assert joblib.hash(model) == before
    multi = Ridge().fit(X, np.c_[y, y])
    with pytest.raises(UnsupportedModelError, match="single-output"):
        neon.neuralize(multi)
    with pytest.raises(ValueError, match="'value'"):
        neon.neuralize(Ridge().fit(X, y), output="log-odds")
    with pytest.raises(TypeError, match="unknown options"):
        neon.neuralize(model, beta=2)
