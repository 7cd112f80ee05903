"""Which rule for which layer, measured: the four panels of the LRP overview's figure on a digits CNN.

A small CNN is trained on scikit-learn's 8x8 digits (pixels / 16, as in examples/03); the held-out
images are explained with uniform LRP-0 (= gradient x input), LRP-epsilon (0.25 RMS), LRP-gamma
(0.25) and the overview composite (z^B input, gamma lower, epsilon middle, LRP-0 top), plus a random
ordering as the floor. Reported per rule set (mean over the images):

- pixel flipping MoRF, area under the log-odds curve (lower is better), zero and mean replacement;
- positivity: share of negative relevance mass (lower = more positive);
- absorbed share: mean ``|absorbed| / |output|``;
- continuity: ``||R(x) - R(x')|| / ||x - x'||`` under small noise (lower is smoother).

Usage: ``python benchmarks/bench_cnn_rules.py [--n 200]``; prints a Markdown table (docs/choosing-rules.md).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

import neon
from neon import metrics
from neon.plot import default_comparison_rules


def train_cnn(seed: int = 0) -> tuple[nn.Module, torch.Tensor, torch.Tensor, float]:
    torch.manual_seed(seed)
    digits = load_digits()
    X = (digits.images / 16.0).astype(np.float32)[:, None]
    X_train, X_test, y_train, y_test = train_test_split(X, digits.target, test_size=0.25, random_state=0,
                                                        stratify=digits.target)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
                          nn.AvgPool2d(2), nn.Flatten(), nn.Linear(16 * 16, 32), nn.ReLU(), nn.Linear(32, 10))
    xt, yt = torch.from_numpy(X_train), torch.from_numpy(y_train)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    for _ in range(10):
        for idx in torch.randperm(len(xt)).split(128):
            opt.zero_grad()
            nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        acc = float((model(torch.from_numpy(X_test)).argmax(1).numpy() == y_test).mean())
    return model, xt, torch.from_numpy(X_test), acc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="held-out images to explain")
    args = parser.parse_args()
    model, X_train, X_test, acc = train_cnn()
    X = X_test[:args.n]
    print(f"digits CNN, test accuracy {acc:.3f}; {len(X)} held-out images; output = log-odds of the predicted class")
    rows = []
    for name, rules in default_comparison_rules().items():
        t0 = time.perf_counter()
        explainer = neon.Explainer(model, rules=rules, output="log-odds").fit(X_train)
        expl = explainer.explain(X)
        seconds = time.perf_counter() - t0
        flip = {r: metrics.pixel_flipping(expl, explainer, X, replace=r, background=X_train).mean
                for r in ("zero", "mean")}
        pos = metrics.positivity(expl).mean
        absorbed = float(np.mean(np.abs(expl.absorbed.numpy()) / np.abs(expl.output.numpy())))
        cont = metrics.continuity(explainer, X[:50], noise=0.01).mean
        rows.append((name, flip["zero"], flip["mean"], pos, absorbed, cont, seconds))
    rng = np.random.default_rng(0)
    random_attr = rng.normal(size=tuple(X.shape))
    explainer = neon.Explainer(model, output="log-odds").fit(X_train)
    flip = {r: metrics.pixel_flipping(random_attr, explainer, X, replace=r, background=X_train).mean
            for r in ("zero", "mean")}
    rows.append(("random order", flip["zero"], flip["mean"], float("nan"), float("nan"), float("nan"), float("nan")))
    print("| rules | MoRF AUC, zero (lower better) | MoRF AUC, mean (lower better) | negative share | "
          "absorbed / output | continuity | time (s) |")
    print("|---|---|---|---|---|---|---|")
    for name, fz, fm, pos, ab, cont, sec in rows:
        print(f"| {name} | {fz:.3f} | {fm:.3f} | {pos:.3f} | {ab:.3f} | {cont:.3g} | {sec:.2f} |")


if __name__ == "__main__":
    main()
