"""Neuralization: rewrite a model as an exactly equivalent :class:`neon.Network`.

One module per model family; converters build networks and never propagate relevance.
"""

from __future__ import annotations

import importlib
from typing import Any

from torch import nn

from ..exceptions import UnsupportedModelError
from ..network import Network
from ._registry import CONVERTERS, register, register_types
from .dnn import neuralize_module

#: Converter modules for scikit-learn estimators, imported on first use.
_SKLEARN_MODULES = ("kmeans", "density", "svm", "linear", "mlp", "pipeline")


def _load_sklearn_converters() -> None:
    for name in _SKLEARN_MODULES:
        try:
            importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"{__name__}.{name}":
                raise


def supported_models() -> list[str]:
    """Descriptions of every model family neon can neuralize."""
    _load_sklearn_converters()
    return ["torch.nn.Module traceable by torch.fx"] + [d for _, _, d in CONVERTERS]


def neuralize(model: Any, **options: Any) -> Network:
    """Rewrite ``model`` as a :class:`neon.Network` whose forward equals the model's explained output.

    Parameters
    ----------
    model
        A :class:`neon.Network` (returned as is), a PyTorch ``nn.Module``, or a fitted
        scikit-learn estimator or pipeline of a supported kind (:func:`supported_models`).
    **options
        Converter options, e.g. ``output="logit"`` or ``output="log-odds"``.
    """
    if isinstance(model, Network):
        return model
    if isinstance(model, nn.Module):
        return neuralize_module(model, **options)
    _load_sklearn_converters()
    for predicate, converter, _ in CONVERTERS:
        if predicate(model):
            return converter(model, **options)
    raise UnsupportedModelError(
        f"neon cannot neuralize {type(model).__name__}. Supported: " + "; ".join(supported_models()) + "."
    )


__all__ = ["CONVERTERS", "neuralize", "neuralize_module", "register", "register_types", "supported_models"]
