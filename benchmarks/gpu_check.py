"""Every GPU check of issue 13 in one run (under 5 minutes on an H200), printed as one table.

1. k-means: 1,000,000 x 50 float32 rows as a CUDA tensor, ``KMeans(10)`` (fitted with scikit-learn on the
   first 20,000 rows): ``Explainer.explain`` against a torch predict, ``torch.cdist(X, C).argmin(1)``, on
   the same tensor. Goal <= 5x. Measured with the network's own chunks and with the whole tensor as one
   chunk (``batch_size=n``); targets are compared with the torch predict.
2. CNNs: torchvision ``vgg16``, ``resnet50``, ``densenet121``, ``mobilenet_v2`` with random weights, batch 32,
   224 x 224, float32, explaining the predicted class: neon ``epsilon`` and ``EpsilonGammaBox(-3, 3)``
   against the input gradient (the gradient of the predicted logit, parameters frozen). Time: every method
   called in turn for ``--repeat`` rounds after one untimed call, each call synchronised, the median per
   method. Peak memory: ``torch.cuda.max_memory_allocated`` over one call, against the gradient's.
   Goals: epsilon <= 1.2x and EpsilonGammaBox <= 1.6x the gradient's time, peak memory <= 1.5x.
3. Low precision: neon ``epsilon`` and ``EpsilonGammaBox`` with ``dtype=torch.bfloat16`` and ``torch.float16``:
   the cosine of each sample's relevance with the float32 relevance (float64 arithmetic on unit vectors:
   random-weight logits can be ~1e-10), the smallest over the batch. No goal; reported. The largest logit
   is printed per model: relevance below float16's smallest number (6e-8) is zero there, cosine 0.

``--profile`` adds the 15 most expensive operations (device time) of one k-means explanation and of one
resnet50 EpsilonGammaBox explanation: where the time goes, before anyone optimises.

``--smoke`` runs the same code on the CPU at tiny sizes (5,000 x 50 rows, K=4; batch 2, 32 x 32; one
round), so that the script is known to work before a GPU session runs it; its ratios mean nothing.

Usage::

    python benchmarks/gpu_check.py                    # on a machine with a CUDA device
    python benchmarks/gpu_check.py --profile
    python benchmarks/gpu_check.py --smoke --models mobilenet_v2
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

import neon

MODELS = ("vgg16", "resnet50", "densenet121", "mobilenet_v2")


@dataclass
class Row:
    """One line of the table: what was checked, the measured value, the goal (``None``: reported only)."""

    check: str
    value: float
    unit: str = "x"
    goal: float | None = None
    higher_is_better: bool = False

    def line(self) -> str:
        value = f"{self.value:.4f}" if self.unit == "cos" else f"{self.value:.2f}{self.unit}"
        if self.goal is None:
            goal, met = "-", "-"
        else:
            sign = ">=" if self.higher_is_better else "<="
            goal = f"{sign} {self.goal:g}{'' if self.unit == 'cos' else self.unit}"
            ok = self.value >= self.goal if self.higher_is_better else self.value <= self.goal
            met = "yes" if ok else "NO"
        return f"{self.check:<62}{value:>12}{goal:>10}{met:>6}"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def round_robin(methods: dict[str, Callable[[], Any]], repeat: int, device: torch.device) -> dict[str, float]:
    """Median seconds of every method over ``repeat`` rounds that call each once in turn (after one warm-up)."""
    for fn in methods.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(repeat):
        for name, fn in methods.items():
            times[name].append(timed(fn, device))
    return {name: statistics.median(ts) for name, ts in times.items()}


def peak_bytes(fn: Callable[[], Any], device: torch.device) -> float | None:
    """Peak memory allocated on the device during one call of ``fn`` (``None`` on the CPU)."""
    if device.type != "cuda":
        return None
    synchronize(device)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    result = fn()
    synchronize(device)
    del result
    return float(torch.cuda.max_memory_allocated(device))


def cosine_per_sample(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine of every sample's relevance, in float64 on unit vectors (tiny relevance underflows otherwise)."""
    a, b = a.detach().double().flatten(1), b.detach().double().flatten(1)
    a = a / a.norm(dim=1, keepdim=True).clamp_min(1e-300)
    b = b / b.norm(dim=1, keepdim=True).clamp_min(1e-300)
    return (a * b).sum(1)


def profile(fn: Callable[[], Any], device: torch.device, title: str) -> None:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    fn()
    synchronize(device)
    with torch_profile(activities=activities) as prof:
        fn()
        synchronize(device)
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(f"\nprofile: {title}")
    print(prof.key_averages().table(sort_by=key, row_limit=15))


