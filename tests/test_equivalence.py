"""neon explains the user's model or refuses: a gallery of models that trap tracers.

Every model here is either explained, with the explained output equal to what the model itself computes,
or refused with a NeonError that names the problem. None may be silently explained as another function.
"""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import neon
from neon.exceptions import EquivalenceError, NeonError, UnsupportedModelError


def seed(s: int = 0) -> None:
    torch.manual_seed(s)


class ExtraArgument(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(4, 6), nn.Linear(6, 3)

    def forward(self, x, extra=None):
        if extra is not None:
            x = x + extra
        return self.b(F.relu(self.a(x)))


class RequiredArgument(ExtraArgument):
    def forward(self, x, mask):  # noqa: D102
        return self.b(F.relu(self.a(x * mask)))


class VarArgs(ExtraArgument):
    def forward(self, *inputs):  # noqa: D102
        return self.b(F.relu(self.a(inputs[0])))


class TupleOutput(ExtraArgument):
    def forward(self, x):  # noqa: D102
        h = F.relu(self.a(x))
        return h, self.b(h)


class DictOutput(ExtraArgument):
    def forward(self, x):  # noqa: D102
        h = F.relu(self.a(x))
        return {"features": h, "logits": self.b(h)}


class TrainingBranch(ExtraArgument):
    def forward(self, x):  # noqa: D102
        h = F.relu(self.a(x))
        if self.training:  # a Python branch on the mode: traced in evaluation mode
            h = h * 2.0
        return self.b(h)


class Counter(ExtraArgument):
    """State outside the input: the forward changes with every call."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x):  # noqa: D102
        self.calls += 1
        return self.b(F.relu(self.a(x))) * float(self.calls)


class DataBranch(ExtraArgument):
    def forward(self, x):  # noqa: D102
        h = F.relu(self.a(x))
        if h.sum() > 0:
            h = h + 1
        return self.b(h)


class ViewAliasing(nn.Module):
    """An in-place ReLU that changes a tensor another view still reads: aliasing through views."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(4, 6), nn.Linear(12, 3)

    def forward(self, x):  # noqa: D102
        h = self.a(x)
        v = h.view(-1, 6)
        h.relu_()
        return self.b(torch.cat([v, h], 1))


class RandomNoise(ExtraArgument):
    def forward(self, x):  # noqa: D102
        return self.b(F.relu(self.a(x + torch.randn_like(x))))


class Regression1D(ExtraArgument):
    def forward(self, x):  # noqa: D102
        return self.b(F.relu(self.a(x)))[:, 0]


class CifarTutorialNet(nn.Module):
    """The shape of PyTorch's CIFAR tutorial net: conv, pool, then .view(-1, k) (float32, channels-last path)."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(3, 6, 5), nn.Conv2d(6, 16, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.fc1, self.fc2 = nn.Linear(16 * 5 * 5, 32), nn.Linear(32, 10)

    def forward(self, x):  # noqa: D102
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = x.view(-1, 16 * 5 * 5)
        return self.fc2(F.relu(self.fc1(x)))


class PoolIndices(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.pool = nn.MaxPool2d(2, return_indices=True)
        self.fc = nn.Linear(4 * 4 * 4, 3)

    def forward(self, x):  # noqa: D102
        values, indices = self.pool(F.relu(self.conv(x)))
        return self.fc(values.flatten(1))


class DenseOutput(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, padding=1)

    def forward(self, x):  # noqa: D102
        return self.conv(x)


def mlp() -> nn.Module:
    seed(1)
    return nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Dropout(0.5), nn.Linear(6, 3))


def _x(shape=(5, 4), s: int = 2) -> torch.Tensor:
    torch.manual_seed(s)
    return torch.randn(*shape)


def _explained_equals(model: nn.Module, x: torch.Tensor, want: torch.Tensor, **kw) -> neon.Explanation:
    """Explain every output column; each explained value must be the model's own."""
    want = want.reshape(len(x), -1)
    for t in range(want.shape[1]):
        expl = neon.Explainer(model, **kw).fit(x).explain(x, target=t)
        torch.testing.assert_close(expl.output, want[:, t], rtol=1e-5, atol=1e-5 * float(want.abs().max()))
    return expl


# ---------------------------------------------------------------- explained, and equal to the model
def test_optional_forward_argument_is_traced_at_its_default_and_said() -> None:
    seed()
    model, x = ExtraArgument().eval(), _x()
    with pytest.warns(UserWarning, match="extra=None"):
        _explained_equals(model, x, model(x).detach())


def test_tuple_and_dict_outputs_with_a_selector() -> None:
    seed()
    x = _x()
    tup, dic = TupleOutput().eval(), DictOutput().eval()
    _explained_equals(tup, x, tup(x)[1].detach(), output_selector=1)
    _explained_equals(dic, x, dic(x)["logits"].detach(), output_selector="logits")
    _explained_equals(dic, x, dic(x)["logits"].detach().sum(1), output_selector=lambda out: out["logits"].sum(1))


def test_a_training_mode_model_without_mode_dependent_layers_is_explained_as_it_is() -> None:
    seed()
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3)).train()
    x = _x()
    _explained_equals(model, x, model(x).detach())
    assert model.training and all(m.training for m in model.modules())


