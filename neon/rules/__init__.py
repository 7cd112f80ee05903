"""LRP rules: each a small class with its formula and paper in the docstring.

Affine layers: :class:`Epsilon` (``Epsilon(0)`` is LRP-0), :class:`Gamma`, :class:`ZPlus`,
:class:`AlphaBeta`, :class:`ZBox`, :class:`WSquare`, :class:`Flat`, :class:`Reference`.
Other layers: :class:`Pass`, :class:`Proportional`, :class:`WinnerTakesAll`.
NEON layers: :class:`SoftMin`, :class:`SoftMax`, :class:`Distance`, :class:`Midpoint`.
"""

from .affine import AffineRule, AlphaBeta, Epsilon, Flat, Gamma, Reference, WSquare, ZBox, ZPlus
from .base import Context, Rule, vjp
from .coordinates import RootPoint
from .distance import Distance, Midpoint
from .pooling import Pass, Proportional, SoftMax, SoftMin, WinnerTakesAll
from .svc import SVCGradientInput, SVCHybrid, SVCMidpoint


#: LRP-0 is the epsilon rule without stabiliser.
def LRP0() -> Epsilon:  # noqa: N802 - reads like the other rule constructors
    """LRP-0: ``R_j = sum_k a_j w_jk / z_k R_k`` (Bach et al. 2015); ``Epsilon(0)``."""
    return Epsilon(0.0)


__all__ = [
    "AffineRule",
    "AlphaBeta",
    "Context",
    "Distance",
    "Epsilon",
    "Flat",
    "Gamma",
    "LRP0",
    "Midpoint",
    "Pass",
    "Proportional",
    "Reference",
    "RootPoint",
    "Rule",
    "SoftMax",
    "SoftMin",
    "WSquare",
    "WinnerTakesAll",
    "ZBox",
    "ZPlus",
    "vjp",
    "SVCGradientInput",
    "SVCHybrid",
    "SVCMidpoint",
]
