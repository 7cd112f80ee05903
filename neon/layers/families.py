"""The torch layer families neon recognises in a traced model, by what they do to values.

The graph (which nodes exist), the default-rule registry (which rule a node gets) and the composites
(which layers a type name such as ``"conv"`` means) all read these tuples, so a family is named once.
"""

from __future__ import annotations

from torch import nn

#: Element-wise activations (one input, output of the input's shape).
ACTIVATION_MODULES: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
    nn.Tanh, nn.Sigmoid, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.Softplus,
)
#: Rectifiers: zero exactly where their input is ``<= 0``.
RELU_MODULES: tuple[type[nn.Module], ...] = (nn.ReLU, nn.ReLU6)
#: Exact rearrangements of values (and dropout, the identity in evaluation mode).
MOVE_MODULES: tuple[type[nn.Module], ...] = (
    nn.Flatten, nn.Unflatten, nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout,
)
#: Average pools: positive linear maps without parameters.
AVG_POOL_MODULES: tuple[type[nn.Module], ...] = (
    nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d,
)
#: Max pools.
MAX_POOL_MODULES: tuple[type[nn.Module], ...] = (
    nn.MaxPool1d, nn.MaxPool2d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d,
)
#: Convolutions with an affine rule.
CONV_MODULES: tuple[type[nn.Module], ...] = (nn.Conv1d, nn.Conv2d)
