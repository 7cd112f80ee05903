"""neon: explain machine-learning models with LRP and Neuralization-Propagation (NEON).

Neuralize, then propagate: every model is first rewritten as an exactly equivalent network
(:func:`neuralize` -> :class:`Network`), then explained by one LRP backward pass with local rules
(:mod:`neon.rules`, assigned by :mod:`neon.composites`).

>>> import neon
>>> expl = neon.explain(model, X)                       # doctest: +SKIP
>>> expl = neon.Explainer(model).fit(X).explain(X)      # doctest: +SKIP
"""

from . import baselines, composites, layers, metrics, rules
from .composites import Composite
from .exceptions import NeonError, RuleError, UnsupportedLayerError, UnsupportedModelError
from .explain import Explainer, explain
from .explanation import Explanation
from .network import Network
from .neuralize import neuralize, supported_models
from .tune import tune

__version__ = "0.1.0"

__all__ = [
    "Composite",
    "Explainer",
    "Explanation",
    "NeonError",
    "Network",
    "RuleError",
    "UnsupportedLayerError",
    "UnsupportedModelError",
    "baselines",
    "composites",
    "explain",
    "layers",
    "metrics",
    "neuralize",
    "rules",
    "supported_models",
    "tune",
]
