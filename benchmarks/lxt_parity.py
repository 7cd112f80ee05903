"""neon against LXT 2.1 (Achtibat et al., AttnLRP, ICML 2024) on the models LXT supports, in float64.

LXT 2.1 imports ``transformers.modeling_attn_mask_utils``, which transformers 5 no longer has, and it replaces
``nn.LayerNorm.forward``, ``nn.GELU.forward`` and ``nn.MultiheadAttention.forward`` for the whole process. So it
runs here in a subprocess, on its own package folder with the transformers version its README was tested with
(4.52.4, installed with ``pip install --target``, no dependencies beyond what LXT imports), and never in the
process that runs neon. The subprocess builds the models from small configs with random weights, explains them
with LXT's maps (torchvision ViT: ``cp_LRP``; BERT and GPT-2: ``attnLRP``) and saves weights, inputs and
relevance; this process loads the same weights into models of the current transformers and explains them with
neon's ``cp_lrp(0)`` / ``attnlrp(0)`` (LXT's gradient x input has no stabilisers).

Run ``python benchmarks/lxt_parity.py``: it prints the relative difference per model (the largest over samples
of ``|R_neon - R_lxt| / |R_lxt|``) and exits non-zero above ``1e-6``. ``NEON_LXT_DIR`` sets the package folder
(default ``~/.cache/neon/lxt-2.1``); it is created on first use (needs PyPI).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

PACKAGES = ["lxt==2.1", "transformers==4.52.4", "tokenizers>=0.21,<0.22", "huggingface-hub>=0.30,<1.0"]
TOLERANCE = 1e-6

CONFIGS = {
    "bert": dict(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                 max_position_embeddings=32, num_labels=3),
    "gpt2": dict(vocab_size=100, n_embd=32, n_layer=2, n_head=4, n_positions=32, bos_token_id=0, eos_token_id=0),
    "vit": dict(image_size=32, patch_size=8, num_layers=2, num_heads=4, hidden_dim=32, mlp_dim=64, num_classes=5),
}


def lxt_dir() -> Path:
    return Path(os.environ.get("NEON_LXT_DIR", Path.home() / ".cache" / "neon" / "lxt-2.1"))


def ensure_lxt() -> Path:
    """The package folder with LXT 2.1 and transformers 4.52.4 (installed on first use)."""
    target = lxt_dir()
    if not (target / "lxt" / "__init__.py").exists() or not (target / "transformers").exists():
        target.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
                        *PACKAGES], check=True)
    return target


_LXT_SIDE = r'''
import sys, torch
from torch import nn
torch.manual_seed(0)
configs, out = eval(sys.argv[1]), sys.argv[2]
from lxt.efficient import monkey_patch
import torchvision.models.vision_transformer as vision_transformer
import transformers
from transformers.models.bert import modeling_bert
from transformers.models.gpt2 import modeling_gpt2
from lxt.efficient.models.gpt2 import attnLRP as gpt2_attnlrp
monkey_patch(vision_transformer)                    # LXT's default ViT map: cp_LRP
monkey_patch(modeling_bert)                         # attnLRP
monkey_patch(modeling_gpt2, patch_map=gpt2_attnlrp)  # attnLRP (LXT's default for GPT-2 is cp_LRP)

def spread_norms(model):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.LayerNorm):
                m.weight.uniform_(0.5, 1.5); m.bias.normal_(0, 0.1)

result = {}
vit = vision_transformer.VisionTransformer(**configs["vit"])
spread_norms(vit)
with torch.no_grad():
    nn.init.normal_(vit.heads.head.weight); vit.heads.head.bias.normal_()
vit = vit.double().eval()
x = torch.randn(3, 3, 32, 32, dtype=torch.float64, requires_grad=True)
logits = vit(x); target = logits.argmax(1)
logits.gather(1, target[:, None]).sum().backward()
result["vit"] = dict(state=vit.state_dict(), x=x.detach(), target=target, relevance=(x * x.grad).detach())

for name, config_cls, model_cls in (("bert", transformers.BertConfig, transformers.BertForSequenceClassification),
                                    ("gpt2", transformers.GPT2Config, transformers.GPT2LMHeadModel)):
    model = model_cls(config_cls(**configs[name]))
    spread_norms(model)
    model = model.double().eval()
    ids = torch.randint(1, configs[name]["vocab_size"], (3, 10))
    embeds = model.get_input_embeddings()(ids).detach().requires_grad_(True)
    logits = model(inputs_embeds=embeds).logits
    logits = logits[:, -1] if logits.dim() == 3 else logits
    target = logits.argmax(1)
    logits.gather(1, target[:, None]).sum().backward()
    relevance = (embeds * embeds.grad).sum(-1).detach()
    result[name] = dict(state=model.state_dict(), x=ids, target=target, relevance=relevance)
result["versions"] = dict(transformers=transformers.__version__)
torch.save(result, out)
'''


def run_lxt(target: Path) -> dict:
    """LXT's relevance (and the weights and inputs it explained), computed in a subprocess."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "lxt.pt"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")]),
               "TRANSFORMERS_VERBOSITY": "error"}
        res = subprocess.run([sys.executable, "-c", _LXT_SIDE, repr(CONFIGS), str(out)], env=env,
                             capture_output=True, text=True, timeout=900)
        if res.returncode != 0:
            raise RuntimeError(f"the LXT subprocess failed:\n{res.stderr[-3000:]}")
        return torch.load(out, weights_only=False)


