"""No function in core/, pages/ or app.py runs over 60 lines, read from the source: a longer one is split
into stages named for what they do, so that each can be read at once.

A function's length runs from its ``def`` line to its last line (decorators not counted, its docstring
and nested functions counted). Nested functions and methods are measured on their own too.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

MAX_FUNCTION_LINES = 60
#: Functions allowed over the limit: none. A long function is split into stages named for what they do.
ALLOWED_LONGER: set[str] = set()


def _sources() -> list[Path]:
    return sorted([*(ROOT / "core").rglob("*.py"), *(ROOT / "pages").rglob("*.py"), ROOT / "app.py"])


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def function_lengths(module: str, source: str) -> dict[str, int]:
    """``{qualified name: lines from def to last line}`` of every function and method in ``source``;
    a nested one is named through what encloses it (``module.Class.method.inner``)."""
    found: dict[str, int] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}.{child.name}"
                if not isinstance(child, ast.ClassDef):
                    found[name] = child.end_lineno - child.lineno + 1
                visit(child, name)
            else:
                visit(child, prefix)

    visit(ast.parse(source), module)
    return found


def long_functions(limit: int = MAX_FUNCTION_LINES) -> dict[str, int]:
    """Every function of core/, pages/ and app.py longer than ``limit`` lines, with its length."""
    found = {}
    for path in _sources():
        lengths = function_lengths(_module_name(path), path.read_text(encoding="utf-8"))
        found.update({name: n for name, n in lengths.items() if n > limit})
    return found


def test_no_function_is_longer_than_sixty_lines():
    assert {name: n for name, n in long_functions().items() if name not in ALLOWED_LONGER} == {}


def test_the_sources_read_include_pages_app_and_core_subpackages():
    names = {_module_name(p) for p in _sources()}
    assert {"app", "pages.data", "core.cli", "core.ingest.load", "core.model.modeling"} <= names


def test_lengths_run_from_def_to_last_line_for_functions_methods_and_nested_ones():
    body = "\n".join(f"    x{i} = {i}" for i in range(59))  # def + 59 lines: 60
    source = (f"@decorator\ndef edge():\n{body}\n\n"
              f"def over():\n{body}\n    return x0\n\n"
              f"class Job:\n    def run(self):\n        def inner():\n            return 1\n        return inner\n")
    assert function_lengths("m", source) == {"m.edge": 60, "m.over": 61, "m.Job.run": 4, "m.Job.run.inner": 2}


def test_a_long_function_outside_the_allowed_ones_is_reported(tmp_path, monkeypatch):
    (tmp_path / "core").mkdir()
    (tmp_path / "pages").mkdir()
    (tmp_path / "app.py").write_text("import streamlit\n", encoding="utf-8")
    body = "\n".join(f"    x{i} = {i}" for i in range(61))
    (tmp_path / "core" / "long.py").write_text(f"def train():\n{body}\n", encoding="utf-8")
    monkeypatch.setattr(__import__(__name__, fromlist=["ROOT"]), "ROOT", tmp_path)
    assert long_functions() == {"core.long.train": 62}
