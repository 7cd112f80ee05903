"""A small mutation check: does the test suite catch realistic bugs in the rules, the log-odds top and the metrics?

Each mutant is one small edit of the source (a sign, a swapped term, a forgotten clamp, an off-by-one) that a
developer could plausibly make. For every mutant the script copies ``neon/``, ``tests/`` and ``pyproject.toml``
from the working tree into a fresh temporary folder, applies the edit there (the working tree is never touched:
others may be editing it), and runs the test files relevant to the edited module against the copy
(``python -m pytest -x -q -p no:cacheprovider`` with the copy as working directory and ``PYTHONPATH``). The
mutant is *caught* when a test fails, *survives* when all pass. Before the mutants, the unmutated copy must
pass the same test files, and the copy's ``neon`` must be the one imported.

Run: ``python benchmarks/mutation_check.py`` (about 3-5 minutes on 2 cores; ``--jobs 1`` on a loaded
machine, ``--only ID[,ID...]`` for a few mutants, ``--list`` to print and validate the list without running).
The score printed at the end is ``caught / total``; survivors are listed with their test files.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The relevant test files of each part, most specific first (``-x`` stops at the first failure).
TOP = ["tests/test_top_layer_rules.py", "tests/test_logodds.py", "tests/test_absorbed.py"]
RULES = ["tests/test_rules.py", "tests/test_top_layer_rules.py", "tests/test_absorbed.py", "tests/test_conservation.py"]
DENSITY = ["tests/test_density.py", "tests/test_rules.py", "tests/test_kmeans.py"]
KMEANS = ["tests/test_rules.py", "tests/test_kmeans.py", "tests/test_density.py"]
METRICS = ["tests/test_metrics.py"]


@dataclass(frozen=True)
class Mutant:
    id: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


def _m(id: str, path: str, old: str, new: str, tests: list[str]) -> Mutant:
    return Mutant(id, path, old, new, tuple(tests))


MUTANTS = [
    # ---------------------------------------------------------------- the log-odds top (docs/theory.md §3)
    _m("top/contrast-bias-sign", "neon/layers/top.py",
       "bias = None if b is None else b[target] - b[keep]", "bias = None if b is None else b[keep] - b[target]", TOP),
    _m("top/softmax-not-softmin", "neon/rules/affine.py",
       "R_h = torch.softmax(-h, dim=-1) * eta", "R_h = torch.softmax(h, dim=-1) * eta", TOP),
    _m("top/difference-sign", "neon/rules/affine.py",
       "h = zc[:, c : c + 1] - zc[:, keep]", "h = zc[:, keep] - zc[:, c : c + 1]", TOP),
    _m("top/eta-from-first-column", "neon/rules/affine.py",
       "eta = R[idx, c : c + 1]", "eta = R[idx, :1]", TOP),
    # ---------------------------------------------------------------- affine rules (docs/theory.md §2)
    _m("epsilon/relative-mean-square", "neon/rules/affine.py",
       "eps = self.epsilon * z.pow(2).mean(dim=dims, keepdim=True).sqrt()",
       "eps = self.epsilon * z.pow(2).mean(dim=dims, keepdim=True)", RULES),
    _m("gamma/bias-not-raised", "neon/rules/affine.py",
       "b_up = None if b is None else gamma_up(b, g)", "b_up = b", RULES),
    _m("gamma/down-denominator", "neon/rules/affine.py",
       "D.add_(z.clamp(max=0), alpha=-(2.0 + g))", "D.add_(z.clamp(max=0), alpha=-(1.0 + g))", RULES),
    _m("gamma/signed-down-bias", "neon/rules/affine.py",
       "b_dn = None if b is None else gamma_down(b, g)", "b_dn = None if b is None else gamma_up(b, g)", RULES),
    _m("zplus/bias-not-clamped", "neon/rules/affine.py",
       "s = safe_divide(R, layer.forward(a, wp, _pos(b)), self.stabilizer)",
       "s = safe_divide(R, layer.forward(a, wp, b), self.stabilizer)", RULES),
    _m("zplus/signed-negative-weights", "neon/rules/affine.py",
       "denom = layer.forward(ap, wp, _pos(b)) + layer.forward(an, wn, None)",
       "denom = layer.forward(ap, wp, _pos(b)) + layer.forward(an, wp, None)", RULES),
    _m("alphabeta/negative-bias-sign", "neon/rules/affine.py",
       "sn = safe_divide(R, layer.forward(a, wn, _neg(b)), self.stabilizer)",
       "sn = safe_divide(R, layer.forward(a, wn, _pos(b)), self.stabilizer)", RULES),
    _m("alphabeta/beta-added", "neon/rules/affine.py",
       "result = result - self.beta * (a * layer.transpose(sn, a, wn))",
       "result = result + self.beta * (a * layer.transpose(sn, a, wn))", RULES),
    _m("zbox/bounds-swapped", "neon/rules/affine.py",
       "return (a - low).mul_(c_pos).addcmul_(a - high, c_neg)",
       "return (a - high).mul_(c_pos).addcmul_(a - low, c_neg)", RULES),
    _m("wsquare/bias-dropped", "neon/rules/affine.py",
       "s = safe_divide(R, layer.forward(ones, w2, b2), self.stabilizer)",
       "s = safe_divide(R, layer.forward(ones, w2, None), self.stabilizer)", RULES),
    _m("reference/sign", "neon/rules/affine.py",
       "d = a - _broadcast_param(self.reference, a)", "d = a + _broadcast_param(self.reference, a)", RULES),
    # ---------------------------------------------------------------- pools and sums
    _m("maxpool-proportional/padding-not-counted", "neon/rules/sums.py",
       "return torch.nn.AvgPool2d(op.kernel_size, op.stride, op.padding, ceil_mode=op.ceil_mode,\n"
       "                                  count_include_pad=True)",
       "return torch.nn.AvgPool2d(op.kernel_size, op.stride, op.padding, ceil_mode=op.ceil_mode,\n"
       "                                  count_include_pad=False)", RULES),
    _m("residual-split/swapped", "neon/rules/sums.py",
       "return a * s, s.mul_(b)", "return b * s, s.mul_(a)", RULES),
    # ---------------------------------------------------------------- NEON layers (docs/theory.md §4)
    _m("softmin/sign", "neon/rules/pooling.py",
       "weights = torch.softmax(self._sign * stiffness * h, dim=-1)",
       "weights = torch.softmax(stiffness * h, dim=-1)", KMEANS),
    _m("softmin/one-row-stiffness", "neon/rules/pooling.py",
       "e = torch.exp((self._sign * stiffness) * (h_row - extreme))",
       "e = torch.exp(self._sign * (h_row - extreme))", DENSITY),
    _m("softmin/auto-beta-inverted", "neon/rules/pooling.py",
       "return self._replace(beta=1.0 / scale if scale > 0 else 1.0)",
       "return self._replace(beta=scale if scale > 0 else 1.0)", KMEANS),
    _m("distance/threshold-loose", "neon/rules/distance.py",
       "_DIST_RTOL = 1e-10", "_DIST_RTOL = 1e-8", DENSITY),
    _m("distance/threshold-uncentred", "neon/rules/distance.py",
       "noise = _DIST_RTOL * ((xc * xc).sum(-1, keepdim=True) + op.points_sq)",
       "noise = _DIST_RTOL * ((x * x).sum(-1, keepdim=True) + op.points_sq)", DENSITY),
    _m("midpoint/owner-sign", "neon/rules/distance.py",
       "q = as_competitor - own", "q = as_competitor + own", KMEANS),
    # ---------------------------------------------------------------- metrics (docs/theory.md §5)
    _m("noise/variance-for-std", "neon/metrics/replace.py",
       "std = bg.std(0, keepdim=True) if len(bg) > 1", "std = bg.var(0, keepdim=True) if len(bg) > 1", METRICS),
    _m("noise/uniform-draws", "neon/metrics/replace.py",
       "noise = torch.randn(x.shape, generator=gen, dtype=x.dtype)",
       "noise = torch.rand(x.shape, generator=gen, dtype=x.dtype)", METRICS),
    _m("noise/mean-of-x", "neon/metrics/replace.py",
       "return bg.mean(0, keepdim=True) + std * noise", "return x.mean(0, keepdim=True) + std * noise", METRICS),
    _m("min/batch-minimum", "neon/metrics/replace.py",
       "m = x.reshape(len(x), -1).amin(1) if x.numel()", "m = x.amin().expand(len(x)) if x.numel()", METRICS),
    _m("flipping/order-reversed", "neon/metrics/flipping.py",
       'descending=(order == "morf")', 'descending=(order == "lerf")', METRICS),
    _m("flipping/rank-off-by-one", "neon/metrics/flipping.py",
       "torch.where(feature_rank < b, rflat, flat)", "torch.where(feature_rank <= b, rflat, flat)", METRICS),
    _m("flipping/auc-as-mean", "neon/metrics/flipping.py",
       "auc = np.trapezoid(curve, fractions, axis=1) if", "auc = curve.mean(1) if", METRICS),
    _m("aopc/without-intact-input", "neon/metrics/flipping.py",
       "aopc = (curve[:, :1] - curve).mean(1)", "aopc = (curve[:, :1] - curve[:, 1:]).mean(1)", METRICS),
    _m("localization/absolute-mass", "neon/metrics/_localization.py",
       "pos = np.maximum(flat, 0)", "pos = np.abs(flat)", METRICS),
    _m("positivity/positive-mass", "neon/metrics/_positivity.py",
       "mass = np.abs(flat).sum(1)", "mass = np.maximum(flat, 0).sum(1)", METRICS),
    _m("continuity/unscaled-step", "neon/metrics/_continuity.py",
       "dx = (noise * scale * eps)", "dx = (noise * eps)", METRICS),
    _m("conservation/scaled-by-sum", "neon/metrics/_conservation.py",
       "scale = np.maximum(np.abs(out), np.finfo(np.float64).tiny)",
       "scale = np.maximum(np.abs(total), np.finfo(np.float64).tiny)", METRICS),
]


def validate(mutants: list[Mutant], check_tests: bool = True) -> None:
    """Every edit must apply to exactly one place of the current source (the list goes stale otherwise)."""
    ids = [m.id for m in mutants]
    if len(set(ids)) != len(ids):
        raise SystemExit("duplicate mutant ids")
    for m in mutants:
        count = (ROOT / m.path).read_text().count(m.old)
        if count != 1:
            raise SystemExit(f"mutant {m.id}: the text to replace occurs {count} times in {m.path} (expected once); "
                             "update the list to the current source.")
        for t in m.tests if check_tests else ():
            if not (ROOT / t).exists():
                raise SystemExit(f"mutant {m.id}: test file {t} does not exist.")


def make_copy(where: Path, tests_from: Path | None = None) -> Path:
    """``neon/``, ``tests/`` and ``pyproject.toml`` of the working tree under ``where`` (``tests/`` from
    ``tests_from`` instead, when given)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis")
    shutil.copytree(ROOT / "neon", where / "neon", ignore=ignore)
    shutil.copytree(tests_from or ROOT / "tests", where / "tests", ignore=ignore)
    shutil.copy2(ROOT / "pyproject.toml", where / "pyproject.toml")
    return where


