"""Every supported PyTorch operation alone, in a small hand-written net, against a dense reference.

The reference is written straight from docs/theory.md §2: each affine map (a layer, or a layer
with its BatchNorm, taken as one function) is turned into its dense ``(out, in)`` matrix by
autograd, the contributions ``z_jk = a_j rho(w_jk)`` are formed explicitly and divided by their
stabilised sum. It shares no code with neon's engine, graph or rules.
"""

from __future__ import annotations

import math
import operator

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import neon
from neon.composites import Composite
from neon.layers import ChannelAffine
from neon.propagate.kinds import NodeKind
from neon.rules import Epsilon, Gamma

DT = torch.float64
EPS = 0.3  # a large epsilon: the reference must get every denominator right, not just the signs
RULE = Epsilon(EPS)


@pytest.fixture(autouse=True)
def _float64():
    """Every net and input of this module in float64 (restored afterwards for the other test modules)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


# ---------------------------------------------------------------------------- dense reference
def stab(z: torch.Tensor, eps: float) -> torch.Tensor:
    return z + eps * torch.where(z >= 0, 1.0, -1.0).to(z)


def affine_matrix(f, shape) -> tuple[torch.Tensor, torch.Tensor]:
    """The affine map ``f`` on one sample of ``shape`` as a dense matrix ``(out, in)`` and a bias."""
    zero = torch.zeros(math.prod(shape), dtype=DT)

    def g(v):
        return f(v.view((1,) + tuple(shape))).flatten()

    with torch.no_grad():
        b = g(zero)
    return torch.autograd.functional.jacobian(g, zero), b


def lrp_eps(M, b, a, R, eps):
    Z = a[None, :] * M
    return (Z * (R / stab(Z.sum(1) + b, eps))[:, None]).sum(0)


def lrp_gamma(M, b, a, R, g, eps=1e-6):
    ap, an = a.clamp(min=0), a.clamp(max=0)
    Mp, Mn = M.clamp(min=0), M.clamp(max=0)
    z = M @ a + b
    up = ap[None] * (M + g * Mp) + an[None] * (M + g * Mn)
    dn = ap[None] * (M + g * Mn) + an[None] * (M + g * Mp)
    r_up = torch.where(z > 0, R, 0.0) / stab(up.sum(1) + b + g * b.clamp(min=0), eps)
    r_dn = torch.where(z < 0, R, 0.0) / stab(dn.sum(1) + b + g * b.clamp(max=0), eps)
    return (up * r_up[:, None]).sum(0) + (dn * r_dn[:, None]).sum(0)


def back(kind, fn, param, a_in, R):
    """Relevance of one step's input ``a_in`` (one sample, batch axis 1) from that of its output."""
    shape = a_in.shape[1:]
    a = a_in.flatten()
    if kind == "pass":
        return R
    if kind in ("move", "wta"):  # a fixed selection of the input values: the Jacobian at a_in
        J = torch.autograd.functional.jacobian(lambda v: fn(v.view((1,) + tuple(shape))).flatten(), a)
        return J.T @ R
    M, b = affine_matrix(fn, shape)
    if kind == "eps":
        return lrp_eps(M, b, a, R, param)
    if kind == "prop":
        return lrp_eps(M, b, a, R, 1e-6)
    if kind == "gamma":
        return lrp_gamma(M, b, a, R, param)
    raise ValueError(kind)


def chain_reference(steps, x, target):
    """LRP of a chain ``[(kind, fn, param), ...]`` for every sample, started from the target's value."""
    out = []
    for i in range(len(x)):
        acts = [x[i : i + 1]]
        with torch.no_grad():
            for _, fn, _ in steps:
                acts.append(fn(acts[-1]))
        y = acts[-1].flatten()
        R = torch.zeros_like(y)
        R[target[i]] = y[target[i]]
        for (kind, fn, param), a_in in zip(reversed(steps), reversed(acts[:-1])):
            R = back(kind, fn, param, a_in, R)
        out.append(R.view(x.shape[1:]))
    return torch.stack(out)


def check_forward(model, x):
    net = neon.neuralize(model)
    with torch.no_grad():
        torch.testing.assert_close(net(x), model.eval()(x), rtol=1e-12, atol=1e-12)
    return net


