"""Build the example notebooks from their reviewable sources in ``examples/src/*.py``.

The sources use the "percent" cell format: ``# %%`` starts a code cell, ``# %% [markdown]`` a
markdown cell whose lines are ``# ``-prefixed comments. Notebooks are written without outputs;
``tests/test_notebooks.py`` executes them fresh and checks that they match their sources.

    python examples/build_notebooks.py          # write examples/*.ipynb
    python examples/build_notebooks.py --check  # exit 1 if a notebook is out of date
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
SOURCES = HERE / "src"


def cells_of(text: str) -> list[nbformat.NotebookNode]:
    """Split a percent-format source into notebook cells."""
    cells: list[nbformat.NotebookNode] = []
    kind, lines = None, []

    def flush() -> None:
        body = "\n".join(lines).strip("\n")
        if kind is None or not body:
            return
        if kind == "markdown":
            body = "\n".join(line[2:] if line.startswith("# ") else line.lstrip("#") for line in body.splitlines())
            cells.append(nbformat.v4.new_markdown_cell(body))
        else:
            cells.append(nbformat.v4.new_code_cell(body))

    for line in text.splitlines():
        if line.startswith("# %%"):
            flush()
            kind, lines = ("markdown" if "[markdown]" in line else "code"), []
        elif kind is not None:
            lines.append(line)
    flush()
    return cells


def notebook_of(source: Path) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = cells_of(source.read_text())
    # Fixed ids keep rebuilt notebooks byte-identical (nbformat would draw random ones).
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"{source.stem[:40]}-{i}"
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                   "language_info": {"name": "python"}}
    return nb


def render(source: Path) -> str:
    return nbformat.writes(notebook_of(source)) + "\n"


def targets() -> dict[Path, Path]:
    """``{source: notebook}`` for every source."""
    return {src: HERE / f"{src.stem}.ipynb" for src in sorted(SOURCES.glob("*.py"))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that the notebooks are up to date")
    args = parser.parse_args(argv)
    stale = []
    for src, nb in targets().items():
        text = render(src)
        if args.check:
            if not nb.exists() or nb.read_text() != text:
                stale.append(nb.name)
        else:
            nb.write_text(text)
    if stale:
        print("out of date (run python examples/build_notebooks.py): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
