"""The cartsight command line, called in-process and once as the installed console script."""
import json
import re
import shutil
import subprocess
import sys

import pandas as pd
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
    assert "(Taobao UserBehavior (no header))" in out


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


def test_ingest_reads_times_in_pacific_time_as_utc_and_says_so(capsys, db, tmp_path):
    """The command line loads with the sniffed mapping: a format it cannot choose must not be needed."""
    path = tmp_path / "pst.csv"
    path.write_text("user_id,event_time,event_type\n" + "".join(
        f"u{i},2019-10-01 {i:02d}:00:00 {'PDT' if i % 2 else 'PST'},view\n" for i in range(6)))
    code, out, _ = run(capsys, "ingest", str(path), "--name", "pst", "--db", db, "--quiet")
    assert code == 0
    assert "6 rows read = 6 loaded + 0 quarantined" in out
    assert "events 2019-10-01 08:00:00 .. 2019-10-01 12:00:00" in out
    assert "note: times end in a time zone (PDT = UTC-07:00, PST = UTC-08:00)" in out


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


# --- export: refusals exit 2 with nothing written or recorded, on both stores --------------------------


@pytest.fixture
def shop_url(engine, tmp_path, monkeypatch):
    """The hand-built shop of tests/campaigns/test_campaigns.py in a store of its own; yields (URL, engine)."""
    from core import config
    from tests.campaigns.test_campaigns import make_shop

    monkeypatch.setenv(config.HOME_ENV, str(tmp_path / "home"))
    make_shop(engine)
    return engine.url.render_as_string(hide_password=False), engine


def _recorded(engine) -> list[dict]:
    from core.campaigns import exports

    return exports.list_exports(engine, "shop").to_dict("records")


def test_export_to_a_missing_folder_is_refused_and_not_recorded(capsys, shop_url, tmp_path):
    url, engine = shop_url
    code, out, err = run(capsys, "export", "--db", url, "--dataset", "shop", "--format", "csv", "--top-percent", "50",
                         "--out", str(tmp_path / "nonexistent" / "dir" / "x.csv"))
    assert code == cli.EXIT_USER_ERROR
    assert "nonexistent/dir does not exist" in err and "Traceback" not in err
    assert _recorded(engine) == []


@pytest.mark.parametrize("content", ["customer_id,reason\nu39,unsubscribed\nu38,complaint\n",
                                     "Customer ID;Reason\nu39;unsubscribed\nu38;complaint\n"])
def test_export_suppression_with_a_header_suppresses(capsys, shop_url, tmp_path, content):
    url, engine = shop_url
    suppress = tmp_path / "suppress.csv"
    suppress.write_text(content)
    out = tmp_path / "list.csv"
    code, stdout, _ = run(capsys, "export", "--db", url, "--dataset", "shop", "--format", "csv", "--top-percent", "10",
                          "--holdout", "0", "--suppress", str(suppress), "--out", str(out), "--json")
    assert code == 0
    result = json.loads(stdout)
    assert (result["matched"], result["suppressed"], result["exported"]) == (4, 2, 2)
    assert out.read_text().splitlines()[1].startswith("u37,") and "u39" not in out.read_text()


def test_export_top_percent_by_expected_revenue_and_likely_to_lapse(capsys, shop_url, tmp_path):
    url, _ = shop_url
    out = tmp_path / "list.csv"
    code, stdout, _ = run(capsys, "export", "--db", url, "--dataset", "shop", "--format", "csv", "--top-percent", "20",
                          "--rank-by", "expected_revenue", "--holdout", "0", "--out", str(out), "--json")
    assert code == 0 and json.loads(stdout)["exported"] == 8
    rows = pd.read_csv(out, dtype={"user_id": str})
    assert rows["user_id"].tolist() == ["u17", "u34", "u11", "u28", "u05", "u22", "u39", "u16"]
    assert rows["expected_revenue"].tolist() == [195.0, 190.0, 185.0, 180.0, 175.0, 170.0, 165.0, 160.0]
    code, stdout, _ = run(capsys, "export", "--db", url, "--dataset", "shop", "--format", "csv", "--likely-to-lapse",
                          "--segment", "1", "--holdout", "0", "--out", str(out), "--json")
    rows = pd.read_csv(out, dtype={"user_id": str})
    assert code == 0 and sorted(rows["user_id"]) == [f"u{i}" for i in range(21, 40, 2)]
    assert rows["p_inactive"].min() >= 0.5


