"""The ``neon`` command line: explain a saved model on a data file, or inspect its network.

``neon explain MODEL DATA [--target LABEL | --target-index I] [--rules R] [--reference REF] [-o FILE] [--plot IMG]``
    MODEL is a joblib/pickle file of a fitted scikit-learn estimator or pipeline (or a PyTorch
    module saved whole with ``torch.save``, as ``.pt``/``.pth``); DATA a ``.csv`` (its first row is the
    header, unless ``--no-header``), ``.npy`` or ``.parquet`` file. ``-o`` writes the relevance table
    (``.csv``/``.parquet``: columns ``target``, ``output``, ``absorbed``, then the features in the order of
    DATA) or the relevance array (``.npy``, any shape, with the per-row columns beside it in
    ``<name>.targets.csv``); a summary goes to standard output.
``neon inspect MODEL [--rules R] [--data DATA] [--input-shape 3,32,32]``
    Prints the neuralized network layer by layer: node, kind, operation, output shape, rule
    (with ``--data``, the rules' data-dependent parameters fitted on DATA).

Files are never overwritten by surprise: an output that is an input, or that exists (without
``--overwrite``), or that could not be written, is refused before any work, and the outputs are
written together at the end (each to a temporary file first), so a failed run writes nothing.
Errors print one line to standard error and exit with status 1 (``--debug`` shows the traceback).

A subcommand is one ``add_<name>(subparsers)`` function that registers its parser and sets
``func``; :func:`build_parser` calls each of them.
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
import os
import pickle
import re
import shutil
import sys
import tempfile
import textwrap
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DATA_FORMATS = (".csv", ".npy", ".parquet")
#: Columns of the relevance table written before the features (their names get NEON_PREFIX if a feature has one).
TABLE_COLUMNS = ("target", "output", "absorbed")
NEON_PREFIX = "neon_"
#: The .npy relevance array gets its per-row columns (target, output, absorbed) in this sidecar file.
SIDECAR_SUFFIX = ".targets.csv"
#: ``absorbed`` is shown beside the output when it is more than this share of it (as in neon.plot).
ABSORBED_SHARE = 0.01
#: Image relevance in a plot: the first this many samples (a grid of every sample would be unreadable).
MAX_PLOTTED_IMAGES = 16

SECURITY_NOTE = (
    "Security: MODEL is read with joblib/pickle (and torch.load(weights_only=False) for .pt/.pth). Loading such "
    "a file runs code stored in it: load only files you trust, as scikit-learn's and joblib's documentation say."
)


class CLIError(Exception):
    """A problem with the user's files or options: reported as one line, without traceback."""


# ---------------------------------------------------------------------- reading files
def load_model(path: str) -> Any:
    """Unpickle a model saved with ``joblib.dump``, ``pickle.dump`` or ``torch.save`` (runs code from the file)."""
    p = Path(path)
    if not p.is_file():
        raise CLIError(f"model file '{path}' not found.")
    if p.suffix.lower() in (".pt", ".pth"):
        import torch

        try:
            # A whole pickled module (torch.save(model, f)), so full unpickling is needed, as with joblib.
            model = torch.load(p, weights_only=False, map_location="cpu")
        except Exception as err:  # noqa: BLE001
            raise CLIError(f"cannot read model file '{path}' (torch.save of a whole nn.Module expected): "
                           f"{type(err).__name__}: {err}") from err
        return _not_weights_only(model, path)
    try:
        import joblib

        return _not_weights_only(joblib.load(p), path)
    except ImportError:  # pragma: no cover - joblib ships with scikit-learn
        pass
    except Exception as err:  # noqa: BLE001 - any unpickling failure means an unreadable file
        # joblib cannot read some plain pickles (protocol quirks); try pickle before giving up.
        try:
            with open(p, "rb") as f:
                return _not_weights_only(pickle.load(f), path)
        except CLIError:
            raise
        except Exception:  # noqa: BLE001
            raise CLIError(f"cannot read model file '{path}' (is it a joblib/pickle file of a fitted model?): "
                           f"{type(err).__name__}: {err}") from err
    with open(p, "rb") as f:  # pragma: no cover
        return _not_weights_only(pickle.load(f), path)


def _not_weights_only(obj: Any, path: str) -> Any:
    """Refuse a file of weights (a state_dict, a checkpoint holding one) or a compiled model, saying what to do."""
    if type(obj).__name__ == "OptimizedModule" and hasattr(obj, "_orig_mod"):
        raise CLIError(f"model file '{path}' holds a torch.compile'd model; save the original module instead: "
                       "torch.save(model._orig_mod, path) (it computes the same function).")
    if isinstance(obj, Mapping) and obj:
        import torch

        if all(isinstance(v, torch.Tensor) for v in obj.values()):
            raise CLIError(f"model file '{path}' holds a state_dict ({len(obj)} tensors: the weights, not the model). "
                           "Save the whole model with torch.save(model, path), or build the model in Python, "
                           "load the weights with model.load_state_dict(...) and use neon.explain.")
        inner = [k for k in ("state_dict", "model_state_dict") if isinstance(obj.get(k), Mapping)]
        if inner:
            raise CLIError(f"model file '{path}' is a checkpoint holding a state_dict (key '{inner[0]}'), not a model. "
                           "Save the whole model with torch.save(model, path), or build the model in Python, "
                           "load the weights with model.load_state_dict(...) and use neon.explain.")
    return obj


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _numeric_header_note(path: Path, names: list[str]) -> str | None:
    """A note for a header row of numbers (it is still the header: the first row always is)."""
    if all(_is_number(n) for n in names) and names != [str(i) for i in range(len(names))]:
        return (f"the first row of '{path}' ({', '.join(names[:3])}{', ...' if len(names) > 3 else ''}) was read as "
                "the header (column names), as always; give --no-header if it is data.")
    return None


