"""Bad input and safety: clear errors for what neon cannot explain; the user's model is never changed.

The snapshot compares every parameter and buffer bit for bit, the identity of the parameter objects,
``requires_grad`` flags, training flags of every module and every registered hook, before and after
neon ran: successfully, or with an error raised midway.
"""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

import neon
from neon.composites import EpsilonGammaBox
from neon.rules import Epsilon

_HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
               "_forward_hooks_with_kwargs", "_forward_pre_hooks_with_kwargs", "_state_dict_hooks",
               "_load_state_dict_pre_hooks")


def snapshot(model: nn.Module) -> dict:
    return {
        "tensors": {k: v.detach().clone() for k, v in model.state_dict(keep_vars=True).items()},
        "objects": {k: id(v) for k, v in model.state_dict(keep_vars=True).items()},
        "dtypes": {k: v.dtype for k, v in model.state_dict(keep_vars=True).items()},
        "requires_grad": {k: p.requires_grad for k, p in model.named_parameters()},
        "training": {k: m.training for k, m in model.named_modules()},
        "hooks": {k: {a: dict(getattr(m, a, {}) or {}) for a in _HOOK_DICTS} for k, m in model.named_modules()},
        "inplace": {k: getattr(m, "inplace", None) for k, m in model.named_modules()},
        "modules": [(k, type(m)) for k, m in model.named_modules()],
    }


def assert_untouched(model: nn.Module, before: dict) -> None:
    after = snapshot(model)
    for key in ("objects", "dtypes", "requires_grad", "training", "hooks", "inplace", "modules"):
        assert after[key] == before[key], key
    for k, v in before["tensors"].items():
        w = after["tensors"][k]
        assert v.dtype == w.dtype and v.shape == w.shape, k
        # bit for bit, NaNs included
        assert torch.equal(v.reshape(-1).view(torch.uint8), w.reshape(-1).view(torch.uint8)), k


def small_resnet(train: bool) -> nn.Module:
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=5)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return model.train(train)


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_explaining_leaves_the_model_as_it_was(train):
    model = small_resnet(train)
    model.fc.weight.requires_grad_(False)  # mixed flags must come back mixed
    before = snapshot(model)
    x = torch.randn(2, 3, 32, 32)
    if train:  # batch norm in training mode is another function: refused, and nothing changed
        with pytest.raises(neon.UnsupportedModelError, match=r"training mode.*model\.eval\(\)"):
            neon.explain(model, x, rules=EpsilonGammaBox(low=-3, high=3))
        assert_untouched(model, before)
        return
    e = neon.explain(model, x, rules=EpsilonGammaBox(low=-3, high=3))
    neon.Explainer(model, rules="epsilon", output="log-odds").fit().explain(x, target=1)
    assert torch.isfinite(e.relevance).all()
    assert_untouched(model, before)  # neon ran the model once to check its network, and changed nothing
    with torch.no_grad():
        torch.testing.assert_close(e.output, model(x).max(1).values, rtol=1e-5, atol=1e-5)


class Sorter(nn.Module):
    def forward(self, x):
        return torch.sort(x, dim=1).values


