"""The analyst's weekly cycle end to end, once in a real browser and once from the CLI.

Load weeks 1-8 of a simulated shop, train, export a list with a holdout, add weeks 9-10, read the campaign's
results. The campaign's effect is planted: weeks 9-10 get one extra purchase, a day after the list's as-of time,
for every exported shopper (never for a held-out one). So the list's conversion in the window must be 100 % and
the holdout's is whatever the simulator's own purchases give; both are counted here by hand from the files
and compared with what the page and ``cartsight outcome --json`` report. Before the append the window is still
open and the result says "not enough data yet".
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from tests.e2e.test_e2e_concurrent import TINY_MODEL, TINY_SETTINGS, _serving, _session
from tests.e2e_support import _app_pages, full_screenshot, screens_of_every_page, settle
from tests.e2e.test_e2e_journey import STEP_TIMEOUT_MS, _download, _metric_value, _nav

N_USERS, WEEKS, FIRST_WEEKS, SIM_SEED = 400, 10, 8, 11
DATASET = "weekly shop"
HORIZON_DAYS = 7  # the model's default horizon: the outcome window's default length
CUTOFF = pd.Timestamp("2024-01-01") + pd.Timedelta(weeks=FIRST_WEEKS)  # the simulator starts on 2024-01-01
PLANTED_DELAY = pd.Timedelta(days=1)  # the planted purchase comes a day after the list's as-of time
EXPORT_BUTTON = re.compile(r"^Export and download [\d,]+ shoppers as ")


def _times(frame: pd.DataFrame) -> pd.Series:
    return pd.to_datetime(frame["event_time"].str.replace(" UTC", "", regex=False))


def _weeks_1_to_8(folder: Path) -> dict:
    """Write weeks 1-8 to ``weeks-1-8.csv``; keep weeks 9-10 (still without the campaign) for later."""
    from core import simulate

    events = simulate.simulate(N_USERS, weeks=WEEKS, seed=SIM_SEED).events
    early = _times(events) < CUTOFF
    first = folder / "weeks-1-8.csv"
    simulate.write_csv(events[early], first)
    return {"path": first, "early": events[early].reset_index(drop=True), "late": events[~early].reset_index(drop=True),
            "as_of": _times(events[early]).max()}


def _weeks_9_and_10(folder: Path, files: dict, exported: set[str]) -> Path:
    """Weeks 9-10 with the campaign's planted purchase for every exported shopper, written to ``weeks-9-10.csv``."""
    from core import simulate

    early = files["early"]
    last_rows = early[early["user_id"].astype(str).isin(exported)].groupby("user_id").tail(1).copy()
    when = files["as_of"] + PLANTED_DELAY
    last_rows["event_time"] = when.strftime("%Y-%m-%d %H:%M:%S") + " UTC"
    last_rows["event_type"] = "purchase"
    last_rows["user_session"] = "planted-" + last_rows["user_id"].astype(str)
    late = pd.concat([files["late"], last_rows], ignore_index=True).sort_values("event_time", kind="stable")
    path = folder / "weeks-9-10.csv"
    simulate.write_csv(late, path)
    files["late_with_campaign"] = late
    return path


def _by_hand(files: dict, treated: set[str], holdout: set[str]) -> dict:
    """Conversion and revenue per group in (as-of, as-of + horizon), from the files (exact repeats count once)."""
    late = files["late_with_campaign"].drop_duplicates()
    times = _times(late)
    start = files["as_of"]
    bought = late[(late["event_type"] == "purchase") & (times > start)
                  & (times < start + pd.Timedelta(days=HORIZON_DAYS))]
    buyers = set(bought["user_id"].astype(str))
    spend = bought.groupby(bought["user_id"].astype(str))["price"].sum()
    out = {}
    for name, group in (("treated", treated), ("holdout", holdout)):
        out[name] = len(group)
        out[f"converted_{name}"] = len(group & buyers)
        out[f"revenue_per_{name}"] = float(spend.reindex(sorted(group)).fillna(0).sum()) / len(group)
    return out


