"""Transformers through neon's one backend: torchvision ViT, nn.MultiheadAttention, scaled dot-product attention,
nn.TransformerEncoder, Hugging Face BERT and GPT-2 (random weights from small configs; nothing is downloaded).

The relevance references are written the way LXT implements AttnLRP and CP-LRP (Achtibat et al., ICML 2024):
gradient x input of the model's forward with the gradient modified in place of each rule (the identity rule on
element-wise non-linearities, LayerNorm with its standard deviation detached, the uniform rule as a halved
gradient after every product of activations, CP-LRP's attention weights detached), re-implemented here
from the model's parameters. With every stabiliser at zero (``attnlrp(0)``, ``cp_lrp(0)``) neon's rules are
exactly these (docs/theory.md §7), so the two agree to float64 rounding.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

import neon
from neon.composites import attnlrp, cp_lrp

transformers = pytest.importorskip("transformers")


# ------------------------------------------------------------------ LXT-style gradient references
class _Identity(torch.autograd.Function):
    """The identity rule as a gradient: ``grad_in = f(x) / x * grad_out`` (relevance passes unchanged)."""

    @staticmethod
    def forward(ctx, x, fn):
        out = fn(x)
        ctx.save_for_backward(out / x)
        return out

    @staticmethod
    def backward(ctx, g):
        (ratio,) = ctx.saved_tensors
        return ratio * g, None


class _Divide(torch.autograd.Function):
    """The uniform rule of a product of two activations: its gradient halved."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, g):
        return g / 2


def _layer_norm(x, norm):
    mean = x.mean(-1, keepdim=True)
    std = ((x - mean).pow(2).mean(-1, keepdim=True) + norm.eps).sqrt().detach()
    return (x - mean) / std * norm.weight + norm.bias


def _attention(x, w_in, b_in, w_out, b_out, heads, cp):
    n, L, E = x.shape
    d = E // heads
    q, k, v = F.linear(x, w_in, b_in).split(E, dim=-1)
    q, k, v = (t.unflatten(-1, (heads, d)).transpose(1, 2) for t in (q, k, v))
    if cp:
        a = torch.softmax(q.detach() @ k.detach().transpose(-2, -1) / math.sqrt(d), -1)
        out = a @ v
    else:
        a = torch.softmax(_Divide.apply(q @ k.transpose(-2, -1)) / math.sqrt(d), -1)
        out = _Divide.apply(a @ v)
    return F.linear(out.transpose(1, 2).flatten(2), w_out, b_out)


def vit_reference(model, x, target, cp):
    """Gradient x input of torchvision's VisionTransformer with LXT's modified gradients."""
    x = x.clone().requires_grad_(True)
    p = model.patch_size
    h = model.conv_proj(x).flatten(2).transpose(1, 2)
    h = torch.cat([model.class_token.expand(len(x), -1, -1), h], dim=1) + model.encoder.pos_embedding
    for block in model.encoder.layers:
        att = block.self_attention
        y = _attention(_layer_norm(h, block.ln_1), att.in_proj_weight, att.in_proj_bias, att.out_proj.weight,
                       att.out_proj.bias, att.num_heads, cp)
        h = h + y
        z = block.mlp[0](_layer_norm(h, block.ln_2))
        h = h + block.mlp[3](_Identity.apply(z, F.gelu))
    out = model.heads(_layer_norm(h, model.encoder.ln)[:, 0])
    out.gather(1, target[:, None]).sum().backward()
    assert p > 0
    return (x * x.grad).detach(), out.detach()


