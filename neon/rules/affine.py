"""LRP rules for affine layers (Linear, Conv1d, Conv2d, ChannelAffine, the log-odds top).

Each rule is the generic rule of docs/theory.md §2,
``R_j = sum_k a_j rho(w_jk) / stab(sum_{0,j} a_j rho(w_jk)) R_k``, implemented in four steps:
forward with modified parameters, element-wise division, one transposed map (a vector-Jacobian
product that reuses no autograd graph), element-wise product. Bias handling follows zennit 0.5.1
exactly (docs/theory.md §2, "Biases").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, cast

import torch
from torch import Tensor, nn

from .._numeric import flat, safe_divide
from ..exceptions import RuleError
from ..layers.affine import AffineView, as_affine, is_affine
from ..layers.derived import derived, gamma_down, gamma_up, negative, positive
from ..layers.top import LogOdds
from .base import POSITIVE, Context, Rule


def _pos(t: Tensor | None) -> Tensor | None:
    return None if t is None else positive(t)


def _neg(t: Tensor | None) -> Tensor | None:
    return None if t is None else negative(t)


def _signed(a: Tensor, ctx: Context | None = None) -> bool:
    """Whether ``a`` has negative entries (inputs after a ReLU have none, and their a- terms vanish)."""
    if ctx is not None and ctx.inputs_nonnegative:
        return False
    return bool(a.numel()) and bool(flat(a).min() < 0)


def positive_part(t: Tensor, z: Tensor) -> Tensor:
    """``t`` where ``z > 0``, else 0 (a select, so NaN or inf outside the mask cannot leak in).

    ReLU's own backward kernel: one float pass, where a boolean mask and ``torch.where`` take
    about six times as long on large activations.
    """
    return torch.ops.aten.threshold_backward(t, z, 0.0)


def negative_part(t: Tensor, z: Tensor) -> Tensor:
    """``t`` where ``z < 0``, else 0 (hardtanh's backward kernel with the window ``(-inf, 0)``)."""
    return torch.ops.aten.hardtanh_backward(t, z, -math.inf, 0.0)


def _any_nonzero(t: Tensor) -> bool:
    """Whether ``t`` has a non-zero (or NaN) entry: one min/max reduction, no boolean tensor."""
    if not t.numel():
        return False
    low, high = torch.aminmax(flat(t))
    return not (bool(low == 0) and bool(high == 0))


def _add_to_bias(bias: Tensor | None, value: float, weight: Tensor) -> Tensor:
    """``bias + value`` per output unit (``value`` alone without a bias): a constant the forward adds for free."""
    if bias is None:
        return derived(weight, ("bias", value), lambda: torch.full((weight.shape[0],), value, dtype=weight.dtype,
                                                                   device=weight.device))
    return derived(bias, ("+", value), lambda: bias + value)


def _broadcast_param(value: Any, a: Tensor) -> Tensor:
    """A scalar, per-channel ``(C,)`` or per-feature ``a.shape[1:]`` value as a ``(1, *a.shape[1:])`` tensor."""
    v = torch.as_tensor(value, dtype=a.dtype, device=a.device)
    if v.dim() == 0:
        return v.expand((1,) + tuple(a.shape[1:]))
    if tuple(v.shape) == tuple(a.shape[1:]):
        return v.unsqueeze(0)
    if v.dim() == 1 and a.dim() >= 2 and v.shape[0] == a.shape[1]:
        return v.reshape((1, -1) + (1,) * (a.dim() - 2)).expand((1,) + tuple(a.shape[1:]))
    if tuple(v.shape) == tuple(a.shape) or (v.dim() == a.dim() and v.shape[0] == 1):
        return v.expand((1,) + tuple(a.shape[1:])) if v.shape[0] == 1 else v
    raise RuleError(
        f"cannot broadcast a parameter of shape {tuple(v.shape)} to layer inputs of shape "
        f"{tuple(a.shape[1:])}; give a scalar, one value per channel, or one per input feature."
    )


class AffineRule(Rule):
    """Base class of the rules for affine layers.

    Subclasses implement :meth:`affine` on an :class:`~neon.layers.AffineView`; the same code
    then serves dense, convolutional and per-channel layers, and the difference layer of the
    log-odds top (docs/theory.md §3), which is evaluated per explained class.
    """

    stabilizer: float = 1e-6

    def supports(self, op: Any) -> bool:
        return is_affine(op) or isinstance(op, LogOdds)

    def relevance(
        self, op: Callable[..., Tensor], inputs: Sequence[Tensor], output: Tensor, R: Tensor, ctx: Context
    ) -> tuple[Tensor | None, ...]:
        (a,) = inputs
        if isinstance(op, LogOdds):
            return (log_odds_relevance(self, op, a, R, ctx),)
        return (self.affine(as_affine(cast(nn.Module, op), like=a), a, output, R, ctx),)

    def affine(self, layer: AffineView, a: Tensor, z: Tensor, R: Tensor, ctx: Context | None = None) -> Tensor:
        """Relevance of the layer input ``a`` given the output ``z = layer(a)`` and its relevance ``R``."""
        raise NotImplementedError


def log_odds_relevance(rule: AffineRule, op: LogOdds, a: Tensor, R: Tensor, ctx: Context) -> Tensor:
    """Backward through the log-odds top (docs/theory.md §3).

    For the explained class ``c`` the log-odds ``eta_c`` is redistributed over the differences
    ``h_c' = z_c - z_c'`` with soft-min weights (stiffness 1), ``R_c' = softmin(h)_c' eta_c``,
    then ``rule`` propagates through the difference layer ``w_c - w_c'``. Samples are grouped by
    class: one batched step per distinct class, never per sample.
    """
    z = op.linear(a)
    target = ctx.target
    out = torch.zeros_like(a)
    n_classes = z.shape[-1]
    for c in torch.unique(target).tolist():
        idx = (target == c).nonzero().squeeze(1)
        keep = torch.arange(n_classes, device=z.device) != c
        zc = z[idx]
        h = zc[:, c : c + 1] - zc[:, keep]
        eta = R[idx, c : c + 1]
        R_h = torch.softmax(-h, dim=-1) * eta
        out[idx] = rule.affine(op.contrast(c), a[idx], h, R_h)
    return out


class Epsilon(AffineRule):
    """LRP-epsilon: ``R_j = sum_k a_j w_jk / stab(z_k) R_k`` (Bach et al., PLOS ONE 2015).

    ``Epsilon(0)`` is LRP-0 (zero denominators give zero relevance). The bias stays in the
    denominator, so what the bias and epsilon take is absorbed (reported by the explanation).

    Parameters
    ----------
    epsilon
        Stabiliser added with the sign of ``z`` (``sign(0) = +1``).
    relative
        If true, the stabiliser of each sample is ``epsilon * RMS(z)`` over that sample's layer
        output (the middle-layer rule of the LRP overview, Montavon et al. 2019).
    """

    name = "epsilon"
    zero_preserving = True

    def __init__(self, epsilon: float = 1e-6, relative: bool = False):
        if epsilon < 0:
            raise RuleError(f"Epsilon needs epsilon >= 0, got {epsilon}.")
        self.epsilon = float(epsilon)
        self.relative = bool(relative)

    def _params(self) -> dict[str, Any]:
        return {"epsilon": self.epsilon, **({"relative": True} if self.relative else {})}

    def affine(self, layer: AffineView, a: Tensor, z: Tensor, R: Tensor, ctx: Context | None = None) -> Tensor:
        eps: float | Tensor = self.epsilon
        if self.relative and self.epsilon > 0:
            dims = tuple(range(1, z.dim()))
            eps = self.epsilon * z.pow(2).mean(dim=dims, keepdim=True).sqrt()
        s = safe_divide(R, z, eps)
        return layer.transpose(s, a).mul_(a)


class Gamma(AffineRule):
    """LRP-gamma, generalized form (Montavon et al. 2019; Andeol et al. 2021; zennit 0.5.1 ``Gamma``).

    Outputs with ``z > 0`` use ``a+ (w + g w+) + a- (w + g w-)`` (bias ``b + g b+``), outputs with
    ``z < 0`` use ``a+ (w + g w-) + a- (w + g w+)`` (bias ``b + g b-``); ``z = 0`` receives nothing.
    For non-negative inputs this is ``R_j = sum_k a_j (w_jk + g w_jk+) / sum_j a_j (w_jk + g w_jk+) R_k``.
    """

    name = "gamma"
    zero_preserving = True

    def __init__(self, gamma: float = 0.25, stabilizer: float = 1e-6):
        if gamma < 0:
            raise RuleError(f"Gamma needs gamma >= 0, got {gamma}.")
        self.gamma = float(gamma)
        self.stabilizer = float(stabilizer)

    def _params(self) -> dict[str, Any]:
        return {"gamma": self.gamma}

    def affine(self, layer: AffineView, a: Tensor, z: Tensor, R: Tensor, ctx: Context | None = None) -> Tensor:
        g, eps = self.gamma, self.stabilizer
        w, b = layer.weight, layer.bias
        w_up = gamma_up(w, g)
        b_up = None if b is None else gamma_up(b, g)
        if _signed(a, ctx):
            return self._signed_inputs(layer, a, R, positive_part(R, z), negative_part(R, z), w_up, b_up)
        # Non-negative inputs (after a ReLU). Both output signs share one forward, ``D = W_up a + b_up + eps``:
        # where z > 0 it is the stabilised up-denominator; where z < 0 the down-denominator is
        # (1 + g) z - g (W+ a + b+) = -(D - (2 + g) z) (D > 0 there, so no sign test is needed).
        D = layer.forward(a, w_up, _add_to_bias(b_up, eps, w))
        support = None if ctx is None else ctx.relevance_support
        if support == POSITIVE and eps > 0:
            # Proven from the graph: R = 0 wherever z <= 0. There D may be anything, even 0; D >= eps
            # keeps 0 / D = 0 (where z > 0, D >= z + eps already).
            return layer.transpose(torch.div(R, D.clamp_(min=eps), out=D), a, w_up).mul_(a)
        if support == POSITIVE or (support is None and not _any_nonzero(negative_part(R, z))):
            # No relevance on z < 0 (proven, or checked on the data): one transposed map; z = 0 receives nothing.
            return layer.transpose(positive_part(torch.div(R, D, out=D), z), a, w_up).mul_(a)
        D.add_(z.clamp(max=0), alpha=-(2.0 + g))
        v = torch.div(R, D, out=D)
        w_dn = gamma_down(w, g)
        c = layer.transpose(positive_part(v, z), a, w_up)
        c.sub_(layer.transpose(negative_part(v, z), a, w_dn))
        return c.mul_(a)

    def _signed_inputs(self, layer: AffineView, a: Tensor, R: Tensor, R_up: Tensor, R_dn: Tensor,
                       w_up: Tensor, b_up: Tensor | None) -> Tensor:
        """The general case: ``a+`` and ``a-`` take the weights of opposite signs."""
        g = self.gamma
        w, b = layer.weight, layer.bias
        w_dn = gamma_down(w, g)
        a_pos, a_neg = a.clamp(min=0), a.clamp(max=0)

        def part(R_part: Tensor, w_main: Tensor, w_other: Tensor, bias: Tensor | None) -> Tensor:
            denom = layer.forward(a_pos, w_main, bias) + layer.forward(a_neg, w_other, None)
            s = safe_divide(R_part, denom, self.stabilizer)
            return layer.transpose(s, a, w_main).mul_(a_pos) + a_neg * layer.transpose(s, a, w_other)

        result = part(R_up, w_up, w_dn, b_up)
        if _any_nonzero(R_dn):
            b_dn = None if b is None else gamma_down(b, g)
            result = result + part(R_dn, w_dn, w_up, b_dn)
        return result


class ZPlus(AffineRule):
    """z+ rule: ``R_j = sum_k a_j w_jk+ / sum_j a_j w_jk+ R_k`` (Montavon et al., Pattern Recognit. 2017).

    Generalized to signed inputs as zennit 0.5.1: denominator ``a+ w+ + b+ + a- w-``.
    """

    name = "z+"
    zero_preserving = True

    def __init__(self, stabilizer: float = 1e-6):
        self.stabilizer = float(stabilizer)

    def affine(self, layer: AffineView, a: Tensor, z: Tensor, R: Tensor, ctx: Context | None = None) -> Tensor:
        w, b = layer.weight, layer.bias
        wp = positive(w)
        if not _signed(a, ctx):  # after a ReLU: the a- terms vanish, one forward and one transpose
            s = safe_divide(R, layer.forward(a, wp, _pos(b)), self.stabilizer)
            return a * layer.transpose(s, a, wp)
        wn = negative(w)
        ap, an = a.clamp(min=0), a.clamp(max=0)
        denom = layer.forward(ap, wp, _pos(b)) + layer.forward(an, wn, None)
        s = safe_divide(R, denom, self.stabilizer)
        return ap * layer.transpose(s, a, wp) + an * layer.transpose(s, a, wn)


class AlphaBeta(AffineRule):
    """alpha-beta rule (Bach et al., PLOS ONE 2015).

    ``R_j = sum_k (alpha (a_j w_jk)+ / sum (a w)+ - beta (a_j w_jk)- / sum (a w)-) R_k`` with
    ``alpha - beta = 1``, both non-negative. Positive part ``a+ w+ + b+ + a- w-``, negative part
    ``a+ w- + b- + a- w+`` (zennit 0.5.1).
    """

    name = "alpha-beta"
    zero_preserving = True

    def __init__(self, alpha: float = 2.0, beta: float = 1.0, stabilizer: float = 1e-6):
        if alpha < 0 or beta < 0:
            raise RuleError(f"AlphaBeta needs alpha >= 0 and beta >= 0, got alpha={alpha}, beta={beta}.")
        if abs((alpha - beta) - 1.0) > 1e-12:
            raise RuleError(f"AlphaBeta needs alpha - beta = 1 (conservation), got alpha={alpha}, beta={beta}.")
        self.alpha, self.beta = float(alpha), float(beta)
        self.stabilizer = float(stabilizer)

    def _params(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "beta": self.beta}

    def affine(self, layer: AffineView, a: Tensor, z: Tensor, R: Tensor, ctx: Context | None = None) -> Tensor:
        w, b = layer.weight, layer.bias
        wp, wn = positive(w), negative(w)
        if not _signed(a, ctx):  # after a ReLU: the a- terms vanish
            sp = safe_divide(R, layer.forward(a, wp, _pos(b)), self.stabilizer)
            result = self.alpha * (a * layer.transpose(sp, a, wp))
            if self.beta:
                sn = safe_divide(R, layer.forward(a, wn, _neg(b)), self.stabilizer)
                result = result - self.beta * (a * layer.transpose(sn, a, wn))
            return result
        ap, an = a.clamp(min=0), a.clamp(max=0)
        zp = layer.forward(ap, wp, _pos(b)) + layer.forward(an, wn, None)
        sp = safe_divide(R, zp, self.stabilizer)
        result = self.alpha * (ap * layer.transpose(sp, a, wp) + an * layer.transpose(sp, a, wn))
        if self.beta:
            zn = layer.forward(ap, wn, _neg(b)) + layer.forward(an, wp, None)
            sn = safe_divide(R, zn, self.stabilizer)
            result = result - self.beta * (ap * layer.transpose(sn, a, wn) + an * layer.transpose(sn, a, wp))
        return result


class ZBox(AffineRule):
    """z^B rule for bounded inputs ``low <= x <= high`` (Montavon et al., Pattern Recognit. 2017).

    ``z_ij = x_i w_ij - l_i w_ij+ - h_i w_ij-``, ``R_i = sum_j z_ij / sum_i z_ij R_j``; bias terms
    cancel. ``low``/``high`` are scalars, one value per channel, one per input feature, or
    ``"auto"``: the per-channel minimum/maximum of the fit data.
    """

    name = "z^B"

    def __init__(self, low: Any = "auto", high: Any = "auto", stabilizer: float = 1e-6):
        self.low, self.high = low, high
        self.stabilizer = float(stabilizer)

    def _params(self) -> dict[str, Any]:
        return {"low": self.low, "high": self.high}

    @property
    def needs_fit(self) -> bool:
        return isinstance(self.low, str) or isinstance(self.high, str)

    def fit(self, op: Any, inputs: Sequence[Tensor], output: Tensor, ctx: Context) -> Rule:
        (a,) = inputs
        dims = [d for d in range(a.dim()) if d != 1] if a.dim() > 1 else [0]
        low = a.amin(dim=dims) if self.low == "auto" else self.low
        high = a.amax(dim=dims) if self.high == "auto" else self.high
        return self._replace(low=low, high=high)

    def affine(self, layer: AffineView, a: Tensor, z: Tensor, R: Tensor, ctx: Context | None = None) -> Tensor:
        if self.needs_fit:
            raise RuleError("ZBox(low='auto', high='auto') must be fitted on data first (Explainer.fit).")
        w = layer.weight
        wp, wn = positive(w), negative(w)
        low, high = _broadcast_param(self.low, a), _broadcast_param(self.high, a)
        # W a is the layer's own output less its bias; the bounds are the same for every sample, so
        # their forwards run at batch size 1 and broadcast.
        denom = layer.without_bias(z)
        denom -= layer.forward(low, wp, None) + layer.forward(high, wn, None)
        s = safe_divide(R, denom, self.stabilizer)
        # a W - l W+ - h W- = (a - l) W+ + (a - h) W-: two transposed maps, run as one where possible.
        c_pos, c_neg = layer.transpose_pair(s, a, wp, wn)
        return (a - low).mul_(c_pos).addcmul_(a - high, c_neg)


class WSquare(AffineRule):
    """w^2 rule: ``R_i = sum_j w_ij^2 / sum_i w_ij^2 R_j`` (Montavon et al., Pattern Recognit. 2017).

    The squared bias stays in the denominator (zennit 0.5.1).
    """

    name = "w^2"

    def __init__(self, stabilizer: float = 1e-6):
        self.stabilizer = float(stabilizer)

    def affine(self, layer: AffineView, a: Tensor, z: Tensor, R: Tensor, ctx: Context | None = None) -> Tensor:
        w2 = derived(layer.weight, "^2", lambda: layer.weight.pow(2))
        b2 = None if layer.bias is None else derived(layer.bias, "^2", lambda: cast(Tensor, layer.bias).pow(2))
        ones = torch.ones((1,) + tuple(a.shape[1:]), dtype=a.dtype, device=a.device)
        s = safe_divide(R, layer.forward(ones, w2, b2), self.stabilizer)
        return layer.transpose(s, a, w2)


class Flat(AffineRule):
    """Flat rule: ``R_i = sum_j 1 / |receptive field of j| R_j`` (Lapuschkin et al., Nat. Commun. 2019)."""

    name = "flat"

    def __init__(self, stabilizer: float = 1e-6):
        self.stabilizer = float(stabilizer)

    def affine(self, layer: AffineView, a: Tensor, z: Tensor, R: Tensor, ctx: Context | None = None) -> Tensor:
        w1 = torch.ones_like(layer.weight)
        ones = torch.ones((1,) + tuple(a.shape[1:]), dtype=a.dtype, device=a.device)
        s = safe_divide(R, layer.forward(ones, w1, None), self.stabilizer)
        return layer.transpose(s, a, w1)


class Reference(AffineRule):
    """Deep-Taylor root-point rule with a fixed reference ``x~`` (Montavon et al. 2017).

    ``R_i = sum_j (x_i - x~_i) w_ij / sum_i (x_i - x~_i) w_ij R_j``. For a single affine layer
    the relevance sums exactly to ``f(x) - f(x~)`` (with ``stabilizer=0``), which equals SHAP's
    linear values when ``x~`` is the background mean.

    Parameters
    ----------
    reference
        A scalar, an array of the input's per-sample shape, one value per channel, or ``"mean"``
        (the mean of the fit data, set by :meth:`fit`).
    stabilizer
        ``0`` divides exactly (``0 / 0 := 0``).
    """

    name = "reference"

    def __init__(self, reference: Any = "mean", stabilizer: float = 1e-6):
        self.reference = reference
        self.stabilizer = float(stabilizer)

    def _params(self) -> dict[str, Any]:
        return {"reference": self.reference}

    @property
    def needs_fit(self) -> bool:
        return isinstance(self.reference, str)

    def fit(self, op: Any, inputs: Sequence[Tensor], output: Tensor, ctx: Context) -> Rule:
        if self.reference != "mean":
            raise RuleError(f"Reference(reference={self.reference!r}): use 'mean', a number or an array.")
        return self._replace(reference=inputs[0].mean(dim=0))

    def affine(self, layer: AffineView, a: Tensor, z: Tensor, R: Tensor, ctx: Context | None = None) -> Tensor:
        if self.needs_fit:
            raise RuleError("Reference('mean') must be fitted on data first (Explainer.fit).")
        d = a - _broadcast_param(self.reference, a)
        s = safe_divide(R, layer.forward(d, None, None), self.stabilizer)
        return d * layer.transpose(s, a)
