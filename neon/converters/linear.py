"""Linear models as one affine layer (docs/theory.md §4, "Linear models").

Classifiers ``z = W x + b`` end in the log-odds top of docs/theory.md §3 when their
probabilities are a softmax (or a sigmoid) of the decision function, otherwise the network
outputs the decision function itself (``output="logit"``). Regressors are one affine layer
``f(x) = w^T x + b`` whose explained value is ``f(x) - f(x~)`` when the :class:`neon.Explainer` is
given a reference point ``x~``: the reference rule then gives ``R_i = w_i (x_i - x~_i)`` exactly,
which are SHAP's linear values when ``x~`` is the background mean (Lundberg & Lee, NeurIPS 2017).

A binary classifier with decision function ``f`` is written as the two logits ``[0, f]``; the
log-odds top turns them into ``[-f, f]``, so the predicted class is the arg-max and class 0 is
explained by ``-f``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
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
from sklearn.utils.validation import check_is_fitted
from torch import nn

from ..exceptions import OutputError, UnsupportedModelError
from ..layers.top import LogOdds
from ..network import Network
from ..rules.composites import Composite, lrp0
from . import references
from ._registry import register_types

CLASSIFIERS = (LogisticRegression, LogisticRegressionCV, SGDClassifier, RidgeClassifier, RidgeClassifierCV, Perceptron)
REGRESSORS = (LinearRegression, Ridge, RidgeCV, Lasso, LassoCV, ElasticNet, ElasticNetCV, SGDRegressor, BayesianRidge,
              HuberRegressor)


def linear_layer(weight: np.ndarray, bias: np.ndarray) -> nn.Linear:
    """An ``nn.Linear`` (float64, frozen) holding copies of ``weight`` ``(out, in)`` and ``bias`` ``(out,)``."""
    weight = np.array(weight, dtype=np.float64)
    bias = np.array(bias, dtype=np.float64)
    layer = nn.Linear(weight.shape[1], weight.shape[0], dtype=torch.float64)
    with torch.no_grad():
        layer.weight.copy_(torch.as_tensor(weight))
        layer.bias.copy_(torch.as_tensor(bias))
    layer.requires_grad_(False)
    return layer


def classifier_top(weight: np.ndarray, bias: np.ndarray, output: str) -> nn.Module:
    """The top of a classifier whose decision function is ``x W^T + b``.

    One row (a binary model's ``f``) becomes the logits ``[0, f]`` under the log-odds top, or the
    logits ``[-f, f]`` for ``output="logit"``: both give ``[-f, f]``. Several rows are the class
    logits, under the log-odds top or as they are.
    """
    weight = np.atleast_2d(np.asarray(weight, dtype=np.float64))
    bias = np.broadcast_to(np.ravel(np.asarray(bias, dtype=np.float64)), (weight.shape[0],))
    if output == "log-odds":
        if weight.shape[0] == 1:
            weight, bias = np.vstack([np.zeros_like(weight), weight]), np.concatenate([[0.0], bias])
        return LogOdds(linear_layer(weight, bias))
    if weight.shape[0] == 1:
        weight, bias = np.vstack([-weight, weight]), np.concatenate([-bias, bias])
    return linear_layer(weight, bias)


def _softmax_probabilities(model: Any) -> bool:
    """Whether ``predict_proba`` is the softmax of the decision function (sigmoid for two classes)."""
    if isinstance(model, LogisticRegression):
        # sklearn >= 1.8 fits every multi-class LogisticRegression as multinomial; older ones may be OvR.
        scheme = getattr(model, "multi_class", "multinomial")
        ovr = scheme == "ovr" or (scheme == "auto" and model.solver == "liblinear")
        return len(model.classes_) == 2 or not ovr
    if isinstance(model, SGDClassifier):
        return model.loss == "log_loss" and len(model.classes_) == 2
    return False


def _classifier_output(model: Any, output: str | None) -> str:
    probabilistic = _softmax_probabilities(model)
    if output is None:
        return "log-odds" if probabilistic else "logit"
    if output == "log-odds" and not probabilistic:
        if isinstance(model, SGDClassifier) and model.loss == "log_loss":
            why = "its predict_proba normalises one-vs-rest sigmoids, whose log-odds are not an exact network"
        elif isinstance(model, SGDClassifier) and model.loss == "modified_huber":
            why = "its predict_proba is a clipped linear function of the decision function, not a sigmoid"
        else:
            why = "it has no softmax/sigmoid probabilities"
        raise OutputError(
            f"output='log-odds' is not available for {type(model).__name__} ({why}); use output='logit' "
            "(the decision function). log-odds are supported for LogisticRegression and binary "
            "SGDClassifier(loss='log_loss')."
        )
    return output


def _default_rules() -> Composite:
    # One affine layer: LRP-0 gives R_i = w_i x_i exactly (the bias absorbs b); with a reference
    # point the Explainer puts Reference(x~) here and the split of f(x) - f(x~) is exact.
    composite = lrp0()
    composite.name = "lrp0 (linear model)"
    return composite


def _feature_names(model: Any) -> Sequence[str] | None:
    names = getattr(model, "feature_names_in_", None)
    return None if names is None else [str(n) for n in names]


@register_types(*CLASSIFIERS, description="linear classifiers (LogisticRegression[CV] binary/multinomial, "
                "SGDClassifier, RidgeClassifier[CV], Perceptron): one affine layer + log-odds top or logits",
                outputs=("log-odds", "logit"))
def neuralize_linear_classifier(model: Any, output: str | None = None, **options: Any) -> Network:
    """A fitted linear classifier as one affine layer, under the log-odds top where probabilistic.

    Parameters
    ----------
    model
        ``LogisticRegression``, ``SGDClassifier``, ``RidgeClassifier`` or ``Perceptron``.
    output
        ``"log-odds"`` ``log(P_c / (1 - P_c))`` (default for ``LogisticRegression`` and binary
        ``SGDClassifier(loss="log_loss")``: their ``predict_proba`` is the softmax / sigmoid of the
        decision function) or ``"logit"``: the decision function (default otherwise). For two
        classes both are ``[-f, f]`` with ``f = decision_function(x)``.

    Returns
    -------
    Network
        Forward ``(n, n_classes)``; arg-max = ``predict``; ``target_names = classes_``.
    """
    _no_options(model, options)
    check_is_fitted(model)
    out = _classifier_output(model, output)
    coef = np.atleast_2d(np.asarray(model.coef_, dtype=np.float64))
    n_classes = len(model.classes_)
    if coef.shape[0] != (1 if n_classes == 2 else n_classes):
        raise UnsupportedModelError(
            f"{type(model).__name__} with coef_ of shape {coef.shape} for {n_classes} classes (multi-label "
            "targets?) is not supported; neon supports binary and multi-class single-label classifiers."
        )
    top = classifier_top(coef, np.asarray(model.intercept_, dtype=np.float64), out)
    name = type(model).__name__
    ref = (references.reference(references.predict_proba, model, f"{name}.predict_proba", references.to_probabilities)
           if out == "log-odds" else
           references.reference(references.decision_two_columns, model, f"{name}.decision_function"))
    return Network.sequential(
        [("linear", top)], output_kind=out, target_names=list(model.classes_), input_shape=(coef.shape[1],),
        feature_names=_feature_names(model), default_rules=_default_rules(), description=name,
        default_reference="mean", reference=ref,
    )


@register_types(*REGRESSORS, description="linear regressors (LinearRegression, Ridge[CV], Lasso[CV], "
                "ElasticNet[CV], SGDRegressor, BayesianRidge, HuberRegressor): one affine layer, f(x) - f(x~) "
                "with a reference point", outputs=("value",))
def neuralize_linear_regressor(model: Any, output: str | None = None, **options: Any) -> Network:
    """A fitted single-output linear regressor as one affine layer ``f(x) = w^T x + b``.

    With ``Explainer(model, reference=x~)`` (``"mean"`` or an array) the explained value is
    ``f(x) - f(x~)`` and the relevance ``R_i = w_i (x_i - x~_i)`` (exact); without a reference the
    rule is LRP-0, ``R_i = w_i x_i``, and the bias ``b`` is reported as absorbed.
    """
    _no_options(model, options)
    check_is_fitted(model)
    coef = np.asarray(model.coef_, dtype=np.float64)
    if coef.ndim == 2 and coef.shape[0] != 1:
        raise UnsupportedModelError(
            f"{type(model).__name__} with {coef.shape[0]} targets is not supported; neon explains single-output "
            "regressors (fit one regressor per target)."
        )
    coef = coef.reshape(1, -1)
    layer = linear_layer(coef, np.ravel(np.asarray(model.intercept_, dtype=np.float64))[:1])
    return Network.sequential(
        [("linear", layer)], output_kind="value", target_names=None, input_shape=(coef.shape[1],),
        feature_names=_feature_names(model), default_rules=_default_rules(), description=type(model).__name__,
        default_reference="mean",
        reference=references.reference(references.predict, model, f"{type(model).__name__}.predict"),
    )


def _no_options(model: Any, options: dict[str, Any]) -> None:
    if options:
        raise TypeError(f"unknown options {sorted(options)} for {type(model).__name__}; the only option is output=.")


__all__ = ["CLASSIFIERS", "REGRESSORS", "classifier_top", "linear_layer", "neuralize_linear_classifier",
           "neuralize_linear_regressor"]
