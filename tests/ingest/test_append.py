"""Adding files to a dataset (core.ingest.append through core.ingest.load), on DuckDB and PostgreSQL: counts,
repeats of stored events, the file history, the dataset's mapping, derived tables, cancels and old stores."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import sqlalchemy as sa

from core import config, store
from core.errors import DatasetNotFoundError, IngestCancelled
from core.ingest.append import DATASET_MAPPING_NOTE, sniff_for_dataset
from core.ingest.load import ingest_file
from core.ingest.quarantine import quarantined_rows
from core.ingest.sniff import sniff, with_overrides
from tests.conftest import NO_OLD_SPARK_STORES, skip_on_spark

HEADER = "event_time,event_type,product_id,category_code,brand,price,user_id"
DAY0 = dt.datetime(2024, 5, 1)


def _line(t: dt.datetime, kind: str, item: int, cat: str, price: str, user: str, session: str | None = None) -> str:
    line = f"{t:%Y-%m-%d %H:%M:%S} UTC,{kind},{item},{cat},b,{price},{user}"
    return line if session is None else f"{line},{session}"


def _weeks(seed: int, n: int, sessions: bool) -> tuple[list[str], list[str]]:
    """Two weeks of lines for 12 shoppers: the second starts minutes after the first ends (a visit over the
    files' boundary), with categories, repeated and missing prices, purchases and carts."""
    rng = np.random.default_rng(seed)
    weeks = []
    for week in range(2):
        lines = []
        for i in range(n):
            t = DAY0 + dt.timedelta(days=7 * week, minutes=int(rng.integers(7 * 1440 - 30)))
            user = f"u{rng.integers(12)}"
            lines.append(_line(t, str(rng.choice(["view", "view", "cart", "purchase"])), int(rng.integers(9)),
                               str(rng.choice(["", "a", "a.b", "c"])), str(rng.choice(["", "5", "10", "12.5", "40"])),
                               user, f"s{user}-{t:%d%H}" if sessions else None))
        weeks.append(lines)
    edge = DAY0 + dt.timedelta(days=7)
    weeks[0].append(_line(edge - dt.timedelta(minutes=10), "view", 1, "a", "5", "u1", "sx" if sessions else None))
    weeks[1].append(_line(edge + dt.timedelta(minutes=5), "cart", 1, "a", "5", "u1", "sx" if sessions else None))
    return weeks[0], weeks[1]


def _write(path, lines: list[str], sessions: bool = False):
    path.write_text("\n".join([HEADER + (",user_session" if sessions else "")] + lines) + "\n")
    return path


def _snapshot(engine, did: int) -> dict:
    """Everything of the dataset: its row, files, events (with their source), quarantine and derived tables."""
    def rows(table, *order):
        query = sa.select(*[c for c in table.c if c.name != "dataset_id"]).where(table.c.dataset_id == did)
        with engine.connect() as conn:
            return sorted(tuple(map(repr, r)) for r in conn.execute(query).all()) if not order else \
                conn.execute(query.order_by(*order)).all()

    with engine.connect() as conn:
        ds = dict(conn.execute(sa.select(store.datasets).where(store.datasets.c.dataset_id == did)).mappings().one())
    return {"dataset": ds, "files": rows(store.dataset_files, store.dataset_files.c.file_no),
            **{t.name: rows(t) for t in (
                store.events, store.quarantine, store.session_days, store.price_edges)}}


def _derived(engine, did: int) -> dict:
    """The derived figures and each event's band and session, comparable across datasets."""
    e, sd, pe = store.events.c, store.session_days, store.price_edges
    with engine.connect() as conn:
        events = conn.execute(sa.select(e.user_id, e.event_time, e.event_type, e.item_id, e.price, e.session_id,
                                        e.price_band).where(e.dataset_id == did)).all()
        days = conn.execute(sa.select(*[c for c in sd.c if c.name != "dataset_id"])
                            .where(sd.c.dataset_id == did)).all()
        edges = conn.execute(sa.select(*[c for c in pe.c if c.name != "dataset_id"])
                             .where(pe.c.dataset_id == did)).all()
    key = lambda r: tuple((v is None, repr(v)) for v in r)  # noqa: E731 - NULLs sort too
    return {"events": sorted(map(tuple, events), key=key), "session_days": sorted(map(tuple, days), key=key),
            "price_edges": sorted(map(tuple, edges), key=key)}


def test_an_append_adds_the_files_events_and_the_dataset_counts_them(engine, tmp_path):
    first, second = _weeks(1, 60, sessions=False)
    one = ingest_file(engine, _write(tmp_path / "week1.csv", first), "shop")
    two = ingest_file(engine, _write(tmp_path / "week2.csv", second), "shop", append=True)
    assert (two.dataset_id, two.file_no, two.appended, two.repeated_events) == (one.dataset_id, 2, True, 0)
    assert two.rows_read == two.rows_loaded == 61 and two.source == "week2.csv"
    ds = store.get_dataset(engine, "shop")
    users = {ln.split(",")[6] for ln in first + second}
    assert (ds["rows_read"], ds["rows_loaded"], ds["rows_quarantined"], ds["n_users"]) == (122, 122, 0, len(users))
    assert (ds["first_event"], ds["last_event"]) == (one.first_event, two.last_event)
    history = store.dataset_file_history(engine, ds["dataset_id"])
    assert [(f["file_no"], f["name"], f["rows_read"], f["rows_loaded"], f["rows_quarantined"]) for f in history] == [
        (1, "week1.csv", 61, 61, 0), (2, "week2.csv", 61, 61, 0)]
    assert history[1]["first_event"] == two.first_event and history[0]["loaded_at"] <= history[1]["loaded_at"]
    e = store.events.c
    with engine.connect() as conn:  # each event knows its file and line
        source = conn.execute(sa.select(e.file_no, sa.func.min(e.line_no), sa.func.max(e.line_no), sa.func.count())
                              .where(e.dataset_id == one.dataset_id).group_by(e.file_no).order_by(e.file_no)).all()
    assert [tuple(r) for r in source] == [(1, 2, 62, 61), (2, 2, 62, 61)]


def test_appending_the_same_file_twice_adds_no_event_and_says_so(engine, tmp_path):
    first, _ = _weeks(2, 40, sessions=False)
    path = _write(tmp_path / "week1.csv", first)
    one = ingest_file(engine, path, "shop")
    before = _snapshot(engine, one.dataset_id)
    again = ingest_file(engine, path, "shop", append=True)
    assert (again.rows_read, again.rows_loaded, again.rows_quarantined, again.repeated_events) == (41, 0, 41, 41)
    assert again.quarantine_by_reason == {"duplicate": 41}
    assert again.notes[0] == "41 lines repeat events already in the dataset: this file adds no event"
    after = _snapshot(engine, one.dataset_id)
    for table in (store.events.name, "cs_session_days", "cs_price_edges"):
        assert after[table] == before[table], table
    assert after["dataset"]["rows_loaded"] == 41 and after["dataset"]["rows_read"] == 82
    assert [f[-7:-4] for f in after["files"]] == [(41, 41, 0), (41, 0, 41)]  # read, loaded, quarantined
    q = quarantined_rows(engine, "shop", file_no=2, with_file=True)
    assert len(q) == 41 and set(q["file_no"]) == {2} and set(q["reason"]) == {"duplicate"}
    line5 = q[q["line_no"] == 5].iloc[0]
    assert line5["raw_line"] == first[3]
    assert line5["detail"] == "repeats an event already in the dataset: line 5 of week1.csv (file 1)"


def test_a_repeated_line_is_quarantined_naming_the_earlier_file_and_line(engine, tmp_path):
    """A file's line equal to an earlier file's event on every canonical field (its time written in another
    form) is a duplicate; one that differs in any field (the price) is an event of its own."""
    t = DAY0 + dt.timedelta(hours=3)
    ingest_file(engine, _write(tmp_path / "w1.csv", [_line(t, "view", 1, "a", "10", "u1"),
                                                     _line(t, "view", 2, "a", "12", "u2")]), "shop")
    ingest_file(engine, _write(tmp_path / "w2.csv", [_line(t + dt.timedelta(days=1), "view", 3, "a", "9", "u3")]),
                "shop", append=True)
    third = [f"{t:%Y-%m-%dT%H:%M:%S}Z,view,2,a,b,12.0,u2", _line(t, "view", 1, "a", "11", "u1"),
             _line(t + dt.timedelta(days=1), "VIEW", 3, "a", "9", "u3")]
    report = ingest_file(engine, _write(tmp_path / "w3.csv", third), "shop", append=True)
    assert (report.rows_read, report.rows_loaded, report.rows_quarantined, report.repeated_events) == (3, 1, 2, 2)
    assert report.notes[0] == "2 lines repeat events already in the dataset: quarantined as duplicate, not added again"
    q = quarantined_rows(engine, "shop", file_no=3)
    assert q[["line_no", "detail"]].values.tolist() == [
        [2, "repeats an event already in the dataset: line 3 of w1.csv (file 1)"],
        [4, "repeats an event already in the dataset: line 2 of w2.csv (file 2)"]]
    ds = store.get_dataset(engine, "shop")
    assert (ds["rows_read"], ds["rows_loaded"], ds["rows_quarantined"]) == (6, 4, 2)


def test_a_session_given_by_the_file_is_part_of_the_event(engine, tmp_path):
    t = DAY0 + dt.timedelta(hours=3)
    ingest_file(engine, _write(tmp_path / "w1.csv", [_line(t, "view", 1, "a", "10", "u1", "s1")], sessions=True),
                "shop")
    report = ingest_file(engine, _write(tmp_path / "w2.csv", [_line(t, "view", 1, "a", "10", "u1", "s1"),
                                                              _line(t, "view", 1, "a", "10", "u1", "s2")],
                                        sessions=True), "shop", append=True)
    assert (report.rows_loaded, report.repeated_events) == (1, 1)


def test_within_one_appended_file_an_exact_repeat_is_still_a_duplicate_of_its_earlier_line(engine, tmp_path):
    t = DAY0 + dt.timedelta(hours=3)
    ingest_file(engine, _write(tmp_path / "w1.csv", [_line(t, "view", 1, "a", "10", "u1")]), "shop")
    line = _line(t + dt.timedelta(days=1), "view", 2, "a", "10", "u1")
    ingest_file(engine, _write(tmp_path / "w2.csv", [line, line]), "shop", append=True)
    assert quarantined_rows(engine, "shop", file_no=2)[["line_no", "detail"]].values.tolist() == [
        [3, "exact duplicate of an earlier line (line 2)"]]


@pytest.mark.parametrize("sessions", [False, True], ids=["derived sessions", "sessions in the file"])
def test_derived_tables_after_an_append_equal_those_of_one_load_of_both_files(engine, tmp_path, sessions):
    first, second = _weeks(3, 150, sessions)
    ingest_file(engine, _write(tmp_path / "w1.csv", first, sessions), "appended")
    report = ingest_file(engine, _write(tmp_path / "w2.csv", second, sessions), "appended", append=True)
    whole = ingest_file(engine, _write(tmp_path / "both.csv", first + second, sessions), "whole")
    got, want = _derived(engine, report.dataset_id), _derived(engine, whole.dataset_id)
    assert len(got["events"]) == 302 and got["price_edges"] and got["session_days"]
    assert got == want
    if not sessions:  # the visit over the files' boundary is one session, numbered after u1's earlier ones
        edge = DAY0 + dt.timedelta(days=7)
        near = dt.timedelta(minutes=10)
        visit = {ev[1]: ev[5] for ev in got["events"] if ev[0] == "u1" and abs(ev[1] - edge) <= near}
        assert len(visit) == 2 and len(set(visit.values())) == 1 and "u1-1" not in visit.values()
    for key in ("rows_loaded", "n_users", "first_event", "last_event"):
        assert store.get_dataset(engine, "appended")[key] == store.get_dataset(engine, "whole")[key], key


@pytest.mark.parametrize("stop_at", [0.0, 0.05, 0.45, 0.6, 0.85, 0.9, 0.95, 1.0])
def test_a_cancelled_append_leaves_the_dataset_as_it_was(engine, tmp_path, stop_at):
    first, second = _weeks(4, 50, sessions=False)
    one = ingest_file(engine, _write(tmp_path / "w1.csv", first), "shop")
    second += [first[0], "not a time,view,1,a,b,5,u1"]  # a repeat and a bad line: both quarantined
    path = _write(tmp_path / "w2.csv", second)
    before = _snapshot(engine, one.dataset_id)

    def progress(fraction, message):
        if fraction >= stop_at:
            raise IngestCancelled("cancelled by the analyst")

    with pytest.raises(IngestCancelled):
        ingest_file(engine, path, "shop", append=True, progress=progress)
    assert _snapshot(engine, one.dataset_id) == before
    report = ingest_file(engine, path, "shop", append=True)  # and the file appends afterwards
    assert (report.file_no, report.rows_loaded, report.rows_quarantined) == (2, 51, 2)


def test_an_append_to_a_dataset_that_does_not_exist_is_refused(engine, tmp_path):
    ingest_file(engine, _write(tmp_path / "w1.csv", _weeks(5, 5, False)[0]), "shop")
    with pytest.raises(DatasetNotFoundError, match=r"No dataset named 'shoq'.*\['shop'\]"):
        ingest_file(engine, tmp_path / "w1.csv", "shoq", append=True)


def test_the_datasets_own_mapping_is_offered_for_a_file_with_its_header(engine, tmp_path):
    """A dataset mapped by hand (the shopper is the 'who' column, the time the 'when' one): the next file with the
    same header loads with that mapping without being told, and the sniff offers it."""
    week1 = tmp_path / "w1.csv"
    week1.write_text("when,what,sku,who,where\n2024-05-01 10:00:00,view,1,alice,x\n2024-05-01 11:00:00,cart,1,bob,y\n")
    guess = sniff(week1, engine).mapping
    mine = with_overrides(guess, {"user_id": "who", "event_time": "when", "event_type": "what", "item_id": "sku"})
    ingest_file(engine, week1, "shop", mapping=mine)
    week2 = tmp_path / "w2.csv"
    week2.write_text("when,what,sku,who,where\n2024-05-08 10:00:00,purchase,1,carol,z\n")
    offered = sniff_for_dataset(week2, engine, "shop").mapping
    assert offered.columns["user_id"] == "who" and DATASET_MAPPING_NOTE in offered.notes
    report = ingest_file(engine, week2, "shop", append=True)
    assert report.rows_loaded == 1 and DATASET_MAPPING_NOTE in report.notes
    e = store.events.c
    with engine.connect() as conn:
        users = conn.execute(sa.select(e.user_id).where(e.dataset_id == report.dataset_id)
                             .order_by(e.event_time)).scalars().all()
    assert users == ["alice", "bob", "carol"]
    other = tmp_path / "w3.csv"  # another header: the sniff's own guess
    other.write_text("user_id,event_time,event_type,product_id\nu1,2024-05-09 10:00:00,view,1\n")
    assert sniff_for_dataset(other, engine, "shop").mapping.columns["user_id"] == "user_id"


def test_a_schema_3_store_gains_file_history_and_its_datasets_take_appends(engine, tmp_path):
    skip_on_spark(engine, NO_OLD_SPARK_STORES)
    first, second = _weeks(6, 30, sessions=False)
    one = ingest_file(engine, _write(tmp_path / "w1.csv", first), "old")
    with engine.begin() as conn:  # the store as schema 3 left it: no file numbers, no file history
        conn.exec_driver_sql("DROP TABLE cs_dataset_files")
        conn.exec_driver_sql("DROP VIEW cs_all_events")  # schema 12 made it
        conn.exec_driver_sql("ALTER TABLE cs_events DROP COLUMN line_no")
        conn.exec_driver_sql("ALTER TABLE cs_events DROP COLUMN file_no")
        conn.exec_driver_sql("ALTER TABLE cs_quarantine DROP COLUMN file_no")
        conn.execute(sa.update(store.schema_info).values(version=3))
    store.ensure_schema(engine)
    with engine.connect() as conn:
        assert conn.execute(sa.select(store.schema_info.c.version)).scalars().all() == [config.SCHEMA_VERSION]
    history = store.dataset_file_history(engine, one.dataset_id)
    assert [(f["file_no"], f["name"], f["rows_read"], f["rows_loaded"], f["last_event"]) for f in history] == [
        (1, "w1.csv", 31, 31, one.last_event)]
    report = ingest_file(engine, _write(tmp_path / "w2.csv", second + [first[2]]), "old", append=True)
    assert (report.file_no, report.rows_loaded, report.repeated_events) == (2, 31, 1)
    assert quarantined_rows(engine, "old", file_no=2)["detail"].tolist() == [
        "repeats an event already in the dataset, loaded from w1.csv (file 1)"]


def test_a_file_without_sessions_leaves_the_sessions_an_earlier_file_gave(engine, tmp_path):
    t = DAY0 + dt.timedelta(hours=3)
    ingest_file(engine, _write(tmp_path / "w1.csv", [_line(t, "view", 1, "a", "10", "u1", "visit-7")], sessions=True),
                "shop")
    ingest_file(engine, _write(tmp_path / "w2.csv", [_line(t + dt.timedelta(minutes=5), "view", 2, "a", "10", "u1")]),
                "shop", append=True)
    e = store.events.c
    with engine.connect() as conn:
        sessions = conn.execute(sa.select(e.session_id).order_by(e.event_time)).scalars().all()
    assert sessions == ["visit-7", "u1-1"]


def test_each_event_keeps_its_physical_line_past_blank_rejected_and_multiline_rows(engine, tmp_path):
    path = tmp_path / "odd.csv"
    path.write_text(HEADER + "\n"
                    "2024-05-01 10:00:00 UTC,view,1,a,b,5,u1\n"       # line 2
                    "\n"                                               # 3: blank
                    "yesterday,view,1,a,b,5,u1\n"                      # 4: no time
                    "2024-05-01 10:02:00 UTC,view,1\n"                 # 5: cut off
                    "2024-05-01 10:03:00 UTC,view,2,a,\"two\nlines\",5,u2\n"  # 6-7: a brand over two lines
                    "2024-05-01 10:04:00 UTC,cart,3,a,b,5,u3\n")       # 8
    report = ingest_file(engine, path, "odd")
    assert (report.rows_loaded, report.rows_quarantined) == (3, 2)
    e = store.events.c
    with engine.connect() as conn:
        lines = conn.execute(sa.select(e.item_id, e.file_no, e.line_no).order_by(e.event_time)).all()
    assert [tuple(r) for r in lines] == [("1", 1, 2), ("2", 1, 6), ("3", 1, 8)]


def test_dropping_a_dataset_drops_its_file_history(engine, tmp_path):
    first, second = _weeks(7, 10, sessions=False)
    ingest_file(engine, _write(tmp_path / "w1.csv", first), "shop")
    ingest_file(engine, _write(tmp_path / "w1.csv", first), "other")
    ingest_file(engine, _write(tmp_path / "w2.csv", second), "shop", append=True)
    store.drop_dataset(engine, "shop")
    f = store.dataset_files.c
    with engine.connect() as conn:
        left = conn.execute(sa.select(f.dataset_id, f.file_no, f.name)).all()
    assert [tuple(r)[1:] for r in left] == [(1, "w1.csv")] and left[0][0] == store.get_dataset(engine, "other")[
        "dataset_id"]
