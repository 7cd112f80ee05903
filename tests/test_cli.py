"""The ``neon`` command line, run as a subprocess on real files: results equal neon.explain in process."""

import re
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.cluster import KMeans  # noqa: E402
from sklearn.datasets import load_wine

import neon
from neon import cli

NEON_SCRIPT = Path(sys.executable).with_name("neon")


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "neon.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


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


def read_csv(path):
    with open(path) as f:
        header = f.readline().strip().split(",")
    return header, np.loadtxt(path, delimiter=",", skiprows=1)


def test_explain_csv_writes_the_in_process_relevance(files, wine):
    d, km = files
    X, Xn = wine
    before = joblib.hash(km)
    res = run("explain", d / "km.joblib", d / "wine.csv", "--output", d / "rel.csv")
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""  # no progress bar when stderr is not a terminal
    header, rel = read_csv(d / "rel.csv")
    expected = neon.explain(km, Xn)
    assert header == list(X.columns)
    np.testing.assert_allclose(rel, expected.relevance, rtol=1e-12, atol=1e-9)
    # cluster logits sum to the midpoint-rule relevance exactly (NEON, docs/theory.md §4)
    mu = km.cluster_centers_
    d2 = ((Xn[:, None, :] - mu[None]) ** 2).sum(-1)
    c = km.predict(Xn)
    own = d2[np.arange(len(Xn)), c]
    d2[np.arange(len(Xn)), c] = np.inf
    np.testing.assert_allclose(rel.sum(1), d2.min(1) - own, rtol=1e-8)
    assert "explained 178 samples" in res.stdout
    assert joblib.hash(joblib.load(d / "km.joblib")) == before


