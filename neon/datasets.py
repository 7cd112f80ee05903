"""Synthetic data with a known answer: scenes whose label depends on one object only.

:func:`make_scenes` draws small RGB images in the spirit of CLEVR-XAI (Arras, Osman & Samek,
"CLEVR-XAI: a benchmark dataset for the ground truth evaluation of neural network explanations",
Information Fusion 2022): a few flat objects (circles, squares, triangles in several colours and
sizes) on a textured background. Exactly one object is red, and the label is the shape of that
object; its pixels are the ground truth an explanation of the prediction should point at
(:func:`neon.metrics.relevance_mass_accuracy`, :func:`neon.metrics.relevance_rank_accuracy`,
docs/theory.md §5). Nothing is downloaded: scenes are drawn with numpy, vectorised over samples,
objects and pixels.
"""

from __future__ import annotations

import numpy as np

#: The labels of :func:`make_scenes`: the shape of the red object.
SCENE_CLASSES: tuple[str, ...] = ("circle", "square", "triangle")

#: Object colours (RGB in [0, 1]); the first is the deciding red, the others are distractors.
SCENE_COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.90, 0.12, 0.12),
    "green": (0.15, 0.72, 0.20),
    "blue": (0.18, 0.30, 0.90),
    "yellow": (0.92, 0.85, 0.15),
    "magenta": (0.78, 0.20, 0.82),
    "cyan": (0.15, 0.80, 0.85),
}

# Half-extent of every shape in units of its size r, so that objects never overlap when their
# centres are at least (EXTENT * (r_i + r_j) + GAP) apart.
_EXTENT = 1.3
_GAP = 2.0
_CHUNK = 256


def _place(rng: np.random.Generator, radii: np.ndarray, active: np.ndarray, size: int) -> np.ndarray:
    """Centres ``(n, k, 2)`` inside the image such that no two active objects overlap.

    Objects are placed one after the other, vectorised over scenes: an object that clashes with one
    placed before it is drawn again (a scene that fails too often starts over).
    """
    n, k = radii.shape
    margin = _EXTENT * radii + 1.0
    centres = np.zeros((n, k, 2))
    scenes = np.arange(n)
    for _ in range(100):
        failed = np.zeros(n, dtype=bool)
        for j in range(k):
            todo = scenes[active[scenes, j]]
            for _ in range(100):
                if not len(todo):
                    break
                m = margin[todo, j, None]
                centres[todo, j] = m + rng.random((len(todo), 2)) * (size - 1 - 2 * m)
                dist = np.sqrt(((centres[todo, :j] - centres[todo, j, None]) ** 2).sum(-1))
                need = _EXTENT * (radii[todo, :j] + radii[todo, j, None]) + _GAP
                todo = todo[(active[todo, :j] & (dist < need)).any(1)]
            failed[todo] = True
        scenes = np.flatnonzero(failed)
        if not len(scenes):
            return centres
    raise RuntimeError("could not place the objects without overlap; use fewer objects.")


def _shape_masks(shape: np.ndarray, centres: np.ndarray, radii: np.ndarray, size: int) -> np.ndarray:
    """Boolean pixel masks ``(n, k, size, size)`` of every object (0 circle, 1 square, 2 triangle).

    All three fit in a disc of radius ``1.3 r``: a disc of radius ``r`` (area ``pi r^2``), a square
    of half-side ``0.886 r`` (the disc's area) and an upright equilateral triangle inscribed in the
    circle of radius ``1.3 r`` (area ``2.2 r^2``).
    """
    grid = np.arange(size, dtype=np.float32)
    dx = grid[None, None, None, :] - centres[..., 0, None, None].astype(np.float32)
    dy = grid[None, None, :, None] - centres[..., 1, None, None].astype(np.float32)
    r = radii[..., None, None].astype(np.float32)
    s = shape[..., None, None]
    circle = dx * dx + dy * dy <= r * r
    square = np.maximum(np.abs(dx), np.abs(dy)) <= 0.886 * r
    rho = _EXTENT * r
    triangle = (dy <= 0.5 * rho) & (np.abs(dx) <= (dy + rho) / np.sqrt(3.0))
    return np.asarray(np.where(s == 0, circle, np.where(s == 1, square, triangle)), dtype=bool)


