"""The ``neon`` command line on real files: results equal neon.explain in process, files are never lost."""

import os
import re
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.cluster import KMeans
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import neon
from neon import cli

NEON_SCRIPT = Path(sys.executable).with_name("neon")


def run(*args, cwd=None):
    # A generous limit: under a loaded machine the interpreter start (torch, scikit-learn) took over 120 s.
    return subprocess.run([sys.executable, "-m", "neon.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


@pytest.fixture(scope="module")
def wine():
    data = load_wine(as_frame=True)
    X = data.data.iloc[:, :6]
    return X, X.to_numpy()


@pytest.fixture(scope="module")
def files(tmp_path_factory, wine):
    X, Xn = wine
    d = tmp_path_factory.mktemp("cli")
    km = KMeans(3, n_init=4, random_state=0).fit(Xn)
    joblib.dump(km, d / "km.joblib")
    with open(d / "wine.csv", "w") as f:
        f.write(",".join(X.columns) + "\n")
        for row in Xn:
            f.write(",".join(repr(float(v)) for v in row) + "\n")
    np.save(d / "wine.npy", Xn)
    return d, km


@pytest.fixture(scope="module")
def cancer(tmp_path_factory):
    """A scaled logistic regression with string class labels, its 40 rows of data as a CSV file."""
    d = tmp_path_factory.mktemp("cancer")
    data = load_breast_cancer(as_frame=True)
    X = data.data.iloc[:, :8]
    y = data.target.map(dict(enumerate(data.target_names)))  # string labels: 'malignant', 'benign'
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
    joblib.dump(pipe, d / "pipe.joblib")
    X.iloc[:40].to_csv(d / "x.csv", index=False)
    return d, pipe, X.iloc[:40]


def read_table(path):
    return pd.read_csv(path, keep_default_na=False)


def state(*paths):
    """Bytes and modification time of every path (None for a missing one): to prove files were left alone."""
    return [(p.read_bytes(), p.stat().st_mtime_ns) if p.exists() else None for p in map(Path, paths)]


def _error(capsys, argv):
    status = cli.main(argv)
    err = capsys.readouterr().err
    assert status == 1
    assert err.startswith("neon: error: ") and err.count("\n") == 1 and "Traceback" not in err
    return err


# ---------------------------------------------------------------------- results
def test_explain_csv_writes_the_in_process_relevance(files, wine):
    d, km = files
    X, Xn = wine
    before = joblib.hash(km)
    res = run("explain", d / "km.joblib", d / "wine.csv", "--output", d / "rel.csv")
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""  # no progress bar when stderr is not a terminal
    table = read_table(d / "rel.csv")
    expected = neon.explain(km, Xn)
    assert list(table.columns) == ["target", "output", "absorbed"] + list(X.columns)
    np.testing.assert_allclose(table[list(X.columns)].to_numpy(), expected.relevance, rtol=1e-12, atol=1e-9)
    np.testing.assert_array_equal(table["target"], km.predict(Xn))  # the explained cluster
    # cluster logits sum to the midpoint-rule relevance exactly (NEON, docs/theory.md §4)
    mu = km.cluster_centers_
    d2 = ((Xn[:, None, :] - mu[None]) ** 2).sum(-1)
    c = km.predict(Xn)
    own = d2[np.arange(len(Xn)), c]
    d2[np.arange(len(Xn)), c] = np.inf
    np.testing.assert_allclose(table["output"], d2.min(1) - own, rtol=1e-10)
    np.testing.assert_allclose(table[list(X.columns)].sum(axis=1), d2.min(1) - own, rtol=1e-8)
    np.testing.assert_allclose(table["absorbed"], table["output"] - table[list(X.columns)].sum(axis=1), atol=1e-9)
    assert "explained 178 samples" in res.stdout
    assert f"relevance table written to {d / 'rel.csv'}" in res.stdout
    assert joblib.hash(joblib.load(d / "km.joblib")) == before


@pytest.mark.skipif(not NEON_SCRIPT.exists(), reason="the neon console script is not installed in this environment")
def test_console_script_npy_in_and_out_with_target_and_small_chunks(files, wine):
    d, km = files
    _, Xn = wine
    res = subprocess.run([str(NEON_SCRIPT), "explain", str(d / "km.joblib"), str(d / "wine.npy"), "--target", "1",
                          "--batch-size", "7", "-q", "-o", str(d / "rel.npy")], capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "" and res.stderr == ""
    expected = neon.explain(km, Xn, target=1)
    np.testing.assert_allclose(np.load(d / "rel.npy"), expected.relevance, rtol=1e-12, atol=1e-9)
    assert (np.load(d / "rel.npy").sum(1)[km.predict(Xn) != 1] < 0).all()  # a foreign cluster's logit is negative
    side = read_table(d / "rel.targets.csv")
    assert list(side.columns) == ["target", "output", "absorbed"] and (side["target"] == 1).all()
    np.testing.assert_allclose(side["output"], expected.output, rtol=1e-12)


@pytest.mark.slow  # a subprocess start imports torch and scikit-learn: ~10 s on shared cores
def test_parquet_in_and_out_and_a_plot(files, wine):
    d, km = files
    X, Xn = wine
    X.to_parquet(d / "wine.parquet")
    res = run("explain", d / "km.joblib", d / "wine.parquet", "-o", d / "rel.parquet", "--plot", d / "out.png")
    assert res.returncode == 0, res.stderr
    rel = pd.read_parquet(d / "rel.parquet")
    assert list(rel.columns) == ["target", "output", "absorbed"] + list(X.columns)
    expected = neon.explain(km, Xn)
    np.testing.assert_allclose(rel[list(X.columns)].to_numpy(), expected.relevance, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(rel["output"], expected.output, rtol=1e-12)
    assert (d / "out.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_table_follows_the_column_order_of_the_data_and_names_the_target(tmp_path, wine):
    X, Xn = wine
    km = KMeans(2, n_init=2, random_state=1).fit(X)  # fitted with feature names
    joblib.dump(km, tmp_path / "km.joblib")
    reversed_columns = list(X.columns[::-1])
    X[reversed_columns].to_csv(tmp_path / "rev.csv", index=False)
    assert cli.main(["explain", str(tmp_path / "km.joblib"), str(tmp_path / "rev.csv"), "-q",
                     "-o", str(tmp_path / "r.csv")]) == 0
    table = read_table(tmp_path / "r.csv")
    assert list(table.columns) == ["target", "output", "absorbed"] + reversed_columns  # DATA's order
    expected = neon.explain(km, X)
    np.testing.assert_allclose(table[list(X.columns)].to_numpy(), np.asarray(expected.relevance), rtol=1e-12,
                               atol=1e-9)
    np.testing.assert_array_equal(table["target"], km.predict(X))


def test_table_targets_are_class_labels_and_target_means_a_label(cancer):
    d, pipe, X = cancer
    assert cli.main(["explain", str(d / "pipe.joblib"), str(d / "x.csv"), "--target", "malignant",
                     "-q", "-o", str(d / "r.csv"), "--overwrite"]) == 0
    table = read_table(d / "r.csv")
    assert list(table.columns) == ["target", "output", "absorbed"] + list(X.columns)
    assert (table["target"] == "malignant").all()
    index = list(pipe.classes_).index("malignant")
    expected = neon.explain(pipe, X, target=index)
    np.testing.assert_allclose(table[list(X.columns)].to_numpy(), np.asarray(expected.relevance), rtol=1e-12,
                               atol=1e-12)
    # the log-odds of 'malignant' is the signed decision function, explained in raw feature units against the
    # mean of the data (the default reference of linear models): nothing absorbed
    sign = 1.0 if index == 1 else -1.0
    mean = X.mean().to_frame().T
    np.testing.assert_allclose(table["output"], sign * (pipe.decision_function(X) - pipe.decision_function(mean)),
                               rtol=1e-8)
    np.testing.assert_allclose(table["absorbed"], 0, atol=1e-9)
    # --target-index names the same output by its position in classes_
    assert cli.main(["explain", str(d / "pipe.joblib"), str(d / "x.csv"), "--target-index", str(index),
                     "-q", "-o", str(d / "r_index.csv")]) == 0
    assert (d / "r_index.csv").read_bytes() == (d / "r.csv").read_bytes()


def test_target_is_a_label_also_when_labels_are_numbers(tmp_path, capsys):
    X, y = load_wine(return_X_y=True)
    X = X[:, :5] / X[:, :5].std(0)
    model = LogisticRegression(max_iter=500).fit(X, y + 1)  # classes 1, 2, 3
    joblib.dump(model, tmp_path / "m.joblib")
    np.save(tmp_path / "x.npy", X[:30])
    assert cli.main(["explain", str(tmp_path / "m.joblib"), str(tmp_path / "x.npy"), "--target", "3", "-q",
                     "-o", str(tmp_path / "r.csv")]) == 0
    table = read_table(tmp_path / "r.csv")
    assert (table["target"] == 3).all()
    expected = neon.explain(model, X[:30], target=2)  # label 3 is the third class: index 2
    np.testing.assert_allclose(table[[f"x{i}" for i in range(5)]].to_numpy(), expected.relevance, rtol=1e-12,
                               atol=1e-12)
    err = _error(capsys, ["explain", str(tmp_path / "m.joblib"), str(tmp_path / "x.npy"), "--target", "0"])
    assert "class labels: 1, 2, 3" in err and "--target-index" in err and "np." not in err


def test_reference_none_mean_and_a_file_against_the_linear_formula(cancer, tmp_path, capsys):
    d, pipe, X = cancer
    scaler, lr = pipe[0], pipe[-1]
    Xn = X.to_numpy()
    w = lr.coef_[0] / scaler.scale_  # the model in raw units: f(x) = w x + b
    pred = pipe.predict(X)
    sign = np.where(pred == lr.classes_[1], 1.0, -1.0)  # log-odds of the predicted class
    f = pipe.decision_function(X)
    ref = Xn[:10].mean(0)
    pd.DataFrame([ref[::-1]], columns=X.columns[::-1]).to_csv(tmp_path / "ref.csv", index=False)  # matched by name
    cases = {"none": (np.zeros_like(ref), sign * f), "mean": (Xn.mean(0), sign * (f - pipe.decision_function(
        X.mean().to_frame().T))), str(tmp_path / "ref.csv"): (ref, sign * (f - pipe.decision_function(
            pd.DataFrame([ref], columns=X.columns))))}
    for k, (reference, (x_ref, output)) in enumerate(cases.items()):
        out = tmp_path / f"r{k}.csv"
        assert cli.main(["explain", str(d / "pipe.joblib"), str(d / "x.csv"), "--reference", reference,
                         "-o", str(out)]) == 0
        summary = capsys.readouterr().out
        table = read_table(out)
        np.testing.assert_allclose(table["output"], output, rtol=1e-9)
        if reference == "none":  # the bias (and the scaler's shift) is absorbed: R_i = w_i x_i
            np.testing.assert_allclose(table[list(X.columns)].to_numpy(), sign[:, None] * w * Xn, rtol=1e-9)
            absorbed = table["absorbed"].to_numpy()
            assert np.abs(absorbed).mean() > 0.01 * np.abs(output).mean()
            assert f"mean absorbed {absorbed.mean():.4g}" in summary  # shown beside the output
        else:  # R_i = w_i (x_i - ref_i): SHAP's linear values, nothing absorbed
            np.testing.assert_allclose(table[list(X.columns)].to_numpy(), sign[:, None] * w * (Xn - x_ref),
                                       rtol=1e-8, atol=1e-10)
            np.testing.assert_allclose(table["absorbed"], 0, atol=1e-9)
            assert "mean absorbed" not in summary
        assert f"mean log-odds {table['output'].mean():.4g}" in summary
    np.save(tmp_path / "two.npy", Xn[:2])
    assert "must hold one sample" in _error(capsys, ["explain", str(d / "pipe.joblib"), str(d / "x.csv"),
                                                     "--reference", str(tmp_path / "two.npy")])


# ---------------------------------------------------------------------- files are never lost
def test_refuses_to_write_over_its_inputs_even_with_overwrite(files, tmp_path, capsys):
    d, _ = files
    model, data = d / "km.joblib", d / "wine.csv"
    before = state(model, data)
    base = ["explain", str(model), str(data)]
    for argv in (["-o", str(data)], ["-o", str(data), "--overwrite"], ["--plot", str(model), "--overwrite"],
                 ["-o", str(d / ".." / d.name / "wine.csv"), "--overwrite"]):  # the same file, spelled otherwise
        err = _error(capsys, base + argv)
        assert "never writes over its input" in err
    os.link(data, tmp_path / "hardlink.csv")  # the same file under another name
    assert "is the DATA file" in _error(capsys, base + ["-o", str(tmp_path / "hardlink.csv"), "--overwrite"])
    assert "also the --output file" in _error(capsys, base + ["-o", str(tmp_path / "a.csv"),
                                                             "--plot", str(tmp_path / "a.csv")])
    assert state(model, data) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hardlink.csv"]


def test_refuses_an_existing_output_unless_overwrite(files, wine, tmp_path, capsys):
    d, km = files
    out, plot = tmp_path / "r.csv", tmp_path / "r.png"
    out.write_text("precious\n")
    before = state(out)
    argv = ["explain", str(d / "km.joblib"), str(d / "wine.csv"), "-q", "-o", str(out)]
    assert "'" + str(out) + "' exists; give --overwrite" in _error(capsys, argv)
    assert "exists" in _error(capsys, ["explain", str(d / "km.joblib"), str(d / "wine.csv"), "--plot", str(out)])
    assert state(out) == before
    os.chmod(out, 0o640)
    assert cli.main(argv + ["--overwrite", "--plot", str(plot)]) == 0
    table = read_table(out)
    np.testing.assert_allclose(table["output"], neon.explain(km, wine[1]).output, rtol=1e-12)
    assert (os.stat(out).st_mode & 0o777) == 0o640  # replaced in place: the file keeps its permissions
    assert plot.read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.csv", "r.png"]  # no temporary files left


def test_writes_nothing_when_any_step_fails(files, tmp_path, monkeypatch, capsys):
    d, _ = files
    out = tmp_path / "r.csv"
    base = ["explain", str(d / "km.joblib"), str(d / "wine.csv"), "-o", str(out)]
    assert "does not exist" in _error(capsys, base + ["--plot", str(tmp_path / "missing" / "p.png")])
    assert "cannot save a plot as '.xyz'" in _error(capsys, base + ["--plot", str(tmp_path / "p.xyz")])
    assert "unknown preset" in _error(capsys, base + ["--rules", "nonsense"])
    assert "is a folder" in _error(capsys, base + ["--plot", str(tmp_path)])
    (tmp_path / "r.targets.csv").write_text("x\n")  # the sidecar of a .npy output exists
    assert "r.targets.csv' exists" in _error(capsys, base[:-1] + [str(tmp_path / "r.npy")])

    def broken_plot(tmp, path, expl):
        tmp.write_bytes(b"half a plot")
        raise RuntimeError("the disk is full")

    monkeypatch.setattr(cli, "_save_plot", broken_plot)
    assert "the disk is full" in _error(capsys, base + ["--plot", str(tmp_path / "p.png")])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.targets.csv"]  # neither output, no temporary file
    if os.geteuid() != 0:  # root writes into read-only folders
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        try:
            assert "cannot write to the folder" in _error(capsys, base[:-1] + [str(ro / "r.csv")])
        finally:
            ro.chmod(0o755)


# ---------------------------------------------------------------------- data files
def test_the_first_row_is_always_the_header_unless_no_header(tmp_path, wine, capsys):
    _, Xn = wine
    km = KMeans(2, n_init=2, random_state=0).fit(Xn)  # no feature names
    joblib.dump(km, tmp_path / "km.joblib")
    np.savetxt(tmp_path / "plain.csv", Xn, delimiter=",")  # no header: the first row is data
    argv = ["explain", str(tmp_path / "km.joblib"), str(tmp_path / "plain.csv")]
    assert cli.main(argv + ["-o", str(tmp_path / "a.csv")]) == 0
    captured = capsys.readouterr()
    assert "explained 177 samples" in captured.out  # the first row was taken as the header ...
    assert "read as the header" in captured.err and "--no-header" in captured.err  # ... and the user told so
    table = read_table(tmp_path / "a.csv")
    assert list(table.columns[3:]) == [f"{v:.18e}" for v in Xn[0]]
    np.testing.assert_allclose(table.iloc[:, 3:].to_numpy(), neon.explain(km, Xn[1:]).relevance, rtol=1e-12,
                               atol=1e-9)
    assert cli.main(argv + ["--no-header", "-o", str(tmp_path / "b.csv")]) == 0
    assert "explained 178 samples" in capsys.readouterr().out
    table = read_table(tmp_path / "b.csv")
    assert list(table.columns[3:]) == [f"x{i}" for i in range(6)]
    np.testing.assert_allclose(table.iloc[:, 3:].to_numpy(), neon.explain(km, Xn).relevance, rtol=1e-12,
                               atol=1e-9)
    # a header of column numbers (pandas' to_csv of an unnamed frame) is a header, without a note
    pd.DataFrame(Xn).to_csv(tmp_path / "numbered.csv", index=False)
    assert cli.main(["explain", str(tmp_path / "km.joblib"), str(tmp_path / "numbered.csv")]) == 0
    captured = capsys.readouterr()
    assert "explained 178 samples" in captured.out and captured.err == ""


def test_a_csv_saved_with_its_index_is_explained_how_to_fix(files, wine, tmp_path, capsys):
    d, _ = files
    X, _ = wine
    X.to_csv(tmp_path / "with_index.csv")  # pandas' default: an unnamed index column first
    err = _error(capsys, ["explain", str(d / "km.joblib"), str(tmp_path / "with_index.csv")])
    assert "unnamed column holding 0..177" in err and "index=False" in err
    pd.read_csv(tmp_path / "with_index.csv").to_csv(tmp_path / "unnamed.csv", index=False)  # 'Unnamed: 0'
    assert "index=False" in _error(capsys, ["explain", str(d / "km.joblib"), str(tmp_path / "unnamed.csv")])
    X.set_axis([f"wine {i}" for i in range(len(X))]).to_parquet(tmp_path / "idx.parquet")  # index as a column
    assert "index=False" in _error(capsys, ["explain", str(d / "km.joblib"), str(tmp_path / "idx.parquet")])


def test_errors_are_one_line(tmp_path, files, wine, capsys):
    d, km = files
    X, Xn = wine
    assert "model file" in _error(capsys, ["explain", str(tmp_path / "missing.joblib"), str(d / "wine.csv")])
    assert "not found" in _error(capsys, ["explain", str(d / "km.joblib"), str(tmp_path / "missing.csv")])
    assert "cannot read model file" in _error(capsys, ["explain", str(d / "wine.csv"), str(d / "wine.csv")])
    X.drop(columns=[X.columns[2]]).to_csv(tmp_path / "short.csv", index=False)
    assert "has 5 features per row, but the model expects 6" in _error(
        capsys, ["explain", str(d / "km.joblib"), str(tmp_path / "short.csv")])
    named = KMeans(2, n_init=2, random_state=0).fit(X)
    joblib.dump(named, tmp_path / "named.joblib")
    assert f"missing ['{X.columns[2]}'], unexpected []" in _error(
        capsys, ["explain", str(tmp_path / "named.joblib"), str(tmp_path / "short.csv")])
    np.save(tmp_path / "short.npy", Xn[:, :4])
    assert "expects 6" in _error(capsys, ["explain", str(d / "km.joblib"), str(tmp_path / "short.npy")])
    (tmp_path / "ragged.csv").write_text("a,b\n1,2\n3\n")
    assert "equal-length rows" in _error(capsys, ["explain", str(d / "km.joblib"), str(tmp_path / "ragged.csv")])
    (tmp_path / "text.csv").write_text("a,b\n1,x\n")
    assert "must hold numbers" in _error(capsys, ["explain", str(d / "km.joblib"), str(tmp_path / "text.csv")])
    (tmp_path / "x.txt").write_text("1,2\n")
    assert "unsupported data format" in _error(capsys, ["explain", str(d / "km.joblib"), str(tmp_path / "x.txt")])
    (tmp_path / "x.npz").write_bytes(b"PK")
    assert ".toarray()" in _error(capsys, ["explain", str(d / "km.joblib"), str(tmp_path / "x.npz")])
    assert "unknown preset" in _error(capsys, ["explain", str(d / "km.joblib"), str(d / "wine.npy"),
                                               "--rules", "nonsense"])
    assert "not one of the model's cluster labels: 0, 1, 2" in _error(
        capsys, ["explain", str(d / "km.joblib"), str(d / "wine.npy"), "--target", "7"])
    assert "--target-index 7 is out of range: the model has 3 outputs (0..2)" in _error(
        capsys, ["explain", str(d / "km.joblib"), str(d / "wine.npy"), "--target-index", "7"])


def test_weights_compiled_models_and_sparse_data_get_a_message_that_says_what_to_do(tmp_path, capsys):
    import scipy.sparse
    import torch
    from torch import nn

    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)).eval()
    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((5, 4)).astype(np.float32))
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    torch.save({"epoch": 3, "model_state_dict": model.state_dict()}, tmp_path / "checkpoint.pt")
    torch.save(torch.compile(model), tmp_path / "compiled.pt")
    before = state(tmp_path / "weights.pt")
    err = _error(capsys, ["explain", str(tmp_path / "weights.pt"), str(tmp_path / "x.npy")])
    assert "state_dict" in err and "torch.save(model, path)" in err and "load_state_dict" in err
    assert state(tmp_path / "weights.pt") == before
    err = _error(capsys, ["explain", str(tmp_path / "checkpoint.pt"), str(tmp_path / "x.npy")])
    assert "'model_state_dict'" in err and "torch.save(model, path)" in err
    assert "model._orig_mod" in _error(capsys, ["explain", str(tmp_path / "compiled.pt"), str(tmp_path / "x.npy")])
    # the same messages from the API
    with pytest.raises(neon.UnsupportedModelError, match=r"state_dict.*load_state_dict"):
        neon.explain(model.state_dict(), torch.rand(2, 4))
    with pytest.raises(neon.UnsupportedModelError, match=r"model\._orig_mod"):
        neon.explain(torch.compile(model), torch.rand(2, 4))
    X, y = load_wine(return_X_y=True)
    X = X / X.std(0)
    lr = LogisticRegression(max_iter=1000).fit(X, y)
    with pytest.raises(ValueError, match=r"scipy sparse csr_matrix.*\.toarray\(\)"):
        neon.explain(lr, scipy.sparse.csr_matrix(X))
    with pytest.raises(ValueError, match=r"scipy sparse.*\.toarray\(\)"):
        neon.Explainer(lr).fit(X).explain(scipy.sparse.csr_array(X[:3]))


def test_messages_carry_values_not_numpy_reprs():
    assert cli.readable("target out of range: got [np.int64(3), np.float32(0.5)] of np.str_('a'), np.True_") == \
        "target out of range: got [3, 0.5] of 'a', True"
    assert cli.readable("f(np.array([1]))") == "f(np.array([1]))"  # only scalar reprs change


@pytest.mark.slow  # a subprocess start imports torch and scikit-learn: ~10 s on shared cores
def test_unsupported_estimator_is_named_in_a_short_message_that_points_to_the_list(tmp_path, wine):
    from sklearn.tree import DecisionTreeClassifier

    _, Xn = wine
    joblib.dump(DecisionTreeClassifier(max_depth=2).fit(Xn, np.arange(len(Xn)) % 2), tmp_path / "tree.joblib")
    np.save(tmp_path / "x.npy", Xn)
    res = run("explain", tmp_path / "tree.joblib", tmp_path / "x.npy")
    assert res.returncode == 1
    assert res.stderr.startswith("neon: error: UnsupportedModelError: neon cannot neuralize DecisionTreeClassifier "
                                 "(sklearn.tree.DecisionTreeClassifier)")
    assert "neon.supported_models()" in res.stderr and "docs/index.md" in res.stderr
    assert len(res.stderr) < 300  # not every converter's description
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
    with pytest.raises(neon.UnsupportedModelError):  # --debug lets the exception (and its traceback) through
        cli.main(["explain", str(tmp_path / "tree.joblib"), str(tmp_path / "x.npy"), "--debug"])


# ---------------------------------------------------------------------- help, version, subcommands
def test_help_warns_that_loading_a_model_runs_code_and_version_is_neons(capsys):
    for argv in (["--help"], ["explain", "--help"], ["inspect", "--help"]):
        with pytest.raises(SystemExit) as info:
            cli.main(argv)
        assert info.value.code == 0
        text = " ".join(capsys.readouterr().out.split())
        assert "runs code stored in it: load only files you trust" in text
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out == f"neon {neon.__version__}\n"
    with pytest.raises(SystemExit):
        cli.main(["explain", "m", "d", "--target", "a", "--target-index", "1"])  # one or the other
    assert "not allowed with argument" in capsys.readouterr().err


def test_a_subcommand_is_added_by_one_function(monkeypatch, capsys):
    def add_hello(sub):
        p = sub.add_parser("hello", help="say hello")
        p.add_argument("name")
        p.set_defaults(func=lambda args: print(f"hello {args.name}") or 0)

    monkeypatch.setattr(cli, "SUBCOMMANDS", cli.SUBCOMMANDS + [add_hello])
    assert cli.main(["hello", "neon"]) == 0
    assert capsys.readouterr().out == "hello neon\n"


# ---------------------------------------------------------------------- inspect
def test_inspect_lists_layers_shapes_and_rules(files, tmp_path, capsys):
    d, km = files
    assert cli.main(["inspect", str(d / "km.joblib")]) == 0
    out = capsys.readouterr().out
    assert "cluster logit" in out and "input shape: (6,)" in out
    contrast = next(line for line in out.splitlines() if "CentroidContrast" in line)
    assert "(3, 2)" in contrast and "Midpoint" in contrast  # K clusters x (K - 1) competitors
    pool = next(line for line in out.splitlines() if "ReduceMin" in line)
    assert "(3,)" in pool and "SoftMin" in pool


def test_inspect_never_cuts_a_cell_mid_word(tmp_path, capsys):
    import torch
    from torch import nn

    model = nn.Sequential(nn.Conv2d(3, 5, kernel_size=(3, 3), stride=(1, 1), padding=(2, 2), dilation=(2, 2),
                                    padding_mode="zeros"), nn.ReLU(), nn.Flatten(), nn.Linear(5 * 6 * 6, 2)).eval()
    torch.save(model, tmp_path / "cnn.pt")
    argv = ["inspect", str(tmp_path / "cnn.pt"), "--input-shape", "3,6,6", "--rules", "epsilon_gamma_box"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    words = set(out.split())
    full = f"Conv2d({model[0].extra_repr()})"
    assert len(full) > 48  # wider than the operation column: wrapped
    assert set(full.split()) <= words  # every word of the cell is printed whole
    rule = repr(neon.neuralize(model).assign_rules("epsilon_gamma_box")["_0"])
    assert set(rule.split()) <= words
    table = cli.format_table([("a", "one two three four"), ("b", "x")], (5, 9))
    assert table == ["  a  one two", "     three", "     four", "  b  x"]
    assert cli.format_table([("a", "unbreakable_long_word")], (5, 4)) == ["  a  unbreakable_long_word"]


@pytest.mark.slow  # a subprocess start imports torch and scikit-learn: ~10 s on shared cores
def test_inspect_a_pickled_torch_module_as_subprocess(tmp_path):
    import torch
    from torch import nn

    model = nn.Sequential(nn.Linear(5, 9), nn.ReLU(), nn.Linear(9, 4))
    torch.save(model, tmp_path / "mlp.pt")  # a plain pickle
    res = run("inspect", tmp_path / "mlp.pt", "--input-shape", "5", "--rules", "lrp0")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    linear = [line for line in lines if "Linear(" in line]
    assert len(linear) == 2
    assert "(9,)" in linear[0] and "(4,)" in linear[1]
    assert all("Epsilon(" in line and "0" in line for line in linear)
    assert any("ReLU" in line and "Pass" in line for line in lines)


def test_inspect_with_data_shows_the_fitted_soft_min_stiffness(files, wine, capsys):
    d, km = files
    _, Xn = wine
    assert cli.main(["inspect", str(d / "km.joblib"), "--data", str(d / "wine.npy")]) == 0
    out = capsys.readouterr().out
    pool = next(line for line in out.splitlines() if "ReduceMin" in line)
    # beta = 1 / mean f_c(x) over the fit data (docs/theory.md §4), f_c recomputed from the centroids
    d2 = ((Xn[:, None, :] - km.cluster_centers_[None]) ** 2).sum(-1)
    c = km.predict(Xn)
    own = d2[np.arange(len(Xn)), c]
    d2[np.arange(len(Xn)), c] = np.inf
    beta = 1.0 / (d2.min(1) - own).mean()
    got = float(re.search(r"SoftMin\(beta=([0-9.eE+-]+)\)", pool).group(1))
    assert got == pytest.approx(beta, rel=1e-4)
    assert "give the per-sample shape" in _error(capsys, ["inspect", str(d / "km.joblib"), "--input-shape", "a,b"])


# ---------------------------------------------------------------------- progress, images, plots, parquet
def test_progress_bar_on_a_terminal_only_for_several_chunks_and_not_when_quiet(files, monkeypatch, capsys):
    d, _ = files
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    argv = ["explain", str(d / "km.joblib"), str(d / "wine.npy"), "--batch-size", "50"]
    assert cli.main(argv) == 0
    err = capsys.readouterr().err
    assert "explaining" in err and "178/178" in err
    assert cli.main(argv + ["--quiet"]) == 0
    assert capsys.readouterr() == ("", "")
    assert cli.main(argv[:-2] + ["--batch-size", "500"]) == 0  # one chunk: nothing to report
    assert capsys.readouterr().err == ""


def test_images_through_a_pickled_cnn(tmp_path, capsys):
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(),
                          nn.Linear(4 * 4 * 4, 3)).eval()
    torch.save(model, tmp_path / "cnn.pt")
    X = np.random.default_rng(0).random((12, 1, 8, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", X)
    argv = ["explain", str(tmp_path / "cnn.pt"), str(tmp_path / "x.npy"), "--rules", "epsilon_gamma_box"]
    assert cli.main(argv + ["-o", str(tmp_path / "r.npy"), "--plot", str(tmp_path / "r.png")]) == 0
    out = capsys.readouterr().out
    assert f"relevance (12, 1, 8, 8) (float32) written to {tmp_path / 'r.npy'}" in out
    assert f"absorbed of every row to {tmp_path / 'r.targets.csv'}" in out
    expected = neon.explain(model, X, rules="epsilon_gamma_box")
    got = np.load(tmp_path / "r.npy")
    assert got.shape == X.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, expected.relevance, rtol=1e-6, atol=1e-7)
    side = read_table(tmp_path / "r.targets.csv")
    np.testing.assert_array_equal(side["target"], expected.target)
    np.testing.assert_allclose(side["output"], expected.output, rtol=1e-6)
    np.testing.assert_allclose(side["absorbed"], expected.absorbed, rtol=1e-5, atol=1e-7)
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"
    assert "only be written as .npy" in _error(capsys, argv + ["-o", str(tmp_path / "r.csv")])
    assert not (tmp_path / "r.csv").exists()


def test_the_summary_plot_is_labelled_and_nothing_is_cut_off(cancer, tmp_path, monkeypatch):
    import matplotlib.pyplot as plt
    from test_plot import texts_outside

    d, pipe, X = cancer
    drawn, close = [], plt.close
    monkeypatch.setattr(plt, "close", drawn.append)  # keep the CLI's figure to look at it
    assert cli.main(["explain", str(d / "pipe.joblib"), str(d / "x.csv"), "--reference", "none", "-q",
                     "--plot", str(tmp_path / "p.png")]) == 0
    (fig,) = drawn
    ax = fig.axes[0]
    assert ax.get_xlabel().startswith("relevance (log-odds)")
    expl = neon.Explainer(pipe, reference=None).fit(X).explain(X)
    output, absorbed = np.asarray(expl.output), np.asarray(expl.absorbed)
    assert ax.get_title() == f"40 samples: mean log-odds {output.mean():.3g}, mean absorbed {absorbed.mean():.3g}"
    assert texts_outside(fig) == []
    close(fig)
    # the file is the figure, drawn at 120 dpi
    width, height = plt.imread(tmp_path / "p.png").shape[1::-1]
    assert (width, height) == tuple(round(v * 120) for v in fig.get_size_inches())


def test_parquet_without_pyarrow_is_a_clear_error(files, tmp_path, monkeypatch, capsys):
    d, _ = files
    (tmp_path / "x.parquet").write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow now raises ImportError
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    err = _error(capsys, ["explain", str(d / "km.joblib"), str(tmp_path / "x.parquet")])
    assert "needs pyarrow" in err
    err = _error(capsys, ["explain", str(d / "km.joblib"), str(d / "wine.npy"), "-o", str(tmp_path / "r.parquet")])
    assert "needs pyarrow" in err


# ---------------------------------------------------------------------- streaming and Dask (issue 13)
def _table(path):
    if str(path).endswith(".parquet"):
        return pd.read_parquet(path)
    return pd.read_csv(path)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_csv_and_parquet_are_streamed_chunk_by_chunk_with_the_in_process_numbers(files, wine, tmp_path, fmt):
    d, km = files
    X, Xn = wine
    data = tmp_path / f"data.{fmt}"
    big = pd.concat([X] * 3, ignore_index=True)  # 534 rows, explained 50 at a time
    big.to_csv(data, index=False) if fmt == "csv" else big.to_parquet(data, index=False)
    out = tmp_path / f"rel.{fmt}"
    assert cli.main(["explain", str(d / "km.joblib"), str(data), "--batch-size", "50", "-q", "-o", str(out)]) == 0
    table = _table(out)
    want = neon.explain(km, big.to_numpy())
    np.testing.assert_array_equal(table[list(X.columns)].to_numpy(), want.relevance)
    np.testing.assert_array_equal(table["output"].to_numpy(), want.output)
    np.testing.assert_array_equal(table["target"].to_numpy(), want.target)
    # the rules' data-dependent parameters come from the first --fit-rows rows
    assert cli.main(["explain", str(d / "km.joblib"), str(data), "--batch-size", "50", "--fit-rows", "60", "-q",
                     "-o", str(out), "--overwrite"]) == 0
    first60 = neon.Explainer(km).fit(big.to_numpy()[:60]).explain(big.to_numpy())
    np.testing.assert_array_equal(_table(out)[list(X.columns)].to_numpy(), first60.relevance)
    assert not np.array_equal(first60.relevance, want.relevance)  # the soft-min stiffness did change


@pytest.mark.slow
def test_dask_cluster_writes_the_in_process_table(files, wine, tmp_path, capsys, dask_cluster):
    d, km = files
    X, _ = wine
    data = tmp_path / "data.parquet"
    X.to_parquet(data, index=False)
    out = tmp_path / "rel.csv"
    assert cli.main(["explain", str(d / "km.joblib"), str(data), "--dask", dask_cluster.scheduler_address,
                     "--batch-size", "40", "-o", str(out)]) == 0
    assert "explained on Dask" in capsys.readouterr().out
    want = neon.explain(km, X.to_numpy())
    table = pd.read_csv(out)
    np.testing.assert_array_equal(table[list(X.columns)].to_numpy(), want.relevance)
    np.testing.assert_array_equal(table["absorbed"].to_numpy(), want.absorbed)
    assert "--plot" in _error(capsys, ["explain", str(d / "km.joblib"), str(data), "--dask", "local",
                                       "--plot", str(tmp_path / "p.png")])
