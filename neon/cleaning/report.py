"""What :func:`neon.cleaning.find_artifacts` found: a table of clusters, the flagged samples, a page to look at."""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..explanation import Explanation
from ..spray import SpRAy

__all__ = ["ArtifactCluster", "ArtifactReport"]

#: Samples shown per suspicious cluster on the HTML page.
_GALLERY = 24


@dataclass(repr=False)
class ArtifactCluster:
    """One cluster of explanations of one class (a row of :attr:`ArtifactReport.clusters`).

    Attributes
    ----------
    label
        The class (its label, or its index when the model has no class names).
    target
        The class's output index in the model.
    cluster
        The cluster's number in the class's SpRAy (``0`` the largest: the class's main strategy).
    size
        How many samples it holds.
    indices
        Their indices into ``X``.
    score
        The suspicion score: the median over its samples of the share of positive relevance on features foreign
        to the other classes' explanations (``find_artifacts(score=...)``, docs/theory.md §6). In ``[0, 1]``.
    dissimilarity
        ``1 - cos(prototype, main prototype)``: how unlike the class's largest strategy its mean explanation is
        (``0`` for the main strategy itself). Reported, not used to flag.
    suspicious
        ``score >= min_score``.
    feature_index
        The features its mean explanation relies on and the model's normal strategies do not: more than a uniform
        share of its positive relevance, and more than ``1 / rare`` times the share the other classes and the
        class's unsuspicious clusters give them; most relevant first. Flat indices into a relevance map
        (channels summed for images).
    features
        The same as names (tabular) or ``"(row, col)"`` (images).
    prototype
        The mean normalised relevance map of the cluster.
    """

    label: Any
    target: int
    cluster: int
    size: int
    indices: np.ndarray
    score: float
    dissimilarity: float
    suspicious: bool
    feature_index: np.ndarray
    features: list[str]
    prototype: np.ndarray

    def __repr__(self) -> str:
        flag = "suspicious" if self.suspicious else "ok"
        feats = ", ".join(self.features[:5]) + (" ..." if len(self.features) > 5 else "")
        return (f"ArtifactCluster(class={self.label!r}, cluster={self.cluster}, size={self.size}, "
                f"score={self.score:.3f}, {flag}, features=[{feats}])")


