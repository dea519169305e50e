import datetime as dt

import pytest
import sqlalchemy as sa

from core import config, store
from core.errors import DatasetExistsError, DatasetNotFoundError, StoreUnavailableError
from tests.conftest import make_dataset

T0 = dt.datetime(2024, 3, 1, 12, 0)


def test_schema_created_and_versioned(engine):
    with engine.connect() as conn:
        assert conn.execute(sa.select(store.schema_info.c.version)).scalars().all() == [config.SCHEMA_VERSION]
    store.ensure_schema(engine)  # second call is a no-op
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(store.schema_info)).scalar() == 1


def test_newer_schema_is_refused(engine):
    with engine.begin() as conn:
        conn.execute(sa.update(store.schema_info).values(version=config.SCHEMA_VERSION + 1))
    with pytest.raises(StoreUnavailableError, match="newer cartsight"):
        store.ensure_schema(engine)


def test_dataset_round_trip_and_drop(engine):
    rows = [
        {"user_id": "u1", "event_time": T0, "event_type": "view", "item_id": "i1", "price": 9.5},
        {"user_id": "u2", "event_time": T0 + dt.timedelta(hours=1), "event_type": "purchase", "item_id": "i1"},
    ]
    did = make_dataset(engine, "shop; DROP TABLE cs_events;--", rows)
    ds = store.get_dataset(engine, "shop; DROP TABLE cs_events;--")
    assert ds["dataset_id"] == did and ds["n_users"] == 2 and ds["last_event"] == T0 + dt.timedelta(hours=1)
    with engine.begin() as conn:
        with pytest.raises(DatasetExistsError, match="exists already"):
            store.check_name_free(conn, "shop; DROP TABLE cs_events;--")
    assert store.drop_dataset(engine, "shop; DROP TABLE cs_events;--") == did
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(store.events)).scalar() == 0
    with pytest.raises(DatasetNotFoundError, match="No dataset named 'shop"):
        store.get_dataset(engine, "shop; DROP TABLE cs_events;--")


def test_url_resolution_order(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CARTSIGHT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv(config.DB_URL_ENV, raising=False)
    assert store.resolve_url() == f"duckdb:///{tmp_path / 'home' / 'cartsight.duckdb'}"
    monkeypatch.setenv(config.DB_URL_ENV, "duckdb:///env.duckdb")
    assert store.resolve_url() == "duckdb:///env.duckdb"
    (tmp_path / ".streamlit").mkdir()
    (tmp_path / ".streamlit" / "secrets.toml").write_text('[connections.cartsight]\nurl = "duckdb:///secret.duckdb"\n')
    assert store.resolve_url() == "duckdb:///secret.duckdb"
    assert store.resolve_url("duckdb:///explicit.duckdb") == "duckdb:///explicit.duckdb"


def test_unwritable_data_folder_gives_clear_message(tmp_path):
    # a regular file where the folder should be: unwritable even for root, unlike chmod
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    with pytest.raises(StoreUnavailableError, match="Cannot open the database"):
        store.make_engine(f"duckdb:///{blocker / 'sub' / 'x.duckdb'}")


def test_unreachable_postgres_gives_clear_message():
    with pytest.raises(StoreUnavailableError, match="Cannot open the database at postgresql"):
        store.make_engine("postgresql+psycopg://nobody:secret@127.0.0.1:1/none")


def test_bulk_insert_writes_rows_and_nulls_on_both_engines(engine):
    import pandas as pd

    frame = pd.DataFrame({
        "export_id": [7, 7, 7], "dataset_id": [1, 1, 1], "user_id": ["a", "b'; DROP TABLE x;--", "c"],
        "group_name": ["target", "holdout", "target"],
        "propensity_decile": pd.array([1, pd.NA, 10], dtype="Int64"),
        "not_a_column": [0, 0, 0],  # ignored: only the table's columns are written
    })
    with engine.begin() as conn:
        assert store.bulk_insert(conn, store.export_members, frame) == 3
        assert store.bulk_insert(conn, store.export_members, frame.iloc[:0]) == 0
    with engine.connect() as conn:
        rows = conn.execute(sa.select(store.export_members.c.user_id, store.export_members.c.propensity_decile)
                            .order_by(store.export_members.c.user_id)).all()
    assert [tuple(r) for r in rows] == [("a", 1), ("b'; DROP TABLE x;--", None), ("c", 10)]
