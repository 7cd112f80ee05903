"""The ``neon`` command line: explain a saved model on a data file, or inspect its network.

``neon explain MODEL DATA [--target T] [--rules R] [--output FILE] [--plot PNG]``
    MODEL is a joblib/pickle file of a fitted scikit-learn estimator or pipeline (or a PyTorch
    module saved whole with ``torch.save``, as ``.pt``/``.pth``); DATA a ``.csv`` (a header row
    gives the feature names), ``.npy`` or ``.parquet`` file. The relevance is written in the
    layout of DATA (``.csv``, ``.npy`` or ``.parquet``, by the extension of FILE); a summary goes
    to standard output.
``neon inspect MODEL [--rules R] [--data DATA] [--input-shape 3,32,32]``
    Prints the neuralized network layer by layer: node, kind, operation, output shape, rule
    (with ``--data``, the rules' data-dependent parameters fitted on DATA).

Errors print one line to standard error and exit with status 1 (``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import csv
import pickle
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DATA_FORMATS = (".csv", ".npy", ".parquet")


class CLIError(Exception):
    """A problem with the user's files or options: reported as one line, without traceback."""


# ---------------------------------------------------------------------- files
def load_model(path: str) -> Any:
    """Unpickle a model saved with ``joblib.dump`` or ``pickle.dump``."""
    p = Path(path)
    if not p.is_file():
        raise CLIError(f"model file '{path}' not found.")
    if p.suffix.lower() in (".pt", ".pth"):
        import torch

        try:
            # A whole pickled module (torch.save(model, f)), so full unpickling is needed, as with joblib.
            return torch.load(p, weights_only=False, map_location="cpu")
        except Exception as err:  # noqa: BLE001
            raise CLIError(f"cannot read model file '{path}' (torch.save of a whole nn.Module expected): "
                           f"{type(err).__name__}: {err}") from err
    try:
        import joblib

        return joblib.load(p)
    except ImportError:  # pragma: no cover - joblib ships with scikit-learn
        pass
    except Exception as err:  # noqa: BLE001 - any unpickling failure means an unreadable file
        # joblib cannot read some plain pickles (protocol quirks); try pickle before giving up.
        try:
            with open(p, "rb") as f:
                return pickle.load(f)
        except Exception:  # noqa: BLE001
            raise CLIError(f"cannot read model file '{path}' (is it a joblib/pickle file of a fitted model?): "
                           f"{type(err).__name__}: {err}") from err
    with open(p, "rb") as f:  # pragma: no cover
        return pickle.load(f)


def _read_csv(path: Path) -> tuple[np.ndarray, list[str] | None]:
    """A numeric CSV file; a first row that is not all numbers is the header (feature names)."""
    with open(path, newline="") as f:
        first = next((r for r in csv.reader(f) if r), None)
    if first is None:
        raise CLIError(f"data file '{path}' is empty.")
    try:
        [float(c) for c in first]
        names = None
    except ValueError:
        names = [c.strip() for c in first]
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpy warns on a header-only file; it is reported below
            X = np.loadtxt(path, delimiter=",", skiprows=int(names is not None), ndmin=2, dtype=np.float64)
    except ValueError as err:
        raise CLIError(f"data file '{path}' must hold numbers below its header, with equal-length rows: "
                       f"{err}".rstrip(".") + ".") from err
    if names is not None and len(X) and X.shape[1] != len(names):
        raise CLIError(f"data file '{path}' has {len(names)} column names but {X.shape[1]} values per row.")
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


def load_data(path: str) -> tuple[np.ndarray, list[str] | None]:
    """Read DATA: ``(X, feature names or None)``."""
    p = Path(path)
    if not p.is_file():
        raise CLIError(f"data file '{path}' not found.")
    suffix = p.suffix.lower()
    if suffix == ".csv":
        return _read_csv(p)
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
        bad = [f.name for f in table.schema if not (pa.types.is_integer(f.type) or pa.types.is_floating(f.type)
                                                     or pa.types.is_boolean(f.type))]
        if bad:
            raise CLIError(f"data file '{path}' has non-numeric columns {bad}.")
        X = np.column_stack([table.column(i).to_numpy().astype(np.float64) for i in range(table.num_columns)])
        return X.reshape(table.num_rows, -1), list(table.column_names)
    raise CLIError(f"unsupported data format '{p.suffix}' of '{path}'; use one of {', '.join(DATA_FORMATS)}.")


