"""The analyst's journey past Overview, in a real browser: segment the shoppers, see one segment's
preferences, open one of its shoppers, then build a target list for that segment and download it
(plain CSV, then Google Customer Match with an identity file) and check the downloaded rows.

The store is prepared before the server starts (400 simulated shoppers over 8 weeks, ingested
through ``core.ingest.load``, and a tiny forecast model trained so that the list has propensities):
the Forecasts page's own flow is covered elsewhere. DuckDB lets one process open the file, so
what the browser showed is checked against the store only after the server has stopped.
Screenshots land in the test's temporary folder (``screenshots/``) when CARTSIGHT_TEST_SCREENS=1.
"""
from __future__ import annotations

import csv
import os
import re
from pathlib import Path

import pytest

from tests.e2e_support import (CHROMIUM, SCREENS_DIR, _app_pages, app_in_browser, choose, full_screenshot,
                                open_options, screens_of_every_page, screens_wanted, settle)

pytestmark = pytest.mark.browser

N_USERS, WEEKS, SIM_SEED = 400, 8, 5
N_SEGMENTS = 4  # chosen on the slider: auto, 2, 3, 4 -> three steps right
DATASET = "journey"
STEP_TIMEOUT_MS = 180_000  # the 2 cores are shared (a CI run at a third of the usual speed hit 90 s on a download)
NO_ADS_CONSENT_EVERY = 5  # every 5th shopper of the identity file says no to ads
HEX64 = re.compile(r"^[0-9a-f]{64}$")


def _tiny_config():
    from core.model.config import ModelConfig

    # the tiny configuration of tests/model/test_forecast.py
    return ModelConfig(max_len=20, hidden_size=16, n_layers=1, n_heads=2, epochs=2, min_train_steps=30, batch_size=64,
                       max_train_examples=3000, n_train_cutoffs=2, item_vocab_cap=500)


def _tiny_settings():
    from core.model.config import PipelineSettings

    # its run settings: small query chunks, one torch thread
    return PipelineSettings(chunk_users=150, torch_threads=1)


def _identity_rows(user_ids: list[str]) -> list[dict]:
    """One identity per shopper: a unique e-mail, a UK mobile, ads consent for all but every 5th."""
    rows = []
    for i, uid in enumerate(sorted(user_ids)):
        rows.append({"user_id": uid, "email": f" Shopper.{i}@Example.COM ", "phone": f"+44 7911 {100000 + i}",
                     "first_name": f"Name{i}", "last_name": "Doe", "country": "GB", "postal_code": "SW1A 1AA",
                     "consent_email": "yes", "consent_sms": "no",
                     "consent_ads": "no" if i % NO_ADS_CONSENT_EVERY == 0 else "yes"})
    return rows


@pytest.fixture
def prepared_store(tmp_path, monkeypatch):
    """A tmp folder whose DuckDB store holds the simulated dataset and a trained tiny model; the engine is disposed."""
    if not CHROMIUM.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser test: {CHROMIUM} is missing (apt-get install -y chromium)")
        pytest.skip(f"{CHROMIUM} not installed (apt-get install -y chromium)")
    import torch

    from core import config, simulate, store
    from core.model import forecast
    from core.ingest.load import ingest_file

    torch.set_num_threads(1)
    monkeypatch.setenv(config.HOME_ENV, str(tmp_path / "home"))  # the server's home: the model files live there
    sim = simulate.simulate(N_USERS, weeks=WEEKS, seed=SIM_SEED)
    events_csv = tmp_path / "shoppers.csv"
    simulate.write_csv(sim, events_csv)
    engine = store.make_engine(f"duckdb:///{tmp_path / 'store.duckdb'}")
    try:
        report = ingest_file(engine, events_csv, DATASET)
        assert report.users == N_USERS
        forecast.train(engine, DATASET, config=_tiny_config(), seed=1, settings=_tiny_settings())
    finally:
        engine.dispose()
    ids = sorted(sim.events["user_id"].astype(str).unique())
    identities = tmp_path / "identities.csv"
    rows = _identity_rows(ids)
    with identities.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return tmp_path


# --------------------------------------------------------------------------- page helpers
def _metric_value(page, label: str, nth: int = 0) -> str:
    tile = page.get_by_test_id("stMetric").filter(has=page.get_by_test_id("stMetricLabel").filter(
        has_text=re.compile(f"^{re.escape(label)}$")))
    return tile.nth(nth).get_by_test_id("stMetricValue").inner_text().strip()


def _count(text: str) -> int:
    return int(text.replace(",", ""))


