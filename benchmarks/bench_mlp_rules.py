"""Which LRP composite explains sklearn ReLU MLPs most faithfully? Feature flipping (MoRF).

For each model and composite: explain the predicted class's log-odds on held-out samples, remove
features most-relevant-first one at a time (replacing them by the training mean, or by zero),
and track the explained log-odds. The score is the area under that curve, divided by the
log-odds before any removal and averaged over samples (Samek et al., TNNLS 2017; docs/theory.md
§5): **lower is better**. A random order is printed as the floor to beat.

The replacement value changes rankings (known result): zero replacement favours gradient x input
on shallow ReLU nets, mean replacement favours z^B / epsilon composites; a Reference(mean) input
layer explains exactly the mean-replacement question. Both are reported.

Run: ``python benchmarks/bench_mlp_rules.py`` (about a minute on 2 cores).
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

import neon
from neon.composites import Composite, Overview, lrp0
from neon.rules import Epsilon, Reference, WSquare, ZBox


def _eps(eps: float, relative: bool = False) -> list:
    return [("affine", Epsilon(eps, relative=relative))]


COMPOSITES = {
    # name: (rules, reference)
    "gradient x input (LRP-0)": (lrp0(), None),
    "epsilon(0.25 rms)": (Composite(by_type=_eps(0.25, True)), None),
    "z^B + epsilon(1e-6)": (Composite(by_type=_eps(1e-6), first=[("dense", ZBox())]), None),
    "neon default: z^B + epsilon(0.25 rms)": (None, None),
    "w^2 + epsilon(0.25 rms)": (Composite(by_type=_eps(0.25, True), first=[("dense", WSquare())]), None),
    "overview (z^B, gamma, eps, LRP-0)": (Overview(), None),
    # Explainer(reference="mean"): explains f(x) - f(mean) from the top (the hidden layers stay zero-referenced).
    "reference='mean' + epsilon(1e-6)": (Composite(by_type=_eps(1e-6)), "mean"),
    "reference='mean' + epsilon(0.25 rms)": (Composite(by_type=_eps(0.25, True)), "mean"),
    # The root point only on the input layer: explains f(x); each hidden unit's share is split against the mean.
    "Reference(mean) input + epsilon(0.25 rms)": (
        Composite(by_type=_eps(0.25, True), first=[("dense", Reference("mean"))]), None),
}


def _data():
    Xd, yd = load_digits(return_X_y=True)
    Xb, yb = load_breast_cancer(return_X_y=True)
    Xb = (Xb - Xb.min(0)) / (Xb.max(0) - Xb.min(0))  # [0, 1]: zero replacement differs from the mean
    return {"digits (64 px, /16)": (Xd / 16.0, yd), "breast_cancer (30, min-max)": (Xb, yb)}


def flipping_auc(net: neon.Network, X: np.ndarray, target: np.ndarray, order: np.ndarray,
                 fill: np.ndarray) -> float:
    """Mean over samples of AUC(f(x with the first k features of ``order`` replaced)) / f(x)."""
    n, d = X.shape
    ranks = np.empty_like(order)
    ranks[np.arange(n)[:, None], order] = np.arange(d)[None, :]
    steps = np.arange(d + 1)
    Xk = np.where(ranks[None] < steps[:, None, None], fill[None, None, :], X[None])  # (d+1, n, d)
    with torch.no_grad():
        out = net(torch.as_tensor(Xk.reshape(-1, d))).numpy().reshape(d + 1, n, -1)
    f = out[:, np.arange(n), target]  # (d+1, n)
    curve = f / f[0]
    auc = (curve[:-1] + curve[1:]).sum(0) / (2 * d)  # trapezoid over the fraction of removed features
    return float(auc.mean())


def main() -> None:
    rng = np.random.default_rng(0)
    rows = []
    for dname, (X, y) in _data().items():
        Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=300, random_state=0, stratify=y)
        for hidden in [(64,), (64, 32)]:
            model = MLPClassifier(hidden_layer_sizes=hidden, max_iter=600, random_state=0).fit(Xtr, ytr)
            net = neon.neuralize(model)
            mean, zero = Xtr.mean(0), np.zeros(X.shape[1])
            scores = {}
            for cname, (rules, ref) in COMPOSITES.items():
                expl = neon.Explainer(model, rules=rules, reference=ref).fit(Xtr).explain(Xte)
                order = np.argsort(-expl.relevance, axis=1, kind="stable")
                scores[cname] = (flipping_auc(net, Xte, expl.target, order, mean),
                                 flipping_auc(net, Xte, expl.target, order, zero))
            target = expl.target
            order = np.argsort(rng.random(Xte.shape), axis=1)
            scores["random order"] = (flipping_auc(net, Xte, target, order, mean),
                                      flipping_auc(net, Xte, target, order, zero))
            rows.append((dname, hidden, model.score(Xte, yte), scores))
    _print(rows)


def _print(rows) -> None:
    names = list(rows[0][3])
    print("MoRF feature flipping, AUC of f(x_k)/f(x) over the fraction removed (lower is better), 300 test samples")
    for repl, col in (("mean", 0), ("zero", 1)):
        print(f"\nreplacement = {repl}")
        header = "| composite | " + " | ".join(f"{d.split(' ')[0]} {h} (acc {a:.2f})" for d, h, a, _ in rows) + \
            " | mean rank |"
        print(header)
        print("|" + "---|" * (len(rows) + 2))
        ranks = np.array([[sorted(r[3], key=lambda k: r[3][k][col]).index(n) + 1 for r in rows] for n in names])
        for n, rk in zip(names, ranks):
            print(f"| {n} | " + " | ".join(f"{r[3][n][col]:.3f}" for r in rows) + f" | {rk.mean():.1f} |")


if __name__ == "__main__":
    main()