@dataclass(repr=False)
class ArtifactReport:
    """The result of :func:`neon.cleaning.find_artifacts`.

    Attributes
    ----------
    clusters
        Every cluster of every analysed class, most suspicious first.
    flagged
        Sorted indices into ``X`` of the samples in suspicious clusters.
    spray
        The fitted :class:`~neon.spray.SpRAy` of every analysed class, by class label.
    skipped
        Classes not analysed, with the reason (too few samples).
    explanation
        The explanation of every sample of ``X`` (``explanation.data`` is ``X`` itself).
    min_score, rare, score_rule
        The rule used (``find_artifacts``'s ``min_score``, ``rare`` and ``score``).
    map_shape
        The per-sample shape of the relevance maps (channels summed for images).
    feature_labels
        A name per map feature.
    n_samples
        ``len(X)``.
    by_labels
        Whether samples were grouped by the given labels (else by the model's predictions).
    """

    clusters: list[ArtifactCluster]
    flagged: np.ndarray
    spray: dict[Any, SpRAy]
    skipped: dict[Any, str]
    explanation: Explanation
    min_score: float
    rare: float
    map_shape: tuple[int, ...]
    feature_labels: list[str]
    n_samples: int
    by_labels: bool = False
    score_rule: str = "rare"
    _extra: dict[str, Any] = field(default_factory=dict)

    @property
    def suspicious(self) -> list[ArtifactCluster]:
        """The suspicious clusters, most suspicious first."""
        return [c for c in self.clusters if c.suspicious]

    def rows(self) -> list[dict[str, Any]]:
        """The clusters as plain records (one dict per cluster, the columns of :meth:`to_frame`)."""
        return [{
            "class": c.label, "cluster": c.cluster, "size": c.size, "score": c.score,
            "dissimilarity": c.dissimilarity, "suspicious": c.suspicious, "features": list(c.features),
            "indices": c.indices.tolist(),
        } for c in self.clusters]

    def to_frame(self) -> Any:
        """The clusters as a pandas DataFrame, one row per cluster, most suspicious first."""
        try:
            import pandas as pd
        except ImportError:  # pragma: no cover - pandas is a test dependency
            raise ImportError("to_frame() needs pandas: pip install pandas (or use report.rows()).") from None
        return pd.DataFrame(self.rows(), columns=["class", "cluster", "size", "score", "dissimilarity",
                                                  "suspicious", "features", "indices"])

    def to_csv(self, path: str | Path) -> Path:
        """Write the cluster table as CSV (features and indices as ``;``-separated lists). Returns the path."""
        import csv

        path = Path(path)
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["class", "cluster", "size", "score", "dissimilarity", "suspicious", "features", "indices"])
            for r in self.rows():
                w.writerow([r["class"], r["cluster"], r["size"], f"{r['score']:.6g}", f"{r['dissimilarity']:.6g}",
                            r["suspicious"], ";".join(r["features"]), ";".join(str(i) for i in r["indices"])])
        return path

    # ------------------------------------------------------------------ pictures
    def classes_to_show(self, limit: int = 10) -> list[Any]:
        """Classes with a suspicious cluster first, then the others by their best score; at most ``limit``."""
        order: list[Any] = []
        for c in self.clusters:
            if c.label not in order and c.label in self.spray:
                order.append(c.label)
        return order[:limit]

    def plot(self, classes: Any = None, *, limit: int = 4) -> Any:
        """One row per class (spectrum, embedding, prototypes); by default the ``limit`` most suspicious classes.

        Returns the matplotlib Figure.
        """
        from ..plot.spray import spray_figure

        labels = self.classes_to_show(limit) if classes is None else list(classes)
        return spray_figure({c: self.spray[c] for c in labels}, scores=self._scores(),
                            feature_names=self.feature_labels if len(self.map_shape) == 1 else None)

    def _scores(self) -> dict[tuple[Any, int], tuple[float, bool]]:
        return {(c.label, c.cluster): (c.score, c.suspicious) for c in self.clusters}

    def to_html(self, path: str | Path, *, limit: int = 10) -> Path:
        """Write one self-contained HTML page (images embedded, nothing loaded from the network): the cluster
        table, the spectrum, embedding and prototypes of the ``limit`` most suspicious classes, and the flagged
        samples. Returns the path."""
        path = Path(path)
        path.write_text(self._html(limit), encoding="utf-8")
        return path

    def _html(self, limit: int) -> str:
        import matplotlib

        from ..plot.spray import flagged_gallery, spray_figure

        with matplotlib.rc_context({"figure.max_open_warning": 0}):
            parts = [_HEAD, "<h1>neon: artifact report</h1>", f"<p>{html.escape(self._summary())}</p>",
                     "<h2>Clusters</h2>", self._table_html()]
            for label in self.classes_to_show(limit):
                fig = spray_figure({label: self.spray[label]}, scores=self._scores(),
                                   feature_names=self.feature_labels if len(self.map_shape) == 1 else None)
                parts.append(f"<h2>Class {html.escape(str(label))}</h2>{_img(fig)}")
            for c in self.suspicious:
                fig = flagged_gallery(self.explanation, c.indices[:_GALLERY], map_shape=self.map_shape,
                                      feature_labels=self.feature_labels,
                                      title=f"class {c.label}, cluster {c.cluster}: {c.size} samples")
                if fig is not None:
                    parts.append(f"<h2>Flagged: class {html.escape(str(c.label))}, cluster {c.cluster}</h2>"
                                 f"<p>indices: {html.escape(_short(c.indices))}</p>{_img(fig)}")
            parts.append("</body></html>")
        return "\n".join(parts)

    def _summary(self) -> str:
        grouped = "labels" if self.by_labels else "the model's predictions"
        text = (f"{self.n_samples} samples grouped by {grouped}; {len(self.spray)} classes analysed with SpRAy, "
                f"{len(self.clusters)} clusters, {len(self.suspicious)} suspicious ({self.score_rule} score >= "
                f"{self.min_score:g}), "
                f"{len(self.flagged)} samples flagged.")
        if self.skipped:
            text += " Skipped: " + "; ".join(f"class {k}: {v}" for k, v in self.skipped.items()) + "."
        return text

    def _table_html(self) -> str:
        head = "".join(f"<th>{h}</th>" for h in ("class", "cluster", "size", "score", "dissimilarity",
                                                 "suspicious", "relies on"))
        body = []
        for c in self.clusters:
            cls = ' class="flag"' if c.suspicious else ""
            feats = ", ".join(c.features[:8]) + (" ..." if len(c.features) > 8 else "")
            body.append(f"<tr{cls}><td>{html.escape(str(c.label))}</td><td>{c.cluster}</td><td>{c.size}</td>"
                        f"<td>{c.score:.3f}</td><td>{c.dissimilarity:.3f}</td><td>{'yes' if c.suspicious else ''}"
                        f"</td><td>{html.escape(feats)}</td></tr>")
        return f"<table><tr>{head}</tr>{''.join(body)}</table>"

    def to_virelay(self, folder: str | Path, **kwargs: Any) -> Path:
        """Write ViRelAy's input files (a project YAML, HDF5 dataset, attributions and analysis, a label map) to
        ``folder`` (:func:`neon.cleaning.virelay.write_project`; needs h5py). Returns the project file's path."""
        from .virelay import write_project

        return write_project(self, folder, **kwargs)

    def __repr__(self) -> str:
        return f"ArtifactReport({self._summary()})"


def _short(indices: np.ndarray, limit: int = 40) -> str:
    shown = ", ".join(str(int(i)) for i in indices[:limit])
    return shown + (f", ... ({len(indices)} in all)" if len(indices) > limit else "")


def _img(fig: Any) -> str:
    """The figure as an embedded PNG (base64 data URI), closed afterwards."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=72)
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="figure" src="data:image/png;base64,{data}"/>'


_HEAD = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>neon artifact report</title>
<style>
body { font-family: sans-serif; margin: 2em; max-width: 1200px; }
table { border-collapse: collapse; margin: 1em 0; }
td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
td:last-child { text-align: left; }
tr.flag { background: #fde2e2; }
img { max-width: 100%; }
</style></head><body>"""
