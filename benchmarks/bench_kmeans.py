"""Speed and memory of k-means explanations against ``KMeans.predict`` on the same data, in one run.

Goal (issue 3): explaining N=100,000 x d=50, K=10 costs <= 5x ``KMeans.predict``. Both sides run on
one thread (torch and sklearn's OpenMP/BLAS pools), timings are the best of ``--repeat`` runs.
The explainer is fitted once (beta fixed) and then timed on ``explain`` alone, the way it is used.

Usage: ``python benchmarks/bench_kmeans.py [--n 100000] [--d 50] [--k 10] [--threads 1]``
"""

from __future__ import annotations

import argparse
import resource

import numpy as np
import torch
from _timing import best_of
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs
from threadpoolctl import threadpool_limits

import neon


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--d", type=int, default=50)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--profile", action="store_true", help="print where explain spends its time")
    parser.add_argument("--batch-size", type=int, default=None, help="rows per chunk (default: the network's)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    X, _ = make_blobs(args.n, args.d, centers=args.k, cluster_std=3.0, random_state=0)
    with threadpool_limits(args.threads):
        km = KMeans(args.k, n_init=1, random_state=0).fit(X[:20_000])
        explainer = neon.Explainer(km, batch_size=args.batch_size).fit(X[:20_000])
        explainer.explain(X[:1000])  # warm-up
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t_predict = best_of(lambda: km.predict(X), args.repeat)
        t_explain = best_of(lambda: explainer.explain(X), args.repeat)
        t_predict2 = best_of(lambda: km.predict(X), args.repeat)  # the machine is shared: measure twice
        rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        expl = explainer.explain(X)
    t_predict = min(t_predict, t_predict2)
    cons = np.abs(expl.absorbed).max() / np.abs(expl.output).max()
    agree = (expl.target == km.predict(X)).mean()
    print(f"k-means N={args.n} d={args.d} K={args.k} threads={args.threads} "
          f"chunk={args.batch_size or explainer.network_.chunk_size} rows")
    print(f"  KMeans.predict        {t_predict * 1e3:8.1f} ms")
    print(f"  neon explain          {t_explain * 1e3:8.1f} ms   ratio {t_explain / t_predict:5.1f}x  (goal <= 5x)")
    print(f"  output array itself   {X.nbytes / 2**20:8.1f} MiB; peak RSS grew by {(rss1 - rss0) / 1024:.1f} MiB "
          f"(an n x K x K x d tensor would be {args.n * args.k * args.k * args.d * 8 / 2**30:.1f} GiB)")
    print(f"  max |absorbed| / max |f| = {cons:.1e}; targets == predict on {agree:.1%}")
    if args.profile:
        import cProfile
        import pstats

        with threadpool_limits(args.threads):
            profiler = cProfile.Profile()
            profiler.runcall(explainer.explain, X)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(14)


if __name__ == "__main__":
    main()
