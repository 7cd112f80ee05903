"""The README's set-up commands and ten-line example stay true."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _ten_lines(text: str) -> str:
    return re.search(r"## Ten lines\n\n```python\n(.*?)```", text, re.S).group(1)


def test_readme_and_docs_index_show_the_same_ten_lines() -> None:
    assert _ten_lines((ROOT / "docs" / "index.md").read_text()) == _ten_lines(README)


def test_ten_line_example_runs_and_explains_the_clusters() -> None:
    code = _ten_lines(README)
    assert len([line for line in code.splitlines() if line.strip()]) <= 12
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 - the README example itself
    expl, model, X = scope["expl"], scope["model"], scope["X"]
    assert expl.relevance.shape == X.shape == (178, 13)
    np.testing.assert_array_equal(expl.target, model.predict(X))
    np.testing.assert_allclose(expl.relevance.sum(1), expl.output, rtol=1e-8)


def test_ci_runs_the_readme_test_command() -> None:
    commands = re.findall(r"```bash\n(.*?)\n```", README, re.S)
    assert len(commands) == 2, "the README has exactly two set-up commands"
    assert "examples/demo.py" in commands[0]
    assert commands[1] in (ROOT / ".ci" / "run").read_text()
