# %% [markdown]
# # 5. Data cleaning: find the Clever Hans, fix the data, check the model got better
#
# A *Clever Hans* predictor gives right answers for the wrong reasons: it has learned a spurious feature that
# happens to go with a class in the training data (Lapuschkin et al., "Unmasking Clever Hans predictors and
# assessing what machines really learn", Nat. Commun. 2019). Their **Spectral Relevance Analysis (SpRAy)**
# explains a whole class, groups the explanations with spectral clustering, and looks for a group that lights
# up something no other class looks at. `neon.cleaning.find_artifacts` does this for every class and flags the
# samples of such groups; `mask_features` and `drop_samples` clean them.
#
# We plant the artifact ourselves, so that we can check every step: a small white patch in the corner of 45% of
# the training eights of scikit-learn's digits.

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.datasets import load_breast_cancer, load_digits, load_wine
from sklearn.metrics import adjusted_rand_score
from sklearn.model_selection import train_test_split
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import OneClassSVM
from torch import nn

from neon.cleaning import drop_samples, find_artifacts, find_outlier_cells, mask_features

torch.set_num_threads(1)  # a small CNN: one thread is fastest (and much faster than two on a busy machine)
digits = load_digits()
X = (digits.images / 16.0).astype(np.float32)[:, None]  # (n, 1, 8, 8) in [0, 1]
X_train, X_test, y_train, y_test = train_test_split(X, digits.target, test_size=0.25, random_state=0,
                                                    stratify=digits.target)
rng = np.random.default_rng(0)
eights = np.flatnonzero(y_train == 8)
poisoned = np.sort(rng.choice(eights, int(round(0.45 * len(eights))), replace=False))
X_poisoned = X_train.copy()
X_poisoned[poisoned, 0, :2, :2] = 1.0  # the artifact: a 2x2 white patch, top left; the test set stays clean
print(f"{len(poisoned)} of {len(eights)} training eights carry the patch")

# %% [markdown]
# ## Two small CNNs: one trained on clean data, one on the poisoned data

# %%
def train(X, y, seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(256, 32), nn.ReLU(), nn.Linear(32, 10))
    xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(15):
        for idx in torch.randperm(len(xt), generator=gen).split(64):
            opt.zero_grad()
            nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
            opt.step()
    return model.eval()


def predict(model, X):
    with torch.no_grad():
        return model(torch.from_numpy(X)).argmax(1).numpy()


X_test_patched = X_test[y_test != 8].copy()
X_test_patched[:, 0, :2, :2] = 1.0  # the other classes' test images with the patch pasted in


def accuracy(model):
    """Clean test accuracy, on the eights, and the share of patched non-eights the model calls 8."""
    pred = predict(model, X_test)
    return (pred == y_test).mean(), (pred[y_test == 8] == 8).mean(), (predict(model, X_test_patched) == 8).mean()


clean_model = train(X_train, y_train)
model = train(X_poisoned, y_train)
for name, m in [("clean data", clean_model), ("poisoned data", model)]:
    acc, acc8, to8 = accuracy(m)
    print(f"trained on {name:13s}: clean test accuracy {acc:.3f}, on the eights {acc8:.3f}; "
          f"patched non-eights called 8: {to8:.3f}")

# %% [markdown]
# The poisoned model has learned the shortcut: paste the patch into a 0, a 3 or a 7 and it often answers 8
# (the clean-data model hardly ever does). Its test accuracy barely shows it.
#
# ## SpRAy on every class
# `find_artifacts` explains every training sample for its label (LRP-ε by default: a black pixel gets no
# relevance, so a patch stands out), runs SpRAy
# per class, and scores each cluster by the share of its relevance on pixels that the *other* classes hardly
# use (docs/theory.md §6). Clusters scoring at least `min_score=0.2` are suspicious.

# %%
report = find_artifacts(model, torch.from_numpy(X_poisoned), torch.from_numpy(y_train))
print(report)
report.to_frame().head(6)

# %% [markdown]
# The eigenvalue spectrum of class 8 has two eigenvalues near zero: two groups of explanations that hardly
# connect. The prototypes (mean explanations) show what each group relies on.

# %%
fig = report.plot(limit=2)

# %% [markdown]
# How good is the flag? We know which samples were poisoned.

# %%
hits = np.isin(report.flagged, poisoned).sum()
print(f"flagged {len(report.flagged)}: precision {hits / len(report.flagged):.2f}, "
      f"recall {hits / len(poisoned):.2f}")
print("the suspicious clusters rely on pixels", sorted({f for c in report.suspicious for f in c.features}))

