"""neon: explain machine-learning models with LRP and Neuralization-Propagation (NEON).

Neuralize, then propagate: every model is first rewritten as an exactly equivalent network
(:func:`neuralize` -> :class:`Network`), then explained by one LRP backward pass with local rules
(:mod:`neon.rules`, assigned by :mod:`neon.composites`). The formulas: ``docs/theory.md``.

>>> import neon
>>> expl = neon.explain(model, X)                       # doctest: +SKIP
>>> expl = neon.Explainer(model).fit(X).explain(X)      # doctest: +SKIP

Submodules: :mod:`neon.rules`, :mod:`neon.composites` (the same module as :mod:`neon.rules.composites`),
:mod:`neon.layers`, :mod:`neon.converters`, :mod:`neon.propagate`, :mod:`neon.metrics`,
:mod:`neon.baselines`, :mod:`neon.tuning`, :mod:`neon.spray` (Spectral Relevance Analysis),
:mod:`neon.cleaning` (Clever-Hans artifacts and corrupted records), and :mod:`neon.plot` (imported on first use,
with matplotlib).
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

from . import baselines, cleaning, layers, metrics, rules, spray
from .converters import neuralize, supported_models
from .exceptions import NeonError, OutputError, RuleError, UnsupportedLayerError, UnsupportedModelError
from .explainer import Explainer, explain
from .explanation import Explanation
from .network import Network
from .rules import composites
from .rules.composites import Composite
from .tuning import tune

# ``neon.composites`` is the public name of the composites module: ``from neon.composites import ...``
# works as well as ``neon.composites.EpsilonGammaBox``.
sys.modules[__name__ + ".composites"] = composites

__version__ = "0.1.0"

#: Submodules loaded on first attribute access (they import optional or heavy dependencies).
_LAZY = {"plot": ".plot", "cli": ".cli"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name], __name__)
        globals()[name] = module
        return module
    raise AttributeError(f"module 'neon' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "Composite",
    "Explainer",
    "Explanation",
    "NeonError",
    "Network",
    "OutputError",
    "RuleError",
    "UnsupportedLayerError",
    "UnsupportedModelError",
    "baselines",
    "cleaning",
    "composites",
    "explain",
    "layers",
    "metrics",
    "neuralize",
    "rules",
    "spray",
    "supported_models",
    "tune",
]
