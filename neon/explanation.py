"""The result of an explanation: relevance with everything needed to read it."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np


def _np(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    return np.asarray(x)


@dataclass(repr=False)
class Explanation:
    """Relevance of every input feature for one explained output per sample.

    Attributes
    ----------
    relevance
        Same shape as the input; numpy in -> numpy out, torch in -> torch out.
    output
        ``(n,)`` the explained value per sample: ``f(x)`` for the target (minus ``baseline``
        when a reference point is used).
    target
        ``(n,)`` the explained class / cluster / output index.
    absorbed
        ``(n,)`` ``output - relevance.sum()`` over the feature axes: what biases, stabilisers and
        reference points took (docs/theory.md §1). Zero for exactly conservative rules.
    data
        The explained inputs, as given.
    baseline
        ``(n,)`` the model's value at the reference point, or zeros without one.
    feature_names, target_names
        Names, where known.
    output_kind
        What ``output`` is: ``"log-odds"``, ``"logit"``, ``"value"``, ``"cluster logit"``, ...
    rules
        A readable description of the rules used.
    layers
        Relevance at every node (only with ``record=True``), keyed by node name.
    tokens
        For text models: the tokens of every sample (a list of strings per sample, as the relevance's
        ``(n, length)`` rows), set with :meth:`with_tokens`; drawn by :func:`neon.plot.text`.
    """

    relevance: Any
    output: Any
    target: Any
    absorbed: Any
    data: Any = None
    baseline: Any = None
    feature_names: list[str] | None = None
    target_names: list[Any] | None = None
    output_kind: str = ""
    rules: str = ""
    layers: dict[str, Any] | None = field(default=None)
    tokens: list[list[str]] | None = None

    def __len__(self) -> int:
        return len(self.output)

    def __getitem__(self, index: Any) -> Explanation:
        """The explanation of a subset of samples (an int keeps the batch axis)."""
        if isinstance(index, (int, np.integer)):
            index = slice(int(index), int(index) + 1 if int(index) != -1 else None)

        def pick(x: Any) -> Any:
            if x is None:
                return None
            return x.iloc[index] if hasattr(x, "iloc") else x[index]  # DataFrame data: rows, not columns

        return Explanation(
            relevance=pick(self.relevance), output=pick(self.output), target=pick(self.target),
            absorbed=pick(self.absorbed), data=pick(self.data), baseline=pick(self.baseline),
            feature_names=self.feature_names, target_names=self.target_names, output_kind=self.output_kind,
            rules=self.rules, tokens=pick(self.tokens),
        )

    def with_tokens(self, tokens: Any) -> Explanation:
        """This explanation with the tokens of every sample (e.g. ``tokenizer.convert_ids_to_tokens`` per row).

        ``tokens`` is one list of strings per sample, each as long as the sample's relevance row (a single
        list is taken for a single sample).
        """
        rows = [list(t) for t in tokens] if tokens and not isinstance(tokens[0], str) else [list(tokens)]
        r = _np(self.relevance)
        if len(rows) != len(r) or any(len(t) != r.shape[1] for t in rows) or r.ndim != 2:
            raise ValueError(f"tokens must give one string per position of every sample: relevance has shape "
                             f"{tuple(r.shape)}, tokens have lengths {[len(t) for t in rows]}.")
        new = copy.copy(self)
        new.tokens = [[str(w) for w in t] for t in rows]
        return new

    @property
    def target_labels(self) -> list[Any]:
        """The explained target of every sample by name (class label, cluster), where known."""
        t = _np(self.target).astype(int)
        if self.target_names is None:
            return t.tolist()
        return [self.target_names[i] for i in t]

    def relevance_sum(self) -> np.ndarray:
        """``(n,)`` total relevance per sample."""
        r = _np(self.relevance)
        return r.reshape(len(r), -1).sum(1)

    def conservation_error(self) -> np.ndarray:
        """``(n,)`` ``|output - sum R - absorbed| / |output|``: zero up to rounding by construction.

        The absorbed share itself (``absorbed / output``) tells how conservative the rules were.
        """
        out = _np(self.output).astype(np.float64)
        err = np.abs(out - self.relevance_sum() - _np(self.absorbed))
        return err / np.maximum(np.abs(out), np.finfo(np.float64).tiny)

    def plot(self, **kwargs: Any) -> Any:
        """Heatmaps for images, signed bars for tabular data, highlighted tokens for text (see :mod:`neon.plot`)."""
        from . import plot

        if self.tokens is not None:
            return plot.text(self, **kwargs)
        return plot.explanation(self, **kwargs)

    def _repr_html_(self) -> str | None:
        """In a notebook, an explanation of text shows its tokens highlighted by relevance."""
        if self.tokens is None:
            return None
        from .plot.tokens import text_html

        return text_html(self)

    def __repr__(self) -> str:
        r = _np(self.relevance)
        return (
            f"Explanation(n={len(self)}, relevance shape={tuple(r.shape)}, output_kind={self.output_kind!r}, "
            f"rules={self.rules!r}, mean |absorbed|={float(np.abs(_np(self.absorbed)).mean()) if len(self) else 0:.3g})"
        )
