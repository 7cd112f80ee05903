"""Conservation (docs/theory.md §5): does the relevance add up to the explained output?"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..explanation import Explanation
from ._common import MetricResult, to_numpy


def conservation(expl: Explanation) -> MetricResult:
    """Relative conservation gap per sample, ``|f(x) - sum_i R_i| / |f(x)|`` (Bach et al. 2015).

    Zero for exactly conservative explanations (LRP-0 on bias-free ReLU nets, the NEON rules,
    integrated gradients in the limit); what biases, stabilisers and reference points absorb shows
    up here. ``details["bookkeeping_error"]`` is ``|f(x) - sum R - absorbed| / |f(x)|``, which
    must be zero up to rounding for a neon explanation.

    **Direction**: lower is better (0 = exactly conservative).

    Parameters
    ----------
    expl
        A :class:`neon.Explanation` (from :func:`neon.explain` or :mod:`neon.baselines`). A plain
        array is refused: conservation needs the explained output.
    """
    if not isinstance(expl, Explanation):
        raise ValueError(f"conservation needs a neon.Explanation (relevance with its explained output); got "
                         f"{type(expl).__name__}.")
    rel = to_numpy(expl.relevance).astype(np.float64)
    if expl.output is None:
        raise ValueError("this explanation has no explained output; conservation cannot be measured.")
    out = to_numpy(expl.output).astype(np.float64)
    total = rel.reshape(len(rel), -1).sum(1)
    scale = np.maximum(np.abs(out), np.finfo(np.float64).tiny)
    gap = np.abs(out - total) / scale
    details: dict[str, Any] = {"output": out, "relevance_sum": total}
    if expl.absorbed is not None:
        details["bookkeeping_error"] = np.abs(out - total - to_numpy(expl.absorbed).astype(np.float64)) / scale
    return MetricResult(name="conservation", scores=gap, higher_is_better=False, details=details)
