"""The layers neon networks are built from, besides torch's own (``nn.Linear``, ``nn.Conv2d``, ...).

Affine: :class:`ChannelAffine` (an unfolded BatchNorm), :class:`LogOdds` (the log-odds top of a
classifier). NEON: :class:`ReduceMin` / :class:`ReduceMax` (one :class:`Reduce` layer with a sign),
:class:`SquaredDistance`, :class:`CentroidContrast` (k-means logits), :class:`RBFContrast` (RBF SVC
pairs). Changes of coordinates: :class:`FeatureAffine`, :class:`AffineProjection`. Transformers:
:class:`TokenEmbedding` (an ``nn.Embedding`` that takes token ids in a floating dtype).

Layers compute; they never choose or import rules (the registry :mod:`neon.rules.defaults` does).
The affine view the rules take of a layer lives in :mod:`neon.layers.affine`.
"""

from .affine import ChannelAffine
from .coordinates import AffineProjection, FeatureAffine
from .distance import CentroidContrast, SquaredDistance
from .embedding import TokenEmbedding
from .kernel import RBFContrast
from .pooling import Reduce, ReduceMax, ReduceMin
from .top import LogOdds

__all__ = [
    "AffineProjection",
    "CentroidContrast",
    "ChannelAffine",
    "FeatureAffine",
    "LogOdds",
    "RBFContrast",
    "Reduce",
    "ReduceMax",
    "ReduceMin",
    "SquaredDistance",
    "TokenEmbedding",
]
