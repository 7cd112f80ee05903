"""Slow dense references for the LRP rules, written straight from docs/theory.md §2-4 (numpy, float64).

Every rule is evaluated with the explicit ``n x in x out`` contribution tensor ``Z[n, j, k]``:
``R_j = sum_k Z_jk / stab(sum_j Z_jk + bias_k) R_k``. Convolutions are turned into their dense
matrices first. Further: the log-odds top per sample (§3), average pooling with counted padding,
the distance rule with its zero-distance threshold (§4), and what each layer's bias and stabiliser
keep (the independent reference for ``Explanation.absorbed``; for whole networks with torch's
functional ops, from each node's own formula). Nothing here shares code with neon.
"""

from __future__ import annotations

import numpy as np
import torch


def stab(z: np.ndarray, eps: float) -> np.ndarray:
    return z + eps * np.where(z >= 0, 1.0, -1.0)


def pos(x):
    return np.maximum(x, 0.0)


def neg(x):
    return np.minimum(x, 0.0)


def dense_matrix(layer: torch.nn.Module, in_shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """``(W, b)`` with ``layer(x).flatten() = W x.flatten() + b`` for one sample of shape ``in_shape``."""
    d = int(np.prod(in_shape))
    with torch.no_grad():
        eye = torch.eye(d, dtype=torch.float64).reshape((d,) + tuple(in_shape))
        zero = torch.zeros((1,) + tuple(in_shape), dtype=torch.float64)
        b = layer(zero).reshape(-1).numpy()
        W = (layer(eye).reshape(d, -1).numpy() - b).T
    return W, b


def _redistribute(Z: np.ndarray, denom: np.ndarray, R: np.ndarray, eps: float) -> np.ndarray:
    # Z: (n, in, out), denom: (n, out), R: (n, out)
    return (Z / stab(denom, eps)[:, None, :] * R[:, None, :]).sum(-1)


def epsilon(a, W, b, R, eps):
    Z = a[:, :, None] * W.T[None]
    if eps == 0:
        den = Z.sum(1) + b
        safe = np.where(den == 0, 1.0, den)
        return np.where(den[:, None, :] == 0, 0.0, Z / safe[:, None, :] * R[:, None, :]).sum(-1)
    return _redistribute(Z, Z.sum(1) + b, R, eps)


def gamma(a, W, b, R, g, eps=1e-6):
    Wt = W.T[None]
    z = a @ W.T + b
    Zp = pos(a)[:, :, None] * (Wt + g * pos(Wt)) + neg(a)[:, :, None] * (Wt + g * neg(Wt))
    Zn = pos(a)[:, :, None] * (Wt + g * neg(Wt)) + neg(a)[:, :, None] * (Wt + g * pos(Wt))
    Rp = np.where(z > 0, R, 0.0)
    Rn = np.where(z < 0, R, 0.0)
    return (_redistribute(Zp, Zp.sum(1) + b + g * pos(b), Rp, eps)
            + _redistribute(Zn, Zn.sum(1) + b + g * neg(b), Rn, eps))


def zplus(a, W, b, R, eps=1e-6):
    Wt = W.T[None]
    Z = pos(a)[:, :, None] * pos(Wt) + neg(a)[:, :, None] * neg(Wt)
    return _redistribute(Z, Z.sum(1) + pos(b), R, eps)


def alpha_beta(a, W, b, R, alpha, beta, eps=1e-6):
    Wt = W.T[None]
    Zp = pos(a)[:, :, None] * pos(Wt) + neg(a)[:, :, None] * neg(Wt)
    Zn = pos(a)[:, :, None] * neg(Wt) + neg(a)[:, :, None] * pos(Wt)
    return alpha * _redistribute(Zp, Zp.sum(1) + pos(b), R, eps) - beta * _redistribute(Zn, Zn.sum(1) + neg(b), R, eps)


def zbox(a, W, b, R, low, high, eps=1e-6):
    Wt = W.T[None]
    low = np.broadcast_to(low, a.shape)
    high = np.broadcast_to(high, a.shape)
    Z = a[:, :, None] * Wt - low[:, :, None] * pos(Wt) - high[:, :, None] * neg(Wt)
    return _redistribute(Z, Z.sum(1), R, eps)


def wsquare(a, W, b, R, eps=1e-6):
    Z = np.broadcast_to((W.T ** 2)[None], (a.shape[0],) + W.T.shape)
    return _redistribute(Z, Z.sum(1) + b ** 2, R, eps)


def flat(a, W, b, R, eps=1e-6):
    mask = (W.T != 0).astype(np.float64)
    Z = np.broadcast_to(mask[None], (a.shape[0],) + mask.shape)
    return _redistribute(Z, Z.sum(1), R, eps)


def reference(a, W, b, R, x_ref, eps=1e-6):
    Z = (a - x_ref)[:, :, None] * W.T[None]
    return _redistribute(Z, Z.sum(1), R, eps)


# ------------------------------------------------------------------ what a layer absorbs (docs/theory.md §1-2)
def epsilon_share(a, W, b, R, eps):
    """``(n,)`` what LRP-epsilon leaves with the bias and the stabiliser of one dense layer.

    The inputs receive ``sum_j R_j = sum_k R_k (sum_j a_j w_jk) / stab(z_k)``, so the layer keeps
    ``sum_k R_k (1 - (z_k - b_k) / stab(z_k))``. Under LRP-0 (``eps = 0``) a unit with ``z_k = 0`` passes
    nothing (``0 / 0 := 0``) and keeps all of ``R_k``.
    """
    za = a @ W.T
    z = za + b
    if eps == 0:
        passed = np.where(z == 0, 0.0, za / np.where(z == 0, 1.0, z))
    else:
        passed = za / stab(z, eps)
    return (R * (1.0 - passed)).sum(1)


def relu_chain(layers, x, target, rule, share):
    """Dense LRP through a chain of dense and ReLU layers whose explained output is a logit.

    ``layers`` is a list of ``(W, b)`` (a dense layer, ``W`` of shape ``(out, in)``) or ``None`` (a ReLU);
    ``rule(a, W, b, R) -> R_in`` and ``share(a, W, b, R) -> (n,)`` apply to every dense layer. The initial
    relevance is the logit of the target (docs/theory.md §1); ReLUs pass relevance unchanged (§2).
    Returns ``(R, f, shares)``: the input relevance, the explained logits ``(n,)`` and what each dense layer
    kept, ``(n,)`` per layer from the top down (computed from ``share``, not as a difference of sums).
    """
    acts = [np.asarray(x, dtype=np.float64)]
    for layer in layers:
        a = acts[-1]
        acts.append(np.maximum(a, 0.0) if layer is None else a @ layer[0].T + layer[1])
    n = len(x)
    f = acts[-1][np.arange(n), target]
    R = np.zeros_like(acts[-1])
    R[np.arange(n), target] = f
    shares = []
    for layer, a in zip(reversed(layers), reversed(acts[:-1])):
        if layer is None:
            continue
        W, b = layer
        shares.append(share(a, W, b, R))
        R = rule(a, W, b, R)
    return R, f, shares


# ------------------------------------------------------------------ the log-odds top (docs/theory.md §3)
def softmin(h):
    """``exp(-h_k) / sum_k' exp(-h_k')`` over the last axis (stiffness 1)."""
    e = np.exp(-(h - h.min(-1, keepdims=True)))
    return e / e.sum(-1, keepdims=True)


def contrast(W, b, c):
    """The difference layer of class ``c``: weights ``w_c - w_c'`` and biases ``b_c - b_c'`` for ``c' != c``."""
    others = [k for k in range(W.shape[0]) if k != c]
    return W[c][None] - W[others], b[c] - b[others]


def log_odds_top(a, W, b, target, rule):
    """Relevance through the log-odds top of a softmax layer with logits ``W a + b``, one sample at a time.

    For class ``c = target[n]``: ``h_c' = (w_c - w_c')^T a + (b_c - b_c')``, the explained value
    ``eta_c = -log sum_c' exp(-h_c')``, the soft-min shares ``R_c' = softmin(h)_c' eta_c`` and then
    ``rule(a, w_c - w_c', b_c - b_c', R_c')`` on the difference layer. Returns ``(R, eta, R_h)`` with
    ``R_h`` the ``(n, C - 1)`` relevance of the differences.
    """
    n = len(a)
    R = np.zeros_like(a, dtype=np.float64)
    eta = np.zeros(n)
    R_h = np.zeros((n, W.shape[0] - 1))
    for i in range(n):
        Wd, bd = contrast(W, b, int(target[i]))
        h = Wd @ a[i] + bd
        m = h.min()
        eta[i] = m - np.log(np.exp(-(h - m)).sum())
        R_h[i] = softmin(h) * eta[i]
        R[i] = rule(a[i:i + 1], Wd, bd, R_h[i][None])[0]
    return R, eta, R_h


# ------------------------------------------------------------------ pooling (docs/theory.md §2, "Other layers")
def average_pool_matrix(in_shape, kernel, stride, padding):
    """``(out, in)`` matrix of average pooling with zero padding counted in the divisor (``count_include_pad``).

    ``in_shape`` is ``(C, L)`` or ``(C, H, W)``; every window of ``kernel`` positions per axis weighs each of
    its in-bounds inputs ``1 / kernel^dims`` (the padded positions hold zeros and count in the divisor).
    """
    C, spatial = in_shape[0], tuple(in_shape[1:])
    out_sp = tuple((s + 2 * padding - kernel) // stride + 1 for s in spatial)
    size = kernel ** len(spatial)
    n_in, n_out = int(np.prod(in_shape)), C * int(np.prod(out_sp))
    M = np.zeros((n_out, n_in))
    for c in range(C):
        for o in np.ndindex(*out_sp):
            row = np.ravel_multi_index((c,) + o, (C,) + out_sp)
            for k in np.ndindex(*((kernel,) * len(spatial))):
                pos = tuple(oi * stride - padding + ki for oi, ki in zip(o, k))
                if all(0 <= p < s for p, s in zip(pos, spatial)):
                    M[row, np.ravel_multi_index((c,) + pos, in_shape)] += 1.0 / size
    return M


# ------------------------------------------------------------------ the distance rule (docs/theory.md §4)
def distance_rule(x, points, R, rtol=1e-10):
    """``R_i = sum_j (x_i - x_ji)^2 / ||x - x_j||^2 R_j``, one sample and one unit at a time.

    A unit whose squared distance is at most ``rtol (||x - m||^2 + ||x_j - m||^2)`` (``m`` the mean of the
    points: the coordinates the distances are computed in) has no feature differences to pass ``R_j`` to:
    it keeps it. Returns ``(R_in, kept)``, ``kept`` the ``(n,)`` relevance the units kept (absorbed).
    """
    m = points.mean(0)
    R_in = np.zeros_like(x, dtype=np.float64)
    kept = np.zeros(len(x))
    for n in range(len(x)):
        for j in range(len(points)):
            diff2 = (x[n] - points[j]) ** 2
            D = diff2.sum()
            if D <= rtol * (((x[n] - m) ** 2).sum() + ((points[j] - m) ** 2).sum()):
                kept[n] += R[n, j]
            else:
                R_in[n] += diff2 / D * R[n, j]
    return R_in, kept


# ------------------------------------------------------------------ what every node of a network absorbs
def _affine_map(module):
    """``(a, W, b) -> z`` with ``module``'s geometry (dense layers and convolutions with zero padding)."""
    F = torch.nn.functional
    if isinstance(module, torch.nn.Linear):
        return F.linear
    if isinstance(module, (torch.nn.Conv1d, torch.nn.Conv2d)) and module.padding_mode == "zeros":
        conv = F.conv1d if isinstance(module, torch.nn.Conv1d) else F.conv2d
        return lambda a, W, b: conv(a, W, b, module.stride, module.padding, module.dilation, module.groups)
    raise NotImplementedError(f"no bias-share formula for {type(module).__name__}")


def _ratio(num, den, eps):
    """``num / stab(den)``; without a stabiliser ``0 / 0 := 0`` (a unit of value zero passes nothing)."""
    if isinstance(eps, float) and eps == 0:
        return torch.where(den == 0, torch.zeros_like(num), num / torch.where(den == 0, 1.0, den))
    return num / (den + eps * torch.where(den >= 0, 1.0, -1.0).to(den.dtype))


def _per_sample(t):
    return t.reshape(len(t), -1).sum(1)


def _affine_share(rule, module, a, z, R):
    """``(n,)`` what an affine rule keeps: ``sum_k R_k (1 - S_k / stab(S_k + rho(b)_k))``, ``S_k`` the
    contributions of the inputs alone (docs/theory.md §2, the generic rule and "Biases")."""
    f = _affine_map(module)
    W, b = module.weight, module.bias
    b = torch.zeros(W.shape[0], dtype=W.dtype) if b is None else b
    shape = (1, -1) + (1,) * (z.dim() - 2)
    name = type(rule).__name__
    if name == "Epsilon":
        eps = rule.epsilon
        if rule.relative:
            eps = rule.epsilon * z.pow(2).reshape(len(z), -1).mean(1).sqrt().reshape((-1,) + (1,) * (z.dim() - 1))
        za = z - b.reshape(shape)
        return _per_sample(R * (1 - _ratio(za, z, eps)))
    if name == "Gamma":
        g = rule.gamma
        ap, an = a.clamp(min=0), a.clamp(max=0)
        w_up, w_dn = W + g * W.clamp(min=0), W + g * W.clamp(max=0)
        s_up = f(ap, w_up, None) + f(an, w_dn, None)
        s_dn = f(ap, w_dn, None) + f(an, w_up, None)
        d_up = s_up + (b + g * b.clamp(min=0)).reshape(shape)
        d_dn = s_dn + (b + g * b.clamp(max=0)).reshape(shape)
        keep = torch.where(z > 0, 1 - _ratio(s_up, d_up, rule.stabilizer),
                           torch.where(z < 0, 1 - _ratio(s_dn, d_dn, rule.stabilizer), torch.ones_like(z)))
        return _per_sample(R * keep)
    if name == "ZBox":
        low = torch.as_tensor(rule.low, dtype=a.dtype)
        high = torch.as_tensor(rule.high, dtype=a.dtype)
        if low.dim() == 1:
            low, high = (v.reshape((1, -1) + (1,) * (a.dim() - 2)).expand((1,) + a.shape[1:]) for v in (low, high))
        else:
            low, high = (v.expand((1,) + a.shape[1:]) for v in (low, high))
        den = f(a, W, None) - f(low, W.clamp(min=0), None) - f(high, W.clamp(max=0), None)
        return _per_sample(R * (1 - _ratio(den, den, rule.stabilizer)))
    if name == "ZPlus":
        s_up = f(a.clamp(min=0), W.clamp(min=0), None) + f(a.clamp(max=0), W.clamp(max=0), None)
        return _per_sample(R * (1 - _ratio(s_up, s_up + b.clamp(min=0).reshape(shape), rule.stabilizer)))
    if name == "AlphaBeta":
        s_up = f(a.clamp(min=0), W.clamp(min=0), None) + f(a.clamp(max=0), W.clamp(max=0), None)
        s_dn = f(a.clamp(min=0), W.clamp(max=0), None) + f(a.clamp(max=0), W.clamp(min=0), None)
        passed = (rule.alpha * _ratio(s_up, s_up + b.clamp(min=0).reshape(shape), rule.stabilizer)
                  - rule.beta * _ratio(s_dn, s_dn + b.clamp(max=0).reshape(shape), rule.stabilizer))
        return _per_sample(R * (1 - passed))
    if name in ("Flat", "WSquare"):
        ones = torch.ones((1,) + tuple(a.shape[1:]), dtype=a.dtype)
        w = torch.ones_like(W) if name == "Flat" else W * W
        s = f(ones, w, None)  # the receptive field's size / sum of w^2 (zero padding counts nothing)
        bias = 0.0 if name == "Flat" else (b * b).reshape(shape)
        return _per_sample(R * (1 - _ratio(s, s + bias, rule.stabilizer)))
    raise NotImplementedError(f"no bias-share formula for rule {name}")


def node_shares(network, rules, x, layers, target):
    """What every node's rule keeps, ``{node name: (n,)}``, from the formulas of docs/theory.md §2-3.

    ``layers`` is the relevance of every node's output (``Explanation.layers``, ``record=True``) and
    ``rules`` the rule of every node (``Explainer.rules_``). Each node's share is computed from its own
    formula (bias and stabiliser terms, soft-min shares), never as a difference of relevance sums, so
    that the total compares independently with ``Explanation.absorbed``. Supported: dense and convolutional
    layers under Epsilon, Gamma, z+, alpha-beta, z^B, Flat and w^2; the log-odds top under Epsilon;
    proportional sums and average pools; pass-through activations and winner-takes-all max pools (they keep
    nothing).
    """
    acts = network.activations(x)
    shares = {}
    for step in network.steps:
        rule = rules.get(step.name)
        if rule is None or step.name not in layers:
            continue
        R = layers[step.name]
        name = type(rule).__name__
        z = acts[step.name]
        ins = [acts[n.name] for n in step.inputs]
        module = step.module
        if name in ("Pass", "WinnerTakesAll"):
            shares[step.name] = torch.zeros(len(x), dtype=R.dtype)
        elif name == "Proportional" and not isinstance(module, (torch.nn.MaxPool1d, torch.nn.MaxPool2d)):
            shares[step.name] = _per_sample(R * (1 - _ratio(z, z, rule.stabilizer)))
        elif type(module).__name__ == "LogOdds" and name == "Epsilon" and not rule.relative:
            (a,) = ins
            W, b = module.linear.weight, module.linear.bias
            out = torch.zeros(len(x), dtype=R.dtype)
            for i in range(len(x)):
                c = int(target[i])
                keep = torch.arange(W.shape[0]) != c
                Wd, bd = W[c] - W[keep], b[c] - b[keep]
                h = Wd @ a[i] + bd
                R_h = torch.softmax(-h, 0) * R[i, c]
                out[i] = (R_h * (1 - _ratio(h - bd, h, rule.epsilon))).sum()
            shares[step.name] = out
        elif module is not None and hasattr(module, "weight") and len(ins) == 1:
            shares[step.name] = _affine_share(rule, module, ins[0], z, R)
        else:
            raise NotImplementedError(f"no bias-share formula for node {step.name} under {name}")
    return shares


# ------------------------------------------------------------------ the k-means midpoint rule (docs/theory.md §4)
def midpoint_rule(x, mu, R):
    """``R_i = sum_k (x_i - m_ck,i) w_ck,i / h_ck R_ck`` for every unit ``(c, k)``, ``k != c`` (``k`` ascending).

    ``w_ck = 2 (mu_c - mu_k)``, ``b_ck = ||mu_k||^2 - ||mu_c||^2``, ``h_ck = w_ck^T x + b_ck`` and the root
    point ``m_ck = (mu_c + mu_k) / 2``; ``R`` is ``(n, K, K - 1)``. A unit with ``h_ck = 0`` passes nothing.
    """
    n, K = len(x), len(mu)
    out = np.zeros_like(x, dtype=np.float64)
    for i in range(n):
        for c in range(K):
            for j, k in enumerate(k for k in range(K) if k != c):
                w = 2.0 * (mu[c] - mu[k])
                h = w @ x[i] + (mu[k] @ mu[k] - mu[c] @ mu[c])
                if h != 0:
                    out[i] += (x[i] - (mu[c] + mu[k]) / 2.0) * w / h * R[i, c, j]
    return out