def explain(model, x, rules=RULE):
    e = neon.explain(model, x, rules=rules)
    return e.relevance, e.target


def assert_same(rel, ref):
    torch.testing.assert_close(rel, ref, rtol=1e-9, atol=1e-12)
    assert ref.abs().sum() > 0


class Fn(nn.Module):
    """Calls a plain function in ``forward`` so that the traced graph holds a function node."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


def seed(k=0):
    torch.manual_seed(k)


# ---------------------------------------------------------------------------- affine layers
def test_linear_relu():
    seed()
    l1, l2 = nn.Linear(6, 8), nn.Linear(8, 3)
    model = nn.Sequential(l1, nn.ReLU(), l2)
    x = torch.randn(4, 6)
    check_forward(model, x)
    rel, t = explain(model, x)
    ref = chain_reference([("eps", l1, EPS), ("pass", torch.relu, None), ("eps", l2, EPS)], x, t)
    assert_same(rel, ref)


def test_conv1d():
    seed(1)
    c = nn.Conv1d(2, 4, 3, stride=2, padding=1, dilation=1)
    lin = nn.Linear(4 * 5, 3)
    model = nn.Sequential(c, nn.ReLU(), nn.Flatten(), lin)
    x = torch.randn(3, 2, 10)
    check_forward(model, x)
    rel, t = explain(model, x)
    ref = chain_reference([("eps", c, EPS), ("pass", torch.relu, None), ("move", nn.Flatten(), None),
                           ("eps", lin, EPS)], x, t)
    assert_same(rel, ref)


def test_conv2d_gamma_with_stride_dilation_groups():
    seed(2)
    c1 = nn.Conv2d(2, 4, 3, stride=2, padding=1)
    c2 = nn.Conv2d(4, 4, 3, padding=2, dilation=2, groups=2)
    lin = nn.Linear(4 * 4 * 4, 3)
    model = nn.Sequential(c1, nn.ReLU(), c2, nn.ReLU(), nn.Flatten(), lin)
    x = torch.randn(2, 2, 8, 8)
    check_forward(model, x)
    rules = Composite(by_type=[("conv", Gamma(0.25)), ("dense", Epsilon(0.1))])
    rel, t = explain(model, x, rules)
    ref = chain_reference([("gamma", c1, 0.25), ("pass", torch.relu, None), ("gamma", c2, 0.25),
                           ("pass", torch.relu, None), ("move", nn.Flatten(), None), ("eps", lin, 0.1)], x, t)
    assert_same(rel, ref)


# ---------------------------------------------------------------------------- BatchNorm
def random_bn(bn: nn.modules.batchnorm._BatchNorm) -> nn.modules.batchnorm._BatchNorm:
    n = bn.num_features
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(n))
        bn.running_var.copy_(torch.rand(n) + 0.5)
        bn.weight.copy_(torch.randn(n))
        bn.bias.copy_(torch.randn(n))
    return bn.eval()


def modules_of(net):
    return [type(m) for m in net.modules()]


def test_batchnorm2d_folded_into_previous_conv():
    seed(3)
    c, bn = nn.Conv2d(2, 4, 3, padding=1), random_bn(nn.BatchNorm2d(4))
    lin = nn.Linear(4 * 5 * 5, 3)
    model = nn.Sequential(c, bn, nn.ReLU(), nn.Flatten(), lin)
    x = torch.randn(3, 2, 5, 5)
    net = check_forward(model, x)
    assert nn.BatchNorm2d not in modules_of(net) and ChannelAffine not in modules_of(net)
    rules = Composite(by_type=[("conv", Gamma(0.5)), ("dense", Epsilon(EPS))])
    rel, t = explain(model, x, rules)
    # Gamma applies to the merged layer bn(conv(.)): its weights are what rho modifies.
    ref = chain_reference([("gamma", lambda v: bn(c(v)), 0.5), ("pass", torch.relu, None),
                           ("move", nn.Flatten(), None), ("eps", lin, EPS)], x, t)
    assert_same(rel, ref)


def test_batchnorm1d_folded_into_previous_linear():
    seed(4)
    l1, bn, l2 = nn.Linear(5, 6), random_bn(nn.BatchNorm1d(6)), nn.Linear(6, 3)
    model = nn.Sequential(l1, bn, nn.ReLU(), l2)
    x = torch.randn(4, 5)
    net = check_forward(model, x)
    assert nn.BatchNorm1d not in modules_of(net) and ChannelAffine not in modules_of(net)
    rules = Composite(by_type=[(nn.Linear, Gamma(0.5))])
    rel, t = explain(model, x, rules)
    ref = chain_reference([("gamma", lambda v: bn(l1(v)), 0.5), ("pass", torch.relu, None), ("gamma", l2, 0.5)], x, t)
    assert_same(rel, ref)


@pytest.mark.parametrize("kind", ["linear", "conv"])
def test_batchnorm_folded_into_next_layer(kind):
    seed(5)
    if kind == "linear":
        bn, layer, x = random_bn(nn.BatchNorm1d(5)), nn.Linear(5, 4), torch.randn(3, 5)
        head = [nn.ReLU(), nn.Linear(4, 3)]
    else:  # only an unpadded convolution sees BN's shift everywhere: that one folds exactly
        bn, layer, x = random_bn(nn.BatchNorm2d(2)), nn.Conv2d(2, 3, 2), torch.randn(3, 2, 4, 4)
        head = [nn.ReLU(), nn.Flatten(), nn.Linear(27, 3)]
    model = nn.Sequential(bn, layer, *head)
    net = check_forward(model, x)
    assert ChannelAffine not in modules_of(net) and type(bn) not in modules_of(net)
    rel, t = explain(model, x)
    steps = [("eps", lambda v: layer(bn(v)), EPS), ("pass", torch.relu, None)]
    if kind == "conv":
        steps.append(("move", nn.Flatten(), None))
    ref = chain_reference(steps + [("eps", head[-1], EPS)], x, t)
    assert_same(rel, ref)


def test_batchnorm_without_foldable_neighbour_is_channel_affine():
    seed(23)
    c, bn, c2 = nn.Conv2d(2, 3, 3, padding=1), random_bn(nn.BatchNorm2d(3)), nn.Conv2d(3, 2, 3, padding=1)
    lin = nn.Linear(2 * 16, 3)
    # BN after a ReLU, followed by a padded convolution: neither side folds exactly.
    model = nn.Sequential(c, nn.ReLU(), bn, c2, nn.ReLU(), nn.Flatten(), lin)
    x = torch.randn(2, 2, 4, 4)
    net = check_forward(model, x)
    assert ChannelAffine in modules_of(net) and nn.BatchNorm2d not in modules_of(net)
    rel, t = explain(model, x)
    ref = chain_reference([("eps", c, EPS), ("pass", torch.relu, None), ("eps", bn, EPS), ("eps", c2, EPS),
                           ("pass", torch.relu, None), ("move", nn.Flatten(), None), ("eps", lin, EPS)], x, t)
    assert_same(rel, ref)


# ---------------------------------------------------------------------------- activations
ACTIVATIONS = {  # the module, and the out-of-place function it computes
    "ReLU": (lambda: nn.ReLU(), torch.relu),
    "ReLU(inplace)": (lambda: nn.ReLU(inplace=True), torch.relu),
    "F.relu": (lambda: Fn(F.relu), torch.relu),
    "F.relu(inplace)": (lambda: Fn(lambda v: F.relu(v, inplace=True)), torch.relu),
    "torch.relu": (lambda: Fn(torch.relu), torch.relu),
    ".relu_()": (lambda: Fn(lambda v: v.relu_()), torch.relu),
    "ReLU6": (lambda: nn.ReLU6(), F.relu6),
    "LeakyReLU": (lambda: nn.LeakyReLU(0.1), lambda v: F.leaky_relu(v, 0.1)),
    "Tanh": (lambda: nn.Tanh(), torch.tanh),
    "GELU": (lambda: nn.GELU(), F.gelu),
}


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_elementwise_activation_passes_relevance(name):
    seed(7)
    l1, l2 = nn.Linear(5, 6), nn.Linear(6, 3)
    make, fn = ACTIVATIONS[name]
    model = nn.Sequential(l1, make(), l2)
    x = torch.randn(4, 5) * 3  # large enough that ReLU6 saturates somewhere
    check_forward(model, x)
    rel, t = explain(model, x)
    # Pass rule: the activation hands its output relevance to its input unchanged.
    ref = chain_reference([("eps", l1, EPS), ("pass", fn, None), ("eps", l2, EPS)], x, t)
    assert_same(rel, ref)


# ---------------------------------------------------------------------------- pooling
POOLS = {
    "MaxPool2d": (lambda: nn.MaxPool2d(2), "wta", 2),
    "MaxPool2d(3, 2, 1)": (lambda: nn.MaxPool2d(3, 2, 1), "wta", 3),
    "AvgPool2d": (lambda: nn.AvgPool2d(2), "prop", 2),
    "AdaptiveAvgPool2d": (lambda: nn.AdaptiveAvgPool2d((2, 2)), "prop", 2),
    "F.max_pool2d": (lambda: Fn(lambda v: F.max_pool2d(v, 2)), "wta", 2),
    "F.adaptive_avg_pool2d": (lambda: Fn(lambda v: F.adaptive_avg_pool2d(v, 1)), "prop", 1),
}


@pytest.mark.parametrize("name", list(POOLS))
def test_pooling(name):
    seed(8)
    make, kind, side = POOLS[name]
    c = nn.Conv2d(2, 3, 3, padding=1)
    pool = make()
    lin = nn.Linear(3 * side * side, 3)
    model = nn.Sequential(c, nn.ReLU(), pool, nn.Flatten(), lin)
    x = torch.randn(3, 2, 5, 5) if side == 3 else torch.randn(3, 2, 4, 4)
    check_forward(model, x)
    rel, t = explain(model, x)
    ref = chain_reference([("eps", c, EPS), ("pass", torch.relu, None), (kind, pool, None),
                           ("move", nn.Flatten(), None), ("eps", lin, EPS)], x, t)
    assert_same(rel, ref)


# ---------------------------------------------------------------------------- moves
class ViewNet(nn.Module):
    def __init__(self, how):
        super().__init__()
        self.c = nn.Conv2d(2, 3, 3, padding=1)
        self.lin = nn.Linear(48, 3)
        self.how = how

    def forward(self, x):
        h = torch.relu(self.c(x))
        if self.how == "view":
            h = h.view(h.size(0), -1)
        elif self.how == "reshape":
            h = h.reshape(-1, 48)
        elif self.how == "torch.flatten":
            h = torch.flatten(h, 1)
        else:
            h = h.flatten(1)
        return self.lin(h)


@pytest.mark.parametrize("how", ["view", "reshape", "torch.flatten", ".flatten"])
def test_view_reshape_flatten(how):
    seed(9)
    model = ViewNet(how)
    x = torch.randn(2, 2, 4, 4)
    check_forward(model, x)
    rel, t = explain(model, x)
    ref = chain_reference([("eps", model.c, EPS), ("pass", torch.relu, None), ("move", nn.Flatten(), None),
                           ("eps", model.lin, EPS)], x, t)
    assert_same(rel, ref)


@pytest.mark.parametrize("make", [lambda: nn.Dropout(0.5), lambda: nn.Dropout(0.5, inplace=True), nn.Identity,
                                  lambda: nn.AlphaDropout(0.3)], ids=["Dropout", "Dropout(inplace)", "Identity",
                                                                     "AlphaDropout"])
def test_identity_like_modules(make):
    seed(10)
    l1, l2 = nn.Linear(5, 6), nn.Linear(6, 3)
    model = nn.Sequential(l1, nn.ReLU(), make(), l2).train()
    x = torch.randn(4, 5)
    if not isinstance(model[2], nn.Identity):
        # dropout in training mode is another function: refused, and the model's mode is left alone
        with pytest.raises(neon.UnsupportedModelError, match=r"model\.eval\(\)"):
            explain(model, x)
        assert model.training and model[2].training
        model.eval()
    check_forward(model, x)
    rel, t = explain(model, x)
    ref = chain_reference([("eps", l1, EPS), ("pass", torch.relu, None), ("eps", l2, EPS)], x, t)
    assert_same(rel, ref)


# ---------------------------------------------------------------------------- merges
class Residual(nn.Module):
    def __init__(self, how):
        super().__init__()
        self.l1, self.l2, self.head = nn.Linear(5, 5), nn.Linear(5, 5), nn.Linear(5, 3)
        self.how = how

    def forward(self, x):
        h = F.relu(self.l1(x))
        out = self.l2(h)
        if self.how == "+":
            out = out + h
        elif self.how == "torch.add":
            out = torch.add(out, h)
        elif self.how == ".add":
            out = out.add(h)
        else:
            out += h
        return self.head(F.relu(out))


def residual_reference(m, x, t):
    out = []
    for i in range(len(x)):
        a0 = x[i]
        with torch.no_grad():
            h = F.relu(m.l1(a0))
            y = m.l2(h)
            s = y + h
            r = F.relu(s)
            z = m.head(r)
        R = torch.zeros(3)
        R[t[i]] = z[t[i]]
        W, b = m.head.weight, m.head.bias
        R_r = lrp_eps(W, b, r, R, EPS)
        # the sum splits in proportion to its two summands (LRP-epsilon of a positive map, eps 1e-6)
        q = R_r / stab(s, 1e-6)
        R_y, R_h = y * q, h * q
        R_h = R_h + lrp_eps(m.l2.weight, m.l2.bias, h, R_y, EPS)
        out.append(lrp_eps(m.l1.weight, m.l1.bias, a0, R_h, EPS))
    return torch.stack(out)


@pytest.mark.parametrize("how", ["+", "torch.add", ".add", "+="])
def test_residual_add(how):
    seed(11)
    model = Residual(how)
    x = torch.randn(4, 5)
    check_forward(model, x)
    rel, t = explain(model, x)
    assert_same(rel, residual_reference(model, x, t))


class Dense(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.head = nn.Linear(4, 3), nn.Linear(4, 2), nn.Linear(5, 3)

    def forward(self, x):
        return self.head(torch.cat([F.relu(self.a(x)), F.relu(self.b(x))], dim=1))


def test_cat():
    seed(12)
    model = Dense()
    x = torch.randn(4, 4)
    check_forward(model, x)
    rel, t = explain(model, x)
    out = []
    for i in range(len(x)):
        with torch.no_grad():
            ha, hb = F.relu(model.a(x[i])), F.relu(model.b(x[i]))
            c = torch.cat([ha, hb])
            z = model.head(c)
        R = torch.zeros(3)
        R[t[i]] = z[t[i]]
        R_c = lrp_eps(model.head.weight, model.head.bias, c, R, EPS)
        out.append(lrp_eps(model.a.weight, model.a.bias, x[i], R_c[:3], EPS)
                   + lrp_eps(model.b.weight, model.b.bias, x[i], R_c[3:], EPS))
    assert_same(rel, torch.stack(out))


# ---------------------------------------------------------------------------- reuse, nesting, aliasing
class Reuse(nn.Module):
    def __init__(self):
        super().__init__()
        self.shared, self.head = nn.Linear(4, 4), nn.Linear(4, 3)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.head(self.act(self.shared(self.act(self.shared(x)))))


def test_module_called_twice_is_two_nodes_with_own_rules():
    seed(13)
    model = Reuse()
    x = torch.randn(4, 4)
    net = check_forward(model, x)
    names = [i.name for i in net.layer_infos()]
    assert "shared" in names and "shared#1" in names
    # Each call keeps its own input: override the second call only.
    rules = Composite(by_type=[("affine", Epsilon(EPS))], by_name={"shared#1": Gamma(0.5)})
    rel, t = explain(model, x, rules)
    L = model.shared
    ref = chain_reference([("eps", L, EPS), ("pass", torch.relu, None), ("gamma", L, 0.5), ("pass", torch.relu, None),
                           ("eps", model.head, EPS)], x, t)
    assert_same(rel, ref)


def test_nested_sequential_names_and_override():
    seed(14)
    l1, l2, l3 = nn.Linear(5, 6), nn.Linear(6, 6), nn.Linear(6, 3)
    model = nn.Sequential(nn.Sequential(l1, nn.ReLU()), nn.Sequential(nn.Sequential(l2, nn.ReLU()), l3))
    x = torch.randn(3, 5)
    net = check_forward(model, x)
    assert {"0.0", "1.0.0", "1.1"} <= {i.name for i in net.layer_infos()}
    rel, t = explain(model, x, {"1.0.0": Gamma(0.5), "1.1": Epsilon(0.0)})
    ref = chain_reference([("eps", l1, 1e-6), ("pass", torch.relu, None), ("gamma", l2, 0.5),
                           ("pass", torch.relu, None), ("eps", l3, 0.0)], x, t)
    assert_same(rel, ref)


class InplaceBesideResidual(nn.Module):
    """``relu_`` overwrites ``h``, which the residual then reads: the model adds ``relu(h)`` to itself."""

    def __init__(self, how):
        super().__init__()
        self.c, self.head = nn.Linear(4, 4), nn.Linear(4, 3)
        self.relu = nn.ReLU(inplace=True)
        self.how = how

    def forward(self, x):
        h = self.c(x)
        a = self.relu(h) if self.how == "module" else h.relu_()
        return self.head(a + h)


@pytest.mark.parametrize("how", ["module", "method"])
def test_inplace_relu_beside_residual(how):
    seed(15)
    model = InplaceBesideResidual(how)
    x = torch.randn(5, 4)
    check_forward(model, x)  # out-of-place execution alone would compute relu(h) + h here
    rel, t = explain(model, x)
    out = []
    for i in range(len(x)):
        with torch.no_grad():
            a = F.relu(model.c(x[i]))
            s = a + a
            z = model.head(s)
        R = torch.zeros(3)
        R[t[i]] = z[t[i]]
        R_s = lrp_eps(model.head.weight, model.head.bias, s, R, EPS)
        R_a = 2 * a * R_s / stab(s, 1e-6)  # both summands are the same tensor
        out.append(lrp_eps(model.c.weight, model.c.bias, x[i], R_a, EPS))
    assert_same(rel, torch.stack(out))


def test_scalar_multiplication_conserves():
    seed(16)
    l1, l2 = nn.Linear(4, 5), nn.Linear(5, 3)
    model = nn.Sequential(l1, nn.ReLU(), Fn(lambda v: v * 0.5), l2)
    x = torch.randn(3, 4)
    check_forward(model, x)
    rel, t = explain(model, x)
    ref = chain_reference([("eps", l1, EPS), ("pass", torch.relu, None), ("pass", lambda v: v * 0.5, None),
                           ("eps", l2, EPS)], x, t)
    assert_same(rel, ref)


def test_operator_table_is_what_the_graph_says():
    """The kinds the graph assigns: the residual add is a sum, cat a move, relu an activation (rule: Pass)."""
    model = Dense()
    kinds = {s.label.split(" ")[0]: s.kind for s in neon.neuralize(model).steps}
    assert kinds["torch.cat"] == "move"
    assert kinds["torch.nn.functional.relu"] == NodeKind.ACTIVATION
    res = neon.neuralize(Residual("+")).steps
    assert [s.kind for s in res if s.node.target is operator.add] == ["sum"]


@pytest.mark.parametrize("signed", [False, True], ids=["relu inputs", "signed inputs"])
def test_gamma_with_relevance_on_negative_outputs(signed):
    """Negative logits explained: the Gamma rule's z < 0 half (no ReLU above to zero it)."""
    seed(17)
    l1, c2 = nn.Linear(5, 6), nn.Linear(6, 4)
    model = nn.Sequential(l1, nn.Tanh() if signed else nn.ReLU(), c2)
    x = torch.randn(4, 5)
    with torch.no_grad():
        target = model(x).argmin(1)
    assert (model(x).gather(1, target[:, None]) < 0).any()
    e = neon.explain(model, x, target=target, rules=Composite(by_type=[(nn.Linear, Gamma(0.5))]))
    act = torch.tanh if signed else torch.relu
    ref = chain_reference([("gamma", l1, 0.5), ("pass", act, None), ("gamma", c2, 0.5)], x, target)
    assert_same(e.relevance, ref)