# %% [markdown]
# ## Fix the data, retrain
# Mask the pixels the suspicious clusters rely on (with the median of the unflagged images: the background), or
# drop the flagged samples.

# %%
X_masked = mask_features(X_poisoned, report)
X_kept, y_kept = drop_samples(X_poisoned, y_train, report)
for name, (Xc, yc) in {"masked": (X_masked, y_train), "dropped": (X_kept, y_kept)}.items():
    acc, acc8, to8 = accuracy(train(Xc, yc))
    print(f"retrained on {name:8s} data: clean test accuracy {acc:.3f}, on the eights {acc8:.3f}; "
          f"patched non-eights called 8: {to8:.3f}")

# %% [markdown]
# Both retrained models have lost the shortcut (patched images are called 8 no more often than by the clean-data
# model) and their test accuracy is within a point of the model trained on clean data. The report is also one
# self-contained page (`report.to_html("report.html")`) and a ViRelAy project (`report.to_virelay("folder")`).
#
# ## A clustering that hinges on an artifact
# Explanations also catch a Clever Hans without labels. A k-means on the wine data, with a marker column that is
# 5 on a random 15% of the wines: the clustering no longer finds the cultivars. `find_artifacts` groups the
# samples by their assigned cluster; `score="lift"` (low-dimensional tabular data, where every cluster uses every
# column) asks for features a cluster relies on four times more than the others.

# %%
wine = load_wine()
Xw = StandardScaler().fit_transform(wine.data)
marked = np.sort(np.random.default_rng(0).choice(len(Xw), 27, replace=False))
Xw = np.hstack([Xw, np.zeros((len(Xw), 1))])
Xw[marked, -1] = 5.0
kmeans = KMeans(3, n_init=10, random_state=0).fit(Xw)
print(f"adjusted Rand index to the cultivars: {adjusted_rand_score(wine.target, kmeans.labels_):.2f}")
wine_report = find_artifacts(kmeans, Xw, score="lift", feature_names=list(wine.feature_names) + ["marker"])
print(wine_report)
print("flagged = marked:", np.array_equal(wine_report.flagged, marked))
wine_report.to_frame()[["class", "cluster", "size", "score", "suspicious", "features"]]

# %% [markdown]
# ## Corrupted cells in a table
# A one-class model's outlier score, explained by NEON, splits over the cells of a record. We corrupt one cell in
# 2% of the breast-cancer records (an extreme value or a value typed into the wrong column) and ask which cell
# makes each record anomalous. The records are the model's own training points, so the **leave-one-out** score
# is explained: each record's own kernel term is left out, nothing is absorbed.

# %%
data = load_breast_cancer()
Xb, yb = data.data, data.target
Xb_train, Xb_test, yb_train, yb_test = train_test_split(Xb, yb, test_size=0.3, random_state=0, stratify=yb)
rng = np.random.default_rng(0)
rows = np.sort(rng.choice(len(Xb_train), int(np.ceil(0.02 * len(Xb_train))), replace=False))
cols = rng.choice(Xb.shape[1], len(rows), replace=False)
X_bad = Xb_train.copy()
big = int(np.argmax(Xb_train.mean(0)))
for i, (r, c) in enumerate(zip(rows, cols)):
    X_bad[r, c] = Xb_train[:, c].mean() + 20 * Xb_train[:, c].std() if i % 2 == 0 else Xb_train[r, big]

detector = make_pipeline(StandardScaler(), OneClassSVM(gamma=0.03, nu=0.05)).fit(X_bad)
cells = find_outlier_cells(detector, X_bad)
found = cells.most_anomalous(fraction=0.02)
print("corrupted records found:", np.isin(found, rows).mean())
print("corrupted cell ranked first:", np.mean(cells.top(1)[rows, 0] == cols))
cells.to_frame(found, k=2).assign(feature=[data.feature_names[c] for c in cells.top(1)[found, 0]])

# %% [markdown]
# Repair the top cell of those records (the column median) and retrain a downstream classifier.

# %%
X_repaired = cells.repair(X_bad, found)
for name, Xc in [("clean", Xb_train), ("corrupted", X_bad), ("repaired", X_repaired)]:
    held_out = GaussianNB().fit(Xc, yb_train).score(Xb_test, yb_test)
    print(f"GaussianNB trained on {name:9s} data: held-out accuracy {held_out:.3f}")

# %%
fig, ax = plt.subplots(figsize=(5, 3))
share = cells.relevance[found] / cells.scores[found, None]
ax.imshow(share, cmap="Reds", aspect="auto")
ax.set_xlabel("cell (feature)")
ax.set_ylabel("flagged record")
ax.set_title("share of each record's outlier score per cell")
plt.tight_layout()
