"""Pipelines: affine preprocessing joined to the final model's network, relevance on the raw features.

References: sklearn's own predict / decision_function / predict_proba of the pipeline, finite
differences of the pipeline's prediction (effective raw-feature weights), the final model
explained by hand on pre-transformed data, and the root-point formula written out in numpy.
"""

from __future__ import annotations

import warnings

import joblib
import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris, load_wine
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.neighbors import KernelDensity
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    MaxAbsScaler,
    MinMaxScaler,
    PolynomialFeatures,
    RobustScaler,
    StandardScaler,
)
from sklearn.svm import SVC, LinearSVC, OneClassSVM

import neon
from neon.exceptions import UnsupportedModelError


def _t(X: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(X)


PREPROCESSING = {
    "standard": lambda: [StandardScaler()],
    "minmax": lambda: [MinMaxScaler()],
    "maxabs": lambda: [MaxAbsScaler()],
    "robust": lambda: [RobustScaler()],
    "standard_nomean": lambda: [StandardScaler(with_mean=False)],
    "pca": lambda: [PCA(6)],
    "pca_whiten": lambda: [StandardScaler(), PCA(5, whiten=True)],
    "minmax_pca_standard": lambda: [MinMaxScaler(), PCA(7), StandardScaler()],
    "passthrough": lambda: ["passthrough", StandardScaler()],
}


@pytest.mark.parametrize("pre", list(PREPROCESSING))
def test_linear_regressor_folds_to_raw_feature_weights(pre: str) -> None:
    X, y = load_diabetes(return_X_y=True)
    X = X * 100 + 50  # away from zero and unit scale, so that every step does something
    pipe = make_pipeline(*PREPROCESSING[pre](), Ridge(alpha=0.1)).fit(X, y)
    net = neon.neuralize(pipe)
    np.testing.assert_allclose(net(_t(X)).numpy()[:, 0], pipe.predict(X), rtol=1e-6, atol=1e-9)
    # Effective raw-feature weights from the pipeline itself (exact for an affine pipeline).
    w = pipe.predict(X[:1] + 1e3 * np.eye(X.shape[1])) - pipe.predict(X[:1])
    w = w / 1e3
    expl = neon.Explainer(pipe, reference="mean").fit(X).explain(X[:40])
    np.testing.assert_allclose(expl.relevance, w * (X[:40] - X.mean(0)), rtol=1e-6, atol=1e-8)
    f, f_ref = pipe.predict(X[:40]), pipe.predict(X.mean(0)[None])[0]
    assert np.all(np.abs(expl.relevance.sum(1) - (f - f_ref)) <= 1e-8 * np.abs(f - f_ref))
    plain = neon.explain(pipe, X[:40], reference=None)  # LRP-0 on the folded layer: R_i = w'_i x_i
    np.testing.assert_allclose(plain.relevance, w * X[:40], rtol=1e-6, atol=1e-8)


def test_scaler_logistic_regression_forward_and_relevance() -> None:
    X, y = load_breast_cancer(return_X_y=True)
    pipe = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=1000)).fit(X, y)
    net = neon.neuralize(pipe)
    out = net(_t(X)).numpy()
    np.testing.assert_array_equal(out.argmax(1), pipe.predict(X))
    np.testing.assert_allclose(out[:, 1], pipe.decision_function(X), rtol=1e-6, atol=1e-9)
    P = pipe.predict_proba(X)
    np.testing.assert_allclose(out, np.log(P) - np.log(P[:, ::-1]), rtol=1e-6, atol=1e-8)
    scaler, lr = pipe[0], pipe[-1]
    w_raw = lr.coef_[0] / scaler.scale_
    sign = np.where(pipe.predict(X) == 1, 1.0, -1.0)[:, None]
    expl = neon.explain(pipe, X, reference=None)  # LRP-0: dense formula on raw features, the bias absorbs the rest
    np.testing.assert_allclose(expl.relevance, sign * w_raw * X, rtol=1e-8, atol=1e-10)
    ref = neon.Explainer(pipe, reference="mean").fit(X).explain(X)
    np.testing.assert_allclose(ref.relevance, sign * lr.coef_[0] * (scaler.transform(X) - scaler.transform(X).mean(0)),
                               rtol=1e-7, atol=1e-9)
    multi = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(*load_wine(return_X_y=True))
    Xw = load_wine().data
    P = multi.predict_proba(Xw)
    eta = np.log(P) - np.log(P @ (1.0 - np.eye(3)))
    np.testing.assert_allclose(neon.neuralize(multi)(_t(Xw)).numpy(), eta, rtol=1e-6, atol=1e-8)


def _fit(model, X, y=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, y)


FINALS = {
    "kmeans": (lambda: KMeans(3, n_init=5, random_state=0), False, None),
    "ocsvm": (lambda: OneClassSVM(gamma=0.1, nu=0.2), False, None),
    "kde": (lambda: KernelDensity(bandwidth=1.0), False, None),
    "svc_rbf": (lambda: SVC(gamma=0.1), True, None),
    "svc_linear": (lambda: SVC(kernel="linear"), True, "mean"),
    "linear_svc": (lambda: LinearSVC(), True, "mean"),
    "logreg": (lambda: LogisticRegression(max_iter=1000), True, "mean"),
    "mlp": (lambda: MLPClassifier(hidden_layer_sizes=(8,), max_iter=300, random_state=0), True, None),
}