def _steady_counts(page, keys: tuple[str, ...], total: int, button: re.Pattern) -> tuple[dict, int]:
    """The Campaigns page's count tiles and export button once they agree with one another.

    A rerun replaces the page's elements top to bottom, and on a loaded machine it can start after
    ``_settle``'s wait, so tiles further down may still show the previous filters' numbers: wait until
    the tiles (``keys``) add up to ``total`` and the button offers what "Exported" says.
    """
    waited = 0
    while True:
        counts = {k: _count(_metric_value(page, k)) for k in ("Matched the filters", *keys)}
        offered = _count(re.search(r"Export and download ([\d,]+) shoppers", page.get_by_role("button", name=button).inner_text()).group(1))
        if counts["Matched the filters"] == total == sum(counts[k] for k in keys) and offered == counts["Exported"]:
            return counts, offered
        assert waited < STEP_TIMEOUT_MS, f"the counts never agreed: {counts}, button {offered}, {total} matched"
        page.wait_for_timeout(250)
        waited += 250


def _nav(page, title: str) -> None:
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=title, exact=True).click()
    page.get_by_role("heading", name=title, exact=True).wait_for()
    settle(page)


def _download(page, button_name: re.Pattern, folder: Path) -> Path:
    with page.expect_download() as info:
        page.get_by_role("button", name=button_name).click()
    download = info.value
    path = folder / download.suggested_filename
    download.save_as(path)
    return path


def _read_csv(path: Path) -> tuple[list[str], list[dict]]:
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