def small_vit(seed=0, image=16, patch=4, layers=2):
    torch.manual_seed(seed)
    model = torchvision.models.VisionTransformer(image_size=image, patch_size=patch, num_layers=layers, num_heads=2,
                                                 hidden_dim=16, mlp_dim=32, num_classes=3)
    with torch.no_grad():  # torchvision starts the head at zero; LayerNorms at the identity
        nn.init.normal_(model.heads.head.weight)
        model.heads.head.bias.normal_()
        for m in model.modules():
            if isinstance(m, nn.LayerNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
    return model.double().eval()


@pytest.mark.parametrize("cp", [False, True], ids=["attnlrp", "cp_lrp"])
def test_vit_relevance_equals_lxt_style_gradient_x_input(cp):
    model = small_vit()
    x = torch.randn(3, 3, 16, 16, dtype=torch.float64)
    target = torch.tensor([0, 2, 1])
    want, logits = vit_reference(model, x, target, cp)
    e = neon.explain(model, x, target=target, rules=cp_lrp(0.0) if cp else attnlrp(0.0))
    torch.testing.assert_close(e.output, logits.gather(1, target[:, None]).squeeze(1))
    err = (e.relevance - want).flatten(1).norm(dim=1) / want.flatten(1).norm(dim=1)
    assert (err < 1e-8).all(), err


def test_vit_forward_is_the_model_and_the_user_model_is_untouched():
    model = small_vit()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    ln_forward, gelu_forward, mha_forward = nn.LayerNorm.forward, nn.GELU.forward, nn.MultiheadAttention.forward
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    net = neon.neuralize(model)
    with torch.no_grad():
        torch.testing.assert_close(net(x), model(x), rtol=1e-12, atol=1e-12)
    neon.explain(model, x)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    assert isinstance(model.encoder.layers[0].self_attention, nn.MultiheadAttention)
    assert (nn.LayerNorm.forward, nn.GELU.forward, nn.MultiheadAttention.forward) == (ln_forward, gelu_forward,
                                                                                     mha_forward)
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_layer_norm_and_gelu_elsewhere_keep_their_gradients_after_an_explanation():
    """LXT replaces nn.LayerNorm.forward and nn.GELU.forward for the whole process; neon's rules live in its graph."""
    torch.manual_seed(3)
    other = nn.Sequential(nn.Linear(5, 6), nn.LayerNorm(6), nn.GELU(), nn.Linear(6, 1)).double()
    x = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)

    def grads():
        other.zero_grad()
        if x.grad is not None:
            x.grad = None
        other(x).sum().backward()
        return x.grad.clone(), other[1].weight.grad.clone()

    before = grads()
    neon.explain(small_vit(), torch.randn(2, 3, 16, 16, dtype=torch.float64), rules="cp_lrp")
    after = grads()
    torch.testing.assert_close(before[0], after[0], rtol=0, atol=0)
    torch.testing.assert_close(before[1], after[1], rtol=0, atol=0)


def test_cp_lrp_conserves_relevance_block_by_block():
    """With every bias and shift zero and no stabiliser, CP-LRP passes all relevance through each encoder block
    (attention weights are constants, LayerNorm's centering is conservative): the conservation report per block."""
    model = small_vit(layers=2)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or "pos_embedding" in name or "class_token" in name:
                p.zero_()
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    e = neon.Explainer(model, rules=cp_lrp(0.0)).explain(x, target=1, record=True)
    net = neon.neuralize(model)
    block_outputs = [s.name for s in net.steps if s.kind.value == "sum" and "encoder_layer" in s.label]
    totals = [e.layers[name].flatten(1).sum(1) for name in block_outputs]
    for total in totals:
        torch.testing.assert_close(total, e.output)
    torch.testing.assert_close(e.relevance.flatten(1).sum(1), e.output)
    a = neon.Explainer(model, rules=attnlrp(0.0)).explain(x, target=1, record=True)
    # AttnLRP's softmax rule is not conservative: what the softmax absorbs is reported, not hidden
    torch.testing.assert_close(a.relevance.flatten(1).sum(1) + a.absorbed, a.output)
    assert (a.absorbed.abs() > 1e-6 * a.output.abs()).all()


def test_a_sample_alone_or_in_a_batch_gets_the_same_relevance():
    model = small_vit()
    x = torch.randn(5, 3, 16, 16, dtype=torch.float64)
    explainer = neon.Explainer(model, rules="attnlrp").fit()
    batch = explainer.explain(x, target=1).relevance
    alone = explainer.explain(x[3:4], target=1).relevance
    torch.testing.assert_close(alone[0], batch[3], rtol=1e-10, atol=1e-14)


