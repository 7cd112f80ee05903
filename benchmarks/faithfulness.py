"""Faithfulness against cost: neon (default and tuned rules) and the usual baselines, same functions (issue 14, part 1).

Tasks (docs/theory.md §5), all trained inside the run on scikit-learn's bundled data, each repeated
for several seeds (the seed draws the model's initialisation or clustering and the data split):

1. a small CNN on digits (8x8): pixel flipping (MoRF AUC of the log-odds);
2. KMeans on digits and on wine: flipping the cluster logit;
3. OneClassSVM and KernelDensity on data with planted anomalies: relevance mass on the planted
   features (no replacement protocol: integrated gradients and occlusion use the inlier mean);
4. RBF SVC on breast_cancer: feature flipping.

Flipping tasks run under every replacement protocol that applies (zero, mean, noise; blur for the
images). Every method explains the same :class:`neon.Network` (the baselines get the fitted
Explainer, so they differentiate / occlude the very function neon explains). "neon tuned" is chosen
by :func:`neon.tune` on a validation split *with the protocol being scored* and evaluated on a
separate split.

Cost: the wall time of each explanation call, divided by the time of one input gradient
(``neon.baselines.gradient`` on the same network and samples) measured round-robin in the same
process, i.e. in gradient-equivalents; each method keeps its fastest call (sampled Shapley is timed
once). The verdicts use the seed spread: a method beats another *beyond the seed spread* when it
scores better on every seed.

Usage: ``python benchmarks/faithfulness.py [--seeds 0 1 2] [--tasks 1234] [--quick] [--no-docs]``.
Writes the "Faithfulness" section of ``docs/benchmarks.md``, one figure per task to
``docs/img/faithfulness_<task>.png`` (cost on a log axis against the score, bars: seed range), and the
raw numbers to ``out/faithfulness/results.json``.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.datasets import load_breast_cancer, load_digits, load_wine
from sklearn.neighbors import KernelDensity
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, OneClassSVM

import neon
from neon import baselines as B
from neon import metrics as M

ROOT = Path(__file__).resolve().parents[1]
SHAP_BACKGROUND = 10
CHEAP = 3.0  # gradient-equivalents: the class of cheap methods
CHEAPER = 0.8  # "cheaper" = cheaper on every seed and by at least this factor (median): timer noise is not cost
TABULAR = ("zero", "mean", "noise")
IMAGES = ("zero", "mean", "blur", "noise")


@dataclass
class Row:
    method: str
    scores: np.ndarray
    seconds_per_sample: float
    cost: float = float("nan")  # gradient-equivalents
    curve: np.ndarray | None = None
    extra: dict = field(default_factory=dict)


@dataclass
class Task:
    key: str  # the task without seed-specific details, e.g. "1. CNN on digits"
    protocol: str  # "zero", "mean", "blur", "noise", or "-" (localization)
    seed: int
    metric: str
    higher_is_better: bool
    replace: str
    rows: list[Row]
    note: str = ""


def warm_up_shap() -> None:
    """shap compiles numba kernels on first use (tens of seconds); keep that out of the timings."""
    lin = torch.nn.Linear(3, 2).double()
    B.shapley_sampling(lin, np.random.default_rng(0).normal(size=(2, 3)), n_permutations=1)


def methods(explainer: neon.Explainer, tuned: neon.Explainer, X: np.ndarray, *, ref: np.ndarray, ig_steps: int,
            occlusion_value, background: np.ndarray, n_perm: int, extra: dict[str, neon.Explainer] | None = None,
            target=None) -> list[tuple[str, Callable[[], neon.Explanation], bool, str]]:
    """Every method as ``(label, call, depends on the replacement, model evaluations per sample)``.

    The baselines explain ``explainer.network_``, the very function neon explains.
    """
    d = int(np.prod(X.shape[1:]))
    n_windows = d // int(np.prod(X.shape[1:-2])) if X.ndim == 4 else d
    out = [("neon default", lambda: explainer.explain(X, target=target), False, "1 fwd + 1 LRP bwd"),
           ("neon tuned", lambda: tuned.explain(X, target=target), True, "1 fwd + 1 LRP bwd")]
    for label, ex in (extra or {}).items():
        out.append((label, lambda ex=ex: ex.explain(X, target=target), False, "1 fwd + 1 LRP bwd"))
    out += [
        ("gradient", lambda: B.gradient(explainer, X, target=target), False, "1 fwd + 1 bwd"),
        ("gradient x input", lambda: B.gradient_x_input(explainer, X, target=target), False, "1 fwd + 1 bwd"),
        (f"integrated gradients ({ig_steps})", lambda: B.integrated_gradients(explainer, X, target=target,
                                                                             baseline=ref, steps=ig_steps),
         True, f"{ig_steps + 1} fwd + bwd"),
        ("occlusion", lambda: B.occlusion(explainer, X, target=target, value=occlusion_value, background=background),
         True, f"{n_windows + 1} fwd"),
        (f"shapley sampling ({n_perm} perm.)", lambda: B.shapley_sampling(explainer, X, target=target,
                                                                          background=background, n_permutations=n_perm,
                                                                          max_background=SHAP_BACKGROUND),
         False, f"{n_perm * (2 * d + 1) * SHAP_BACKGROUND} fwd"),
    ]
    return out


def run_methods(calls, X: np.ndarray, score: Callable[[neon.Explanation], M.MetricResult],
                cache: dict | None, rounds: int = 6, max_seconds: float = 4.0) -> list[Row]:
    """Explain with every method, score, and time.

    Timing is round-robin: after the first call of every method, up to ``rounds`` more rounds call
    each (cheap) method once more, and each keeps its fastest call. Load from other processes on
    the machine then hits all methods alike instead of whichever happened to run during a burst.
    Sampled Shapley is timed once (it is two to four orders of magnitude slower anyway). Costs are
    in units of the "gradient" call of the same run.
    """
    results: dict[str, tuple[neon.Explanation, float]] = {}
    retime = []
    for label, call, depends, _ in calls:
        if cache is not None and not depends and label in cache:
            results[label] = cache[label]
            continue
        t0 = time.perf_counter()
        expl = call()
        results[label] = (expl, time.perf_counter() - t0)
        if not label.startswith("shapley"):
            retime.append((label, call))
    spent = 0.0
    for _ in range(rounds):
        if spent > max_seconds:
            break
        for label, call in retime:
            t0 = time.perf_counter()
            call()
            dt = time.perf_counter() - t0
            spent += dt
            results[label] = (results[label][0], min(results[label][1], dt))
    grad_seconds = results["gradient"][1]
    rows = []
    for label, _, depends, evals in calls:
        expl, sec = results[label]
        if cache is not None and not depends:
            cache[label] = (expl, sec)
        res = score(expl)
        extra = {"evals": evals}
        if isinstance(res, M.FlippingResult):
            extra["fractions"] = res.fractions
        else:
            extra.update(top_k=res.details["top_k"].mean(), chance=res.details["chance"].mean())
        rows.append(Row(label, res.scores, sec / len(X), sec / grad_seconds,
                        res.mean_curve if isinstance(res, M.FlippingResult) else None, extra))
    return rows


def flipping_task(key: str, explainer: neon.Explainer, X_val: np.ndarray, X: np.ndarray, replace: str, *,
                  background: np.ndarray, steps: int | None, ig_steps: int, n_perm: int, tune_budget: int,
                  extra_rules: dict | None = None, seed: int = 0, cache: dict | None = None) -> Task:
    kw = dict(replace=replace, steps=steps, background=background)
    if replace == "blur":
        kw.pop("background")
    tuned = neon.tune(explainer, X_val, metric="pixel_flipping", budget=tune_budget, random_state=seed,
                      X_fit=background, **kw)
    kw["random_state"] = seed
    repl, desc = M.replacement(torch.as_tensor(X), replace, background, seed)
    extra = {label: neon.Explainer(explainer.network_, rules=r).fit(background)
             for label, r in (extra_rules or {}).items()}
    calls = methods(explainer, tuned.explainer, X, ref=repl.numpy(), ig_steps=ig_steps, occlusion_value=repl.numpy(),
                    background=background, n_perm=n_perm, extra=extra)
    rows = run_methods(calls, X, lambda e: M.pixel_flipping(e, explainer, X, **kw), cache)
    rows[1].extra["choice"] = tuned.best_label
    return Task(key, replace, seed, "pixel-flipping AUC (MoRF)", False, desc, rows)


def localization_task(key: str, explainer: neon.Explainer, X_val: np.ndarray, mask_val: np.ndarray, X: np.ndarray,
                      mask: np.ndarray, *, inliers: np.ndarray, ig_steps: int, n_perm: int, tune_budget: int,
                      seed: int = 0) -> Task:
    tuned = neon.tune(explainer, X_val, metric="localization", mask=mask_val, budget=tune_budget, random_state=seed,
                      X_fit=inliers)
    mean = np.broadcast_to(inliers.mean(0), X.shape).copy()
    calls = methods(explainer, tuned.explainer, X, ref=mean, ig_steps=ig_steps, occlusion_value=mean,
                    background=inliers, n_perm=n_perm, target=0)
    rows = run_methods(calls, X, lambda e: M.localization(e, mask), None)
    rows[1].extra["choice"] = tuned.best_label
    return Task(key, "-", seed, "relevance mass on planted features", True, "inlier mean (IG, occlusion)", rows)


# ---------------------------------------------------------------------------------------------- tasks
def task_cnn(quick: bool, seed: int) -> list[Task]:
    digits = load_digits()
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(digits.target))
    X = (digits.images / 16.0)[:, None].astype(np.float32)[idx]
    y = digits.target[idx]
    torch.manual_seed(seed)
    cnn = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                              torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(16 * 4 * 4, 10))
    opt = torch.optim.Adam(cnn.parameters(), lr=3e-3)
    xt, yt = torch.as_tensor(X[:1200]), torch.as_tensor(y[:1200])
    for _ in range(10):
        for i in range(0, len(xt), 64):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(cnn(xt[i:i + 64]), yt[i:i + 64]).backward()
            opt.step()
    cnn.eval()
    with torch.no_grad():
        acc = float((cnn(torch.as_tensor(X[1200:])).argmax(1).numpy() == y[1200:]).mean())
    model = torch.nn.Sequential(cnn, torch.nn.Softmax(-1))  # neon explains the log-odds
    train, val, ev = X[:1200], X[1200:1300], X[1300:1300 + (30 if quick else 50)]
    explainer = neon.Explainer(model).fit(train)
    first = next(i.name for i in explainer.network_.layer_infos() if i.affine)
    extra_rules = {"neon epsilon_gamma_box": "epsilon_gamma_box",
                   "neon input Reference(mean)": explainer.composite_.with_overrides(
                       {first: neon.rules.Reference("mean")})}
    tasks = []
    cache: dict = {}
    for replace in IMAGES:
        t = flipping_task("1. CNN on digits", explainer, val, ev, replace, background=train, steps=16,
                          ig_steps=16 if quick else 32, n_perm=1, tune_budget=10 if quick else 16,
                          extra_rules=extra_rules, seed=seed, cache=cache)
        t.note = f"test accuracy {acc:.2f}"
        tasks.append(t)
    return tasks


def task_kmeans(quick: bool, seed: int) -> list[Task]:
    tasks = []
    digits = load_digits().data / 16.0
    wine = StandardScaler().fit_transform(load_wine().data)
    for data_name, data, k in (("digits", digits, 10), ("wine", wine, 3)):
        rng = np.random.default_rng(seed)
        idx = rng.permutation(len(data))
        n_ev = min(60 if not quick else 30, len(data) // 3)
        ev, val = data[idx[:n_ev]], data[idx[n_ev:2 * n_ev]]
        km = KMeans(k, n_init=4, random_state=seed).fit(data)
        explainer = neon.Explainer(km).fit(data)
        cache: dict = {}
        for replace in TABULAR:
            tasks.append(flipping_task(f"2. KMeans (k={k}) on {data_name}", explainer, val, ev, replace,
                                       background=data, steps=16 if data.shape[1] > 16 else None,
                                       ig_steps=16 if quick else 32, n_perm=1 if data.shape[1] > 16 else 2,
                                       tune_budget=8, seed=seed, cache=cache))
    return tasks


def planted(n: int, d: int, rng: np.random.Generator, n_planted: int = 2, shift: float = 4.0):
    """Gaussian samples with ``n_planted`` features pushed ``shift`` standard deviations out."""
    x = rng.normal(size=(n, d))
    mask = np.zeros((n, d), bool)
    cols = np.argsort(rng.random((n, d)), axis=1)[:, :n_planted]
    np.put_along_axis(mask, cols, True, axis=1)
    x = x + mask * shift * rng.choice([-1.0, 1.0], size=(n, d))
    return x, mask


def task_anomalies(quick: bool, seed: int) -> list[Task]:
    rng = np.random.default_rng(seed)
    d = 10
    inliers = rng.normal(size=(400, d))
    n = 30 if quick else 60
    X_val, mask_val = planted(n, d, rng)
    X, mask = planted(n, d, rng)
    tasks = []
    for name, model in (("OneClassSVM (gamma=0.05, nu=0.1)", OneClassSVM(gamma=0.05, nu=0.1).fit(inliers)),
                        ("KernelDensity (h=1)", KernelDensity(bandwidth=1.0).fit(inliers))):
        explainer = neon.Explainer(model).fit(inliers)
        tasks.append(localization_task(f"3. {name}, 2 of 10 features planted", explainer, X_val, mask_val, X, mask,
                                       inliers=inliers, ig_steps=16 if quick else 32, n_perm=2, tune_budget=8,
                                       seed=seed))
    return tasks


def task_svc(quick: bool, seed: int) -> list[Task]:
    data = load_breast_cancer()
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(data.data))
    X = StandardScaler().fit(data.data[idx[:400]]).transform(data.data)
    train, val, ev = X[idx[:400]], X[idx[400:480]], X[idx[480:480 + (30 if quick else 80)]]
    svc = SVC(kernel="rbf", gamma="scale", C=1.0).fit(train, data.target[idx[:400]])
    acc = svc.score(X[idx[400:]], data.target[idx[400:]])
    explainer = neon.Explainer(svc).fit(train)
    tasks = []
    cache: dict = {}
    for replace in TABULAR:
        t = flipping_task("4. RBF SVC on breast_cancer", explainer, val, ev, replace, background=train, steps=None,
                          ig_steps=16 if quick else 32, n_perm=2, tune_budget=10, seed=seed, cache=cache)
        t.note = f"accuracy {acc:.2f}"
        tasks.append(t)
    return tasks


# ---------------------------------------------------------------------------------------------- summary
@dataclass
class Setting:
    """One task under one protocol, over seeds: per method the per-seed mean scores and costs."""

    key: str
    protocol: str
    metric: str
    higher_is_better: bool
    replace: str
    seeds: list[int]
    notes: list[str]
    scores: dict[str, list[float]]
    sems: dict[str, list[float]]
    costs: dict[str, list[float]]
    seconds: dict[str, list[float]]
    evals: dict[str, str]
    choices: list[str]

    def cost(self, method: str) -> float:
        return float(np.median(self.costs[method]))

    def mean(self, method: str) -> float:
        return float(np.mean(self.scores[method]))

    def beats(self, a: str, b: str) -> bool:
        """``a`` scores better than ``b`` on every seed: better beyond the seed spread."""
        d = np.asarray(self.scores[a]) - np.asarray(self.scores[b])
        return bool(np.all(d > 0) if self.higher_is_better else np.all(d < 0))

    def cheaper(self, a: str, b: str) -> bool:
        """``a`` costs less than ``b`` on every seed, and its median cost is below ``CHEAPER`` times ``b``'s."""
        lower = np.all(np.asarray(self.costs[a]) < np.asarray(self.costs[b]))
        return bool(lower and self.cost(a) < CHEAPER * self.cost(b))

    def dominators(self, method: str) -> list[str]:
        """Methods both cheaper and better beyond the seed spread."""
        return [o for o in self.scores if o != method and self.cheaper(o, method) and self.beats(o, method)]

    def cheap(self) -> list[str]:
        return [m for m in self.scores if self.cost(m) <= CHEAP]