class Wrapped(nn.Module):
    """conv + BatchNorm (neon folds it in its copy) before an arbitrary inner block."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.conv = nn.Conv1d(2, 4, 3, padding=1)
        self.bn = nn.BatchNorm1d(4)
        self.block = nn.Sequential(nn.ReLU(inplace=True), inner)
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        h = self.block(self.bn(self.conv(x)))
        return self.head(h.mean(-1))


class Untraceable(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 2)

    def forward(self, x):
        if x.sum() > 0:  # data-dependent control flow
            return self.lin(x)
        return -self.lin(x)


class WithLSTM(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.rnn = nn.LSTM(4, 4, batch_first=True)
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        return self.head(self.rnn(self.lin(x))[0][:, -1])


class WithAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential()
        # add_bias_kv appends learned key/value rows: no exact rewrite into projections and products
        self.encoder.add_module("att", nn.MultiheadAttention(4, 2, batch_first=True, add_bias_kv=True))
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        return self.head(self.encoder.att(x, x, x)[0][:, -1])


class Outer(nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = Untraceable()

    def forward(self, x):
        return self.inner(x)


CASES = {
    "torch.sort": (lambda: Wrapped(Sorter()), (2, 2, 5), neon.UnsupportedLayerError,
                   ["torch.sort", "block.1", "Supported"]),
    "nn.LSTM": (WithLSTM, (2, 3, 4), neon.UnsupportedLayerError, ["LSTM", "'rnn'", "Supported"]),
    "nn.MultiheadAttention(add_bias_kv=True)": (WithAttention, (2, 3, 4), neon.UnsupportedLayerError,
                                                ["MultiheadAttention", "encoder.att", "add_bias_kv"]),
    "log-softmax in the middle": (lambda: Wrapped(nn.LogSoftmax(dim=1)), (2, 2, 5), neon.UnsupportedLayerError,
                                  ["LogSoftmax", "block.1"]),
    "control flow": (Untraceable, (2, 4), neon.UnsupportedModelError, ["cannot trace", "control flow", "Supported"]),
    "control flow, nested": (Outer, (2, 4), neon.UnsupportedModelError, ["cannot trace", "'inner'", "x.sum() > 0"]),
}


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("case", list(CASES))
def test_unsupported_models_raise_a_clear_error_and_stay_untouched(case, train):
    make, shape, error, words = CASES[case]
    torch.manual_seed(0)
    model = make().train(train)
    if train and any(isinstance(m, nn.BatchNorm1d) for m in model.modules()):
        # in training mode, batch norm makes it another function before anything else is looked at
        error, words = neon.UnsupportedModelError, ["training mode", "model.eval()"]
    before = snapshot(model)
    with pytest.raises(error) as info:
        neon.explain(model, torch.randn(shape))
    message = str(info.value)
    for word in words:
        assert word in message, (word, message)
    assert_untouched(model, before)


def test_error_in_rule_assignment_after_neuralizing_leaves_the_model_untouched():
    model = small_resnet(train=False)
    before = snapshot(model)
    with pytest.raises(neon.RuleError, match="no layer named"):
        neon.explain(model, torch.randn(1, 3, 32, 32), rules={"features.0": Epsilon(0)})
    with pytest.raises(neon.UnsupportedModelError, match="log-odds"):
        neon.explain(nn.Sequential(nn.Linear(3, 2), nn.ReLU()), torch.randn(2, 3), output="log-odds")
    assert_untouched(model, before)


def test_no_silent_gradient_fallback_for_an_unknown_elementwise_quotient():
    class Gate(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 2)

        def forward(self, x):
            return self.b(self.a(x) / torch.sigmoid(x))  # a quotient of two tensors: no LRP rule

    with pytest.raises(neon.UnsupportedLayerError, match="truediv"):
        neon.explain(Gate(), torch.randn(2, 4))


def test_network_shares_weights_and_the_explainer_follows_a_model_changed_after_fit():
    model = small_resnet(train=False)
    x = torch.randn(1, 3, 32, 32)
    explainer = neon.Explainer(model, rules="epsilon").fit()
    conv = explainer.network_.graph_module.get_submodule("layer1.0.conv2")
    assert conv.weight.data_ptr() != model.layer1[0].conv2.weight.data_ptr()  # folded with its BatchNorm: new
    head = explainer.network_.graph_module.get_submodule("fc")
    assert head.weight.data_ptr() == model.fc.weight.data_ptr()  # unchanged layers: no second copy
    assert head.weight is not model.fc.weight and not head.weight.requires_grad
    explainer.explain(x)
    old = explainer.network_
    with torch.no_grad():
        model.fc.weight.mul_(2)  # e.g. an optimizer step
    with pytest.raises(neon.UnsupportedModelError, match="changed in place"):
        old.propagate(x, None, explainer.rules_)  # the old network refuses to mix old and new weights
    # the explainer sees the new model version, traces it again and checks it: it explains the current model
    got = explainer.explain(x)
    assert explainer.network_ is not old
    want = neon.Explainer(model, rules="epsilon").fit().explain(x)
    torch.testing.assert_close(got.relevance, want.relevance)
    with torch.no_grad():
        torch.testing.assert_close(got.output, model(x).max(1).values)
