"""neon.plot draws what it claims: values in the figure checked against independent computations."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

import neon  # noqa: E402
import neon.plot as nplot  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def cnn():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5))
    x = torch.rand(4, 3, 6, 6, generator=torch.Generator().manual_seed(1))
    return model.eval(), x


@pytest.fixture(scope="module")
def image_expl(cnn):
    model, x = cnn
    return neon.explain(model, x)


@pytest.fixture(scope="module")
def tabular_expl():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 7))
    torch.manual_seed(2)
    mlp = nn.Sequential(nn.Linear(7, 6), nn.ReLU(), nn.Linear(6, 3)).double().eval()
    return neon.explain(mlp, torch.from_numpy(X))


def _relevance(expl):
    return expl.relevance.detach().numpy().astype(np.float64)


def test_heatmap_draws_the_channel_sum_with_a_symmetric_percentile_range(image_expl):
    ax = nplot.heatmap(image_expl, index=2, percentile=97.0)
    im = ax.get_images()[-1]
    expected = _relevance(image_expl)[2].sum(axis=0)
    np.testing.assert_allclose(np.asarray(im.get_array()), expected, rtol=1e-12)
    vmin, vmax = im.get_clim()
    v = np.percentile(np.abs(expected), 97.0)
    assert vmin == pytest.approx(-v) and vmax == pytest.approx(v)
    assert im.get_cmap().name == "bwr"


def test_heatmap_batch_grid_titles_name_the_predicted_class_and_score(cnn, image_expl):
    model, x = cnn
    with torch.no_grad():
        logits = model(x)
    axes = nplot.heatmap(image_expl)
    assert isinstance(axes, np.ndarray) and len(axes) == len(x)
    for i, ax in enumerate(axes):
        c = int(logits[i].argmax())
        title = ax.get_title().split("\n")
        assert title[0] == f"class {c}: logit {float(logits[i, c]):.3g}"
        absorbed = float(logits[i, c]) - _relevance(image_expl)[i].sum()  # LRP-epsilon's biases take a share
        assert abs(absorbed) > 0.01 * abs(float(logits[i, c])) and title[1] == f"absorbed {absorbed:.3g}"
        maps = np.asarray(ax.get_images()[0].get_array())
        np.testing.assert_allclose(maps, _relevance(image_expl)[i].sum(0), rtol=1e-12)
        lo, hi = ax.get_images()[0].get_clim()
        assert hi == pytest.approx(np.percentile(np.abs(maps), 99.5)) and lo == -hi


def test_shared_range_uses_one_percentile_over_the_batch(image_expl):
    axes = nplot.heatmap(image_expl, shared_range=True, percentile=90)
    v = np.percentile(np.abs(_relevance(image_expl).sum(1)), 90)
    for ax in axes:
        assert ax.get_images()[0].get_clim() == pytest.approx((-v, v))


def test_overlay_draws_the_normalised_input_under_a_transparent_heatmap(cnn, image_expl):
    _, x = cnn
    ax = nplot.heatmap(image_expl, index=1, overlay=True, alpha=0.4, cmap="seismic")
    base, top = ax.get_images()
    img = x[1].numpy().transpose(1, 2, 0).astype(np.float64)
    img = (img - img.min()) / (img.max() - img.min())
    np.testing.assert_allclose(np.asarray(base.get_array()), img, rtol=1e-6)
    assert top.get_alpha() == 0.4 and top.get_cmap().name == "seismic"


def test_coldhot_colormap_is_black_at_zero_and_registered():
    cmap = nplot._common.get_cmap("coldhot")
    assert cmap.name == nplot.COLDHOT
    np.testing.assert_allclose(cmap(0.5)[:3], (0, 0, 0), atol=0.01)
    assert cmap(1.0)[0] > 0.9 and cmap(0.0)[2] > 0.9  # hot end red/yellow, cold end blue/cyan
    assert nplot.COLDHOT in matplotlib.colormaps
    with pytest.raises(ValueError, match="unknown colormap"):
        nplot._common.get_cmap("no-such-map")


def test_heatmap_reshapes_flat_features_and_draws_on_given_axes():
    r = np.arange(2 * 16, dtype=float).reshape(2, 16) - 10
    fig, axes = plt.subplots(1, 2)
    out = nplot.heatmap(r, shape=(4, 4), ax=axes)
    assert list(out) == list(axes)
    np.testing.assert_array_equal(np.asarray(axes[1].get_images()[0].get_array()), r[1].reshape(4, 4))


def test_heatmap_rejects_tabular_relevance_and_overlay_without_data():
    with pytest.raises(ValueError, match="features"):
        nplot.heatmap(np.ones((3, 5)))
    with pytest.raises(ValueError, match="overlay"):
        nplot.heatmap(np.ones((1, 4, 4)), overlay=True)


def test_feature_bars_are_sorted_signed_relevance(tabular_expl):
    i = 5
    r = _relevance(tabular_expl)[i]
    names = [f"f{j}" for j in range(7)]
    ax = nplot.features(tabular_expl, index=i, feature_names=names)
    bars = ax.patches
    order = np.argsort(r)
    np.testing.assert_allclose([b.get_width() for b in bars], r[order], rtol=1e-12)
    np.testing.assert_allclose([b.get_y() + b.get_height() / 2 for b in bars], np.arange(7))
    assert [t.get_text() for t in ax.get_yticklabels()] == [names[j] for j in order]
    colors = [b.get_facecolor()[0] > b.get_facecolor()[2] for b in bars]  # red for positive
    assert colors == list(r[order] > 0)
    assert ax.get_title().startswith(f"class {int(tabular_expl.target[i])} ")


def test_feature_bars_keep_the_largest_magnitudes(tabular_expl):
    r = _relevance(tabular_expl)[0]
    ax = nplot.features(tabular_expl[0], max_features=3)
    top = set(np.argsort(-np.abs(r))[:3])
    widths = np.array([b.get_width() for b in ax.patches])
    np.testing.assert_allclose(widths, np.sort(r[sorted(top)]))
    assert [t.get_text() for t in ax.get_yticklabels()] == [f"x{j}" for j in sorted(top, key=lambda j: r[j])]


def test_feature_summary_shows_mean_abs_relevance_and_every_sample(tabular_expl):
    r = _relevance(tabular_expl)
    fig, ax = plt.subplots()
    assert nplot.features(tabular_expl, ax=ax) is ax
    mean_abs = np.abs(r).mean(0)
    order = np.argsort(mean_abs)
    np.testing.assert_allclose([b.get_width() for b in ax.patches], mean_abs[order], rtol=1e-12)
    dots = ax.collections
    assert len(dots) == 7
    for row, (coll, j) in enumerate(zip(dots, order)):
        xy = coll.get_offsets()
        np.testing.assert_allclose(xy[:, 0], r[:, j], rtol=1e-12)
        assert np.all(np.abs(xy[:, 1] - row) <= 0.4)
        assert len(np.unique(np.round(xy[:, 1], 9))) > 1  # spread like a beeswarm, not a line


def test_beeswarm_offsets_separate_equal_values():
    off = nplot.tabular._beeswarm_offsets(np.zeros(5))
    assert len(set(np.round(off, 12))) == 5 and np.abs(off).max() <= 0.38 + 1e-12


def test_clusters_panels_are_group_means_and_standardised_centroids():
    from sklearn.cluster import KMeans
    from sklearn.datasets import load_wine

    X = load_wine().data[:, :6]
    km = KMeans(3, n_init=4, random_state=0).fit(X)
    expl = neon.explain(km, X)
    axes = nplot.clusters(expl, km)
    left = np.asarray(axes[0].get_images()[0].get_array())
    right = np.asarray(axes[1].get_images()[0].get_array())
    labels = km.predict(X)
    expected = np.stack([expl.relevance[labels == k].mean(0) for k in range(3)])
    np.testing.assert_allclose(left, expected.T, rtol=1e-10, atol=1e-12)
    z = (km.cluster_centers_ - X.mean(0)) / X.std(0)
    np.testing.assert_allclose(right, z.T, rtol=1e-10)
    lo, hi = axes[0].get_images()[0].get_clim()
    assert hi == pytest.approx(np.abs(expected).max()) and lo == -hi


def test_cluster_means_of_a_centroid_array_with_an_empty_cluster():
    r = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    np.testing.assert_allclose(nplot.cluster_means(r, np.array([0, 0, 2]), 3), [[2, 3], [0, 0], [5, 6]])


def test_rules_comparison_lrp0_panel_is_gradient_times_input(cnn):
    model, x = cnn
    x1 = x[:1]
    axes = nplot.rules_comparison(model, x1)
    assert [a.get_title().split("\n")[0] for a in axes] == ["input", "LRP-0", "LRP-ε", "LRP-γ", "composite"]
    xg = x1.clone().requires_grad_(True)
    out = model(xg)
    c = int(out.argmax())
    out[0, c].backward()
    gi = (xg * xg.grad).detach().numpy()[0].sum(0).astype(np.float64)
    np.testing.assert_allclose(np.asarray(axes[1].get_images()[0].get_array()), gi, rtol=1e-4, atol=1e-6)
    gamma = neon.explain(model, x1, rules=neon.rules.Gamma(0.25))
    np.testing.assert_allclose(np.asarray(axes[3].get_images()[0].get_array()),
                               _relevance(gamma)[0].sum(0), rtol=1e-10)
    assert not np.allclose(np.asarray(axes[3].get_images()[0].get_array()), gi, rtol=1e-2)


def test_rules_comparison_needs_one_input(cnn):
    model, x = cnn
    with pytest.raises(ValueError, match="one input"):
        nplot.rules_comparison(model, x)


def test_explanation_plot_picks_heatmap_for_images_and_bars_for_tables(image_expl, tabular_expl):
    axes = image_expl.plot()
    assert len(axes) == len(image_expl) and axes[0].get_images()
    ax = tabular_expl.plot(index=0)
    assert len(ax.patches) == 7 and not ax.get_images()


def test_symmetric_limits_per_sample_and_fallbacks():
    rng = np.random.default_rng(3)
    maps = rng.normal(size=(3, 5, 5))
    maps[1] = 0.0
    maps[2] = 0.0
    maps[2, 0, 0] = -2.0  # one pixel of 25: its 90th percentile is 0, so the maximum is taken
    v = nplot._common.symmetric_limits(maps, 90)
    assert v[0] == pytest.approx(np.percentile(np.abs(maps[0]), 90))
    assert v[1] == 1.0 and v[2] == 2.0
    assert [nplot.symmetric_limit(m, 90) for m in maps] == pytest.approx(list(v))


# ---------------------------------------------------------------------- figures for people
def texts_outside(fig):
    """Every drawn, non-empty text of ``fig`` whose window extent leaves the figure (after an Agg draw).

    Tick labels of ticks outside the view limits exist as artists but are not drawn: they are skipped.
    """
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    hidden = set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            span = max(hi - lo, 1e-300)
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if not lo - 1e-9 * span <= tick.get_loc() <= hi + 1e-9 * span:
                    hidden.update({id(tick.label1), id(tick.label2)})
    box = fig.bbox
    out = []
    for text in fig.findobj(matplotlib.text.Text):
        if not text.get_visible() or not text.get_text().strip() or id(text) in hidden:
            continue
        e = text.get_window_extent(renderer)
        if e.x0 < box.x0 - 0.5 or e.y0 < box.y0 - 0.5 or e.x1 > box.x1 + 0.5 or e.y1 > box.y1 + 0.5:
            out.append((text.get_text(), tuple(np.round(e.bounds, 1))))
    return out


def _colorbar_axes(fig):
    return [a for a in fig.axes if getattr(a, "_colorbar", None) is not None]


@pytest.fixture(scope="module")
def long_names_expl():
    """A logistic regression on breast cancer data (long feature names), explained without a reference."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = load_breast_cancer(as_frame=True)
    X = data.data.iloc[:60].copy()
    X.columns = [f"{c} measured on the worst nucleus image" for c in X.columns]  # ~50 characters
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, data.target.iloc[:60])
    return model, X