def _background(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """Grey textured backgrounds ``(n, 3, size, size)``: a level, a slight tint, waves and grain."""
    t = np.arange(size, dtype=np.float32) / size
    level = rng.uniform(0.35, 0.6, (n, 1, 1, 1)).astype(np.float32)
    tint = rng.uniform(-0.04, 0.04, (n, 3, 1, 1)).astype(np.float32)
    waves = np.zeros((n, 1, size, size), dtype=np.float32)
    for _ in range(3):
        # sin(a(x) + b(y)) = sin a cos b + cos a sin b: two outer products instead of size^2 sines.
        fx, fy = rng.uniform(1, 4, (2, n, 1)).astype(np.float32)
        phase = rng.uniform(0, 2 * np.pi, (n, 1)).astype(np.float32)
        a, b = 2 * np.pi * fx * t, 2 * np.pi * fy * t + phase
        waves[:, 0] += 0.035 * (np.cos(b)[:, :, None] * np.sin(a)[:, None, :]
                                + np.sin(b)[:, :, None] * np.cos(a)[:, None, :])
    grain = 0.03 * rng.standard_normal((n, 1, size, size), dtype=np.float32)
    return level + tint + waves + grain


def make_scenes(n_samples: int = 1000, *, size: int = 64, n_objects: tuple[int, int] = (3, 5),
                random_state: int | np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scenes of simple objects whose label is the shape of the only red object, with its mask.

    Every scene has ``n_objects`` objects (between the two bounds, inclusive) that do not overlap,
    drawn flat (a colour with a soft radial shading) on a grey textured background. One object is
    red; the others take the other colours of :data:`SCENE_COLOURS` and any shape, so that only the
    red object's shape decides the label (its class index in :data:`SCENE_CLASSES`: circle 0,
    square 1, triangle 2, balanced in expectation). Sizes are ``r ~ U(0.07, 0.12) * size`` pixels.

    The ground truth is the red object's pixel set: nothing else in the image carries information
    about the label (Arras, Osman & Samek, Information Fusion 2022 build their CLEVR-XAI masks the
    same way, from the objects a question refers to).

    Parameters
    ----------
    n_samples
        Number of scenes.
    size
        Height and width in pixels (at least 24).
    n_objects
        Smallest and largest number of objects per scene (the red one included), ``1 <= low <= high <= 6``.
    random_state
        Seed or generator; the same seed gives the same scenes.

    Returns
    -------
    X : ndarray of shape (n_samples, 3, size, size), float32 in [0, 1]
        The images, channels first (as PyTorch's ``Conv2d`` takes them).
    y : ndarray of shape (n_samples,), int64
        The label: the shape of the red object.
    masks : ndarray of shape (n_samples, size, size), bool
        The red object's pixels.
    """
    low, high = (int(v) for v in n_objects)
    if not 1 <= low <= high <= 6:
        raise ValueError(f"n_objects={n_objects!r}: use (low, high) with 1 <= low <= high <= 6.")
    if size < 24:
        raise ValueError(f"size={size}: scenes need at least 24 x 24 pixels to hold their objects.")
    if n_samples < 0:
        raise ValueError(f"n_samples must be >= 0, got {n_samples}.")
    rng = np.random.default_rng(random_state)
    n, k = int(n_samples), high
    count = rng.integers(low, high + 1, n)
    active = np.arange(k)[None, :] < count[:, None]
    shape = rng.integers(0, len(SCENE_CLASSES), (n, k))
    palette = np.asarray(list(SCENE_COLOURS.values()), dtype=np.float32)
    colour_id = rng.integers(1, len(palette), (n, k))
    red = (rng.random(n) * count).astype(np.int64)  # which of the active objects is red
    colour_id[np.arange(n), red] = 0
    colour = palette[colour_id] + rng.uniform(-0.06, 0.06, (n, k, 3)).astype(np.float32)
    radii = rng.uniform(0.07, 0.12, (n, k)) * size
    centres = _place(rng, radii, active, size)
    X = np.empty((n, 3, size, size), dtype=np.float32)
    masks = np.zeros((n, size, size), dtype=bool)
    grid = np.arange(size, dtype=np.float32)
    for start in range(0, n, _CHUNK):
        sl = slice(start, min(start + _CHUNK, n))
        rows = np.arange(sl.stop - sl.start)
        obj: np.ndarray = _shape_masks(shape[sl], centres[sl], radii[sl], size) & active[sl, :, None, None]
        # Objects never overlap: each pixel belongs to at most one object, found by argmax.
        owner = obj.argmax(1)
        covered = np.asarray(obj.any(1))
        cx = np.take_along_axis(centres[sl, :, 0], owner.reshape(len(rows), -1), 1).reshape(owner.shape)
        cy = np.take_along_axis(centres[sl, :, 1], owner.reshape(len(rows), -1), 1).reshape(owner.shape)
        rr = np.take_along_axis(radii[sl], owner.reshape(len(rows), -1), 1).reshape(owner.shape)
        dist = np.sqrt((grid[None, None, :] - cx) ** 2 + (grid[None, :, None] - cy) ** 2)
        shade = (1.0 - 0.2 * np.minimum(dist / (_EXTENT * rr), 1.0)).astype(np.float32)
        paint = colour[sl][rows[:, None, None], owner].transpose(0, 3, 1, 2) * shade[:, None]
        X[sl] = np.clip(np.where(covered[:, None], paint, _background(rng, len(rows), size)), 0.0, 1.0)
        masks[sl] = obj[rows, red[sl]]
    y = shape[np.arange(n), red].astype(np.int64)
    return X, y, masks


__all__ = ["SCENE_CLASSES", "SCENE_COLOURS", "make_scenes"]
