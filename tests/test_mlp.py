"""sklearn ReLU MLPs: exact forward, LRP-0 = gradient x input, the default composite vs a dense reference.

References: sklearn's predict / predict_proba, numpy forward and backward passes written from the
fitted ``coefs_`` / ``intercepts_``, and the dense rule implementations of ``dense_reference.py``.
"""

from __future__ import annotations

import copy
import warnings

import dense_reference as ref
import joblib
import numpy as np
import pytest
import torch
from sklearn.datasets import load_diabetes, make_classification
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn_data import classification_sets, standardized

import neon
from neon.exceptions import UnsupportedModelError

DATA = classification_sets(digits_rows=500)


def _fit(model, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, y)


def _hidden(model, X):
    """Activations of every layer (numpy), from the fitted parameters."""
    acts = [X]
    for W, b in zip(model.coefs_[:-1], model.intercepts_[:-1]):
        acts.append(np.maximum(acts[-1] @ W + b, 0.0))
    return acts


@pytest.mark.parametrize("data", list(DATA))
def test_classifier_forward_matches_predict_proba(data: str) -> None:
    X, y = DATA[data]()
    model = _fit(MLPClassifier(hidden_layer_sizes=(16, 8), max_iter=200, random_state=0), X, y)
    net = neon.neuralize(model)
    assert net.output_kind == "log-odds"
    out = net(torch.as_tensor(X)).numpy()
    assert out.shape == (len(X), len(model.classes_))
    np.testing.assert_array_equal(model.classes_[out.argmax(1)], model.predict(X))
    P = model.predict_proba(X)
    eta = np.log(P) - np.log(P @ (1.0 - np.eye(P.shape[1])))  # 1 - p_c summed from the other classes
    ok = np.isfinite(eta) & (P.min(1, keepdims=True) > 1e-9)  # binary 1 - sigmoid loses digits beyond that
    assert ok.mean() > 0.5
    np.testing.assert_allclose(out[ok], eta[ok], rtol=1e-6, atol=1e-8)
    logits = neon.neuralize(model, output="logit")(torch.as_tensor(X)).numpy()
    last = _hidden(model, X)[-1] @ model.coefs_[-1] + model.intercepts_[-1]
    np.testing.assert_allclose(logits if last.shape[1] > 1 else logits[:, 1], np.squeeze(last), rtol=1e-9)


def test_regressor_forward_matches_predict() -> None:
    X, y = load_diabetes(return_X_y=True)
    model = _fit(MLPRegressor(hidden_layer_sizes=(32, 16), max_iter=300, random_state=0), X * 10, y)
    net = neon.neuralize(model)
    assert net.output_kind == "value"
    np.testing.assert_allclose(net(torch.as_tensor(X * 10)).numpy()[:, 0], model.predict(X * 10), rtol=1e-6,
                               atol=1e-9)


def _gradient_x_input(model, X, column: int = 0):
    acts = _hidden(model, X)
    g = np.broadcast_to(model.coefs_[-1][:, column], (len(X), model.coefs_[-1].shape[0]))
    for W, a in zip(reversed(model.coefs_[:-1]), reversed(acts[1:])):
        g = (g * (a > 0)) @ W.T
    return X * g


@pytest.mark.parametrize("kind", ["regressor", "binary"])
def test_lrp0_on_bias_free_mlp_is_gradient_x_input(kind: str) -> None:
    if kind == "regressor":
        X, y = standardized(load_diabetes)
        model = _fit(MLPRegressor(hidden_layer_sizes=(12, 6), max_iter=200, random_state=0), X, y)
    else:
        X, y = DATA["breast_cancer"]()
        model = _fit(MLPClassifier(hidden_layer_sizes=(12, 6), max_iter=200, random_state=0), X, y)
    model = copy.deepcopy(model)
    model.intercepts_ = [np.zeros_like(b) for b in model.intercepts_]
    expl = neon.explain(model, X, rules="lrp0")
    gxi = _gradient_x_input(model, X)
    if kind == "binary":  # class 0 is explained by -f
        gxi = gxi * np.where(expl.target == 1, 1.0, -1.0)[:, None]
    np.testing.assert_allclose(expl.relevance, gxi, rtol=1e-9, atol=1e-12)
    # No bias: nothing is absorbed, LRP-0 conserves the output exactly.
    np.testing.assert_allclose(expl.relevance.sum(1), expl.output, rtol=1e-9, atol=1e-10)