def export_tests(rev: str, where: Path) -> Path:
    """The ``tests/`` folder of git revision ``rev`` under ``where`` (to compare the score of older tests)."""
    archive = subprocess.run(["git", "archive", rev, "tests"], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(where)], input=archive, check=True)
    return where / "tests"


def env_for(copy: Path, threads: int | None) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(copy), PYTHONDONTWRITEBYTECODE="1")
    if threads is not None:  # several pytest processes at once: one thread each, no oversubscription
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    return env


def run_tests(copy: Path, tests: tuple[str, ...], threads: int | None, timeout: float,
              stop_first: bool = True, workers: int = 1) -> tuple[str, float, str]:
    """``("pass" | "fail" | "timeout", seconds, first failing test or "")``."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-rf", "-p", "no:cacheprovider", *tests]
    if stop_first:
        cmd.insert(3, "-x")
    if workers > 1:  # pytest-xdist
        cmd += ["-n", str(workers)]
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=copy, env=env_for(copy, threads), capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", time.perf_counter() - start, ""
    seconds = time.perf_counter() - start
    if proc.returncode == 0:
        return "pass", seconds, ""
    if proc.returncode == 5:  # no test collected: nothing failed
        return "pass", seconds, "(no test collected)"
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", proc.stdout, flags=re.M)
    out = (proc.stdout + proc.stderr).strip()
    first = failed[0] if failed else (out.splitlines()[-1] if out else f"exit code {proc.returncode}")
    return "fail", seconds, first


def check_mutant(m: Mutant, tmp: Path, threads: int | None, timeout: float,
                 tests_from: Path | None) -> tuple[Mutant, str, float, str]:
    if not m.tests:  # none of its test files exist in the chosen tests/: nothing can catch it
        return m, "SURVIVED", 0.0, "(no test file)"
    copy = make_copy(tmp / re.sub(r"\W", "_", m.id), tests_from)
    target = copy / m.path
    target.write_text(target.read_text().replace(m.old, m.new, 1))
    status, seconds, first = run_tests(copy, m.tests, threads, timeout)
    shutil.rmtree(copy, ignore_errors=True)
    verdict = {"fail": "caught", "timeout": "caught (timeout)", "pass": "SURVIVED"}[status]
    return m, verdict, seconds, first


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2, help="mutants tested at once (default 2)")
    parser.add_argument("--only", default="", help="comma-separated mutant ids (or id prefixes such as 'top/')")
    parser.add_argument("--list", action="store_true", help="print and validate the mutants, run nothing")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per mutant before it counts as caught")
    parser.add_argument("--tests-from", metavar="REV", default=None,
                        help="take tests/ from this git revision (e.g. HEAD~3) instead of the working tree; test "
                             "files it lacks are left out (to compare the score of older tests)")
    args = parser.parse_args(argv)

    mutants = MUTANTS
    if args.only:
        wanted = [w.strip() for w in args.only.split(",") if w.strip()]
        mutants = [m for m in MUTANTS if any(m.id == w or (w.endswith("/") and m.id.startswith(w)) for w in wanted)]
        if not mutants:
            raise SystemExit(f"no mutant matches {args.only!r}; see --list")
    validate(mutants, check_tests=args.tests_from is None)
    if args.list:
        for m in mutants:
            print(f"{m.id:<42} {m.path:<30} {' '.join(Path(t).name for t in m.tests)}")
        print(f"{len(mutants)} mutants, all applicable to the current source")
        return 0

    threads = 1 if args.jobs > 1 else None
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="neon-mutants-") as tmp_name:
        tmp = Path(tmp_name)
        tests_from = None
        if args.tests_from:
            (tmp / "old").mkdir()
            tests_from = export_tests(args.tests_from, tmp / "old")
            mutants = [Mutant(m.id, m.path, m.old, m.new, tuple(t for t in m.tests if (tmp / "old" / t).exists()))
                       for m in mutants]
            print(f"tests/ from {args.tests_from}")
        base = make_copy(tmp / "unmutated", tests_from)
        probe = subprocess.run([sys.executable, "-c", "import neon; print(neon.__file__)"], cwd=base,
                               env=env_for(base, threads), capture_output=True, text=True)
        if not probe.stdout.strip().startswith(str(base)):
            raise SystemExit(f"the copy's neon is not the one imported: {probe.stdout.strip() or probe.stderr}")
        files = tuple(dict.fromkeys(t for m in mutants for t in m.tests))
        status, seconds, first = run_tests(base, files, threads, args.timeout, stop_first=False, workers=args.jobs)
        print(f"unmutated copy: {status} ({seconds:.0f} s, {len(files)} test files)")
        if status != "pass":
            print(f"the unmutated source fails its tests ({first}); fix that first: a mutant could not be judged.")
            return 2
        shutil.rmtree(base, ignore_errors=True)

        results = []
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            futures = [pool.submit(check_mutant, m, tmp, threads, args.timeout, tests_from) for m in mutants]
            for i, fut in enumerate(futures, 1):
                m, verdict, seconds, first = fut.result()
                results.append((m, verdict))
                print(f"[{i:2d}/{len(mutants)}] {verdict:<16} {seconds:5.1f} s  {m.id:<42} {first}", flush=True)

    caught = sum(1 for _, v in results if v != "SURVIVED")
    print(f"\nscore: {caught}/{len(results)} mutants caught ({time.perf_counter() - started:.0f} s in all, "
          f"{args.jobs} at once)")
    for m, v in results:
        if v == "SURVIVED":
            print(f"  survived: {m.id} ({m.path}; ran {', '.join(m.tests)})")
    return 0 if caught == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
