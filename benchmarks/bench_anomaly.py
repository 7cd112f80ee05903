"""Speed of one-class SVM / KDE explanations, against the model itself and SHAP's KernelExplainer, in one run.

Goals (issues 3 and 13): explaining an RBF ``OneClassSVM`` costs <= 10x its ``decision_function`` on the same
data, a Gaussian ``KernelDensity`` <= 10x its ``score_samples``, also at 1,000,000 rows; and neon is >= 500x
faster per sample than SHAP's KernelExplainer on the same model (SHAP runs with a small background and
``nsamples`` to stay quick; its real cost grows with both). The model and neon run in turn for ``--repeat``
rounds (``_rounds.py``): best wall-clock and CPU time of each, and their ratios; the load average is printed.
Torch and sklearn/BLAS run on ``--threads`` threads.

Usage::

    python benchmarks/bench_anomaly.py                                   # 20,000 rows, d=20
    python benchmarks/bench_anomaly.py --n 1000000 --kde-train 500 --no-shap --repeat 2
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch
from _rounds import load_average, rounds
from sklearn.neighbors import KernelDensity
from sklearn.svm import OneClassSVM
from threadpoolctl import threadpool_limits

import neon


def report(name: str, model_time, neon_time, goal: float = 10.0) -> None:  # noqa: ANN001 - Timing
    print(f"  {name:<22}{model_time.wall * 1e3:10.1f} ms wall {model_time.cpu * 1e3:10.1f} ms cpu")
    print(f"  {'neon explain':<22}{neon_time.wall * 1e3:10.1f} ms wall {neon_time.cpu * 1e3:10.1f} ms cpu   ratio "
          f"{neon_time.wall / model_time.wall:5.2f}x wall, {neon_time.cpu / model_time.cpu:5.2f}x cpu "
          f"(goal <= {goal:g}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20_000, help="rows to explain")
    parser.add_argument("--d", type=int, default=20)
    parser.add_argument("--n-train", type=int, default=2000, help="OneClassSVM training rows")
    parser.add_argument("--kde-train", type=int, default=None, help="KernelDensity points (default: --n-train)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-shap", action="store_true")
    parser.add_argument("--shap-samples", type=int, default=20, help="rows SHAP explains")
    parser.add_argument("--shap-nsamples", type=int, default=200, help="KernelExplainer's nsamples")
    parser.add_argument("--shap-background", type=int, default=20, help="background rows (k-means summary)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    print(f"before: {load_average()}")
    rng = np.random.default_rng(0)
    X_train = rng.standard_normal((args.n_train, args.d))
    X = rng.standard_normal((args.n, args.d)) * 1.3
    with threadpool_limits(args.threads):
        oc = OneClassSVM(gamma="scale", nu=0.1).fit(X_train)
        explainer = neon.Explainer(oc, progress=False).fit()
        explainer.explain(X[:100])  # warm-up
        best = rounds({"model": lambda: oc.decision_function(X), "neon": lambda: explainer.explain(X)}, args.repeat)
        expl = explainer.explain(X[:20_000])
        print(f"OneClassSVM rbf: {len(oc.support_vectors_)} support vectors, N={args.n:,}, d={args.d}, "
              f"threads={args.threads}, chunk {explainer.network_.chunk_size} rows, best of {args.repeat} rounds")
        report("decision_function", best["model"], best["neon"])
        per_neon = best["neon"].wall / args.n
        print(f"  neon per sample       {per_neon * 1e6:9.2f} us;  max |absorbed|/|o| = "
              f"{np.max(np.abs(expl.absorbed) / np.abs(expl.output)):.1e} (first 20,000 rows)")

        try:
            if args.no_shap:
                raise ImportError
            import shap
        except ImportError:
            print("  SHAP skipped")
        else:
            background = shap.kmeans(X_train, args.shap_background)
            kernel = shap.KernelExplainer(oc.decision_function, background)
            rows = X[:args.shap_samples]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                start = time.perf_counter()
                kernel.shap_values(rows, nsamples=args.shap_nsamples, silent=True)
                t_shap = (time.perf_counter() - start) / len(rows)
            print(f"  SHAP KernelExplainer  {t_shap * 1e3:9.2f} ms per sample (background {args.shap_background}, "
                  f"nsamples {args.shap_nsamples})   neon is {t_shap / per_neon:,.0f}x faster (goal >= 500x)")

        kde_points = X_train[:args.kde_train] if args.kde_train else X_train
        kde = KernelDensity(bandwidth="scott").fit(kde_points)
        kex = neon.Explainer(kde, progress=False).fit()
        kex.explain(X[:100])
        best = rounds({"model": lambda: kde.score_samples(X), "neon": lambda: kex.explain(X)}, args.repeat)
        net = kex.network_
        print(f"KernelDensity gaussian: {len(kde_points)} points, N={args.n:,}, chunk {net.chunk_size} rows (largest "
              f"temporary {net.chunk_size * len(kde_points) * 8 / 2**20:.1f} MiB; an n x points x d tensor would be "
              f"{args.n * len(kde_points) * args.d * 8 / 2**30:.1f} GiB)")
        report("score_samples", best["model"], best["neon"])
    print(f"after: {load_average()}")


if __name__ == "__main__":
    main()
