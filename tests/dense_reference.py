"""Slow dense references for the LRP rules, written straight from docs/theory.md §2 (numpy, float64).

Every rule is evaluated with the explicit ``n x in x out`` contribution tensor ``Z[n, j, k]``:
``R_j = sum_k Z_jk / stab(sum_j Z_jk + bias_k) R_k``. Convolutions are turned into their dense
matrices first. Nothing here shares code with neon.
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
