"""Affine layers and the view the LRP rules take of them.

Every LRP rule for an affine layer (docs/theory.md §2) needs two operations with
*modified* parameters ``rho(W), rho(b)``: the forward map ``z = rho(W) a + rho(b)`` and its
transpose ``c = rho(W)^T s`` (the vector-Jacobian product of the forward). :class:`AffineView`
provides both for ``nn.Linear``, ``nn.Conv1d``, ``nn.Conv2d`` and :class:`ChannelAffine`, so the
rules are written once, independently of the layer type.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._numeric import is_channels_last
from ..exceptions import UnsupportedLayerError
from .derived import derived


class ChannelAffine(nn.Module):
    """Per-channel affine map ``y[:, c] = w_c x[:, c] + b_c`` (channels on axis 1).

    A BatchNorm layer in evaluation mode that cannot be folded into a neighbouring linear or
    convolutional layer becomes this layer; the affine LRP rules apply to it.
    """

    def __init__(self, weight: Tensor, bias: Tensor):
        super().__init__()
        self.weight = nn.Parameter(weight.detach().clone(), requires_grad=False)
        self.bias = nn.Parameter(bias.detach().clone(), requires_grad=False)

    @staticmethod
    def _shape(param: Tensor, x: Tensor) -> Tensor:
        return param.reshape((1, -1) + (1,) * (x.dim() - 2))

    def forward(self, x: Tensor) -> Tensor:
        return x * self._shape(self.weight, x) + self._shape(self.bias, x)

    @classmethod
    def from_batchnorm(cls, bn: nn.modules.batchnorm._BatchNorm) -> ChannelAffine:
        scale, shift = batchnorm_scale_shift(bn)
        return cls(scale, shift)


def batchnorm_scale_shift(bn: nn.modules.batchnorm._BatchNorm) -> tuple[Tensor, Tensor]:
    """Evaluation-mode BatchNorm as ``scale * x + shift`` per channel."""
    if bn.running_mean is None or bn.running_var is None:
        raise UnsupportedLayerError(
            f"{type(bn).__name__} without running statistics (track_running_stats=False) has no fixed "
            "affine form in evaluation mode; only BatchNorm layers with running statistics are supported."
        )
    scale = torch.rsqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight
    shift = -bn.running_mean * scale
    if bn.bias is not None:
        shift = shift + bn.bias
    return scale.detach(), shift.detach()


class AffineView:
    """An affine map with swappable parameters.

    Parameters
    ----------
    weight, bias
        The layer's parameters (``bias`` may be ``None``).
    forward
        ``forward(a, weight, bias) -> z``.
    transpose
        ``transpose(s, weight, a) -> c = weight^T s`` with the shape of ``a`` (the vector-Jacobian
        product of ``forward`` with respect to its input; no forward pass is recomputed).
    feature_axis
        The axis of ``a`` and ``z`` that holds the features (``-1`` for dense layers, ``1`` for
        convolutions and per-channel layers).
    stackable
        Whether two weights can be stacked along the input features (``cat(dim=1)`` of the weights) so
        that two transposed maps of the same ``s`` run as one (dense layers, ``groups=1`` convolutions).
    """

    def __init__(
        self,
        weight: Tensor,
        bias: Tensor | None,
        forward: Callable[[Tensor, Tensor, Tensor | None], Tensor],
        transpose: Callable[[Tensor, Tensor, Tensor], Tensor],
        feature_axis: int = 1,
        stackable: bool = False,
    ):
        self.weight = weight
        self.bias = bias
        self._forward = forward
        self._transpose = transpose
        self._feature_axis = feature_axis
        self._stackable = stackable

    def forward(self, a: Tensor, weight: Tensor | None = None, bias: Tensor | None = None) -> Tensor:
        return self._forward(a, self.weight if weight is None else weight, bias)

    def transpose(self, s: Tensor, a: Tensor, weight: Tensor | None = None) -> Tensor:
        return self._transpose(s, self.weight if weight is None else weight, a)

    def transpose_pair(self, s: Tensor, a: Tensor, w1: Tensor, w2: Tensor) -> tuple[Tensor, Tensor]:
        """``(w1^T s, w2^T s)``: one transposed map with the two weights stacked where the layer allows.

        A transposed convolution onto few input channels (an RGB image) is memory-bound: onto six
        channels it costs about what it costs onto three (ResNet-50's 7x7 stem: 25 ms each way).
        """
        axis = self._feature_axis
        if not self._stackable or a.dim() < 2:
            return self.transpose(s, a, w1), self.transpose(s, a, w2)
        shape = list(a.shape)
        width = shape[axis]
        shape[axis] = 2 * width
        layout = torch.channels_last if is_channels_last(a) else torch.contiguous_format
        pair = torch.empty(shape, dtype=a.dtype, device=a.device, memory_format=layout)  # its shape is what counts
        both = self._transpose(s, torch.cat([w1, w2], dim=1), pair)
        return both.narrow(axis, 0, width), both.narrow(axis, width, width)

    def without_bias(self, z: Tensor) -> Tensor:
        """``W a`` recovered from the layer's output ``z = W a + b`` (a new tensor), without a forward pass."""
        if self.bias is None:
            return z.clone()
        axis = self._feature_axis % z.dim()
        return z - self.bias.reshape((-1,) + (1,) * (z.dim() - 1 - axis))


def _linear_view(weight: Tensor, bias: Tensor | None) -> AffineView:
    return AffineView(
        weight,
        bias,
        forward=lambda a, w, b: F.linear(a, w, b),
        transpose=lambda s, w, a: s @ w,
        feature_axis=-1,
        stackable=True,
    )


def linear_view(weight: Tensor, bias: Tensor | None) -> AffineView:
    """The view of a dense layer ``z = a W^T + b`` (``W`` of shape ``(out, in)``)."""
    return _linear_view(weight, bias)


def _conv_padding(module: nn.modules.conv._ConvNd) -> tuple[int, ...]:
    if module.padding_mode != "zeros":
        raise UnsupportedLayerError(
            f"{type(module).__name__}(padding_mode={module.padding_mode!r}) is not supported; "
            "only padding_mode='zeros' convolutions are."
        )
    padding = module.padding
    if isinstance(padding, str):
        if padding == "valid":
            return (0,) * len(module.kernel_size)
        pads = []
        for k, d in zip(module.kernel_size, module.dilation):
            total = d * (k - 1)
            if total % 2:
                raise UnsupportedLayerError(
                    f"{type(module).__name__}(padding='same') with an even kernel pads asymmetrically; "
                    "give the padding as integers instead."
                )
            pads.append(total // 2)
        return tuple(pads)
    return tuple(padding)


def like_input(weight: Tensor, a: Tensor) -> Tensor:
    """A 2-D convolution's weight in the layout of its input (cached: PyTorch would copy it on every call)."""
    if is_channels_last(a) and weight.dim() == 4 and not weight.is_contiguous(memory_format=torch.channels_last):
        return derived(weight, "channels_last", lambda: weight.contiguous(memory_format=torch.channels_last))
    return weight


def _conv_view(module: nn.modules.conv._ConvNd, like: Tensor | None = None) -> AffineView:
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        raise UnsupportedLayerError(
            f"{type(module).__name__} is not supported; supported convolutions are nn.Conv1d and nn.Conv2d."
        )
    dims = len(module.kernel_size)
    conv = {1: F.conv1d, 2: F.conv2d}.get(dims)
    if conv is None:
        raise UnsupportedLayerError(
            f"{type(module).__name__} is not supported; supported convolutions are nn.Conv1d and nn.Conv2d."
        )
    stride, dilation, groups = tuple(module.stride), tuple(module.dilation), module.groups
    padding = _conv_padding(module)

    def forward(a: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
        return conv(a, like_input(w, a), b, stride, padding, dilation, groups)

    def transpose(s: Tensor, w: Tensor, a: Tensor) -> Tensor:
        # The input gradient of the convolution alone: one transposed convolution, no forward.
        return torch.ops.aten.convolution_backward(
            s, a, like_input(w, a), None, stride, padding, dilation, False, [0] * dims, groups, (True, False, False)
        )[0]

    weight = module.weight if like is None else like_input(module.weight, like)
    return AffineView(weight, module.bias, forward, transpose, stackable=groups == 1)


def _channel_view(module: ChannelAffine) -> AffineView:
    shape = ChannelAffine._shape
    return AffineView(
        module.weight,
        module.bias,
        forward=lambda a, w, b: a * shape(w, a) + (0 if b is None else shape(b, a)),
        transpose=lambda s, w, a: s * shape(w, s),
    )


AFFINE_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, ChannelAffine)


def is_affine(module: object) -> bool:
    """Whether ``module`` is one of the affine layers the LRP rules apply to."""
    return isinstance(module, AFFINE_TYPES)


def as_affine(module: nn.Module, like: Tensor | None = None) -> AffineView:
    """The :class:`AffineView` of an affine layer, or an error naming the supported ones.

    With ``like`` (the layer's input), a convolution's weight is given in that input's memory layout,
    so that parameters the rules derive from it are created in the layout the convolution uses.
    """
    if isinstance(module, nn.Linear):
        return _linear_view(module.weight, module.bias)
    if isinstance(module, (nn.Conv1d, nn.Conv2d)):
        return _conv_view(module, like)
    if isinstance(module, ChannelAffine):
        return _channel_view(module)
    raise UnsupportedLayerError(
        f"{type(module).__name__} is not an affine layer; affine rules apply to "
        "nn.Linear, nn.Conv1d, nn.Conv2d and neon.layers.ChannelAffine."
    )
