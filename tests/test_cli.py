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