def _assert_measured(result: dict, expected: dict, export_id: int, as_of: pd.Timestamp) -> None:
    """``cartsight outcome --json`` against the numbers counted by hand."""
    assert result["export_id"] == export_id and result["window_days"] == HORIZON_DAYS
    assert pd.Timestamp(result["as_of"]) == as_of
    for key in ("treated", "holdout", "converted_treated", "converted_holdout"):
        assert result[key] == expected[key], key
    assert expected["converted_treated"] == expected["treated"]  # the plant reached every exported shopper
    holdout_rate = expected["converted_holdout"] / expected["holdout"]
    assert result["conversion_treated"] == pytest.approx(1.0)
    assert result["conversion_holdout"] == pytest.approx(holdout_rate)
    assert result["lift_abs"] == pytest.approx(1.0 - holdout_rate)
    assert 0 < result["lift_ci_low"] < result["lift_abs"] < result["lift_ci_high"] <= 1.0
    assert result["p_value"] < 0.001
    for key in ("revenue_per_treated", "revenue_per_holdout"):
        assert result[key] == pytest.approx(expected[key], abs=0.01), key
    assert result["incremental_revenue"] == pytest.approx(
        (expected["revenue_per_treated"] - expected["revenue_per_holdout"]) * expected["treated"], rel=1e-6)


# --------------------------------------------------------------------------- from the CLI
@pytest.mark.slow
@pytest.mark.parametrize("store_kind", ["duckdb", "postgres"])
def test_the_weekly_cycle_from_the_cli(store_kind, request, tmp_path, capsys, monkeypatch):
    from core import cli, config

    if store_kind == "duckdb":
        db = f"duckdb:///{tmp_path / 'store.duckdb'}"
    else:
        from tests.conftest import emptied_pg_schema_url

        db = emptied_pg_schema_url(request.getfixturevalue("pg_url"))
    monkeypatch.setenv(config.HOME_ENV, str(tmp_path / "home"))

    def run(*argv) -> dict:
        capsys.readouterr()
        assert cli.main([*argv, "--db", db]) == 0
        return json.loads(capsys.readouterr().out)

    files = _weeks_1_to_8(tmp_path)
    run("ingest", str(files["path"]), "--name", DATASET, "--json")
    tiny = tmp_path / "tiny.json"
    tiny.write_text(json.dumps({**TINY_MODEL, **TINY_SETTINGS}))
    run("train", "--dataset", DATASET, "--config", str(tiny), "--json", "--quiet")
    exported = run("export", "--dataset", DATASET, "--format", "csv", "--holdout", "0.3", "--out",
                   str(tmp_path / "lists"), "--json")
    treated = set(pd.read_csv(exported["out"], dtype={"user_id": str})["user_id"])
    assert len(treated) == exported["exported"] and exported["holdout"] >= 30

    waiting = run("outcome", "--dataset", DATASET, "--export", str(exported["export_id"]), "--json")
    assert "not enough data yet" in waiting["status_text"] and waiting["converted_treated"] == 0

    late = _weeks_9_and_10(tmp_path, files, treated)
    added = run("ingest", str(late), "--name", DATASET, "--append", "--json")
    assert added["appended"] and added["rows_read"] == added["rows_loaded"] + added["rows_quarantined"]
    result = run("outcome", "--dataset", DATASET, "--export", str(exported["export_id"]), "--json")

    from core import store

    engine = store.make_engine(db)
    try:
        holdout = set(pd.read_csv(_holdout_file(engine, exported["export_id"], tmp_path), dtype=str)["user_id"])
    finally:
        engine.dispose()
    assert len(holdout) == exported["holdout"] and not holdout & treated
    assert result["status"] == "measured"
    _assert_measured(result, _by_hand(files, treated, holdout), exported["export_id"], files["as_of"])


def _holdout_file(engine, export_id: int, folder: Path) -> Path:
    """The holdout as the Campaigns page hands it out (``exports.holdout_csv``), written to ``folder``."""
    from core.campaigns import exports

    path = folder / f"holdout-{export_id}.csv"
    path.write_bytes(exports.holdout_csv(engine, export_id))
    return path


