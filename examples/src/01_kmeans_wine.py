# %% [markdown]
# # 1. Explaining k-means clusters of wines (NEON)
#
# k-means assigns every wine to its nearest centroid, but *why* does a wine belong to its
# cluster? NEON (Kauffmann et al., "From clustering to cluster explanations via neural networks",
# IEEE TNNLS 2022) rewrites the model as an exactly equivalent network whose output for cluster
# `c` is the cluster logit
#
# $$f_c(x) = \min_{k \neq c} \big(\|x - \mu_k\|^2 - \|x - \mu_c\|^2\big),$$
#
# positive exactly for the assigned cluster, and explains it with LRP: soft-min pooling over the
# competitors `k`, then the midpoint rule on each linear unit. The relevance of feature `i` sums
# to the logit: $\sum_i R_i = f_c(x)$.

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.datasets import load_wine
from sklearn.preprocessing import StandardScaler

import neon
import neon.plot

# %% [markdown]
# ## Data and model
# 178 wines from three cultivars, 13 chemical measurements, standardised so that no feature
# dominates the distances by its unit alone.

# %%
wine = load_wine(as_frame=True)
X = pd.DataFrame(StandardScaler().fit_transform(wine.data), columns=wine.data.columns)
km = KMeans(n_clusters=3, n_init=10, random_state=0).fit(X)
pd.crosstab(km.labels_, wine.target, rownames=["cluster"], colnames=["cultivar"])

# %% [markdown]
# ## Explaining every wine
# `neon.Explainer` neuralizes the model once and fits the data-dependent soft-min stiffness
# (`beta = 1 / mean f_c`) on the data; then every wine's assignment is explained.

# %%
explainer = neon.Explainer(km).fit(X)
expl = explainer.explain(X)
print(expl)
print(neon.neuralize(km).summary(explainer.rules_))

# %% [markdown]
# The explanation is exactly conservative: the relevance of each wine sums to its cluster logit,
# which we recompute here from the centroids.

# %%
d2 = ((X.to_numpy()[:, None, :] - km.cluster_centers_[None]) ** 2).sum(-1)
own = d2[np.arange(len(X)), km.labels_]
others = np.where(np.arange(3)[None] == km.labels_[:, None], np.inf, d2)
logit = others.min(1) - own
print("max |sum R - f_c(x)|:", np.abs(expl.relevance.sum(1) - logit).max())
assert np.allclose(expl.relevance.sum(1), logit)
assert np.abs(expl.absorbed).max() < 1e-8

# %% [markdown]
# ## What makes each cluster
# Left: the mean explanation of the wines of each cluster. Right: where the centroid lies
# (standardised). A feature far from the mean is not necessarily what *separates* a cluster
# from its nearest competitor: the relevance shows which features do.

# %%
axes = neon.plot.clusters(expl, km)
plt.tight_layout()

# %% [markdown]
# One summary per cluster: the mean |R| per feature (bars) and every wine's relevance (dots,
# coloured by the feature's value).

# %%
fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
for k, ax in enumerate(axes):
    members = np.flatnonzero(km.labels_ == k)
    neon.plot.features(expl[members], kind="summary", max_features=6, ax=ax)
    ax.set_title(f"cluster {k} ({len(members)} wines)")
plt.tight_layout()

# %% [markdown]
# ## One wine
# The wine closest to the border of its cluster (smallest logit) and its explanation.

# %%
i = int(np.argmin(logit))
ax = neon.plot.features(expl, index=i)

# %% [markdown]
# ## Explaining a cluster a wine does *not* belong to
# Any cluster can be explained: for a foreign cluster the logit is negative, and the relevance
# shows which features speak against the membership.

# %%
other = (km.labels_[i] + 1) % 3
expl_other = explainer.explain(X.iloc[[i]], target=other)
print(f"logit of cluster {other}: {float(expl_other.output.iloc[0]):.3f}")  # a DataFrame in, a Series out
ax = neon.plot.features(expl_other)
