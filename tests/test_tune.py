"""neon.tune: the winner is the best of independently recomputed scores, deterministic, bounded, generic."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans
from sklearn.datasets import load_wine

import neon
from neon import metrics
from neon.rules import Epsilon, SoftMin
from neon.tuning import default_grid, tune

RNG = np.random.default_rng(0)


@pytest.fixture(scope="module")
def case():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 12), torch.nn.ReLU(), torch.nn.Linear(12, 3),
                                torch.nn.Softmax(-1)).double()
    X = RNG.normal(size=(16, 6))
    return model, X


def test_best_is_the_best_of_recomputed_scores(case):
    model, X = case
    grid = {"eps0": Epsilon(0.0), "eps.1": Epsilon(0.1), "eps1": Epsilon(1.0),
            "ref": {"0": neon.rules.Reference("mean")}}
    res = tune(neon.Explainer(model), X, grid=grid, replace="mean")
    by_label = {r["label"]: r for r in res.scores}
    assert set(by_label) == set(grid) and all(r["error"] is None for r in res.scores)
    for label, rules in grid.items():  # each score equals the metric computed directly
        ex = neon.Explainer(model, rules=rules).fit(X)
        ref = metrics.pixel_flipping(ex, model, X, replace="mean").mean
        assert by_label[label]["score"] == pytest.approx(ref, rel=1e-10)
    assert res.best_score == min(r["score"] for r in res.scores)
    assert not res.higher_is_better and "mean" in res.replace
    np.testing.assert_allclose(res.explainer(X).relevance, neon.Explainer(model, rules=grid[res.best_label]).fit(X)(X)
                               .relevance, rtol=1e-12)
    assert res.best_label in res.table()


def test_direction_follows_the_metric(case):
    model, X = case
    grid = [Epsilon(0.0), Epsilon(1.0), Epsilon(10.0)]
    res = tune(neon.Explainer(model), X, metric="region_perturbation", grid=grid, patch_size=1)
    assert res.higher_is_better
    assert res.best_score == max(r["score"] for r in res.scores)


def test_deterministic_and_budget(case):
    model, X = case
    a = tune(neon.Explainer(model), X, budget=5, random_state=3, replace="noise")
    b = tune(neon.Explainer(model), X, budget=5, random_state=3, replace="noise")
    assert [r["label"] for r in a.scores] == [r["label"] for r in b.scores]
    assert [r["score"] for r in a.scores] == [r["score"] for r in b.scores]
    assert len(a.scores) == 5 and a.scores[0]["label"] == "default"
    c = tune(neon.Explainer(model), X, budget=5, random_state=4, replace="noise")
    assert len(c.scores) == 5
    t = tune(neon.Explainer(model), X, max_seconds=0.0)
    assert t.truncated and len(t.scores) == 1


def test_default_grid_is_generic(case):
    model, X = case
    ex = neon.Explainer(model).fit(X)
    grid = default_grid(ex)
    assert {"default", "lrp0", "epsilon=0.25", "input Reference(mean)"} <= set(grid)
    km = KMeans(3, n_init=4, random_state=0).fit(load_wine().data)
    kex = neon.Explainer(km).fit(load_wine().data)
    kgrid = default_grid(kex)
    beta = next(r.beta for r in kex.rules_.values() if isinstance(r, SoftMin))
    assert "lrp0" not in kgrid and "beta=x10" in kgrid  # no presets for a k-means network; its stiffness swept
    swept = neon.Explainer(km, rules=kgrid["beta=x10"]).fit(load_wine().data)
    assert next(r.beta for r in swept.rules_.values() if isinstance(r, SoftMin)) == pytest.approx(10 * beta)


def test_candidate_errors_are_reported_not_fatal(case):
    model, X = case
    grid = {"ok": Epsilon(0.1), "bad": {"no_such_layer": Epsilon(0.1)}}
    res = tune(neon.Explainer(model), X, grid=grid)
    bad = next(r for r in res.scores if r["label"] == "bad")
    assert bad["error"] and "no_such_layer" in bad["error"] and res.best_label == "ok"


def test_bad_input(case):
    model, X = case
    with pytest.raises(ValueError, match="metric"):
        tune(neon.Explainer(model), X, metric="accuracy")
    with pytest.raises(ValueError, match="mask"):
        tune(neon.Explainer(model), X, metric="localization")
    with pytest.raises(ValueError, match="budget"):
        tune(neon.Explainer(model), X, budget=0)


def test_second_round_builds_on_the_first_rounds_winner(case):
    model, X = case
    res = tune(neon.Explainer(model), X, replace="mean", budget=16, random_state=0)
    labels = [r["label"] for r in res.scores]
    first = [r for r in res.scores if " + " not in r["label"]]
    second = [lab for lab in labels if " + " in lab]
    winner = min((r for r in first if r["error"] is None), key=lambda r: r["score"])["label"]
    assert len(res.scores) <= 16 and labels.index(second[0]) > max(labels.index(r["label"]) for r in first)
    assert all(lab.startswith(winner + " + ") for lab in second)
    row = next(r for r in res.scores if r["label"] == second[0])  # a refined candidate, rescored directly
    ref = metrics.pixel_flipping(neon.Explainer(model, rules=row["rules"]).fit(X), model, X, replace="mean").mean
    assert row["score"] == pytest.approx(ref, rel=1e-10)
    assert " + " not in tune(neon.Explainer(model), X, replace="mean", budget=8, refine=False).scores[-1]["label"]
