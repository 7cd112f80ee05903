"""What "removing" a feature means: the replacement values of the perturbation metrics.

The replacement decides the ranking of explanation methods (docs/theory.md §5), so every
flipping score carries the description returned by :func:`replacement`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ._common import to_tensor

REPLACEMENTS = ("zero", "mean", "min", "blur", "noise")


def replacement(x: Tensor, replace: Any, background: Any = None, random_state: int | None = 0,
                blur_sigma: float = 1.0) -> tuple[Tensor, str]:
    """The value every feature of ``x`` takes once it is removed, ``(n, ...)``, and its description.

    Parameters
    ----------
    x
        The inputs ``(n, ...)``.
    replace
        ``"zero"``; ``"mean"`` (per-feature mean of ``background``); ``"min"`` (each sample's own
        minimum, Quantus' ``"black"``); ``"blur"`` (a Gaussian blur of the sample, images
        ``(n, C, H, W)`` or ``(n, H, W)`` only); ``"noise"`` (a draw from ``N(mean_i, std_i)`` of
        ``background`` per feature, seeded by ``random_state``); a number; or an array of the
        per-sample shape or of the shape of ``x``.
    background
        Reference data for ``"mean"`` and ``"noise"``; default ``x`` itself.
    """
    if isinstance(replace, str):
        if replace not in REPLACEMENTS:
            raise ValueError(f"replace={replace!r}; use one of {REPLACEMENTS}, a number or an array.")
        if replace == "zero":
            return torch.zeros_like(x), "zero"
        if replace == "min":
            m = x.reshape(len(x), -1).amin(1) if x.numel() else x.new_zeros(len(x))
            return m.reshape((-1,) + (1,) * (x.dim() - 1)).expand_as(x).clone(), "min (per-sample minimum)"
        if replace == "blur":
            return _blur(x, blur_sigma), f"blur (Gaussian, sigma={blur_sigma:g})"
        bg = x if background is None else to_tensor(background, "background").to(x)
        if tuple(bg.shape[1:]) != tuple(x.shape[1:]):
            raise ValueError(f"background has per-sample shape {tuple(bg.shape[1:])}, X has {tuple(x.shape[1:])}.")
        where = "X" if background is None else "background"
        if replace == "mean":
            return bg.mean(0, keepdim=True).expand_as(x).clone(), f"mean (per-feature mean of {where})"
        gen = torch.Generator().manual_seed(int(random_state or 0))
        noise = torch.randn(x.shape, generator=gen, dtype=x.dtype).to(x.device)
        std = bg.std(0, keepdim=True) if len(bg) > 1 else torch.zeros_like(bg[:1])
        return bg.mean(0, keepdim=True) + std * noise, f"noise (N(mean, std) of {where}, seed={random_state})"
    if isinstance(replace, (int, float, np.integer, np.floating)) and not isinstance(replace, bool):
        return torch.full_like(x, float(replace)), f"constant {float(replace):g}"
    v = to_tensor(np.asarray(replace)[None] if not isinstance(replace, Tensor) else replace[None], "replace")[0]
    v = v.to(x)
    if tuple(v.shape) == tuple(x.shape[1:]):
        return v.unsqueeze(0).expand_as(x).clone(), "array (per-sample shape)"
    if tuple(v.shape) == tuple(x.shape):
        return v.clone(), "array (per sample)"
    raise ValueError(f"replace array has shape {tuple(v.shape)}; use the per-sample shape {tuple(x.shape[1:])} or "
                     f"the shape of X {tuple(x.shape)}.")


def _blur(x: Tensor, sigma: float) -> Tensor:
    if x.dim() not in (3, 4):
        raise ValueError(f"replace='blur' needs images (n, C, H, W) or (n, H, W); got inputs of shape "
                         f"{tuple(x.shape)}. Use 'zero', 'mean', 'min', 'noise' or a value for tabular data.")
    if sigma <= 0:
        return x.clone()
    img = x if x.dim() == 4 else x.unsqueeze(1)
    radius = max(1, int(np.ceil(3 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = img.shape[1]
    # Reflect padding needs the pad smaller than the image; replicate works for any size.
    out = F.pad(img, (radius, radius, 0, 0), mode="replicate")
    out = F.conv2d(out, k.view(1, 1, 1, -1).expand(c, 1, 1, -1).contiguous(), groups=c)
    out = F.pad(out, (0, 0, radius, radius), mode="replicate")
    out = F.conv2d(out, k.view(1, 1, -1, 1).expand(c, 1, -1, 1).contiguous(), groups=c)
    return out if x.dim() == 4 else out.squeeze(1)