def test_no_text_leaves_the_figure_also_with_long_names(long_names_expl, tabular_expl, image_expl, cnn):
    model, X = long_names_expl
    expl = neon.Explainer(model, reference=None).fit(X).explain(X)
    figures = {"bar": nplot.features(expl, index=3).figure,
               "summary": nplot.features(expl, kind="summary").figure,
               "mlp bar": nplot.features(tabular_expl, index=0).figure,
               "heatmaps": nplot.heatmap(image_expl)[0].figure,
               "shared range": nplot.heatmap(image_expl, shared_range=True, ncols=3)[0].figure,
               "rules": nplot.rules_comparison(cnn[0], cnn[1][:1])[0].figure}
    for name, fig in figures.items():
        assert texts_outside(fig) == [], name
        assert fig.get_layout_engine() is not None, name  # laid out again at every draw
    # the layout follows later changes: a title of three lines set afterwards stays inside too
    ax = nplot.features(expl, index=0)
    ax.figure.canvas.draw()
    ax.set_title("a title set by the user\nafter the plot was drawn\non three lines", fontsize=14)
    assert texts_outside(ax.figure) == []


def test_clusters_figure_keeps_long_names_and_labels_its_colour_bars():
    from sklearn.cluster import KMeans
    from sklearn.datasets import load_wine

    data = load_wine()
    X = data.data[:, :5]
    km = KMeans(3, n_init=2, random_state=0).fit(X)
    names = [f"{n} (concentration in the sample, g/l)" for n in data.feature_names[:5]]
    axes = nplot.clusters(neon.explain(km, X), km, feature_names=names)
    fig = axes[0].figure
    assert texts_outside(fig) == []
    bars = _colorbar_axes(fig)
    assert len(bars) == 2
    labels = sorted(b.get_ylabel() for b in bars)
    assert labels == ["relevance (cluster logit)", "standard deviations from the mean"]


