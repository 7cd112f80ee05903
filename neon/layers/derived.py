"""Derived parameters (``w+``, ``w + g w+``, channels-last copies, ...) computed once per weight tensor.

For layer and rule authors: a rule that runs a layer with modified weights ``rho(W)`` asks
:func:`derived` for them instead of recomputing them on every call.

The affine rules run every layer with modified weights ``rho(W)``. Recomputing ``rho(W)`` on each call
costs two passes over every weight tensor (about 20 ms per call for ResNet-50 on two cores); explaining
many batches with one explainer needs it only once. The cache holds a derived tensor while its source
tensor is alive and unchanged: an entry disappears with its source (a weak reference), and an in-place
change of the source (its version counter moves) makes the next call recompute it. Nothing is written
to the source tensors themselves.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable, Hashable

import torch
from torch import Tensor

_CACHE: dict[tuple[int, Hashable], tuple[weakref.ref, int, Tensor]] = {}


def derived(source: Tensor, key: Hashable, make: Callable[[], Tensor]) -> Tensor:
    """``make()``, a function of ``source`` alone identified by ``key``, computed once per ``source``.

    Inside autograd (``torch.is_grad_enabled()`` with a source that requires grad) nothing is cached,
    so that no graph is ever kept alive by the cache; neither is anything derived from an inference tensor.
    """
    if source.is_inference() or (source.requires_grad and torch.is_grad_enabled()):
        return make()  # inference tensors have no version counter to validate an entry with
    k = (id(source), key)
    hit = _CACHE.get(k)
    if hit is not None and hit[0]() is source and hit[1] == source._version:
        return hit[2]
    value = make()
    _CACHE[k] = (weakref.ref(source, functools.partial(_drop, _CACHE, k)), source._version, value)
    return value


def _drop(cache: dict, key: Hashable, ref: weakref.ref) -> None:
    # The cache is bound when the entry is made: at interpreter exit the module global may already be None
    # when the last sources are collected. An entry made since for a new tensor with the same id stays.
    entry = cache.get(key)
    if entry is not None and entry[0] is ref:
        del cache[key]


def cached_sources() -> set[int]:
    """``id`` of every source tensor that has at least one cached derived tensor (for inspection and tests)."""
    return {k[0] for k in _CACHE}


def positive(t: Tensor) -> Tensor:
    """``t+ = max(t, 0)``, cached."""
    return derived(t, "+", lambda: t.clamp(min=0))


def negative(t: Tensor) -> Tensor:
    """``t- = min(t, 0)``, cached."""
    return derived(t, "-", lambda: t.clamp(max=0))


def gamma_up(t: Tensor, gamma: float) -> Tensor:
    """``t + gamma t+`` (the generalized Gamma rule's parameters for positive outputs), cached."""
    return derived(t, ("gamma+", gamma), lambda: torch.add(t, t.clamp(min=0), alpha=gamma))


def gamma_down(t: Tensor, gamma: float) -> Tensor:
    """``t + gamma t-`` (the generalized Gamma rule's parameters for negative outputs), cached."""
    return derived(t, ("gamma-", gamma), lambda: torch.add(t, t.clamp(max=0), alpha=gamma))
