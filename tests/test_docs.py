"""Documentation: the site builds strictly and offline from the docstrings and notebooks; pictures are tracked."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def test_licence_page_states_the_package_licence_and_patents():
    licence = re.search(r'^license\s*=\s*\{\s*text\s*=\s*"([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M)
    text = (DOCS / "license.md").read_text()
    assert licence is not None and licence.group(1) == "BSD-3-Clause"
    assert "BSD 3-Clause" in text and "patent" in text.lower()


def test_pictures_exist_and_are_not_git_ignored():
    pictures = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", "".join(p.read_text() for p in DOCS.glob("*.md")))
    assert "img/ten_lines.png" in pictures
    for rel in pictures:
        path = DOCS / rel
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        if shutil.which("git") and (ROOT / ".git").exists():
            res = subprocess.run(["git", "check-ignore", "-q", str(path)], cwd=ROOT)
            assert res.returncode == 1, f"{path} is ignored by .gitignore"


def _build_site(out: Path) -> Path:
    res = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-f", str(ROOT / "mkdocs.yml"),
                          "-d", str(out)], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-3000:]
    return out


@pytest.mark.slow
def test_the_site_builds_strictly_offline_from_docstrings_and_executed_notebooks(tmp_path: Path) -> None:
    """One build (it executes the example notebooks), every promise of the site checked on it."""
    import neon
    import neon.plot

    site = _build_site(tmp_path / "site")

    # the API reference is generated from the numpydoc docstrings
    api = (site / "api" / "index.html").read_text()
    for name in ["explain", "Explainer", "Explanation", "neuralize", "Network", "composites.Composite",
                 "composites.EpsilonGammaBox", "rules.defaults.default_for", "tuning.tune"]:
        assert f'id="neon.{name}"' in api, name
    for name in neon.rules.__all__:
        if name not in ("Context", "Rule", "vjp"):
            assert f'id="neon.rules.{name}"' in api, name
    for name in neon.layers.__all__:
        assert f'id="neon.layers.{name}"' in api, name
    for name in neon.plot.__all__:
        if callable(getattr(neon.plot, name)):
            assert f'id="neon.plot.{name}"' in api, name
    assert "Explain a model with LRP: neuralize once" in api and "<table>" in api

    # formulas render as math with the site's own KaTeX; no page loads anything from the network
    theory = (site / "theory" / "index.html").read_text()
    assert theory.count('class="arithmatex"') > 50
    assert (site / "javascripts" / "katex" / "katex.min.js").stat().st_size > 100_000
    assert list((site / "javascripts" / "katex" / "fonts").glob("*.woff2"))
    resources = set()
    for page in site.rglob("*.html"):
        resources.update(re.findall(r'<(?:script|link|img)[^>]+(?:src|href)="(https?://[^"]+)"', page.read_text()))
    assert not resources, f"the site loads resources from the network: {sorted(resources)[:5]}"

    # the example notebooks are pages, executed
    pages = sorted((site / "examples").glob("*/index.html"))
    assert {p.parent.name for p in pages} == {p.stem for p in (ROOT / "examples").glob("*.ipynb")}
    for page in pages:
        assert "data:image/png;base64," in page.read_text(), f"{page.parent.name} shows no executed figure"
    assert (site / "img" / "ten_lines.png").exists()
    assert not (site / "gen_figures.py").exists()
