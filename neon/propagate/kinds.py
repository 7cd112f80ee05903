"""The kinds of node a :class:`neon.Network` graph is made of (``docs/architecture.md``).

Kept in a module of its own, importing nothing, so that the graph, the engine and the default-rule
registry can all name them.
"""

from __future__ import annotations

from enum import Enum


class NodeKind(str, Enum):
    """What a node of the graph is, and how relevance crosses it.

    Nodes of the kinds ``LAYER``, ``ACTIVATION``, ``SUM``, ``MAX``, ``SOFTMAX`` and ``PRODUCT`` carry a rule
    (the composite's or the registry's default); the others are structural and handled by the engine itself.
    """

    #: The network's input.
    INPUT = "input"
    #: The network's output.
    OUTPUT = "output"
    #: A value that is not explained (shapes, constants): no relevance.
    CONST = "const"
    #: A module with a rule: affine layers, pools, activations, NEON layers.
    LAYER = "layer"
    #: An element-wise activation given as a function (``F.relu``, ``torch.tanh``): a rule, ``Pass`` by default.
    ACTIVATION = "activation"
    #: An exact rearrangement of values (flatten, view, cat, permute, slicing, dropout in eval mode):
    #: relevance moves with the values.
    MOVE = "move"
    #: Multiplication or division by a constant number: relevance passes unchanged (it is conserved).
    SCALE = "scale"
    #: Sums of tensors (residual ``a + b``, ``torch.add``, ``mean``/``sum`` over axes, functional average
    #: pooling): a rule, the proportional split by default.
    SUM = "sum"
    #: Functional max pooling: a rule, winner-takes-all by default.
    MAX = "max"
    #: A softmax given as a function (attention weights): a rule, AttnLRP's softmax rule by default.
    SOFTMAX = "softmax"
    #: A product of two or more tensors (``a * b``, ``q @ k.transpose(-2, -1)``, ``torch.bmm``, ``einsum``):
    #: a rule, AttnLRP's uniform rule by default.
    PRODUCT = "product"

    def __str__(self) -> str:
        return self.value

    @property
    def has_rule(self) -> bool:
        """Whether nodes of this kind are given a rule."""
        return self in (NodeKind.LAYER, NodeKind.ACTIVATION, NodeKind.SUM, NodeKind.MAX, NodeKind.SOFTMAX,
                        NodeKind.PRODUCT)
