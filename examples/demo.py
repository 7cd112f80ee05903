"""neon demo: explain a k-means clustering and a classifier on data that ships with scikit-learn.

Run:  python examples/demo.py [--out neon_demo.png]

1. Wine (13 chemical measurements): k-means with 3 clusters, neuralized into an exact min-pooling
   network (NEON) and explained with the midpoint rule: which measurements put a wine in its cluster?
2. Breast cancer (30 cell-nucleus features): logistic regression explained in log-odds against the
   mean patient: which features drive the prediction for individual patients?
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.cluster import KMeans  # noqa: E402
from sklearn.datasets import load_breast_cancer, load_wine  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

import neon  # noqa: E402


def top(names, values, k=3):
    order = np.argsort(-values)[:k]
    return ", ".join(f"{names[i]} ({values[i]:+.2f})" for i in order)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="neon_demo.png", help="where to save the figure")
    args = parser.parse_args()

    # 1. k-means on wine ---------------------------------------------------------------------------
    wine = load_wine()
    X = StandardScaler().fit_transform(wine.data)
    kmeans = KMeans(n_clusters=3, n_init=10, random_state=0).fit(X)
    explainer = neon.Explainer(kmeans).fit(X)
    expl = explainer.explain(X)
    print("1. Wine, k-means (3 clusters) explained with NEON (midpoint rule, soft-min pooling)")
    print(f"   network forward == KMeans: labels agree on "
          f"{100 * np.mean(expl.target == kmeans.predict(X)):.0f}% of {len(X)} wines")
    print(f"   conservation: max |f(x) - sum R| / |f(x)| = {np.max(np.abs(expl.absorbed) / np.abs(expl.output)):.1e}")
    for c in range(3):
        members = expl.target == c
        mean_rel = expl.relevance[members].mean(0)
        print(f"   cluster {c} ({members.sum():3d} wines): most relevant: {top(wine.feature_names, mean_rel)}")

    # 2. logistic regression on breast cancer ----------------------------------------------------------
    cancer = load_breast_cancer()
    Xc, yc = cancer.data, cancer.target
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)).fit(Xc, yc)
    explainer_c = neon.Explainer(clf, reference="mean").fit(Xc)
    patients = Xc[[0, 19, 100]]
    ec = explainer_c.explain(patients)
    print("\n2. Breast cancer, logistic regression explained in log-odds against the mean patient")
    for i, idx in enumerate([0, 19, 100]):
        label = cancer.target_names[ec.target[i]]
        print(f"   patient {idx:3d}: predicted {label:<9} log-odds vs mean {ec.output[i]:+6.2f} "
              f"= sum of relevance {ec.relevance[i].sum():+6.2f}; top: {top(cancer.feature_names, ec.relevance[i])}")

    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5))
    positions = np.arange(X.shape[1])
    for c in range(3):
        axes[0].bar(positions + (c - 1) * 0.27, expl.relevance[expl.target == c].mean(0), width=0.27,
                    label=f"cluster {c}")
    axes[0].axhline(0, color="k", lw=0.5)
    axes[0].set_xticks(range(X.shape[1]), wine.feature_names, rotation=45, ha="right", fontsize=8)
    axes[0].set_ylabel("mean relevance (cluster logit)")
    axes[0].set_title("Wine k-means: mean relevance per cluster")
    axes[0].legend()
    order = np.argsort(-np.abs(ec.relevance[0]))[:10][::-1]
    axes[1].barh(np.array(cancer.feature_names)[order], ec.relevance[0][order],
                 color=np.where(ec.relevance[0][order] > 0, "tab:red", "tab:blue"))
    axes[1].set_xlabel("relevance (log-odds)")
    axes[1].set_title(f"Patient 0: log-odds of '{cancer.target_names[ec.target[0]]}' vs mean patient")
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"\nFigure saved to {args.out}")


if __name__ == "__main__":
    main()
