# %% [markdown]
# # 3. A CNN on digits: which LRP rule, and log-odds vs logit
#
# The figure of the LRP overview (Montavon, Binder, Lapuschkin, Samek, Müller, "Layer-wise
# relevance propagation: an overview", 2019) explains one image with four rule choices:
#
# - **LRP-0** $R_j = \sum_k \frac{a_j w_{jk}}{\sum_{0,j} a_j w_{jk}} R_k$ on every layer: gradient × input, noisy;
# - **LRP-ε** adds $\epsilon$ to the denominator: weak, contradictory evidence is absorbed, the map is sparser;
# - **LRP-γ** favours positive contributions, $w_{jk} + \gamma w_{jk}^+$: more stable, but less selective;
# - the **composite**: $z^\mathcal{B}$ on the pixels, γ on the lower layers, ε in the middle, LRP-0 on top.
#
# We train a small CNN on scikit-learn's 8×8 digits (seconds on a CPU) and draw that figure.

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

import neon
import neon.plot

torch.manual_seed(0)

# %%
digits = load_digits()
X = (digits.images / 16.0).astype(np.float32)[:, None]  # (n, 1, 8, 8) in [0, 1]
y = digits.target
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)

model = nn.Sequential(
    nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(),
    nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
    nn.Flatten(), nn.Linear(16 * 4 * 4, 32), nn.ReLU(), nn.Linear(32, 10),
)
xt, yt = torch.from_numpy(X_train), torch.from_numpy(y_train)
opt = torch.optim.Adam(model.parameters(), lr=5e-3)
for _epoch in range(10):
    for idx in torch.randperm(len(xt)).split(128):
        opt.zero_grad()
        nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
        opt.step()
model.eval()
with torch.no_grad():
    accuracy = (model(torch.from_numpy(X_test)).argmax(1).numpy() == y_test).mean()
print(f"test accuracy {accuracy:.3f}")

# %% [markdown]
# ## The rule comparison
# The composite's $z^\mathcal{B}$ rule needs the pixel bounds; they are fitted on the training
# images (0 and 1).

# %%
x = torch.from_numpy(X_test[:1])
axes = neon.plot.rules_comparison(model, x, X_fit=torch.from_numpy(X_train))
plt.tight_layout()

# %% [markdown]
# Uniform LRP-0 equals gradient × input on a ReLU network; we check it with autograd.

# %%
expl0 = neon.explain(model, x, rules="lrp0")
xg = x.clone().requires_grad_(True)
out = model(xg)
out[0, out.argmax()].backward()
grad_x_input = (xg * xg.grad).detach()
print("max |LRP-0 - gradient x input|:", float((expl0.relevance - grad_x_input).abs().max()))
assert torch.allclose(expl0.relevance, grad_x_input, atol=1e-5)

# %% [markdown]
# The same comparison for more digits, with the black-centred "coldhot" colormap.

# %%
rules = neon.plot.default_comparison_rules()
fig, axes = plt.subplots(4, 5, figsize=(11, 9))
for row, i in enumerate([1, 2, 3, 4]):
    neon.plot.rules_comparison(model, torch.from_numpy(X_test[i:i + 1]), X_fit=torch.from_numpy(X_train),
                               cmap="coldhot", ax=axes[row])
plt.tight_layout()

# %% [markdown]
# ## Log-odds vs logit
# A logit $z_c$ also contains evidence that is shared by all classes (a bright stroke raises
# every logit). The log-odds $\eta_c = \log \frac{P_c}{1 - P_c} = -\log \sum_{c' \neq c} e^{-(z_c - z_{c'})}$
# only keeps what speaks for $c$ *against the other classes*. neon writes it as an exact two-layer
# top (a linear layer of differences $z_c - z_{c'}$, then soft-min pooling) and explains it with
# the same rules.

# %%
explainer_logit = neon.Explainer(model, rules="overview", output="logit").fit(torch.from_numpy(X_train))
explainer_odds = neon.Explainer(model, rules="overview", output="log-odds").fit(torch.from_numpy(X_train))
batch = torch.from_numpy(X_test[:6])
e_logit = explainer_logit.explain(batch)
e_odds = explainer_odds.explain(batch)

with torch.no_grad():
    p = torch.softmax(model(batch).double(), 1)
c = p.argmax(1)
log_odds = torch.log(p[torch.arange(6), c] / (1 - p[torch.arange(6), c]))
print("max |log-odds - log(P/(1-P))|:", float((e_odds.output.double() - log_odds).abs().max()))
assert torch.allclose(e_odds.output.double(), log_odds, rtol=1e-3, atol=1e-3)

# %%
fig, axes = plt.subplots(2, 6, figsize=(13, 5))
neon.plot.heatmap(e_logit, ax=axes[0])
neon.plot.heatmap(e_odds, ax=axes[1])
axes[0, 0].set_ylabel("logit")
axes[1, 0].set_ylabel("log-odds")
plt.tight_layout()
