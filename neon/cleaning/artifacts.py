"""Find Clever-Hans strategies in a dataset: explain every sample, SpRAy each class, score the clusters.

``find_artifacts`` explains ``X`` class by class (the label ``y`` of each sample, or the model's prediction),
runs :class:`neon.spray.SpRAy` on the explanations of every class, and scores each cluster of explanations by
how much of its relevance sits on features the model hardly uses for the other classes (docs/theory.md §6).
A Clever-Hans artifact (a watermark, a tag, a marker column) is exactly that: evidence that one group of samples
is classified by and nothing else is. Clusters whose score reaches ``min_score`` are suspicious; their samples are
the report's ``flagged`` indices.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..explainer import Explainer
from ..explanation import Explanation
from ..spray import SpRAy, normalise, relevance_maps
from .report import ArtifactCluster, ArtifactReport

__all__ = ["find_artifacts", "novelty"]


def _length(X: Any) -> int:
    if hasattr(X, "shape"):
        return int(X.shape[0])
    return len(X)


def _positive_share(proto: np.ndarray) -> np.ndarray:
    """``max(p, 0)`` renormalised to sum one (zeros when nothing is positive)."""
    pos = np.maximum(proto, 0.0)
    total = pos.sum()
    return pos / total if total > 0 else pos


def novelty(shares: np.ndarray, rare_mask: np.ndarray) -> np.ndarray:
    """Per sample: the share of its positive relevance that falls on the ``rare_mask`` features.

    ``shares`` is ``(n, m)``; ``max(r, 0)`` of each row is renormalised to sum one (a row without positive
    relevance scores 0).
    """
    pos = np.maximum(shares, 0.0)
    total = pos.sum(1)
    on_rare = pos[:, rare_mask].sum(1)
    return np.divide(on_rare, total, out=np.zeros_like(total), where=total > 0)


def _feature_labels(map_shape: tuple[int, ...], names: list[str] | None) -> list[str]:
    m = int(np.prod(map_shape))
    if len(map_shape) == 1 and names is not None and len(names) == m:
        return [str(n) for n in names]
    if len(map_shape) == 1:
        return [f"x{i}" for i in range(m)]
    return [str(tuple(int(v) for v in np.unravel_index(i, map_shape))) for i in range(m)]


def _targets(explainer: Explainer, y: Any, n: int) -> np.ndarray | None:
    """``y`` as the model's target indices (class labels are looked up in the model's target names)."""
    if y is None:
        return None
    labels = np.asarray(y.detach().cpu().numpy() if hasattr(y, "detach") else
                        (y.to_numpy() if hasattr(y, "to_numpy") else y))
    if labels.ndim != 1 or len(labels) != n:
        raise ValueError(f"y must hold one label per sample of X ({n}); got shape {labels.shape}.")
    names = explainer.network_.target_names
    if names is not None:
        lookup = {name: i for i, name in enumerate(names)}
        try:
            if all(v in lookup for v in labels.tolist()):
                return np.array([lookup[v] for v in labels.tolist()], dtype=np.int64)
        except TypeError:  # unhashable labels
            pass
    if labels.dtype.kind in "iu" or (labels.dtype.kind == "f" and np.all(labels == np.round(labels))):
        idx = labels.astype(np.int64)
        n_targets = explainer.network_.n_targets or (len(names) if names is not None else None)
        if n_targets is None or (idx.min(initial=0) >= 0 and idx.max(initial=0) < n_targets):
            return idx
    known = f"the model's classes {list(names)}" if names is not None else "class indices"
    bad = sorted({str(v) for v in labels.tolist()} - {str(v) for v in (names or [])})[:5]
    raise ValueError(f"y holds labels that are not {known}: {bad}.")


def _class_indices(classes: Any, names: list[Any] | None, present: np.ndarray, source: str) -> list[int]:
    """The target indices of the ``classes`` asked for; a class without samples is an error."""
    if classes is None:
        return sorted(int(c) for c in np.unique(present))
    wanted = list(classes) if isinstance(classes, (list, tuple, np.ndarray)) else [classes]
    out = []
    for c in wanted:
        if names is not None and c in names:
            idx = names.index(c)
        elif isinstance(c, (int, np.integer)) and (names is None or 0 <= int(c) < len(names)):
            idx = int(c)
        else:
            raise ValueError(f"class {c!r} is not one of the model's classes {names}.")
        if not np.any(present == idx):
            label = names[idx] if names is not None else idx
            raise ValueError(f"class {label!r} has no samples in X ({source}); nothing to analyse for it.")
        out.append(idx)
    return out


def find_artifacts(model: Any, X: Any, y: Any = None, *, explainer: Explainer | None = None, classes: Any = None,
                   rules: Any = "epsilon", n_neighbors: int = 10, n_clusters: int | None = None, max_clusters: int = 10,
                   pool: Any = None, normalize: str | None = "l1", image_shape: Any = None,
                   feature_names: list[str] | None = None, score: str = "rare",
                   rare: float = 0.25, min_score: float = 0.2, random_state: int | None = 0) -> ArtifactReport:
    """Explain ``X`` class by class, run SpRAy on every class, and report suspicious clusters of explanations.

    Parameters
    ----------
    model
        Any model neon explains (a classifier, a k-means clustering, a PyTorch network ...). Not modified.
    X
        The data to clean, ``(n, ...)``: numpy, torch or pandas. Not modified.
    y
        The labels of ``X`` (class labels or target indices): each sample is explained for its label and analysed
        with its class. ``None``: the model's prediction (predicted class, assigned cluster).
    explainer
        A :class:`neon.Explainer` to explain with (fitted on ``X`` when it is not fitted yet); ``None`` for
        ``Explainer(model, rules=rules)`` fitted on ``X``.
    classes
        The classes to analyse (labels or indices); ``None`` for every class present in ``X``. A class asked for
        without samples is a ``ValueError``; of the classes found by default, those with at most ``n_neighbors``
        samples are skipped (``report.skipped`` says why).
    rules
        Rules of the default explainer (ignored when ``explainer`` is given). Default ``"epsilon"``: LRP-epsilon on
        every affine layer, the model's own rules on the others (the NEON layers of k-means, kernel models). SpRAy
        compares *where* relevance lies, and LRP-epsilon gives an absent input (a black pixel) none
        (``R_i`` proportional to ``x_i`` at the first layer), so a localised artifact stands out; the z^B input rule
        of neon's image presets spreads relevance over the empty background and hides it. ``None``: the model's
        default rules.
    n_neighbors, n_clusters, max_clusters, pool, normalize
        :class:`neon.spray.SpRAy`'s parameters, the same for every class.
    image_shape
        ``(H, W)``: read tabular relevance ``(n, H * W)`` as images (a model on flattened pixels, e.g. an
        ``MLPClassifier`` on digits), so that ``pool`` applies and the report names pixels.
    feature_names
        Names of tabular features for the report, where neither ``X`` (a DataFrame) nor the model gives them.
    score
        Which features count as foreign to the model's normal strategies (docs/theory.md §6), with ``u_i`` the share
        of relevance the explanations of the *other* classes give feature ``i`` (``m`` features):

        - ``"rare"`` (default): ``u_i < rare / m``, features the other classes hardly use (less than ``rare`` times
          a uniform share). For images and other many-feature data, where classes rely on different features and an
          artifact sits where no class looks;
        - ``"lift"``: ``u_i < rare * p_i``, features this cluster gives more than ``1 / rare`` times the other
          classes' share (``p`` its mean positive relevance). For low-dimensional tabular data and clusterings,
          where every feature is used by every class (a k-means model uses an artifact column to tell *every*
          cluster from the artifact's cluster).
    rare
        The factor of ``score`` (default 0.25).
    min_score
        The rule that decides "suspicious": a cluster whose score, the median over its samples of the share of
        positive relevance on the foreign features, is at least ``min_score``.
    random_state
        Seed of SpRAy's eigensolver and k-means.

    Returns
    -------
    ArtifactReport
        ``clusters`` (most suspicious first), ``flagged`` (indices into ``X``), ``to_frame()``, ``plot()``,
        ``to_html(path)``, ``to_virelay(folder)``.

    Raises
    ------
    ValueError
        ``y`` of the wrong length or with unknown labels; a class in ``classes`` without samples; explanations of
        a class that SpRAy cannot analyse (fewer samples than ``n_neighbors + 1``, for a class asked for).
    """
    n = _length(X)
    if n == 0:
        raise ValueError("X is empty: there is nothing to analyse.")
    if not 0 < rare <= 1:
        raise ValueError(f"rare={rare!r}; use a number in (0, 1].")
    if score not in ("rare", "lift"):
        raise ValueError(f"score={score!r}; use 'rare' or 'lift'.")
    if explainer is None:
        explainer = Explainer(model, rules=rules)
    if not hasattr(explainer, "network_"):
        explainer.fit(X)
    targets = _targets(explainer, y, n)
    expl: Explanation = explainer.explain(X, target=targets)
    explained = np.asarray(expl.target.detach().cpu().numpy() if hasattr(expl.target, "detach") else expl.target,
                           dtype=np.int64)
    names = expl.target_names
    source = "by y" if y is not None else "by the model's predictions"
    asked = classes is not None
    chosen = _class_indices(classes, names, explained, source)

    maps = relevance_maps(expl)
    if image_shape is not None:
        shape = tuple(int(v) for v in image_shape)
        if int(np.prod(shape)) != int(np.prod(maps.shape[1:])):
            raise ValueError(f"image_shape={shape} does not hold the {int(np.prod(maps.shape[1:]))} relevance values "
                             "of a sample.")
        maps = maps.reshape((n,) + shape)
    map_shape = tuple(maps.shape[1:])
    shares = normalise(maps, "l1").reshape(n, -1)
    labels = _feature_labels(map_shape, expl.feature_names or feature_names)
    m = shares.shape[1]

    clusters: list[ArtifactCluster] = []
    sprays: dict[Any, SpRAy] = {}
    skipped: dict[Any, str] = {}
    for c in chosen:
        label = names[c] if names is not None else c
        label = label.item() if isinstance(label, np.generic) else label
        rows = np.flatnonzero(explained == c)
        if len(rows) <= n_neighbors:
            reason = (f"{len(rows)} samples: SpRAy needs more than n_neighbors={n_neighbors}")
            if asked:
                raise ValueError(f"class {label!r} has {reason}; lower n_neighbors or leave the class out.")
            skipped[label] = reason
            continue
        spray = SpRAy(n_clusters=n_clusters, n_neighbors=n_neighbors, max_clusters=max_clusters, pool=pool,
                      normalize=normalize, random_state=random_state).fit(maps[rows])
        sprays[label] = spray
        others = explained != c
        # The reference of "what the model normally relies on": the other classes' explanations, or (one class
        # only) the class's own largest strategy.
        reference = shares[others] if others.any() else shares[rows[spray.labels_ == 0]]
        usage = np.abs(reference).mean(0)
        usage = usage / usage.sum() if usage.sum() > 0 else np.full(m, 1.0 / m)
        positive = [_positive_share(spray.prototypes_[k].reshape(-1)) for k in range(spray.n_clusters_)]
        masks = [usage < rare / m if score == "rare" else usage < rare * p for p in positive]
        scores = np.array([np.median(novelty(shares[rows[spray.labels_ == k]], masks[k]))
                           for k in range(spray.n_clusters_)])
        # The class's normal explanations: its clusters below the threshold (none: the whole class is suspect).
        normal = np.isin(spray.labels_, np.flatnonzero(scores < min_score))
        own = np.abs(shares[rows[normal]]).mean(0) if normal.any() else np.zeros(m)
        own = own / own.sum() if own.sum() > 0 else own
        main = spray.prototypes_[0].reshape(-1)
        for k in range(spray.n_clusters_):
            members = spray.labels_ == k
            proto = spray.prototypes_[k].reshape(-1)
            pos = positive[k]
            # The features it relies on: more than a uniform share of its positive relevance, and more than
            # 1 / rare times the share the other classes and the class's normal clusters give them.
            relied = np.flatnonzero((pos >= 1.0 / m) & (usage < rare * pos) & (own < rare * pos))
            relied = relied[np.argsort(-pos[relied], kind="stable")]
            denom = float(np.linalg.norm(proto) * np.linalg.norm(main))
            dissimilarity = 1.0 - float(proto @ main) / denom if denom > 0 else 0.0
            clusters.append(ArtifactCluster(
                label=label, target=int(c), cluster=k, size=int(members.sum()), indices=rows[members],
                score=float(scores[k]), dissimilarity=dissimilarity, suspicious=bool(scores[k] >= min_score),
                feature_index=relied, features=[labels[i] for i in relied], prototype=spray.prototypes_[k],
            ))
    clusters.sort(key=lambda r: (-r.score, str(r.label), r.cluster))
    flagged = np.unique(np.concatenate([r.indices for r in clusters if r.suspicious] or [np.zeros(0, np.int64)]))
    return ArtifactReport(
        clusters=clusters, flagged=flagged.astype(np.int64), spray=sprays, skipped=skipped, explanation=expl,
        min_score=min_score, rare=rare, map_shape=map_shape, feature_labels=labels, n_samples=n,
        by_labels=y is not None, score_rule=score,
    )