def _check_header(path: Path, names: list[str], first_column: Any) -> None:
    """Refuse a header that cannot name features: a saved index column, unnamed or repeated columns."""
    if names and (names[0] == "" or re.fullmatch(r"Unnamed: 0", names[0])):
        values = np.asarray(first_column)
        counted = len(values) and np.array_equal(values, np.arange(len(values)))
        raise CLIError(f"data file '{path}' starts with an unnamed column"
                       + (f" holding 0..{len(values) - 1}" if counted else "")
                       + ": it is the index pandas writes by default. Drop the index column "
                         "(save with index=False, e.g. df.to_csv(path, index=False)).")
    if "__index_level_0__" in names:  # where pandas' to_parquet keeps an index that is not 0..n-1
        raise CLIError(f"data file '{path}' holds a saved index column '__index_level_0__'. Drop the index column "
                       "(save with index=False, e.g. df.to_parquet(path, index=False)).")
    unnamed = [i + 1 for i, n in enumerate(names) if not n]
    if unnamed:
        raise CLIError(f"data file '{path}': column(s) {unnamed} have no name in the header row "
                       "(use --no-header for a file without a header).")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise CLIError(f"data file '{path}': column names repeat in the header row: {repeated}.")


def _read_csv(path: Path, header: bool, notes: list[str]) -> tuple[np.ndarray, list[str] | None]:
    """A numeric CSV file; its first row is the header (feature names) unless ``header`` is false."""
    with open(path, newline="") as f:
        first = next((r for r in csv.reader(f) if r), None)
    if first is None:
        raise CLIError(f"data file '{path}' is empty.")
    names = [c.strip() for c in first] if header else None
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpy warns on a header-only file; it is reported below
            X = np.loadtxt(path, delimiter=",", skiprows=int(header), ndmin=2, dtype=np.float64)
    except ValueError as err:
        where = "below its header" if header else "(with --no-header, the first row is data too)"
        raise CLIError(f"data file '{path}' must hold numbers {where}, with equal-length rows: "
                       f"{err}".rstrip(".") + ".") from err
    if names is not None:
        if len(X) and X.shape[1] != len(names):
            raise CLIError(f"data file '{path}' has {len(names)} column names but {X.shape[1]} values per row.")
        _check_header(path, names, X[:, 0] if len(X) else [])
        note = _numeric_header_note(path, names)
        if note:
            notes.append(note)
    if len(X) == 0:
        raise CLIError(f"data file '{path}' has no rows of data.")
    return X, names


def _pyarrow(action: str) -> Any:
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise CLIError(f"{action} Parquet files needs pyarrow: pip install pyarrow (or use .csv / .npy).") from None
    return pyarrow


def load_data(path: str, header: bool = True, notes: list[str] | None = None) -> tuple[np.ndarray, list[str] | None]:
    """Read DATA: ``(X, feature names or None)``; remarks for the user (a numeric header) go to ``notes``."""
    notes = [] if notes is None else notes
    p = Path(path)
    if not p.is_file():
        raise CLIError(f"data file '{path}' not found.")
    suffix = p.suffix.lower()
    if suffix == ".csv":
        return _read_csv(p, header, notes)
    if suffix == ".npy":
        try:
            X = np.load(p, allow_pickle=False)
        except Exception as err:  # noqa: BLE001
            raise CLIError(f"cannot read data file '{path}': {err}") from err
        if X.dtype.kind not in "biuf":
            raise CLIError(f"data file '{path}' must hold numbers; got dtype {X.dtype}.")
        return X, None
    if suffix == ".parquet":
        pa = _pyarrow("reading")
        try:
            table = pa.parquet.read_table(p)
        except Exception as err:  # noqa: BLE001
            raise CLIError(f"cannot read data file '{path}': {err}") from err
        names = [str(n) for n in table.column_names]
        if "__index_level_0__" in names:
            _check_header(p, names, [])
        bad = [f.name for f in table.schema if not (pa.types.is_integer(f.type) or pa.types.is_floating(f.type)
                                                     or pa.types.is_boolean(f.type))]
        if bad:
            raise CLIError(f"data file '{path}' has non-numeric columns {bad}.")
        X = np.column_stack([table.column(i).to_numpy().astype(np.float64) for i in range(table.num_columns)])
        X = X.reshape(table.num_rows, -1)
        _check_header(p, names, X[:, 0] if X.size else [])
        return X, names
    hint = " (a scipy sparse matrix? convert it with .toarray() and save it with np.save)" if suffix == ".npz" else ""
    raise CLIError(f"unsupported data format '{p.suffix}' of '{path}'; use one of {', '.join(DATA_FORMATS)}{hint}.")


def _some(names: list[str], k: int = 4) -> str:
    """A list for a one-line message: ``['a', 'b', 'c', 'd', ... (30 in all)]``."""
    return str(names) if len(names) <= k else str(names[:k])[:-1] + f", ... ({len(names)} in all)]"


def _expected_names(model: Any) -> list[str] | None:
    names = getattr(model, "feature_names_in_", None)
    return None if names is None else [str(n) for n in names]


