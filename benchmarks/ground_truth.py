"""Ground-truth benchmark: does the relevance land on the object that decides the label? (issue 14, part 2)

Data: :func:`neon.datasets.make_scenes` (64x64 RGB scenes of 3-5 objects on a textured background;
the label is the shape of the only red object, whose pixels are the ground truth; in the spirit of
CLEVR-XAI, Arras, Osman & Samek, Information Fusion 2022). Per seed (data and training), a small
residual CNN (torchvision ``BasicBlock`` s, batch norm, a max-pooled stem) is trained in the run,
then every method explains the logit of the true class of the correctly classified test scenes:

- neon's presets (``epsilon``: the torch default up to this issue, ``epsilon_plus(_flat)``,
  ``epsilon_alpha2_beta1(_flat)``, ``epsilon_gamma_box``, ``overview``) and a ``neon.tune`` choice
  (tuned for relevance mass accuracy on separate validation scenes);
- zennit 0.5.1's ``EpsilonGammaBox`` (``ResNetCanonizer``, the same box as neon's), a parity
  reference: the table also gives its relative L2 distance to neon's heatmaps;
- captum 0.9 with its defaults unless stated: gradient (``Saliency``: the absolute gradient),
  gradient x input, SmoothGrad (``NoiseTunnel(Saliency)``, 16 samples, sigma 0.1), integrated
  gradients (32 steps, black baseline), occlusion (8x8 windows, stride 4, black), Grad-CAM
  (``LayerGradCam`` on the last residual block with the ReLU, bilinearly upsampled).

Metrics (docs/theory.md §5): relevance mass accuracy and relevance rank accuracy
(:mod:`neon.metrics.ground_truth`, pixel relevance pooled over channels with ``"sum,pos"``; the mass
with ``"max-norm"`` pooling too), and pixel flipping (MoRF) with blur replacement (sigma 2: a fully
blurred scene is classified at chance). Cost: wall time of the call over all test scenes divided by
the time of one input gradient of the same logits, measured round-robin in the same process (each
method keeps its fastest call), i.e. in gradient-equivalents.

Usage: ``python benchmarks/ground_truth.py [--seeds 0 1 2] [--quick] [--no-docs]``. Writes the
"Ground truth" section of ``docs/benchmarks.md``, ``docs/img/quality_scenes_pareto.png`` and
``docs/img/quality_scenes_heatmaps.png``, and the raw numbers to ``out/ground_truth/results.json``.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torchvision.models.resnet import BasicBlock

import neon
from neon import metrics as M
from neon.datasets import make_scenes

ROOT = Path(__file__).resolve().parents[1]
BLUR_SIGMA = 2.0
CHEAP = 3.0  # gradient-equivalents: the "at most 3" class of methods


# ------------------------------------------------------------------------------------------ the model
class SceneNet(nn.Module):
    """A small residual CNN with batch norm: stem conv (stride 2) + max pool, three ``BasicBlock`` s, GAP, linear."""

    def __init__(self, width: int = 16, n_classes: int = 3, maxpool: bool = True):
        super().__init__()
        w = width
        self.conv1 = nn.Conv2d(3, w, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(2) if maxpool else nn.Identity()
        self.layer1 = BasicBlock(w, w)
        self.layer2 = BasicBlock(w, 2 * w, stride=2, downsample=_down(w, 2 * w))
        self.layer3 = BasicBlock(2 * w, 4 * w, stride=2, downsample=_down(2 * w, 4 * w))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4 * w, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


def _down(i: int, o: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(i, o, 1, stride=2, bias=False), nn.BatchNorm2d(o))


def train(X: np.ndarray, y: np.ndarray, seed: int, epochs: int, width: int = 16, batch: int = 64,
          lr: float = 3e-3, maxpool: bool = True) -> SceneNet:
    """AdamW with a one-cycle schedule; deterministic for a seed (on CPU)."""
    torch.manual_seed(seed)
    net = SceneNet(width, maxpool=maxpool)
    xt, yt = torch.as_tensor(X), torch.as_tensor(y)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * ((len(xt) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps)
    gen = torch.Generator().manual_seed(seed)
    net.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(xt), generator=gen).split(batch):
            opt.zero_grad()
            nn.functional.cross_entropy(net(xt[idx]), yt[idx]).backward()
            opt.step()
            sched.step()
    return net.eval()


# ------------------------------------------------------------------------------------------ methods
@dataclass
class Method:
    label: str
    call: Callable[[], np.ndarray]
    family: str  # "neon", "peer" (zennit), "baseline"
    repeat: bool = True  # timed in every round (cheap methods) or once


NEON_PRESETS = ("epsilon", "epsilon_plus", "epsilon_plus_flat", "epsilon_alpha2_beta1", "epsilon_alpha2_beta1_flat",
                "epsilon_gamma_box", "overview")


def mass_metric(explainer: neon.Explainer, X: np.ndarray, mask: np.ndarray, target: np.ndarray) -> M.MetricResult:
    """What ``neon.tune`` maximises here: relevance mass accuracy of the explained true class."""
    return M.relevance_mass_accuracy(explainer.explain(X, target=target), mask)


def build_methods(net: SceneNet, X_fit: np.ndarray, X_val: np.ndarray, m_val: np.ndarray, y_val: np.ndarray,
                  x: torch.Tensor, target: torch.Tensor, tune_budget: int, seed: int) -> tuple[list[Method], dict]:
    """Every method as a zero-argument call returning relevance ``(n, 3, H, W)`` for ``x`` and ``target``."""
    from captum.attr import (
        InputXGradient,
        IntegratedGradients,
        LayerAttribution,
        LayerGradCam,
        NoiseTunnel,
        Occlusion,
        Saliency,
    )
    from zennit.attribution import Gradient
    from zennit.composites import EpsilonGammaBox
    from zennit.torchvision import ResNetCanonizer

    info: dict = {}
    xn, tn = x.numpy(), target.numpy()
    out: list[Method] = []

    def neon_call(ex: neon.Explainer) -> Callable[[], np.ndarray]:
        return lambda: np.asarray(ex.explain(xn, target=tn).relevance)

    default = neon.Explainer(net, output="logit").fit(X_fit)
    info["default rules"] = str(default.composite_)
    out.append(Method(f"neon default ({default.composite_})", neon_call(default), "neon"))
    for name in NEON_PRESETS:
        ex = neon.Explainer(net, rules=name, output="logit").fit(X_fit)
        out.append(Method(f"neon {name}", neon_call(ex), "neon"))
    t0 = time.perf_counter()
    tuned = neon.tune(default, X_val, metric=mass_metric, budget=tune_budget, random_state=seed, X_fit=X_fit,
                      mask=m_val, target=y_val)
    info["tune"] = {"best": tuned.best_label, "val score": tuned.best_score, "seconds": time.perf_counter() - t0,
                    "candidates": len(tuned.scores)}
    out.append(Method(f"neon tuned [{tuned.best_label}]", neon_call(tuned.explainer), "neon"))

    # zennit's EpsilonGammaBox with the box neon's "auto" fits (per-channel min / max of the fit data).
    lo = torch.as_tensor(X_fit).amin(dim=(0, 2, 3)).view(1, -1, 1, 1)
    hi = torch.as_tensor(X_fit).amax(dim=(0, 2, 3)).view(1, -1, 1, 1)
    zmodel = copy.deepcopy(net)
    one_hot = nn.functional.one_hot(target, 3).to(x)

    def zennit_egb() -> np.ndarray:
        comp = EpsilonGammaBox(low=lo.expand_as(x), high=hi.expand_as(x), canonizers=[ResNetCanonizer()])
        with Gradient(zmodel, comp) as attributor:
            _, rel = attributor(x.clone(), lambda o: o * one_hot)
        return rel.detach().numpy()

    out.append(Method("zennit EpsilonGammaBox", zennit_egb, "peer"))

    cmodel = copy.deepcopy(net)
    sal, ixg = Saliency(cmodel), InputXGradient(cmodel)
    nt, ig = NoiseTunnel(Saliency(cmodel)), IntegratedGradients(cmodel)
    occ, gc = Occlusion(cmodel), LayerGradCam(cmodel, cmodel.layer3)
    size = x.shape[-2:]

    def gradcam() -> np.ndarray:
        a = gc.attribute(x, target=target, relu_attributions=True)
        up = LayerAttribution.interpolate(a, tuple(size), interpolate_mode="bilinear")
        return up.expand_as(x).detach().numpy() / x.shape[1]

    out += [
        Method("gradient (|grad|, captum Saliency)", lambda: sal.attribute(x, target=target).detach().numpy(),
               "baseline"),
        Method("gradient x input", lambda: ixg.attribute(x, target=target).detach().numpy(), "baseline"),
        Method("Grad-CAM (layer3)", gradcam, "baseline"),
        Method("SmoothGrad (16, sigma 0.1)", lambda: nt.attribute(x, target=target, nt_type="smoothgrad", nt_samples=16,
                                                                  stdevs=0.1, nt_samples_batch_size=8)
               .detach().numpy(), "baseline", repeat=False),
        Method("integrated gradients (32, black)", lambda: ig.attribute(x, target=target, n_steps=32,
                                                                        internal_batch_size=len(x) * 4)
               .detach().numpy(), "baseline", repeat=False),
        Method("occlusion (8x8, stride 4, black)", lambda: occ.attribute(x, target=target,
                                                                         sliding_window_shapes=(3, 8, 8),
                                                                         strides=(3, 4, 4), baselines=0.0,
                                                                         perturbations_per_eval=16)
               .detach().numpy(), "baseline", repeat=False),
    ]
    return out, info


def input_gradient(net: nn.Module, x: torch.Tensor, target: torch.Tensor) -> Callable[[], torch.Tensor]:
    """The unit of cost: one gradient of the explained logits with respect to the input."""
    def run() -> torch.Tensor:
        xx = x.detach().clone().requires_grad_(True)
        out = net(xx).gather(1, target.view(-1, 1)).sum()
        (g,) = torch.autograd.grad(out, xx)
        return g
    return run


def timed(methods: list[Method], grad: Callable[[], object], rounds: int, max_seconds: float) \
        -> tuple[dict[str, np.ndarray], dict[str, float], float]:
    """Relevance and fastest wall time of every method, and the input gradient's fastest time.

    Round robin: every round calls the gradient and each cheap method once, so that a slow phase of
    the shared machine hits all alike; expensive methods (``repeat=False``) are timed once.
    """
    rel: dict[str, np.ndarray] = {}
    best: dict[str, float] = {}
    g_best = float("inf")
    for _ in range(2):  # warm-up of the gradient (first-call allocations)
        t0 = time.perf_counter()
        grad()
        g_best = min(g_best, time.perf_counter() - t0)
    for m in methods:
        t0 = time.perf_counter()
        rel[m.label] = m.call()
        best[m.label] = time.perf_counter() - t0
    spent = 0.0
    for _ in range(rounds):
        if spent > max_seconds:
            break
        t0 = time.perf_counter()
        grad()
        g_best = min(g_best, time.perf_counter() - t0)
        for m in methods:
            if not m.repeat:
                continue
            t0 = time.perf_counter()
            m.call()
            dt = time.perf_counter() - t0
            spent += dt
            best[m.label] = min(best[m.label], dt)
    return rel, best, g_best


# ------------------------------------------------------------------------------------------ one seed
@dataclass
class SeedResult:
    seed: int
    accuracy: float
    n_test: int
    train_seconds: float
    gradient_seconds: float
    info: dict
    rows: dict[str, dict] = field(default_factory=dict)


def run_seed(seed: int, n_train: int, n_val: int, n_test: int, epochs: int, tune_budget: int, rounds: int,
             flip_steps: int, keep_heatmaps: bool = False) -> tuple[SeedResult, dict]:
    X, y, masks = make_scenes(n_train + n_val + n_test, random_state=seed)
    tr, va, te = slice(0, n_train), slice(n_train, n_train + n_val), slice(n_train + n_val, None)
    t0 = time.perf_counter()
    net = train(X[tr], y[tr], seed, epochs)
    train_seconds = time.perf_counter() - t0
    with torch.no_grad():
        pred = net(torch.as_tensor(X[te])).argmax(1).numpy()
    acc = float((pred == y[te]).mean())
    ok = np.flatnonzero(pred == y[te])  # explain the correctly classified test scenes
    x, target, mask = torch.as_tensor(X[te][ok]), torch.as_tensor(y[te][ok]), masks[te][ok]
    fit = X[tr][:500]
    methods, info = build_methods(net, fit, X[va], masks[va], y[va], x, target, tune_budget, seed)
    rel, secs, g_sec = timed(methods, input_gradient(net, x, target), rounds, max_seconds=60.0)
    network = neon.Explainer(net, output="logit").fit(fit).network_
    res = SeedResult(seed, acc, len(ok), train_seconds, g_sec / len(ok), info)
    egb_neon = rel["neon epsilon_gamma_box"]
    for m in methods:
        r = rel[m.label]
        flip = M.pixel_flipping(r, network, x.numpy(), target=target.numpy(), replace="blur", blur_sigma=BLUR_SIGMA,
                                steps=flip_steps)
        row = {"family": m.family, "cost": secs[m.label] / g_sec, "seconds_per_sample": secs[m.label] / len(ok),
               "mass": M.relevance_mass_accuracy(r, mask).scores.tolist(),
               "rank": M.relevance_rank_accuracy(r, mask).scores.tolist(),
               "mass_maxnorm": M.relevance_mass_accuracy(r, mask, pooling="max-norm").scores.tolist(),
               "flip_blur": flip.scores.tolist(), "flip_curve": flip.mean_curve.tolist(),
               "flip_fractions": flip.fractions.tolist()}
        if m.label.startswith("zennit"):
            row["rel_l2_to_neon"] = float(np.linalg.norm(r - egb_neon) / np.linalg.norm(egb_neon))
        res.rows[m.label] = row
    res.info["chance"] = float(mask.mean())
    heat = {"x": x[:6].numpy(), "mask": mask[:6], "rel": {k: v[:6] for k, v in rel.items()}} if keep_heatmaps else {}
    return res, heat


# ------------------------------------------------------------------------------------------ summary
def _key(label: str) -> str:
    """The label without a seed-specific part (the tuned winner differs between seeds)."""
    return "neon tuned" if label.startswith("neon tuned") else label


def summarise(results: list[SeedResult]) -> dict[str, dict]:
    """Per method: per-seed means of every metric, and the cost (median over seeds)."""
    out: dict[str, dict] = {}
    for r in results:
        for label, row in r.rows.items():
            s = out.setdefault(_key(label), {"family": row["family"], "labels": [], "cost": [], "sps": [],
                                             "mass": [], "rank": [], "mass_maxnorm": [], "flip_blur": [],
                                             "mass_samples": [], "rel_l2": []})
            s["labels"].append(label)
            s["cost"].append(row["cost"])
            s["sps"].append(row["seconds_per_sample"])
            for k in ("mass", "rank", "mass_maxnorm", "flip_blur"):
                s[k].append(float(np.mean(row[k])))
            s["mass_samples"].append(np.asarray(row["mass"]))
            if "rel_l2_to_neon" in row:
                s["rel_l2"].append(row["rel_l2_to_neon"])
    return out


def beats(a: dict, b: dict, key: str = "mass", higher: bool = True) -> bool:
    """``a`` better than ``b`` beyond the seed spread: better on every seed (paired by seed)."""
    d = np.asarray(a[key]) - np.asarray(b[key])
    return bool(np.all(d > 0) if higher else np.all(d < 0))


def pareto(summary: dict[str, dict], key: str = "mass", higher: bool = True) -> dict[str, list[str]]:
    """For every method, the methods that are cheaper (median cost) and better beyond the seed spread."""
    cost = {k: float(np.median(v["cost"])) for k, v in summary.items()}
    return {k: [o for o in summary if o != k and cost[o] < cost[k] and beats(summary[o], v, key, higher)]
            for k, v in summary.items()}


def fmt(values: list[float], digits: int = 3) -> str:
    v = np.asarray(values)
    if len(v) == 1:
        return f"{v[0]:.{digits}f}"
    return f"{v.mean():.{digits}f} [{v.min():.{digits}f}, {v.max():.{digits}f}]"


def markdown(results: list[SeedResult], summary: dict[str, dict], args: argparse.Namespace,
             seconds: float | None) -> str:
    seeds = [r.seed for r in results]
    took = f"{seconds / 60:.0f} min, " if seconds else ""
    lines = ["## Ground truth: synthetic scenes", "",
             f"Generated by `python benchmarks/ground_truth.py --seeds {' '.join(map(str, seeds))}"
             + (" --quick" if args.quick else "") + (f" --threads {args.threads}" if args.threads != 2 else "")
             + f"` ({took}{args.threads} torch "
             "threads, on a shared 2-core machine under load from other jobs). Scenes from "
             "`neon.datasets.make_scenes` (64x64, label = shape of the only red object, mask = its pixels); per "
             f"seed {args.n_train} training, {args.n_val} validation and {args.n_test} test scenes, a residual CNN "
             f"trained {args.epochs} epochs. Every method explains the logit of the true class of the correctly "
             "classified test scenes. Numbers are means over seeds with [min, max] of the per-seed means; cost is "
             "wall time in gradient-equivalents (one input gradient of the same logits = 1), median over seeds.", "",
             "| seed | test accuracy | explained scenes | training (s) | one gradient (ms / scene) | tuned choice "
             "(validation mass) |", "|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r.seed} | {r.accuracy:.3f} | {r.n_test} | {r.train_seconds:.0f} | "
                     f"{1e3 * r.gradient_seconds:.2f} | {r.info['tune']['best']} ({r.info['tune']['val score']:.3f}) |")
    chance = np.mean([r.info["chance"] for r in results])
    default_rules = results[0].info["default rules"]
    lines += ["", f"Chance level of mass and rank accuracy (the mask's share of the image): {chance:.3f}. Default "
              f"rules of a torch CNN in this run: `{default_rules}`."
              + ("" if default_rules == "EpsilonGammaBox" else " This run predates the change of that default to "
                 "`EpsilonGammaBox` (which it motivated); the default is now the `neon epsilon_gamma_box` row, "
                 "identical to it (tests/test_quality_benchmark.py)."), "",
              "| method | cost (grad.-eq.) | mass accuracy | rank accuracy | mass (max-norm pooling) | "
              "pixel flipping, blur (AUC, lower better) |", "|---|---|---|---|---|---|"]
    order = sorted(summary, key=lambda k: -np.mean(summary[k]["mass"]))
    for k in order:
        s = summary[k]
        name = k if k != "neon tuned" else "neon tuned (per seed: " + "; ".join(
            lab[len("neon tuned ["):-1] for lab in s["labels"]) + ")"
        if s["rel_l2"]:
            name += f" (rel. L2 to neon's: {max(s['rel_l2']):.1e})"
        lines.append(f"| {name} | {np.median(s['cost']):.2f} | {fmt(s['mass'])} | {fmt(s['rank'])} | "
                     f"{fmt(s['mass_maxnorm'])} | {fmt(s['flip_blur'], 2)} |")
    current = None if default_rules == "EpsilonGammaBox" else "neon epsilon_gamma_box"
    lines += ["", "![relevance mass accuracy against cost](img/quality_scenes_pareto.png)", "",
              "![heatmaps of four test scenes](img/quality_scenes_heatmaps.png)", "",
              *verdict_lines(summary, current), ""]
    return "\n".join(lines)


def verdict_lines(summary: dict[str, dict], default: str | None = None) -> list[str]:
    """The goal's verdicts for ``default`` (the "neon default" row unless the run predates today's default)."""
    default = default or next(k for k in summary if k.startswith("neon default"))
    cheap = [k for k, s in summary.items() if np.median(s["cost"]) <= CHEAP]
    best = max(cheap, key=lambda k: np.mean(summary[k]["mass"]))
    better = [k for k in cheap if k != default and beats(summary[k], summary[default])]
    front = pareto(summary)
    lines = ["Against the goal (better *beyond the seed spread* = better on every seed):", "",
             f"- methods of at most {CHEAP:g} gradient-equivalents: {len(cheap)}; best mean mass accuracy: {best} "
             f"({np.mean(summary[best]['mass']):.3f}).",
             f"- {default}: mass {np.mean(summary[default]['mass']):.3f}; "
             + ("first or tied-first among them" if not better else
                "**not** first: beaten on every seed by " + ", ".join(better)) + ".",
             f"- {default} on the Pareto front (cost, mass accuracy): "
             + ("yes" if not front[default] else "**no**, dominated by " + ", ".join(front[default])) + "."]
    on_front = [k for k, v in front.items() if not v]
    lines.append("- Pareto front (no method cheaper and better on every seed): " + ", ".join(on_front) + ".")
    return lines


def write_docs(text: str) -> Path:
    """Replace (or append) the "Ground truth" section of ``docs/benchmarks.md``."""
    bench = ROOT / "docs" / "benchmarks.md"
    old = bench.read_text()
    pattern = re.compile(r"^## Ground truth: synthetic scenes\n.*?(?=^## |\Z)", re.S | re.M)
    new = pattern.sub(lambda _: text + "\n", old) if pattern.search(old) else old.rstrip() + "\n\n" + text + "\n"
    bench.write_text(new)
    return bench


# ------------------------------------------------------------------------------------------ figures
SHORT = {"neon default": "neon default", "neon tuned": "neon tuned"}


def _short(label: str) -> str:
    if label.startswith("neon default") and "EpsilonGammaBox" not in label:
        return "default before (" + label.split(" (", 1)[1]  # a run older than today's default
    return label.replace("neon ", "").split(" (")[0].split(" [")[0]


def plot_pareto(summary: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    # Methods with the same scores on every seed (the torch default and the preset it is, the tuned choice and
    # its preset, gradient x input and LRP-epsilon) share one point and one label.
    groups: dict[tuple, list[str]] = {}
    for k, s in summary.items():
        groups.setdefault((s["family"] == "peer", *np.round(s["mass"], 4)), []).append(k)
    placed: list[tuple[float, float]] = []
    for keys in sorted(groups.values(), key=lambda ks: -np.mean(summary[ks[0]]["mass"])):
        s = summary[keys[0]]
        c = float(np.median([np.median(summary[k]["cost"]) for k in keys]))
        v = np.asarray(s["mass"])
        colour = {"neon": "tab:red", "peer": "tab:purple", "baseline": "tab:blue"}[s["family"]]
        ax.errorbar(c, v.mean(), yerr=[[v.mean() - v.min()], [v.max() - v.mean()]], fmt="o", color=colour,
                    ms=5, capsize=2)
        label = " = ".join(dict.fromkeys(_short(k) for k in keys))
        y = float(v.mean())
        while any(abs(np.log10(c) - px) < 1.0 and abs(y - py) < 0.025 for px, py in placed):
            y -= 0.025  # below the labels already drawn near this point
        placed.append((float(np.log10(c)), y))
        ax.annotate(label, (c, v.mean()), xytext=(c * 1.25, y), fontsize=6.5, color=colour, va="center",
                    arrowprops={"arrowstyle": "-", "color": colour, "lw": 0.4})
    ax.axvline(CHEAP, color="grey", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_xlabel("cost (gradient-equivalents, log scale)")
    ax.set_ylabel("relevance mass accuracy (higher is better)")
    ax.set_title("Scenes: relevance on the deciding object against cost (red: neon, purple: zennit, blue: captum)",
                 fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_heatmaps(heat: dict, labels: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = min(4, len(heat["x"]))
    fig, axes = plt.subplots(n, len(labels) + 1, figsize=(1.5 * (len(labels) + 1), 1.55 * n))
    for i in range(n):
        axes[i, 0].imshow(heat["x"][i].transpose(1, 2, 0))
        axes[i, 0].contour(heat["mask"][i], levels=[0.5], colors="white", linewidths=0.6)
        for j, lab in enumerate(labels):
            r = heat["rel"][lab][i].sum(0)
            lim = np.abs(r).max() or 1.0
            axes[i, j + 1].imshow(r, cmap="bwr", vmin=-lim, vmax=lim)
            axes[i, j + 1].contour(heat["mask"][i], levels=[0.5], colors="black", linewidths=0.4)
    for j, lab in enumerate(["scene (mask in white)"] + labels):
        axes[0, j].set_title(lab.replace("neon ", "").split(" (")[0].split(" [")[0], fontsize=6.5)
    for a in axes.flat:
        a.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def heatmaps_only(args: argparse.Namespace) -> None:
    """Train the first seed's network as the full run does and draw the heatmap figure for four test scenes."""
    seed = args.seeds[0]
    X, y, masks = make_scenes(args.n_train + args.n_val + args.n_test, random_state=seed)
    net = train(X[:args.n_train], y[:args.n_train], seed, args.epochs)
    te = slice(args.n_train + args.n_val, None)
    with torch.no_grad():
        ok = np.flatnonzero(net(torch.as_tensor(X[te])).argmax(1).numpy() == y[te])[:4]
    x, target = torch.as_tensor(X[te][ok]), torch.as_tensor(y[te][ok])
    va = slice(args.n_train, args.n_train + args.n_val)
    methods, _ = build_methods(net, X[:500], X[va], masks[va], y[va], x, target, 1, seed)
    shown = [m for m in methods if shown_in_heatmaps(m.label)]
    heat = {"x": x.numpy(), "mask": masks[te][ok], "rel": {m.label: m.call() for m in shown}}
    plot_heatmaps(heat, [m.label for m in shown], ROOT / "docs" / "img" / "quality_scenes_heatmaps.png")


