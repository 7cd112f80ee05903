"""The speed scripts of issue 13 run end to end at tiny sizes (their numbers are checked by people, not here).

``gpu_check.py --smoke`` runs every GPU check on the CPU, so that a session with a GPU can run the script
once and get its table; ``scale.py`` and ``bench_kmeans.py`` run in this process at a few thousand rows.
No timing is asserted: only that every row of each table is there, finite, and that the explanations the
scripts time agree with the model (targets equal the model's own prediction).
"""

from __future__ import annotations

import re
import runpy
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def run_script(monkeypatch, capsys):
    """Run ``benchmarks/<name>`` as ``__main__`` with ``args`` in this process; return what it printed."""
    threads = torch.get_num_threads()
    monkeypatch.syspath_prepend(str(BENCHMARKS))

    def run(name: str, *args: str) -> str:
        monkeypatch.setattr(sys, "argv", [name, *args])
        try:
            runpy.run_path(str(BENCHMARKS / name), run_name="__main__")
        finally:
            torch.set_num_threads(threads)  # the scripts set the thread count of their run
        return capsys.readouterr().out

    return run


def table_rows(out: str) -> dict[str, str]:
    """``{check: rest of line}`` for the lines below the table's rule of dashes."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if set(line) == {"-"})
    rows = {}
    for line in lines[start + 1:]:
        if not line.strip():
            break
        m = re.match(r"(.*?)\s{2,}(\S.*)$", line)
        assert m, line
        rows[m.group(1).strip()] = m.group(2)
    return rows


def test_gpu_check_smoke_runs_every_check_on_the_cpu(run_script):
    out = run_script("gpu_check.py", "--smoke", "--models", "mobilenet_v2")
    assert "targets == cdist argmin on 100.0000%" in out
    rows = table_rows(out)
    expected = ["k-means 5,000x50 K=4 explain / cdist+argmin (one chunk)",
                "mobilenet_v2 epsilon / gradient, time", "mobilenet_v2 EpsilonGammaBox / gradient, time",
                "mobilenet_v2 epsilon bfloat16: min cosine to float32",
                "mobilenet_v2 EpsilonGammaBox float16: min cosine to float32"]
    for check in expected:
        assert check in rows, (check, list(rows))
    for check, rest in rows.items():
        value = float(re.match(r"[-\d.]+", rest).group())
        assert value == value and value < float("inf"), (check, rest)
        if "cosine" in check:
            assert -1.0 - 1e-9 <= value <= 1.0 + 1e-9
        else:
            assert value > 0
    # bfloat16 keeps the sign pattern of the relevance (its largest logit, ~1e-10, is within bfloat16's range)
    assert float(rows["mobilenet_v2 EpsilonGammaBox bfloat16: min cosine to float32"].split()[0]) > 0.9


def test_scale_in_process(run_script):
    out = run_script("scale.py", "--n", "3000", "--k", "3", "--chunks", "1000", "--in-process", "--repeat", "1",
                     "--threads", "1")
    rows = table_rows(out)
    assert set(rows) == {"KMeans.predict", "neon, chunks of 1,000", "neon on LocalCluster(2), chunks of 1,000"}
    seconds, rows_per_s, ratio, peak, _ = rows["neon, chunks of 1,000"].split()
    assert float(seconds) > 0 and float(rows_per_s.replace(",", "")) > 0 and float(peak) > 0
    # seconds are printed to 4 significant digits: rows/s and the ratio agree with them to 0.05% each
    assert abs(3000 / float(seconds) - float(rows_per_s.replace(",", ""))) <= 0.001 * 3000 / float(seconds) + 1
    ratio_expected = float(seconds) / float(rows["KMeans.predict"].split()[0])
    assert ratio.endswith("x") and abs(float(ratio[:-1]) - ratio_expected) <= 0.002 * ratio_expected + 0.01
    pytest.importorskip("distributed")
    c_seconds, c_rows_per_s, c_ratio, c_peak, c_work = rows["neon on LocalCluster(2), chunks of 1,000"].split()
    assert float(c_seconds) > 0 and float(c_peak) > float(c_work) > -float(c_peak)
    assert abs(3000 / float(c_seconds) - float(c_rows_per_s.replace(",", ""))) <= 0.001 * 3000 / float(c_seconds) + 1


def test_scale_data_is_the_same_in_every_process():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        scale = runpy.run_path(str(BENCHMARKS / "scale.py"))
    finally:
        sys.path.remove(str(BENCHMARKS))
    X = scale["make_data"](2500, 4, 3, "float32")
    assert X.shape == (2500, 4) and X.dtype == "float32"
    assert (X == scale["make_data"](2500, 4, 3, "float32")).all()  # the same data in every subprocess
    assert not (X == scale["make_data"](2500, 4, 3, "float32", seed=1)).all()


def test_bench_kmeans_tiny(run_script):
    out = run_script("bench_kmeans.py", "--n", "4000", "--repeat", "1", "--k", "4", "--d", "6")
    assert "targets == predict on 100.00%" in out
    absorbed = float(re.search(r"max \|absorbed\| / max \|f\| = (\S+);", out).group(1))
    assert absorbed < 1e-12
    assert re.search(r"neon explain .* ratio +[\d.]+x wall", out)