def match_columns(X: np.ndarray, names: list[str] | None, model: Any,
                  network: Any) -> tuple[np.ndarray, list[str] | None, np.ndarray | None]:
    """Check DATA against the model's features; columns named in a header are matched by name.

    Returns ``(X in the model's column order, names in DATA's order, order)``: ``order[j]`` is the DATA
    column of the model's feature ``j`` (``None`` when both orders agree).
    """
    expected = _expected_names(model) or getattr(network, "feature_names", None)
    order = None
    if names is not None and expected is not None and names != expected:
        missing = [n for n in expected if n not in names]
        extra = [n for n in names if n not in expected]
        if missing or extra:
            hint = " (was the first row data? give --no-header)" if all(_is_number(n) for n in names) else ""
            raise CLIError(f"DATA columns do not match the model's features: missing {_some(missing)}, unexpected "
                           f"{_some(extra)}{hint}.")
        order = np.array([names.index(n) for n in expected])
        X = X[:, order]
    shape = getattr(network, "input_shape", None)
    if shape is not None and tuple(X.shape[1:]) != tuple(shape):
        raise CLIError(f"DATA has {X.shape[1] if X.ndim == 2 else X.shape[1:]} features per row, but the model "
                       f"expects {shape[0] if len(shape) == 1 else shape}.")
    return X, names or expected, order


# ---------------------------------------------------------------------- output files
class Outputs:
    """The files a command writes: every path checked before the work, all written together at the end.

    :meth:`claim` refuses an output that is one of the command's inputs (compared as resolved paths and
    as files), another output, a folder, a file in a missing or read-only folder, or an existing file
    unless ``overwrite``. :meth:`write` writes every output to a temporary file in its folder and moves
    them into place only when all have been written: a failure leaves no output behind.
    """

    def __init__(self, inputs: Mapping[str, str | None], overwrite: bool):
        self.inputs = {label: Path(p) for label, p in inputs.items() if p}
        self.overwrite = overwrite
        self.claimed: dict[str, Path] = {}

    @staticmethod
    def _same(a: Path, b: Path) -> bool:
        if a.resolve() == b.resolve():
            return True
        try:
            return a.exists() and b.exists() and os.path.samefile(a, b)
        except OSError:
            return False

    def claim(self, path: str, option: str) -> Path:
        """Check that ``path`` (given with ``option``) can be written; returns it as a Path."""
        p = Path(path)
        for label, source in self.inputs.items():
            if self._same(p, source):
                raise CLIError(f"{option} '{path}' is the {label} file: neon never writes over its input; "
                               "choose another file name.")
        for other, q in self.claimed.items():
            if self._same(p, q):
                raise CLIError(f"{option} '{path}' is also the {other} file; choose two different names.")
        if p.is_dir():
            raise CLIError(f"{option} '{path}' is a folder; give a file name.")
        folder = p.parent
        if not folder.is_dir():
            raise CLIError(f"output folder '{folder}' of {option} '{path}' does not exist.")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise CLIError(f"cannot write to the folder '{folder}' of {option} '{path}'.")
        if p.exists() and not self.overwrite:
            raise CLIError(f"{option} '{path}' exists; give --overwrite to replace it.")
        self.claimed[option] = p
        return p

    def write(self, writers: Sequence[tuple[Path, Callable[[Path], None]]]) -> None:
        """Run ``writer(temporary path)`` for every output, then move all of them into place."""
        done: list[tuple[Path, Path]] = []
        try:
            for path, writer in writers:
                fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
                os.close(fd)
                done.append((Path(name), path))
                writer(Path(name))
            for tmp, path in done:
                if path.exists() and not self.overwrite:  # appeared while neon was working
                    raise CLIError(f"'{path}' was created while neon was working; nothing was written "
                                   "(give --overwrite to replace it).")
                _copy_mode(path, tmp)
            for tmp, path in done:
                os.replace(tmp, path)
        except BaseException:
            for tmp, _ in done:
                tmp.unlink(missing_ok=True)
            raise


def _copy_mode(final: Path, tmp: Path) -> None:
    """Give the temporary file the permissions a plain ``open(final, "w")`` would (mkstemp makes it private)."""
    if final.exists():
        shutil.copymode(final, tmp)
        return
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)


def _plot_formats() -> dict[str, str]:
    from matplotlib.backend_bases import FigureCanvasBase

    return FigureCanvasBase.get_supported_filetypes()


# ---------------------------------------------------------------------- the relevance table
def _python(value: Any) -> Any:
    """numpy scalars as Python values (a table cell, a message: ``3``, not ``np.int64(3)``)."""
    return value.item() if isinstance(value, np.generic) else value


def table_columns(feature_names: Sequence[str]) -> list[str]:
    """``target, output, absorbed`` then the features; the first three get ``neon_`` when a feature has their name."""
    meta = list(TABLE_COLUMNS)
    if set(meta) & set(feature_names):
        meta = [NEON_PREFIX + c for c in meta]
    return meta + list(feature_names)


def _write_csv_table(path: Path, columns: list[str], labels: list[Any], numbers: np.ndarray) -> None:
    buf = io.StringIO()
    np.savetxt(buf, numbers, delimiter=",", fmt="%.17g")  # round-trips float64 exactly
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(columns)
        for label, line in zip(labels, buf.getvalue().splitlines()):
            writer.writerow([label, *line.split(",")])


