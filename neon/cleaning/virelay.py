"""Export an :class:`~neon.cleaning.ArtifactReport` as a ViRelAy project (the SpRAy web viewer of CoRelAy/zennit).

ViRelAy (``pip install virelay``) reads a project YAML file that names four files, all written here with h5py
(``pip install neon-xai[virelay]``), in the layouts of ViRelAy's ``virelay.model`` and CoRelAy's example scripts:

- ``label-map.json``: ``[{"index", "word_net_id", "name"}]``, one entry per class (``word_net_id`` is the class
  index written with 8 digits, the category name of the analysis file);
- ``dataset.h5``: ``data`` (the samples, ``(n, C, H, W)``; tabular rows as ``(n, 1, 1, d)`` images) and ``label``;
- ``attribution.h5``: ``attribution`` (the relevance, same layout), ``prediction`` (the explained output in the
  explained class's column) and ``label``;
- ``analysis.h5``: per analysed class a group with ``index`` (the samples), ``embedding/spectral`` (SpRAy's spectral
  embedding, the Laplacian's eigenvalues in its ``eigenvalue`` attribute), ``embedding/spray-2d`` (the 2-D
  embedding of the plots) and ``cluster/spray`` (the SpRAy labels, attribute ``k``).

Then ``python -m virelay project.yaml`` serves it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["write_project"]


def _images(a: np.ndarray) -> np.ndarray:
    """``(n, C, H, W)`` from images ``(n, C, H, W)``, ``(n, H, W)`` or tabular rows ``(n, d)``."""
    if a.ndim == 4:
        return a
    if a.ndim == 3:
        return a[:, None]
    if a.ndim == 2:
        return a[:, None, None, :]
    raise ValueError(f"ViRelAy shows images; cannot lay out samples of shape {a.shape[1:]}.")


def _np(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    if hasattr(x, "to_numpy"):
        return x.to_numpy()
    return np.asarray(x)


def write_project(report: Any, folder: str | Path, *, name: str = "neon artifact analysis",
                  model: str = "model") -> Path:
    """Write ViRelAy's input files for ``report`` to ``folder`` (created if missing). Returns the project YAML's path.

    Raises ``ImportError`` without h5py, ``ValueError`` when the report holds no data to show.
    """
    try:
        import h5py
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("to_virelay() writes HDF5 files with h5py: pip install h5py (or neon-xai[virelay]).") \
            from None
    expl = report.explanation
    if expl.data is None:
        raise ValueError("the report's explanation holds no data (explanation.data); ViRelAy shows the samples.")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    data = _images(np.asarray(_np(expl.data), dtype=np.float32))
    relevance = _images(np.asarray(_np(expl.relevance), dtype=np.float32).reshape(_np(expl.data).shape))
    target = np.asarray(_np(expl.target), dtype=np.int64)
    output = np.asarray(_np(expl.output), dtype=np.float32)
    names = expl.target_names
    n_classes = len(names) if names is not None else int(target.max(initial=0)) + 1

    labels = [{"index": i, "word_net_id": f"{i:08d}", "name": str(names[i]) if names is not None else str(i)}
              for i in range(n_classes)]
    (folder / "label-map.json").write_text(json.dumps(labels, indent=1), encoding="utf-8")
    with h5py.File(folder / "dataset.h5", "w") as f:
        f["data"] = data
        f["label"] = target
    prediction = np.zeros((len(target), n_classes), dtype=np.float32)
    prediction[np.arange(len(target)), target] = output
    with h5py.File(folder / "attribution.h5", "w") as f:
        f["attribution"] = relevance
        f["prediction"] = prediction
        f["label"] = target
    targets = {c.label: c.target for c in report.clusters}
    with h5py.File(folder / "analysis.h5", "w") as f:
        for label, spray in report.spray.items():
            rows = np.flatnonzero(target == targets[label])
            group = f.require_group(f"{targets[label]:08d}")
            group["index"] = rows.astype(np.uint32)
            emb = group.require_group("embedding")
            emb["spectral"] = spray.spectral_embedding_.astype(np.float32)
            emb["spectral"].attrs["eigenvalue"] = spray.eigenvalues_[: spray.spectral_embedding_.shape[1]].astype(
                np.float32)
            emb["spray-2d"] = spray.embedding_.astype(np.float32)
            emb["spray-2d"].attrs["embedding"] = "spectral"
            emb["spray-2d"].attrs["index"] = np.array([1, 2])
            clu = group.require_group("cluster")
            clu["spray"] = spray.labels_.astype(np.int64)
            clu["spray"].attrs["embedding"] = "spectral"
            clu["spray"].attrs["k"] = int(spray.n_clusters_)
            clu["spray"].attrs["index"] = np.arange(spray.spectral_embedding_.shape[1], dtype=np.uint32)
    strategy = "true_label" if report.by_labels else "predicted_label"
    project = folder / "project.yaml"
    project.write_text(
        "project:\n"
        f"  name: {json.dumps(name)}\n"
        f"  model: {json.dumps(model)}\n"
        "  label_map: label-map.json\n"
        "  dataset:\n"
        "    name: dataset\n"
        "    type: hdf5\n"
        "    path: dataset.h5\n"
        "  attributions:\n"
        f"    attribution_method: {json.dumps(expl.rules or 'lrp')}\n"
        f"    attribution_strategy: {strategy}\n"
        "    sources:\n"
        "      - attribution.h5\n"
        "  analyses:\n"
        "    - analysis_method: spectral_analysis\n"
        "      sources:\n"
        "        - analysis.h5\n",
        encoding="utf-8",
    )
    return project
