"""Throughput and peak memory of a large k-means explanation next to ``KMeans.predict`` (issue 13, "Scale").

1,000,000 x 50 rows (float64), ``KMeans(20)`` fitted on the first 20,000 rows, all CPUs. Measured:

- ``KMeans.predict`` on the whole array: the baseline;
- ``neon.Explainer(km, batch_size=c).explain(X)`` in this process, for chunks ``c`` of 10,000 and 100,000 rows;
- the same on a dask ``LocalCluster`` with 2 worker processes (:func:`local_cluster_run`; the data persisted on
  the workers first, the relevance persisted there; memory of the largest worker).

Each measurement runs in a fresh subprocess, which generates the same data from a seed in blocks (so that
no temporary copy of the data inflates the peak), fits the model, calls the method once untimed, then
``--repeat`` times timed: "rows/s" is ``n`` over the best call; "peak" is the subprocess's peak resident
memory (``ru_maxrss``: Python, torch, the data, the result), "work" the peak minus the resident memory once
data and model exist. Goals: neon's throughput >= 1/5 of predict's; peak memory < 2 GB; the LocalCluster
run within 1.5x of the in-process one.

Usage::

    python benchmarks/scale.py                         # the issue's sizes (a few minutes on 2 cores)
    python benchmarks/scale.py --n 200000 --chunks 10000
    python benchmarks/scale.py --n 3000 --k 3 --chunks 1000 --in-process --repeat 1   # a quick check
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass
class Measurement:
    """One method on the whole data: best seconds of the timed calls, peak and baseline resident memory (MiB)."""

    seconds: float
    peak_mib: float
    base_mib: float


def rss_mib() -> float:
    """Resident memory of this process now, in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")  # pragma: no cover - Linux only


def peak_mib() -> float:
    """Peak resident memory of this process so far, in MiB (``ru_maxrss`` is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_data(n: int, d: int, k: int, dtype: str, seed: int = 0) -> np.ndarray:
    """``k`` Gaussian blobs, ``n x d``, written block by block into one array (no temporary copy of it)."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=4.0, size=(k, d))
    X = np.empty((n, d), dtype=dtype)
    for a in range(0, n, 100_000):
        b = min(n, a + 100_000)
        X[a:b] = centers[rng.integers(k, size=b - a)] + rng.standard_normal((b - a, d))
    return X


def fitted_model(X: np.ndarray, k: int) -> Any:
    from sklearn.cluster import KMeans

    return KMeans(k, n_init=1, random_state=0).fit(X[:20_000])


def best_time(run: Any, repeat: int) -> float:
    """Seconds of the fastest of ``repeat`` calls of ``run``, after one untimed call (warm-up, and the peak of one
    call); no result is kept between calls, so that the peak memory is that of one call."""
    result = run()
    del result
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - start)
        del result
    return best


def measure(method: str, chunk: int, args: argparse.Namespace) -> Measurement:
    """Generate the data, fit, run ``method`` once untimed and ``args.repeat`` times timed, in this process."""
    import torch
    from threadpoolctl import threadpool_limits

    import neon

    torch.set_num_threads(args.threads)
    with threadpool_limits(args.threads):
        X = make_data(args.n, args.d, args.k, args.dtype)
        km = fitted_model(X, args.k)
        if method == "predict":
            def run() -> Any:
                return km.predict(X)
        else:
            explainer = neon.Explainer(km, batch_size=chunk, progress=False).fit(X[:20_000])

            def run() -> Any:
                return explainer.explain(X)
        base = rss_mib()
        best = best_time(run, args.repeat)
    return Measurement(best, peak_mib(), base)


