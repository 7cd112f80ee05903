"""``neon.tune``: choose LRP rules and their parameters from data, by a faithfulness metric.

Rule choices are usually argued from intuition; ``tune`` measures them instead. Each candidate
``rules=`` value is fitted like a :class:`neon.Explainer` and scored with a metric of
:mod:`neon.metrics` on validation data; the best one is returned with the score of every
candidate. The default grid is built from the network itself, so it is generic: the presets
(for networks with torch affine layers), one sweep per rule parameter found in the fitted rules
(``epsilon``, ``gamma``, ``beta`` of soft-min/soft-max pools, ``eta`` of the SVC rules, ...),
set to the same value on every layer that carries it, and a DTD reference at the input layer
(``Reference("mean")``, ``ZBox``) that matches a replacement value.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
from torch import Tensor, nn

from .explainer import Explainer
from .layers.affine import is_affine
from .layers.top import LogOdds
from .metrics import MetricResult, continuity, localization, pixel_flipping, region_perturbation
from .propagate.kinds import NodeKind
from .rules import Reference, ZBox
from .rules.composites import Composite

#: Values tried for each rule parameter; ``beta`` values are factors of the fitted stiffness.
PARAMETER_GRID: dict[str, tuple[float, ...]] = {
    "epsilon": (0.0, 1e-4, 1e-2, 0.1, 0.25, 1.0),
    "gamma": (0.0, 0.1, 0.25, 0.5, 1.0, 2.0),
    "beta": (0.1, 0.3, 3.0, 10.0, 100.0),
    "eta": (0.0, 0.25, 0.5, 0.75, 1.0),
}
RELATIVE_PARAMETERS = ("beta",)
PRESETS = ("lrp0", "epsilon", "epsilon_plus", "epsilon_alpha2_beta1", "epsilon_gamma_box", "overview")
METRICS = ("pixel_flipping", "region_perturbation", "localization", "continuity")


@dataclass(repr=False)
class TuneResult:
    """The outcome of :func:`tune`.

    Attributes
    ----------
    best_rules
        The winning ``rules=`` value (pass it to :class:`neon.Explainer`).
    best_label
        Its name in the table.
    best_score
        Its metric value.
    explainer
        A fitted :class:`neon.Explainer` with the winning rules.
    composite
        The winning rules as a :class:`neon.Composite`.
    scores
        One row per evaluated candidate: ``label``, ``rules``, ``score``, ``seconds``, ``error``.
    metric, higher_is_better, replace
        What was measured, which direction wins, and the replacement value (flipping metrics).
    truncated
        True if ``max_seconds`` stopped the search before every selected candidate was scored.
    """

    best_rules: Any
    best_label: str
    best_score: float
    explainer: Explainer
    composite: Composite
    scores: list[dict[str, Any]] = field(default_factory=list)
    metric: str = ""
    higher_is_better: bool = False
    replace: str | None = None
    truncated: bool = False

    def table(self) -> str:
        """The scores of every candidate, best first, as text."""
        rows = sorted(self.scores, key=lambda r: _sort_key(r["score"], self.higher_is_better))
        width = max([len(r["label"]) for r in rows] + [9])
        lines = [f"{'candidate':<{width}}  {self.metric} ({'higher' if self.higher_is_better else 'lower'} is better"
                 + (f", replace={self.replace}" if self.replace else "") + ")"]
        lines += [f"{r['label']:<{width}}  " + (f"{r['score']:.5g}" if r["error"] is None else f"error: {r['error']}")
                  for r in rows]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"TuneResult(best={self.best_label!r}, {self.metric}={self.best_score:.5g}, "
                f"{len(self.scores)} candidates{', truncated' if self.truncated else ''})")


def _sort_key(score: float, higher: bool) -> float:
    if score is None or not np.isfinite(score):
        return math.inf
    return -score if higher else score


def _numeric(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    if isinstance(value, Tensor) and value.numel() == 1 and value.is_floating_point():
        return float(value)
    return None


def _module_names(explainer: Explainer) -> dict[str, str]:
    net = explainer.network_
    return {s.name: info.name for s, info in zip(net.rule_steps(), net.layer_infos())}


def default_grid(explainer: Explainer, parameters: Mapping[str, Sequence[float]] | None = None) -> dict[str, Any]:
    """The candidate ``rules=`` values :func:`tune` tries by default, by label.

    ``explainer`` must be fitted. Candidates: ``"default"`` (the explainer's own rules); the
    presets, for networks with torch linear/conv layers; for every numeric parameter in
    ``parameters`` (default :data:`PARAMETER_GRID`) carried by a fitted rule, that parameter set to
    each value on every layer carrying it (``beta`` values multiply the fitted stiffness); and
    the input layer with ``Reference("mean")`` / ``Reference(0)`` / ``ZBox("auto")`` when it is affine.
    """
    params = dict(PARAMETER_GRID if parameters is None else parameters)
    base = explainer.composite_
    grid: dict[str, Any] = {"default": explainer.rules}
    net = explainer.network_
    torch_affine = [s for s in net.steps if s.kind is NodeKind.LAYER and isinstance(s.module, (nn.Linear, nn.Conv1d,
                                                                                         nn.Conv2d, LogOdds))]
    if torch_affine:
        for name in PRESETS:
            grid[name] = name
    names = _module_names(explainer)
    for param, values in params.items():
        carriers = {node: rule for node, rule in explainer.rules_.items()
                    if _numeric(getattr(rule, param, None)) is not None}
        if not carriers:
            continue
        for v in values:
            overrides = {}
            for node, rule in carriers.items():
                new = v * cast(float, _numeric(getattr(rule, param))) if param in RELATIVE_PARAMETERS else v
                overrides[names[node]] = rule._replace(**{param: type(getattr(rule, param))(new)
                                                          if not isinstance(getattr(rule, param), Tensor) else new})
            label = f"{param}={'x' if param in RELATIVE_PARAMETERS else ''}{v:g}"
            grid[label] = base.with_overrides(overrides)
    first = next((s for s in net.steps if s.kind is NodeKind.LAYER), None)
    if first is not None and (is_affine(first.module) or isinstance(first.module, LogOdds)):
        name = names[first.name]
        grid["input Reference(mean)"] = base.with_overrides({name: Reference("mean")})
        grid["input Reference(0)"] = base.with_overrides({name: Reference(0.0)})
        grid["input ZBox(auto)"] = base.with_overrides({name: ZBox("auto", "auto")})
    return grid


def _metric_fn(metric: Any, kwargs: dict[str, Any]) -> Callable[[Explainer, Any], MetricResult]:
    if callable(metric):
        return lambda ex, X: metric(ex, X, **kwargs)
    if metric == "pixel_flipping":
        return lambda ex, X: pixel_flipping(ex, ex, X, **kwargs)
    if metric == "region_perturbation":
        return lambda ex, X: region_perturbation(ex, ex, X, **kwargs)
    if metric == "localization":
        if "mask" not in kwargs:
            raise ValueError("metric='localization' needs the ground truth: tune(..., mask=...).")
        mask = kwargs["mask"]
        rest = {k: v for k, v in kwargs.items() if k != "mask"}
        return lambda ex, X: localization(ex(X), mask, **rest)
    if metric == "continuity":
        return lambda ex, X: continuity(ex, X, **kwargs)
    raise ValueError(f"metric={metric!r}; use one of {METRICS} or a callable (explainer, X) -> MetricResult.")


class _Search:
    """Scores candidates one after the other and keeps every row (the state of one :func:`tune` call)."""

    def __init__(self, explainer: Explainer, fit_data: Any, X_val: Any, score_fn: Callable[..., Any],
                 max_seconds: float | None):
        self.explainer, self.fit_data, self.X_val, self.score_fn = explainer, fit_data, X_val, score_fn
        self.max_seconds = max_seconds
        self.start = time.perf_counter()
        self.rows: list[dict[str, Any]] = []
        self.fitted: dict[str, Explainer] = {}
        self.higher: bool | None = None
        self.replace: str | None = None
        self.truncated = False

    def run(self, candidates: Mapping[str, Any], labels: Sequence[str]) -> None:
        base = self.explainer
        for label in labels:
            if self.max_seconds is not None and time.perf_counter() - self.start > self.max_seconds and self.rows:
                self.truncated = True
                return
            rules = candidates[label]
            t0 = time.perf_counter()
            row: dict[str, Any] = {"label": label, "rules": rules, "score": float("nan"), "seconds": 0.0,
                                   "error": None}
            try:
                ex = Explainer(base.network_, rules=rules, reference=base.reference, batch_size=base.batch_size)
                ex.fit(self.fit_data)
                res = self.score_fn(ex, self.X_val)
                if isinstance(res, MetricResult):
                    self.higher = res.higher_is_better if self.higher is None else self.higher
                    self.replace = res.replace if self.replace is None else self.replace
                    row["score"] = res.mean
                else:
                    row["score"] = float(res)
                self.fitted[label] = ex
            except Exception as err:  # noqa: BLE001 - a candidate that does not apply to this network is reported
                row["error"] = f"{type(err).__name__}: {err}"
            row["seconds"] = time.perf_counter() - t0
            self.rows.append(row)

    def ok(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["error"] is None and np.isfinite(r["score"])]

    def best(self) -> dict[str, Any]:
        ok = self.ok()
        if not ok:
            raise ValueError("no candidate could be scored: "
                             + "; ".join(f"{r['label']}: {r['error']}" for r in self.rows))
        if self.higher is None:
            raise ValueError("a callable metric returning plain numbers must return a MetricResult so that the "
                             "direction (higher_is_better) is known.")
        return min(ok, key=lambda r: _sort_key(r["score"], bool(self.higher)))


def _subset(labels: list[str], budget: int | None, rng: np.random.Generator, keep_default: bool = True) -> list[str]:
    """At most ``budget`` labels, ``"default"`` first if present, the rest a seeded random subset in grid order."""
    if budget is None:
        return labels
    has_default = keep_default and "default" in labels
    rest = [lab for lab in labels if lab != "default"] if keep_default else list(labels)
    keep = int(budget) - (1 if has_default else 0)
    chosen = set(rng.choice(len(rest), size=min(keep, len(rest)), replace=False).tolist()) if keep > 0 else set()
    return [lab for lab in labels if (has_default and lab == "default") or (lab in rest and rest.index(lab) in chosen)]


def tune(explainer: Any, X_val: Any, metric: Any = "pixel_flipping", grid: Any = None, budget: int | None = None,
         random_state: int | None = 0, X_fit: Any = None, max_seconds: float | None = None, refine: bool = True,
         **metric_kwargs: Any) -> TuneResult:
    """Pick the rules that score best on a faithfulness metric.

    Parameters
    ----------
    explainer
        A :class:`neon.Explainer` (its model, ``output``, ``reference`` and ``batch_size`` are
        kept; its ``rules`` are the ``"default"`` candidate), or a model (wrapped in one).
    X_val
        Validation inputs the metric is computed on; not modified.
    metric
        ``"pixel_flipping"`` (MoRF AUC, lower is better), ``"region_perturbation"`` (AOPC, higher
        is better), ``"localization"`` (needs ``mask=``), ``"continuity"``, or a callable
        ``metric(explainer, X, **metric_kwargs) -> MetricResult``. The direction comes from the
        metric's result.
    grid
        Candidate ``rules=`` values: a list (labelled by ``repr``) or a dict ``{label: rules}``;
        default :func:`default_grid`.
    budget
        The most candidates to score in all. ``"default"`` always is; the others are a random subset
        drawn with ``random_state`` (kept in grid order). ``None``: all.
    refine
        With the default grid: a second round (a third of the budget) that repeats the parameter
        sweeps and input-layer rules on top of the first round's winner (a greedy coordinate
        search, so that e.g. ``epsilon_gamma_box`` + ``Reference("mean")`` at the input is reachable).
    random_state
        Seeds the subset and the metric's randomness (``"noise"`` replacement): the result is
        deterministic for a fixed seed.
    X_fit
        Data for the candidates' data-dependent parameters; default ``X_val``.
    max_seconds
        Stop after this much wall-clock time (the result says ``truncated``; the candidates scored
        then depend on the machine's speed, so leave it ``None`` for reproducible searches).
    **metric_kwargs
        Passed to the metric, e.g. ``replace="mean"``, ``order="morf"``, ``steps=16``, ``mask=...``.
    """
    if not isinstance(explainer, Explainer):
        explainer = Explainer(explainer)
    fit_data = X_val if X_fit is None else X_fit
    if not hasattr(explainer, "network_"):
        explainer = Explainer(explainer.model, rules=explainer.rules, output=explainer.output,
                              reference=explainer.reference, batch_size=explainer.batch_size,
                              **explainer.options).fit(fit_data)
    if metric in ("pixel_flipping", "region_perturbation") or metric == "continuity":
        metric_kwargs.setdefault("random_state", random_state)
    score_fn = _metric_fn(metric, metric_kwargs)
    if grid is None:
        candidates = default_grid(explainer)
    elif isinstance(grid, Mapping):
        candidates = dict(grid)
    elif isinstance(grid, Sequence) and not isinstance(grid, str):
        candidates = {repr(g) if not isinstance(g, str) else g: g for g in grid}
    else:
        raise ValueError("grid must be a list of rules= values or a dict {label: rules}.")
    if not candidates:
        raise ValueError("the grid is empty.")
    refine = refine and grid is None
    first_budget = None if budget is None else (max(1, math.ceil(budget * 2 / 3)) if refine else budget)
    if budget is not None and budget < 1:
        raise ValueError(f"budget must be >= 1, got {budget}.")
    rng = np.random.default_rng(random_state)
    state = _Search(explainer, fit_data, X_val, score_fn, max_seconds)
    state.run(candidates, _subset(list(candidates), first_budget, rng))
    if refine and state.ok():
        # Second round: the parameter sweeps and input-layer rules again, on top of the first round's winner.
        best = state.best()
        winner = state.fitted[best["label"]]
        seen = {r["label"] for r in state.rows}
        prefix = "" if best["label"] == "default" else f"{best['label']} + "
        more = {prefix + lab: rules for lab, rules in default_grid(winner).items()
                if lab != "default" and lab not in PRESETS and prefix + lab not in seen}
        left = None if budget is None else budget - len(state.rows)
        if left is None or left > 0:
            state.run(more, _subset(list(more), left, rng, keep_default=False))
    rows, fitted, higher, replace, truncated = state.rows, state.fitted, state.higher, state.replace, state.truncated
    best = state.best()
    ex = fitted[best["label"]]
    return TuneResult(best_rules=best["rules"], best_label=best["label"], best_score=best["score"], explainer=ex,
                      composite=ex.composite_, scores=rows, metric=metric if isinstance(metric, str)
                      else getattr(metric, "__name__", "metric"), higher_is_better=bool(higher), replace=replace,
                      truncated=truncated)


__all__ = ["PARAMETER_GRID", "TuneResult", "default_grid", "tune"]
