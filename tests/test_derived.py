"""The cache of modified parameters: computed once, recomputed after an in-place change, freed with its source."""

import copy
import gc

import torch
from torch import nn

from neon.layers.derived import cached_sources, gamma_up, positive
from neon.rules import Gamma
from neon.rules.base import Context


def test_a_derived_tensor_is_computed_once_and_equals_its_formula() -> None:
    w = torch.randn(5, 3)
    first = gamma_up(w, 0.25)
    assert gamma_up(w, 0.25) is first
    torch.testing.assert_close(first, w + 0.25 * w.clamp(min=0), rtol=0, atol=0)
    other = gamma_up(w, 0.5)  # a different parameter is a different entry
    torch.testing.assert_close(other, w + 0.5 * w.clamp(min=0), rtol=0, atol=0)


def test_an_in_place_change_of_the_source_is_seen() -> None:
    w = torch.randn(4, 4)
    before = positive(w).clone()
    w.mul_(-1.0)
    after = positive(w)
    torch.testing.assert_close(after, w.clamp(min=0), rtol=0, atol=0)
    assert not torch.equal(before, after)


def test_the_entry_goes_with_its_source() -> None:
    w = torch.randn(3, 3)
    gamma_up(w, 0.25)
    key = id(w)
    assert key in cached_sources()
    del w
    gc.collect()
    assert key not in cached_sources()


def test_nothing_is_cached_for_a_source_inside_autograd() -> None:
    w = torch.randn(3, 3, requires_grad=True)
    out = positive(w)
    assert out.requires_grad and positive(w) is not out
    assert id(w) not in cached_sources()


def test_gamma_follows_a_weight_changed_between_two_calls() -> None:
    torch.manual_seed(0)
    layer = nn.Linear(6, 3).double().requires_grad_(False)
    a = torch.rand(2, 6, dtype=torch.float64)
    ctx = Context(target=torch.zeros(2, dtype=torch.long))

    def explain(lin):
        z = lin(a)
        return Gamma(0.25).relevance(lin, [a], z, z.clamp(min=0), ctx)[0]

    first = explain(layer)
    with torch.no_grad():
        layer.weight.copy_(torch.rand_like(layer.weight))  # positive weights: every output z > 0
    fresh = copy.deepcopy(layer)  # new tensors: nothing of them is cached
    assert bool((fresh(a) > 0).all())
    torch.testing.assert_close(explain(layer), explain(fresh), rtol=1e-12, atol=0)
    assert not torch.allclose(explain(layer), first)
