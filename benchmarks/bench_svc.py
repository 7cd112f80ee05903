"""Speed of the SVC explanations, as ratios measured in one run (issues 3 and 13: <= 10x ``decision_function``).

Run: ``python benchmarks/bench_svc.py [--n 5000] [--threads 2]``; at the issue's size
``python benchmarks/bench_svc.py --n 1000000 --no-shap --models "SVC(rbf)" --repeat 1``. For each model it prints

- the time of sklearn's ``decision_function`` on ``n`` points (libsvm, the baseline),
- the time of ``Explainer.explain`` on the same points (the explainer is fitted once beforehand),
- their ratio (goal: <= 10); both run in turn for ``--repeat`` rounds, best wall-clock time of each
  (``_rounds.py``), the load average before and after,
- SHAP ``KernelExplainer``'s time per sample for the same model's ``decision_function`` (background
  of 20 k-means centres, ``nsamples=200``: deliberately small) and the per-sample speed-up of neon
  (goal: >= 500).
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch
from _rounds import load_average, rounds
from sklearn.datasets import make_classification
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, LinearSVC

import neon


def shap_time_per_sample(model, X_train: np.ndarray, X: np.ndarray, n_explain: int = 4) -> float | None:
    try:
        import shap
    except ImportError:  # pragma: no cover
        return None
    background = shap.kmeans(X_train, 20)
    explainer = shap.KernelExplainer(model.decision_function, background)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        explainer.shap_values(X[:n_explain], nsamples=200, silent=True)
    return (time.perf_counter() - t0) / n_explain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=5000, help="points to explain")
    parser.add_argument("--n-train", type=int, default=1500)
    parser.add_argument("--d", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (libsvm is single-threaded; more can be slower on a loaded machine)")
    parser.add_argument("--no-shap", action="store_true")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--models", default="", help="only the models whose name contains this text")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch threads: {torch.get_num_threads()}; n={args.n:,} explained points, d={args.d}, "
          f"{args.n_train} training points; {load_average()}")
    header = (f"{'model':<34} {'n_SV':>5} {'decision_function':>18} {'neon explain':>13} {'ratio':>7} "
              f"{'SHAP / sample':>14} {'neon / sample':>14} {'speed-up':>9}")
    print(header)
    print("-" * len(header))
    for n_classes in (2, 3):
        X, y = make_classification(args.n_train + args.n, args.d, n_informative=10, n_classes=n_classes,
                                   random_state=0)
        X = StandardScaler().fit_transform(X)
        X_train, y_train, X_test = X[:args.n_train], y[:args.n_train], X[args.n_train:]
        models = [(f"SVC(rbf), {n_classes} classes", SVC().fit(X_train, y_train)),
                  (f"SVC(rbf, gamma=0.2), {n_classes} classes", SVC(gamma=0.2).fit(X_train, y_train)),
                  (f"SVC(linear), {n_classes} classes", SVC(kernel="linear").fit(X_train, y_train)),
                  (f"LinearSVC, {n_classes} classes", LinearSVC().fit(X_train, y_train))]
        for name, model in models:
            if args.models not in name:
                continue
            n_sv = len(model.support_vectors_) if hasattr(model, "support_vectors_") else 0
            explainer = neon.Explainer(model, progress=False).fit(X_train)
            explainer.explain(X_test[:50])  # warm-up
            best = rounds({"model": lambda m=model, x=X_test: m.decision_function(x),
                           "neon": lambda e=explainer, x=X_test: e.explain(x)}, args.repeat)
            t_dec, t_neon = best["model"].wall, best["neon"].wall
            shap_t = None if args.no_shap or "rbf" not in name else shap_time_per_sample(model, X_train, X_test)
            per = t_neon / len(X_test)
            shap_cols = (f"{shap_t * 1e3:>11.1f} ms {per * 1e6:>11.1f} us {shap_t / per:>8.0f}x"
                         if shap_t is not None else f"{'-':>14} {per * 1e6:>11.1f} us {'-':>9}")
            print(f"{name:<34} {n_sv:>5} {t_dec * 1e3:>15.1f} ms {t_neon * 1e3:>10.1f} ms {t_neon / t_dec:>6.2f}x "
                  + shap_cols)


if __name__ == "__main__":
    main()