# --------------------------------------------------------------------------- the journey
def test_segment_preferences_shopper_then_download_a_target_list(prepared_store, debian_chromium):
    from playwright.sync_api import expect

    from core import config

    folder = prepared_store
    shots, downloads = folder / "screenshots", folder / "downloads"
    shots.mkdir()
    downloads.mkdir()
    seen: dict = {}
    # the store already holds a dataset: no sample load, the app lands on Overview
    with app_in_browser(debian_chromium, folder, STEP_TIMEOUT_MS) as page:
        expect(page.get_by_role("combobox", name="Dataset")).to_have_value(DATASET)

        # 1. Segments: a fixed number of segments, Run, the profile cards
        _nav(page, "Segments")
        page.get_by_text("No segments yet for this dataset").wait_for()
        slider = page.get_by_test_id("stSlider").filter(has_text="Number of segments").get_by_role("slider")
        slider.focus()
        for _ in range(N_SEGMENTS - 1):
            page.keyboard.press("ArrowRight")
        settle(page)
        expect(slider).to_have_attribute("aria-valuetext", str(N_SEGMENTS))
        page.get_by_role("button", name="Run", exact=True).click()
        success = page.get_by_test_id("stAlert").filter(has_text=re.compile(r"^Segmented [\d,]+ shoppers into"))
        success.wait_for()
        m = re.search(r"Segmented ([\d,]+) shoppers into (\d+) segments \(run (\d+)\)", success.inner_text())
        assert m, success.inner_text()
        assert _count(m.group(1)) == N_USERS and int(m.group(2)) == N_SEGMENTS
        seen["run_id"] = int(m.group(3))
        page.get_by_role("heading", name="Profiles").wait_for()
        titles = page.locator("strong").filter(has_text=re.compile(r"^\d+\. \S"))
        expect(titles).to_have_count(N_SEGMENTS + 2)  # the cards, then the two of the comparison
        first = re.match(r"^(\d+)\. (.+)$", titles.first.inner_text().strip())
        seg, seg_name = int(first.group(1)), first.group(2)
        seen["segment"], seen["segment_name"] = seg, seg_name
        seen["card_size"] = _count(_metric_value(page, "Shoppers", 0))
        card_titles = [titles.nth(i).inner_text().strip() for i in range(N_SEGMENTS)]
        seen["card_titles"] = card_titles
        expect(page.get_by_test_id("stPlotlyChart").locator(".main-svg").first).to_be_visible()
        full_screenshot(page, shots / "1-segments.png")

        # 2. Preferences: pick that segment, the heat map and the share charts
        _nav(page, "Preferences")
        label = f"Segment {seg} · {seg_name}"
        choose(page, "stSelectbox", "Group", label)
        page.get_by_role("heading", name=f"What {label} likes").wait_for()
        group_box = page.get_by_test_id("stSelectbox").filter(has_text="Group")
        shown = group_box.locator("input").input_value()
        m = re.search(re.escape(label) + r" \(([\d,]+) shoppers\)", shown)
        assert m, f"group select box shows {shown!r}"
        seen["prefs_size"] = _count(m.group(1))
        expect(page.locator(".st-key-preferences_heatmap .main-svg").first).to_be_visible()
        for dim in ("category", "brand", "price_band"):
            expect(page.locator(f".st-key-preferences_{dim}_chart .main-svg").first).to_be_visible()
        heat = page.locator(".st-key-preferences_heatmap .xtick")  # one column per segment
        expect(heat).to_have_count(N_SEGMENTS)
        full_screenshot(page, shots / "2-preferences.png")

        # 3. back to Segments, open that segment's shoppers, pick one
        _nav(page, "Segments")
        page.get_by_role("heading", name="Profiles").wait_for()
        page.get_by_role("button", name="Open its shoppers").first.click()
        page.get_by_role("heading", name="Shopper", exact=True).wait_for()
        settle(page)
        # arriving from a segment's card: the suggestions list that segment's members
        expect(page.get_by_role("radio", name="members of a segment")).to_be_checked()
        seg_box = page.get_by_test_id("stSelectbox").filter(
            has=page.get_by_test_id("stWidgetLabel").filter(has_text=re.compile("^Segment$")))
        expect(seg_box.locator("input")).to_have_value(f"{seg}. {seg_name}")
        pick = page.get_by_test_id("stSelectbox").filter(has_text="Pick a shopper")
        option = open_options(page, pick).first
        picked = option.inner_text().strip()
        seen["suggested"] = [page.get_by_role("option").nth(i).inner_text().strip()
                             for i in range(page.get_by_role("option").count())]
        option.click()
        settle(page)
        user_id = picked.split(" — ")[0].strip()
        seen["user_id"] = user_id
        expect(page.get_by_role("textbox", name="Shopper id")).to_have_value(user_id)
        segment_line = page.get_by_text(re.compile(r"^Segment: "))
        segment_line.wait_for()
        seen["shopper_segment_line"] = segment_line.inner_text().strip()
        page.get_by_role("heading", name="Timeline").wait_for()
        expect(page.locator(".st-key-shopper_timeline .main-svg").first).to_be_visible()
        seen["timeline_points"] = page.locator(".st-key-shopper_timeline .scatterlayer .point").count()
        full_screenshot(page, shots / "3-shopper.png")

        # 4. Campaigns: the segment, the live count, export as CSV and download it
        _nav(page, "Campaigns")
        choose(page, "stMultiSelect", "Segments", f"{seg}. {seg_name}")
        page.get_by_role("heading", name="Expected outcome").wait_for()
        csv_button = re.compile(r"^Export and download [\d,]+ shoppers as CSV")
        seen["csv_counts"], seen["csv_button"] = _steady_counts(page, ("Holdout (kept back)", "Exported"),
                                                                seen["card_size"], csv_button)
        seen["matching"] = _count(_metric_value(page, "Shoppers matching these filters"))
        # one click hands over the file and records the export
        seen["csv_file"] = _download(page, csv_button, downloads)
        page.get_by_text(re.compile(r"^Export \d+ recorded and downloaded: ")).wait_for()
        full_screenshot(page, shots / "4-campaigns-csv.png")

        # 5. Google Customer Match with an identity file
        choose(page, "stSelectbox", "Format", "Google Ads Customer Match")
        uploader = page.get_by_test_id("stFileUploader").filter(has_text="Identity file")
        uploader.locator('input[type="file"]').set_input_files(str(folder / "identities.csv"))
        page.get_by_text(re.compile(r"^identities\.csv: [\d,]+ rows read")).wait_for()
        settle(page)
        seen["identity_caption"] = page.get_by_text(re.compile(r"^identities\.csv: ")).inner_text()
        google_button = re.compile(r"^Export and download [\d,]+ shoppers as Google Ads")
        seen["google_counts"], _ = _steady_counts(page, ("Without consent", "Holdout (kept back)", "Exported"),
                                                  seen["card_size"], google_button)
        if seen["google_counts"]["Exported"] < config.PLATFORM_MIN_LIST_SIZE["google"]:
            # under Google's minimum list size: the export waits for the analyst's confirmation
            page.get_by_test_id("stCheckbox").filter(has_text="shoppers anyway").locator("label").click()
            settle(page)
        seen["google_file"] = _download(page, google_button, downloads)
        page.get_by_text(re.compile(r"^Export \d+ recorded and downloaded: cartsight-.*-google-")).wait_for()
        full_screenshot(page, shots / "5-campaigns-google.png")
        # every page once more, as an analyst would look at it after the journey (test-artifacts/screens/)
        screens = screens_of_every_page(page, "journey")
    assert screens == [title for _, title, _ in _app_pages()]
    if screens_wanted():
        print(f"screenshots in {shots} and {SCREENS_DIR}")
    _check_against_store(folder, seen)


