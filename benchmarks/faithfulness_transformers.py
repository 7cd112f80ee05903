"""Token flipping on a small transformer trained on a task where one token decides the label.

Usage::

    python benchmarks/faithfulness_transformers.py              # about a minute on two cores
    python benchmarks/faithfulness_transformers.py --seeds 3 --steps 600

The task: sequences of 16 tokens drawn from a vocabulary of 40; exactly one position holds a *signal* token,
``A`` (id 1, label 0) or ``B`` (id 2, label 1); the rest are distractors (ids 4..39). A small BERT (hidden 32,
2 layers, 2 heads, eager attention so that its attention weights can be read for rollout) is trained on it from
random weights. Every method then ranks the tokens of 128 test sequences (the predicted class), and the tokens
are replaced most relevant first (MoRF) by the neutral token ``[PAD]`` (id 0), one at a time; the curve is the
logit of the explained class, normalised by its value on the intact sequence, and its area (mean over the 17
steps, lower is better). "signal first" is the share of sequences whose top-ranked token is the signal token.

Methods: neon ``attnlrp`` and ``cp_lrp``; gradient x input and integrated gradients (16 steps from the embedding
of ``[PAD]``), both at the word embeddings and summed over the hidden axis, as neon's token relevance; attention
rollout (Abnar and Zuidema, ACL 2020: heads averaged, identity added for the residual, rows normalised, products
over layers; the row of the ``[CLS]`` position); a random order as the floor.
"""

from __future__ import annotations

import argparse
import statistics

import torch
import torch.nn.functional as F

VOCAB, LENGTH, PAD, A, B = 40, 16, 0, 1, 2


def task(n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.randint(4, VOCAB, (n, LENGTH), generator=gen)
    label = torch.randint(0, 2, (n,), generator=gen)
    where = torch.randint(1, LENGTH, (n,), generator=gen)  # position 0 is the [CLS]-like first token
    ids[torch.arange(n), where] = torch.where(label == 0, A, B)
    ids[:, 0] = 3
    return ids, label


def train(seed: int, steps: int):
    import transformers

    torch.manual_seed(seed)
    cfg = transformers.BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                  intermediate_size=64, max_position_embeddings=LENGTH, num_labels=2,
                                  attn_implementation="eager", hidden_dropout_prob=0.0,
                                  attention_probs_dropout_prob=0.0)
    model = transformers.BertForSequenceClassification(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        ids, y = task(128, gen)
        opt.zero_grad()
        F.cross_entropy(model(input_ids=ids).logits, y).backward()
        opt.step()
    return model.eval()


def gradient_input(model, ids, target, baseline=None, steps=1):
    embed = model.get_input_embeddings()
    e = embed(ids).detach()
    base = torch.zeros_like(e) if baseline is None else embed(torch.full_like(ids, baseline)).detach()
    total = torch.zeros_like(e)
    alphas = [1.0] if steps == 1 else [(k + 0.5) / steps for k in range(steps)]
    for alpha in alphas:
        point = (base + alpha * (e - base)).requires_grad_(True)
        out = model(inputs_embeds=point).logits
        out.gather(1, target[:, None]).sum().backward()
        total += point.grad
    diff = e if baseline is None else e - base
    return (diff * total / len(alphas)).sum(-1)


def rollout(model, ids):
    with torch.no_grad():
        att = model(input_ids=ids, output_attentions=True).attentions
    n, L = ids.shape
    joint = torch.eye(L).expand(n, L, L)
    for a in att:
        a = a.mean(1) + torch.eye(L)
        a = a / a.sum(-1, keepdim=True)
        joint = a @ joint
    return joint[:, 0]


def flip_auc(model, ids, target, scores):
    order = scores.argsort(dim=1, descending=True)
    with torch.no_grad():
        base = model(input_ids=ids).logits.gather(1, target[:, None]).squeeze(1)
        curve = [torch.ones_like(base)]
        x = ids.clone()
        for k in range(LENGTH):
            x[torch.arange(len(x)), order[:, k]] = PAD
            curve.append(model(input_ids=x).logits.gather(1, target[:, None]).squeeze(1) / base)
    return float(torch.stack(curve, 1).mean(1).mean())


def main() -> None:
    import neon

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--steps", type=int, default=400)
    args = parser.parse_args()
    torch.set_num_threads(2)
    rows: dict[str, list[tuple[float, float]]] = {}
    for seed in range(args.seeds):
        model = train(seed, args.steps)
        ids, y = task(128, torch.Generator().manual_seed(1000 + seed))
        with torch.no_grad():
            pred = model(input_ids=ids).logits.argmax(1)
        accuracy = float((pred == y).float().mean())
        signal = (ids == A) | (ids == B)
        methods = {
            "neon attnlrp": neon.explain(model, ids, target=pred, rules="attnlrp").relevance,
            "neon cp_lrp": neon.explain(model, ids, target=pred, rules="cp_lrp").relevance,
            "gradient x input": gradient_input(model, ids, pred),
            "integrated gradients": gradient_input(model, ids, pred, baseline=PAD, steps=16),
            "attention rollout": rollout(model, ids),
            "random": torch.rand(ids.shape, generator=torch.Generator().manual_seed(seed)),
        }
        print(f"seed {seed}: test accuracy {accuracy:.3f}")
        for name, attribution in methods.items():
            scores = attribution.detach().float().clone()
            scores[:, 0] = float("-inf") if name != "random" else scores[:, 0]  # the [CLS]-like token last
            first = float(signal[torch.arange(len(ids)), scores.argmax(1)].float().mean())
            rows.setdefault(name, []).append((flip_auc(model, ids, pred, scores), first))
    print(f"\n{'method':<22} {'MoRF AUC (lower is better)':>27} {'signal first':>13}")
    for name, values in rows.items():
        auc = statistics.mean(v[0] for v in values)
        first = statistics.mean(v[1] for v in values)
        print(f"{name:<22} {auc:>27.3f} {first:>13.3f}")


if __name__ == "__main__":
    main()
