"""Errors raised by neon.

Every error names the problem and, where it applies, what is supported instead.
"""

from __future__ import annotations


class NeonError(Exception):
    """Base class of all neon-specific errors."""


class UnsupportedModelError(NeonError, TypeError):
    """The model (estimator, module or option) has no exact neuralization in neon."""


class UnsupportedLayerError(NeonError, TypeError):
    """A layer or operation of a traced network has no relevance rule in neon."""


class RuleError(NeonError, ValueError):
    """A rule was assigned to a layer it cannot be applied to, or was configured wrongly."""


class OutputError(UnsupportedModelError, ValueError):
    """``output=`` names a quantity the model does not have (or cannot be explained exactly for this model)."""


class EquivalenceError(NeonError, ValueError):
    """The network neon built does not compute what the model computes: neon refuses to explain it.

    The message gives the size of the difference and, for PyTorch models, the first traced node whose output
    differs from the model's own submodule output, with the usual causes and their fix.
    """
