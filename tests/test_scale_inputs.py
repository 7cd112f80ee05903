"""Dataset scale on one machine and on many: chunked explanation from every input form, results in the same form,
memory bounded by the chunk, progress, pickling, and Dask (a LocalCluster of 2 worker processes)."""

from __future__ import annotations

import io
import pickle
import subprocess
import sys
from contextlib import redirect_stderr
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.cluster import KMeans
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from torch import nn

import neon

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wine():
    X = load_wine().data
    return X, KMeans(3, n_init=3, random_state=0).fit(X)


@pytest.fixture(scope="module")
def svc_pipe():
    X, y = load_breast_cancer(return_X_y=True)
    return X[:200], make_pipeline(StandardScaler(), SVC(gamma=0.05)).fit(X[:200], y[:200])


def cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(4 * 4 * 4, 3)).eval()


# ---------------------------------------------------------------- one machine: forms in, same forms out
def test_memmap_dataframe_table_and_tensor_give_the_in_memory_numbers(wine, tmp_path) -> None:
    import pyarrow as pa

    X, km = wine
    explainer = neon.Explainer(km, batch_size=32).fit(X)
    want = explainer.explain(X)
    mm = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.float64, shape=X.shape)
    mm[:] = X
    mm.flush()
    got = explainer.explain(np.load(tmp_path / "x.npy", mmap_mode="r"))
    assert type(got.relevance) is np.ndarray
    np.testing.assert_array_equal(got.relevance, want.relevance)
    df = pd.DataFrame(X, columns=load_wine().feature_names, index=np.arange(100, 100 + len(X)))
    fr = neon.Explainer(km, batch_size=32).fit(df).explain(df)
    assert isinstance(fr.relevance, pd.DataFrame) and fr.relevance.index.equals(df.index)
    np.testing.assert_array_equal(fr.relevance.to_numpy(), want.relevance)
    np.testing.assert_array_equal(fr.target.to_numpy(), want.target)
    table = pa.Table.from_pandas(df, preserve_index=False)
    tb = neon.Explainer(km, batch_size=32).fit(df).explain(table)
    assert isinstance(tb.relevance, pa.Table) and tb.relevance.column_names == list(df.columns)
    np.testing.assert_array_equal(np.column_stack([c.to_numpy() for c in tb.relevance.columns]), want.relevance)
    t = torch.as_tensor(X)
    tt = explainer.explain(t)
    assert isinstance(tt.relevance, torch.Tensor) and tt.relevance.dtype == torch.float64
    np.testing.assert_array_equal(tt.relevance.numpy(), want.relevance)


def test_the_computation_follows_the_input_dtype_unless_told(wine) -> None:
    X, km = wine
    explainer = neon.Explainer(km).fit(X)
    x32 = X.astype(np.float32)
    e32 = explainer.explain(x32)
    e64 = explainer.explain(X)
    assert e32.relevance.dtype == np.float32 and e64.relevance.dtype == np.float64
    # float32 arithmetic really ran (it differs from float64 by float32 rounding, not more)
    diff = np.abs(e32.relevance - e64.relevance).max() / np.abs(e64.relevance).max()
    assert 0 < diff < 1e-5
    forced = neon.Explainer(km, dtype=torch.float64).fit(X).explain(x32)
    assert forced.relevance.dtype == np.float32  # returned in the input's dtype...
    in64 = explainer.explain(x32.astype(np.float64)).relevance.astype(np.float32)
    np.testing.assert_array_equal(forced.relevance, in64)  # ...computed in float64


def test_an_iterable_of_batches_gives_one_explanation_per_batch(wine) -> None:
    X, km = wine
    explainer = neon.Explainer(km).fit(X)
    want = explainer.explain(X)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.as_tensor(X),
                                                                        torch.zeros(len(X))), batch_size=50)
    parts = explainer.explain(loader)
    assert not isinstance(parts, neon.Explanation)
    parts = list(parts)
    assert [len(p) for p in parts] == [50, 50, 50, 28]
    np.testing.assert_array_equal(torch.cat([p.relevance for p in parts]).numpy(), want.relevance)
    with pytest.raises(ValueError, match="batch 1 has per-sample shape"):
        list(explainer.explain(iter([X[:5], X[:5, :6]])))


def test_progress_shows_when_asked_and_stays_silent_otherwise(wine) -> None:
    X, km = wine
    buf = io.StringIO()
    with redirect_stderr(buf):
        neon.Explainer(km, batch_size=20, progress=True).fit(X).explain(X)
    assert "neon explain" in buf.getvalue() and "178" in buf.getvalue()
    buf = io.StringIO()
    with redirect_stderr(buf):
        neon.Explainer(km, batch_size=20).fit(X).explain(X)  # default: not a terminal here
        neon.Explainer(km, batch_size=20, progress=False).fit(X).explain(X)
    assert buf.getvalue() == ""