def test_one_dimensional_outputs_are_one_column() -> None:
    seed()
    model, x = Regression1D().eval(), _x()
    expl = _explained_equals(model, x, model(x).detach())
    assert expl.relevance.shape == x.shape
    with pytest.raises(ValueError, match="out of range"):
        neon.explain(model, x, target=1)


def test_conv_then_view_on_float32_cpu() -> None:
    seed()
    model, x = CifarTutorialNet().eval(), _x((3, 3, 32, 32))
    _explained_equals(model, x, model(x).detach())


def test_max_pool_returning_indices() -> None:
    seed()
    model, x = PoolIndices().eval(), _x((3, 2, 8, 8))
    _explained_equals(model, x, model(x).detach())


def test_softmax_models_are_checked_in_probability_space() -> None:
    seed()
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3), nn.Softmax(dim=1)).eval()
    x = _x()
    expl = neon.Explainer(model).fit(x).explain(x)
    probs = model(x).detach()
    # the explained log-odds are the model's: P_c = sigmoid(eta_c)
    torch.testing.assert_close(torch.sigmoid(expl.output), probs.gather(1, expl.target[:, None])[:, 0])


# ---------------------------------------------------------------- refused, with the fix in the message
@pytest.mark.parametrize("kind", ["dropout", "batchnorm"])
def test_training_mode_that_changes_the_forward_is_refused(kind: str) -> None:
    seed()
    model = mlp() if kind == "dropout" else nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.Linear(6, 3))
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(UnsupportedModelError, match=r"training mode.*model\.eval\(\)"):
        neon.explain(model, _x())
    assert model.training and all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("pre", [False, True])
def test_forward_hooks_are_refused_and_left_in_place(pre: bool) -> None:
    seed()
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3)).eval()
    if pre:
        handle = model[2].register_forward_pre_hook(lambda mod, inp: (inp[0] * 2,))
    else:
        handle = model[0].register_forward_hook(lambda mod, inp, out: out * 2)
    with pytest.raises(UnsupportedModelError, match="hook"):
        neon.explain(model, _x())
    assert len(model[2]._forward_pre_hooks if pre else model[0]._forward_hooks) == 1
    handle.remove()


def test_several_outputs_without_a_selector_are_refused() -> None:
    seed()
    for model in (TupleOutput().eval(), DictOutput().eval()):
        with pytest.raises(UnsupportedModelError, match="output_selector"):
            neon.explain(model, _x())


@pytest.mark.parametrize("cls, match", [(RequiredArgument, "'mask'"), (VarArgs, r"\*args")])
def test_forward_arguments_the_input_alone_cannot_give_are_refused(cls, match: str) -> None:
    seed()
    with pytest.raises(UnsupportedModelError, match=match):
        neon.explain(cls().eval(), _x())


def test_dense_outputs_are_refused_with_what_is_supported() -> None:
    seed()
    with pytest.raises(UnsupportedModelError, match=r"\(n, k\).*output_selector"):
        neon.explain(DenseOutput().eval(), _x((2, 2, 5, 5)))


def test_control_flow_on_data_and_random_numbers_are_refused() -> None:
    seed()
    with pytest.raises(NeonError):
        neon.explain(DataBranch().eval(), _x())
    with pytest.raises(NeonError, match="randn_like"):
        neon.explain(RandomNoise().eval(), _x())


def test_a_training_branch_in_training_mode_is_another_function_and_refused() -> None:
    seed()
    model = TrainingBranch().train()  # no dropout or batch norm: only the run-time check can see it
    with pytest.raises(EquivalenceError, match=r"does not compute what TrainingBranch\.forward computes"):
        neon.explain(model, _x())
    assert model.training


def test_state_outside_the_input_is_refused() -> None:
    seed()
    model = Counter().eval()
    x = _x()
    for _ in range(3):
        model(x)
    first = neon.explain(model, x, target=0)  # traced now: the copy's count and the model's next call agree...
    torch.testing.assert_close(first.output, 4.0 * model.b(F.relu(model.a(x)))[:, 0].detach())
    with pytest.raises(EquivalenceError, match="max \\|difference\\|"):
        neon.explain(model, x)  # ...but the model has moved on, the cached trace has not: refused


def test_aliasing_through_views_is_refused_and_located() -> None:
    seed()
    model = ViewAliasing().eval()
    with pytest.raises(EquivalenceError, match="'b' \\(Linear\\)"):
        neon.explain(model, _x())