def neon_side(lxt: dict) -> dict[str, dict[str, float]]:
    """neon's relevance on the same weights and inputs; the relative difference to LXT per model."""
    import torchvision
    import transformers

    import neon
    from neon.composites import attnlrp, cp_lrp

    models = {
        "vit": (torchvision.models.VisionTransformer(**CONFIGS["vit"]), cp_lrp(0.0), "cp_lrp"),
        "bert": (transformers.BertForSequenceClassification(transformers.BertConfig(**CONFIGS["bert"])), attnlrp(0.0),
                 "attnlrp"),
        "gpt2": (transformers.GPT2LMHeadModel(transformers.GPT2Config(**CONFIGS["gpt2"])), attnlrp(0.0), "attnlrp"),
    }
    report = {}
    for name, (model, rules, preset) in models.items():
        got = lxt[name]
        missing, unexpected = model.load_state_dict(got["state"], strict=False)
        assert not [k for k in missing if not k.endswith("position_ids")], missing
        model = model.double().eval()
        x = got["x"]
        e = neon.explain(model, x, target=got["target"], rules=rules)
        want = got["relevance"]
        diff = (e.relevance - want).flatten(1).norm(dim=1) / want.flatten(1).norm(dim=1)
        stabilised = neon.explain(model, x, target=got["target"], rules=preset)
        diff_eps = (stabilised.relevance - want).flatten(1).norm(dim=1) / want.flatten(1).norm(dim=1)
        report[name] = {"map": "cp_LRP" if name == "vit" else "attnLRP", "relative": float(diff.max()),
                        "relative_default_eps": float(diff_eps.max())}
    return report


def main() -> int:
    target = ensure_lxt()
    lxt = run_lxt(target)
    report = neon_side(lxt)
    print(f"neon vs LXT 2.1 (transformers {lxt['versions']['transformers']} for LXT), float64, relative L2 difference "
          "of the relevance, worst sample")
    print(f"{'model':<6} {'LXT map':<8} {'neon (eps=0)':>14} {'neon (eps=1e-6)':>16}")
    ok = True
    for name, r in report.items():
        print(f"{name:<6} {r['map']:<8} {r['relative']:>14.2e} {r['relative_default_eps']:>16.2e}")
        ok = ok and r["relative"] <= TOLERANCE
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