def kmeans_rows(args: argparse.Namespace, device: torch.device) -> list[Row]:
    from sklearn.cluster import KMeans

    n, d, k = (5_000, 50, 4) if args.smoke else (1_000_000, 50, 10)
    g = torch.Generator(device=device).manual_seed(0)
    centers = 4.0 * torch.randn(k, d, generator=g, device=device)
    X = centers[torch.randint(0, k, (n,), generator=g, device=device)] + torch.randn(n, d, generator=g,
                                                                                    device=device)
    km = KMeans(k, n_init=1, random_state=0).fit(X[:20_000].cpu().numpy())
    C = torch.as_tensor(km.cluster_centers_, device=device)
    default = neon.Explainer(km, progress=False).fit(X[:20_000])
    whole = neon.Explainer(km, progress=False, batch_size=n).fit(X[:20_000])
    times = round_robin({"predict": lambda: torch.cdist(X, C).argmin(1), "explain": lambda: default.explain(X),
                         "explain whole": lambda: whole.explain(X)}, args.repeat, device)
    agree = float((default.explain(X).target == torch.cdist(X, C).argmin(1)).float().mean())
    chunk = default.network_.chunk_size
    print(f"k-means {n:,} x {d} float32 on {device}, K={k}: cdist+argmin {times['predict'] * 1e3:.2f} ms, explain "
          f"{times['explain'] * 1e3:.2f} ms (chunks of {chunk}), {times['explain whole'] * 1e3:.2f} ms (one chunk); "
          f"targets == cdist argmin on {agree:.4%}")
    if args.profile:
        profile(lambda: whole.explain(X), device, f"k-means explain, {n:,} rows in one chunk")
    return [Row(f"k-means {n:,}x{d} K={k} explain / cdist+argmin (chunks of {chunk})",
                times["explain"] / times["predict"], goal=5.0),
            Row(f"k-means {n:,}x{d} K={k} explain / cdist+argmin (one chunk)",
                times["explain whole"] / times["predict"], goal=5.0)]


def cnn_rows(name: str, args: argparse.Namespace, device: torch.device) -> list[Row]:
    import torchvision

    batch, size = (2, 32) if args.smoke else (32, 224)
    torch.manual_seed(0)
    with device:
        model = getattr(torchvision.models, name)(weights=None).eval()
        x = torch.randn(batch, 3, size, size)
    for p in model.parameters():
        p.requires_grad_(False)

    def gradient() -> torch.Tensor:
        xg = x.clone().requires_grad_(True)
        out = model(xg)
        out.gather(1, out.argmax(1, keepdim=True)).sum().backward()
        return xg.grad

    egb = neon.composites.EpsilonGammaBox(low=-3.0, high=3.0)
    explainers = {"epsilon": neon.Explainer(model, rules="epsilon", progress=False).fit(),
                  "EpsilonGammaBox": neon.Explainer(model, rules=egb, progress=False).fit()}
    methods: dict[str, Callable[[], Any]] = {"gradient": gradient}
    methods.update({rule: (lambda e=e: e.explain(x).relevance) for rule, e in explainers.items()})
    times = round_robin(methods, args.repeat, device)
    peaks = {method: peak_bytes(fn, device) for method, fn in methods.items()}
    with torch.no_grad():
        logit = float(model(x).amax(1).abs().max())  # random weights: float16 flushes values < 6e-8 to zero
    print(f"{name}: batch {batch}, {size}x{size}, largest |logit| {logit:.2g}: " + ", ".join(
        f"{m} {t * 1e3:.1f} ms" + ("" if peaks[m] is None else f" / {peaks[m] / 2**20:.0f} MiB")
        for m, t in times.items()))
    goals = {"epsilon": 1.2, "EpsilonGammaBox": 1.6}
    rows = [Row(f"{name} {rule} / gradient, time", times[rule] / times["gradient"], goal=goal)
            for rule, goal in goals.items()]
    base = peaks["gradient"]
    for rule in goals:
        peak = peaks[rule]
        if peak is not None and base:
            rows.append(Row(f"{name} {rule} / gradient, peak memory", peak / base, goal=1.5))
    for rule, explainer in explainers.items():
        reference = explainer.explain(x).relevance
        for dtype in (torch.bfloat16, torch.float16):
            low = neon.Explainer(model, rules="epsilon" if rule == "epsilon" else egb, progress=False,
                                 dtype=dtype).fit()
            cos = cosine_per_sample(low.explain(x).relevance, reference)
            rows.append(Row(f"{name} {rule} {str(dtype).split('.')[1]}: min cosine to float32",
                            float(cos.min()), unit="cos"))
    if args.profile and name == "resnet50":
        profile(methods["EpsilonGammaBox"], device, f"resnet50 EpsilonGammaBox, batch {batch}")
        profile(gradient, device, f"resnet50 input gradient, batch {batch}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU: does the script work?")
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=MODELS)
    parser.add_argument("--repeat", type=int, default=None, help="rounds (default 7; 1 with --smoke)")
    parser.add_argument("--no-kmeans", action="store_true")
    parser.add_argument("--profile", action="store_true", help="print the most expensive operations")
    args = parser.parse_args()
    args.repeat = args.repeat or (1 if args.smoke else 7)
    if args.smoke:
        device = torch.device("cpu")
        torch.set_num_threads(1)  # tiny tensors: threads would only wait for each other (on a loaded machine, long)
    elif torch.cuda.is_available():
        device = torch.device("cuda")
    else:
        parser.error("no CUDA device: run on a machine with one, or use --smoke for the CPU check of the script")
    start = time.perf_counter()
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (smoke: ratios mean nothing)"
    print(f"gpu_check on {where}; torch {torch.__version__}, neon {getattr(neon, '__version__', '?')}")
    rows: list[Row] = []
    if not args.no_kmeans:
        rows += kmeans_rows(args, device)
    for name in args.models:
        rows += cnn_rows(name, args, device)
    print()
    header = f"{'check':<62}{'measured':>12}{'goal':>10}{'met':>6}"
    print(header)
    print("-" * len(header))
    for row in rows:
        print(row.line())
    print(f"\n{time.perf_counter() - start:.0f} s in all")
    assert all(np.isfinite(row.value) for row in rows), "a check gave a non-finite value"


if __name__ == "__main__":
    main()
