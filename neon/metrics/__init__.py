"""Explanation quality, measured: the four properties of the seed (docs/theory.md §5).

=====================  =====================================================  ==================
metric                 what it measures                                       better
=====================  =====================================================  ==================
:func:`conservation`   ``|f(x) - sum R| / |f(x)|``                            lower
:func:`positivity`     share of negative relevance mass                       lower
:func:`continuity`     ``||R(x) - R(x')|| / ||x - x'||``                      lower
:func:`pixel_flipping` area under the flipping curve (MoRF / LeRF)            lower / higher
:func:`region_perturbation`  AOPC over patches (MoRF / LeRF)                  higher / lower
:func:`localization`   relevance mass inside a ground-truth mask; top-k hits  higher
:func:`relevance_mass_accuracy`  pooled relevance inside the mask (CLEVR-XAI)     higher
:func:`relevance_rank_accuracy`  share of the top-K pixels inside the mask         higher
=====================  =====================================================  ==================

Every result is a :class:`MetricResult` (``scores`` per sample, ``mean``, ``higher_is_better``,
``direction``, ``replace``); flipping metrics return a :class:`FlippingResult` with the curves.
Metrics work on numpy and torch inputs, batched over samples, on any model neon can neuralize,
and never modify their inputs.
"""

from ._common import FlippingResult, MetricResult
from ._conservation import conservation
from ._continuity import continuity
from ._localization import localization
from ._positivity import positivity
from .flipping import pixel_flipping, region_perturbation
from .ground_truth import POOLINGS, pool_channels, relevance_mass_accuracy, relevance_rank_accuracy
from .replace import REPLACEMENTS, replacement

__all__ = [
    "REPLACEMENTS",
    "FlippingResult",
    "MetricResult",
    "POOLINGS",
    "conservation",
    "continuity",
    "localization",
    "pixel_flipping",
    "pool_channels",
    "positivity",
    "region_perturbation",
    "relevance_mass_accuracy",
    "relevance_rank_accuracy",
    "replacement",
]