@pytest.mark.skipif(not NEON_SCRIPT.exists(), reason="the neon console script is not installed in this environment")
def test_console_script_npy_in_and_out_with_target_and_small_chunks(files, wine):
    d, km = files
    _, Xn = wine
    res = subprocess.run([str(NEON_SCRIPT), "explain", str(d / "km.joblib"), str(d / "wine.npy"), "--target", "1",
                          "--batch-size", "7", "-q", "-o", str(d / "rel.npy")], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "" and res.stderr == ""
    expected = neon.explain(km, Xn, target=1)
    np.testing.assert_allclose(np.load(d / "rel.npy"), expected.relevance, rtol=1e-12, atol=1e-9)
    assert (np.load(d / "rel.npy").sum(1)[km.predict(Xn) != 1] < 0).all()  # a foreign cluster's logit is negative


@pytest.mark.slow  # a subprocess start imports torch and scikit-learn: ~10 s on shared cores
def test_parquet_in_and_out_and_a_plot(files, wine):
    d, km = files
    X, Xn = wine
    X.to_parquet(d / "wine.parquet")
    res = run("explain", d / "km.joblib", d / "wine.parquet", "-o", d / "rel.parquet", "--plot", d / "out.png")
    assert res.returncode == 0, res.stderr
    import pandas as pd

    rel = pd.read_parquet(d / "rel.parquet")
    assert list(rel.columns) == list(X.columns)
    np.testing.assert_allclose(rel.to_numpy(), neon.explain(km, Xn).relevance, rtol=1e-12, atol=1e-9)
    assert (d / "out.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_columns_are_matched_by_name(tmp_path, wine):
    X, Xn = wine
    km = KMeans(2, n_init=2, random_state=1).fit(X)  # fitted with feature names
    joblib.dump(km, tmp_path / "km.joblib")
    X[X.columns[::-1]].to_csv(tmp_path / "rev.csv", index=False)
    assert cli.main(["explain", str(tmp_path / "km.joblib"), str(tmp_path / "rev.csv"), "-q",
                     "-o", str(tmp_path / "r.csv")]) == 0
    header, rel = read_csv(tmp_path / "r.csv")
    assert header == list(X.columns)
    np.testing.assert_allclose(rel, neon.explain(km, X).relevance, rtol=1e-12, atol=1e-9)


def _error(capsys, argv):
    status = cli.main(argv)
    err = capsys.readouterr().err
    assert status == 1
    assert err.startswith("neon: error: ") and err.count("\n") == 1 and "Traceback" not in err
    return err


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
    assert "unknown preset" in _error(capsys, ["explain", str(d / "km.joblib"), str(d / "wine.npy"),
                                               "--rules", "nonsense"])
    assert "out of range" in _error(capsys, ["explain", str(d / "km.joblib"), str(d / "wine.npy"), "--target", "7"])


@pytest.mark.slow  # a subprocess start imports torch and scikit-learn: ~10 s on shared cores
def test_unsupported_estimator_exits_nonzero_without_traceback_unless_debug(tmp_path, wine):
    from sklearn.tree import DecisionTreeClassifier

    _, Xn = wine
    joblib.dump(DecisionTreeClassifier(max_depth=2).fit(Xn, np.arange(len(Xn)) % 2), tmp_path / "tree.joblib")
    np.save(tmp_path / "x.npy", Xn)
    res = run("explain", tmp_path / "tree.joblib", tmp_path / "x.npy")
    assert res.returncode == 1
    assert res.stderr.startswith("neon: error: UnsupportedModelError: neon cannot neuralize DecisionTreeClassifier")
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
    with pytest.raises(neon.UnsupportedModelError):  # --debug lets the exception (and its traceback) through
        cli.main(["explain", str(tmp_path / "tree.joblib"), str(tmp_path / "x.npy"), "--debug"])


def test_inspect_lists_layers_shapes_and_rules(files, tmp_path, capsys):
    d, km = files
    assert cli.main(["inspect", str(d / "km.joblib")]) == 0
    out = capsys.readouterr().out
    assert "cluster logit" in out and "input shape: (6,)" in out
    contrast = next(line for line in out.splitlines() if "CentroidContrast" in line)
    assert "(3, 2)" in contrast and "Midpoint" in contrast  # K clusters x (K - 1) competitors
    pool = next(line for line in out.splitlines() if "ReduceMin" in line)
    assert "(3,)" in pool and "SoftMin" in pool


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


def test_pipeline_with_class_label_target(tmp_path):
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = load_breast_cancer(as_frame=True)
    X = data.data.iloc[:, :8]
    y = data.target.map(dict(enumerate(data.target_names)))  # string labels: 'malignant', 'benign'
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
    joblib.dump(pipe, tmp_path / "pipe.joblib")
    X.iloc[:40].to_csv(tmp_path / "x.csv", index=False)
    assert cli.main(["explain", str(tmp_path / "pipe.joblib"), str(tmp_path / "x.csv"), "--target", "malignant",
                     "-q", "-o", str(tmp_path / "r.csv")]) == 0
    header, rel = read_csv(tmp_path / "r.csv")
    assert header == list(X.columns)
    index = list(pipe.classes_).index("malignant")
    expected = neon.explain(pipe, X.iloc[:40], target=index)
    np.testing.assert_allclose(rel, expected.relevance, rtol=1e-12, atol=1e-12)
    # the log-odds of 'malignant' is the signed decision function, explained in raw feature units against the
    # mean of the data (the default reference of linear models)
    sign = 1.0 if index == 1 else -1.0
    mean = X.iloc[:40].mean().to_frame().T
    np.testing.assert_allclose(expected.output, sign * (pipe.decision_function(X.iloc[:40])
                                                        - pipe.decision_function(mean)), rtol=1e-8)


def test_images_through_a_pickled_cnn(tmp_path, capsys):
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(),
                          nn.Linear(4 * 4 * 4, 3)).eval()
    torch.save(model, tmp_path / "cnn.pt")
    X = np.random.default_rng(0).random((12, 1, 8, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", X)
    argv = ["explain", str(tmp_path / "cnn.pt"), str(tmp_path / "x.npy"), "--rules", "epsilon_gamma_box", "-q"]
    assert cli.main(argv + ["-o", str(tmp_path / "r.npy"), "--plot", str(tmp_path / "r.png")]) == 0
    expected = neon.explain(model, X, rules="epsilon_gamma_box")
    got = np.load(tmp_path / "r.npy")
    assert got.shape == X.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, expected.relevance, rtol=1e-6, atol=1e-7)
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"
    assert "only be written as .npy" in _error(capsys, argv + ["-o", str(tmp_path / "r.csv")])
    assert not (tmp_path / "r.csv").exists()


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


def test_parquet_without_pyarrow_is_a_clear_error(files, tmp_path, monkeypatch, capsys):
    d, _ = files
    (tmp_path / "x.parquet").write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow now raises ImportError
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    err = _error(capsys, ["explain", str(d / "km.joblib"), str(tmp_path / "x.parquet")])
    assert "needs pyarrow" in err
    err = _error(capsys, ["explain", str(d / "km.joblib"), str(d / "wine.npy"), "-o", str(tmp_path / "r.parquet")])
    assert "needs pyarrow" in err