def _write_parquet_table(path: Path, columns: list[str], labels: list[Any], numbers: np.ndarray) -> None:
    pa = _pyarrow("writing")
    data = {columns[0]: pa.array(labels)}
    data.update({c: numbers[:, i] for i, c in enumerate(columns[1:])})
    pa.parquet.write_table(pa.table(data), str(path))


def _write_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as f:  # a file object: np.save would append .npy to the temporary name
        np.save(f, array)


def sidecar_path(path: Path) -> Path:
    """``relevance.npy`` -> ``relevance.targets.csv``: the per-row columns of a ``.npy`` relevance array."""
    return path.with_name(path.stem + SIDECAR_SUFFIX)


# ---------------------------------------------------------------------- explain
def _parse_target(args: argparse.Namespace, network: Any) -> int | None:
    """The explained output index: ``--target`` is a class label (an index where outputs have no names)."""
    if args.target_index is not None:
        n = network.n_targets
        if n is not None and not 0 <= args.target_index < n:
            raise CLIError(f"--target-index {args.target_index} is out of range: the model has {n} outputs "
                           f"(0..{n - 1}).")
        return args.target_index
    if args.target is None:
        return None
    names = network.target_names
    if names is not None:
        for i, name in enumerate(names):
            if str(name) == args.target:
                return i
        noun = _noun(network.output_kind)
        shown = ", ".join(repr(n) if isinstance(n, str) else str(_python(n)) for n in names)
        raise CLIError(f"--target {args.target!r} is not one of the model's {noun} labels: {shown}. "
                       "Give an output index with --target-index.")
    try:
        return int(args.target)
    except ValueError:
        raise CLIError(f"--target {args.target!r}: this model's outputs have no labels; give the output index "
                       "(--target-index 2).") from None


def _noun(kind: str) -> str:
    return "cluster" if "cluster" in kind else "class" if kind in ("log-odds", "logit") else "output"


def _parse_reference(text: str, header: bool, model: Any, network: Any, X: np.ndarray) -> tuple[Any, str]:
    """``--reference``: ``auto`` / ``none`` / ``mean`` / a data file of one row: (``reference=`` value, description)."""
    word = text.lower()
    if word == "auto":
        default = network.default_reference
        return "auto", ("mean of DATA (the default for linear models)" if default is not None else "none")
    if word == "none":
        return None, "none (the raw output)"
    if word == "mean":
        return "mean", "mean of DATA"
    ref, names = load_data(text, header)
    if names is not None:
        ref, _, _ = match_columns(ref, names, model, network)
    if ref.shape == X.shape[1:]:
        ref = ref[None]
    if len(ref) != 1 or ref.shape[1:] != X.shape[1:]:
        raise CLIError(f"--reference '{text}' must hold one sample shaped like a row of DATA {X.shape[1:]}; "
                       f"got {ref.shape}.")
    return ref[0], f"the sample in {text}"


def _progress(total: int, enabled: bool) -> Any:
    """A tqdm bar on standard error when it is a terminal, else a silent stand-in."""
    if enabled and sys.stderr.isatty():
        try:
            from tqdm import tqdm

            return tqdm(total=total, unit="rows", desc="explaining", file=sys.stderr)
        except ImportError:
            pass

    class _Silent:
        def update(self, n: int) -> None:
            pass

        def close(self) -> None:
            pass

    return _Silent()


def _claim_outputs(args: argparse.Namespace) -> tuple[Outputs, Path | None, Path | None]:
    """Check ``-o`` and ``--plot`` (and the ``.npy`` sidecar) before anything is loaded."""
    reference_file = None if args.reference.lower() in ("auto", "none", "mean") else args.reference
    outputs = Outputs({"MODEL": args.model, "DATA": args.data, "--reference": reference_file}, args.overwrite)
    out = plot = None
    if args.output:
        out = outputs.claim(args.output, "--output")
        suffix = out.suffix.lower()
        if suffix not in DATA_FORMATS:
            raise CLIError(f"unsupported output format '{out.suffix}' of '{args.output}'; use one of "
                           f"{', '.join(DATA_FORMATS)}.")
        if suffix == ".npy":
            outputs.claim(str(sidecar_path(out)), "--output's sidecar")
        if suffix == ".parquet":
            _pyarrow("writing")
    if args.plot:
        plot = outputs.claim(args.plot, "--plot")
        formats = _plot_formats()
        if plot.suffix.lower().lstrip(".") not in formats:
            raise CLIError(f"cannot save a plot as '{plot.suffix or args.plot}'; use one of "
                           f"{', '.join('.' + f for f in sorted(formats))}.")
    return outputs, out, plot


