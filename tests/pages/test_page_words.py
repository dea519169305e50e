"""Every page in the analyst's words: no code name and no bare float reaches a table, a chart or a tile.

Each page runs under ``AppTest`` on two datasets of one DuckDB store: the bundled sample as loaded (no model yet)
and a simulated shop with a model, a segmentation and an export. Over everything the page shows:

- a table's column headers are never snake_case names nor code names that have words in
  ``core.present.formats.LABELS``; a float column has a number format (or no more than two decimals), an integer
  column holding thousands has one that groups them; a text column holds no snake_case values (``remove_from_cart``);
- a chart's axis, legend and colour-bar titles, its trace names and its category labels are not snake_case;
- no tile, caption or text shows a number with four or more decimals.
"""
from __future__ import annotations

import json
import re

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from core.present import formats
from tests.e2e_support import ROOT

pytestmark = pytest.mark.slow

PAGES = ("data", "overview", "forecasts", "segments", "preferences", "shopper", "campaigns")
TIMEOUT_S = 300
LONG_FLOAT = re.compile(r"(?<![\w.])\d+\.\d{4,}(?![\w.])")
CODE_NAMES = {name for name, words in formats.LABELS.items() if name != words}


@pytest.fixture(scope="module")
def words_store(tmp_path_factory):
    """The sample as loaded, and a shop of 600 simulated shoppers trained (tiny model), segmented and exported."""
    from core import cli, config, store
    from core.ingest.load import ingest_file
    from tests.conftest import write_simulated_shop
    from tests.e2e.test_e2e_concurrent import TINY_MODEL, TINY_SETTINGS

    folder = tmp_path_factory.mktemp("words")
    url = f"duckdb:///{folder / 'store.duckdb'}"
    mp = pytest.MonkeyPatch()
    mp.setenv(config.HOME_ENV, str(folder / "home"))
    engine = store.make_engine(url)
    try:
        ingest_file(engine, config.SAMPLE_FILE, "sample")
    finally:
        engine.dispose()
    shop = write_simulated_shop(folder, 600, 8, 3, {"tiny": {**TINY_MODEL, **TINY_SETTINGS}})
    for argv in (["ingest", str(shop["events"]), "--name", "shop", "--quiet"],
                 ["train", "--dataset", "shop", "--config", str(shop["tiny"]), "--quiet"],
                 ["segment", "--dataset", "shop", "--out", str(folder / "segments.csv")],
                 ["export", "--dataset", "shop", "--format", "csv", "--top-percent", "50", "--out",
                  str(folder / "lists")]):
        assert cli.main([*argv, "--db", url]) == 0, argv
    yield {"url": url, "folder": folder}
    mp.undo()


def _busiest_shopper(url: str, dataset: str) -> str:
    from core import store

    engine = store.make_engine(url)
    try:
        events = store.events.c
        did = store.get_dataset(engine, dataset)["dataset_id"]
        import sqlalchemy as sa

        with engine.connect() as conn:
            return str(conn.execute(sa.select(events.user_id).where(events.dataset_id == did).group_by(events.user_id)
                                    .order_by(sa.func.count().desc(), events.user_id).limit(1)).scalar())
    finally:
        engine.dispose()


def _code_like(text: str) -> bool:
    return bool(formats.SNAKE_CASE.match(text)) or text in CODE_NAMES


def _table_problems(el) -> list[str]:
    frame, config_ = el.value, json.loads(el.proto.columns or "{}")
    out = []
    for col in frame.columns:
        cfg = config_.get(str(col), {})
        if cfg.get("hidden"):
            continue
        label, fmt = cfg.get("label") or str(col), (cfg.get("type_config") or {}).get("format")
        values = frame[col].dropna()
        if _code_like(label):
            out.append(f"column header {label!r} is a code name")
        if pd.api.types.is_float_dtype(frame[col]) and not fmt and len(values) and not (values.round(2) == values).all():
            out.append(f"column {label!r} shows bare floats, e.g. {values.iloc[0]!r}")
        if pd.api.types.is_integer_dtype(frame[col]) and not fmt and (values.abs() >= 1000).any():
            out.append(f"column {label!r} shows counts without thousands separators, e.g. {values.max()!r}")
        if frame[col].dtype == object and frame[col].isna().any():
            out.append(f"column {label!r} shows a missing text as 'None'")
        if frame[col].dtype == object:
            snake = values.astype(str)[values.astype(str).str.match(formats.SNAKE_CASE)]
            if len(snake):
                out.append(f"column {label!r} holds code names, e.g. {snake.iloc[0]!r}")
    return out


def _chart_problems(spec: dict) -> list[str]:
    layout, out = spec["layout"], []
    title = ((layout.get("title") or {}).get("text") or "")[:50]
    for key, part in layout.items():
        if key.startswith(("xaxis", "yaxis", "legend", "coloraxis")) and isinstance(part, dict):
            text = part.get("title")
            text = text.get("text") if isinstance(text, dict) else text
            if text and (_code_like(text) or LONG_FLOAT.search(text)):
                out.append(f"chart {title!r}: {key} title {text!r}")
    for trace in spec["data"]:
        if _code_like(trace.get("name") or ""):
            out.append(f"chart {title!r}: trace {trace['name']!r}")
        for axis in ("x", "y"):
            values = trace.get(axis)
            if isinstance(values, list) and values and isinstance(values[0], str):
                out.extend(f"chart {title!r}: {axis} label {v!r}" for v in values if _code_like(v))
    return out


def _text_problems(at) -> list[str]:
    out = []
    for kind in ("markdown", "caption", "info", "warning", "success", "text"):
        out.extend(f"{kind}: {m} in {str(el.value)[:90]!r}" for el in at.get(kind) for m in LONG_FLOAT.findall(
            str(el.value)))
    out.extend(f"tile {m.label!r} shows {m.value!r}" for m in at.metric if LONG_FLOAT.search(str(m.value)))
    return out


@pytest.mark.parametrize("dataset", ["sample", "shop"])
@pytest.mark.parametrize("page", PAGES)
def test_every_page_speaks_the_analysts_words(words_store, monkeypatch, dataset, page):
    from core import config

    monkeypatch.setenv(config.DB_URL_ENV, words_store["url"])
    monkeypatch.setenv(config.HOME_ENV, str(words_store["folder"] / "home"))
    monkeypatch.chdir(words_store["folder"])
    at = AppTest.from_file(str(ROOT / "pages" / f"{page}.py"), default_timeout=TIMEOUT_S)
    at.session_state["dataset"] = dataset
    if page == "shopper":
        at.session_state["shopper_id"] = _busiest_shopper(words_store["url"], dataset)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    problems = [p for el in at.get("dataframe") for p in _table_problems(el)]
    problems += [p for el in at.get("plotly_chart") for p in _chart_problems(json.loads(el.proto.spec))]
    problems += _text_problems(at)
    if dataset == "shop":  # with a model, segments and an export every page shows tables, charts or tiles
        assert at.get("dataframe") or at.get("plotly_chart") or at.metric, "the page showed nothing to check"
    assert not problems, "\n".join(dict.fromkeys(problems))


def test_no_page_formats_a_number_by_hand():
    """Pages format numbers only through core.present.formats: no format spec such as ``{x:,.2f}`` in their source."""
    spec = re.compile(r"\{[^{}]+:[+]?,?(?:\.\d+)?[fd%]?\}")
    found = [f"{path.name}:{n}: {line.strip()}" for path in sorted((ROOT / "pages").glob("*.py"))
             for n, line in enumerate(path.read_text().splitlines(), 1) if spec.search(line)]
    assert not found, "\n".join(found)