@pytest.mark.parametrize("kind, label", [("log-odds", "relevance (log-odds)"), ("logit", "relevance (logit)"),
                                         ("cluster logit", "relevance (cluster logit)"),
                                         ("outlier score", "relevance (outlier score)"),
                                         ("value", "relevance (units of the output)"), ("", "relevance")])
def test_relevance_axes_carry_the_units_of_the_explained_output(kind, label):
    rng = np.random.default_rng(0)
    r = rng.normal(size=(5, 4))
    expl = neon.Explanation(relevance=r, output=r.sum(1), target=np.zeros(5, int), absorbed=np.zeros(5),
                            output_kind=kind)
    assert nplot.features(expl, index=1).get_xlabel() == label
    assert nplot.features(expl, kind="summary").get_xlabel().split("\n")[0] == label
    images = neon.Explanation(relevance=rng.normal(size=(2, 1, 4, 4)), output=np.ones(2), target=np.zeros(2, int),
                              absorbed=np.zeros(2), output_kind=kind)
    axes = nplot.heatmap(images)
    bars = _colorbar_axes(axes[0].figure)
    assert [b.get_ylabel() for b in bars] == [label, label]


def test_heatmaps_carry_colour_bars_spanning_the_symmetric_range(image_expl):
    axes = nplot.heatmap(image_expl, percentile=95)
    fig = axes[0].figure
    bars = _colorbar_axes(fig)
    assert len(bars) == len(image_expl)
    for ax, bar in zip(axes, bars):
        lo, hi = ax.get_images()[0].get_clim()
        assert bar._colorbar.vmin == lo and bar._colorbar.vmax == hi == -lo
        assert bar.get_ylabel() == "relevance (logit)"
    # shared_range: the same range on every bar
    axes = nplot.heatmap(image_expl, shared_range=True)
    v = np.percentile(np.abs(_relevance(image_expl).sum(1)), 99.5)
    assert [b._colorbar.vmax for b in _colorbar_axes(axes[0].figure)] == pytest.approx([v] * len(image_expl))
    assert _colorbar_axes(nplot.heatmap(image_expl, colorbar=False)[0].figure) == []


