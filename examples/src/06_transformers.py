# %% [markdown]
# # 6. Transformers: a Vision Transformer and a BERT, explained by the same backend
#
# neon explains transformers with the rules of AttnLRP (Achtibat et al., ICML 2024): attention is rewritten
# into its parts, and each part gets a rule (docs/theory.md §7):
#
# - products of activations ($QK^\top$, attention × values, gates): the **uniform** rule, each factor gets half;
# - the softmax: $R_{x_i} = x_i (R_{s_i} - s_i \sum_j R_{s_j})$, or with **CP-LRP** the attention weights are
#   held constant and relevance flows through the values only;
# - LayerNorm: a linear map with its statistics fixed; GELU and other element-wise functions: the identity rule.
#
# Two small models trained here on synthetic tasks (seconds on a CPU, nothing downloaded): a torchvision
# `VisionTransformer` that must find a red square, and a Hugging Face BERT whose label is decided by one token.

# %%
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
import torchvision
import transformers

import neon
import neon.plot

torch.manual_seed(0)
transformers.logging.set_verbosity_error()

# %% [markdown]
# ## A Vision Transformer: where is the red square?
#
# 16×16 images with a red and a green 4×4 square at random places; the label is the half (top or bottom) the
# **red** square is in. The green square is a distractor of the same brightness.

# %%
def squares(n, generator):
    x = 0.05 * torch.randn(n, 3, 16, 16, generator=generator)
    label = torch.randint(0, 2, (n,), generator=generator)
    red_row = torch.randint(0, 2, (n,), generator=generator) + 2 * label
    red_col, green = torch.randint(0, 4, (n,), generator=generator), torch.randint(0, 4, (n, 2), generator=generator)
    same = (green[:, 0] == red_row) & (green[:, 1] == red_col)
    green[same, 1] = (green[same, 1] + 1) % 4  # the squares never overlap
    for i in range(n):
        x[i, 0, 4 * red_row[i]:4 * red_row[i] + 4, 4 * red_col[i]:4 * red_col[i] + 4] += 1.0
        x[i, 1, 4 * green[i, 0]:4 * green[i, 0] + 4, 4 * green[i, 1]:4 * green[i, 1] + 4] += 1.0
    return x, label


vit = torchvision.models.VisionTransformer(image_size=16, patch_size=4, num_layers=2, num_heads=2, hidden_dim=32,
                                           mlp_dim=64, num_classes=2)
gen = torch.Generator().manual_seed(0)
opt = torch.optim.Adam(vit.parameters(), lr=3e-3)
for _step in range(120):
    x, y = squares(64, gen)
    opt.zero_grad()
    F.cross_entropy(vit(x), y).backward()
    opt.step()
vit.eval()
x_test, y_test = squares(6, torch.Generator().manual_seed(1))
with torch.no_grad():
    print("accuracy on 6 test images:", (vit(x_test).argmax(1) == y_test).float().mean().item())

# %% [markdown]
# One call per rule set. `attnlrp` is the default for transformers; `cp_lrp` holds the attention weights
# constant. The rules table shows what every node of the rewritten attention got.

# %%
attn = neon.explain(vit, x_test, rules="attnlrp")
cp = neon.explain(vit, x_test, rules="cp_lrp")
rows = neon.Explainer(vit, rules="cp_lrp").fit()
for row in rows.network_.rules_table(rows.rules_)[4:16]:
    print(f"{row['kind']:<8} {row['operation'][:48]:<48} {row['rule']!r}")

# %%
fig, axes = plt.subplots(3, 6, figsize=(12, 6))
for i in range(6):
    axes[0, i].imshow(x_test[i].permute(1, 2, 0).clamp(0, 1).numpy())
    axes[0, i].set_title(f"label {int(y_test[i])}")
    axes[0, i].axis("off")
neon.plot.heatmap(attn, ax=axes[1], titles=False, colorbar=False)
neon.plot.heatmap(cp, ax=axes[2], titles=False, colorbar=False)
axes[1, 0].set_ylabel("AttnLRP")
axes[2, 0].set_ylabel("CP-LRP")
plt.tight_layout()

# %% [markdown]
# With LRP-ε on the patch embedding (a convolution), pixel maps of a ViT are sharp but signed at the pixel level:
# the relevance of a patch is spread over its pixels with both signs. LXT's recipe for ViTs puts the γ-rule on
# the linear layers for smoother maps; in neon that is one more entry in the composite, e.g.
# `Composite(by_type=[("linear", Gamma(0.25)), ...])` (see the rules page).
#
# What the explanation does not pass to the pixels is reported, never hidden: the class token and the position
# embeddings are constants of the network, and with AttnLRP the softmax absorbs its Taylor remainder.

# %%
print("explained logit:", attn.output.numpy().round(2))
print("absorbed, AttnLRP:", attn.absorbed.numpy().round(2))
print("absorbed, CP-LRP: ", cp.absorbed.numpy().round(2))

# %% [markdown]
# ## A BERT: which token decides?
#
# Sequences of 16 token ids; exactly one position holds the signal token `A` (label 0) or `B` (label 1), the
# others are distractors. A small `BertForSequenceClassification` (from a config, random start) learns it. neon
# traces the Hugging Face model with `torch.export` and explains it per token: the relevance of each token's
# embedding, summed over the hidden dimension.

# %%
VOCAB, LENGTH = 40, 16
names = ["[PAD]", "A", "B", "[CLS]"] + [f"w{i}" for i in range(4, VOCAB)]


def sentences(n, generator):
    ids = torch.randint(4, VOCAB, (n, LENGTH), generator=generator)
    label = torch.randint(0, 2, (n,), generator=generator)
    where = torch.randint(1, LENGTH, (n,), generator=generator)
    ids[torch.arange(n), where] = 1 + label
    ids[:, 0] = 3
    return ids, label


config = transformers.BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                 intermediate_size=64, max_position_embeddings=LENGTH, num_labels=2,
                                 hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
bert = transformers.BertForSequenceClassification(config)
opt = torch.optim.Adam(bert.parameters(), lr=2e-3)
gen = torch.Generator().manual_seed(0)
for _step in range(250):
    ids, y = sentences(64, gen)
    opt.zero_grad()
    F.cross_entropy(bert(input_ids=ids).logits, y).backward()
    opt.step()
bert.eval()
ids, y = sentences(5, torch.Generator().manual_seed(2))
with torch.no_grad():
    print("predicted:", bert(input_ids=ids).logits.argmax(1).tolist(), "labels:", y.tolist())

# %%
expl = neon.explain(bert, ids).with_tokens([[names[t] for t in row] for row in ids])
neon.plot.text(expl)

# %% [markdown]
# Sequences predicted as `A` put their relevance on the `A` token. Those predicted as `B` spread it over the
# sequence: this model decides `B` largely by the absence of `A`, and the explanation says so. In a notebook the
# explanation itself renders as highlighted text (red: evidence for the predicted class, blue: against it):

# %%
expl  # noqa: B018 - the last expression of a cell is what a notebook shows
