"""``neon clean MODEL DATA [--labels COLUMN_OR_FILE] -o report.html [-o clusters.csv]``: the artifact report from the
shell (:func:`neon.cleaning.find_artifacts`).

``add_clean(subparsers)`` registers the subcommand with :mod:`neon.cli` (one of its ``SUBCOMMANDS``);
``cmd_clean(args)`` runs it. The files follow ``neon explain``'s rules: inputs are never written, existing
outputs only with ``--overwrite``, and all outputs are written together at the end.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["add_clean", "cmd_clean", "read_labels"]

REPORT_FORMATS = (".html", ".csv")


def read_labels(spec: str, X: np.ndarray, names: list[str] | None, header: bool) -> tuple[np.ndarray, np.ndarray,
                                                                                          list[str] | None]:
    """``--labels``: a column of DATA (by its header name) or a file (``.csv``/``.txt`` with one value per row,
    ``.npy``). Returns ``(labels, X without a label column, names without it)``."""
    from ..cli import CLIError

    if names is not None and spec in names:
        j = names.index(spec)
        labels = X[:, j]
        X = np.delete(X, j, axis=1)
        names = names[:j] + names[j + 1:]
        return _integral(labels), X, names
    path = Path(spec)
    if not path.is_file():
        known = f"; DATA's columns are {names}" if names else ""
        raise CLIError(f"--labels '{spec}' is neither a column of DATA nor a file{known}.")
    if path.suffix.lower() == ".npy":
        try:
            labels = np.load(path, allow_pickle=False)
        except Exception as err:  # noqa: BLE001
            raise CLIError(f"cannot read labels file '{spec}': {err}") from err
    else:
        with open(path, newline="") as f:
            rows = [r for r in csv.reader(f) if r]
        if rows and len(rows[0]) != 1:
            raise CLIError(f"labels file '{spec}' must hold one value per row; its first row has {len(rows[0])}.")
        values = [r[0].strip() for r in rows]
        if header and values and len(values) == len(X) + 1:
            values = values[1:]  # a header row
        labels = np.array(values, dtype=object)
        try:
            labels = np.array([float(v) for v in values])
        except ValueError:
            labels = np.array(values)
    labels = np.asarray(labels).reshape(-1)
    if len(labels) != len(X):
        raise CLIError(f"--labels '{spec}' holds {len(labels)} labels for {len(X)} rows of DATA.")
    return _integral(labels), X, names


def _integral(labels: np.ndarray) -> np.ndarray:
    if labels.dtype.kind == "f" and np.all(np.isfinite(labels)) and np.all(labels == np.round(labels)):
        return labels.astype(np.int64)
    return labels


def cmd_clean(args: argparse.Namespace) -> int:
    """Run ``neon clean``: find the artifacts, write the report (HTML page and/or CSV table), print a summary."""
    import sys

    from ..cli import CLIError, Outputs, load_data, load_model, match_columns
    from ..converters import neuralize
    from ..explainer import Explainer
    from .artifacts import find_artifacts

    inputs = {"MODEL": args.model, "DATA": args.data}
    if args.labels and Path(args.labels).is_file():
        inputs["--labels"] = args.labels
    outputs = Outputs(inputs, args.overwrite)
    targets = []
    for out in args.output or []:
        path = outputs.claim(out, "--output")
        if path.suffix.lower() not in REPORT_FORMATS:
            raise CLIError(f"unsupported report format '{path.suffix}' of '{out}'; use .html (the page) or .csv "
                           "(the cluster table).")
        targets.append(path)
    if not targets:
        raise CLIError("give -o report.html (and/or -o clusters.csv): where to write the report.")
    model = load_model(args.model)
    notes: list[str] = []
    X, names = load_data(args.data, not args.no_header, notes)
    if X.ndim < 2:
        raise CLIError(f"DATA must hold one sample per row; got an array of shape {X.shape}.")
    labels = None
    if args.labels:
        labels, X, names = read_labels(args.labels, X, names, not args.no_header)
    network = neuralize(model)
    if X.ndim == 2:
        X, names, _ = match_columns(X, names, model, network)
    image_shape = _shape(args.image_shape) if args.image_shape else None
    pool = _shape(args.pool) if args.pool else None
    explainer = Explainer(network, rules=args.rules)
    report = find_artifacts(model, X, labels, explainer=explainer, n_neighbors=args.n_neighbors, pool=pool,
                            image_shape=image_shape, feature_names=names, score=args.score,
                            min_score=args.min_score)

    def write_html(tmp: Path) -> None:
        report.to_html(tmp)

    def write_csv(tmp: Path) -> None:
        report.to_csv(tmp)

    outputs.write([(path, write_html if path.suffix.lower() == ".html" else write_csv) for path in targets])
    if not args.quiet:
        for note in notes:
            print(f"neon: note: {note}", file=sys.stderr)
        print(report._summary())
        for c in report.suspicious[:10]:
            feats = ", ".join(c.features[:6]) + (" ..." if len(c.features) > 6 else "")
            print(f"  class {c.label}, cluster {c.cluster}: {c.size} samples, score {c.score:.3f}, relies on {feats}")
        print("written: " + ", ".join(str(p) for p in targets))
    return 0


def _shape(text: str) -> Any:
    from ..cli import CLIError

    try:
        values = tuple(int(v) for v in text.replace("x", ",").split(",") if v.strip())
    except ValueError:
        raise CLIError(f"'{text}' is not a shape; write e.g. 8,8.") from None
    if not values or any(v < 1 for v in values):
        raise CLIError(f"'{text}' is not a shape; write e.g. 8,8.")
    return values[0] if len(values) == 1 else values


def add_clean(sub: Any) -> None:
    """``neon clean``: register the subcommand on :mod:`neon.cli`'s subparsers."""
    from ..cli import SECURITY_NOTE

    cl = sub.add_parser(
        "clean", help="find Clever-Hans artifacts in a labelled data file (SpRAy on the explanations)",
        epilog=SECURITY_NOTE,
        description="Explain every row of DATA for its label (or the model's prediction), group the explanations "
                    "of every class with SpRAy, and report the clusters whose relevance sits on features the model "
                    "hardly uses for the other classes (neon.cleaning.find_artifacts; docs/cleaning.md). -o "
                    "FILE.html writes one self-contained page (spectra, embeddings, prototypes, flagged samples), "
                    "-o FILE.csv the cluster table. Existing files are replaced only with --overwrite.")
    cl.add_argument("model", metavar="MODEL", help="joblib/pickle file of a fitted model, or a PyTorch module saved "
                                                   "whole (.pt); loading it runs code from it")
    cl.add_argument("data", metavar="DATA", help="data file: .csv (first row: the header), .npy or .parquet")
    cl.add_argument("--labels", metavar="COLUMN_OR_FILE",
                    help="the labels: a column of DATA (it is not a feature then) or a .csv/.txt/.npy file with one "
                         "label per row; default: the model's predictions")
    cl.add_argument("--output", "-o", metavar="FILE", action="append",
                    help="report file: .html (the page) or .csv (the cluster table); may be given twice")
    cl.add_argument("--rules", help="rule preset for the explanations (e.g. epsilon); default: the model's own")
    cl.add_argument("--score", choices=["rare", "lift"], default="rare",
                    help="what counts as foreign relevance: 'rare' (features the other classes hardly use; images) "
                         "or 'lift' (features the cluster uses 4x more than the other classes; tabular data)")
    cl.add_argument("--min-score", type=float, default=0.2, help="a cluster is suspicious from this score on "
                                                                 "(default 0.2)")
    cl.add_argument("--n-neighbors", type=int, default=10, help="neighbours in SpRAy's graph (default 10)")
    cl.add_argument("--pool", metavar="H,W", help="average-pool image relevance to this size before comparing")
    cl.add_argument("--image-shape", metavar="H,W", help="read each row of tabular DATA as an image of this shape")
    cl.add_argument("--overwrite", action="store_true", help="replace existing output files")
    cl.add_argument("--no-header", action="store_true", help="the .csv files have no header row")
    cl.add_argument("--quiet", "-q", action="store_true", help="no summary")
    cl.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    cl.set_defaults(func=cmd_clean)
