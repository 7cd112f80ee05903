"""Render the numpydoc docstrings of neon's public API into ``docs/api.md``.

mkdocs has no docstring plugin in this environment, so the API reference is generated here and
committed; ``tests/test_docs.py`` checks that the committed file is up to date.

    python docs/gen_api.py           # rewrite docs/api.md
    python docs/gen_api.py --check   # exit 1 if docs/api.md is out of date

What is public: the names in each module's ``__all__`` (its public, non-underscore definitions
where it has none). Numpydoc sections (``Parameters``, ``Returns``, ``Attributes``, ``Examples``,
...) become Markdown; Sphinx roles (``:class:`x```) and RST literals (````x````) become code spans.
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "api.md"

#: (module, title, what to take from it); ``None`` means the module's ``__all__``.
SECTIONS: list[tuple[str, str, list[str] | None]] = [
    ("neon", "Explaining", ["explain", "Explainer", "Explanation"]),
    ("neon", "Neuralizing", ["neuralize", "supported_models", "Network"]),
    ("neon.composites", "Composites and presets", None),
    ("neon.rules", "Rules", None),
    ("neon.layers", "Layers", None),
    ("neon.plot", "Plots", None),
    ("neon.metrics", "Quality metrics", None),
    ("neon.baselines", "Baselines", None),
    ("neon", "Tuning", ["tune"]),
    ("neon.exceptions", "Errors", None),
    ("neon.cli", "Command line", ["main"]),
]

SECTION_HEADERS = {"Parameters", "Returns", "Yields", "Raises", "Attributes", "Examples", "Notes", "References",
                   "See Also", "Warnings", "Other Parameters", "Methods"}


def public_names(module: ModuleType) -> list[str]:
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n, v in vars(module).items() if not n.startswith("_") and getattr(v, "__module__", "")
                 == module.__name__ and (inspect.isclass(v) or inspect.isfunction(v))]
    return [n for n in names if not inspect.ismodule(getattr(module, n, None))]


def inline(text: str) -> str:
    """Sphinx roles and RST literals as Markdown code spans."""
    text = re.sub(r":(?:class|func|meth|mod|attr|obj|data|exc):`~?([^`]+)`", r"`\1`", text)
    return re.sub(r"``([^`]+)``", r"`\1`", text)


_RST_BORDER = re.compile(r"^\s*=+( +=+)+\s*$")


def _rst_table(lines: list[str]) -> list[str]:
    """An RST "simple table" (``===  ===`` borders) as a Markdown table."""
    border = lines[0]
    spans = [(m.start(), m.end()) for m in re.finditer(r"=+", border)]

    def cells(line: str) -> list[str]:
        # Columns are separated by two or more spaces; positions decide only when that is ambiguous
        # (a cell that overflows its border still ends at the next run of spaces).
        parts = re.split(r"\s{2,}", line.strip())
        if len(parts) == len(spans):
            return [inline(p) for p in parts]
        bounds = [start for start, _ in spans] + [None]
        return [inline(line[bounds[k]:bounds[k + 1]].strip()) for k in range(len(spans))]

    rows = [cells(line) for line in lines if line.strip() and not _RST_BORDER.match(line)]
    if not rows:
        return []
    out = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(spans)]
    return out + ["| " + " | ".join(r) + " |" for r in rows[1:]]


def _prose(lines: list[str]) -> list[str]:
    """Paragraph lines; doctest blocks (``>>>``) become fenced code, RST simple tables Markdown tables."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if _RST_BORDER.match(line):
            block = []
            borders = 0
            while i < len(lines) and borders < 3:
                borders += bool(_RST_BORDER.match(lines[i]))
                block.append(lines[i])
                i += 1
            out += [""] + _rst_table(block) + [""]
            continue
        if line.lstrip().startswith(">>>"):
            block = []
            while i < len(lines) and lines[i].strip():
                block.append(re.sub(r"\s*# doctest:.*$", "", lines[i].strip()))  # directives are for doctest
                i += 1
            out += ["```python", *block, "```"]
            continue
        out.append(inline(line.strip()) if line.strip() else "")
        i += 1
    return out