def in_subprocess(method: str, chunk: int, args: argparse.Namespace) -> Measurement:
    """:func:`measure` in a fresh Python process, so that its peak memory is its own."""
    cmd = [sys.executable, __file__, "--child", method, "--child-chunk", str(chunk), "--n", str(args.n),
           "--d", str(args.d), "--k", str(args.k), "--dtype", args.dtype, "--threads", str(args.threads),
           "--repeat", str(args.repeat)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return Measurement(**json.loads(out.strip().splitlines()[-1]))


def _worker_memory() -> tuple[float, float]:
    """(resident now, peak so far) of a worker process, MiB."""
    return rss_mib(), peak_mib()


def _worker_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def local_cluster_run(chunk: int, args: argparse.Namespace) -> Measurement | None:
    """The same explanation on a dask ``LocalCluster`` with 2 worker processes on loopback.

    The data (the same array as in-process) is scattered to the workers block by block (``chunk`` rows each)
    before timing, so that only the explanation is timed: ``explainer.explain(X)`` with ``X`` the dask array of
    those blocks, its relevance persisted on the workers (best of ``args.repeat``; the result stays on the
    cluster, as it would when written to storage). Threads are split between the workers (``args.threads // 2``,
    at least 1, for torch and BLAS). Memory: the largest worker's peak resident memory ("peak") and that peak
    minus its resident memory once its share of the data was there ("work"). ``None`` (printed as "not
    measured") without ``distributed``.
    """
    try:
        import dask.array as da
        from distributed import Client, LocalCluster, wait
    except ImportError:
        return None
    import logging

    import neon

    per_worker = max(1, args.threads // 2)
    X = make_data(args.n, args.d, args.k, args.dtype)
    km = fitted_model(X, args.k)
    explainer = neon.Explainer(km, batch_size=chunk, progress=False).fit(X[:20_000])
    env = {"OMP_NUM_THREADS": str(per_worker), "MKL_NUM_THREADS": str(per_worker),
           "OPENBLAS_NUM_THREADS": str(per_worker)}
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None,
                      silence_logs=logging.CRITICAL, env=env) as cluster, Client(cluster) as client:
        client.run(_worker_threads, per_worker)
        starts = range(0, args.n, chunk)
        # scattered, not embedded in the graph: the graph stays small and the data moves once
        blocks = client.scatter([X[a:a + chunk] for a in starts])
        Xd = client.persist(da.concatenate([da.from_delayed(f, shape=(min(chunk, args.n - a), args.d), dtype=X.dtype)
                                            for f, a in zip(blocks, starts)]))
        wait(Xd)
        del X
        base = client.run(_worker_memory)

        def run() -> Any:
            rel = client.persist(explainer.explain(Xd).relevance)
            wait(rel)
            return rel

        best = best_time(run, args.repeat)  # the warm-up ships the explainer
        memory = client.run(_worker_memory)
    worker = max(memory, key=lambda w: memory[w][1])
    return Measurement(best, memory[worker][1], base[worker][0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--d", type=int, default=50)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--chunks", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--in-process", action="store_true",
                        help="measure in this process (quick; the peak memory is then the running maximum)")
    parser.add_argument("--child", choices=("predict", "neon"), help=argparse.SUPPRESS)
    parser.add_argument("--child-chunk", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asdict(measure(args.child, args.child_chunk, args))))
        return

    from _rounds import load_average, spin_note

    run = measure if args.in_process else in_subprocess
    print(f"k-means explanation at scale: {args.n:,} x {args.d} {args.dtype}, K={args.k}, {args.threads} threads; "
          f"best of {args.repeat}; {load_average()}")
    note = spin_note(args.threads)
    if note:
        print(note)
    rows: list[tuple[str, Measurement | None]] = [("KMeans.predict", run("predict", 0, args))]
    for chunk in args.chunks:
        rows.append((f"neon, chunks of {chunk:,}", run("neon", chunk, args)))
    for chunk in args.chunks:
        rows.append((f"neon on LocalCluster(2), chunks of {chunk:,}", local_cluster_run(chunk, args)))
    predict = rows[0][1]
    assert predict is not None
    header = f"{'method':<42}{'seconds':>9}{'rows/s':>13}{'x predict':>11}{'peak MiB':>10}{'work MiB':>10}"
    print(header)
    print("-" * len(header))
    for name, m in rows:
        if m is None:
            print(f"{name:<42}{'not measured (distributed is not installed)':>53}")
            continue
        # seconds to 4 significant digits, so that rows/s can be checked against them at any size
        print(f"{name:<42}{m.seconds:9.4g}{args.n / m.seconds:13,.0f}{m.seconds / predict.seconds:10.2f}x"
              f"{m.peak_mib:10.0f}{m.peak_mib - m.base_mib:10.0f}")
    print()
    print("goals: neon's time <= 5x predict's (throughput >= 1/5), peak < 2048 MiB, LocalCluster <= 1.5x in-process")
    print(f"after: {load_average()}")


if __name__ == "__main__":
    main()
