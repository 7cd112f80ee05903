"""neon equals LXT 2.1 on the models LXT supports (torchvision ViT with its CP-LRP map, BERT and GPT-2 with its
AttnLRP maps), to 1e-6 relative in float64 (measured: 2e-8 and below).

LXT runs in a subprocess on its own package folder with transformers 4.52.4 (it does not import with
transformers 5, and it patches torch's classes for the whole process): see ``benchmarks/lxt_parity.py``. The folder
is installed from PyPI on first use; without it (no network) the test is skipped.
"""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

import pytest

pytest.importorskip("transformers")

_spec = importlib.util.spec_from_file_location("lxt_parity", Path(__file__).parents[1] / "benchmarks" / "lxt_parity.py")
assert _spec is not None and _spec.loader is not None
lxt_parity = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lxt_parity)


@pytest.mark.slow
def test_relevance_equals_lxt_in_float64():
    try:
        folder = lxt_parity.ensure_lxt()
    except (subprocess.CalledProcessError, OSError) as err:
        pytest.skip(f"LXT 2.1 could not be installed for the comparison: {err}")
    report = lxt_parity.neon_side(lxt_parity.run_lxt(folder))
    assert set(report) == {"vit", "bert", "gpt2"}
    for name, r in report.items():
        assert r["relative"] <= lxt_parity.TOLERANCE, (name, r)