def cmd_explain(args: argparse.Namespace) -> int:
    from .converters import neuralize
    from .explainer import Explainer
    from .explanation import Explanation

    if args.batch_size < 1:
        raise CLIError(f"--batch-size {args.batch_size}: give a positive number of rows.")
    if args.fit_rows < 1:
        raise CLIError(f"--fit-rows {args.fit_rows}: give a positive number of rows.")
    outputs, out, plot = _claim_outputs(args)
    if args.dask and plot is not None:
        raise CLIError("--plot draws every explanation at once; with --dask the relevance is streamed to -o: "
                       "plot a sample of the rows separately.")
    notes: list[str] = []
    model = load_model(args.model)
    table_out = out is None or out.suffix.lower() in (".csv", ".parquet")
    if args.dask or (plot is None and table_out and Path(args.data).suffix.lower() in (".csv", ".parquet")):
        return _explain_streamed(args, outputs, out, model)
    X, names = load_data(args.data, not args.no_header, notes)
    if X.ndim < 2:
        raise CLIError(f"DATA must hold one sample per row; got an array of shape {X.shape}.")
    if out is not None and out.suffix.lower() != ".npy" and X.ndim != 2:
        raise CLIError(f"relevance of per-sample shape {X.shape[1:]} can only be written as .npy "
                       "(with its per-row columns in a .targets.csv beside it).")
    network = neuralize(model, **({"output": args.model_output} if args.model_output else {}))
    X, names, order = match_columns(X, names, model, network)
    reference, reference_text = _parse_reference(args.reference, not args.no_header, model, network, X)
    target = _parse_target(args, network)
    if not args.quiet:
        for note in notes:
            print(f"neon: note: {note}", file=sys.stderr)
    # Fitted on all of DATA, as neon.explain(model, DATA) is: the same result, chunk by chunk.
    explainer = Explainer(network, rules=args.rules, reference=reference, progress=False).fit(X)
    # Explaining in chunks gives the same result as one call (batch independence) and lets the bar move.
    n, chunk = len(X), args.batch_size
    bar = _progress(n, not args.quiet and n > chunk)  # a bar only when there is progress to show
    parts = []
    try:
        for start in range(0, n, chunk):
            parts.append(explainer.explain(X[start:start + chunk], target=target))
            bar.update(min(chunk, n - start))
    finally:
        bar.close()
    relevance = np.concatenate([np.asarray(p.relevance) for p in parts])
    if order is not None:  # back to the column order of DATA
        in_data_order = np.empty_like(relevance)
        in_data_order[:, order] = relevance
        relevance = in_data_order
        X = X[:, np.argsort(order)]
    first = parts[0]
    expl = Explanation(
        relevance=relevance, output=np.concatenate([np.asarray(p.output) for p in parts]),
        target=np.concatenate([np.asarray(p.target) for p in parts]),
        absorbed=np.concatenate([np.asarray(p.absorbed) for p in parts]), data=X,
        feature_names=names, target_names=first.target_names, output_kind=first.output_kind, rules=first.rules,
    )
    writers: list[tuple[Path, Callable[[Path], None]]] = []
    written: list[str] = []
    if out is not None:
        writers += _relevance_writers(out, expl, written)
    if plot is not None:
        writers.append((plot, lambda tmp: _save_plot(tmp, plot, expl)))
        shown = f"the first {MAX_PLOTTED_IMAGES} of {n} samples" if X.ndim > 2 and n > MAX_PLOTTED_IMAGES else ""
        written.append(f"plot{' of ' + shown if shown else ''} written to {plot}")
    outputs.write(writers)
    if not args.quiet:
        _summary(expl, explainer.network_, args, reference_text, written)
    return 0


def _open_chunks(args: argparse.Namespace) -> Any:
    from ._streaming import CsvChunks, ParquetChunks

    p = Path(args.data)
    if not p.is_file():
        raise CLIError(f"data file '{args.data}' not found.")
    suffix = p.suffix.lower()
    try:
        if suffix == ".csv":
            return CsvChunks(p, not args.no_header)
        if suffix == ".parquet":
            _pyarrow("reading")
            return ParquetChunks(p)
    except (OSError, ValueError) as err:
        raise CLIError(f"cannot read data file '{args.data}': {err}") from err
    raise CLIError(f"--dask reads .csv or .parquet data, not '{p.suffix}'.")


def _dask_blocks(args: argparse.Namespace, explainer: Any, model_columns: list[str] | None, target: Any) -> Any:
    """Explain DATA on a Dask cluster (``--dask ADDRESS``, or ``local``) and yield each block's results in order."""
    try:
        import dask.dataframe as dd
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise CLIError("--dask needs dask and distributed: pip install 'neon-xai[dask]'.") from None
    path = Path(args.data)
    frame = dd.read_parquet(str(path)) if path.suffix.lower() == ".parquet" else \
        dd.read_csv(str(path), header=None if args.no_header else 0)
    if args.no_header:
        frame.columns = [f"x{i}" for i in range(len(frame.columns))]
    if model_columns is not None:
        frame = frame[model_columns]
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None, silence_logs=logging.ERROR) \
        if args.dask == "local" else None
    with Client(cluster if cluster is not None else args.dask) as client:
        expl = explainer.explain(frame.to_dask_array(lengths=True).astype("float64"), target=target)
        fields = ("relevance", "output", "target", "absorbed")
        futures = [client.compute([getattr(expl, f).blocks[i] for f in fields])
                   for i in range(expl.relevance.numblocks[0])]  # all blocks at once: every worker busy
        for block in futures:  # ...and written here in order
            yield client.gather(block)
            for future in block:
                future.release()
    if cluster is not None:
        cluster.close()