def collect(tasks: list[Task]) -> list[Setting]:
    settings: dict[tuple[str, str], Setting] = {}
    for t in tasks:
        s = settings.get((t.key, t.protocol))
        if s is None:
            s = settings[(t.key, t.protocol)] = Setting(t.key, t.protocol, t.metric, t.higher_is_better, t.replace,
                                                        [], [], {}, {}, {}, {}, {}, [])
        s.seeds.append(t.seed)
        s.notes.append(t.note)
        for r in t.rows:
            s.scores.setdefault(r.method, []).append(float(r.scores.mean()))
            sem = r.scores.std(ddof=1) / np.sqrt(len(r.scores)) if len(r.scores) > 1 else 0.0
            s.sems.setdefault(r.method, []).append(float(sem))
            s.costs.setdefault(r.method, []).append(r.cost)
            s.seconds.setdefault(r.method, []).append(r.seconds_per_sample)
            s.evals[r.method] = r.extra["evals"]
            if "choice" in r.extra:
                s.choices.append(r.extra["choice"])
    return list(settings.values())


def _range(v: list[float], digits: int = 3) -> str:
    a = np.asarray(v)
    if len(a) == 1:
        return f"{a[0]:.{digits}f}"
    return f"{a.mean():.{digits}f} [{a.min():.{digits}f}, {a.max():.{digits}f}]"


