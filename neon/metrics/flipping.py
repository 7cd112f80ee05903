"""Selectivity: pixel / feature flipping and region perturbation (docs/theory.md §5).

Pixel flipping (Bach et al., PLOS ONE 2015): remove the input features in the order of their
relevance, most relevant first (MoRF) or least relevant first (LeRF), and track the explained
output ``f``. A faithful explanation makes the MoRF curve fall fast (small area, lower is
better) and the LeRF curve stay high (large area, higher is better).

Region perturbation (Samek et al., "Evaluating the visualization of what a deep neural network
has learned", TNNLS 2017): the same with patches ranked by their summed relevance, scored by the
area over the perturbation curve ``AOPC = 1/(L+1) sum_{k=0}^{L} (f(x^0) - f(x^k))`` (MoRF: higher
is better).

Removing a feature means replacing it (:func:`neon.metrics.replace.replacement`); the
replacement is reported with every result. Every step is one batched forward pass over all
samples; the features removed at step ``k`` are those whose rank is below ``b_k``, so the curve
does not depend on batch composition. Ties in relevance are broken by feature index (stable sort).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ._common import FlippingResult, Scorer, attributions_of, check_same_shape, network_of, to_tensor
from .replace import replacement

ORDERS = ("morf", "lerf")
_ROWS_PER_CALL = 8192


def _check_order(order: str) -> None:
    if order not in ORDERS:
        raise ValueError(f"order={order!r}; use 'morf' (most relevant first) or 'lerf' (least relevant first).")


def _setup(source: Any, model: Any, X: Any, target: Any) -> tuple[Scorer, Tensor, Tensor, Tensor]:
    """The explained function, inputs, attributions (same shape) and target per sample."""
    from ..explainer import Explainer

    if X is None:
        raise ValueError("X (the explained inputs) is required.")
    x = to_tensor(X, "X")
    if model is None and isinstance(source, Explainer):
        model = source
    network = network_of(model)
    scorer = Scorer(network, x)
    rel, tgt, _ = attributions_of(source, X, target)
    check_same_shape(rel, x)
    if not bool(torch.isfinite(rel).all()):
        raise ValueError("attributions contain NaN or infinity; they cannot rank features.")
    x = x.to(scorer.dtype)
    if tgt is None:
        tgt = scorer.predict(x).cpu()
    n_targets = scorer.outputs(x[:1]).shape[1] if len(x) else 0
    if len(tgt) and (int(tgt.min()) < 0 or int(tgt.max()) >= n_targets):
        raise ValueError(f"target out of range: the model has {n_targets} outputs.")
    return scorer, x, rel.to(device=x.device, dtype=scorer.dtype), tgt


def _boundaries(n_groups: int, steps: int | None, per_step: int | None) -> list[int]:
    if steps is not None and per_step is not None:
        raise ValueError("give steps= or features_per_step=, not both.")
    if per_step is not None:
        if per_step < 1:
            raise ValueError(f"features_per_step must be >= 1, got {per_step}.")
        return [min(k * per_step, n_groups) for k in range(math.ceil(n_groups / per_step) + 1)]
    if steps is None:
        steps = n_groups if n_groups <= 128 else 100
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}.")
    steps = min(steps, n_groups)
    return sorted({int(round(b)) for b in np.linspace(0, n_groups, steps + 1)})


def flip_curve(scorer: Scorer, x: Tensor, target: Tensor, group_of: Tensor, group_scores: Tensor,
               repl: Tensor, boundaries: list[int], order: str) -> np.ndarray:
    """``(n, len(boundaries))`` outputs after replacing the ``b_k`` top-ranked groups of every sample.

    ``group_of`` ``(d,)`` maps each flattened feature to its group; ``group_scores`` ``(n, G)``
    ranks the groups (descending for MoRF, ascending for LeRF).
    """
    n = len(x)
    flat = x.reshape(n, -1)
    rflat = repl.reshape(n, -1)
    n_groups = group_scores.shape[1]
    ranking = torch.argsort(group_scores, dim=1, descending=(order == "morf"), stable=True)
    rank = torch.empty_like(ranking)
    rank.scatter_(1, ranking, torch.arange(n_groups, device=ranking.device).expand(n, -1).contiguous())
    feature_rank = rank[:, group_of]
    per_call = max(1, _ROWS_PER_CALL // max(n, 1))
    values = []
    for start in range(0, len(boundaries), per_call):
        chunk = boundaries[start:start + per_call]
        batch = torch.cat([torch.where(feature_rank < b, rflat, flat) for b in chunk]).reshape((-1,) + x.shape[1:])
        values.append(scorer(batch, target.repeat(len(chunk))).reshape(len(chunk), n))
    return torch.cat(values).T.cpu().numpy().astype(np.float64)


def pixel_flipping(explainer_or_attributions: Any, model: Any = None, X: Any = None, *, target: Any = None,
                   order: str = "morf", replace: Any = "zero", steps: int | None = None,
                   features_per_step: int | None = None, background: Any = None, random_state: int | None = 0,
                   blur_sigma: float = 1.0) -> FlippingResult:
    """Pixel / feature flipping curve and its normalised area (Bach et al., PLOS ONE 2015).

    ``x^k`` is ``x`` with its ``b_k`` most (MoRF) or least (LeRF) relevant features replaced;
    the curve is ``f_t(x^k)``, ``t`` the explained target, ``f`` the model's explained output
    (log-odds for classifiers, cluster logit, outlier score, ...). The score is the normalised
    area ``AUC = int_0^1 f_t(x^{(s)}) ds`` over the removed share ``s`` (trapezoidal rule), in
    units of ``f``.

    **Direction**: MoRF: lower is better; LeRF: higher is better.

    Parameters
    ----------
    explainer_or_attributions
        A :class:`neon.Explanation`, an explainer called as ``explainer(X)`` (a :class:`neon.Explainer`
        or any callable returning an Explanation, e.g. ``functools.partial(neon.baselines.gradient, model)``),
        or an array of attributions with the shape of ``X``.
    model
        The explained model: a scikit-learn estimator, an ``nn.Module``, a :class:`neon.Network` or a
        fitted :class:`neon.Explainer`; may be omitted when the first argument is a neon.Explainer.
    X
        The explained inputs ``(n, ...)``; not modified.
    target
        Explained output per sample; default: the explanation's target, else the arg-max output.
    order
        ``"morf"`` or ``"lerf"``.
    replace
        ``"zero"``, ``"mean"``, ``"min"``, ``"blur"``, ``"noise"``, a number or an array (see
        :func:`neon.metrics.replace.replacement`). Reported as ``result.replace``.
    steps, features_per_step
        Number of removal steps (default: one feature per step up to 128 features, else 100
        steps), or a fixed number of features per step (as Quantus' ``features_in_step``).
    background
        Data for ``"mean"`` and ``"noise"`` replacement; default ``X``.

    Returns
    -------
    FlippingResult
        ``scores`` (AUC per sample), ``curve`` ``(n, steps + 1)``, ``fractions``, ``replace``,
        ``higher_is_better`` (``False`` for MoRF). ``details["aopc"]``: ``mean_k f(x^0) - f(x^k)``.

    Notes
    -----
    Quantus' ``PixelFlipping(features_in_step=s, perturb_baseline=v, normalise=False)`` called with
    ``softmax=False`` returns ``result.curve[:, 1:]`` of ``pixel_flipping(..., features_per_step=s,
    replace=v)`` (Quantus leaves out the intact input and integrates with ``dx=1``).
    """
    _check_order(order)
    scorer, x, rel, tgt = _setup(explainer_or_attributions, model, X, target)
    n = len(x)
    d = int(np.prod(x.shape[1:]))
    repl, desc = replacement(x, replace, background, random_state, blur_sigma)
    bounds = _boundaries(d, steps, features_per_step)
    curve = flip_curve(scorer, x, tgt, torch.arange(d, device=x.device), rel.reshape(n, -1), repl, bounds, order)
    return _result("pixel_flipping", curve, np.asarray(bounds, dtype=np.float64) / max(d, 1), order, desc, tgt,
                   score="auc")


def _result(name: str, curve: np.ndarray, fractions: np.ndarray, order: str, desc: str, tgt: Tensor,
            score: str) -> FlippingResult:
    auc = np.trapezoid(curve, fractions, axis=1) if curve.shape[1] > 1 else curve[:, 0]
    aopc = (curve[:, :1] - curve).mean(1)
    scores, higher = (auc, order == "lerf") if score == "auc" else (aopc, order == "morf")
    return FlippingResult(name=name, scores=scores, higher_is_better=higher, replace=desc,
                          details={"auc": auc, "aopc": aopc, "target": tgt.numpy()}, curve=curve,
                          fractions=fractions, order=order)


def patch_groups(shape: tuple[int, ...], patch_size: int | tuple[int, ...]) -> tuple[Tensor, int]:
    """Group id of every flattened feature for non-overlapping patches, and the number of groups.

    Images ``(C, H, W)`` share a patch across channels; ``(H, W)`` inputs are images with one
    channel; 1-D inputs ``(d,)`` are cut into runs of ``patch_size`` consecutive features.
    """
    spatial = shape[-2:] if len(shape) >= 2 else shape
    size = (patch_size,) * len(spatial) if isinstance(patch_size, int) else tuple(patch_size)
    if len(size) != len(spatial) or any(p < 1 for p in size):
        raise ValueError(f"patch_size={patch_size!r} does not fit inputs with spatial shape {tuple(spatial)}.")
    if any(p > s for p, s in zip(size, spatial)):
        raise ValueError(f"patch_size={patch_size!r} is larger than the input's spatial shape {tuple(spatial)}.")
    grids = [torch.arange(s) // p for s, p in zip(spatial, size)]
    counts = [math.ceil(s / p) for s, p in zip(spatial, size)]
    if len(spatial) == 2:
        gid = grids[0][:, None] * counts[1] + grids[1][None, :]
    else:
        gid = grids[0]
    lead = int(np.prod(shape[:-len(spatial)])) if len(shape) > len(spatial) else 1
    return gid.reshape(-1).repeat(lead), int(np.prod(counts))


def region_perturbation(explainer_or_attributions: Any, model: Any = None, X: Any = None, *, target: Any = None,
                        patch_size: int | tuple[int, ...] = 2, order: str = "morf", replace: Any = "zero",
                        steps: int | None = None, background: Any = None, random_state: int | None = 0,
                        blur_sigma: float = 1.0) -> FlippingResult:
    """Region perturbation and its AOPC (Samek et al., TNNLS 2017).

    Non-overlapping patches (``patch_size`` pixels square on images, runs of features on tabular
    data) are ranked by their summed relevance and replaced one group at a time;
    ``AOPC = 1/(L+1) sum_{k=0}^{L} (f(x^0) - f(x^k))`` per sample, ``L`` the number of steps.

    **Direction**: MoRF: higher is better; LeRF: lower is better.

    Parameters are those of :func:`pixel_flipping`; ``steps`` counts patches removed (default: all,
    one per step). Returns a :class:`FlippingResult` whose ``scores`` are the AOPC per sample.
    """
    _check_order(order)
    scorer, x, rel, tgt = _setup(explainer_or_attributions, model, X, target)
    n = len(x)
    group_of, n_groups = patch_groups(tuple(x.shape[1:]), patch_size)
    group_of = group_of.to(x.device)
    scores = torch.zeros(n, n_groups, dtype=rel.dtype, device=x.device).index_add_(1, group_of, rel.reshape(n, -1))
    repl, desc = replacement(x, replace, background, random_state, blur_sigma)
    if steps is not None and steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}.")
    n_steps = n_groups if steps is None else min(steps, n_groups)
    bounds = list(range(n_steps + 1))
    curve = flip_curve(scorer, x, tgt, group_of, scores, repl, bounds, order)
    res = _result("region_perturbation", curve, np.asarray(bounds, dtype=np.float64) / n_groups, order, desc, tgt,
                  score="aopc")
    res.details["patch_size"] = patch_size
    return res
