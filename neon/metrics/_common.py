"""Shared plumbing of the metrics: inputs as tensors, the explained function, result objects."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._arrays import as_tensor, compute_dtype
from ..explanation import Explanation
from ..network import Network


def to_tensor(X: Any, name: str) -> Tensor:
    """A read-only view of ``X`` as a tensor (never written to: metrics must not modify inputs)."""
    t, _ = as_tensor(X, name)
    return t


def to_numpy(t: Any) -> np.ndarray:
    if isinstance(t, Tensor):
        return t.detach().cpu().numpy()
    return np.asarray(t)


def network_of(model: Any) -> Network:
    """The :class:`neon.Network` that computes the explained output of ``model``.

    ``model`` may be a fitted :class:`neon.Explainer` (its network), a :class:`neon.Network`, a
    PyTorch module or a scikit-learn estimator (neuralized with default options, so a classifier's
    explained output is its log-odds, as in :func:`neon.explain`).
    """
    from ..converters import neuralize
    from ..explainer import Explainer

    if isinstance(model, Explainer):
        if not hasattr(model, "network_"):
            raise ValueError("the Explainer is not fitted; call explainer.fit(X) first.")
        return model.network_
    if model is None:
        raise ValueError("a model is needed to evaluate the explained output; pass model= (an estimator, an "
                         "nn.Module, a neon.Network or a fitted neon.Explainer).")
    return neuralize(model)


class Scorer:
    """``f_t(x)``: the network's explained output for a fixed target per sample, batched."""

    def __init__(self, network: Network, x: Tensor):
        self.network = network
        self.dtype = compute_dtype(x, network.dtype)
        self.device = network.device
        self._net = network if network.dtype == self.dtype else _cast(network, self.dtype)

    def outputs(self, x: Tensor) -> Tensor:
        with torch.no_grad():
            return self._net(x.to(device=self.device, dtype=self.dtype))

    def predict(self, x: Tensor) -> Tensor:
        """The model's default target of every sample (its prediction)."""
        return self._net.predict(x.to(device=self.device, dtype=self.dtype))

    def __call__(self, x: Tensor, target: Tensor) -> Tensor:
        return self.outputs(x).gather(1, target.view(-1, 1).to(self.device)).squeeze(1)


def _cast(network: Network, dtype: torch.dtype) -> Network:
    import copy

    return copy.deepcopy(network).to(dtype=dtype)


def attributions_of(source: Any, X: Any, target: Any) -> tuple[Tensor, Tensor | None, Any]:
    """Relevance ``(n, ...)`` from an Explanation, an Explainer (called on ``X``) or a plain array.

    Returns the relevance, the explained target (``None`` when unknown) and the Explanation (or None).
    """
    from ..explainer import Explainer

    expl = None
    if isinstance(source, Explainer) or (callable(source) and not isinstance(source, (np.ndarray, Tensor))):
        expl = source(X, target=target) if target is not None else source(X)
        if not isinstance(expl, Explanation):
            raise ValueError(f"the explainer returned {type(expl).__name__}, not a neon.Explanation.")
    elif isinstance(source, Explanation):
        expl = source
    tgt: Tensor | None
    if expl is not None:
        rel = to_tensor(expl.relevance, "relevance")
        tgt = torch.as_tensor(to_numpy(expl.target)).long()
        if target is not None and not torch.equal(_target_tensor(target, len(tgt)), tgt):
            raise ValueError("target differs from the explanation's own target; the curve must follow the output "
                             "that was explained (leave target=None for an Explanation).")
        return rel, tgt, expl
    rel = to_tensor(source, "attributions")
    tgt = None if target is None else _target_tensor(target, len(rel))
    return rel, tgt, None


def _target_tensor(target: Any, n: int) -> Tensor:
    t = torch.as_tensor(to_numpy(target)).long()
    if t.dim() == 0:
        t = t.expand(n)
    if t.shape != (n,):
        raise ValueError(f"target must be one index or one per sample ({n}); got shape {tuple(t.shape)}.")
    return t


def check_same_shape(rel: Tensor, x: Tensor, what: str = "attributions") -> None:
    if tuple(rel.shape) != tuple(x.shape):
        raise ValueError(f"{what} have shape {tuple(rel.shape)} but X has shape {tuple(x.shape)}; one relevance "
                         "value per input feature is needed.")


@dataclass(repr=False)
class MetricResult:
    """A metric's value per sample, its mean, and how to read it.

    Attributes
    ----------
    name
        The metric.
    scores
        ``(n,)`` numpy array, one value per sample.
    higher_is_better
        The direction: ``True`` if larger values mean a better explanation.
    replace
        The replacement value used to remove features (flipping metrics), else ``None``.
    details
        Further per-sample arrays and settings (documented by each metric).
    """

    name: str
    scores: np.ndarray
    higher_is_better: bool
    replace: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def mean(self) -> float:
        """The mean score over samples (NaN-free scores only)."""
        return float(np.nanmean(self.scores)) if len(self.scores) else float("nan")

    @property
    def direction(self) -> str:
        """``"higher is better"`` or ``"lower is better"``."""
        return "higher is better" if self.higher_is_better else "lower is better"

    def __float__(self) -> float:
        return self.mean

    def __repr__(self) -> str:
        rep = f", replace={self.replace!r}" if self.replace is not None else ""
        return f"{type(self).__name__}({self.name}: mean={self.mean:.4g} over {len(self.scores)} samples, " \
               f"{self.direction}{rep})"


@dataclass(repr=False)
class FlippingResult(MetricResult):
    """A perturbation curve per sample and its area.

    Attributes
    ----------
    curve
        ``(n, steps + 1)`` the explained output after removing the first ``k`` groups of features
        (column 0: the intact input).
    fractions
        ``(steps + 1,)`` the share of features (or patches) removed at each point of the curve.
    order
        ``"morf"`` (most relevant first) or ``"lerf"`` (least relevant first).
    """

    curve: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    fractions: np.ndarray = field(default_factory=lambda: np.zeros(0))
    order: str = "morf"

    @property
    def mean_curve(self) -> np.ndarray:
        """The curve averaged over samples."""
        return self.curve.mean(0)