def _patch_task(n, generator):
    """16 x 16 images with a red and a green 4 x 4 patch at random places; the label is the half (top or bottom)
    the red patch lies in. The green patch is a distractor of the same brightness."""
    x = 0.05 * torch.randn(n, 3, 16, 16, generator=generator)
    label = torch.randint(0, 2, (n,), generator=generator)
    red = torch.stack([torch.randint(0, 2, (n,), generator=generator) + 2 * label,
                       torch.randint(0, 4, (n,), generator=generator)], 1)
    green = torch.randint(0, 4, (n, 2), generator=generator)
    same = (green == red).all(1)
    green[same, 1] = (green[same, 1] + 1) % 4
    for i in range(n):
        x[i, 0, 4 * red[i, 0]: 4 * red[i, 0] + 4, 4 * red[i, 1]: 4 * red[i, 1] + 4] += 1.0
        x[i, 1, 4 * green[i, 0]: 4 * green[i, 0] + 4, 4 * green[i, 1]: 4 * green[i, 1] + 4] += 1.0
    return x, label, red, green


@pytest.fixture(scope="module")
def trained_vit():
    torch.manual_seed(0)
    model = torchvision.models.VisionTransformer(image_size=16, patch_size=4, num_layers=2, num_heads=2,
                                                 hidden_dim=16, mlp_dim=32, num_classes=2)
    gen = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(150):
        x, y, _, _ = _patch_task(64, gen)
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()


def test_a_trained_vit_is_explained_exactly_and_its_absorbed_relevance_reported(trained_vit):
    x, y, _, _ = _patch_task(16, torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits = trained_vit(x)
    assert (logits.argmax(1) == y).float().mean() > 0.85
    net = neon.neuralize(trained_vit)
    with torch.no_grad():
        torch.testing.assert_close(net(x), logits, rtol=1e-5, atol=1e-5)
    results = {}
    for rules in ("attnlrp", "cp_lrp"):
        e = neon.explain(trained_vit, x, target=y, rules=rules)
        assert torch.isfinite(e.relevance).all()
        torch.testing.assert_close(e.output, logits.gather(1, y[:, None]).squeeze(1))
        torch.testing.assert_close(e.relevance.flatten(1).sum(1) + e.absorbed, e.output, rtol=1e-4, atol=1e-4)
        results[rules] = e.relevance
    assert not torch.allclose(results["attnlrp"], results["cp_lrp"])


@pytest.mark.slow
def test_vit_b_16_forward_and_relevance():
    torch.manual_seed(0)
    model = torchvision.models.vit_b_16(weights=None, num_classes=10).eval()
    with torch.no_grad():
        nn.init.normal_(model.heads.head.weight, std=0.02)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        want = model(x)
    e = neon.explain(model, x, rules="cp_lrp")
    torch.testing.assert_close(e.output, want.max(1).values, rtol=1e-5, atol=1e-5)
    assert e.relevance.shape == x.shape and torch.isfinite(e.relevance).all()
    rows = neon.neuralize(model).rules_table(neon.Explainer(model, rules="cp_lrp").fit().rules_)
    assert sum(r["kind"] == "softmax" for r in rows) == 12 and sum(r["kind"] == "product" for r in rows) == 24


def test_swin_t_is_refused_naming_the_operation():
    model = torchvision.models.swin_t(weights=None, num_classes=3).eval()
    with pytest.raises(neon.UnsupportedLayerError, match="shifted_window_attention"):
        neon.neuralize(model)


# ------------------------------------------------------------------ attention modules and functions
class ManualAttention(nn.Module):
    """What nn.MultiheadAttention computes, written out (the same weights), for comparing relevance."""

    def __init__(self, mha: nn.MultiheadAttention):
        super().__init__()
        e = mha.embed_dim
        w, b = mha.in_proj_weight.detach(), mha.in_proj_bias.detach()
        self.q, self.k, self.v = (nn.Linear(e, e) for _ in range(3))
        with torch.no_grad():
            for i, lin in enumerate((self.q, self.k, self.v)):
                lin.weight.copy_(w[i * e:(i + 1) * e])
                lin.bias.copy_(b[i * e:(i + 1) * e])
        self.out, self.heads = mha.out_proj, mha.num_heads

    def forward(self, x, mask=None):
        h = self.heads
        q, k, v = (lin(x).unflatten(-1, (h, -1)).transpose(1, 2) for lin in (self.q, self.k, self.v))
        scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.shape[-1]))
        if mask is not None:
            scores = scores + mask
        return self.out((torch.softmax(scores, dim=-1) @ v).transpose(1, 2).flatten(2))