def test_export_with_an_unreadable_suppression_file_is_refused(capsys, shop_url, tmp_path):
    url, engine = shop_url
    suppress = tmp_path / "suppress.csv"
    suppress.write_text("contact,reason\nu39,complaint\n")
    out = tmp_path / "list.csv"
    code, _, err = run(capsys, "export", "--db", url, "--dataset", "shop", "--format", "csv", "--top-percent", "10",
                       "--suppress", str(suppress), "--out", str(out))
    assert code == cli.EXIT_USER_ERROR and "no user id or e-mail column" in err
    assert not out.exists() and _recorded(engine) == []


def test_export_without_consent_column_needs_a_stated_basis(capsys, shop_url, tmp_path):
    url, engine = shop_url
    identities = tmp_path / "ids.csv"
    identities.write_text("Customer ID,Email,Phone\n" + "".join(f"u{i},s{i}@example.com,\n" for i in range(30, 40)))
    out = tmp_path / "list.csv"
    args = ["export", "--db", url, "--dataset", "shop", "--format", "klaviyo", "--top-percent", "25", "--holdout", "0",
            "--identities", str(identities), "--out", str(out)]
    code, _, err = run(capsys, *args)
    assert code == cli.EXIT_USER_ERROR and "no consent_email column" in err and "nobody is exported" in err
    assert not out.exists() and _recorded(engine) == []
    code, stdout, _ = run(capsys, *args, "--consent-basis", "existing customers, soft opt-in")
    assert code == 0
    assert "legal basis stated: existing customers, soft opt-in" in stdout
    assert re.search(r"not_in_identities\s+0", stdout) and re.search(r"exported\s+10", stdout)
    [row] = _recorded(engine)
    assert (row["consent_column"], row["consent_basis"]) == ("consent_email", "existing customers, soft opt-in")


def test_export_under_the_platform_minimum_needs_allow_small(capsys, shop_url, tmp_path):
    url, engine = shop_url
    identities = tmp_path / "ids.csv"
    identities.write_text("user_id,email,consent_ads\nu39,a@example.com,yes\nu38,b@example.com,no\n")
    out = tmp_path / "list.csv"
    args = ["export", "--db", url, "--dataset", "shop", "--format", "google", "--top-percent", "10",
            "--identities", str(identities), "--out", str(out), "--json"]
    code, _, err = run(capsys, *args)
    assert code == cli.EXIT_USER_ERROR and "needs at least 100 matched people" in err and "--allow-small" in err
    assert not out.exists() and _recorded(engine) == []
    code, stdout, _ = run(capsys, *args, "--allow-small", "--holdout", "0")
    assert code == 0
    result = json.loads(stdout)
    assert (result["matched"], result["not_in_identities"], result["no_consent"], result["exported"]) == (4, 2, 1, 1)
    assert len(_recorded(engine)) == 1 and len(out.read_text().splitlines()) == 2


# --- output paths and stores it cannot use: one line, exit 2, nothing done ---------------------------------


TINY_CONFIG = {"max_len": 20, "hidden_size": 16, "n_layers": 1, "n_heads": 2, "epochs": 1, "batch_size": 64,
               "max_train_examples": 500, "torch_threads": 1}


