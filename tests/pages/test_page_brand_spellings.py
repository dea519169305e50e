"""Brands on the Overview and Preferences pages as the data spells them: "Brand 203", and one "Samsung" for a file
that spells it "Samsung" more often than "SAMSUNG" (AppTest on DuckDB and PostgreSQL)."""
from __future__ import annotations

import json

from streamlit.testing.v1 import AppTest

from core import store
from core.ingest.load import ingest_file
from tests.conftest import ON_BOTH_STORES, ROOT

HEADER = "event_time,event_type,product_id,category_code,brand,price,user_id"
BRANDS = ["Samsung"] * 4 + ["SAMSUNG"] * 2 + ["Brand 203"] * 3 + ["apple"]


def _load(url: str, tmp_path) -> None:
    lines = [f"2024-05-01 10:{i:02d}:00 UTC,view,p{i},electronics.phone,{b},{10 + i},"
             f"u{i}" for i, b in enumerate(BRANDS)]
    path = tmp_path / "phones.csv"
    path.write_text("\n".join([HEADER, *lines]) + "\n")
    engine = store.make_engine(url)
    try:
        ingest_file(engine, path, "phones")
    finally:
        engine.dispose()  # the page opens its own engine


def _bar_labels(at: AppTest, title_start: str) -> list[str]:
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    found = [s for s in specs if s["layout"]["title"]["text"].startswith(title_start)]
    assert len(found) == 1, [s["layout"]["title"]["text"] for s in specs]
    return list(found[0]["data"][0]["y"])


def _run(page: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "pages" / f"{page}.py"), default_timeout=120)
    at.session_state["dataset"] = "phones"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@ON_BOTH_STORES
def test_the_overview_and_preferences_show_brands_as_the_data_spells_them(app_store_url, tmp_path):
    _load(app_store_url, tmp_path)
    overview = _run("overview")
    assert _bar_labels(overview, "Top 3 brands") == ["Samsung", "Brand 203", "apple"]
    prefs = _run("preferences")
    assert sorted(_bar_labels(prefs, "Brand share")) == ["Brand 203", "Samsung", "apple"]
    tables = [el.value for el in prefs.get("dataframe")]
    brand_tables = [t for t in tables if "Samsung" in t.iloc[:, 0].tolist()]
    assert brand_tables and all("SAMSUNG" not in t.iloc[:, 0].tolist() and "samsung" not in t.iloc[:, 0].tolist()
                                for t in brand_tables)
    samsung = brand_tables[0].set_index(brand_tables[0].columns[0]).loc["Samsung"]
    assert samsung.iloc[0] == 6  # the events of both spellings: one brand