def _explain_streamed(args: argparse.Namespace, outputs: Outputs, out: Path | None, model: Any) -> int:
    """``neon explain`` chunk by chunk: read, explain and write ``--batch-size`` rows at a time (or on Dask).

    Data-dependent rule parameters and the ``mean`` reference come from the first ``--fit-rows`` rows.
    """
    from ._streaming import TableWriter, Totals
    from .converters import neuralize
    from .explainer import Explainer

    reader = _open_chunks(args)
    names = reader.names
    if names is not None and "__index_level_0__" in names:
        _check_header(Path(args.data), names, [])  # a saved (string) index column: say so before reading numbers
    try:
        fit_rows = np.concatenate(list(reader.chunks(args.batch_size, limit=args.fit_rows)) or [np.zeros((0, 0))])
    except ValueError as err:
        raise CLIError(str(err)) from err
    if len(fit_rows) == 0:
        raise CLIError(f"data file '{args.data}' has no rows of data.")
    if names is not None:
        _check_header(Path(args.data), names, fit_rows[:, 0])
        note = _numeric_header_note(Path(args.data), names) if Path(args.data).suffix.lower() == ".csv" else None
        if note and not args.quiet:
            print(f"neon: note: {note}", file=sys.stderr)
    network = neuralize(model, **({"output": args.model_output} if args.model_output else {}))
    X_fit, names, order = match_columns(fit_rows, names, model, network)
    reference, reference_text = _parse_reference(args.reference, not args.no_header, model, network, X_fit)
    target = _parse_target(args, network)
    explainer = Explainer(network, rules=args.rules, reference=reference, progress=False,
                          batch_size=args.batch_size).fit(X_fit)
    feature_names = names or [f"x{i}" for i in range(X_fit.shape[1])]
    columns = table_columns(feature_names)
    totals = Totals()
    model_columns = None if order is None or reader.names is None else [reader.names[i] for i in order]

    def explain_all(tmp: Path | None) -> None:
        writer = None if tmp is None else TableWriter(tmp, columns, cast(Path, out).suffix.lower())
        bar = _progress(reader.rows or 0, not args.quiet and (reader.rows or 2 * args.batch_size) > args.batch_size)
        try:
            if args.dask:
                blocks = _dask_blocks(args, explainer, model_columns, target)
            else:
                blocks = ((relevance, expl.output, expl.target, expl.absorbed)
                          for X in reader.chunks(args.batch_size)
                          for expl in [explainer.explain(X if order is None else X[:, order], target=target)]
                          for relevance in [np.asarray(expl.relevance)])
            for relevance, output, targets, absorbed in blocks:
                relevance = np.asarray(relevance, dtype=np.float64)
                if order is not None:  # back to the column order of DATA
                    in_data_order = np.empty_like(relevance)
                    in_data_order[:, order] = relevance
                    relevance = in_data_order
                output, absorbed = np.asarray(output, dtype=np.float64), np.asarray(absorbed, dtype=np.float64)
                totals.add(output, absorbed, relevance)
                if writer is not None:
                    labels = _labels(network, np.asarray(targets))
                    writer.write(labels, np.column_stack([output, absorbed, relevance]))
                bar.update(len(relevance))
        finally:
            bar.close()
            if writer is not None:
                writer.close()

    written: list[str] = []
    if out is not None:
        outputs.write([(out, explain_all)])
    else:
        explain_all(None)
    if out is not None:
        written.append(f"relevance table written to {out}: {totals.n} rows, columns {', '.join(columns[:3])} and "
                       f"{len(feature_names)} features (streamed in chunks of {args.batch_size} rows"
                       + (", explained on Dask" if args.dask else "") + ")")
    if not args.quiet:
        _print_summary(totals, feature_names, explainer.network_, args, reference_text, written)
    return 0


def _labels(network: Any, targets: np.ndarray) -> list[Any]:
    names = network.target_names
    return [_python(names[int(t)]) if names is not None else int(t) for t in targets]


def _relevance_writers(out: Path, expl: Any, written: list[str]) -> list[tuple[Path, Callable[[Path], None]]]:
    """The writers of ``-o`` (the table, or the array and its sidecar), and what each writes for the summary."""
    relevance = np.asarray(expl.relevance)
    labels = [_python(t) for t in expl.target_labels]
    per_row = np.column_stack([expl.output, expl.absorbed]).astype(np.float64)
    if out.suffix.lower() == ".npy":
        side = sidecar_path(out)
        written.append(f"relevance {relevance.shape} ({relevance.dtype}) written to {out}; target, output and "
                       f"absorbed of every row to {side}")
        return [(out, lambda tmp: _write_npy(tmp, relevance)),
                (side, lambda tmp: _write_csv_table(tmp, list(TABLE_COLUMNS), labels, per_row))]
    names = expl.feature_names or [f"x{i}" for i in range(relevance.shape[1])]
    columns = table_columns(names)
    numbers = np.column_stack([per_row, relevance.astype(np.float64)])
    written.append(f"relevance table written to {out}: {len(relevance)} rows, columns {', '.join(columns[:3])} and "
                   f"{len(names)} features")
    write = _write_csv_table if out.suffix.lower() == ".csv" else _write_parquet_table
    return [(out, lambda tmp: write(tmp, columns, labels, numbers))]


