"""Speed of neon's transformer rules against the input gradient and LXT 2.1, side by side on one machine.

Usage::

    nice python benchmarks/bench_transformers.py                    # vit_b_16 (batch 2) and a small BERT
    python benchmarks/bench_transformers.py --models vit_b_16 --batch 32 --device cuda --repeats 5
    python benchmarks/bench_transformers.py --no-lxt                # neon only

Random weights, float32, every method explains the predicted class of every sample. Ratios are against the
input gradient (``x * d f / d x``; for text models at the input embeddings) measured in the same process:

- *neon* (this process): one untimed warm-up call of each method, then ``--repeats`` rounds that call the forward,
  the gradient, ``cp_lrp`` and ``attnlrp`` once each in turn (round robin); medians. The explainers are fitted
  (neuralized and checked) before timing.
- *LXT 2.1* (a subprocess on its own package folder with transformers 4.52.4, see ``benchmarks/lxt_parity.py``):
  LXT patches torch's classes for the whole process, so its process first times the plain gradient
  (``--repeats`` calls), then applies LXT's map (ViT: ``cp_LRP``; BERT: ``attnLRP``) and times LXT's explanation,
  which is a gradient of the patched model. Same machine, same threads, run right after neon's process.

Goals (issue 15): neon's ``cp_lrp`` on vit_b_16 no slower than LXT's CP-LRP side by side; ``attnlrp`` at most
1.5x the gradient on CPU; the same ratios on a GPU with batch 32.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

BERT = dict(vocab_size=1000, hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024,
            max_position_embeddings=128, num_labels=2)


def _build(name: str, batch: int, device: str):
    import torch

    torch.manual_seed(0)
    if name == "vit_b_16":
        import torchvision

        model = torchvision.models.vit_b_16(weights=None).eval().to(device)
        return model, torch.randn(batch, 3, 224, 224, device=device)
    import transformers

    model = transformers.BertForSequenceClassification(transformers.BertConfig(**BERT)).eval().to(device)
    return model, torch.randint(1, BERT["vocab_size"], (batch, 64), device=device)


def _gradient(name: str, model, x):
    if name == "vit_b_16":
        def run():
            xx = x.detach().clone().requires_grad_(True)
            out = model(xx)
            out.gather(1, out.argmax(1, keepdim=True)).sum().backward()
            return xx * xx.grad
        return run
    embed = model.get_input_embeddings()

    def run_text():
        e = embed(x).detach().requires_grad_(True)
        out = model(inputs_embeds=e).logits
        out.gather(1, out.argmax(1, keepdim=True)).sum().backward()
        return (e * e.grad).sum(-1)
    return run_text


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def neon_side(name: str, batch: int, repeats: int, device: str, threads: int) -> dict[str, float]:
    import torch

    import neon

    torch.set_num_threads(threads)
    model, x = _build(name, batch, device)
    explainers = {r: neon.Explainer(model, rules=r).fit() for r in ("cp_lrp", "attnlrp")}

    def forward():
        with torch.no_grad():
            return model(x) if name == "vit_b_16" else model(input_ids=x).logits

    methods = {"forward": forward, "gradient": _gradient(name, model, x),
               "neon cp_lrp": lambda: explainers["cp_lrp"].explain(x),
               "neon attnlrp": lambda: explainers["attnlrp"].explain(x)}
    for fn in methods.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in methods}
    for _ in range(repeats):
        for key, fn in methods.items():
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            times[key].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


_LXT_SIDE = r'''
import json, statistics, sys, time, torch
sys.path.insert(0, sys.argv[2])
import bench_transformers as b
name, batch, repeats, device, threads = sys.argv[1], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], int(sys.argv[6])
torch.set_num_threads(threads)
def timed(fn):
    fn()
    out = []
    for _ in range(repeats):
        b._sync(device); t = time.perf_counter(); fn(); b._sync(device); out.append(time.perf_counter() - t)
    return statistics.median(out)
model, x = b._build(name, batch, device)
result = {"gradient": timed(b._gradient(name, model, x))}
from lxt.efficient import monkey_patch
if name == "vit_b_16":
    import torchvision.models.vision_transformer as vt
    monkey_patch(vt)
else:
    from transformers.models.bert import modeling_bert
    monkey_patch(modeling_bert)
model, x = b._build(name, batch, device)  # built again with the patched classes
result["LXT " + ("cp_LRP" if name == "vit_b_16" else "attnLRP")] = timed(b._gradient(name, model, x))
print(json.dumps(result))
'''


def lxt_side(name: str, batch: int, repeats: int, device: str, threads: int) -> dict[str, float]:
    from lxt_parity import ensure_lxt

    folder = ensure_lxt()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")]),
           "TRANSFORMERS_VERBOSITY": "error"}
    res = subprocess.run([sys.executable, "-c", _LXT_SIDE, name, str(Path(__file__).resolve().parent), str(batch),
                          str(repeats), device, str(threads)], env=env, capture_output=True, text=True, timeout=3600)
    if res.returncode != 0:
        raise RuntimeError(res.stderr[-3000:])
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["vit_b_16", "bert"])
    parser.add_argument("--batch", type=int, default=None, help="default: 2 (vit_b_16) and 8 (bert) on CPU, 32 on GPU")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-lxt", action="store_true")
    args = parser.parse_args()
    for name in args.models:
        batch = args.batch or (32 if args.device != "cpu" else (2 if name == "vit_b_16" else 8))
        neon_times = neon_side(name, batch, args.repeats, args.device, args.threads)
        print(f"\n{name}, batch {batch}, {args.device}, {args.threads} threads, median of {args.repeats} rounds")
        g = neon_times["gradient"]
        print(f"  {'method':<22} {'seconds':>9} {'x gradient':>11}")
        for key, t in neon_times.items():
            print(f"  {key:<22} {t:>9.3f} {t / g:>11.2f}")
        if not args.no_lxt:
            lxt = lxt_side(name, batch, args.repeats, args.device, args.threads)
            g2 = lxt["gradient"]
            print("  LXT 2.1 process (its own gradient baseline):")
            for key, t in lxt.items():
                print(f"  {key:<22} {t:>9.3f} {t / g2:>11.2f}")


if __name__ == "__main__":
    main()
