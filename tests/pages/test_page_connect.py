"""The Data page's "Connect a table" form, driven by Streamlit's AppTest on both stores: read a team's table's
columns, fix the mapping, connect, and see the same report a load shows, with nothing copied."""
from __future__ import annotations

import sqlalchemy as sa

from core import store
from tests.conftest import ON_BOTH_STORES, ROOT
from tests.e2e_support import APPTEST_TIMEOUT_S, run_until
from tests.ingest.test_connect import TEAM, _make_team_table, _team_rows


@ON_BOTH_STORES
def test_connecting_a_table_from_the_data_page(app_store_url):
    from streamlit.testing.v1 import AppTest

    engine = store.make_engine(app_store_url)
    _make_team_table(engine, _team_rows())
    at = AppTest.from_file(str(ROOT / "pages" / "data.py"), default_timeout=APPTEST_TIMEOUT_S).run()
    at.text_input(key="data_connect_table").set_value("team_events").run()
    at.button(key="data_connect_read").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("Choose the column for" in w.value and "Event time" in w.value for w in at.warning)
    assert at.button(key="data_connect_go").disabled  # no time column yet
    at.selectbox(key="data_connect_team_events_event_time").set_value("happened_at").run()
    at.selectbox(key="data_connect_team_events_brand").set_value("maker").run()
    at.selectbox(key="data_connect_team_events_price").set_value("amount").run()
    at.text_input(key="data_connect_name_team_events").set_value("team").run()
    at.button(key="data_connect_go").click().run()
    run_until(at, lambda: any(m.label == "Rows loaded" for m in at.metric) or bool(at.error))
    assert not at.error, [e.value for e in at.error]
    metrics = {m.label: m.value for m in at.metric}
    assert (metrics["Rows read"], metrics["Rows loaded"], metrics["Rows quarantined"]) == ("143", "140", "3")
    assert any("Connected team to team_events" in h.value.replace("\\", "") for h in at.subheader)
    assert any("Every row is accounted for" in s.value for s in at.success)
    ds = store.get_dataset(engine, "team")
    assert (ds["layout"], ds["rows_loaded"]) == (store.CONNECTED_LAYOUT, 140)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(store.stored_events)).scalar() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(TEAM)).scalar() == 143
    engine.dispose()


@ON_BOTH_STORES
def test_refreshing_a_connected_dataset_from_the_data_page(app_store_url):
    from streamlit.testing.v1 import AppTest

    from core.ingest.connect import connect_table
    from tests.ingest.test_connect import MAP

    engine = store.make_engine(app_store_url)
    rows = _team_rows()
    _make_team_table(engine, rows[:70])
    connect_table(engine, "team_events", "team", overrides=MAP)
    with engine.begin() as conn:
        conn.execute(TEAM.insert(), rows[70:])
    at = AppTest.from_file(str(ROOT / "pages" / "data.py"), default_timeout=APPTEST_TIMEOUT_S).run()
    assert any("counted 70 rows, 70 events" in c.value for c in at.caption)
    at.button(key="data_connect_refresh").click().run()
    run_until(at, lambda: any(m.label == "Rows loaded" for m in at.metric) or bool(at.error))
    assert not at.error, [e.value for e in at.error]
    metrics = {m.label: m.value for m in at.metric}
    assert (metrics["Rows read"], metrics["Rows loaded"], metrics["Rows quarantined"]) == ("143", "140", "3")
    assert store.get_dataset(engine, "team")["rows_loaded"] == 140
    engine.dispose()
