"""The cartsight command line, called in-process and once as the installed console script."""
import json
import shutil
import subprocess
import sys

import pytest

from core import cli


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def db(tmp_path):
    return f"duckdb:///{tmp_path / 'cli.duckdb'}"


def test_ingest_json_report_and_listing(capsys, db, shared_data):
    code, out, _ = run(capsys, "ingest", str(shared_data / "rees46" / "2019-Oct-head.csv"),
                       "--name", "oct head", "--db", db, "--json")
    assert code == 0
    report = json.loads(out)
    assert report["dataset"] == "oct head" and report["layout"] == "rees46"
    assert (report["rows_read"], report["rows_loaded"], report["rows_quarantined"]) == (17_435, 17_429, 6)
    assert report["users"] == 4_504
    assert report["events_by_type"] == {"view": 17_051, "cart": 164, "purchase": 214}
    assert report["first_event"].startswith("2019-10-01 00:00:00")
    assert report["last_event"].startswith("2019-10-01 02:50:00")

    code, out, _ = run(capsys, "datasets", "--db", db, "--json")
    assert code == 0
    [row] = json.loads(out)
    assert (row["name"], row["rows_loaded"], row["rows_quarantined"]) == ("oct head", 17_429, 6)

    code, out, _ = run(capsys, "datasets", "--db", db)
    assert "oct head" in out and "17,429" in out


def test_ingest_text_report_names_the_quarantine_reasons(capsys, db, shared_data):
    code, out, _ = run(capsys, "ingest", str(shared_data / "taobao" / "UserBehavior-first43users.csv"),
                       "--name", "taobao", "--db", db, "--quiet")
    assert code == 0
    assert "4,321 rows read = 4,321 loaded + 0 quarantined" in out
    assert "(taobao)" in out


def test_ingest_reads_the_worksheet_named(capsys, db, tmp_path):
    from openpyxl import Workbook

    book = Workbook()
    book.active.title = "Summary"
    book.active.append(["Orders", 2])
    events = book.create_sheet("Events")
    for row in [["user_id", "event_time", "event_type"], ["u1", "2024-03-01 10:00:00", "view"],
                ["u1", "2024-03-01 10:05:00", "purchase"]]:
        events.append(row)
    book.save(tmp_path / "report.xlsx")
    code, out, _ = run(capsys, "ingest", str(tmp_path / "report.xlsx"), "--sheet", "Events", "--name", "r",
                       "--db", db, "--json")
    assert code == 0
    report = json.loads(out)
    assert (report["rows_read"], report["rows_loaded"]) == (2, 2)
    assert report["notes"][0].startswith("an Excel workbook: its worksheet 'Events' is read")
    code, _, err = run(capsys, "ingest", str(tmp_path / "report.xlsx"), "--sheet", "Gone", "--name", "g",
                       "--db", db, "--quiet")
    assert code == cli.EXIT_USER_ERROR and "has no worksheet 'Gone'" in err


def test_existing_name_and_unreadable_file_exit_non_zero(capsys, db, shared_data, tmp_path):
    path = str(shared_data / "rees46" / "2019-Oct-first1000.csv")
    assert run(capsys, "ingest", path, "--name", "x", "--db", db, "--quiet")[0] == 0
    code, _, err = run(capsys, "ingest", path, "--name", "x", "--db", db, "--quiet")
    assert code == cli.EXIT_USER_ERROR and "exists already" in err
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    code, _, err = run(capsys, "ingest", str(empty), "--name", "empty", "--db", db, "--quiet")
    assert code == cli.EXIT_USER_ERROR and err.startswith("cartsight: ") and "Traceback" not in err


def test_drop_removes_the_dataset(capsys, db, shared_data):
    run(capsys, "ingest", str(shared_data / "rees46" / "2019-Oct-first1000.csv"), "--name", "gone", "--db", db, "--quiet")
    code, out, _ = run(capsys, "drop", "gone", "--db", db)
    assert code == 0 and "dropped dataset 'gone'" in out
    assert run(capsys, "datasets", "--db", db)[1].strip() == "no datasets"
    code, _, err = run(capsys, "drop", "gone", "--db", db)
    assert code == cli.EXIT_USER_ERROR and "No dataset named 'gone'" in err


def test_console_script_exit_code(db, tmp_path):
    exe = shutil.which("cartsight") or pytest.skip("cartsight console script not installed (pip install -e .)")
    bad = tmp_path / "binary.csv"
    bad.write_bytes(bytes(range(256)) * 40)
    proc = subprocess.run([exe, "ingest", str(bad), "--name", "bin", "--db", db], capture_output=True, text=True)
    assert proc.returncode == cli.EXIT_USER_ERROR
    assert proc.stderr.strip().splitlines()[-1].startswith("cartsight: ")


@pytest.fixture(params=["duckdb", "postgres"])
def any_db(request, tmp_path):
    """A store URL, once a DuckDB file and once an emptied PostgreSQL schema."""
    if request.param == "duckdb":
        return f"duckdb:///{tmp_path / 'cli.duckdb'}"
    from tests.conftest import emptied_pg_schema_url

    return emptied_pg_schema_url(request.getfixturevalue("pg_url"))