# --------------------------------------------------------------------------- in the browser
def _upload_and_load(page, path: Path, name: str | None) -> None:
    """On the Data page: a new dataset called ``name``, or (name None) an addition to the one selected."""
    if name is None:
        page.get_by_role("radio", name="Add to an existing dataset").check(force=True)
        settle(page)
    page.get_by_test_id("stFileUploader").locator('input[type="file"]').set_input_files(str(path))
    page.get_by_text("How the file was read").wait_for()
    settle(page)
    if name is not None:
        page.get_by_label("Dataset name").fill(name)
        page.get_by_label("Dataset name").press("Enter")
        settle(page)
        page.get_by_role("button", name="Load", exact=True).click()
    else:
        page.get_by_role("button", name=f"Add to {DATASET}", exact=True).click()
        # the first load's report may still be on the page: wait for this file's own heading
        page.get_by_role("heading", name=f"Added {path.name} to {DATASET} (its file 2)").wait_for()
    page.get_by_text("Every row is accounted for").wait_for()
    settle(page)


def _train(page) -> None:
    _nav(page, "Forecasts")
    page.get_by_role("button", name="Train", exact=True).click()
    page.get_by_test_id("stAlertContentSuccess").filter(has_text="Trained model").wait_for()
    settle(page)


def _export_list(page, folder: Path) -> tuple[set[str], set[str]]:
    """Export the Campaigns page's default list (plain CSV, default holdout); the exported and held-out ids."""
    _nav(page, "Campaigns")
    exported = _download(page, EXPORT_BUTTON, folder)  # one click: the file, and the export recorded
    page.get_by_text(re.compile(r"^Export \d+ recorded and downloaded: ")).wait_for()
    page.get_by_role("button", name=re.compile(r"^Download cartsight-.* again$")).wait_for()
    settle(page)
    held = _download(page, re.compile(r"^Download its holdout \("), folder)
    return (set(pd.read_csv(exported, dtype={"user_id": str})["user_id"]),
            set(pd.read_csv(held, dtype=str)["user_id"]))


def _results_shown(page) -> dict:
    _nav(page, "Campaigns")
    page.get_by_role("heading", name="Results").wait_for()
    page.get_by_text(re.compile(r"^Measured: the window ended")).wait_for()
    return {label: _metric_value(page, label) for label in ("Conversion of the list", "Conversion of the holdout",
                                                            "Incremental buyers")}


@pytest.mark.browser
def test_the_weekly_cycle_in_the_browser(tmp_path, debian_chromium, capsys):
    from core import cli

    files = _weeks_1_to_8(tmp_path)
    db_url = f"duckdb:///{tmp_path / 'store.duckdb'}"
    with _serving(tmp_path, db_url) as base:
        with _session(debian_chromium) as page:
            page.set_default_timeout(STEP_TIMEOUT_MS)
            page.goto(f"{base}/data")
            page.get_by_role("heading", name="Data", exact=True).wait_for()
            _upload_and_load(page, files["path"], DATASET)
            _train(page)
            treated, holdout = _export_list(page, tmp_path)
            _nav(page, "Data")
            _upload_and_load(page, _weeks_9_and_10(tmp_path, files, treated), None)
            shown = _results_shown(page)
            full_screenshot(page, tmp_path / "results.png")
            screens = screens_of_every_page(page, "cycle")  # test-artifacts/screens/ with CARTSIGHT_TEST_SCREENS=1

    assert screens == [title for _, title, _ in _app_pages()]
    expected = _by_hand(files, treated, holdout)
    holdout_rate = expected["converted_holdout"] / expected["holdout"]
    assert shown["Conversion of the list"] == "100.0 %"
    assert shown["Conversion of the holdout"] == f"{holdout_rate * 100:.1f} %"
    assert shown["Incremental buyers"] == f"{(1 - holdout_rate) * expected['treated']:+,.1f}"
    capsys.readouterr()
    assert cli.main(["outcome", "--dataset", DATASET, "--export", "1", "--json", "--db", db_url]) == 0
    _assert_measured(json.loads(capsys.readouterr().out), expected, 1, files["as_of"])
