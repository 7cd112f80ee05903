"""The default-rule registry: which rule a node gets when no composite says otherwise.

One table for every layer type and every kind of function node. A layer never chooses its own rule,
and the graph asks this registry which modules are layers at all: a module type is supported exactly
when it has an entry here. Adding a layer type is one entry::

    @default_for(MyLayer)
    def _my_layer(op):
        return MyRule()

Entries are looked up along the module's class hierarchy (a subclass of ``nn.Linear`` gets the rule of
``nn.Linear``); function nodes (``F.relu``, ``a + b``, ``F.max_pool2d``) are looked up by their
:class:`~neon.propagate.kinds.NodeKind`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from ..layers.affine import ChannelAffine
from ..layers.coordinates import AffineProjection, FeatureAffine
from ..layers.distance import CentroidContrast, SquaredDistance
from ..layers.families import ACTIVATION_MODULES, AVG_POOL_MODULES, MAX_POOL_MODULES
from ..layers.kernel import RBFContrast
from ..layers.pooling import Reduce
from ..layers.top import LogOdds
from ..propagate.kinds import NodeKind
from .affine import Epsilon
from .attention import SoftmaxTaylor, Uniform
from .base import Rule
from .coordinates import RootPoint
from .distance import Distance, Midpoint
from .elementwise import Pass
from .embedding import EmbeddingSum
from .normalization import RMS_NORM, Normalization
from .pooling import SoftMax, SoftMin, WinnerTakesAll
from .sums import Proportional
from .svc import SVCHybrid

Factory = Callable[[Any], Rule]

_BY_TYPE: dict[type, Factory] = {}
_BY_KIND: dict[NodeKind, Factory] = {}


def default_for(*keys: type | NodeKind) -> Callable[[Factory], Factory]:
    """Register ``factory(op) -> Rule`` as the default rule of these module types and node kinds."""

    def register(factory: Factory) -> Factory:
        for key in keys:
            if isinstance(key, NodeKind):
                _BY_KIND[key] = factory
            elif isinstance(key, type):
                _BY_TYPE[key] = factory
            else:
                raise TypeError(f"default_for({key!r}): give module classes or NodeKind values.")
        return factory

    return register


def _factory(op: Any, kind: NodeKind) -> Factory | None:
    if kind is not NodeKind.LAYER:
        return _BY_KIND.get(kind)
    for cls in type(op).__mro__:
        if cls in _BY_TYPE:
            return _BY_TYPE[cls]
    return None


def has_default(module: nn.Module) -> bool:
    """Whether ``module`` is a layer neon has a rule for."""
    return _factory(module, NodeKind.LAYER) is not None


def default_rule(op: Any, kind: NodeKind = NodeKind.LAYER) -> Rule | None:
    """A new instance of the default rule of ``op`` (a module, or a function node of ``kind``), or ``None``."""
    factory = _factory(op, kind)
    return None if factory is None else factory(op)


def registered_types() -> list[type]:
    """The module types with a default rule, in registration order."""
    return list(_BY_TYPE)


@default_for(nn.Linear, nn.Conv1d, nn.Conv2d, ChannelAffine, LogOdds)
def _affine(op: Any) -> Rule:
    return Epsilon()


@default_for(*ACTIVATION_MODULES, FeatureAffine, NodeKind.ACTIVATION)
def _elementwise(op: Any) -> Rule:
    return Pass()


@default_for(*AVG_POOL_MODULES, NodeKind.SUM)
def _proportional(op: Any) -> Rule:
    return Proportional()


@default_for(*MAX_POOL_MODULES, NodeKind.MAX)
def _winner(op: Any) -> Rule:
    return WinnerTakesAll()


@default_for(Reduce)
def _soft_pool(op: Reduce) -> Rule:
    # beta=None: the layer's own stiffness (a one-class SVM's gamma); hard pools need a composite's beta.
    return SoftMin(None) if op.sign < 0 else SoftMax(None)


@default_for(SquaredDistance)
def _distance(op: Any) -> Rule:
    return Distance()


@default_for(CentroidContrast)
def _midpoint(op: Any) -> Rule:
    return Midpoint()


@default_for(RBFContrast)
def _svc(op: Any) -> Rule:
    return SVCHybrid()


@default_for(AffineProjection)
def _root_point(op: Any) -> Rule:
    return RootPoint()


@default_for(nn.LayerNorm, *RMS_NORM)
def _normalization(op: Any) -> Rule:
    return Normalization()


@default_for(nn.Softmax, NodeKind.SOFTMAX)
def _softmax(op: Any) -> Rule:
    return SoftmaxTaylor()


@default_for(NodeKind.PRODUCT)
def _product(op: Any) -> Rule:
    return Uniform()


@default_for(nn.Embedding)
def _embedding(op: Any) -> Rule:
    return EmbeddingSum()
