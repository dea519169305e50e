"""What was built before an append is marked as built on older data (core.store.freshness), on both stores."""
from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from core import store
from core.ingest.load import ingest_file
from tests.campaigns.test_campaigns import END, make_shop

NEW_EVENTS = ("user_id,event_time,event_type,product_id,price\n"
              "u01,2024-02-10 09:00:00,view,it1,1.0\n"
              "u02,2024-02-10 09:05:00,purchase,it2,100.0\n")


def _export(engine, did: int, created_at: dt.datetime) -> int:
    with engine.begin() as conn:  # the id from the sequence first, as the exports take theirs (Spark has no RETURNING)
        export_id = int(conn.execute(sa.select(store.export_id_seq.next_value())).scalar_one())
        conn.execute(store.exports.insert().values(
            export_id=export_id, dataset_id=did, created_at=created_at, format="csv", filters_json="{}",
            counts_json="{}", file_sha256="0" * 64, file_name="list.csv"))
    return export_id


def test_what_was_built_before_an_append_says_how_many_events_came_since(engine, tmp_path):
    did = make_shop(engine)  # its model trained 2024-02-01 and segments run 2024-02-02, on data up to END
    run_id = _latest_run(engine, did)
    before = _export(engine, did, dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(minutes=1))
    assert store.model_data_since(engine, "m1") is None and store.export_data_since(engine, before) is None
    path = tmp_path / "week.csv"
    path.write_text(NEW_EVENTS)
    ingest_file(engine, path, "shop", append=True)
    ingest_file(engine, path, "shop", append=True)  # the same file again adds nothing, and moves nothing
    for since in (store.model_data_since(engine, "m1"), store.segment_run_data_since(engine, run_id),
                  store.export_data_since(engine, before)):
        assert (since.data_end, since.events_added, since.files_added) == (END, 2, 2)
        assert since.note("retrain") == ("Built on the data up to 2024-01-31 12:00; 2 events were added since: "
                                         "retrain to include them.")
    after = _export(engine, did, dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(seconds=1))
    assert store.export_data_since(engine, after) is None
    assert store.model_data_since(engine, "no such model") is None


def test_one_event_added_is_said_in_the_singular(engine, tmp_path):
    make_shop(engine)
    path = tmp_path / "week.csv"
    path.write_text(NEW_EVENTS.rsplit("u02", 1)[0])
    ingest_file(engine, path, "shop", append=True)
    assert store.model_data_since(engine, "m1").note("retrain") == (
        "Built on the data up to 2024-01-31 12:00; 1 event was added since: retrain to include them.")


def _latest_run(engine, did: int) -> int:
    sr = store.segment_runs.c
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.max(sr.run_id)).where(sr.dataset_id == did)).scalar_one()


def test_a_rescore_after_the_append_brings_the_forecasts_up_to_date(engine, tmp_path):
    from core.model import scorings

    did = make_shop(engine)
    path = tmp_path / "week.csv"
    path.write_text(NEW_EVENTS)
    ingest_file(engine, path, "shop", append=True)
    assert store.model_data_since(engine, "m1").events_added == 2
    with engine.begin() as conn:
        scorings.record_scoring(conn, did, "m1", dt.datetime(2024, 2, 10, 9, 5), scorings.RESCORE, 2)
    assert store.model_data_since(engine, "m1") is None
