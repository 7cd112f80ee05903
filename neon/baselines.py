"""The usual attribution baselines, on the same :class:`neon.Network` as LRP.

Every function has the call shape of :func:`neon.explain`,
``baseline(model, X, target=None, ..., output=None) -> neon.Explanation``, and explains the same
function as neon: the model is neuralized first, so a classifier's explained output is its
log-odds (docs/theory.md §3), a k-means model's the cluster logit, and so on. Comparisons
between LRP and these baselines (``neon.metrics``, ``benchmarks/faithfulness.py``) therefore
compare explanations of one function.

============================  =========================================================  ==========
baseline                      relevance                                                  cost
============================  =========================================================  ==========
:func:`gradient`              ``d f_t / d x`` (Simonyan et al. 2014)                      1 backward
:func:`gradient_x_input`      ``x * d f_t / d x`` (Shrikumar et al. 2016)                 1 backward
:func:`integrated_gradients`  ``(x - x~) * int_0^1 grad f_t(x~ + a (x - x~)) da``         ``steps + 1``
                              (Sundararajan et al., ICML 2017)
:func:`occlusion`             ``f_t(x) - f_t(x with the patch replaced)`` (Zeiler &       one forward
                              Fergus 2014)                                               per patch
:func:`shapley_sampling`      permutation-sampled Shapley values via ``shap``             ``2 d`` per
                              (Strumbelj & Kononenko 2014)                                permutation
============================  =========================================================  ==========
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ._arrays import ArrayInfo, as_tensor, compute_dtype, restore, restore_vector
from .explanation import Explanation
from .network import Network

_ROWS_PER_CALL = 8192


def _network(model: Any, output: str | None, options: dict[str, Any]) -> Network:
    from .converters import neuralize
    from .explainer import Explainer

    if isinstance(model, Explainer):
        if not hasattr(model, "network_"):
            raise ValueError("the Explainer is not fitted; call explainer.fit(X) first.")
        return model.network_
    if output is not None:
        options = {**options, "output": output}
    return neuralize(model, **options)


class _Setup:
    """The explained network in the compute dtype, the inputs, and the target of every sample."""

    def __init__(self, model: Any, X: Any, target: Any, output: str | None, options: dict[str, Any]):
        from .explainer import resolve_targets

        network = _network(model, output, options)
        x, info = as_tensor(X)
        if network.input_shape is not None and tuple(x.shape[1:]) != tuple(network.input_shape):
            raise ValueError(f"X has per-sample shape {tuple(x.shape[1:])}, but the model expects "
                             f"{network.input_shape}.")
        dtype = compute_dtype(x, network.dtype)
        if network.dtype != dtype:
            import copy

            network = copy.deepcopy(network).to(dtype=dtype)
        self.network = network
        self.info: ArrayInfo = info
        self.data = X
        self.x = x.to(device=network.device, dtype=dtype)
        self.target = resolve_targets(network, self.x, target) if len(self.x) else torch.zeros(0, dtype=torch.long)

    def value(self, x: Tensor, target: Tensor) -> Tensor:
        with torch.no_grad():
            out = self.network(x)
        return out.gather(1, target.view(-1, 1)).squeeze(1)

    def values(self, x: Tensor, target: Tensor) -> Tensor:
        """``f_t(x)`` for a large stack of inputs, in chunks that bound memory."""
        parts = [self.value(x[i:i + _ROWS_PER_CALL], target[i:i + _ROWS_PER_CALL])
                 for i in range(0, len(x), _ROWS_PER_CALL)]
        return torch.cat(parts) if parts else x.new_zeros(0)

    def grad(self, x: Tensor, target: Tensor) -> Tensor:
        """``d f_t / d x`` per sample (a sample's gradient never depends on the others)."""
        parts = []
        for i in range(0, len(x), _ROWS_PER_CALL):
            with torch.enable_grad():
                xi = x[i:i + _ROWS_PER_CALL].detach().requires_grad_(True)
                out = self.network(xi)
                val = out.gather(1, target[i:i + _ROWS_PER_CALL].view(-1, 1)).sum()
                (g,) = torch.autograd.grad(val, xi, allow_unused=True)
            parts.append(torch.zeros_like(xi) if g is None else g.detach())
        return torch.cat(parts) if parts else torch.zeros_like(x)

    def explanation(self, relevance: Tensor, output: Tensor, method: str, baseline: Tensor | None = None) -> \
            Explanation:
        n = len(self.x)
        base = torch.zeros_like(output) if baseline is None else baseline
        absorbed = output - relevance.reshape(n, -1).sum(1)
        net = self.network
        return Explanation(
            relevance=restore(relevance, self.info), output=restore_vector(output, self.info),
            target=restore_vector(self.target, self.info), absorbed=restore_vector(absorbed, self.info),
            data=self.data, baseline=restore_vector(base, self.info),
            feature_names=self.info.feature_names or net.feature_names, target_names=net.target_names,
            output_kind=net.output_kind, rules=method,
        )


def gradient(model: Any, X: Any, target: Any = None, output: str | None = None, **options: Any) -> Explanation:
    """Gradient (sensitivity) ``R_i = d f_t(x) / d x_i`` (Simonyan et al., ICLR workshop 2014).

    ``model``: a scikit-learn estimator, an ``nn.Module``, a :class:`neon.Network` or a fitted
    :class:`neon.Explainer`; ``output`` and ``options`` go to :func:`neon.neuralize`. The result's
    ``output`` is ``f_t(x)``; the relevance does not sum to it (``absorbed`` shows by how much).
    """
    s = _Setup(model, X, target, output, options)
    return s.explanation(s.grad(s.x, s.target), s.value(s.x, s.target), "gradient")


def gradient_x_input(model: Any, X: Any, target: Any = None, output: str | None = None,
                     **options: Any) -> Explanation:
    """Gradient x input ``R_i = x_i d f_t(x) / d x_i`` (Shrikumar et al. 2016).

    On a ReLU network without biases it equals LRP-0 (Montavon et al. 2019), and it sums to
    ``f_t(x)`` there (Euler's theorem for positively homogeneous functions).
    """
    s = _Setup(model, X, target, output, options)
    return s.explanation(s.x * s.grad(s.x, s.target), s.value(s.x, s.target), "gradient x input")


def _reference(s: _Setup, value: Any, background: Any) -> Tensor:
    from .metrics.replace import replacement

    ref, _ = replacement(s.x, value, background)
    return ref.to(s.x)


def integrated_gradients(model: Any, X: Any, target: Any = None, baseline: Any = 0.0, steps: int = 64,
                         background: Any = None, output: str | None = None, **options: Any) -> Explanation:
    """Integrated gradients (Sundararajan, Taly & Yan, ICML 2017).

    ``R_i = (x_i - x~_i) int_0^1 d f_t(x~ + a (x - x~)) / d x_i da``, the integral by the
    trapezoidal rule on ``steps + 1`` equally spaced points (weights ``1/steps``, halved at both
    ends). Completeness: ``sum_i R_i -> f_t(x) - f_t(x~)`` as ``steps`` grows; the result's
    ``output`` is ``f_t(x) - f_t(x~)`` (``baseline``: ``f_t(x~)``), so ``absorbed`` is the
    quadrature error.

    Parameters
    ----------
    baseline
        The reference ``x~``: ``0`` / a number, ``"mean"`` (the per-feature mean of ``background``,
        default ``X``), or an array of one sample's shape or of ``X``'s shape.
    steps
        Number of trapezoids (``steps + 1`` gradient evaluations per sample), >= 1.

    Notes
    -----
    captum's ``IntegratedGradients(method="riemann_trapezoid", n_steps=N)`` uses the same points
    for ``N = steps + 1`` but weights ``1/N``, so its result is this one times ``steps / (steps + 1)``.
    """
    if int(steps) < 1:
        raise ValueError(f"steps must be >= 1, got {steps}.")
    s = _Setup(model, X, target, output, options)
    ref = _reference(s, baseline, background)
    alphas = torch.linspace(0, 1, steps + 1, dtype=s.x.dtype, device=s.x.device)
    weights = torch.full_like(alphas, 1.0 / steps)
    weights[0] /= 2
    weights[-1] /= 2
    n = len(s.x)
    total = torch.zeros_like(s.x)
    per_call = max(1, _ROWS_PER_CALL // max(n, 1))
    for start in range(0, len(alphas), per_call):
        a = alphas[start:start + per_call]
        shape = (-1,) + (1,) * s.x.dim()
        path = (ref.unsqueeze(0) + a.view(shape) * (s.x - ref).unsqueeze(0)).reshape((-1,) + tuple(s.x.shape[1:]))
        g = s.grad(path, s.target.repeat(len(a))).reshape((len(a),) + tuple(s.x.shape))
        total += (weights[start:start + per_call].view(shape) * g).sum(0)
    f_ref = s.value(ref, s.target)
    return s.explanation((s.x - ref) * total, s.value(s.x, s.target) - f_ref, f"integrated gradients ({steps} steps)",
                         baseline=f_ref)


def _window_shape(shape: tuple[int, ...], patch: int | tuple[int, ...]) -> tuple[int, ...]:
    if isinstance(patch, (int, np.integer)):
        if len(shape) == 3:  # (C, H, W): a square patch through all channels
            return (shape[0], int(patch), int(patch))
        return (int(patch),) * len(shape)
    window = tuple(int(p) for p in patch)
    if len(window) != len(shape):
        raise ValueError(f"patch={patch!r} must have one size per input axis {shape} (or be one int).")
    return window


def occlusion(model: Any, X: Any, target: Any = None, patch: int | tuple[int, ...] = 1,
              stride: int | tuple[int, ...] | None = None, value: Any = 0.0, background: Any = None,
              output: str | None = None, **options: Any) -> Explanation:
    """Occlusion (Zeiler & Fergus, ECCV 2014): the output drop when a patch is replaced.

    A window of shape ``patch`` slides over each sample with ``stride`` (default: the window, so
    patches do not overlap); every feature gets the mean over the windows covering it of
    ``f_t(x) - f_t(x with the window set to value)`` (as captum's ``Occlusion``). ``patch=1`` on
    tabular data is feature ablation. Cost: one batched forward pass per window position.

    Parameters
    ----------
    patch
        Window shape (one size per input axis), or one int: a square window through all channels
        for images ``(C, H, W)``, a run of features for tabular data.
    value
        The replacement: a number, ``"mean"`` (per-feature mean of ``background``, default ``X``),
        ``"zero"``, ``"min"``, ``"blur"``, ``"noise"``, or an array (see :mod:`neon.metrics.replace`).
    """
    s = _Setup(model, X, target, output, options)
    shape = tuple(s.x.shape[1:])
    window = _window_shape(shape, patch)
    strides = window if stride is None else _window_shape(shape, stride)
    if any(w < 1 or w > d for w, d in zip(window, shape)) or any(t < 1 for t in strides):
        raise ValueError(f"patch {window} / stride {strides} do not fit inputs of shape {shape}.")
    repl = _reference(s, value, background)
    starts = [range(0, d - w + 1, t) for d, w, t in zip(shape, window, strides)]
    positions = list(itertools.product(*starts))
    n = len(s.x)
    f_x = s.value(s.x, s.target)
    total = torch.zeros_like(s.x)
    count = torch.zeros(shape, dtype=s.x.dtype, device=s.x.device)
    per_call = max(1, _ROWS_PER_CALL // max(n, 1))
    for start in range(0, len(positions), per_call):
        chunk = positions[start:start + per_call]
        masks = torch.zeros((len(chunk),) + shape, dtype=torch.bool, device=s.x.device)
        for i, pos in enumerate(chunk):
            masks[(i,) + tuple(slice(p, p + w) for p, w in zip(pos, window))] = True
        stacked = torch.where(masks.unsqueeze(1), repl.unsqueeze(0), s.x.unsqueeze(0)).reshape((-1,) + shape)
        drop = f_x.repeat(len(chunk)) - s.values(stacked, s.target.repeat(len(chunk)))
        m = masks.to(s.x.dtype)
        total += torch.einsum("kn,k...->n...", drop.reshape(len(chunk), n), m)
        count += m.sum(0)
    rel = total / count.clamp(min=1)
    return s.explanation(rel, f_x, f"occlusion (patch {window}, stride {strides})")


def shapley_sampling(model: Any, X: Any, target: Any = None, background: Any = None, n_permutations: int = 10,
                     max_background: int = 50, random_state: int | None = 0, output: str | None = None,
                     **options: Any) -> Explanation:
    """Shapley values estimated by sampling permutations (Strumbelj & Kononenko, KAIS 2014), via ``shap``.

    ``shap.PermutationExplainer`` with an independent masker on ``background`` (default: ``X``,
    at most ``max_background`` rows, chosen with ``random_state``) evaluates ``n_permutations``
    antithetic permutations per sample (``2 d n_permutations + 1`` model calls each). The values sum
    exactly to ``f_t(x) - E_background[f_t]``, which is the result's ``output`` (``baseline``: the
    background expectation). Requires the ``shap`` package.
    """
    try:
        import shap
    except ImportError as err:
        raise ImportError("neon.baselines.shapley_sampling needs the 'shap' package: pip install shap") from err
    s = _Setup(model, X, target, output, options)
    n = len(s.x)
    shape = tuple(s.x.shape[1:])
    d = int(math.prod(shape))
    bg = s.x if background is None else as_tensor(background, "background")[0].to(s.x)
    if tuple(bg.shape[1:]) != shape:
        raise ValueError(f"background has per-sample shape {tuple(bg.shape[1:])}, X has {shape}.")
    rng = np.random.default_rng(random_state)
    if len(bg) > max_background:
        bg = bg[torch.as_tensor(np.sort(rng.choice(len(bg), max_background, replace=False)))]
    bg_np = bg.reshape(len(bg), d).cpu().numpy()

    def f(z: np.ndarray) -> np.ndarray:
        t = torch.as_tensor(z, dtype=s.x.dtype, device=s.x.device).reshape((-1,) + shape)
        with torch.no_grad():
            out = s.network(t)
        return out.cpu().numpy()

    masker = shap.maskers.Independent(bg_np, max_samples=len(bg_np))
    # shap seeds numpy's global generator; give the caller's generator state back afterwards.
    state = np.random.get_state()
    try:
        explainer = shap.PermutationExplainer(f, masker, seed=random_state)
        result = explainer(s.x.reshape(n, d).cpu().numpy(), max_evals=n_permutations * (2 * d + 1), silent=True)
    finally:
        np.random.set_state(state)
    values = torch.as_tensor(np.asarray(result.values), dtype=s.x.dtype, device=s.x.device)  # (n, d, n_targets)
    base = torch.as_tensor(np.asarray(result.base_values), dtype=s.x.dtype, device=s.x.device)  # (n, n_targets)
    if values.dim() == 2:  # shap drops the output axis of single-output models
        values, base = values.unsqueeze(2), base.reshape(n, 1)
    idx = s.target.view(-1, 1)
    rel = values.gather(2, idx.view(-1, 1, 1).expand(n, d, 1)).squeeze(2).reshape(s.x.shape)
    f_base = base.reshape(n, -1).gather(1, idx).squeeze(1)
    out = s.value(s.x, s.target) - f_base
    return s.explanation(rel, out, f"shapley sampling ({n_permutations} permutations)", baseline=f_base)


__all__ = ["gradient", "gradient_x_input", "integrated_gradients", "occlusion", "shapley_sampling"]