@pytest.mark.parametrize("final", list(FINALS))
def test_scaler_pipeline_equals_model_on_prescaled_data(final: str) -> None:
    X, y = load_wine(return_X_y=True)
    make, supervised, reference = FINALS[final]
    scaler = StandardScaler().fit(X)
    Xs = scaler.transform(X)
    hand = _fit(make(), Xs, y if supervised else None)
    pipe = Pipeline([("scale", scaler), ("model", hand)])  # the same fitted objects
    before = joblib.hash(pipe)
    net, hand_net = neon.neuralize(pipe), neon.neuralize(hand)
    np.testing.assert_allclose(net(_t(X)).numpy(), hand_net(_t(Xs)).numpy(), rtol=1e-9, atol=1e-9)
    if supervised:
        np.testing.assert_array_equal(np.asarray(net.target_names)[net(_t(X)).numpy().argmax(1)], pipe.predict(X))
    expl = neon.Explainer(pipe, reference=reference).fit(X).explain(X)
    expected = neon.Explainer(hand, reference=reference).fit(Xs).explain(Xs)
    np.testing.assert_allclose(expl.output, expected.output, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(expl.relevance, expected.relevance, rtol=1e-7, atol=1e-9)
    assert joblib.hash(pipe) == before


def test_kmeans_pipeline_by_hand_and_forward() -> None:
    X, _ = load_iris(return_X_y=True)
    pipe = make_pipeline(StandardScaler(), KMeans(3, n_init=5, random_state=0)).fit(X)
    out = neon.neuralize(pipe)(_t(X)).numpy()
    D = pipe.transform(X)  # distances to the centroids in scaled coordinates
    c = pipe.predict(X)
    logit = np.array([[np.min([D[i, k] ** 2 - D[i, j] ** 2 for k in range(3) if k != j]) for j in range(3)]
                      for i in range(len(X))])
    np.testing.assert_allclose(out, logit, rtol=1e-6, atol=1e-8)
    np.testing.assert_array_equal(out.argmax(1), c)


@pytest.mark.parametrize("pre", ["pca", "pca_whiten"])
def test_pca_in_front_of_kmeans_uses_the_root_point(pre: str) -> None:
    X, _ = load_wine(return_X_y=True)
    steps = [PCA(4)] if pre == "pca" else [PCA(4, whiten=True)]
    pipe = make_pipeline(*steps, KMeans(3, n_init=5, random_state=0)).fit(X)
    pca, km = pipe[0], pipe[-1]
    net = neon.neuralize(pipe)
    np.testing.assert_array_equal(net(_t(X)).numpy().argmax(1), pipe.predict(X))
    expl = neon.Explainer(pipe).fit(X).explain(X)
    assert np.all(np.abs(expl.relevance.sum(1) - expl.output) <= 1e-8 * np.abs(expl.output))
    # By hand: k-means explained on the PCA scores, then R_i = sum_j (x_i - m_i) M_ji / u_j R_j at the PCA mean.
    U = pca.transform(X)
    R_u = neon.Explainer(km).fit(U).explain(U).relevance
    M = pca.components_ / (np.sqrt(pca.explained_variance_)[:, None] if pca.whiten else 1.0)
    d = X - pca.mean_
    dense = (d[:, :, None] * M.T[None] / U[:, None, :] * R_u[:, None, :]).sum(-1)
    np.testing.assert_allclose(expl.relevance, dense, rtol=1e-7, atol=1e-9)


def test_ground_truth_through_scaler() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 12)) * rng.uniform(0.1, 50, size=12)  # wildly different raw scales
    y = (X[:, 0] / X[:, 0].std() + X[:, 1] / X[:, 1].std() > 0).astype(int)
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)
    R = neon.Explainer(pipe, reference="mean").fit(X).explain(X).relevance
    assert np.mean(np.abs(R).argmax(1) < 2) >= 0.9


def test_bad_steps_and_input() -> None:
    X, y = load_iris(return_X_y=True)
    for step in (PolynomialFeatures(2), FunctionTransformer(np.log1p), MinMaxScaler(clip=True)):
        pipe = Pipeline([("prep", step), ("model", Ridge())]).fit(X, y)  # the final model is not the problem
        before = joblib.hash(pipe)
        with pytest.raises(UnsupportedModelError, match="StandardScaler") as err:
            neon.neuralize(pipe)
        assert type(step).__name__ in str(err.value)
        assert joblib.hash(pipe) == before
    with pytest.raises(UnsupportedModelError, match="'prep'"):
        neon.neuralize(Pipeline([("prep", PolynomialFeatures(2)), ("model", Ridge())]).fit(X, y))
    with pytest.raises(NotFittedError):
        neon.explain(make_pipeline(StandardScaler(), LogisticRegression()), X)
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
    with pytest.raises(ValueError, match="X has 3 features, but Pipeline.* is expecting 4 features as input."):
        neon.explain(pipe, X[:, :3])
    with pytest.raises(UnsupportedModelError, match="activation='relu'"):
        neon.neuralize(_fit(make_pipeline(StandardScaler(), MLPClassifier((3,), activation="tanh", max_iter=20)),
                            X, y))
    with pytest.raises(UnsupportedModelError, match="passthrough"):
        neon.neuralize(Pipeline([("s", StandardScaler()), ("end", "passthrough")]).fit(X))
