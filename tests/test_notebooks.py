"""The example notebooks: built from their sources, stored without outputs, and run fresh offline."""

import sys
from pathlib import Path

import nbformat
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
sys.path.insert(0, str(EXAMPLES))
import build_notebooks  # noqa: E402

sys.path.remove(str(EXAMPLES))

NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))


def test_every_notebook_is_built_from_its_source():
    assert len(NOTEBOOKS) >= 4
    assert {p.stem for p in NOTEBOOKS} == {p.stem for p in (EXAMPLES / "src").glob("*.py")}
    assert build_notebooks.main(["--check"]) == 0, "run python examples/build_notebooks.py"


def test_cells_follow_the_source_markers():
    cells = build_notebooks.cells_of("# %% [markdown]\n# # Title\n# text\n\n# %%\nx = 1\n\n# %%\ny = 2\n")
    assert [c.cell_type for c in cells] == ["markdown", "code", "code"]
    assert cells[0].source == "# Title\ntext" and cells[1].source == "x = 1" and cells[2].source == "y = 2"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_stored_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.outputs == [] and c.execution_count is None for c in code)


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path):
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    # The kernel runs this interpreter (the project's environment), in a scratch directory.
    # jupyter_client starts the "python3" kernel with sys.executable, i.e. this environment.
    client = NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert images, "the notebook draws its explanations"