def shown_in_heatmaps(label: str) -> bool:
    return label in ("neon epsilon", "neon epsilon_gamma_box", "neon epsilon_alpha2_beta1_flat", "neon overview") \
        or label.startswith(("gradient x input", "integrated", "Grad-CAM"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--n-train", type=int, default=2000)
    parser.add_argument("--n-val", type=int, default=100)
    parser.add_argument("--n-test", type=int, default=150)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--tune-budget", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3, help="round-robin timing rounds of the cheap methods")
    parser.add_argument("--flip-steps", type=int, default=24)
    parser.add_argument("--quick", action="store_true", help="one seed, fewer scenes (a smoke run)")
    parser.add_argument("--no-docs", action="store_true", help="print the table without writing docs or figures")
    parser.add_argument("--out", default=str(ROOT / "out" / "ground_truth"))
    parser.add_argument("--threads", type=int, default=2, help="torch threads (1 is much faster on an overloaded "
                        "machine: idle threads spin)")
    parser.add_argument("--from-json", help="render docs and the cost figure from a results.json of an earlier run "
                        "(with the arguments it was run with) instead of running")
    parser.add_argument("--seconds", type=float, help="with --from-json: how long that run took")
    parser.add_argument("--heatmaps-only", action="store_true", help="train the first seed's network and draw "
                        "docs/img/quality_scenes_heatmaps.png only")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.heatmaps_only:
        heatmaps_only(args)
        return
    if args.from_json:
        results = [SeedResult(**r) for r in json.loads(Path(args.from_json).read_text())]
        summary = summarise(results)
        text = markdown(results, summary, args, args.seconds)
        print(text)
        if not args.no_docs:
            plot_pareto(summary, ROOT / "docs" / "img" / "quality_scenes_pareto.png")
            print("written to", write_docs(text))
        return
    if args.quick:
        args.seeds, args.n_train, args.n_test, args.epochs, args.tune_budget = args.seeds[:1], 1000, 60, 4, 4
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    results, heat = [], {}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for i, seed in enumerate(args.seeds):
        res, h = run_seed(seed, args.n_train, args.n_val, args.n_test, args.epochs, args.tune_budget, args.rounds,
                          args.flip_steps, keep_heatmaps=i == 0)
        heat = heat or h
        results.append(res)
        print(f"seed {seed}: accuracy {res.accuracy:.3f}, {time.perf_counter() - t0:.0f} s", flush=True)
        (out / "results.json").write_text(json.dumps([r.__dict__ for r in results], default=float, indent=1))
    summary = summarise(results)
    text = markdown(results, summary, args, time.perf_counter() - t0)
    print(text)
    if not args.no_docs:
        plot_pareto(summary, ROOT / "docs" / "img" / "quality_scenes_pareto.png")
        plot_heatmaps(heat, [k for k in heat["rel"] if shown_in_heatmaps(k)],
                      ROOT / "docs" / "img" / "quality_scenes_heatmaps.png")
        print("written to", write_docs(text))


if __name__ == "__main__":
    main()
