"""neon's pixel-flipping curve equals Quantus' PixelFlipping on a small digits CNN.

The mapping (quantus 0.6, ``quantus/metrics/faithfulness/pixel_flipping.py``):

* Quantus sorts ``np.argsort(-a)`` (MoRF) over the flattened attribution and replaces
  ``features_in_step`` features per step cumulatively -> neon ``order="morf"``,
  ``features_per_step=features_in_step``.
* ``perturb_baseline=<number>`` -> ``replace=<number>``; ``"black"`` is the minimum of each sample
  (taken from the partly perturbed sample, which keeps its minimum) -> ``replace="min"``.
  Quantus' ``"mean"`` is the mean of the *partly perturbed* sample, recomputed every step, so it
  has no fixed-replacement counterpart in neon.
* Quantus leaves out the intact input: its curve is ``result.curve[:, 1:]``; with
  ``return_auc_per_sample=True`` it returns ``np.trapz(curve[:, 1:], dx=1)`` (unnormalised;
  neon's ``scores`` integrate the whole curve over the removed share, ``0..1``).
* ``softmax=False`` evaluates the model's raw output for ``y_batch`` -> a network neuralized with
  ``output="logit"`` and ``target=y_batch``. ``normalise=False, abs=False`` keep the ranking of
  the attributions as given (Quantus' default max-normalisation would not change it either).
* Quantus' sort is not stable; the attributions below have no ties, so the order is the same.
"""

from __future__ import annotations

import numpy as np
import pytest
import quantus
import torch
from sklearn.datasets import load_digits

import neon
from neon import metrics


@pytest.fixture(scope="module")
def digits_cnn():
    digits = load_digits()
    X = (digits.images / 16.0).astype(np.float32)[:, None]
    y = digits.target
    torch.manual_seed(0)
    cnn = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                              torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(16 * 4 * 4, 10))
    opt = torch.optim.Adam(cnn.parameters(), lr=3e-3)
    xt, yt = torch.as_tensor(X[:1200]), torch.as_tensor(y[:1200])
    for _ in range(8):
        for i in range(0, len(xt), 64):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(cnn(xt[i:i + 64]), yt[i:i + 64]).backward()
            opt.step()
    cnn.eval()
    with torch.no_grad():
        acc = (cnn(torch.as_tensor(X[1200:])).argmax(1).numpy() == y[1200:]).mean()
    assert acc > 0.85  # a trained model, so the curves mean something
    return cnn, X[1200:1232]


def _quantus_curve(cnn, X, y, R, step, baseline, auc=False):
    metric = quantus.PixelFlipping(features_in_step=step, perturb_baseline=baseline, normalise=False, abs=False,
                                   disable_warnings=True, return_auc_per_sample=auc)
    return np.asarray(metric(model=cnn, x_batch=X, y_batch=y, a_batch=R, softmax=False, channel_first=True,
                             device="cpu"))


@pytest.mark.parametrize("baseline, replace", [(0.0, 0.0), (0.5, 0.5), ("black", "min")])
def test_pixel_flipping_equals_quantus(digits_cnn, baseline, replace, monkeypatch):
    cnn, X = digits_cnn
    expl = neon.Explainer(cnn, rules="epsilon_gamma_box", output="logit").fit(X).explain(X)
    # a tiny fixed jitter removes exact ties (Quantus' argsort is not stable); both get the same array
    R = expl.relevance + 1e-7 * np.random.default_rng(0).standard_normal(X.shape).astype(np.float32)
    assert len(np.unique(R.reshape(len(R), -1), axis=None)) == R.size
    y = np.asarray(expl.target)
    ours = metrics.pixel_flipping(R, neon.neuralize(cnn, output="logit"), X, target=y, features_per_step=4,
                                  replace=replace)
    theirs = _quantus_curve(cnn, X, y, R, 4, baseline)
    assert theirs.shape == (len(X), 16) and ours.curve.shape == (len(X), 17)
    np.testing.assert_allclose(ours.curve[:, 1:], theirs, atol=1e-6, rtol=0)
    # quantus 0.6 integrates with np.trapz, which NumPy 2.4 removed; np.trapezoid is the same function
    monkeypatch.setattr(np, "trapz", np.trapezoid, raising=False)
    auc = _quantus_curve(cnn, X, y, R, 4, baseline, auc=True)
    np.testing.assert_allclose(np.trapezoid(ours.curve[:, 1:], dx=1, axis=1), auc, atol=1e-5, rtol=1e-6)


def test_pixel_flipping_equals_quantus_for_a_baseline_method(digits_cnn):
    cnn, X = digits_cnn
    g = neon.baselines.gradient(cnn, X, output="logit")
    R = np.asarray(g.relevance)
    assert len(np.unique(R)) == R.size
    y = np.asarray(g.target)
    ours = metrics.pixel_flipping(g, cnn, X, features_per_step=1, replace=0.0)
    with torch.no_grad():  # the explained output of a plain nn.Module without softmax is the logit
        np.testing.assert_allclose(ours.curve[:, 0], cnn(torch.as_tensor(X)).numpy()[np.arange(len(X)), y],
                                   atol=1e-6)
    np.testing.assert_allclose(ours.curve[:, 1:], _quantus_curve(cnn, X, y, R, 1, 0.0), atol=1e-6, rtol=0)