def _one_line(err: str) -> str:
    assert err.startswith("cartsight: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err.removeprefix("cartsight: ").rstrip("\n")


def test_segment_and_score_check_the_output_folder_before_any_work(capsys, engine, tmp_path, monkeypatch):
    from core.analysis import segments
    from core.model import forecast
    from tests.conftest import load_simulated_shop

    monkeypatch.setenv("CARTSIGHT_HOME", str(tmp_path / "home"))
    load_simulated_shop(engine, "shop", n_users=60, weeks=3, seed=1)
    db = engine.url.render_as_string(hide_password=False)
    tiny = tmp_path / "tiny.json"
    tiny.write_text(json.dumps(TINY_CONFIG))
    out = tmp_path / "missing" / "result.csv"
    for argv in (["segment", "--dataset", "shop", "--k", "2"],
                 ["score", "--dataset", "shop", "--config", str(tiny), "--quiet"]):
        code = cli.main([*argv, "--db", db, "--out", str(out)])
        err = capsys.readouterr().err
        assert code == cli.EXIT_USER_ERROR, argv
        assert _one_line(err) == (f"--out {out}: the folder {out.parent} does not exist; create it first or "
                                  "choose another path.")
    assert segments.latest_run(engine, "shop") is None and forecast.list_models(engine, "shop") == []
    assert not out.parent.exists()


def test_one_shot_score_checks_the_output_folder_before_ingesting(capsys, tmp_path, shared_data, monkeypatch):
    monkeypatch.setenv("CARTSIGHT_HOME", str(tmp_path / "home"))
    out = tmp_path / "nowhere" / "scores.csv"
    code = cli.main(["score", str(shared_data / "rees46" / "2019-Oct-first1000.csv"), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USER_ERROR and "ingested" not in err
    assert _one_line(err).startswith(f"--out {out}: the folder {out.parent} does not exist")
    code = cli.main(["score", str(shared_data / "rees46" / "2019-Oct-first1000.csv"), "--out", str(tmp_path)])
    assert code == cli.EXIT_USER_ERROR
    assert _one_line(capsys.readouterr().err) == (f"--out {tmp_path}: that is a folder; expected a file path such "
                                                  f"as {tmp_path / 'results.csv'}.")


@pytest.mark.parametrize("argv", [["ingest", "{events}", "--name", "x"],
                                  ["segment", "--dataset", "x", "--out", "{out}"], ["datasets"]],
                         ids=["ingest", "segment", "datasets"])
def test_a_sqlite_store_is_refused_in_one_line(capsys, tmp_path, shared_data, argv):
    sqlite = tmp_path / "store.sqlite"
    values = {"events": str(shared_data / "rees46" / "2019-Oct-first1000.csv"), "out": str(tmp_path / "seg.csv")}
    code = cli.main([a.format(**values) for a in argv] + ["--db", f"sqlite:///{sqlite}"])
    assert code == cli.EXIT_USER_ERROR
    assert _one_line(capsys.readouterr().err) == (
        f"Cannot open the database at sqlite:///{sqlite}: cartsight stores its data in DuckDB, PostgreSQL or Spark "
        "SQL, not sqlite. Use a URL such as duckdb:///path/to/cartsight.duckdb, postgresql://user@host/dbname or "
        "hive://host:10001/default (a Spark Thrift Server).")
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no database file, no output


@pytest.mark.parametrize("command", [["segment", "--dataset", "oct"],
                                     ["export", "--dataset", "oct", "--format", "csv", "--top-percent", "50"]],
                         ids=["segment", "export"])
def test_out_naming_the_store_itself_is_refused_and_the_store_kept(capsys, db, shared_data, command):
    code, _, _ = run(capsys, "ingest", str(shared_data / "rees46" / "2019-Oct-first1000.csv"), "--name", "oct",
                     "--db", db, "--quiet")
    assert code == 0
    store_file = db.removeprefix("duckdb:///")
    code, _, err = run(capsys, *command, "--db", db, "--out", store_file)
    assert code == cli.EXIT_USER_ERROR
    assert _one_line(err) == (f"--out {store_file}: that file holds binary data (a database, workbook or archive), "
                              "not a CSV; it is left as it is: choose another path.")
    code, out, _ = run(capsys, "datasets", "--db", db, "--json")
    assert code == 0 and [d["name"] for d in json.loads(out)] == ["oct"]


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


def test_a_price_and_time_column_set_by_hand_are_read_as_the_sniff_reads_its_own(capsys, any_db, tmp_path):
    """A German export: no header the sniffer knows, prices with a decimal comma and a dot grouping thousands,
    dates written with dots; the sniffer took 'Datum' (an ISO date) as the time. Mapped by hand, the prices are
    read with their decimal comma and the time column chosen gets its own format (the prices were quarantined
    as no number, the times read in the format of the column the sniffer had picked)."""
    import datetime as dt

    path = tmp_path / "export.csv"
    path.write_text("Kunde;Datum;Zeitpunkt;Ereignis;Marke;Preis\n"
                    "1001;2026-12-01;07.12.2026 10:15;view;Adidas;1.299,00\n"
                    "1002;2026-12-01;08.12.2026 11:00;purchase;Levis;89,95\n", encoding="utf-8")
    code, out, err = run(capsys, "ingest", str(path), "--name", "de", "--db", any_db, "--quiet",
                         "--map", "user_id=Kunde", "--map", "event_time=Zeitpunkt", "--map", "event_type=Ereignis",
                         "--map", "brand=Marke", "--map", "price=Preis")
    assert code == 0, err
    assert _stored(any_db, "de") == [("1001", dt.datetime(2026, 12, 7, 10, 15), "view", "adidas", 1299.0),
                                     ("1002", dt.datetime(2026, 12, 8, 11, 0), "purchase", "levis", 89.95)]


def test_ingest_reads_an_order_status_column_set_by_hand_and_says_so(capsys, any_db, tmp_path):
    path = tmp_path / "payments.csv"
    path.write_text("payment,customer,paid on,amount,outcome\nP1,c1,2024-03-01 10:00,41.00,settled\n"
                    "P2,c2,2024-03-02 11:00,12.50,Reversed\nP3,c1,2024-03-03 12:00,9.00,pending\n")
    code, out, err = run(capsys, "ingest", str(path), "--name", "pay", "--db", any_db, "--quiet",
                         "--map", "status=Outcome")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "dataset 'pay' (Transactions (customer, date, amount)): 3 rows read = 2 loaded + 1 quarantined"
    assert "  quarantined: not_a_purchase              1" in lines
    assert any(line.startswith("note: the order status is read from 'outcome': a purchase whose status says no "
                               "money was kept") for line in lines)
    assert [r[0] for r in _stored(any_db, "pay")] == ["c1", "c1"]


def test_ingest_unmaps_the_status_column_found(capsys, db, tmp_path):
    path = tmp_path / "payments.csv"
    path.write_text("id,Created (UTC),Amount,Amount Refunded,Status,Customer ID\n"
                    "ch_1,2024-03-01 10:05:12,41.00,0.00,Paid,cus_1\nch_2,2024-03-02 11:00:40,12.50,12.50,Refunded,"
                    "cus_2\n")
    code, out, err = run(capsys, "ingest", str(path), "--name", "all", "--db", db, "--json", "--quiet")
    assert code == 0, err
    assert (json.loads(out)["rows_loaded"], json.loads(out)["quarantine_by_reason"]) == (1, {"not_a_purchase": 1})
    code, out, err = run(capsys, "ingest", str(path), "--name", "kept", "--db", db, "--json", "--quiet",
                         "--map", "status=", "--map", "amount_refunded=")
    assert code == 0, err
    report = json.loads(out)
    assert (report["rows_loaded"], report["rows_quarantined"]) == (2, 0)
    assert not any(n.startswith(("the order status is read from", "the amount refunded is read from"))
                   for n in report["notes"])

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
    (["--map", "user_id=cust", "--map", "user_id=sku"],
     "cartsight: --map 'user_id=sku': user_id is already mapped (user_id=cust): expected one --map per field"),
], ids=["unknown field", "missing column", "unknown time format", "unknown event type", "unknown price kind",
        "no equals sign", "lines not a number", "event type twice", "time unmapped", "field mapped twice"])
def test_ingest_refuses_a_mapping_it_cannot_use_in_one_line(capsys, any_db, tmp_path, flags, message):
    path = tmp_path / "odd.csv"
    path.write_text(ODD)
    code, out, err = run(capsys, "ingest", str(path), "--name", "odd", "--db", any_db, "--quiet", *flags)
    assert code == cli.EXIT_USER_ERROR and out == ""
    assert err.startswith(message) and err.count("\n") == 1
    assert run(capsys, "datasets", "--db", any_db)[1].strip() == "no datasets"


def test_a_config_file_holds_model_and_run_settings_apart(tmp_path):
    """``--config`` may mix ModelConfig and PipelineSettings fields: each goes to its own object for training."""
    import argparse

    from core.errors import ParameterError
    from core.model.config import ModelConfig, PipelineSettings

    path = tmp_path / "both.json"
    path.write_text(json.dumps({**TINY_CONFIG, "chunk_users": 70, "n_reasons": 1}))
    got = cli._model_config(argparse.Namespace(config=str(path)))
    assert got["config"] == ModelConfig(max_len=20, hidden_size=16, n_layers=1, n_heads=2, epochs=1, batch_size=64,
                                        max_train_examples=500)
    assert got["settings"] == PipelineSettings(chunk_users=70, n_reasons=1, torch_threads=1)
    assert cli._model_config(argparse.Namespace(config=None)) == {}
    path.write_text(json.dumps({"torch_threads": 0}))
    with pytest.raises(ParameterError, match="PipelineSettings parameter 'torch_threads' is 0"):
        cli._model_config(argparse.Namespace(config=str(path)))


def test_ingest_append_of_the_same_file_adds_no_event_and_says_so(capsys, db, shared_data):
    path = str(shared_data / "rees46" / "2019-Oct-first1000.csv")
    code, out, _ = run(capsys, "ingest", path, "--name", "oct", "--db", db, "--json")
    first = json.loads(out)
    code, out, _ = run(capsys, "ingest", path, "--name", "oct", "--append", "--db", db, "--quiet")
    assert code == 0
    loaded = first["rows_loaded"]
    assert f"file 2 (2019-Oct-first1000.csv) added to dataset 'oct' (REES46 multi-category store): {first['rows_read']:,} rows read = " \
           f"0 loaded + {first['rows_read']:,} quarantined" in out
    assert f"note: {loaded:,} lines repeat events already in the dataset: this file adds no event" in out
    assert f"dataset 'oct' now: {loaded:,} events of {first['users']:,} shoppers" in out
    code, out, _ = run(capsys, "datasets", "--db", db, "--json")
    [row] = json.loads(out)
    assert row["rows_loaded"] == loaded and row["rows_read"] == 2 * first["rows_read"]
    assert [(f["file_no"], f["name"], f["rows_read"], f["rows_loaded"], f["rows_quarantined"], f["rows_repeated"])
            for f in row["files"]] == [
        (1, "2019-Oct-first1000.csv", first["rows_read"], loaded, first["rows_quarantined"], 0),
        (2, "2019-Oct-first1000.csv", first["rows_read"], 0, first["rows_read"], loaded)]
    assert row["files"][0]["last_event"].startswith(first["last_event"][:19])


def test_ingest_append_to_a_dataset_that_does_not_exist_says_which_exist(capsys, db, shared_data):
    path = str(shared_data / "rees46" / "2019-Oct-first1000.csv")
    run(capsys, "ingest", path, "--name", "oct", "--db", db, "--quiet")
    code, _, err = run(capsys, "ingest", path, "--name", "nov", "--append", "--db", db, "--quiet")
    assert code == cli.EXIT_USER_ERROR and "No dataset named 'nov'" in err and "['oct']" in err


def test_overview_prints_the_pages_headline_numbers_funnel_and_top_categories(capsys, any_db, shared_data):
    code, _, _ = run(capsys, "ingest", str(shared_data / "rees46" / "2019-Oct-head.csv"), "--name", "oct",
                     "--db", any_db, "--quiet")
    assert code == 0
    code, out, _ = run(capsys, "overview", "--dataset", "oct", "--db", any_db, "--json", "--top", "3")
    assert code == 0
    got = json.loads(out)
    assert (got["kpis"]["shoppers"], got["kpis"]["events"]) == (4_504, 17_429)
    assert got["kpis"]["purchases"] == 214 and got["kpis"]["buyers"] <= 214
    assert [r["step"] for r in got["funnel"]] == ["view", "cart", "purchase"]
    assert len(got["top_categories"]) == 3
    views = [r["views"] for r in got["top_categories"]]
    assert views == sorted(views, reverse=True) and views[0] > 0
    code, out, _ = run(capsys, "overview", "--dataset", "oct", "--db", any_db)
    assert code == 0 and "shoppers       4504" in out and "funnel (shoppers): view " in out
    assert got["top_categories"][0]["name"] in out
