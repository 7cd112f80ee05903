"""Documentation: the generated API reference is current, the site builds strictly, pictures are tracked."""

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

_spec = importlib.util.spec_from_file_location("gen_api", DOCS / "gen_api.py")
gen_api = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gen_api)


def test_api_reference_is_up_to_date():
    assert (DOCS / "api.md").read_text() == gen_api.render(), "docs/api.md is stale: run python docs/gen_api.py"


def test_api_reference_covers_the_public_api():
    import neon
    import neon.plot

    text = (DOCS / "api.md").read_text()
    assert "### `neon.composites.Composite`" in text
    for name in ["explain", "Explainer", "Explanation", "neuralize", "Network"]:
        assert f"### `neon.{name}`" in text
    for name in neon.plot.__all__:
        if callable(getattr(neon.plot, name)):
            assert f"### `neon.plot.{name}`" in text
    for name in neon.rules.__all__:
        assert f"### `neon.rules.{name}`" in text


def _sample(a: int, b: str = "x") -> int:
    """Add things: uses :class:`neon.Network` and ``code``.

    Parameters
    ----------
    a : int
        The first
        operand.
    b
        Unused.

    Returns
    -------
    int
        ``a`` again.

    Examples
    --------
    >>> _sample(1)
    1
    """
    return a


def test_numpydoc_sections_become_markdown():
    md = "\n".join(gen_api.render_object("m._sample", _sample))
    assert "```python\nm._sample(a: int, b: str = 'x') -> int\n```" in md
    assert "Add things: uses `neon.Network` and `code`." in md
    assert "**Parameters**\n\n- `a` (*int*): The first operand.\n- `b`: Unused." in md
    assert "**Returns**\n\n- `int`: `a` again." in md
    assert "**Examples**\n\n```python\n>>> _sample(1)\n1\n```" in md


def test_rst_simple_tables_become_markdown_tables():
    lines = ["=====  ============", "name   meaning", "=====  ============", "``a``  first one",
             ":func:`bb`  overflowing cell", "=====  ============"]
    assert gen_api._prose(lines) == ["", "| name | meaning |", "|---|---|", "| `a` | first one |",
                                     "| `bb` | overflowing cell |", ""]


def test_licence_page_states_the_package_licence_and_patents():
    licence = re.search(r'^license\s*=\s*\{\s*text\s*=\s*"([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M)
    text = (DOCS / "license.md").read_text()
    assert licence is not None and licence.group(1) == "BSD-3-Clause"
    assert "BSD 3-Clause" in text and "patent" in text.lower()


def test_pictures_exist_and_are_not_git_ignored():
    pictures = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", "".join(p.read_text() for p in DOCS.glob("*.md")))
    assert "img/demo.png" in pictures
    for rel in pictures:
        path = DOCS / rel
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        if shutil.which("git") and (ROOT / ".git").exists():
            res = subprocess.run(["git", "check-ignore", "-q", str(path)], cwd=ROOT)
            assert res.returncode == 1, f"{path} is ignored by .gitignore"


@pytest.mark.slow
def test_mkdocs_build_strict(tmp_path):
    res = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-f", str(ROOT / "mkdocs.yml"),
                          "-d", str(tmp_path / "site")], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    assert "neon.Explainer" in api and "<table>" in api
    assert (tmp_path / "site" / "img" / "demo.png").exists()
    assert not (tmp_path / "site" / "gen_api.py").exists()