def test_default_composite_matches_dense_reference() -> None:
    X, y = DATA["wine"]()
    model = _fit(MLPClassifier(hidden_layer_sizes=(10, 7), max_iter=300, random_state=0), X, y)
    explainer = neon.Explainer(model).fit(X)
    expl = explainer.explain(X)
    np.testing.assert_array_equal(model.classes_[expl.target], model.predict(X))
    # Dense forward/backward from docs/theory.md: log-odds top (soft-min over differences), then
    # epsilon(0.25 * RMS(z)) on the top and hidden layers, z^B with the fit data's box on the input layer.
    acts = _hidden(model, X)
    Wo, bo = model.coefs_[-1].T, model.intercepts_[-1]
    Z = acts[-1] @ Wo.T + bo
    R = np.zeros_like(acts[-1])
    for i, c in enumerate(expl.target):
        keep = np.arange(Z.shape[1]) != c
        h = Z[i, c] - Z[i, keep]
        share = np.exp(-h) / np.exp(-h).sum()
        eta = -np.log(np.exp(-h).sum())
        Wd = Wo[c] - Wo[keep]
        eps = 0.25 * np.sqrt((h ** 2).mean())  # multi-class top: relative epsilon on the differences
        R[i] = ref.epsilon(acts[-1][i:i + 1], Wd, bo[c] - bo[keep], (share * eta)[None], eps)[0]
    for layer in range(len(model.coefs_) - 2, -1, -1):
        W, b, a = model.coefs_[layer].T, model.intercepts_[layer], acts[layer]
        if layer == 0:
            R = ref.zbox(a, W, b, R, X.min(0), X.max(0))
        else:
            z = a @ W.T + b
            eps = 0.25 * np.sqrt((z ** 2).mean(1, keepdims=True))  # per sample
            contrib = a[:, :, None] * W.T[None]
            R = (contrib / ref.stab(z, eps)[:, None, :] * R[:, None, :]).sum(-1)
    np.testing.assert_allclose(expl.relevance, R, rtol=1e-7, atol=1e-10)


def test_fitted_explainer_is_batch_independent() -> None:
    X, y = DATA["digits"]()
    model = _fit(MLPClassifier(hidden_layer_sizes=(16, 8), max_iter=200, random_state=0), X, y)
    explainer = neon.Explainer(model).fit(X)
    whole = explainer.explain(X[:100]).relevance
    parts = np.vstack([explainer.explain(X[i:min(i + 13, 100)]).relevance for i in range(0, 100, 13)])
    np.testing.assert_allclose(parts, whole, rtol=1e-12, atol=1e-12)


def test_ground_truth_features_rank_first() -> None:
    X, y = make_classification(1000, 20, n_informative=3, n_redundant=0, n_repeated=0, shuffle=False,
                               class_sep=2.0, random_state=0)
    model = _fit(MLPClassifier(hidden_layer_sizes=(32,), max_iter=300, random_state=0), X, y)
    R = neon.Explainer(model).fit(X).explain(X).relevance
    assert np.mean(np.abs(R).argmax(1) < 3) >= 0.9


def test_bad_input() -> None:
    X, y = DATA["iris"]()
    with pytest.raises(NotFittedError):
        neon.explain(MLPClassifier(), X)
    tanh = _fit(MLPClassifier(hidden_layer_sizes=(5,), activation="tanh", max_iter=50, random_state=0), X, y)
    before = joblib.hash(tanh)
    with pytest.raises(UnsupportedModelError, match="activation='relu'"):
        neon.neuralize(tanh)
    assert joblib.hash(tanh) == before
    with pytest.raises(UnsupportedModelError, match="relu"):
        neon.neuralize(_fit(MLPRegressor(hidden_layer_sizes=(5,), activation="logistic", max_iter=50), X, y))
    model = _fit(MLPClassifier(hidden_layer_sizes=(8,), max_iter=100, random_state=0), X, y)
    before = joblib.hash(model)
    with pytest.raises(ValueError, match="X has 3 features, but MLPClassifier is expecting 4 features as input."):
        neon.explain(model, X[:, :3])
    neon.Explainer(model).fit(X).explain(X)
    neon.explain(model, X, rules="lrp0", output="logit")
    assert joblib.hash(model) == before
    Y = np.c_[y == 0, y == 1].astype(int)
    multilabel = _fit(MLPClassifier(hidden_layer_sizes=(5,), max_iter=50, random_state=0), X, Y)
    with pytest.raises(UnsupportedModelError, match="multi-label"):
        neon.neuralize(multilabel)
    with pytest.raises(UnsupportedModelError, match="single-output"):
        neon.neuralize(_fit(MLPRegressor(hidden_layer_sizes=(5,), max_iter=50), X, np.c_[y, y]))
