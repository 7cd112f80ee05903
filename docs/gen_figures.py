"""Draw the pictures of the documentation into ``docs/img/`` (run after a change to the plots).

    python docs/gen_figures.py

``ten_lines.png`` is what the ten-line example of the README and ``docs/index.md`` draws (the code is
taken from the README and run as it is); ``rules.png`` the rule comparison of ``docs/choosing-rules.md``
(a small CNN trained on scikit-learn's digits).
"""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
IMG = ROOT / "docs" / "img"


def ten_lines_code() -> str:
    """The ten-line example, as the README shows it."""
    match = re.search(r"## Ten lines\n\n```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert match is not None, "README.md has no '## Ten lines' python block"
    return match.group(1)


def ten_lines() -> None:
    exec(compile(ten_lines_code(), "README.md", "exec"), {})  # noqa: S102 - the README example itself
    fig = plt.gcf()
    fig.set_size_inches(7, 4.5)
    fig.tight_layout()
    fig.savefig(IMG / "ten_lines.png", dpi=90)
    plt.close("all")


def rules() -> None:
    import numpy as np
    import torch
    from sklearn.datasets import load_digits
    from torch import nn

    import neon.plot

    torch.manual_seed(0)
    digits = load_digits()
    X = torch.from_numpy((digits.images / 16.0).astype(np.float32)[:, None])
    y = torch.from_numpy(digits.target)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
                          nn.AvgPool2d(2), nn.Flatten(), nn.Linear(16 * 16, 32), nn.ReLU(), nn.Linear(32, 10))
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    for _ in range(10):
        for idx in torch.randperm(len(X)).split(128):
            opt.zero_grad()
            nn.functional.cross_entropy(model(X[idx]), y[idx]).backward()
            opt.step()
    model.eval()
    fig, axes = plt.subplots(3, 5, figsize=(10, 6.6))
    for row, i in enumerate([0, 7, 42]):
        neon.plot.rules_comparison(model, X[i:i + 1], X_fit=X, output="log-odds", ax=axes[row])
    fig.tight_layout()
    fig.savefig(IMG / "rules.png", dpi=80)
    plt.close("all")


if __name__ == "__main__":
    IMG.mkdir(exist_ok=True)
    ten_lines()
    rules()