def test_summary_colours_dots_by_feature_value_with_a_labelled_bar(tabular_expl):
    ax = nplot.features(tabular_expl, kind="summary")
    bars = _colorbar_axes(ax.figure)
    assert len(bars) == 1 and bars[0].get_ylabel() == "feature value"
    assert [t.get_text() for t in bars[0].get_yticklabels()] == ["low", "high"]
    # without data there is no colour to explain
    r = _relevance(tabular_expl)
    assert _colorbar_axes(nplot.features(r, kind="summary").figure) == []


def _expl(output, absorbed, kind="log-odds"):
    output, absorbed = np.atleast_1d(output).astype(float), np.atleast_1d(absorbed).astype(float)
    r = np.stack([(output - absorbed) / 2] * 2, axis=1)
    return neon.Explanation(relevance=r, output=output, target=np.ones(len(output), int), absorbed=absorbed,
                            target_names=["no", "yes"], output_kind=kind)


def test_absorbed_is_shown_beside_the_output_when_more_than_one_percent_of_it():
    assert nplot.features(_expl(20.5, -32.1), index=0).get_title() == "class yes (log-odds 20.5, absorbed -32.1)"
    assert nplot.features(_expl(20.5, 0.21), index=0).get_title() == "class yes (log-odds 20.5, absorbed 0.21)"
    assert nplot.features(_expl(20.5, 0.2), index=0).get_title() == "class yes (log-odds 20.5)"  # 0.98%
    assert nplot.features(_expl(20.5, -0.2), index=0).get_title() == "class yes (log-odds 20.5)"
    summary = nplot.features(_expl([10.0, 30.0], [-1.0, -0.8]), kind="summary").get_title()
    assert summary == "2 samples: mean log-odds 20, mean absorbed -0.9"
    assert nplot.features(_expl([10.0, 30.0], [-0.1, 0.1]), kind="summary").get_title() == \
        "2 samples: mean log-odds 20"
    images = neon.Explanation(relevance=np.ones((2, 3, 3)), output=np.array([9.0, 9.0]), target=np.array([0, 1]),
                              absorbed=np.array([0.0, 0.5]), target_names=["cat", "dog"], output_kind="logit")
    assert [a.get_title() for a in nplot.heatmap(images)] == ["class cat: logit 9", "class dog: logit 9\nabsorbed 0.5"]


def test_a_linear_model_shows_absorbed_without_reference_and_not_with_the_mean(long_names_expl):
    model, X = long_names_expl
    raw = neon.Explainer(model, reference=None).fit(X).explain(X)
    centred = neon.Explainer(model).fit(X).explain(X)  # the default: the mean of the fit data
    i = 0
    output = float(np.asarray(raw.output)[i])
    absorbed = output - float(np.asarray(raw.relevance)[i].sum())
    assert abs(absorbed) > 0.01 * abs(output)
    title = nplot.features(raw, index=i).get_title()
    assert title.endswith(f"absorbed {absorbed:.3g})") and f"log-odds {output:.3g}" in title
    assert "absorbed" not in nplot.features(centred, index=i).get_title()
