"""Speed of one-class SVM / KDE explanations, against the model itself and SHAP's KernelExplainer, in one run.

Goals (issue 3): explaining an RBF ``OneClassSVM`` costs <= 10x its ``decision_function`` on the same
data, and neon is >= 500x faster per sample than SHAP's KernelExplainer on the same model (SHAP runs
with a small background and ``nsamples`` to stay quick; its real cost grows with both). Also prints
``KernelDensity``: explain vs ``score_samples``, and the memory bound of the chunked KDE network.
Torch and sklearn/BLAS run on ``--threads`` threads. Timings are the best of ``--repeat`` runs.

Usage: ``python benchmarks/bench_anomaly.py [--n 20000] [--d 20] [--threads 1] [--shap-samples 20]``
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch
from _timing import best_of
from sklearn.neighbors import KernelDensity
from sklearn.svm import OneClassSVM
from threadpoolctl import threadpool_limits

import neon


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="rows to explain")
    parser.add_argument("--d", type=int, default=20)
    parser.add_argument("--n-train", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--shap-samples", type=int, default=20, help="rows SHAP explains")
    parser.add_argument("--shap-nsamples", type=int, default=200, help="KernelExplainer's nsamples")
    parser.add_argument("--shap-background", type=int, default=20, help="background rows (k-means summary)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    X_train = rng.standard_normal((args.n_train, args.d))
    X = rng.standard_normal((args.n, args.d)) * 1.3
    with threadpool_limits(args.threads):
        oc = OneClassSVM(gamma="scale", nu=0.1).fit(X_train)
        explainer = neon.Explainer(oc).fit()
        explainer.explain(X[:100])  # warm-up
        t_dec = best_of(lambda: oc.decision_function(X), args.repeat)
        t_neon = best_of(lambda: explainer.explain(X), args.repeat)
        expl = explainer.explain(X)
        print(f"OneClassSVM rbf: {len(oc.support_vectors_)} support vectors, N={args.n}, d={args.d}, "
              f"threads={args.threads}")
        print(f"  decision_function     {t_dec * 1e3:9.1f} ms")
        print(f"  neon explain          {t_neon * 1e3:9.1f} ms   ratio {t_neon / t_dec:6.2f}x  (goal <= 10x)")
        print(f"  neon per sample       {t_neon / args.n * 1e6:9.2f} us;  max |absorbed|/|o| = "
              f"{np.max(np.abs(expl.absorbed) / np.abs(expl.output)):.1e}")

        try:
            import shap
        except ImportError:  # pragma: no cover - shap is a test dependency
            print("  SHAP not installed: skipped")
        else:
            background = shap.kmeans(X_train, args.shap_background)
            kernel = shap.KernelExplainer(oc.decision_function, background)
            rows = X[:args.shap_samples]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                start = time.perf_counter()
                kernel.shap_values(rows, nsamples=args.shap_nsamples, silent=True)
                t_shap = (time.perf_counter() - start) / len(rows)
            per_neon = t_neon / args.n
            print(f"  SHAP KernelExplainer  {t_shap * 1e3:9.2f} ms per sample (background {args.shap_background}, "
                  f"nsamples {args.shap_nsamples})   neon is {t_shap / per_neon:,.0f}x faster (goal >= 500x)")

        kde = KernelDensity(bandwidth="scott").fit(X_train)
        kex = neon.Explainer(kde).fit()
        kex.explain(X[:100])
        t_score = best_of(lambda: kde.score_samples(X), args.repeat)
        t_kde = best_of(lambda: kex.explain(X), args.repeat)
        net = kex.network_
        print(f"KernelDensity gaussian: {args.n_train} points, chunk {net.chunk_size} rows "
              f"(largest temporary {net.chunk_size * args.n_train * 8 / 2**20:.1f} MiB; an n x points x d tensor "
              f"would be {args.n * args.n_train * args.d * 8 / 2**30:.1f} GiB)")
        print(f"  score_samples         {t_score * 1e3:9.1f} ms")
        print(f"  neon explain          {t_kde * 1e3:9.1f} ms   ratio {t_kde / t_score:6.2f}x")


if __name__ == "__main__":
    main()
