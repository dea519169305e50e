"""The import graph of core/, read from the source: no module imports itself back through others, and the
low layers (the store, the shared SQL, config and errors) import nothing above them.

Imports inside functions count: a lazy import that closes a circle is still a circle, it only hides it.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: Analysis, model and top-layer modules the low layers must never import (packages match their submodules).
ABOVE_THE_STORE = ("core.queries", "core.preferences", "core.rfm", "core.segments", "core.shopper_features",
                   "core.segmenter", "core.segment_names", "core.campaigns",
                   "core.identities", "core.exports", "core.charts", "core.charts_campaigns",
                   "core.charts_forecast", "core.charts_preferences", "core.charts_segments",
                   "core.model", "core.forecast", "core.sequences", "core.cli",
                   "core.query_parts", "core.product_queries", "core.contact_fields", "core.campaign_outcome",
                   "core.scoring", "core.model_card")
LOW_LAYERS = ("core.store", "core.store_url", "core.store_faults", "core.housekeeping", "core.schema", "core.sql",
              "core.config", "core.errors")


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
    assert "core.store" in edges and edges["core.store"], "the graph reads the store's imports"
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
    source.write_text("def f():\n    from core.queries import kpis\n    import core.rfm\n", encoding="utf-8")
    assert {"core.queries.kpis", "core.rfm"} <= _imported_names("core.lazy", source)


@pytest.mark.parametrize("low", LOW_LAYERS)
def test_low_layers_import_nothing_above_them(low):
    _, raw = import_graph()
    above = sorted(n for n in raw[low] if any(n == a or n.startswith(a + ".") for a in ABOVE_THE_STORE))
    assert above == [], f"{low} imports {above}, which sit above it"


def test_core_imports_neither_streamlit_nor_pages():
    _, raw = import_graph()
    bad = {m: sorted(n for n in names if n.split(".")[0] in ("streamlit", "pages", "app"))
           for m, names in raw.items()}
    assert {m: b for m, b in bad.items() if b} == {}
