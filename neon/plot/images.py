"""Relevance of images: heatmaps, batches of heatmaps, and the rule comparison of the LRP overview."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import Colormap

from ._common import (
    describe,
    get_cmap,
    new_figure,
    relevance_label,
    select,
    symmetric_limit,
    symmetric_limits,
    to_numpy,
    unpack,
)


def relevance_maps(relevance: Any, channel_axis: int | None = None, shape: Sequence[int] | None = None) -> np.ndarray:
    """``(n, H, W)`` maps from a batch of image relevance: the channels are summed.

    Parameters
    ----------
    relevance
        ``(n, C, H, W)`` (channels first, as PyTorch), ``(n, H, W, C)`` with ``channel_axis=-1``,
        ``(n, H, W)``, or ``(n, d)`` with ``shape=(H, W)`` (e.g. sklearn's 8x8 digits).
    channel_axis
        Axis of the channels in the batch; default 1 for 4-D input.
    shape
        Reshape every sample to this shape first.
    """
    r = np.asarray(to_numpy(relevance), dtype=np.float64)
    if shape is not None:
        r = r.reshape((len(r),) + tuple(shape))
    if r.ndim == 4:
        return r.sum(axis=1 if channel_axis is None else channel_axis)
    if r.ndim == 3 and channel_axis is None:
        return r
    if r.ndim == 3:
        return r.sum(axis=channel_axis)
    raise ValueError(
        f"heatmap needs image relevance of shape (n, C, H, W), (n, H, W), or (n, d) with shape=(H, W); got "
        f"{r.shape}. Use neon.plot.features for tabular data."
    )


def _display_image(x: np.ndarray, channel_axis: int | None) -> tuple[np.ndarray, str | None]:
    """One input sample as an image matplotlib can show, scaled to [0, 1]."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 3:
        x = np.moveaxis(x, 0 if channel_axis in (None, 1) else -1, -1)
        if x.shape[-1] == 1:
            x = x[..., 0]
        elif x.shape[-1] != 3:
            x = x.mean(-1)
    lo, hi = float(x.min()), float(x.max())
    x = (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
    return x, ("gray" if x.ndim == 2 else None)


def _axes_grid(n: int, ax: Any, ncols: int, size: float) -> list[Axes]:
    if ax is None:
        ncols = max(1, min(ncols, n))
        nrows = -(-n // ncols)
        fig, axes = new_figure(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
        flat = list(axes.ravel())
        for a in flat[n:]:
            a.set_visible(False)
        return flat[:n]
    flat = [ax] if isinstance(ax, Axes) else list(np.ravel(ax))
    if len(flat) < n:
        raise ValueError(f"{n} heatmaps need {n} Axes; got {len(flat)}.")
    return flat[:n]


def _title(meta: dict[str, Any], i: int) -> str | None:
    return None if meta["output"] is None else describe(meta, i, compact=True)


def heatmap(expl: Any, index: Any = None, *, cmap: str | Colormap = "bwr", percentile: float = 99.5,
            shared_range: bool = False, overlay: bool = False, image: Any = None, alpha: float = 0.6,
            channel_axis: int | None = None, shape: Sequence[int] | None = None, titles: bool = True,
            colorbar: bool = True, ncols: int = 4, size: float = 2.5, ax: Any = None) -> Any:
    """Relevance of images as heatmaps, centred at zero with a symmetric colour range.

    The channels of each sample are summed into one map ``h = sum_c R_c``. The colour range is
    ``[-v, v]`` with ``v`` the ``percentile`` of ``|h|`` (per image, or over the batch with
    ``shared_range=True``), so that red is positive and blue negative evidence and zero is always
    the centre of the colormap (Montavon et al., "Layer-wise relevance propagation: an overview", 2019).

    Parameters
    ----------
    expl
        A :class:`neon.Explanation` or a relevance array (see :func:`relevance_maps` for shapes).
    index
        The samples to show (an int, a slice or a list); default all.
    cmap
        ``"bwr"`` (default), ``"seismic"``, ``"coldhot"`` (black-centred, registered as
        ``"neon_coldhot"``) or any matplotlib colormap.
    percentile
        Percentile of ``|h|`` that saturates the colormap.
    shared_range
        One colour range for the whole batch instead of one per image.
    overlay
        Draw the heatmap with transparency ``alpha`` over the input image (``expl.data`` or ``image``).
    image
        The input images to overlay, in the layout of the relevance; default ``expl.data``.
    channel_axis, shape
        Layout of the relevance, see :func:`relevance_maps`.
    titles
        Title every heatmap with the explained class and its score (and ``absorbed`` when it is more than 1%
        of the score).
    colorbar
        Add a colour bar beside each heatmap, labelled with the relevance's units (``"relevance (logit)"``).
    ncols, size
        Grid layout (columns, inches per panel) when ``ax`` is ``None``.
    ax
        An Axes (one sample) or a sequence of Axes (one per sample); default a new figure.

    Returns
    -------
    matplotlib.axes.Axes or numpy.ndarray of Axes
        The Axes for one sample, else an array with one Axes per sample.

    Examples
    --------
    >>> expl = neon.explain(cnn, images[:8], rules="epsilon_gamma_box")   # doctest: +SKIP
    >>> axes = neon.plot.heatmap(expl, cmap="coldhot", overlay=True, ncols=4)   # doctest: +SKIP
    """
    r, meta = unpack(expl)
    if index is not None:
        sel = np.atleast_1d(np.arange(len(r))[index])
        r = r[sel]
        meta = select(meta, sel)
    maps = relevance_maps(r, channel_axis, shape)
    n = len(maps)
    colormap = get_cmap(cmap)
    limits = np.full(n, symmetric_limit(maps, percentile)) if shared_range else symmetric_limits(maps, percentile)
    images = None
    if overlay:
        images = to_numpy(image) if image is not None else meta["data"]
        if images is None:
            raise ValueError("overlay=True needs the input images: an Explanation with data, or image=.")
        if index is not None and image is not None:
            images = np.asarray(images)[sel]
        if shape is not None:
            images = np.asarray(images).reshape((len(images),) + tuple(shape))
    axes = _axes_grid(n, ax, ncols, size)
    units = relevance_label(meta["output_kind"])
    for i, a in enumerate(axes):
        if images is not None:
            img, img_cmap = _display_image(images[i], channel_axis)
            a.imshow(img, cmap=img_cmap, interpolation="nearest")
        im = a.imshow(maps[i], cmap=colormap, vmin=-limits[i], vmax=limits[i], interpolation="nearest",
                      alpha=alpha if images is not None else None)
        a.set_xticks([])
        a.set_yticks([])
        if titles:
            t = _title(meta, i)
            if t:
                a.set_title(t, fontsize=9)
        if colorbar:
            # one bar per panel, also with shared_range: a bar beside several panels breaks tight_layout
            a.figure.colorbar(im, ax=a, fraction=0.046, pad=0.04).set_label(units, fontsize=8)
    return axes[0] if n == 1 and (ax is None or isinstance(ax, Axes)) else np.array(axes, dtype=object)


def default_comparison_rules() -> dict[str, Any]:
    """The four panels of the LRP overview's figure: LRP-0, LRP-epsilon, LRP-gamma, and the composite.

    LRP-epsilon uses ``epsilon = 0.25 * RMS`` of each layer's output and LRP-gamma ``gamma = 0.25``
    on every layer; the composite is :class:`neon.composites.Overview` (z^B input layer, gamma on
    the lower, epsilon on the middle and LRP-0 on the top layers).
    """
    from ..rules import Epsilon, Gamma

    return {"LRP-0": "lrp0", "LRP-ε": Epsilon(0.25, relative=True), "LRP-γ": Gamma(0.25), "composite": "overview"}


def rules_comparison(model: Any, x: Any, rules: Mapping[str, Any] | None = None, *, target: Any = None,
                     X_fit: Any = None, output: str | None = None, show_input: bool = True,
                     cmap: str | Colormap = "bwr", percentile: float = 99.5, channel_axis: int | None = None,
                     shape: Sequence[int] | None = None, colorbar: bool = True, size: float = 2.5,
                     ax: Any = None) -> np.ndarray:
    """One input explained with several rule sets side by side (the figure of the LRP overview).

    The default panels are LRP-0, LRP-epsilon, LRP-gamma and the overview composite
    (:func:`default_comparison_rules`). Uniform LRP-0 is gradient x input and noisy; epsilon
    keeps only the salient evidence; gamma favours positive contributions and is more stable;
    the composite combines them layer by layer (Montavon et al. 2019, section 10.3).

    Parameters
    ----------
    model
        Anything :func:`neon.explain` accepts (a CNN, a :class:`neon.Network`, ...).
    x
        One input with its batch axis, shape ``(1, ...)``.
    rules
        ``{panel title: rules}``; each value is anything ``rules=`` of :func:`neon.explain` accepts.
    target
        The explained class; default the predicted one.
    X_fit
        Data for data-dependent rules (the z^B bounds of the composite); default ``x``.
    output
        ``"logit"`` or ``"log-odds"``; default the model's.
    show_input
        Draw the input image in the first panel.
    cmap, percentile, channel_axis, shape, colorbar
        As in :func:`heatmap`.
    ax
        A sequence of Axes, one per panel (the input first when ``show_input``).

    Returns
    -------
    numpy.ndarray of Axes
        One Axes per panel.

    Examples
    --------
    >>> axes = neon.plot.rules_comparison(cnn, x[:1], X_fit=X_train)   # doctest: +SKIP
    >>> axes = neon.plot.rules_comparison(cnn, x[:1], rules={"eps": "epsilon", "box": "epsilon_gamma_box"},
    ...                                   X_fit=X_train)   # doctest: +SKIP
    """
    from ..explainer import Explainer

    if len(cast(np.ndarray, to_numpy(x))) != 1:  # x is an input, never None
        raise ValueError("rules_comparison explains one input of shape (1, ...); "
                         f"got {len(cast(np.ndarray, to_numpy(x)))} samples.")
    rules = default_comparison_rules() if rules is None else dict(rules)
    n = len(rules) + int(show_input)
    axes: np.ndarray | list[Axes]
    if ax is None:
        _, grid = new_figure(1, n, figsize=(size * n, size * 1.1), squeeze=False)
        axes = list(grid.ravel())
    else:
        axes = list(np.ravel(ax))
        if len(axes) < n:
            raise ValueError(f"rules_comparison draws {n} panels; got {len(axes)} Axes.")
    if show_input:
        img = np.asarray(to_numpy(x), dtype=np.float64)[0]
        if shape is not None:
            img = img.reshape(shape)
        shown, img_cmap = _display_image(img, channel_axis)
        axes[0].imshow(shown, cmap=img_cmap, interpolation="nearest")
        axes[0].set_title("input", fontsize=9)
        axes[0].set_xticks([])
        axes[0].set_yticks([])
    fit = x if X_fit is None else X_fit
    for a, (title, r) in zip(axes[int(show_input):], rules.items()):
        expl = Explainer(model, rules=r, output=output).fit(fit).explain(x, target=target)
        heatmap(expl, cmap=cmap, percentile=percentile, channel_axis=channel_axis, shape=shape, titles=False,
                colorbar=colorbar, ax=a)
        a.set_title(f"{title}\n{describe(unpack(expl)[1], 0, compact=True)}", fontsize=9)
    return np.array(axes[:n], dtype=object)
