"""Relevance mass and rank accuracy (Arras et al. 2022) against hand-computed cases and per-pixel loops."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import neon
from neon.metrics import POOLINGS, localization, pool_channels, relevance_mass_accuracy, relevance_rank_accuracy

# One image, two channels, 2 x 2 pixels; the mask is the diagonal.
R = np.array([[[[1.0, -2.0], [3.0, 0.5]],
               [[0.5, 1.0], [-1.0, 0.0]]]])
MASK = np.array([[[True, False], [False, True]]])


def test_mass_and_rank_by_hand() -> None:
    # Channel sums per pixel: [[1.5, -1], [2, 0.5]]; "sum,pos" keeps [[1.5, 0], [2, 0.5]] (total 4).
    assert relevance_mass_accuracy(R, MASK).scores.tolist() == [(1.5 + 0.5) / 4.0]
    # K = 2: the two most relevant pixels are (1, 0) = 2 (outside) and (0, 0) = 1.5 (inside).
    assert relevance_rank_accuracy(R, MASK).scores.tolist() == [0.5]
    # "l1-norm": [[1.5, 3], [4, 0.5]] (total 9), inside 2; top-2 are (1,0)=4 and (0,1)=3, both outside.
    assert relevance_mass_accuracy(R, MASK, pooling="l1-norm").scores[0] == pytest.approx(2.0 / 9.0)
    assert relevance_rank_accuracy(R, MASK, pooling="l1-norm").scores.tolist() == [0.0]
    # "max-norm": [[1, 2], [3, 0.5]] (total 6.5), inside 1.5.
    assert relevance_mass_accuracy(R, MASK, pooling="max-norm").scores[0] == pytest.approx(1.5 / 6.5)
    # "l2-norm,sq": [[1.25, 5], [10, 0.25]] (total 16.5), inside 1.5.
    assert relevance_mass_accuracy(R, MASK, pooling="l2-norm,sq").scores[0] == pytest.approx(1.5 / 16.5)
    # "sum,abs": [[1.5, 1], [2, 0.5]] (total 5), inside 2; top-2: (1,0)=2 out, (0,0)=1.5 in.
    assert relevance_mass_accuracy(R, MASK, pooling="sum,abs").scores[0] == pytest.approx(2.0 / 5.0)
    assert relevance_rank_accuracy(R, MASK, pooling="sum,abs").scores.tolist() == [0.5]


def test_pooling_equals_a_per_pixel_loop() -> None:
    rng = np.random.default_rng(0)
    r = rng.normal(size=(3, 4, 5, 6))
    funcs = {"sum,pos": lambda v: max(0.0, v.sum()), "sum,abs": lambda v: abs(v.sum()),
             "max-norm": lambda v: np.abs(v).max(), "l1-norm": lambda v: np.abs(v).sum(),
             "l2-norm": lambda v: np.sqrt((v ** 2).sum()), "l2-norm,sq": lambda v: (v ** 2).sum()}
    assert set(funcs) == set(POOLINGS)
    for name, f in funcs.items():
        ref = np.array([[[f(r[n, :, i, j]) for j in range(6)] for i in range(5)] for n in range(3)])
        np.testing.assert_allclose(pool_channels(r, name), ref, rtol=1e-12)


def test_rank_and_mass_against_a_direct_count() -> None:
    rng = np.random.default_rng(1)
    r = rng.normal(size=(8, 3, 7, 7))
    mask = rng.random((8, 7, 7)) < 0.2
    mask[:, 0, 0] = True
    pooled = np.maximum(r.sum(1), 0).reshape(8, -1)
    m = mask.reshape(8, -1)
    for n in range(8):
        k = m[n].sum()
        top = sorted(range(49), key=lambda i: (-pooled[n, i], i))[:k]
        assert relevance_rank_accuracy(r, mask).scores[n] == pytest.approx(m[n, top].sum() / k)
        assert relevance_mass_accuracy(r, mask).scores[n] == pytest.approx(pooled[n, m[n]].sum() / pooled[n].sum())


def test_mask_shapes_inputs_and_agreement_with_localization() -> None:
    rng = np.random.default_rng(2)
    r = rng.random((4, 1, 5, 5)) + 0.01  # positive and distinct: no ties, no negative relevance
    mask = rng.random((5, 5)) < 0.3
    mask[2, 2] = True
    shared = relevance_mass_accuracy(r, mask)
    per_sample = relevance_mass_accuracy(r, np.broadcast_to(mask, (4, 5, 5)))
    np.testing.assert_allclose(shared.scores, per_sample.scores)
    # One channel: the pooled map is the relevance, so both agree with neon.metrics.localization.
    loc = localization(r[:, 0], mask)
    np.testing.assert_allclose(shared.scores, loc.scores)
    np.testing.assert_allclose(relevance_rank_accuracy(r, mask).scores, loc.details["top_k"])
    # Relevance without a channel axis, as torch, as an Explanation.
    np.testing.assert_allclose(relevance_mass_accuracy(torch.as_tensor(r[:, 0]), mask).scores, loc.scores)
    expl = neon.Explanation(relevance=r, output=r.reshape(4, -1).sum(1), target=np.zeros(4, int),
                            absorbed=np.zeros(4))
    np.testing.assert_allclose(relevance_mass_accuracy(expl, mask).scores, shared.scores)
    assert shared.higher_is_better and shared.details["chance"][0] == pytest.approx(mask.mean())


def test_no_positive_relevance_scores_zero_and_r_is_not_modified() -> None:
    r = -np.ones((2, 3, 4, 4))
    r[1] = 0.0
    before = r.copy()
    mask = np.zeros((4, 4), bool)
    mask[0, 0] = True
    assert relevance_mass_accuracy(r, mask).scores.tolist() == [0.0, 0.0]
    # All pooled values tie at zero: the ranking falls back to pixel order, so pixel 0 (in the mask) is a hit.
    assert relevance_rank_accuracy(r, mask).scores.tolist() == [1.0, 1.0]
    np.testing.assert_array_equal(r, before)


@pytest.mark.parametrize("mask, pooling, match", [
    (np.ones((3, 3), bool), "sum,pos", "mask has shape"),
    (np.zeros((2, 2), bool), "sum,pos", "empty"),
    (np.full((2, 2), 2), "sum,pos", "boolean"),
    (np.ones((2, 2), bool), "mean", "pooling"),
])
def test_bad_inputs_say_what_is_needed(mask, pooling, match) -> None:
    with pytest.raises(ValueError, match=match):
        relevance_mass_accuracy(R, mask, pooling=pooling)
    with pytest.raises(ValueError, match=match):
        relevance_rank_accuracy(R, mask, pooling=pooling)