def _check_output_path(path: str, relevance: np.ndarray) -> None:
    """Refuse an output file that cannot hold relevance shaped like ``relevance`` (before any work)."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in DATA_FORMATS:
        raise CLIError(f"unsupported output format '{p.suffix}' of '{path}'; use one of {', '.join(DATA_FORMATS)}.")
    if suffix != ".npy" and relevance.ndim != 2:
        raise CLIError(f"relevance of per-sample shape {relevance.shape[1:]} can only be written as .npy.")
    if not p.parent.exists():
        raise CLIError(f"output folder '{p.parent}' does not exist.")
    if suffix == ".parquet":
        _pyarrow("writing")


def save_relevance(path: str, relevance: np.ndarray, names: list[str] | None) -> None:
    """Write relevance in the layout of the data: ``.csv`` (with a header), ``.npy`` or ``.parquet``."""
    _check_output_path(path, relevance)
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".npy":
        np.save(p, relevance)
        return
    names = names or [f"x{i}" for i in range(relevance.shape[1])]
    if suffix == ".csv":
        with open(p, "w", newline="") as f:
            csv.writer(f).writerow(names)
            np.savetxt(f, relevance, delimiter=",", fmt="%.17g")  # round-trips float64 exactly
        return
    pa = _pyarrow("writing")
    pa.parquet.write_table(pa.table({n: relevance[:, i] for i, n in enumerate(names)}), p)


def _expected_names(model: Any) -> list[str] | None:
    names = getattr(model, "feature_names_in_", None)
    return None if names is None else [str(n) for n in names]


def match_columns(X: np.ndarray, names: list[str] | None, model: Any, network: Any) -> tuple[np.ndarray, list | None]:
    """Check DATA against the model's features; columns named in a header are matched by name."""
    expected = _expected_names(model) or getattr(network, "feature_names", None)
    if names is not None and expected is not None and names != expected:
        missing = [n for n in expected if n not in names]
        extra = [n for n in names if n not in expected]
        if missing or extra:
            raise CLIError(f"DATA columns do not match the model's features: missing {missing}, unexpected {extra}.")
        X = X[:, [names.index(n) for n in expected]]
        names = expected
    shape = getattr(network, "input_shape", None)
    if shape is not None and tuple(X.shape[1:]) != tuple(shape):
        raise CLIError(f"DATA has {X.shape[1] if X.ndim == 2 else X.shape[1:]} features per row, but the model "
                       f"expects {shape[0] if len(shape) == 1 else shape}.")
    return X, names or expected


# ---------------------------------------------------------------------- commands
def _parse_target(target: str | None, network: Any) -> Any:
    if target is None:
        return None
    names = network.target_names
    if names is not None:
        for i, name in enumerate(names):
            if str(name) == target:
                return i
    try:
        return int(target)
    except ValueError:
        raise CLIError(f"--target {target!r} is neither a target name {names} nor an index.") from None


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


def cmd_explain(args: argparse.Namespace) -> int:
    from .converters import neuralize
    from .explainer import Explainer

    model = load_model(args.model)
    X, names = load_data(args.data)
    if X.ndim < 2:
        raise CLIError(f"DATA must hold one sample per row; got an array of shape {X.shape}.")
    if args.output:
        _check_output_path(args.output, X)
    network = neuralize(model, **({"output": args.model_output} if args.model_output else {}))
    X, names = match_columns(X, names, model, network)
    # Fitted on all of DATA, as neon.explain(model, DATA) is: the same result, chunk by chunk.
    explainer = Explainer(network, rules=args.rules).fit(X)
    target = _parse_target(args.target, network)
    # Explaining in chunks gives the same result as one call (batch independence) and lets the bar move.
    n, chunk = len(X), max(1, args.batch_size)
    bar = _progress(n, not args.quiet and n > chunk)  # a bar only when there is progress to show
    parts = []
    try:
        for start in range(0, n, chunk):
            parts.append(explainer.explain(X[start:start + chunk], target=target))
            bar.update(min(chunk, n - start))
    finally:
        bar.close()
    relevance = np.concatenate([np.asarray(p.relevance) for p in parts]) if parts else np.zeros_like(X)
    output = np.concatenate([np.asarray(p.output) for p in parts]) if parts else np.zeros(0)
    absorbed = np.concatenate([np.asarray(p.absorbed) for p in parts]) if parts else np.zeros(0)
    if args.output:
        save_relevance(args.output, relevance, names)
    if args.plot:
        _save_plot(args.plot, parts, X, names)
    if not args.quiet:
        _summary(relevance, output, absorbed, names, explainer.network_, args)
    return 0