def test_a_near_miss_estimator_is_refused() -> None:
    from sklearn.cluster import KMeans
    from sklearn.datasets import load_wine

    X = load_wine().data
    km = KMeans(3, n_init=3, random_state=0).fit(X)
    orig = km.transform
    km.transform = lambda Z: orig(Z) * 1.01  # the model now computes another function than its centroids say
    with pytest.raises(EquivalenceError, match="KMeans.transform"):
        neon.explain(km, X)


# ---------------------------------------------------------------- cost and when the check runs
class CountCalls(nn.Module):
    """Counts the calls of the user's own model (the traced copy counts its own, at trace time only)."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner, self.calls = inner, 0

    def forward(self, x):  # noqa: D102
        self.calls += 1
        return self.inner(x)


def test_the_check_runs_once_per_model_version_and_verify_false_skips_it() -> None:
    seed()
    model = CountCalls(nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))).eval()
    x = _x()
    explainer = neon.Explainer(model).fit(x)
    assert model.calls == 1 and explainer.equivalence_ is not None and explainer.equivalence_ < 1e-6
    for _ in range(3):
        explainer.explain(x)
    assert model.calls == 1  # a fitted explainer does not call the model again
    with torch.no_grad():
        model.inner[0].weight.mul_(1.5)  # a new model version: checked again, and explained as it is now
    expl = explainer.explain(x, target=0)
    assert model.calls == 2
    with torch.no_grad():
        torch.testing.assert_close(expl.output, model(x)[:, 0])
    neon.Explainer(model, verify=False).fit(x).explain(x)
    assert model.calls == 3


def test_data_fitted_rules_of_a_changed_model_ask_for_a_new_fit() -> None:
    seed()
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 4 * 4, 3)).eval()
    x = _x((4, 1, 6, 6))
    explainer = neon.Explainer(model, rules="epsilon_gamma_box").fit(x)  # z^B bounds fitted on x
    with torch.no_grad():
        model[3].bias.add_(1.0)
    with pytest.raises(NeonError, match="fit"):
        explainer.explain(x)


# ---------------------------------------------------------------- threads
def test_explaining_from_threads_beside_the_user_s_own_inference() -> None:
    """4 threads explain (each with a fresh model: every call traces) while a 5th runs plain inference."""
    seed()
    models = [nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 4)).eval()
              for _ in range(4)]
    x = _x((6, 8))
    want = [neon.explain(m, x).relevance for m in models]
    user_model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2)).eval()
    user_want = user_model(x).detach()
    stop = threading.Event()
    failures: list[str] = []
    user_calls = [0]

    def user() -> None:
        while not stop.is_set():
            try:
                with torch.no_grad():
                    out = user_model(x)
                if not torch.equal(out, user_want):
                    failures.append("user output changed")
                user_calls[0] += 1
            except Exception as err:  # noqa: BLE001 - every failure is what the test counts
                failures.append(f"user: {type(err).__name__}: {err}")

    def explain(i: int) -> None:
        for _ in range(8):
            try:
                fresh = type(models[i])(*models[i]).eval()  # a new module object: traced again, not cached
                got = neon.explain(fresh, x).relevance
                if not torch.equal(got, want[i]):
                    failures.append(f"thread {i}: relevance differs")
            except Exception as err:  # noqa: BLE001
                failures.append(f"thread {i}: {type(err).__name__}: {err}")

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        inference = threading.Thread(target=user)
        inference.start()
        workers = [threading.Thread(target=explain, args=(i,)) for i in range(4)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        stop.set()
        inference.join()
    assert not failures, failures[:5]
    assert user_calls[0] > 10


def test_repeated_explains_of_one_model_trace_once() -> None:
    seed()
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3)).eval()
    first = neon.neuralize(model)
    assert neon.neuralize(model) is first
    with torch.no_grad():
        model[0].bias.add_(0.1)
    assert neon.neuralize(model) is not first


def test_tolerances_are_the_dtype_s_rounding() -> None:
    from neon.verification import TOLERANCE

    assert TOLERANCE[torch.float64] == 1e-9 and TOLERANCE[torch.float32] == 1e-5
    assert np.all([TOLERANCE[t] < 0.1 for t in (torch.float16, torch.bfloat16)])


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_models_are_checked_with_their_rounding(dtype) -> None:
    seed()
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(),
                          nn.Linear(8 * 6 * 6, 4)).eval()
    with torch.no_grad():
        model[1].running_mean.normal_(0, 0.2)
        model[1].running_var.uniform_(0.5, 2.0)
    model = model.to(dtype)
    x = _x((4, 3, 6, 6)).to(dtype)
    explainer = neon.Explainer(model, rules="epsilon").fit(x)
    assert explainer.equivalence_ is not None and 0 < explainer.equivalence_ < 5e-2
    expl = explainer.explain(x, target=1)
    with torch.no_grad():
        torch.testing.assert_close(expl.output.float(), model(x)[:, 1].float(), rtol=5e-2, atol=5e-2)
