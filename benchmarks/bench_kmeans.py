"""Speed and memory of k-means explanations against ``KMeans.predict`` on the same data, in one run.

Goals (issue 13): explaining N=100,000 x d=50, K=10 on one thread costs <= 5x ``KMeans.predict``; the same
ratio at 1,000,000 rows with all threads, in float32 and float64. torch and scikit-learn's OpenMP/BLAS pools
run on ``--threads`` threads. The explainer is fitted once (beta fixed) and then timed on ``explain``
alone, the way it is used. ``predict`` and ``explain`` run in turn for ``--repeat`` rounds
(``_rounds.py``); the table shows the best round of each, wall-clock and CPU time, and their ratios.
"network.propagate only" is the engine and the rules alone on the same chunks (no input validation, no
assembly of the result): what ``explain`` adds to it is the front's per-chunk work.
The load average is printed before and after: on a loaded machine the wall-clock ratios mean little,
and with several threads OpenMP's barriers wait for threads that other processes hold.

Usage::

    python benchmarks/bench_kmeans.py                                  # 100k x 50, K=10, one thread
    python benchmarks/bench_kmeans.py --n 1000000 --threads 2 --dtype float32
    python benchmarks/bench_kmeans.py --profile                        # where explain spends its time
"""

from __future__ import annotations

import argparse
import os
import resource

import numpy as np
import torch
from _rounds import load_average, rounds, spin_note
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs
from threadpoolctl import threadpool_limits

import neon


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--d", type=int, default=50)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1, help="0: all CPUs")
    parser.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                        help="of the data and of the model (KMeans keeps the dtype it is fitted on)")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--profile", action="store_true", help="print where explain spends its time")
    parser.add_argument("--batch-size", type=int, default=None, help="rows per chunk (default: the network's)")
    args = parser.parse_args()

    threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    print(f"before: {load_average()}")
    note = spin_note(threads)
    if note:
        print(note)
    X, _ = make_blobs(args.n, args.d, centers=args.k, cluster_std=3.0, random_state=0)
    X = X.astype(args.dtype)
    with threadpool_limits(threads):
        km = KMeans(args.k, n_init=1, random_state=0).fit(X[:20_000])
        explainer = neon.Explainer(km, batch_size=args.batch_size, progress=False).fit(X[:20_000])
        explainer.explain(X[:1000])  # warm-up
        net, rules, xt = explainer.network_, explainer.rules_, torch.from_numpy(X)
        chunk = args.batch_size or net.chunk_size or args.n

        def propagate_only() -> None:
            for a in range(0, args.n, chunk):
                net.propagate(xt[a:a + chunk], None, rules)

        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        best = rounds({"predict": lambda: km.predict(X), "explain": lambda: explainer.explain(X),
                       "propagate": propagate_only}, args.repeat)
        rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        expl = explainer.explain(X)
    predict, explain, engine = best["predict"], best["explain"], best["propagate"]
    cons = np.abs(expl.absorbed).max() / np.abs(expl.output).max()
    agree = (expl.target == km.predict(X)).mean()
    print(f"k-means N={args.n} d={args.d} K={args.k} {args.dtype} threads={threads} "
          f"chunk={args.batch_size or explainer.network_.chunk_size} rows, best of {args.repeat} rounds")
    print(f"  {'':22}{'wall':>10}{'cpu':>10}   (best round of each)")
    print(f"  {'KMeans.predict':22}{predict.wall * 1e3:8.1f}ms{predict.cpu * 1e3:8.1f}ms")
    for name, t in (("neon explain", explain), ("network.propagate only", engine)):
        print(f"  {name:22}{t.wall * 1e3:8.1f}ms{t.cpu * 1e3:8.1f}ms   ratio {t.wall / predict.wall:5.2f}x wall, "
              f"{t.cpu / predict.cpu:5.2f}x cpu" + ("  (goal <= 5x)" if t is explain else ""))
    print(f"  output array itself   {X.nbytes / 2**20:8.1f} MiB; peak RSS grew by {(rss1 - rss0) / 1024:.1f} MiB "
          f"(an n x K x K x d tensor would be {args.n * args.k * args.k * args.d * X.itemsize / 2**30:.1f} GiB)")
    print(f"  max |absorbed| / max |f| = {cons:.1e}; targets == predict on {agree:.2%}")
    print(f"after: {load_average()}")
    if args.profile:
        import cProfile
        import pstats
        import time

        with threadpool_limits(threads):
            profiler = cProfile.Profile(time.process_time)
            profiler.runcall(explainer.explain, X)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(16)


if __name__ == "__main__":
    main()
