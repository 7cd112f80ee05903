"""Positivity (docs/theory.md §5): how much relevance mass is negative?"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..explanation import Explanation
from ._common import MetricResult, to_numpy


def positivity(expl: Any) -> MetricResult:
    """Share of the relevance mass that is negative, ``sum_i (R_i)- / sum_i |R_i|`` in absolute value.

    Rules that promise positive explanations (z+, gamma -> infinity; Montavon et al., Pattern
    Recognit. 2017) score 0; an all-zero explanation scores 0 by convention (0/0 := 0).

    **Direction**: lower is better (for rules meant to be positive; signed explanations carry
    evidence against the output on purpose).

    Parameters
    ----------
    expl
        A :class:`neon.Explanation` or an array of relevance ``(n, ...)``.
    """
    rel = to_numpy(expl.relevance if isinstance(expl, Explanation) else expl).astype(np.float64)
    if rel.ndim < 2:
        raise ValueError(f"positivity needs relevance of shape (n_samples, ...); got shape {rel.shape}.")
    if not np.isfinite(rel).all():
        raise ValueError("relevance contains NaN or infinity.")
    flat = rel.reshape(len(rel), -1)
    neg = -np.minimum(flat, 0).sum(1)
    mass = np.abs(flat).sum(1)
    share = np.divide(neg, mass, out=np.zeros_like(neg), where=mass > 0)
    return MetricResult(name="positivity", scores=share, higher_is_better=False,
                        details={"negative_mass": neg, "total_mass": mass})
