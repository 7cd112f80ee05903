"""scikit-learn ReLU MLPs as networks (docs/theory.md §4, "ReLU MLPs").

``MLPClassifier`` / ``MLPRegressor`` with ``activation="relu"`` are exactly ``Linear -> ReLU -> ...
-> Linear``; a classifier ends in the log-odds top of docs/theory.md §3 (a binary one, whose
single output unit ``f`` feeds a sigmoid, as the logits ``[0, f]``). Other activations (tanh,
logistic, identity) are not ReLU networks and are refused.

The default composite (:func:`mlp_composite`) was chosen with the feature-flipping benchmark
``benchmarks/bench_mlp_rules.py`` (numbers in ``docs/converters/mlp.md``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.utils.validation import check_is_fitted
from torch import nn

from ..exceptions import UnsupportedModelError
from ..network import Network
from ..rules import Epsilon, ZBox
from ..rules.composites import Composite
from . import references
from ._registry import register_types
from .linear import classifier_top, linear_layer


def mlp_composite(epsilon: float = 0.25, single_output: bool = False) -> Composite:
    """neon's default for dense ReLU nets: z^B on the input layer, LRP-epsilon (relative) above it.

    - input layer: z^B (Montavon et al., Pattern Recognit. 2017) with the per-feature minimum and
      maximum of the fit data as bounds (``ZBox("auto", "auto")``): relevance is measured against the
      box of plausible inputs rather than against zero;
    - hidden layers and a multi-class top: LRP-epsilon with a per-sample stabiliser
      ``epsilon * RMS(z)`` of the layer output (the middle-layer rule of Montavon et al.,
      "Layer-wise relevance propagation: an overview", 2019), which absorbs weak, noisy contributions;
    - a single-output top (regressor, binary classifier): LRP-0. There ``RMS(z) = |z|`` and the
      relative stabiliser would only shrink every explanation by ``1 / (1 + epsilon)``.

    The choice is justified by the feature-flipping benchmark ``benchmarks/bench_mlp_rules.py``
    (numbers in ``docs/converters/mlp.md``).
    """
    return Composite(
        by_type=[("affine", Epsilon(epsilon, relative=True))],
        first=[("dense", ZBox("auto", "auto"))],
        by_name={"out": Epsilon(0.0)} if single_output else None,
        name=f"mlp(z^B input, epsilon({epsilon:g} rms) above" + (", LRP-0 top)" if single_output else ")"),
    )


def _check_relu(model: Any) -> None:
    if model.activation != "relu":
        raise UnsupportedModelError(
            f"{type(model).__name__}(activation={model.activation!r}) is not a ReLU network; neon supports "
            "MLPClassifier/MLPRegressor with activation='relu' only (docs/theory.md §4)."
        )


def _hidden_layers(model: Any) -> list[tuple[str, nn.Module]]:
    layers: list[tuple[str, nn.Module]] = []
    for i, (W, b) in enumerate(zip(model.coefs_[:-1], model.intercepts_[:-1])):
        layers += [(f"dense{i}", linear_layer(np.asarray(W).T, b)), (f"relu{i}", nn.ReLU())]
    return layers


def _feature_names(model: Any) -> list[str] | None:
    names = getattr(model, "feature_names_in_", None)
    return None if names is None else [str(n) for n in names]


@register_types(MLPClassifier, description="MLPClassifier (activation='relu'; binary or multi-class): "
                "dense ReLU layers + log-odds top", outputs=("log-odds", "logit"))
def neuralize_mlp_classifier(model: MLPClassifier, output: str | None = None, **options: Any) -> Network:
    """A fitted ReLU ``MLPClassifier`` as ``Linear -> ReLU -> ... -> log-odds top``.

    Parameters
    ----------
    output
        ``"log-odds"`` (default; ``log(P_c / (1 - P_c))`` of ``predict_proba``) or ``"logit"``
        (the last layer's pre-activations; for a binary model ``[-f, f]``).
    """
    if options:
        raise TypeError(f"unknown options {sorted(options)} for MLPClassifier; the only option is output=.")
    check_is_fitted(model)
    _check_relu(model)
    out = output or "log-odds"
    if model.out_activation_ not in ("softmax", "logistic") or (model.out_activation_ == "logistic"
                                                                 and model.n_outputs_ != 1):
        raise UnsupportedModelError(
            f"MLPClassifier with {model.n_outputs_} independent sigmoid outputs (multi-label) is not supported; "
            "neon supports binary and multi-class single-label MLPClassifier."
        )
    top = classifier_top(np.asarray(model.coefs_[-1]).T, model.intercepts_[-1], out)
    return Network.sequential(
        _hidden_layers(model) + [("out", top)], output_kind=out, target_names=list(model.classes_),
        input_shape=(model.coefs_[0].shape[0],), feature_names=_feature_names(model),
        default_rules=mlp_composite(single_output=len(model.classes_) == 2), description="MLPClassifier",
        reference=references.reference(references.predict_proba, model, "MLPClassifier.predict_proba",
                                       references.to_probabilities if out == "log-odds"
                                       else references.softmax_or_sigmoid),
    )


@register_types(MLPRegressor, description="MLPRegressor (activation='relu', one output): dense ReLU layers",
                outputs=("value",))
def neuralize_mlp_regressor(model: MLPRegressor, output: str | None = None, **options: Any) -> Network:
    """A fitted single-output ReLU ``MLPRegressor`` as ``Linear -> ReLU -> ... -> Linear``."""
    if options:
        raise TypeError(f"unknown options {sorted(options)} for MLPRegressor; the only option is output=.")
    check_is_fitted(model)
    _check_relu(model)
    if model.n_outputs_ != 1:
        raise UnsupportedModelError(
            f"MLPRegressor with {model.n_outputs_} outputs is not supported; neon explains single-output "
            "regressors (fit one model per target)."
        )
    top = linear_layer(np.asarray(model.coefs_[-1]).T, model.intercepts_[-1])
    return Network.sequential(
        _hidden_layers(model) + [("out", top)], output_kind="value", target_names=None,
        input_shape=(model.coefs_[0].shape[0],), feature_names=_feature_names(model),
        default_rules=mlp_composite(single_output=True), description="MLPRegressor",
        reference=references.reference(references.predict, model, "MLPRegressor.predict"),
    )


__all__ = ["mlp_composite", "neuralize_mlp_classifier", "neuralize_mlp_regressor"]
