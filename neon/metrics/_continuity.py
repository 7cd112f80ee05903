"""Continuity (docs/theory.md §5): do nearby inputs get nearby explanations?"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..explanation import Explanation
from ._common import MetricResult, to_numpy, to_tensor


def continuity(explainer: Any, X: Any, noise: float = 0.01, n_perturbations: int = 4,
               random_state: int | None = 0, target: Any = None) -> MetricResult:
    """Relevance change per input change, ``||R(x) - R(x')||_2 / ||x - x'||_2`` (Montavon et al. 2018).

    ``x' = x + noise * std(X) * eps``, ``eps ~ N(0, I)`` (``std`` the overall standard deviation of
    ``X``), ``n_perturbations`` draws per sample, all explained in one batch; the explained target
    stays that of ``x`` so both explanations are of the same output. Score per sample: the mean
    ratio over the draws (``details["max"]``: the worst draw, a local Lipschitz estimate as in
    Alvarez-Melis & Jaakkola 2018; ``details["output_change"]``: mean ``|f(x') - f(x)|``).

    **Direction**: lower is better.

    Parameters
    ----------
    explainer
        A fitted :class:`neon.Explainer` or any callable ``explainer(X, target=...) -> Explanation``.
    X
        Inputs ``(n, ...)``; not modified.
    noise
        Perturbation size relative to ``std(X)``; must be > 0.
    """
    if isinstance(explainer, Explanation) or not callable(explainer):
        raise ValueError("continuity needs an explainer (a neon.Explainer or a callable X -> Explanation) to "
                         "explain perturbed inputs; a fixed explanation or array cannot support it.")
    if noise <= 0 or n_perturbations < 1:
        raise ValueError(f"continuity needs noise > 0 and n_perturbations >= 1; got {noise}, {n_perturbations}.")
    x = to_tensor(X, "X")
    n = len(x)
    xf = x.to(torch.float64) if not x.is_floating_point() else x
    scale = float(xf.std()) if xf.numel() > 1 else 1.0
    scale = scale if scale > 0 else 1.0
    gen = torch.Generator().manual_seed(int(random_state or 0))
    eps = torch.randn((n_perturbations,) + tuple(x.shape), generator=gen, dtype=xf.dtype).to(xf.device)
    xp = (xf.unsqueeze(0) + noise * scale * eps).reshape((-1,) + tuple(x.shape[1:]))
    base = explainer(X) if target is None else explainer(X, target=target)
    tgt = to_numpy(base.target)
    as_torch = isinstance(X, torch.Tensor)
    xp_in = xp.to(X.dtype if as_torch and X.is_floating_point() else xp.dtype) if as_torch else xp.numpy()
    pert = explainer(xp_in, target=np.tile(tgt, n_perturbations))
    r0 = to_numpy(base.relevance).astype(np.float64).reshape(1, n, -1)
    r1 = to_numpy(pert.relevance).astype(np.float64).reshape(n_perturbations, n, -1)
    dx = (noise * scale * eps).reshape(n_perturbations, n, -1).cpu().numpy().astype(np.float64)
    ratio = np.linalg.norm(r1 - r0, axis=2) / np.linalg.norm(dx, axis=2)
    dout = np.abs(to_numpy(pert.output).astype(np.float64).reshape(n_perturbations, n)
                  - to_numpy(base.output).astype(np.float64)[None])
    return MetricResult(name="continuity", scores=ratio.mean(0), higher_is_better=False,
                        details={"max": ratio.max(0), "output_change": dout.mean(0), "noise": noise})