class AttentionModel(nn.Module):
    def __init__(self, attention, batch_first=True, mask=None, padding=None):
        super().__init__()
        self.inp, self.attention, self.head = nn.Linear(4, 8), attention, nn.Linear(8, 3)
        self.batch_first = batch_first
        self.register_buffer("mask", mask)
        self.register_buffer("padding", padding)

    def forward(self, x):
        h = self.inp(x)
        if isinstance(self.attention, nn.MultiheadAttention):
            if not self.batch_first:
                h = h.transpose(0, 1)
            h = self.attention(h, h, h, need_weights=False, attn_mask=self.mask, key_padding_mask=self.padding)[0]
            if not self.batch_first:
                h = h.transpose(0, 1)
        else:
            h = self.attention(h, self.mask)
        return self.head(h.mean(1))


@pytest.mark.parametrize("case", ["batch_first", "sequence_first", "float mask", "bool mask", "padding mask"])
def test_multihead_attention_is_rewritten_exactly(case):
    torch.manual_seed(1)
    batch_first = case != "sequence_first"
    mha = nn.MultiheadAttention(8, 2, batch_first=batch_first).double()
    L = 5
    mask = padding = None
    if case == "float mask":
        mask = torch.randn(L, L, dtype=torch.float64)
    elif case == "bool mask":  # True: not allowed to attend (nn.MultiheadAttention's convention)
        mask = torch.ones(L, L, dtype=torch.bool).triu(1)
    elif case == "padding mask":
        padding = torch.zeros(3, L, dtype=torch.bool)
        padding[:, -1] = True
    model = AttentionModel(mha, batch_first, mask, padding).double().eval()
    x = torch.randn(3, L, 4, dtype=torch.float64)
    net = neon.neuralize(model)
    with torch.no_grad():
        torch.testing.assert_close(net(x), model(x), rtol=1e-10, atol=1e-12)
    e = neon.explain(model, x, target=0, rules=attnlrp(0.0))
    assert torch.isfinite(e.relevance).all()
    if case in ("batch_first", "float mask"):
        manual = AttentionModel(ManualAttention(mha), True, mask).double().eval()
        manual.inp, manual.head = model.inp, model.head
        m = neon.explain(manual, x, target=0, rules=attnlrp(0.0))
        torch.testing.assert_close(e.relevance, m.relevance)


class SDPAModel(nn.Module):
    def __init__(self, causal=False, mask=None, scale=None):
        super().__init__()
        self.qkv, self.head = nn.Linear(4, 3 * 8), nn.Linear(8, 2)
        self.causal, self.scale = causal, scale
        self.register_buffer("mask", mask)

    def forward(self, x):
        h = self.qkv(x)
        q, k, v = (h[..., i * 8:(i + 1) * 8].unflatten(-1, (2, 4)).transpose(1, 2) for i in range(3))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=self.mask, is_causal=self.causal, scale=self.scale)
        return self.head(out.transpose(1, 2).flatten(2)[:, -1])