ODD = ("cust,when,amount,brand,sku\nc1,01/03/2024 10:00,10.00,Acme,A\nc2,02/03/2024 11:30,4.50,Leafy,B\n"
       "c1,03/03/2024 09:15,7.25,Acme,A\n")


def _stored(url: str, name: str) -> list[tuple]:
    import sqlalchemy as sa

    from core import store

    engine = store.make_engine(url)
    try:
        did = store.get_dataset(engine, name)["dataset_id"]
        e = store.events.c
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.select(e.user_id, e.event_time, e.event_type, e.brand, e.price)
                                                   .where(e.dataset_id == did).order_by(e.event_time))]
    finally:
        engine.dispose()


def test_ingest_sets_the_mapping_by_hand(capsys, any_db, tmp_path):
    import datetime as dt

    path = tmp_path / "odd.csv"
    path.write_text(ODD)  # no known shopper name, no event type; day-first dates the sniffer reads month-first
    code, out, err = run(capsys, "ingest", str(path), "--name", "odd", "--db", any_db, "--json",
                         "--map", "user_id=CUST", "--map", "brand=", "--event-type", "purchase",
                         "--time-format", "dmy_hm")
    assert code == 0, err
    report = json.loads(out)
    assert (report["rows_read"], report["rows_loaded"], report["events_by_type"]) == (3, 3, {"purchase": 3})
    assert "mapping set by hand: user_id='cust', brand unmapped, every row 'purchase', time_format 'dmy_hm'" in \
        report["notes"]
    assert not any(n.startswith(("no user column found", "no event type column found")) for n in report["notes"])
    assert _stored(any_db, "odd") == [("c1", dt.datetime(2024, 3, 1, 10), "purchase", None, 10.0),
                                      ("c2", dt.datetime(2024, 3, 2, 11, 30), "purchase", None, 4.5),
                                      ("c1", dt.datetime(2024, 3, 3, 9, 15), "purchase", None, 7.25)]


def test_ingest_skips_the_lines_given_and_reads_a_total_as_told(capsys, db, tmp_path):
    path = tmp_path / "export.csv"
    path.write_text("Shop export,2024-03-05,all stores,EUR\nuser_id,event_time,price,qty\n"
                    "u1,2024-03-01 10:00:00,30.00,3\nu2,2024-03-02 10:00:00,5.00,1\n")
    code, out, err = run(capsys, "ingest", str(path), "--name", "skip", "--db", db, "--json", "--skip-lines", "1",
                         "--event-type", "order", "--price-is", "line_total")
    assert code == 0, err
    report = json.loads(out)
    assert (report["rows_read"], report["rows_loaded"], report["events_by_type"]) == (2, 2, {"purchase": 2})
    assert "the first 1 lines are skipped, as chosen; the table starts at line 2" in report["notes"]
    assert [r[4] for r in _stored(db, "skip")] == [10.0, 5.0]  # 30.00 for 3: 10.00 each


@pytest.mark.parametrize(("flags", "message"), [
    (["--map", "colour=brand"], "cartsight: 'colour' is no field of the event schema: expected one of ['user_id', "),
    (["--map", "user_id=cust", "--map", "price=amount_usd"],
     "cartsight: price is mapped to column 'amount_usd', which is not in the file. Columns in file: ['cust', 'when', "),
    (["--time-format", "yyyymmdd"], "cartsight: time format 'yyyymmdd' is not supported: expected one of ['iso', "),
    (["--event-type", "bought"], "cartsight: event type 'bought' is not supported for every row: expected one of "),
    (["--price-is", "cost"], "cartsight: price_is 'cost' is not supported: expected one of ['unit_price', "),
    (["--map", "user_id"], "cartsight: --map 'user_id': expected FIELD=COLUMN (user_id=cust), or FIELD= to unmap it"),
    (["--skip-lines", "two"], "cartsight: --skip-lines 'two': expected a whole number of lines >= 0"),
    (["--map", "event_type=sku", "--event-type", "view"],
     "cartsight: the event type is set twice, for every row ('view') and from column 'sku': expected one of them"),
    (["--map", "user_id=when", "--map", "event_time="], "cartsight: no time column: expected one of event_time, "),
], ids=["unknown field", "missing column", "unknown time format", "unknown event type", "unknown price kind",
        "no equals sign", "lines not a number", "event type twice", "time unmapped"])
def test_ingest_refuses_a_mapping_it_cannot_use_in_one_line(capsys, any_db, tmp_path, flags, message):
    path = tmp_path / "odd.csv"
    path.write_text(ODD)
    code, out, err = run(capsys, "ingest", str(path), "--name", "odd", "--db", any_db, "--quiet", *flags)
    assert code == cli.EXIT_USER_ERROR and out == ""
    assert err.startswith(message) and err.count("\n") == 1
    assert run(capsys, "datasets", "--db", any_db)[1].strip() == "no datasets"
