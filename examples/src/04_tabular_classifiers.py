# %% [markdown]
# # 4. Three classifiers on breast cancer data, explained side by side
#
# A logistic regression, an RBF support vector machine and a ReLU MLP are trained on scikit-learn's
# breast cancer data (30 features of cell nuclei, malignant vs benign). neon rewrites each as a
# network and explains it with LRP:
#
# - **logistic regression**: one affine layer under the log-odds top; by default explained against the
#   mean $\bar x$ of the fit data, so the relevance of feature $i$ is $w_i (x_i - \bar x_i)$ (SHAP's linear
#   values) and adds up to the log-odds minus their value at the mean, nothing absorbed;
# - **RBF SVC**: the NEON construction of Bley, Kauffmann, Krug, Müller and Montavon ("Fast and
#   accurate explanations of distance-based classifiers", 2025): the decision function as a
#   log-ratio of kernel sums, explained by a mix of the midpoint rule and gradient × input;
# - **MLP**: dense ReLU layers under the log-odds top, $z^\mathcal{B}$ on the input, LRP-ε above.

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

import neon
import neon.plot

# %%
data = load_breast_cancer(as_frame=True)
y = data.target.map(dict(enumerate(data.target_names)))  # class labels 'malignant' / 'benign'
X_raw_train, X_raw_test, y_train, y_test = train_test_split(data.data, y, test_size=0.3, random_state=0, stratify=y)
scaler = StandardScaler().fit(X_raw_train)
X_train = pd.DataFrame(scaler.transform(X_raw_train), columns=data.feature_names)
X_test = pd.DataFrame(scaler.transform(X_raw_test), columns=data.feature_names)

models = {
    "logistic regression": LogisticRegression(max_iter=2000),
    "RBF SVC": SVC(kernel="rbf", gamma="scale"),
    "MLP": MLPClassifier(hidden_layer_sizes=(32, 16), max_iter=600, random_state=0),
}
for name, model in models.items():
    model.fit(X_train, y_train)
    print(f"{name:20s} test accuracy {model.score(X_test, y_test):.3f}")

# %% [markdown]
# ## Explanations
# Each explainer is fitted on the training data (data-dependent rule parameters such as the
# $z^\mathcal{B}$ bounds are fixed there) and explains the predicted class of every test sample.

# %%
explanations = {name: neon.Explainer(m).fit(X_train).explain(X_test) for name, m in models.items()}
for name, e in explanations.items():
    print(f"{name:20s} {e.output_kind:9s} mean |output| {np.abs(e.output).mean():7.3f}   "
          f"mean |absorbed| {np.abs(e.absorbed).mean():7.3f}")

# %% [markdown]
# The networks are exact: their outputs reproduce scikit-learn's log-odds and decision values.

# %%
lr, svc, mlp = models.values()
# binary log-odds of the predicted class: |decision function| (probabilities saturate, logits do not); the
# logistic regression's explained value is that minus its value at the mean of the training data (`baseline`)
e_lr = explanations["logistic regression"]
assert np.allclose(e_lr.output + e_lr.baseline, np.abs(lr.decision_function(X_test)))
assert np.array_equal(svc.classes_[explanations["RBF SVC"].target], svc.predict(X_test))
assert np.array_equal(mlp.classes_[explanations["MLP"].target], mlp.predict(X_test))
a = X_test.to_numpy()
for W, b in zip(mlp.coefs_[:-1], mlp.intercepts_[:-1]):
    a = np.maximum(a @ W + b, 0)
mlp_logit = (a @ mlp.coefs_[-1] + mlp.intercepts_[-1])[:, 0]  # the input of the sigmoid
assert np.allclose(explanations["MLP"].output, np.abs(mlp_logit))

# %% [markdown]
# For the logistic regression against the mean of the training data (its default), the relevance is exactly
# $\pm w_i (x_i - \bar x_i)$ (the sign of the explained class): SHAP's linear values. `reference=None` would
# explain the log-odds themselves, $R_i = \pm w_i x_i$, with the intercept absorbed.

# %%
e_ref = explanations["logistic regression"]
sign = np.where(e_ref.target == 1, 1.0, -1.0)[:, None]  # class index 1 (lr.classes_[1]) is explained by +f
shap_linear = sign * lr.coef_[0] * (X_test.to_numpy() - X_train.to_numpy().mean(0))
print("max |R - w (x - mean)|:", np.abs(e_ref.relevance - shap_linear).max())
assert np.allclose(e_ref.relevance, shap_linear)

# %% [markdown]
# ## One patient, three models
# The same test sample explained by each model (top 10 features).

# %%
i = 0
fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
for ax, (name, e) in zip(axes, explanations.items()):
    neon.plot.features(e, index=i, max_features=10, ax=ax)
    ax.set_title(f"{name}\n{ax.get_title()}", fontsize=9)
plt.tight_layout()

# %% [markdown]
# ## Over the whole test set
# Mean |R| per feature and every sample's relevance. Do the models rely on the same features?

# %%
fig, axes = plt.subplots(1, 3, figsize=(18, 5))
for ax, (name, e) in zip(axes, explanations.items()):
    neon.plot.features(e, kind="summary", max_features=10, ax=ax)
    ax.set_title(name)
plt.tight_layout()

# %%
importance = pd.DataFrame({name: np.abs(e.relevance).mean(0) for name, e in explanations.items()},
                          index=data.feature_names)
print("rank correlation of the mean |R| between models:")
importance.corr(method="spearman").round(2)
