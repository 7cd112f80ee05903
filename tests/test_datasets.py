"""neon.datasets.make_scenes: deterministic scenes whose mask is exactly the object that decides the label.

The checks do not reuse the generator's geometry: objects are found again from the pixels (colour
saturation and connected components), the red object by its colour, and its shape from how much of
its bounding box it fills (square 1, disc pi/4, triangle 1/2).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from neon.datasets import SCENE_CLASSES, make_scenes


@pytest.fixture(scope="module")
def scenes():
    return make_scenes(300, random_state=7)


def red_pixels(X: np.ndarray) -> np.ndarray:
    """Pixels whose red channel exceeds both others by 0.3 (objects are flat colours; the background is grey)."""
    return X[:, 0] - np.maximum(X[:, 1], X[:, 2]) > 0.3


def test_same_seed_same_scenes_and_other_seeds_differ() -> None:
    a = make_scenes(20, random_state=3)
    b = make_scenes(20, random_state=3)
    c = make_scenes(20, random_state=4)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a[0], c[0])
    g1, g2 = np.random.default_rng(5), np.random.default_rng(5)
    np.testing.assert_array_equal(make_scenes(5, random_state=g1)[0], make_scenes(5, random_state=g2)[0])


def test_types_shapes_and_range(scenes) -> None:
    X, y, masks = scenes
    assert X.shape == (300, 3, 64, 64) and X.dtype == np.float32
    assert y.shape == (300,) and y.dtype == np.int64
    assert masks.shape == (300, 64, 64) and masks.dtype == bool
    assert X.min() >= 0.0 and X.max() <= 1.0
    assert set(np.unique(y)) == {0, 1, 2} and SCENE_CLASSES == ("circle", "square", "triangle")
    counts = np.bincount(y)
    assert counts.min() > 70  # balanced in expectation: 100 each


def test_the_mask_is_exactly_the_red_object(scenes) -> None:
    X, _, masks = scenes
    red = red_pixels(X)
    np.testing.assert_array_equal(red, masks)
    for m in masks[:50]:
        _, n_parts = ndimage.label(m)
        assert n_parts == 1  # one object, in one piece


def test_objects_do_not_touch_and_their_number_is_in_bounds(scenes) -> None:
    X = scenes[0]
    coloured = X.max(1) - X.min(1) > 0.25  # objects are saturated colours, the background is grey
    for obj in coloured[:100]:
        _, n = ndimage.label(obj)  # 4-connectivity: objects that touched would merge
        assert 3 <= n <= 5
    X2, _, _ = make_scenes(30, n_objects=(1, 1), random_state=0)
    assert all(ndimage.label(c)[1] == 1 for c in (X2.max(1) - X2.min(1) > 0.25))


def test_the_label_is_the_shape_of_the_red_object(scenes) -> None:
    _, y, masks = scenes
    fill = []
    for m in masks:
        rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
        box = (rows[-1] - rows[0] + 1) * (cols[-1] - cols[0] + 1)
        fill.append(m.sum() / box)
    fill = np.asarray(fill)
    shape = np.where(fill > 0.93, 1, np.where(fill > 0.65, 0, 2))  # square ~1, disc ~0.79, triangle ~0.5
    np.testing.assert_array_equal(shape, y)


def test_only_the_red_object_carries_the_label(scenes) -> None:
    """Distractors take every shape for every label: their shapes say nothing about the class."""
    X, y, masks = scenes
    coloured = X.max(1) - X.min(1) > 0.25
    distractor_share = [(coloured[i] & ~masks[i]).sum() / coloured[i].sum() for i in range(len(y))]
    per_class = [np.mean([d for d, c in zip(distractor_share, y) if c == k]) for k in range(3)]
    assert max(per_class) - min(per_class) < 0.1
    assert not red_pixels(np.where(masks[:, None], 0.5, X)).any()  # no red outside the mask


def test_other_sizes_and_bounds() -> None:
    X, y, masks = make_scenes(10, size=32, n_objects=(2, 3), random_state=1)
    assert X.shape == (10, 3, 32, 32) and masks.shape == (10, 32, 32)
    np.testing.assert_array_equal(red_pixels(X), masks)
    assert make_scenes(0)[0].shape == (0, 3, 64, 64)


@pytest.mark.parametrize("kwargs, match", [
    (dict(n_objects=(0, 2)), "n_objects"),
    (dict(n_objects=(4, 3)), "n_objects"),
    (dict(n_objects=(1, 7)), "n_objects"),
    (dict(size=16), "size"),
    (dict(n_samples=-1), "n_samples"),
])
def test_bad_arguments_say_what_is_supported(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        make_scenes(**{"n_samples": 2, **kwargs})
