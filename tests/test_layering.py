"""The import graph of core/, read from the source: no module imports itself back through others, and no part
of core/ (store, ingest, model, analysis, campaigns, charts) imports a sibling or a part above it.

Imports inside functions count: a lazy import that closes a circle is still a circle, it only hides it.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: Each part of core/ and its level: a module may import its own part and parts on a lower level, never a
#: sibling on the same level or anything above. ``config`` and ``errors`` are the floor; the store
#: knows no analysis or model; the model reads the store only; analysis reads the model's published forecasts
#: and shopper embeddings (segments); campaigns sit on both; charts draw what they return; jobs and the CLI
#: drive everything (the CLI's store commands and what every command shares in ``cli_data``, below ``cli``).
LEVELS = {
    "core.config": 0, "core.errors": 0,
    "core.present": 1, "core.store": 1, "core.simulate": 1,
    "core.ingest": 2, "core.model": 2,
    "core.analysis": 3,
    "core.campaigns": 4,
    "core.charts": 5,
    "core.jobs": 6,
    "core.cli_data": 7,
    "core.cli": 8,
}
#: At most this many modules directly in core/ (besides its __init__): the rest live in the parts above.
MAX_TOP_MODULES = 5


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted((ROOT / "core").rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imported_names(name: str, path: Path) -> set[str]:
    """Every module name an import statement anywhere in the file (functions included) names."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            names.update(f"{base}.{alias.name}" for alias in node.names)
            names.add(base)
    return names


def import_graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """``(edges, raw)``: edges between core modules (``from core import x`` is an edge to ``core.x``, not to
    the package), and every name each module imports."""
    modules = _modules()
    edges, raw = {}, {}
    for name, path in modules.items():
        raw[name] = _imported_names(name, path)
        targets = {n for n in raw[name] if n in modules and n != name}
        # "from core import store" names the package only on the way to its submodule
        edges[name] = {t for t in targets if not any(o.startswith(t + ".") for o in targets)}
    return edges, raw


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One circle of the graph as a path that ends where it starts, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_core_has_no_import_circle():
    edges, _ = import_graph()
    assert "core.store.engine" in edges and edges["core.store.engine"], "the graph reads the store's imports"
    assert find_cycle(edges) is None, " -> ".join(find_cycle(edges))


@pytest.mark.parametrize("edges, expected", [
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
    ({"a": {"b"}, "b": {"c"}, "c": set()}, None),
    ({"a": {"a"}}, ["a", "a"]),
])
def test_find_cycle_finds_a_circle_through_any_number_of_modules(edges, expected):
    assert find_cycle(edges) == expected


def test_a_function_local_import_counts(tmp_path):
    source = tmp_path / "lazy.py"
    source.write_text("def f():\n    from core.analysis.queries import kpis\n    import core.analysis.rfm\n", encoding="utf-8")
    assert {"core.analysis.queries.kpis", "core.analysis.rfm"} <= _imported_names("core.lazy", source)


def part_of(module: str) -> str | None:
    """The part of core/ a module belongs to (``core.store.sql`` -> ``core.store``), or None outside core/."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "core" and len(parts) > 1 else None


def test_every_module_belongs_to_a_part_with_a_level():
    assert sorted(m for m in _modules() if m != "core" and part_of(m) not in LEVELS) == []


def upward_imports(edges: dict[str, set[str]]) -> list[str]:
    """``"a -> b"`` for each import of a sibling part or a part above the importer's."""
    return sorted(f"{m} -> {t}" for m, targets in edges.items() if m != "core" for t in targets
                  if part_of(t) != part_of(m) and LEVELS[part_of(t)] >= LEVELS[part_of(m)])


def test_no_part_imports_a_sibling_or_a_part_above_it():
    edges, _ = import_graph()
    assert upward_imports(edges) == []


def test_the_level_rule_catches_an_upward_and_a_sideways_import():
    edges = {"core.store.derived": {"core.analysis.queries", "core.store.sql"},
             "core.ingest.load": {"core.model.forecast"}, "core.analysis.queries": {"core.store.sql"}}
    assert upward_imports(edges) == ["core.ingest.load -> core.model.forecast",
                                     "core.store.derived -> core.analysis.queries"]


def test_at_most_five_modules_sit_directly_in_core():
    top = sorted(p.name for p in (ROOT / "core").glob("*.py") if p.name != "__init__.py")
    assert len(top) <= MAX_TOP_MODULES, top


def test_core_imports_neither_streamlit_nor_pages():
    _, raw = import_graph()
    bad = {m: sorted(n for n in names if n.split(".")[0] in ("streamlit", "pages", "app"))
           for m, names in raw.items()}
    assert {m: b for m, b in bad.items() if b} == {}


#: The longest a module outside tests/ may be: past it, a module holds more than one idea and is split.
MAX_MODULE_LINES = 600


def test_no_module_outside_the_tests_is_longer_than_six_hundred_lines():
    sources = [p for p in ROOT.rglob("*.py") if not p.relative_to(ROOT).parts[0].startswith((".", "tests"))
               and "site-packages" not in p.parts]
    assert len(sources) > 50, "the scan reads the project's modules"
    long = {str(p.relative_to(ROOT)): n for p in sources
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES}
    assert long == {}