@pytest.mark.parametrize("case", ["plain", "causal", "bool mask", "scale"])
def test_scaled_dot_product_attention_is_decomposed_exactly(case):
    torch.manual_seed(2)
    L = 6
    mask = torch.rand(L, L) > 0.3 if case == "bool mask" else None
    if mask is not None:
        mask[:, 0] = True  # every query attends somewhere
    model = SDPAModel(case == "causal", mask, 0.7 if case == "scale" else None).double().eval()
    x = torch.randn(4, L, 4, dtype=torch.float64)
    net = neon.neuralize(model)
    with torch.no_grad():
        torch.testing.assert_close(net(x), model(x), rtol=1e-10, atol=1e-12)
    e = neon.explain(model, x, rules="attnlrp")
    assert torch.isfinite(e.relevance).all()
    torch.testing.assert_close(e.relevance.flatten(1).sum(1) + e.absorbed, e.output)


@pytest.mark.parametrize("norm_first", [False, True])
def test_transformer_encoder_is_rewritten_exactly(norm_first):
    torch.manual_seed(4)
    layer = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.1, batch_first=True, norm_first=norm_first,
                                       activation="gelu")
    model = nn.Sequential(nn.Linear(4, 8), nn.TransformerEncoder(layer, 2, enable_nested_tensor=False),
                          nn.Flatten(), nn.Linear(8 * 5, 3)).double().eval()
    x = torch.randn(3, 5, 4, dtype=torch.float64)
    net = neon.neuralize(model)
    with torch.no_grad():
        torch.testing.assert_close(net(x), model(x), rtol=1e-10, atol=1e-12)
    e = neon.explain(model, x, rules="cp_lrp")
    assert torch.isfinite(e.relevance).all() and e.relevance.abs().sum() > 0


def test_attention_near_misses_are_refused():
    class UsesWeights(nn.Module):
        def __init__(self):
            super().__init__()
            self.att = nn.MultiheadAttention(4, 2, batch_first=True)

        def forward(self, x):
            out, weights = self.att(x, x, x)
            return out.mean(1) + weights.mean((1, 2))[:, None]

    with pytest.raises(neon.UnsupportedLayerError, match="attention weights"):
        neon.neuralize(UsesWeights().eval())

    class Dropping(nn.Module):
        def forward(self, x):
            return F.scaled_dot_product_attention(x, x, x, dropout_p=0.1).mean(1)

    with pytest.raises(neon.UnsupportedLayerError, match="dropout_p"):
        neon.neuralize(Dropping())


# ------------------------------------------------------------------ Hugging Face
def tiny_bert(seed=0, layers=2):
    torch.manual_seed(seed)
    cfg = transformers.BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=layers, num_attention_heads=2,
                                  intermediate_size=32, max_position_embeddings=24, num_labels=3)
    model = transformers.BertForSequenceClassification(cfg).double().eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.LayerNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
    return model


def tiny_gpt2(seed=0):
    torch.manual_seed(seed)
    cfg = transformers.GPT2Config(vocab_size=40, n_embd=16, n_layer=2, n_head=2, n_positions=24,
                                  bos_token_id=0, eos_token_id=0)
    return transformers.GPT2LMHeadModel(cfg).double().eval()


def bert_reference(model, ids, target):
    """AttnLRP of BERT as gradient x input at the word embeddings (LXT's bert map), summed over the hidden axis."""
    bert = model.bert
    emb = bert.embeddings
    words = emb.word_embeddings(ids).detach().requires_grad_(True)
    L = ids.shape[1]
    h = words + emb.token_type_embeddings.weight[0] + emb.position_embeddings.weight[:L]
    h = _layer_norm(h, emb.LayerNorm)
    for layer in bert.encoder.layer:
        s = layer.attention.self
        w_in = torch.cat([s.query.weight, s.key.weight, s.value.weight])
        b_in = torch.cat([s.query.bias, s.key.bias, s.value.bias])
        out = layer.attention.output
        h = _layer_norm(h + _attention(h, w_in, b_in, out.dense.weight, out.dense.bias,
                                       model.config.num_attention_heads, cp=False), out.LayerNorm)
        z = layer.intermediate.dense(h)
        h = _layer_norm(h + layer.output.dense(_Identity.apply(z, F.gelu)), layer.output.LayerNorm)
    pooled = _Identity.apply(bert.pooler.dense(h[:, 0]), torch.tanh)
    logits = model.classifier(pooled)
    logits.gather(1, target[:, None]).sum().backward()
    return (words * words.grad).sum(-1).detach(), logits.detach()


