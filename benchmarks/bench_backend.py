"""Backend cost per preset on a VGG-like network: forward, input gradient and neon, in one run.

Prints absolute times (median of repeats) and the ratio to the input gradient measured in the
same run (the machines are noisy; only ratios from one run are comparable). Usage::

    python benchmarks/bench_backend.py [--batch 8] [--size 64] [--repeat 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

import neon


def vgg_like(width: int = 32) -> nn.Sequential:
    def block(cin: int, cout: int, n: int) -> list[nn.Module]:
        layers: list[nn.Module] = []
        for i in range(n):
            layers += [nn.Conv2d(cin if i == 0 else cout, cout, 3, padding=1), nn.ReLU(inplace=True)]
        return layers + [nn.MaxPool2d(2)]

    w = width
    return nn.Sequential(
        *block(3, w, 2), *block(w, 2 * w, 2), *block(2 * w, 4 * w, 3), *block(4 * w, 8 * w, 3),
        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(8 * w * 4, 256), nn.ReLU(), nn.Dropout(),
        nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10),
    ).eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = vgg_like()
    for p in model.parameters():
        p.requires_grad_(False)
    x = torch.rand(args.batch, 3, args.size, args.size)

    def forward() -> None:
        with torch.no_grad():
            model(x)

    def input_gradient() -> None:
        xg = x.clone().requires_grad_(True)
        out = model(xg)
        torch.autograd.grad(out.max(1).values.sum(), xg)

    presets = {
        "lrp0": "lrp0",
        "epsilon": "epsilon",
        "epsilon_plus": "epsilon_plus",
        "epsilon_plus_flat": "epsilon_plus_flat",
        "epsilon_alpha2_beta1": "epsilon_alpha2_beta1",
        "epsilon_gamma_box": neon.composites.EpsilonGammaBox(low=0.0, high=1.0),
        "overview": neon.composites.Overview(low=0.0, high=1.0),
    }
    methods = {"forward": forward, "input gradient": input_gradient}
    for name, rules in presets.items():
        explainer = neon.Explainer(model, rules=rules, output="logit").fit(x)
        methods[f"neon {name}"] = lambda e=explainer: e.explain(x)
    # Round-robin: every repeat times every method once, so slow phases of a shared machine hit all alike.
    samples: dict[str, list[float]] = {name: [] for name in methods}
    for fn in methods.values():
        fn()  # warm-up
    for _ in range(args.repeat):
        for name, fn in methods.items():
            t0 = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - t0)
    times = {name: statistics.median(ts) for name, ts in samples.items()}
    grad = times["input gradient"]
    print(f"VGG-like net, batch {args.batch}, {args.size}x{args.size}, {args.threads} threads, "
          f"torch {torch.__version__}, median of {args.repeat} round-robin repeats")
    print(f"{'method':<28}{'time [ms]':>12}{'x input grad':>15}")
    for name, t in times.items():
        print(f"{name:<28}{1000 * t:>12.1f}{t / grad:>15.2f}")


if __name__ == "__main__":
    main()