def _fields(lines: list[str]) -> list[str]:
    """``name : type`` entries with indented descriptions, as a bullet list."""
    items: list[tuple[str, list[str]]] = []
    for line in lines:
        if not line.strip():
            if items:
                items[-1][1].append("")
            continue
        if not line.startswith((" ", "\t")):
            items.append((line.strip(), []))
        elif items:
            items[-1][1].append(line.strip())
    out = []
    for head, desc in items:
        name, _, kind = head.partition(" : ")
        label = f"`{name.strip()}`" + (f" (*{inline(kind.strip())}*)" if kind.strip() else "")
        text = " ".join(inline(d) for d in desc if d)
        out.append(f"- {label}" + (f": {text}" if text else ""))
    return out


def render_docstring(doc: str | None) -> list[str]:
    doc = inspect.cleandoc(doc or "")
    if not doc:
        return ["*(no docstring)*"]
    lines = doc.splitlines()
    out: list[str] = []
    body: list[str] = []
    section = None
    i = 0

    def flush() -> None:
        nonlocal body
        if section is None:
            out.extend(_prose(body))
        elif section == "Examples":
            out.extend(["", "**Examples**", ""] + _prose(body))
        elif section in ("Parameters", "Returns", "Yields", "Raises", "Attributes", "Other Parameters", "Methods"):
            out.extend(["", f"**{section}**", ""] + _fields(body))
        else:
            out.extend(["", f"**{section}**", ""] + _prose(body))
        body = []

    while i < len(lines):
        if lines[i].strip() in SECTION_HEADERS and i + 1 < len(lines) and set(lines[i + 1].strip()) == {"-"}:
            flush()
            section = lines[i].strip()
            i += 2
            continue
        body.append(lines[i])
        i += 1
    flush()
    return out


class _Raw:
    """An annotation kept as source text (``from __future__ import annotations``), shown without quotes."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text


def signature(obj: Any, name: str) -> str:
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return f"{name}(...)"
    params = [p.replace(annotation=_Raw(p.annotation)) if isinstance(p.annotation, str) else p
              for p in sig.parameters.values()]
    ret = sig.return_annotation
    sig = str(sig.replace(parameters=params, return_annotation=_Raw(ret) if isinstance(ret, str) else ret))
    sig = re.sub(r" at 0x[0-9a-fA-F]+", "", sig)  # object reprs in defaults: keep the output deterministic
    return f"{name}{sig}"


def _own_methods(cls: type) -> list[tuple[str, Any]]:
    methods: list[tuple[str, Any]] = []
    for name, value in vars(cls).items():
        if name.startswith("_") and name != "__call__":
            continue
        if any(value is other for _, other in methods):
            continue  # an alias (``__call__ = explain``) is documented once
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        if inspect.isfunction(value) and value.__doc__:
            methods.append((name, value))
        elif isinstance(value, property) and value.fget is not None and value.fget.__doc__:
            methods.append((name, value))
    return methods


def render_object(qualname: str, obj: Any) -> list[str]:
    kind = "class" if inspect.isclass(obj) else "function"
    out = [f"### `{qualname}`", "", "```python", f"{kind} {signature(obj, qualname)}"
           if kind == "class" else signature(obj, qualname), "```", ""]
    out += render_docstring(obj.__doc__)
    if inspect.isclass(obj) and not issubclass(obj, BaseException):
        for name, member in _own_methods(obj):
            if isinstance(member, property):
                out += ["", f"#### `{qualname}.{name}` (property)", ""] + render_docstring(member.fget.__doc__)
            else:
                out += ["", f"#### `{qualname}.{name}`", "", "```python", signature(member, name), "```", ""]
                out += render_docstring(member.__doc__)
    return out + [""]


def render() -> str:
    import importlib

    out = ["# API reference", "",
           "Generated from the docstrings by `docs/gen_api.py` (do not edit by hand; run "
           "`python docs/gen_api.py` after changing a docstring).", ""]
    for module_name, title, names in SECTIONS:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        names = public_names(module) if names is None else [n for n in names if hasattr(module, n)]
        if not names:
            continue
        out += [f"## {title}", ""]
        if module_name != "neon":
            out += [f"Module `{module_name}`.", ""]
            if module.__doc__:
                out += render_docstring(module.__doc__) + [""]
        for name in names:
            obj = getattr(module, name)
            if inspect.isclass(obj) or callable(obj):
                out += render_object(f"{module_name}.{name}", obj)
    text = "\n".join(out)
    text = re.sub(r"\n{3,}", "\n\n", text).rstrip() + "\n"
    return "\n".join(line.rstrip() for line in text.splitlines()) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate docs/api.md from neon's docstrings.")
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/api.md is out of date")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not OUT.exists() or OUT.read_text() != text:
            print("docs/api.md is out of date: run python docs/gen_api.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