def _check_against_store(folder: Path, seen: dict) -> None:
    """What the browser showed and downloaded, against the store (opened only now the server is gone)."""
    from core import store
    from core.analysis import preferences, segments
    from core.campaigns import exports, identities
    from core.campaigns import contact_fields
    from core.campaigns.targets import COUNT_KEYS

    engine = store.make_engine(f"duckdb:///{folder / 'store.duckdb'}")
    try:
        run = segments.latest_run(engine, DATASET)
        assert run.run_id == seen["run_id"] and run.n_segments == N_SEGMENTS
        names = run.names()
        seg = seen["segment"]
        assert names[seg] == seen["segment_name"]
        in_dom_order = run.profiles[0::2] + run.profiles[1::2]  # two columns: cards 0, 2, … then 1, 3, …
        assert seen["card_titles"] == [f"{p['segment']}. {names[p['segment']]}" for p in in_dom_order]
        assert run.profiles[0]["segment"] == seg
        members = segments.load_assignments(engine, DATASET, run.run_id)
        in_segment = set(members.loc[members["segment"] == seg, "user_id"].astype(str))
        size = len(in_segment)
        assert seen["card_size"] == size
        did = store.get_dataset(engine, DATASET)["dataset_id"]
        listed = preferences.segment_list(engine, did, run.run_id)
        assert int(listed.loc[listed["segment"] == seg, "shoppers"].iloc[0]) == seen["prefs_size"] == size

        # the shopper: one of the segment's members, shown with the stored segment
        assert seen["user_id"] in in_segment
        assert all(s.split(" — ")[0] in in_segment for s in seen["suggested"])
        stored = segments.segment_of(engine, DATASET, seen["user_id"], run.run_id)
        assert seen["shopper_segment_line"] == f"Segment: {seg}. {stored['segment_name']} (run {run.run_id})"
        assert stored["segment"] == seg
        assert seen["timeline_points"] > 0

        # the plain CSV list
        assert seen["matching"] == size == seen["csv_counts"]["Matched the filters"]
        history = exports.list_exports(engine, DATASET).set_index("format")
        assert sorted(history.index) == ["csv", "google"]
        header, rows = _read_csv(seen["csv_file"])
        assert header == list(exports.PLAIN_COLUMNS)
        ids = [r["user_id"] for r in rows]
        assert len(ids) == len(set(ids))
        assert set(ids) <= in_segment
        assert {r["segment"] for r in rows} == {str(seg)}
        assert {r["segment_name"] for r in rows} == {seen["segment_name"]}
        assert all(0.0 <= float(r["propensity"]) <= 1.0 for r in rows)
        rec = history.loc["csv"]
        assert len(rows) == seen["csv_counts"]["Exported"] == seen["csv_button"] == int(rec["exported"])
        assert int(rec["holdout"]) == seen["csv_counts"]["Holdout (kept back)"] > 0
        assert int(rec["matched"]) == size and len(rows) + int(rec["holdout"]) == size
        holdout = set(exports.holdout_list(engine, int(rec["export_id"]))["user_id"].astype(str))
        assert len(holdout) == int(rec["holdout"]) and not holdout & set(ids)
        assert holdout | set(ids) == in_segment
        assert seen["csv_file"].read_bytes() == exports.export_file(engine, int(rec["export_id"]))
        assert seen["csv_file"].name == rec["file_name"]  # the name downloaded is the name recorded

        # the Google Customer Match list: hashed e-mails and phones of the consenting, non-holdout members
        g = history.loc["google"]
        header, rows = _read_csv(seen["google_file"])
        assert header == list(exports.GOOGLE_COLUMNS)
        assert len(rows) == seen["google_counts"]["Exported"] == int(g["exported"])
        assert int(g["no_consent"]) == seen["google_counts"]["Without consent"] > 0
        assert int(g["matched"]) == size
        assert int(g["exported"]) + int(g["holdout"]) + int(g["no_consent"]) == size
        for column in ("Email", "Phone", "First Name", "Last Name"):
            assert all(HEX64.match(r[column]) for r in rows), column
        assert {r["Country"] for r in rows} == {"GB"}
        targets = exports.export_members(engine, int(g["export_id"]), exports.MEMBER_TARGET)
        target_ids = set(targets["user_id"].astype(str))
        assert target_ids <= in_segment and len(target_ids) == len(rows)
        by_id = {r["user_id"]: r for r in _identity_rows(sorted(members["user_id"].astype(str)))}
        assert all(by_id[u]["consent_ads"] == "yes" for u in target_ids)
        expected = {contact_fields.sha256_hex(contact_fields.google_email(by_id[u]["email"].strip().lower()))
                    for u in target_ids}
        assert {r["Email"] for r in rows} == expected
        assert set(COUNT_KEYS) <= set(history.columns)
    finally:
        engine.dispose()
