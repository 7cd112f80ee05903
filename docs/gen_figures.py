"""Draw the pictures of the documentation into ``docs/img/`` (run after a change to the plots).

    python docs/gen_figures.py

``demo.png`` is the ten-line example of ``docs/index.md`` (and the README); ``rules.png`` the
rule comparison of ``docs/choosing-rules.md`` (a small CNN trained on scikit-learn's digits).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

IMG = Path(__file__).resolve().parent / "img"


def demo() -> None:
    # The ten lines of docs/index.md, verbatim apart from the saving.
    from sklearn.cluster import KMeans
    from sklearn.datasets import load_wine
    from sklearn.preprocessing import StandardScaler

    import neon

    wine = load_wine(as_frame=True)
    X = StandardScaler().set_output(transform="pandas").fit_transform(wine.data)
    kmeans = KMeans(n_clusters=3, n_init=10, random_state=0).fit(X)
    explainer = neon.Explainer(kmeans).fit(X)
    expl = explainer.explain(X)
    ax = expl.plot()
    ax.set_title("k-means on wine: relevance of every feature for the assigned cluster")
    ax.figure.set_size_inches(8, 5)
    ax.figure.tight_layout()
    ax.figure.savefig(IMG / "demo.png", dpi=90)
    plt.close("all")


def rules() -> None:
    import numpy as np
    import torch
    from sklearn.datasets import load_digits
    from torch import nn

    import neon.plot

    torch.manual_seed(0)
    digits = load_digits()
    X = torch.from_numpy((digits.images / 16.0).astype(np.float32)[:, None])
    y = torch.from_numpy(digits.target)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
                          nn.AvgPool2d(2), nn.Flatten(), nn.Linear(16 * 16, 32), nn.ReLU(), nn.Linear(32, 10))
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    for _ in range(10):
        for idx in torch.randperm(len(X)).split(128):
            opt.zero_grad()
            nn.functional.cross_entropy(model(X[idx]), y[idx]).backward()
            opt.step()
    model.eval()
    fig, axes = plt.subplots(3, 5, figsize=(10, 6.6))
    for row, i in enumerate([0, 7, 42]):
        neon.plot.rules_comparison(model, X[i:i + 1], X_fit=X, output="log-odds", ax=axes[row])
    fig.tight_layout()
    fig.savefig(IMG / "rules.png", dpi=80)
    plt.close("all")


if __name__ == "__main__":
    IMG.mkdir(exist_ok=True)
    demo()
    rules()