def _save_plot(tmp: Path, path: Path, expl: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .plot import explanation

    if np.ndim(expl.relevance) > 2:
        expl = expl[:MAX_PLOTTED_IMAGES]
    ax = explanation(expl)
    # the axes of a new figure: their figure is a Figure, not a SubFigure
    fig = cast("Figure", (ax if isinstance(ax, matplotlib.axes.Axes) else np.ravel(ax)[0]).figure)
    fig.savefig(tmp, dpi=120, format=path.suffix.lower().lstrip("."))
    plt.close(fig)


def _summary(expl: Any, network: Any, args: argparse.Namespace, reference: str, written: list[str]) -> None:
    from ._streaming import Totals

    r = np.asarray(expl.relevance)
    totals = Totals()
    totals.add(np.asarray(expl.output, dtype=np.float64), np.asarray(expl.absorbed, dtype=np.float64), r)
    names = expl.feature_names or [f"x{i}" for i in range(r.reshape(len(r), -1).shape[1])]
    _print_summary(totals, names if r.ndim == 2 else None, network, args, reference, written)


def _print_summary(totals: Any, names: list[str] | None, network: Any, args: argparse.Namespace, reference: str,
                   written: list[str]) -> None:
    kind = network.output_kind or "output"
    n = max(totals.n, 1)
    print(f"explained {totals.n} samples of {network.description or 'the model'} ({kind}), "
          f"rules: {args.rules or 'default'}, reference: {reference}")
    line = f"mean {kind} {totals.output / n:.4g}" + ("" if reference.startswith("none")
                                                      else " (relative to the reference)")
    if totals.abs_absorbed > ABSORBED_SHARE * totals.abs_output:
        line += f", mean absorbed {totals.absorbed / n:.4g} (the relevance adds up to {kind} - absorbed)"
    print(line)
    if names is not None and totals.abs_relevance is not None:
        mean_abs = totals.abs_relevance / n
        unit = "units of the output" if kind == "value" else kind
        print(f"features by mean |relevance| ({unit}):")
        for i in np.argsort(-mean_abs, kind="stable")[:10]:
            print(f"  {names[i]:<30} {mean_abs[i]:.4g}")
    for line in written:
        print(line)


def add_explain(sub: Any) -> None:
    """``neon explain``."""
    ex = sub.add_parser(
        "explain", help="explain a saved model on a data file", epilog=SECURITY_NOTE,
        description="Explain every row of DATA with the model saved in MODEL. With -o FILE.csv/.parquet the "
                    "relevance table has the columns target (the explained class label or output), output (the "
                    "explained value), absorbed (output minus the sum of the relevance), then one column per "
                    "feature in the order of DATA; -o FILE.npy writes the relevance array (any shape, e.g. images) "
                    "and the per-row columns to FILE.targets.csv. Existing files are never replaced without "
                    "--overwrite, inputs never; if anything fails, nothing is written.")
    ex.add_argument("model", metavar="MODEL", help="joblib/pickle file of a fitted estimator or pipeline, or a "
                                                   "PyTorch module saved whole (.pt); loading it runs code from it")
    ex.add_argument("data", metavar="DATA", help="data file: .csv (the first row is the header: feature names), "
                                                 ".npy or .parquet")
    target = ex.add_mutually_exclusive_group()
    target.add_argument("--target", metavar="LABEL",
                        help="explained class label (as neon.explain's target=, e.g. --target malignant; for "
                             "models whose outputs have no labels, the output index); default: the predicted "
                             "class or assigned cluster")
    target.add_argument("--target-index", metavar="I", type=int,
                        help="explained output by its index 0..n-1 (the order of the model's classes_)")
    ex.add_argument("--rules", help="rule preset (e.g. epsilon, lrp0, epsilon_gamma_box, overview); "
                                    "default: the model's own rules")
    ex.add_argument("--model-output", choices=["log-odds", "logit"], help="explained quantity of a classifier")
    ex.add_argument("--reference", default="auto", metavar="REF",
                    help="reference point of the explanation (explains f(x) - f(reference)): auto (default: mean "
                         "for linear models, none otherwise), none (the raw output), mean (the mean of DATA), or a "
                         ".csv/.npy/.parquet file holding one sample")
    ex.add_argument("--output", "-o", metavar="FILE", help="write the relevance to this .csv, .parquet (table) or "
                                                           ".npy (array + FILE.targets.csv) file")
    ex.add_argument("--plot", metavar="IMAGE", help="save a plot of the explanation to this image file (e.g. "
                                                    f"out.png; images: the first {MAX_PLOTTED_IMAGES} samples)")
    ex.add_argument("--overwrite", action="store_true", help="replace existing output files")
    ex.add_argument("--no-header", action="store_true", help="the .csv files have no header row (the first row "
                                                             "is data)")
    ex.add_argument("--batch-size", type=int, default=1024,
                    help="rows per chunk (default 1024); .csv and .parquet DATA is read, explained and written this "
                         "many rows at a time (unless --plot needs every row at once)")
    ex.add_argument("--fit-rows", type=int, default=100_000,
                    help="rows of DATA (the first ones) that fix the rules' data-dependent parameters and the mean "
                         "reference when DATA is streamed (default 100000)")
    ex.add_argument("--dask", metavar="SCHEDULER",
                    help="explain on a Dask cluster: the scheduler's address (tcp://host:8786) or 'local' for a "
                         "local cluster of 2 processes; DATA (.csv/.parquet) is read by the workers, the table is "
                         "written here block by block (needs neon-xai[dask])")
    ex.add_argument("--quiet", "-q", action="store_true", help="no progress bar, notes or summary")
    ex.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    ex.set_defaults(func=cmd_explain)


# ---------------------------------------------------------------------- inspect
def _shape_text(value: Any) -> str:
    return str(tuple(value.shape[1:])) if hasattr(value, "shape") else type(value).__name__


def _parse_shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(s) for s in text.replace("x", ",").split(",") if s.strip())
    except ValueError:
        raise CLIError(f"--input-shape {text!r}: give the per-sample shape as integers, e.g. 3,32,32.") from None
    if not shape or min(shape) < 1:
        raise CLIError(f"--input-shape {text!r}: give the per-sample shape as positive integers, e.g. 3,32,32.")
    return shape


