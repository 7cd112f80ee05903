# %% [markdown]
# # 2. Which features make an outlier? One-class SVM and kernel density (NEON)
#
# A one-class SVM with an RBF kernel and a Gaussian kernel density estimate both score a point by
# a weighted sum of Gaussian bumps around reference points $x_j$. Kauffmann, Müller and Montavon
# ("Towards explaining anomalies: a deep Taylor decomposition of one-class models", Pattern
# Recognition 2020) write the outlier score as a two-layer network,
#
# $$o(x) = -\tfrac{1}{\gamma} \log \sum_j \alpha_j \exp(-\gamma \|x - x_j\|^2),$$
#
# squared distances followed by soft-min pooling, and explain it with two exactly conservative
# rules: the soft-min redistributes the score over the reference points, and each distance
# $\|x - x_j\|^2 = \sum_i (x_i - x_{ji})^2$ is split over the features.
#
# We plant anomalies whose cause we know, and check that the explanation finds it.

# %%
import matplotlib.pyplot as plt
import numpy as np
from sklearn.neighbors import KernelDensity
from sklearn.svm import OneClassSVM

import neon
import neon.plot

# %% [markdown]
# ## Data with planted anomalies
# Six correlated sensor readings. The test set holds 60 normal points and 12 anomalies, each a
# normal point with **one** reading pushed 5 standard deviations away.

# %%
rng = np.random.default_rng(0)
names = ["temperature", "pressure", "flow", "vibration", "humidity", "voltage"]
mix = np.eye(6) + 0.3 * rng.normal(size=(6, 6))
X_train = rng.normal(size=(400, 6)) @ mix
X_normal = rng.normal(size=(60, 6)) @ mix
scale = X_train.std(0)
planted = np.arange(12) % 6
X_anom = rng.normal(size=(12, 6)) @ mix
X_anom[np.arange(12), planted] += 5 * scale[planted] * rng.choice([-1, 1], size=12)
X_test = np.vstack([X_normal, X_anom])
is_anomaly = np.r_[np.zeros(60, bool), np.ones(12, bool)]

# %% [markdown]
# ## Models
# The network reproduces scikit-learn's scores exactly: for the one-class SVM
# $o(x) = -\frac{1}{\gamma}\log(\mathrm{score\_samples}(x) / \sum_j \alpha_j)$.

# %%
gamma = 0.5 / X_train.var(0).sum()
ocsvm = OneClassSVM(gamma=gamma, nu=0.05).fit(X_train)
kde = KernelDensity(bandwidth=1.0).fit(X_train)

svm_explainer = neon.Explainer(ocsvm).fit(X_train)
kde_explainer = neon.Explainer(kde).fit(X_train)
expl_svm = svm_explainer.explain(X_test)
expl_kde = kde_explainer.explain(X_test)

o_sklearn = -np.log(ocsvm.score_samples(X_test) / ocsvm.dual_coef_.sum()) / gamma
print("max |o(x) - sklearn|:", np.abs(expl_svm.output - o_sklearn).max())
assert np.allclose(expl_svm.output, o_sklearn, rtol=1e-6)
print("one-class SVM flags", int((ocsvm.predict(X_test) == -1)[is_anomaly].sum()), "of 12 anomalies")

# %% [markdown]
# Both explanations are conservative: the relevance sums to the score (nothing is absorbed).

# %%
for name, e in [("OneClassSVM", expl_svm), ("KDE", expl_kde)]:
    print(f"{name:12s} max |sum R - score| = {np.abs(e.relevance.sum(1) - e.output).max():.2e}")

# %% [markdown]
# ## Does the explanation find the planted cause?
# For every anomaly, the feature with the largest relevance should be the one we pushed.

# %%
for name, e in [("OneClassSVM", expl_svm), ("KDE", expl_kde)]:
    found = e.relevance[is_anomaly].argmax(1)
    print(f"{name:12s} top feature = planted feature for {(found == planted).mean():.0%} of the anomalies")
    assert (found == planted).mean() >= 0.9

# %% [markdown]
# Three anomalies, explained by both models.

# %%
fig, axes = plt.subplots(3, 2, figsize=(11, 8))
for row, j in enumerate([60, 63, 67]):
    for col, (name, e) in enumerate([("OneClassSVM", expl_svm), ("KDE", expl_kde)]):
        neon.plot.features(e, index=j, feature_names=names, ax=axes[row, col])
        axes[row, col].set_title(f"{name}: anomaly in '{names[planted[j - 60]]}' (score {e.output[j]:.2f})")
plt.tight_layout()

# %% [markdown]
# Over the whole test set: normal points have small scores spread over all features; the
# anomalies stand out in the feature that was planted.

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
neon.plot.features(expl_svm[np.flatnonzero(~is_anomaly)], kind="summary", feature_names=names, ax=axes[0])
axes[0].set_title("normal points (OneClassSVM)")
neon.plot.features(expl_svm[np.flatnonzero(is_anomaly)], kind="summary", feature_names=names, ax=axes[1])
axes[1].set_title("planted anomalies (OneClassSVM)")
plt.tight_layout()