def test_bert_tokens_relevance_equals_lxt_style_attnlrp():
    model = tiny_bert()
    ids = torch.randint(1, 40, (3, 9))
    target = torch.tensor([2, 0, 1])
    want, logits = bert_reference(model, ids, target)
    e = neon.explain(model, ids, target=target, rules=attnlrp(0.0))
    with torch.no_grad():
        torch.testing.assert_close(logits, model(input_ids=ids).logits)
    torch.testing.assert_close(e.output, logits.gather(1, target[:, None]).squeeze(1))
    assert e.relevance.shape == ids.shape
    err = (e.relevance - want).norm(dim=1) / want.norm(dim=1)
    assert (err < 1e-8).all(), err


def test_bert_network_forward_batch_independence_and_untouched_model():
    model = tiny_bert(seed=1)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    ids = torch.randint(1, 40, (5, 11))
    net = neon.neuralize(model)
    with torch.no_grad():
        torch.testing.assert_close(net(ids.double()), model(input_ids=ids).logits, rtol=1e-12, atol=1e-12)
        longer = torch.randint(1, 40, (2, 17))  # other lengths: the trace is symbolic in batch and length
        torch.testing.assert_close(net(longer.double()), model(input_ids=longer).logits, rtol=1e-12, atol=1e-12)
    explainer = neon.Explainer(model).fit()
    assert explainer.composite_.name.startswith("attnlrp")
    batch = explainer.explain(ids, target=1)
    alone = explainer.explain(ids[2:3], target=1)
    torch.testing.assert_close(alone.relevance[0], batch.relevance[2], rtol=1e-10, atol=1e-14)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    assert type(model.bert.encoder.layer[0].intermediate.intermediate_act_fn).__module__.startswith("transformers")


def test_gpt2_explains_the_next_token_and_cp_lrp_differs_from_attnlrp():
    model = tiny_gpt2()
    ids = torch.randint(1, 40, (3, 8))
    with torch.no_grad():
        nxt = model(input_ids=ids).logits[:, -1]
    e = neon.explain(model, ids)
    torch.testing.assert_close(e.output, nxt.max(1).values)
    torch.testing.assert_close(e.target, nxt.argmax(1))
    assert e.relevance.shape == ids.shape and torch.isfinite(e.relevance).all()
    c = neon.explain(model, ids, rules="cp_lrp")
    torch.testing.assert_close(c.output, e.output)
    assert not torch.allclose(c.relevance, e.relevance)
    torch.testing.assert_close(c.relevance.sum(1) + c.absorbed, c.output)


def test_hugging_face_near_misses_are_refused():
    model = tiny_bert(seed=2)
    with pytest.raises(neon.UnsupportedModelError, match="training mode"):
        neon.neuralize(model.train())
    model.eval()
    handle = model.bert.pooler.register_forward_hook(lambda m, i, o: o * 2)
    with pytest.raises(neon.UnsupportedModelError, match="hooks"):
        neon.neuralize(model)
    handle.remove()
    with pytest.raises(neon.OutputError):
        neon.neuralize(model, output="log-odds")


def test_token_explanations_carry_tokens_and_draw_as_highlighted_text():
    import matplotlib

    matplotlib.use("Agg")
    model = tiny_bert(seed=3)
    ids = torch.randint(1, 40, (2, 5))
    e = neon.explain(model, ids)
    words = [[f"w{int(t)}" for t in row] for row in ids]
    t = e.with_tokens(words)
    assert t.tokens == words and t[1].tokens == [words[1]] and e.tokens is None
    page = t._repr_html_()
    assert page.count("<span") == 10 and f"w{int(ids[0, 0])}" in page
    top = int(e.relevance[0].argmax())
    assert f'title="{float(e.relevance[0, top]):.4g}"' in page
    ax = t.plot()
    assert [x.get_text() for x in ax.texts] == words[0] + words[1]
    with pytest.raises(ValueError, match="one string per position"):
        e.with_tokens([["a", "b"]])