def _save_plot(path: str, parts: list, X: np.ndarray, names: list[str] | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .explanation import Explanation
    from .plot import explanation

    first = parts[0]
    expl = Explanation(
        relevance=np.concatenate([p.relevance for p in parts]), output=np.concatenate([p.output for p in parts]),
        target=np.concatenate([p.target for p in parts]), absorbed=np.concatenate([p.absorbed for p in parts]),
        data=X, feature_names=names, target_names=first.target_names, output_kind=first.output_kind,
        rules=first.rules,
    )
    ax = explanation(expl)
    # the axes of a new figure: their figure is a Figure, not a SubFigure
    fig = cast("Figure", (ax if isinstance(ax, matplotlib.axes.Axes) else np.ravel(ax)[0]).figure)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _summary(relevance: np.ndarray, output: np.ndarray, absorbed: np.ndarray, names: list[str] | None,
             network: Any, args: argparse.Namespace) -> None:
    r = relevance.reshape(len(relevance), -1)
    print(f"explained {len(r)} samples of {network.description or 'the model'} ({network.output_kind}), "
          f"rules: {args.rules or 'default'}")
    if len(r):
        print(f"mean output {output.mean():.4g}, mean |absorbed| {np.abs(absorbed).mean():.4g}")
        if relevance.ndim == 2:
            names = names or [f"x{i}" for i in range(r.shape[1])]
            mean_abs = np.abs(r).mean(0)
            print("features by mean |relevance|:")
            for i in np.argsort(-mean_abs, kind="stable")[:10]:
                print(f"  {names[i]:<30} {mean_abs[i]:.4g}")
    if args.output:
        print(f"relevance written to {args.output}")
    if args.plot:
        print(f"plot written to {args.plot}")


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
        X, names = load_data(args.data)
        X, _ = match_columns(X, names, model, network)
        rules = Explainer(network, rules=args.rules).fit(X).rules_
        shape = tuple(X.shape[1:])
    values: dict = {}
    if shape is not None:
        values = network.activations(torch.zeros((1,) + tuple(shape), dtype=network.dtype))
    print(f"neon.Network: {network.description or 'network'} -> {network.output_kind}"
          + (f" ({len(network.target_names)} targets: {', '.join(map(str, network.target_names))})"
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
    widths = [min(max(len(r[i]) for r in rows), 72) for i in range(4)]
    for r in rows:
        print("  " + "  ".join(c[:72].ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4])
    return 0


# ---------------------------------------------------------------------- entry point
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="neon", description="Explain machine-learning models with LRP and NEON.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{explain,inspect}")

    ex = sub.add_parser("explain", help="explain a saved model on a data file",
                        description="Explain every row of DATA with the model saved in MODEL.")
    ex.add_argument("model", metavar="MODEL", help="joblib/pickle file of a fitted estimator, pipeline or module")
    ex.add_argument("data", metavar="DATA", help="data file: .csv (header = feature names), .npy or .parquet")
    ex.add_argument("--target", help="explained target: a class label / target name or an index "
                                     "(default: the predicted class or assigned cluster)")
    ex.add_argument("--rules", help="rule preset (e.g. epsilon, lrp0, epsilon_gamma_box, overview); "
                                    "default: the model's own rules")
    ex.add_argument("--model-output", choices=["log-odds", "logit"], help="explained quantity of a classifier")
    ex.add_argument("--output", "-o", help="write the relevance to this .csv, .npy or .parquet file")
    ex.add_argument("--plot", help="save a plot of the explanation to this image file (e.g. out.png)")
    ex.add_argument("--batch-size", type=int, default=1024, help="rows per chunk (default 1024)")
    ex.add_argument("--quiet", "-q", action="store_true", help="no progress bar and no summary")
    ex.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    ex.set_defaults(func=cmd_explain)

    ins = sub.add_parser("inspect", help="print the neuralized network layer by layer",
                         description="Print the network neon builds from MODEL: nodes, shapes and rules.")
    ins.add_argument("model", metavar="MODEL", help="joblib/pickle file of a fitted estimator, pipeline or module")
    ins.add_argument("--rules", help="rule preset to show instead of the model's default rules")
    ins.add_argument("--model-output", choices=["log-odds", "logit"], help="explained quantity of a classifier")
    ins.add_argument("--input-shape", help="per-sample input shape, e.g. 3,32,32 (for modules without one)")
    ins.add_argument("--data", metavar="DATA", help="fit the data-dependent rule parameters on this data file "
                                                     "and show them")
    ins.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    ins.set_defaults(func=cmd_inspect)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 success, 1 error, 2 usage error)."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("neon: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - the command line reports every failure as one line
        if args.debug:
            raise
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if not isinstance(err, CLIError):
            message = f"{type(err).__name__}: {message}"
        print(f"neon: error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