def verdicts(s: Setting) -> tuple[str, str]:
    """(neon default on the Pareto front?, neon tuned best or tied among the cheap methods?)"""
    dom = s.dominators("neon default")
    front = "yes" if not dom else "**no**: dominated by " + ", ".join(dom)
    cheap = s.cheap()
    sign = -1.0 if s.higher_is_better else 1.0
    best = min(cheap, key=lambda m: sign * s.mean(m))
    if "neon tuned" not in cheap:
        tuned = f"**no**: neon tuned costs {s.cost('neon tuned'):.1f} gradient-equivalents here"
    else:
        better = [m for m in cheap if m != "neon tuned" and s.beats(m, "neon tuned")]
        if best == "neon tuned":
            tuned = "yes (best)"
        elif not better:
            tuned = f"yes (tied: {best} has the better mean, but not on every seed)"
        else:
            tuned = "**no**: beaten on every seed by " + ", ".join(better)
    return front, tuned


def markdown(settings: list[Setting], total_seconds: float, args: argparse.Namespace) -> str:
    seeds = sorted({sd for s in settings for sd in s.seeds})
    lines = ["## Faithfulness", "",
             f"Generated by `python benchmarks/faithfulness.py --seeds {' '.join(map(str, seeds))}"
             + (" --quick" if args.quick else "") + (f" --threads {args.threads}" if args.threads != 2 else "")
             + f"` ({total_seconds / 60:.0f} min, {args.threads} "
             "torch threads, on a shared 2-core machine under load from other jobs: rerun on a quiet machine for "
             "stable costs). Every method explains the same `neon.Network`. Scores: mean over seeds of the per-seed "
             "mean over the evaluation samples, with [min, max] over seeds; *cost*: wall time in "
             "gradient-equivalents (one `neon.baselines.gradient` call on the same samples = 1, fastest of "
             "round-robin repeats, median over seeds), and time per sample. \"neon tuned\" was chosen by `neon.tune` "
             "on a separate validation split with the protocol being scored (its choice per seed below). *Better "
             "beyond the seed spread* = better on every seed. Integrated gradients and occlusion take the "
             "replacement value as their baseline, so they measure exactly the removal that is scored. On these small "
             "inputs (64 pixels, 10-30 features) one batched call evaluates all of occlusion's `d + 1` inputs, and "
             "calls of a few hundredths of a millisecond per sample are dominated by per-call overhead: costs within a "
             "factor of about 3 of each other are not distinguishable there (same rules, timed twice, differ that "
             "much); the model-evaluation column is the hardware-independent cost. Figures: "
             "`docs/img/faithfulness_*.png`.", ""]
    drawn: set[str] = set()
    for s in settings:
        better = "higher" if s.higher_is_better else "lower"
        front, tuned = verdicts(s)
        notes = "; ".join(sorted(set(n for n in s.notes if n)))
        if s.key not in drawn:  # the task's figure (every protocol) before its first table
            drawn.add(s.key)
            lines += [f"![{s.key}: cost against score, every protocol](img/faithfulness_{_slug(s.key)}.png)", ""]
        lines += [f"### {s.key}, " + (f"replace={s.protocol}" if s.protocol != "-" else "localization"), "",
                  f"Metric: {s.metric}, {better} is better. Replacement: {s.replace}. Seeds: "
                  f"{', '.join(map(str, s.seeds))}" + (f" ({notes})" if notes else "") + ".", "",
                  f"- neon default on the Pareto front (cost, score): {front}.",
                  f"- neon tuned best or tied among the methods of at most {CHEAP:g} gradient-equivalents: {tuned}.",
                  f"- neon tuned chose: {', '.join(s.choices)}.", "",
                  "| method | score | cost (grad.-eq.) | time / sample | model evaluations / sample |",
                  "|---|---|---|---|---|"]
        for m in s.scores:
            lines.append(f"| {m} | {_range(s.scores[m], 4)} | {s.cost(m):.2f} | "
                         f"{1e3 * float(np.median(s.seconds[m])):.3f} ms | {s.evals[m]} |")
        lines.append("")
    lines += ["### Against the goal", "",
              f"Goal: neon's default rules on the Pareto front of every task (no method both cheaper and better "
              f"beyond the seed spread; *cheaper* = cheaper on every seed and by at least {1 / CHEAPER:.3g}x in the "
              "median, so that timer noise between methods of the same work does not count), and `neon.tune` given the "
              f"task's own removal protocol best or tied among all methods of at most {CHEAP:g} gradient-equivalents.",
              "",
              "| task | protocol | default on the front | tuned best or tied (cheap methods) |", "|---|---|---|---|"]
    for s in settings:
        front, tuned = verdicts(s)
        lines.append(f"| {s.key} | {s.protocol} | {front} | {tuned} |")
    lines.append("")
    return "\n".join(lines)


