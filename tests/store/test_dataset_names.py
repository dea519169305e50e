"""Dataset names: refused when empty, blank, too long or holding control characters, wherever a dataset is made
(the store's check, ``ingest_file`` on DuckDB and PostgreSQL, the CLI; the Data page in test_page_data.py)."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from core import cli, config, store
from core.store.dataset_names import check_dataset_name, refusal, usable_dataset_name
from core.errors import ParameterError
from core.ingest.load import ingest_file
from tests import hostile_files as hf

#: (name, what the message must say about it)
REFUSED = [
    ("", "The dataset name '' is empty"),
    ("   ", "The dataset name '   ' is blank"),
    ("x" * 101, f"The dataset name '{'x' * 40}'… (101 characters) is 101 characters long"),
    ("Oct\t2019", r"'Oct\t2019' has a control character (tab, U+0009) at position 4"),
    ("Oct\n2019", r"'Oct\n2019' has a control character (line feed, U+000A) at position 4"),
    ("Oct\r", r"'Oct\r' has a control character (carriage return, U+000D) at position 4"),
    ("a\x00b", r"'a\x00b' has a control character (NUL, U+0000) at position 2"),
    ("a\x1b[31mred", r"has a control character (escape, U+001B) at position 2"),
    ("a\u2028b", "has a control character (line separator, U+2028) at position 2"),
    ("shop\u202egnp.exe", "has a control character (right-to-left override, U+202E) at position 5"),
    (" shop", "The dataset name ' shop' starts or ends with a space"),
    ("shop ", "The dataset name 'shop ' starts or ends with a space"),
    ("\u200b\u200b", "is blank (no visible character)"),
    ("\ufeff", "is blank (no visible character)"),
    ("\u3164", "is blank (no visible character)"),
    ("\u200bsales", "starts or ends with a space or an invisible character"),
    ("sales\u2060", "starts or ends with a space or an invisible character"),
]
ACCEPTED = ["x" * 100, "Oct 2019 — REES46 (head)", "données clients", "日本のお店", "family 👨\u200d👩\u200d👧",
            "shop; DROP TABLE cs_events;--", "=HYPERLINK(\"http://x\")"]


@pytest.mark.parametrize("name, said", REFUSED, ids=[repr(n[:12]) for n, _ in REFUSED])
def test_unusable_names_are_refused_with_the_name_and_what_is_expected(name, said):
    with pytest.raises(ParameterError) as err:
        check_dataset_name(name)
    assert err.value.parameter == "name"
    assert said in str(err.value)
    assert str(err.value).endswith(f"expected 1 to {config.DATASET_NAME_MAX_CHARS} characters, not all spaces, "
                                   "with no space at either end and no control characters (tabs, line breaks).")
    assert refusal(name) == str(err.value)


@pytest.mark.parametrize("name", ACCEPTED)
def test_usable_names_pass(name):
    check_dataset_name(name)
    assert refusal(name) is None


@pytest.mark.parametrize("text, name", [
    ("events.csv", "events.csv"), ("y" * 150, "y" * 100), ("a\tb\nc", "abc"), ("  \t ", "dataset"),
    ("score:" + "z" * 120, "score:" + "z" * 94), ("x" * 99 + " y", "x" * 99),
    ("\ufeffevents.csv", "events.csv"), ("\u200b", "dataset"),
])
def test_usable_dataset_name_makes_any_text_a_name(text, name):
    assert usable_dataset_name(text) == name
    check_dataset_name(name)


def _datasets_and_events(engine) -> tuple[int, int]:
    with engine.connect() as conn:
        return tuple(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar()
                     for t in (store.datasets, store.events))


@pytest.mark.parametrize("name", ["", "   ", "x" * 101, "Oct\t2019", "a\nb", "\x00"])
def test_ingest_refuses_the_name_and_writes_nothing(engine, tmp_path, name):
    path = tmp_path / "events.csv"
    path.write_text(hf.rees46_text([hf.rees46_row(1), hf.rees46_row(2)]), encoding="utf-8")
    with pytest.raises(ParameterError, match="The dataset name .* expected 1 to 100 characters"):
        ingest_file(engine, path, name)
    with engine.begin() as conn, pytest.raises(ParameterError):
        store.check_name_free(conn, name)  # the store's own guard, inside the load's transaction
    assert _datasets_and_events(engine) == (0, 0)
    ingest_file(engine, path, "x" * 100)  # the longest name allowed loads
    assert _datasets_and_events(engine) == (1, 2)


def test_cli_ingest_refuses_a_name_in_one_line(capsys, tmp_path):
    path = tmp_path / "events.csv"
    path.write_text(hf.rees46_text([hf.rees46_row(1)]), encoding="utf-8")
    db = f"duckdb:///{tmp_path / 'cli.duckdb'}"
    code = cli.main(["ingest", str(path), "--name", "Oct\t2019", "--db", db, "--quiet"])
    out, err = capsys.readouterr()
    assert code == cli.EXIT_USER_ERROR and out == ""
    assert err == ("cartsight: The dataset name 'Oct\\t2019' has a control character (tab, U+0009) at "
                   "position 4: expected 1 to 100 characters, not all spaces, with no space at either "
                   "end and no control characters (tabs, line breaks).\n")
    assert cli.main(["datasets", "--db", db]) == 0 and capsys.readouterr().out.strip() == "no datasets"
