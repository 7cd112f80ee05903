"""LRP rules: each a small class with its formula and paper in the docstring.

Affine layers: :class:`Epsilon` (``Epsilon(0)`` is LRP-0), :class:`Gamma`, :class:`ZPlus`,
:class:`AlphaBeta`, :class:`ZBox`, :class:`WSquare`, :class:`Flat`, :class:`Reference`.
Other layers: :class:`Pass` (element-wise; AttnLRP's identity rule), :class:`Proportional` (sums, average
pools), :class:`WinnerTakesAll` (max pools).
Transformers (AttnLRP, CP-LRP): :class:`Uniform` (products of activations), :class:`SoftmaxTaylor`,
:class:`HoldConstant` (attention weights as constants), :class:`Normalization` (LayerNorm, RMSNorm),
:class:`EmbeddingSum` (relevance per token).
NEON layers: :class:`SoftMin`, :class:`SoftMax`, :class:`Distance`, :class:`Midpoint`, :class:`RootPoint`,
:class:`SVCHybrid`, :class:`SVCMidpoint`, :class:`SVCGradientInput`.

Which rule goes where: :mod:`neon.rules.composites` (named presets, user composites) and the
default-rule registry :mod:`neon.rules.defaults`. The rule protocol: :mod:`neon.rules.base`.
The formulas: ``docs/theory.md``.
"""

from . import composites as composites  # submodules, loaded with the package
from . import defaults as defaults
from .affine import AffineRule, AlphaBeta, Epsilon, Flat, Gamma, Reference, WSquare, ZBox, ZPlus
from .attention import HoldConstant, SoftmaxTaylor, Uniform
from .base import Context, Rule, vjp
from .coordinates import RootPoint
from .distance import Distance, Midpoint
from .elementwise import Pass
from .embedding import EmbeddingSum
from .normalization import Normalization
from .pooling import SoftMax, SoftMin, WinnerTakesAll
from .sums import Proportional
from .svc import SVCGradientInput, SVCHybrid, SVCMidpoint


def LRP0() -> Epsilon:  # noqa: N802 - reads like the other rule constructors
    """LRP-0: ``R_j = sum_k a_j w_jk / z_k R_k`` (Bach et al. 2015); ``Epsilon(0)``."""
    return Epsilon(0.0)


__all__ = [
    "AffineRule",
    "AlphaBeta",
    "Context",
    "Distance",
    "EmbeddingSum",
    "Epsilon",
    "Flat",
    "Gamma",
    "HoldConstant",
    "LRP0",
    "Midpoint",
    "Normalization",
    "Pass",
    "Proportional",
    "Reference",
    "RootPoint",
    "Rule",
    "SVCGradientInput",
    "SVCHybrid",
    "SVCMidpoint",
    "SoftMax",
    "SoftMin",
    "SoftmaxTaylor",
    "Uniform",
    "WSquare",
    "WinnerTakesAll",
    "ZBox",
    "ZPlus",
    "vjp",
]