def format_table(rows: Sequence[Sequence[str]], max_widths: Sequence[int]) -> list[str]:
    """Rows as aligned text columns; a cell wider than its column wraps onto more lines at word boundaries.

    A single word longer than the column is kept whole (the column widens), so no cell is ever cut mid-word.
    """
    wrapped = [[textwrap.wrap(c, w, break_long_words=False, break_on_hyphens=False) or [""]
                for c, w in zip(row, max_widths)] for row in rows]
    widths = [max(len(line) for row in wrapped for line in row[i]) for i in range(len(max_widths))]
    lines = []
    for row in wrapped:
        for k in range(max(len(cell) for cell in row)):
            cells = [(cell[k] if k < len(cell) else "").ljust(w) for cell, w in zip(row, widths)]
            lines.append(("  " + "  ".join(cells)).rstrip())
    return lines


def cmd_inspect(args: argparse.Namespace) -> int:
    import torch

    from .converters import neuralize
    from .propagate.kinds import NodeKind

    model = load_model(args.model)
    network = neuralize(model, **({"output": args.model_output} if args.model_output else {}))
    rules = network.assign_rules(args.rules)
    shape = _parse_shape(args.input_shape) if args.input_shape else network.input_shape
    if args.data:
        from .explainer import Explainer

        # Fitting shows the data-dependent parameters (soft-min stiffness, z^B bounds) as explain uses them.
        notes: list[str] = []
        X, names = load_data(args.data, not args.no_header, notes)
        X, _, _ = match_columns(X, names, model, network)
        for note in notes:
            print(f"neon: note: {note}", file=sys.stderr)
        rules = Explainer(network, rules=args.rules).fit(X).rules_
        shape = tuple(X.shape[1:])
    values: dict = {}
    if shape is not None:
        values = network.activations(torch.zeros((1,) + tuple(shape), dtype=network.dtype))
    print(f"neon.Network: {network.description or 'network'} -> {network.output_kind}"
          + (f" ({len(network.target_names)} targets: {', '.join(str(_python(t)) for t in network.target_names)})"
             if network.target_names else ""))
    print(f"input shape: {shape if shape is not None else 'unknown (give --input-shape)'}")
    rows = [("node", "kind", "operation", "output shape", "rule")]
    for s in network.steps:
        if s.kind in (NodeKind.INPUT, NodeKind.OUTPUT, NodeKind.CONST):
            continue
        op = type(s.module).__name__ if s.module is not None else s.label.split(" in ")[0]
        detail = s.module.extra_repr() if s.module is not None else ""
        rows.append((s.name, str(s.kind), f"{op}({detail})" if detail else op,
                     _shape_text(values[s.name]) if s.name in values else "?", repr(rules[s.name]) if s.name in rules
                     else "-"))
    for line in format_table(rows, (32, 12, 48, 16, 56)):
        print(line)
    return 0


def add_inspect(sub: Any) -> None:
    """``neon inspect``."""
    ins = sub.add_parser("inspect", help="print the neuralized network layer by layer", epilog=SECURITY_NOTE,
                         description="Print the network neon builds from MODEL: nodes, shapes and rules.")
    ins.add_argument("model", metavar="MODEL", help="joblib/pickle file of a fitted estimator, pipeline or module; "
                                                    "loading it runs code from it")
    ins.add_argument("--rules", help="rule preset to show instead of the model's default rules")
    ins.add_argument("--model-output", choices=["log-odds", "logit"], help="explained quantity of a classifier")
    ins.add_argument("--input-shape", help="per-sample input shape, e.g. 3,32,32 (for modules without one)")
    ins.add_argument("--data", metavar="DATA", help="fit the data-dependent rule parameters on this data file "
                                                     "and show them")
    ins.add_argument("--no-header", action="store_true", help="the .csv file has no header row")
    ins.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    ins.set_defaults(func=cmd_inspect)


# ---------------------------------------------------------------------- entry point
#: The subcommands, in the order ``neon --help`` lists them; a new one is one more ``add_<name>`` here.
def add_clean(sub: Any) -> None:
    """``neon clean`` (artifact reports; implemented with :mod:`neon.cleaning` in :mod:`neon.cleaning.cli`)."""
    from .cleaning.cli import add_clean as add

    add(sub)


SUBCOMMANDS: list[Callable[[Any], None]] = [add_explain, add_inspect, add_clean]


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="neon", description="Explain machine-learning models with LRP and NEON.",
                                     epilog=SECURITY_NOTE)
    parser.add_argument("--version", action="version", version=f"neon {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in SUBCOMMANDS:
        add(sub)
    return parser


_NUMPY_SCALAR = re.compile(r"\bnp\.(?:u?int|float|complex|bool_|str_|bytes_)\d*\(([^()]*)\)")


def readable(message: str) -> str:
    """An error message for people: numpy scalar reprs (``np.int64(3)``) become their values (``3``)."""
    return re.sub(r"\bnp\.(True|False)_", r"\1", _NUMPY_SCALAR.sub(r"\1", message))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 success, 1 error, 2 usage error)."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("neon: interrupted; nothing was written", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - the command line reports every failure as one line
        if getattr(args, "debug", False):
            raise
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if not isinstance(err, CLIError):
            message = f"{type(err).__name__}: {message}"
        print(f"neon: error: {readable(message)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
