"""neon's layers: affine layers with an LRP view, NEON pooling and distance layers, the log-odds top."""

from .affine import AFFINE_TYPES, AffineView, ChannelAffine, as_affine, is_affine, linear_view
from .coordinates import AffineProjection, FeatureAffine
from .distance import CentroidContrast, SquaredDistance, squared_distances
from .kernel import RBFContrast
from .pooling import ReduceMax, ReduceMin
from .top import LogOdds

__all__ = [
    "AFFINE_TYPES",
    "AffineProjection",
    "AffineView",
    "CentroidContrast",
    "ChannelAffine",
    "FeatureAffine",
    "LogOdds",
    "ReduceMax",
    "ReduceMin",
    "SquaredDistance",
    "as_affine",
    "is_affine",
    "linear_view",
    "squared_distances",
    "RBFContrast",
]