def write_docs(text: str) -> Path:
    """Replace (or append) the "Faithfulness" section of ``docs/benchmarks.md``."""
    bench = ROOT / "docs" / "benchmarks.md"
    old = bench.read_text() if bench.exists() else "# Benchmarks\n"
    pattern = re.compile(r"^## Faithfulness\n.*?(?=^## |\Z)", re.S | re.M)
    new = pattern.sub(lambda _: text + "\n", old) if pattern.search(old) else old.rstrip() + "\n\n" + text + "\n"
    bench.write_text(new)
    return bench


def _slug(key: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", key.split(",")[0].lower()).strip("_")


def plot(settings: list[Setting], out: Path) -> list[Path]:
    """One figure per task: a panel per protocol, cost (log) against score, bars = range over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    by_task: dict[str, list[Setting]] = {}
    for s in settings:
        by_task.setdefault(s.key, []).append(s)
    paths = []
    for key, group in by_task.items():
        fig, axes = plt.subplots(1, len(group), figsize=(3.6 * len(group), 3.4), squeeze=False)
        for ax, s in zip(axes[0], group):
            # Methods with the same scores on every seed (e.g. the default and the preset it is) share a point.
            same: dict[tuple, list[str]] = {}
            for m in s.scores:
                same.setdefault(tuple(np.round(s.scores[m], 6)), []).append(m)
            lo, hi = min(min(v) for v in s.scores.values()), max(max(v) for v in s.scores.values())
            step = 0.05 * (hi - lo or 1.0)
            placed: list[tuple[float, float]] = []
            for ms in same.values():
                v = np.asarray(s.scores[ms[0]])
                c = float(np.median([s.cost(m) for m in ms]))
                colour = "tab:red" if ms[0].startswith("neon") else "tab:blue"
                ax.errorbar(c, v.mean(), yerr=[[v.mean() - v.min()], [v.max() - v.mean()]], fmt="o", ms=4,
                            capsize=2, color=colour)
                short = " = ".join(m.replace("neon ", "").replace("integrated gradients", "IG")
                                   .replace("shapley sampling", "Shapley").split(" (")[0] for m in ms)
                y = float(v.mean())
                while any(abs(np.log10(c) - px) < 0.5 and abs(y - py) < step for px, py in placed):
                    y -= step
                placed.append((float(np.log10(c)), y))
                ax.annotate(short, (c, v.mean()), xytext=(c * 1.3, y), fontsize=5.5, color=colour, va="center",
                            arrowprops={"arrowstyle": "-", "color": colour, "lw": 0.4})
            ax.axvline(CHEAP, color="grey", lw=0.7, ls=":")
            ax.set_xscale("log")
            ax.set_xlabel("cost (gradient-equivalents)", fontsize=7)
            ax.set_ylabel(f"{s.metric} ({'higher' if s.higher_is_better else 'lower'} better)", fontsize=7)
            ax.set_title(f"replace={s.protocol}" if s.protocol != "-" else "localization", fontsize=8)
            ax.tick_params(labelsize=6)
        fig.suptitle(key + " (red: neon; bars: range over seeds)", fontsize=8)
        fig.tight_layout()
        path = out / f"faithfulness_{_slug(key)}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--quick", action="store_true", help="fewer samples and steps (a smoke run)")
    parser.add_argument("--tasks", default="1234", help="which tasks to run, e.g. 124")
    parser.add_argument("--no-docs", action="store_true", help="print the tables without writing docs or figures")
    parser.add_argument("--out", default=str(ROOT / "out" / "faithfulness"), help="where results.json goes")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (1 is much faster on an overloaded "
                        "machine: idle threads spin)")
    parser.add_argument("--from-json", help="render the docs section and figures from a results.json of an earlier "
                        "run instead of running (pass --seconds, --threads and --quick as that run had them)")
    parser.add_argument("--seconds", type=float, help="with --from-json: how long that run took")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.from_json:
        settings = [Setting(**d) for d in json.loads(Path(args.from_json).read_text())]
        text = markdown(settings, args.seconds or 0.0, args)
        print(text)
        if not args.no_docs:
            for p in plot(settings, ROOT / "docs" / "img"):
                print("figure", p)
            print("written to", write_docs(text))
        return
    t0 = time.perf_counter()
    warm_up_shap()
    tasks: list[Task] = []
    for seed in args.seeds:
        for key, fn in (("1", task_cnn), ("2", task_kmeans), ("3", task_anomalies), ("4", task_svc)):
            if key in args.tasks:
                t1 = time.perf_counter()
                tasks += fn(args.quick, seed)
                print(f"seed {seed}, task {key}: {time.perf_counter() - t1:.1f} s", flush=True)
    settings = collect(tasks)
    text = markdown(settings, time.perf_counter() - t0, args)
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps([s.__dict__ for s in settings], indent=1))
    if not args.no_docs:
        for p in plot(settings, ROOT / "docs" / "img"):
            print("figure", p)
        print("written to", write_docs(text))


if __name__ == "__main__":
    main()
