"""Speed and peak memory of neon on standard CNNs against the input gradient, zennit and captum.

Usage::

    nice python benchmarks/bench_dnn.py                      # vgg16 and resnet50, batch 4, 224x224
    python benchmarks/bench_dnn.py --models resnet18 --size 64 --repeats 3

CPU, float32, ``torch.set_num_threads(2)``, random weights; every method explains the predicted class.

*Time*: one process per model builds every method (zennit and captum on their own deep copies of
the model, as both attach hooks and zennit's canonizers rewrite BatchNorm parameters in place), does
one untimed warm-up call of each, then ``--repeats`` rounds that call every method once in turn
(round robin). The table shows each method's median; ratios are against the median input gradient
of the same rounds, so a slow phase of a shared machine hits all methods alike instead of whichever
ran during it. "neon epsilon one-shot" is ``neon.explain(model, x)`` on every call: a new explainer, whose run-time
equivalence check (the model and the network on the first rows) is part of the timed call, while the trace is
cached per model version. The fitted explainers check once, in the untimed warm-up call.
One-time set-up is not timed: neon's ``Explainer.fit`` (neuralizing the model),
zennit's hook registration and canonizers, captum's construction and the forward it needs to know
the target.

*Memory*: every (model, method) pair runs once more in a fresh subprocess (warm-up and one call):
"peak" is that process's peak RSS (``ru_maxrss``), "work" the peak minus the RSS once model and input
exist, i.e. what the method itself needs (neon's network shares the model's weights).

Targets (issue 4): neon epsilon <= 1.2x, neon EpsilonGammaBox <= 1.6x the gradient, >= 3x faster than
zennit's EpsilonGammaBox; peak memory <= 1.5x the gradient's.
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

METHODS = ["forward", "gradient", "neon epsilon", "neon epsilon one-shot", "neon EpsilonGammaBox",
           "zennit EpsilonGammaBox", "captum LRP"]


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
    if name == "neon epsilon one-shot":
        import neon

        # neon.explain on every call: a new Explainer each time, which checks the (cached) network against the
        # model on the first rows before explaining; the trace itself is cached per model version
        return lambda: neon.explain(model, x, rules="epsilon").relevance
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


def _setup(model_name: str, batch: int, size: int):
    import torch
    import torchvision

    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = getattr(torchvision.models, model_name)(weights=None).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, torch.randn(batch, 3, size, size)


def memory_worker(model_name: str, method: str, batch: int, size: int) -> dict:
    """Peak resident memory of one method in a fresh process (warm-up and one call)."""
    model, x = _setup(model_name, batch, size)
    rss_model = _rss_mb()
    try:
        run = _method(method, model, x)
        run()
        run()
    except Exception as err:  # noqa: BLE001 - a peer library failing is a result to report
        return {"error": f"{type(err).__name__}: {str(err)[:120]}"}
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"peak": peak, "work": peak - rss_model}


def timing_worker(model_name: str, methods: list[str], batch: int, size: int, repeats: int) -> dict:
    """Median time of every method over ``repeats`` round-robin rounds in one process."""
    import copy

    model, x = _setup(model_name, batch, size)
    runs, result = {}, {}
    for method in methods:
        own = copy.deepcopy(model) if method.startswith(("zennit", "captum")) else model
        try:
            runs[method] = _method(method, own, x)
            runs[method]()  # warm-up
        except Exception as err:  # noqa: BLE001 - a peer library failing is a result to report
            result[method] = {"error": f"{type(err).__name__}: {str(err)[:120]}"}
    times: dict[str, list[float]] = {m: [] for m in runs}
    for _ in range(repeats):
        for method, run in runs.items():
            t0 = time.perf_counter()
            run()
            times[method].append(time.perf_counter() - t0)
    for method, ts in times.items():
        result[method] = {"time": statistics.median(ts), "times": ts}
    return result


def _run_worker(args: list[str]) -> dict:
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    return json.loads(lines[-1]) if lines else {"error": proc.stderr.strip()[-120:]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["vgg16", "resnet50"])
    parser.add_argument("--methods", nargs="+", default=METHODS)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--memory-worker", nargs=2, metavar=("MODEL", "METHOD"), help=argparse.SUPPRESS)
    parser.add_argument("--timing-worker", metavar="MODEL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_worker:
        print(json.dumps(memory_worker(*args.memory_worker, args.batch, args.size)))
        return
    if args.timing_worker:
        print(json.dumps(timing_worker(args.timing_worker, args.methods, args.batch, args.size, args.repeats)))
        return

    import captum
    import torch
    import zennit

    print(f"# bench_dnn: batch {args.batch}, {args.size}x{args.size}, CPU float32, 2 threads; time: median of "
          f"{args.repeats} round-robin rounds in one process (after 1 warm-up); memory: fresh process per row")
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, python {platform.python_version()}, torch {torch.__version__}, "
          f"zennit {zennit.__version__ if hasattr(zennit, '__version__') else '0.5.1'}, captum {captum.__version__}")
    header = f"| {'model':<9} | {'method':<24} | {'time s':>7} | {'x grad':>6} | {'peak MB':>8} | {'x grad':>6} " \
             f"| {'work MB':>8} | {'x grad':>6} |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    size_args = ["--batch", str(args.batch), "--size", str(args.size)]
    for model_name in args.models:
        timing = _run_worker(["--timing-worker", model_name, "--methods", *args.methods, *size_args,
                              "--repeats", str(args.repeats)])
        memory = {m: _run_worker(["--memory-worker", model_name, m, *size_args]) for m in args.methods}
        grad_t, grad_m = timing.get("gradient", {}), memory.get("gradient", {})
        for method in args.methods:
            t, m = timing.get(method, timing if "error" in timing else {}), memory[method]
            if "error" in t or "error" in m:
                print(f"| {model_name:<9} | {method:<24} | {'error: ' + t.get('error', m.get('error', ''))} |")
                continue

            def ratio(r, base, key):
                return f"{r[key] / base[key]:.2f}" if key in base else "-"
            print(f"| {model_name:<9} | {method:<24} | {t['time']:>7.2f} | {ratio(t, grad_t, 'time'):>6} "
                  f"| {m['peak']:>8.0f} | {ratio(m, grad_m, 'peak'):>6} | {m['work']:>8.0f} "
                  f"| {ratio(m, grad_m, 'work'):>6} |", flush=True)
        neon_t = timing.get("neon EpsilonGammaBox", {}).get("time")
        zen_t = timing.get("zennit EpsilonGammaBox", {}).get("time")
        if neon_t and zen_t:
            print(f"| {model_name:<9} | zennit EGB / neon EGB    | {zen_t / neon_t:>7.2f} |        |          |"
                  "        |          |        |")
        if "gradient" in timing and "times" in timing["gradient"]:
            spread = ", ".join(f"{v:.2f}" for v in timing["gradient"]["times"])
            print(f"# {model_name}: gradient per round (s): {spread}")


if __name__ == "__main__":
    main()