@pytest.mark.parametrize("which", ["kmeans", "svc pipeline", "cnn"])
def test_explainers_pickle_and_explain_the_same_after(which, wine, svc_pipe) -> None:
    if which == "kmeans":
        X, model = wine
    elif which == "svc pipeline":
        X, model = svc_pipe
    else:
        model, X = cnn(), torch.rand(6, 1, 8, 8)
    explainer = neon.Explainer(model).fit(X)
    want = explainer.explain(X)
    again = pickle.loads(pickle.dumps(explainer))
    got = again.explain(X)
    np.testing.assert_array_equal(np.asarray(got.relevance), np.asarray(want.relevance))
    np.testing.assert_array_equal(np.asarray(got.output), np.asarray(want.output))


def test_bad_scale_options_are_refused(wine) -> None:
    import dask.array as da

    X, km = wine
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="batch_size"):
            neon.Explainer(km, batch_size=bad)
    with pytest.raises(ValueError, match="does not exist here; available: cpu"):
        neon.Explainer(km, device="cuda:7" if torch.cuda.is_available() else "cuda")
    with pytest.raises(ValueError, match="not a device"):
        neon.Explainer(km, device="gpu please")
    with pytest.raises(ValueError, match="dtype"):
        neon.Explainer(km, dtype=torch.int32)
    d = da.from_array(X, chunks=50)
    unknown = d[d[:, 0] > 13]
    with pytest.raises(ValueError, match="unknown chunk sizes"):
        neon.Explainer(km).fit(X).explain(unknown)


def test_peak_memory_does_not_grow_with_the_number_of_rows(tmp_path) -> None:
    """60k vs 240k rows explained in chunks of 4k: beyond the results themselves, memory stays flat.

    (In-memory inputs: a memmap's pages read from the file count as resident memory too, which would hide
    what neon allocates.)"""
    script = """
import resource, sys, numpy as np, torch
from sklearn.cluster import KMeans
import neon
torch.set_num_threads(1)
n = int(sys.argv[1])
rng = np.random.default_rng(0)
km = KMeans(8, n_init=1, random_state=0).fit(rng.normal(size=(2000, 20)))
X = rng.normal(size=(n, 20))
explainer = neon.Explainer(km, batch_size=4000).fit(np.asarray(X[:2000]))
explainer.explain(np.asarray(X[:4000]))  # warm-up
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
expl = explainer.explain(X)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
results = expl.relevance.nbytes + expl.output.nbytes + expl.target.nbytes + expl.absorbed.nbytes + expl.baseline.nbytes
print((after - before) / 1024, results / 2**20)
"""
    grown = {}
    for n in (60_000, 240_000):
        out = subprocess.run([sys.executable, "-c", script, str(n)], capture_output=True, text=True, cwd=ROOT,
                             timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        peak, output = map(float, out.stdout.split()[-2:])
        grown[n] = peak - output  # MiB beyond the results themselves
    # 4x the rows: the working memory beyond the results must not grow by a copy of the data (27 MiB here)
    assert grown[240_000] - grown[60_000] < 12, grown


# ---------------------------------------------------------------- many machines: Dask
@pytest.fixture(scope="module")
def client(dask_cluster):
    import distributed

    with distributed.Client(dask_cluster) as c:
        yield c


@pytest.mark.slow
def test_dask_on_a_local_cluster_equals_the_in_memory_result(client, wine, svc_pipe) -> None:
    import dask
    import dask.array as da
    import dask.dataframe as dd

    cases = []
    X, km = wine
    cases.append((km, X, da.from_array(X, chunks=(40, -1))))
    Xs, pipe = svc_pipe
    cases.append((pipe, Xs, dd.from_pandas(pd.DataFrame(Xs), npartitions=3)))
    model, images = cnn(), torch.rand(30, 1, 8, 8).numpy()
    cases.append((model, images, da.from_array(images, chunks=(7, 1, 8, 8))))
    for model, data, lazy in cases:
        # the same chunks in memory: float32 convolutions round differently with the batch size (the kernels
        # are chosen by shape), so equality is exact for equal chunks and holds to float32 rounding otherwise
        rows = (lazy.to_dask_array(lengths=True) if hasattr(lazy, "to_dask_array") else lazy).chunks[0][0]
        explainer = neon.Explainer(model, batch_size=rows).fit(data)
        want = explainer.explain(data)
        expl = explainer.explain(lazy)
        assert isinstance(expl.relevance, da.Array)
        assert expl.relevance.chunks[0] == (lazy.to_dask_array(lengths=True) if hasattr(lazy, "to_dask_array")
                                            else lazy).chunks[0]
        rel, out, tgt, absorbed = dask.compute(expl.relevance, expl.output, expl.target, expl.absorbed)
        np.testing.assert_array_equal(rel, np.asarray(want.relevance))
        np.testing.assert_array_equal(out, np.asarray(want.output))
        np.testing.assert_array_equal(tgt, np.asarray(want.target))
        np.testing.assert_array_equal(absorbed, np.asarray(want.absorbed))
    assert len(client.scheduler_info()["workers"]) == 2
