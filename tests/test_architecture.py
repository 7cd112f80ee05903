"""The layout says what the code does: no import cycle, and each part imports only what it may.

The rules are those of docs/architecture.md: layers never import rules; the engine imports only the
rule protocol and names no concrete rule; the backend never imports scikit-learn; converters never
touch the propagation engine; nothing points outside the project for its theory.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "neon"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports(module: str, top_level_only: bool) -> set[str]:
    """Every module ``module`` imports (``from a import b`` counts ``a`` and, if it is a module, ``a.b``)."""
    tree = ast.parse(MODULES[module].read_text())
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(module, node)
                found.add(base)
                found.update(f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in MODULES)
            elif isinstance(node, ast.If) and _is_type_checking(node):
                continue
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and top_level_only:
                continue
            for field in ("body", "orelse", "finalbody", "handlers"):
                children = getattr(node, field, None)
                if isinstance(children, list) and children and isinstance(children[0], (ast.stmt,
                                                                                          ast.excepthandler)):
                    visit([c for c in children if isinstance(c, ast.stmt)]
                          + [s for h in children if isinstance(h, ast.excepthandler) for s in h.body])

    visit(tree.body)
    return found


def _internal(names: set[str]) -> set[str]:
    return {n for n in names if n in MODULES}


def test_the_module_level_import_graph_has_no_cycle() -> None:
    graph = {m: _internal(imports(m, top_level_only=True)) - {m} for m in MODULES}
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        path.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycle = path[path.index(n):] + [n]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if n not in state:
                visit(n)
        path.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert len(graph) > 40


def test_every_module_imports_on_its_own() -> None:
    """Each module imported first, in a process where no other neon module was loaded before it."""
    script = (
        "import importlib, sys\n"
        "import torch, numpy, sklearn, matplotlib\n"
        f"mods = {sorted(MODULES)!r}\n"
        "bad = []\n"
        "for m in mods:\n"
        "    for k in [k for k in sys.modules if k == 'neon' or k.startswith('neon.')]:\n"
        "        del sys.modules[k]\n"
        "    try:\n"
        "        importlib.import_module(m)\n"
        "    except Exception as e:\n"
        "        bad.append(f'{m}: {type(e).__name__}: {e}')\n"
        "print('\\n'.join(bad) or 'OK')\n"
    )
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip() == "OK", res.stdout


def _all_imports(prefix: str) -> dict[str, set[str]]:
    return {m: imports(m, top_level_only=False) for m in MODULES if m == prefix or m.startswith(prefix + ".")}


@pytest.mark.parametrize("part, forbidden", [
    ("neon.layers", ("neon.rules", "neon.propagate", "neon.converters", "neon.network", "sklearn")),
    ("neon.rules", ("neon.propagate.engine", "neon.propagate.graph", "neon.propagate.facts", "neon.converters",
                    "neon.network", "sklearn")),
    ("neon.propagate", ("neon.converters", "neon.network", "sklearn")),
    ("neon.network", ("neon.converters", "sklearn")),
    ("neon.converters", ("neon.propagate",)),
])
def test_each_part_imports_only_what_it_may(part: str, forbidden: tuple[str, ...]) -> None:
    for module, names in _all_imports(part).items():
        bad = sorted(n for n in names for f in forbidden if n == f or n.startswith(f + "."))
        assert not bad, f"{module} imports {bad}"


def test_the_engine_knows_only_the_rule_protocol() -> None:
    import neon.rules

    engine = "neon.propagate.engine"
    rule_modules = {n for n in imports(engine, top_level_only=False) if n.startswith("neon.rules")}
    assert rule_modules == {"neon.rules.base"}
    source = MODULES[engine].read_text()
    protocol = {"Rule", "Context", "vjp"}
    named = sorted(n for n in neon.rules.__all__ if n not in protocol and re.search(rf"\b{n}\b", source))
    assert not named, f"the engine names concrete rules {named}"
    assert "ctx.extra" not in source and "extra" not in ast.dump(ast.parse(MODULES["neon.rules.base"].read_text()))


def test_layers_choose_no_rule() -> None:
    for module, path in MODULES.items():
        if module.startswith("neon.layers"):
            assert "default_rule" not in path.read_text(), module


def test_public_names_do_not_hide_modules() -> None:
    import importlib

    import neon

    packages = [m for m, p in MODULES.items() if p.name == "__init__.py"]
    for package in packages:
        mod = importlib.import_module(package)
        for name in getattr(mod, "__all__", []):
            obj = getattr(mod, name)
            if callable(obj) and not isinstance(obj, type):
                assert f"{package}.{name}" not in MODULES, f"{package}.{name} is both a function and a module"
    import neon.converters  # noqa: F401 - importing the package must not replace the function
    assert callable(neon.neuralize) and callable(neon.explain) and callable(neon.tune)


def test_plot_is_an_attribute_and_loads_matplotlib_only_then() -> None:
    script = ("import sys, neon\n"
              "assert 'matplotlib.pyplot' not in sys.modules and 'neon.plot' not in sys.modules\n"
              "assert callable(neon.plot.heatmap)\n"
              "assert 'neon.plot' in sys.modules\n"
              "from neon.composites import EpsilonGammaBox\n"
              "assert neon.composites.EpsilonGammaBox is EpsilonGammaBox\n"
              "print('OK')")
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert res.stdout.strip() == "OK", res.stderr[-2000:]


def test_layers_export_only_what_networks_are_built_from() -> None:
    from torch import nn

    import neon.layers

    for name in neon.layers.__all__:
        obj = getattr(neon.layers, name)
        assert isinstance(obj, type) and issubclass(obj, nn.Module), name


def test_nothing_points_outside_the_project_for_its_theory() -> None:
    texts = [ROOT / "README.md"] + [p for d in ("neon", "docs", "examples") for p in (ROOT / d).rglob("*")
                                    if p.suffix in (".py", ".md", ".ipynb", ".yml") and "katex" not in p.parts]
    pattern = re.compile(r"THEORY\.md|\.\./shared|shared folder|THEORY section")
    bad = [str(p.relative_to(ROOT)) for p in texts if p.is_file() and pattern.search(p.read_text())]
    assert not bad, bad
