"""Explanations of text: tokens highlighted by their relevance (matplotlib, and HTML for notebooks)."""

from __future__ import annotations

import html
from typing import Any

import numpy as np

from ._common import get_cmap, to_numpy


def _rows(expl: Any, index: Any, tokens: Any) -> tuple[list[list[str]], np.ndarray]:
    r = to_numpy(expl.relevance if hasattr(expl, "relevance") else expl)
    if r is None or r.ndim != 2:
        raise ValueError("plot.text needs relevance of shape (n, length): one value per token (a text model's "
                         f"explanation); got shape {None if r is None else r.shape}.")
    words = tokens if tokens is not None else getattr(expl, "tokens", None)
    if words is None:
        data = to_numpy(getattr(expl, "data", None))
        words = [[str(int(t)) for t in row] for row in data] if data is not None and data.ndim == 2 else \
            [[str(i) for i in range(r.shape[1])] for _ in range(len(r))]
    elif words and isinstance(words[0], str):
        words = [list(words)] * len(r)
    if index is None:
        picked = list(range(len(r)))
    else:
        picked = [int(index)] if isinstance(index, (int, np.integer)) else [int(i) for i in index]
    return [list(map(str, words[i])) for i in picked], r[np.asarray(picked, dtype=int)]


def _limit(r: np.ndarray) -> float:
    top = float(np.abs(r).max()) if r.size else 0.0
    return top if top > 0 else 1.0


def text_html(expl: Any, index: Any = None, tokens: Any = None, cmap: str = "bwr") -> str:
    """The tokens of each sample as HTML, each on a background coloured by its relevance.

    Colours are on a symmetric range per sample (``[-max |R|, max |R|]``): red for positive, blue for
    negative relevance with the default ``"bwr"``. The relevance is in each token's ``title`` (hover).
    """
    colormap = get_cmap(cmap)
    words, r = _rows(expl, index, tokens)
    lines = []
    for row_words, row in zip(words, r):
        limit = _limit(row)
        spans = []
        for word, value in zip(row_words, row):
            red, green, blue, _ = colormap(0.5 + 0.5 * float(value) / limit)
            spans.append(f'<span title="{value:.4g}" style="background-color: rgb({int(255 * red)}, '
                         f'{int(255 * green)}, {int(255 * blue)}); padding: 1px 2px; margin: 1px; '
                         f'border-radius: 3px; color: black">{html.escape(word)}</span>')
        lines.append(f'<div style="line-height: 1.9; font-family: monospace">{" ".join(spans)}</div>')
    return "\n".join(lines)


def text(expl: Any, index: Any = None, tokens: Any = None, ax: Any = None, cmap: str = "bwr",
         fontsize: float = 11.0) -> Any:
    """Draw the tokens of each explained sample, highlighted by their relevance (one line per sample).

    Parameters
    ----------
    expl
        An :class:`neon.Explanation` of a text model (relevance ``(n, length)``), or the relevance itself.
    index
        Which samples: an int, a list, or ``None`` for all.
    tokens
        The tokens (one list of strings per sample, or one list for all); default ``expl.tokens``, else the
        token ids of ``expl.data``.
    ax, cmap, fontsize
        Axes to draw on (a new figure if ``None``), colormap (symmetric range per sample), text size.

    Returns
    -------
    matplotlib.axes.Axes
    """
    import matplotlib.pyplot as plt

    colormap = get_cmap(cmap)
    words, r = _rows(expl, index, tokens)
    if ax is None:
        longest = max((sum(len(w) + 1 for w in row) for row in words), default=10)
        _, ax = plt.subplots(figsize=(min(2 + 0.11 * longest, 16), 0.5 + 0.45 * len(words)))
    ax.set_axis_off()
    ax.set_xlim(0, 1)
    ax.set_ylim(0, len(words))
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    width = ax.get_window_extent(renderer).width
    for line, (row_words, row) in enumerate(zip(words, r)):
        limit = _limit(row)
        x = 0.0
        y = len(words) - line - 0.5
        for word, value in zip(row_words, row):
            t = ax.text(x, y, word, fontsize=fontsize, family="monospace", va="center", ha="left",
                        bbox={"facecolor": colormap(0.5 + 0.5 * float(value) / limit), "edgecolor": "none",
                              "boxstyle": "round,pad=0.2"})
            x += (t.get_window_extent(renderer).width + 0.6 * fontsize) / max(width, 1.0)
    return ax
