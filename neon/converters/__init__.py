"""Neuralization: rewrite a model as an exactly equivalent :class:`neon.Network`.

One module per model family (:mod:`~neon.converters.dnn` for PyTorch modules,
:mod:`~neon.converters.kmeans`, :mod:`~neon.converters.density`, :mod:`~neon.converters.svm`,
:mod:`~neon.converters.linear`, :mod:`~neon.converters.mlp`, :mod:`~neon.converters.pipeline` for
scikit-learn). Converters build networks and never propagate relevance; they import the contract
(:mod:`neon.network`), layers and rules, never the propagation engine.
"""

from __future__ import annotations

from ._registry import CONVERTERS, neuralize, register, register_types, supported_models

__all__ = ["CONVERTERS", "neuralize", "register", "register_types", "supported_models"]
