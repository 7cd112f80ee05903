"""Data cleaning with explanations: Clever-Hans strategies, corrupted records, and their remedies.

- :func:`find_artifacts`: explain a dataset class by class, group the explanations of every class with
  :class:`neon.spray.SpRAy`, and flag the clusters whose relevance sits on features the model uses for nothing
  else (an :class:`ArtifactReport`: a table, the flagged samples, an HTML page, ViRelAy files);
- :func:`mask_features`, :func:`drop_samples`: remove the artifact from the flagged samples, or the samples;
- :func:`find_outlier_cells`: the cells that make tabular records anomalous, from the NEON explanation of a
  one-class SVM, a KDE (leave-one-out score for in-sample records) or a k-means distance (:class:`OutlierCells`).

The formulas and the rule that decides "suspicious": ``docs/theory.md`` §6; a walk-through: ``docs/cleaning.md``.
"""

from .artifacts import find_artifacts
from .outliers import OutlierCells, find_outlier_cells
from .remedies import drop_samples, mask_features
from .report import ArtifactCluster, ArtifactReport

__all__ = [
    "ArtifactCluster",
    "ArtifactReport",
    "OutlierCells",
    "drop_samples",
    "find_artifacts",
    "find_outlier_cells",
    "mask_features",
]
