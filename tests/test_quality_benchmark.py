"""A small, fast version of benchmarks/ground_truth.py: the ordering its full run found must hold.

The full run (docs/quality.md, docs/benchmarks.md) trains a residual CNN with batch norm on 64x64
scenes of :func:`neon.datasets.make_scenes` and measures how much relevance lands on the red object
that decides the label. Here the same architecture (narrower, without the max-pooled stem) is trained
briefly on 32x32 scenes, and the orderings of relevance mass accuracy that the full run found on every
seed, by margins far beyond the sampling error, are asserted:

- the LRP composites for CNNs (``epsilon_gamma_box``, ``epsilon_alpha2_beta1_flat``, ``overview``) put
  several times more relevance on the deciding object than LRP-epsilon on every layer, which is
  gradient x input on this ReLU network;
- the default rules of a torch CNN are ``EpsilonGammaBox`` (the full run's best preset);
- gradient x input and the (absolute) gradient score less than half of ``EpsilonGammaBox``.

The closer orderings among the composites (a few hundredths in the full run) are not asserted: a
briefly trained small network does not reproduce them reliably. neon's ``EpsilonGammaBox`` is also
checked against zennit 0.5.1's on the trained network (float64, batch-norm ``eps = 0``, see
tests/test_zennit_parity_dnn.py for why), the parity reference of the benchmark.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import neon
from neon.datasets import make_scenes
from neon.metrics import relevance_mass_accuracy

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import ground_truth as G  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def trained():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # idle threads spin: one is faster on a busy machine, and xdist runs two workers
    try:
        X, y, masks = make_scenes(1100, size=32, random_state=0)
        net = G.train(X[:1000], y[:1000], seed=0, epochs=5, width=8, maxpool=False)
        x, t, m = X[1000:], y[1000:], masks[1000:]
        with torch.no_grad():
            pred = net(torch.as_tensor(x)).argmax(1).numpy()
    finally:
        torch.set_num_threads(threads)
    ok = pred == t
    return net, X[:300], x[ok], t[ok], m[ok], float(ok.mean())


_MASS: dict = {}


def mass(trained, rules) -> np.ndarray:
    """Relevance mass accuracy of a preset on the test scenes (computed once per preset: the suite must stay fast)."""
    if rules not in _MASS:
        net, X_fit, x, t, m, _ = trained
        expl = neon.Explainer(net, rules=rules, output="logit").fit(X_fit).explain(x, target=t)
        _MASS[rules] = relevance_mass_accuracy(expl, m).scores
    return _MASS[rules]


def test_the_small_network_learns_the_task(trained) -> None:
    assert trained[-1] >= 0.6  # chance: 1/3


def test_cnn_composites_put_the_relevance_on_the_deciding_object(trained) -> None:
    eps = mass(trained, "epsilon")
    chance = trained[4].mean()
    for rules in ("epsilon_gamma_box", "epsilon_alpha2_beta1_flat", "overview"):
        comp = mass(trained, rules)
        d = comp - eps
        assert d.mean() > 4 * d.std(ddof=1) / np.sqrt(len(d)), rules  # paired, far beyond the sampling error
        assert comp.mean() > 2 * eps.mean() and comp.mean() > 8 * chance, rules


def test_the_torch_default_for_cnns_is_epsilon_gamma_box(trained) -> None:
    np.testing.assert_array_equal(mass(trained, None), mass(trained, "epsilon_gamma_box"))
    assert repr(neon.Explainer(trained[0]).fit(trained[1]).composite_) == "EpsilonGammaBox"
    with pytest.raises(ValueError, match="ZBox.*fit"):  # its z^B bounds come from data
        neon.Explainer(trained[0]).fit()


def test_gradient_methods_score_far_below_the_composite(trained) -> None:
    net, _, x, t, m, _ = trained
    egb = mass(trained, "epsilon_gamma_box").mean()
    gi = neon.baselines.gradient_x_input(net, x, target=t, output="logit")
    grad = np.abs(np.asarray(neon.baselines.gradient(net, x, target=t, output="logit").relevance))  # captum's Saliency
    for name, rel in (("gradient x input", gi), ("|gradient|", grad)):
        assert relevance_mass_accuracy(rel, m).mean < 0.5 * egb, name


def test_neon_epsilon_gamma_box_equals_zennit_on_the_scene_network(trained) -> None:
    from zennit.attribution import Gradient
    from zennit.composites import EpsilonGammaBox
    from zennit.torchvision import ResNetCanonizer

    net = copy.deepcopy(trained[0]).double()
    for mod in net.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.eps = 0.0
    x = torch.as_tensor(trained[2][:8]).double()
    t = torch.as_tensor(trained[3][:8])
    ours = neon.Explainer(net, rules=neon.composites.EpsilonGammaBox(0.0, 1.0), output="logit").explain(x, target=t)
    comp = EpsilonGammaBox(low=0.0, high=1.0, canonizers=[ResNetCanonizer()])
    with Gradient(copy.deepcopy(net), comp) as attributor:
        _, theirs = attributor(x.clone(), lambda o: o * torch.nn.functional.one_hot(t, 3).to(o))
    err = float((ours.relevance - theirs).norm() / theirs.norm())
    assert err < 1e-9
