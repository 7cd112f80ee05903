"""Speed and peak memory of neon on standard CNNs against the input gradient, zennit and captum.

Usage::

    nice python benchmarks/bench_dnn.py                      # vgg16 and resnet50, batch 4, 224x224
    python benchmarks/bench_dnn.py --models resnet18 --size 64 --repeats 3

Every (model, method) pair runs in a fresh subprocess (``torch.set_num_threads(2)``, CPU, float32,
random weights), so that its peak resident memory (``ru_maxrss``) is its own. Each subprocess
builds the model, does one untimed warm-up call, then ``--repeats`` timed calls; the table shows
the median. Every method explains the predicted class. One-time set-up is not timed: neon's
``Explainer.fit`` (neuralizing the model), zennit's hook registration and canonizers, captum's
construction. "peak" is the process's peak RSS; "work" is the peak minus the RSS once the model
and the input exist, i.e. what the method itself needs (neon's copy of the network included).
Ratios are against the input gradient measured in the same run. Targets (issue 4): neon epsilon
<= 1.2x, neon EpsilonGammaBox <= 1.6x the gradient, >= 3x faster than zennit's EpsilonGammaBox;
peak memory <= 1.5x the gradient's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

METHODS = ["forward", "gradient", "neon epsilon", "neon EpsilonGammaBox", "zennit EpsilonGammaBox", "captum LRP"]


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _method(name: str, model, x):  # noqa: ANN001 - worker-side helper
    import torch

    if name == "forward":
        def run():
            with torch.no_grad():
                return model(x)
        return run
    if name == "gradient":
        def run():
            xg = x.clone().requires_grad_(True)
            out = model(xg)
            out.gather(1, out.argmax(1, keepdim=True)).sum().backward()
            return xg.grad
        return run
    if name.startswith("neon"):
        import neon

        rules = "epsilon" if name == "neon epsilon" else neon.composites.EpsilonGammaBox(low=-3.0, high=3.0)
        explainer = neon.Explainer(model, rules=rules).fit()
        return lambda: explainer.explain(x).relevance
    if name.startswith("zennit"):
        from zennit.attribution import Gradient
        from zennit.composites import EpsilonGammaBox
        from zennit.torchvision import ResNetCanonizer, VGGCanonizer

        canonizer = ResNetCanonizer() if "resnet" in type(model).__name__.lower() else VGGCanonizer()
        composite = EpsilonGammaBox(low=-3.0, high=3.0, canonizers=[canonizer])
        attributor = Gradient(model, composite)
        attributor.__enter__()

        def run():
            def seed(out):
                return out * torch.nn.functional.one_hot(out.argmax(1), out.shape[1]).to(out)
            return attributor(x, seed)[1]
        return run
    if name == "captum LRP":
        from captum.attr import LRP

        with torch.no_grad():
            target = model(x).argmax(1)  # captum needs the target up front; this forward is not timed
        lrp = LRP(model)
        return lambda: lrp.attribute(x.clone(), target=target)
    raise ValueError(name)


def worker(model_name: str, method: str, batch: int, size: int, repeats: int) -> dict:
    import torch
    import torchvision

    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = getattr(torchvision.models, model_name)(weights=None).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    x = torch.randn(batch, 3, size, size)
    rss_model = _rss_mb()
    try:
        run = _method(method, model, x)
        run()  # warm-up
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            run()
            times.append(time.perf_counter() - t0)
    except Exception as err:  # noqa: BLE001 - a peer library failing is a result to report
        return {"error": f"{type(err).__name__}: {str(err)[:120]}"}
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"time": statistics.median(times), "times": times, "peak": peak, "work": peak - rss_model}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["vgg16", "resnet50"])
    parser.add_argument("--methods", nargs="+", default=METHODS)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", nargs=2, metavar=("MODEL", "METHOD"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker, args.batch, args.size, args.repeats)))
        return

    import captum
    import torch
    import zennit

    print(f"# bench_dnn: batch {args.batch}, {args.size}x{args.size}, CPU float32, 2 threads, median of "
          f"{args.repeats} (after 1 warm-up), fresh process per row")
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, python {platform.python_version()}, torch {torch.__version__}, "
          f"zennit {zennit.__version__ if hasattr(zennit, '__version__') else '0.5.1'}, captum {captum.__version__}")
    header = f"| {'model':<9} | {'method':<24} | {'time s':>7} | {'x grad':>6} | {'peak MB':>8} | {'x grad':>6} " \
             f"| {'work MB':>8} | {'x grad':>6} |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for model_name in args.models:
        results = {}
        for method in args.methods:
            cmd = [sys.executable, __file__, "--worker", model_name, method, "--batch", str(args.batch),
                   "--size", str(args.size), "--repeats", str(args.repeats)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
            results[method] = json.loads(lines[-1]) if lines else {"error": proc.stderr.strip()[-120:]}
        grad = results.get("gradient", {})
        for method in args.methods:
            r = results[method]
            if "error" in r:
                print(f"| {model_name:<9} | {method:<24} | {'error: ' + r['error']} |")
                continue
            def ratio(key, r=r, grad=grad):
                return f"{r[key] / grad[key]:.2f}" if key in grad else "-"
            print(f"| {model_name:<9} | {method:<24} | {r['time']:>7.2f} | {ratio('time'):>6} | {r['peak']:>8.0f} "
                  f"| {ratio('peak'):>6} | {r['work']:>8.0f} | {ratio('work'):>6} |", flush=True)
        neon_t = results.get("neon EpsilonGammaBox", {}).get("time")
        zen_t = results.get("zennit EpsilonGammaBox", {}).get("time")
        if neon_t and zen_t:
            print(f"| {model_name:<9} | zennit EGB / neon EGB    | {zen_t / neon_t:>7.2f} |        |          |"
                  "        |          |        |")


if __name__ == "__main__":
    main()
