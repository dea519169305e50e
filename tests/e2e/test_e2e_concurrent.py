"""Several analysts at once against one running app.

Two Playwright browser contexts (two sessions, as two analysts' browsers) drive the real
pages of one ``streamlit run app.py`` server at the same time:

* one uploads a large REES46-layout file (about 300,000 generated rows) on Data while the
  other trains a model on a small dataset on Forecasts: both get their own, correct result;
* two upload different files under the same dataset name at once: exactly one dataset of
  that name exists afterwards, holding one file's rows only, and the other analyst reads a
  clear "name taken" message, then loads the file under another name. On DuckDB and on
  PostgreSQL (the server pointed at a fresh schema of the test server).

What the pages showed is checked against the store (datasets, row counts, the rows' own
shoppers and prices, model and prediction rows), and no page may show Streamlit's exception
element nor the server log a traceback. Two store-level tests, on DuckDB and PostgreSQL, make
the timing certain: two loads of one name held until both have found it free (one wins, the
other is told), and a load held open at its last step while another session reads, loads and
deletes on the same engine (nothing waits on it).

The server trains with a tiny model configuration (a launcher wraps ``core.model.forecast.train``
before starting Streamlit in the same process); the concurrency under test is the same, and
the default configuration would take minutes on two shared cores. DuckDB lets one process
open a file, so a DuckDB store is read only after its server stopped.
"""
from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from core import config, simulate, store
from core.errors import DatasetExistsError
from core.ingest.load import ingest_file
from tests.conftest import _fresh_pg_engine, skip_on_spark
from tests.e2e_support import CHROMIUM, ROOT, serve_app

VIEWPORT = {"width": 1280, "height": 900}
STEP_TIMEOUT_MS = 120_000  # two sessions share the 2 cores with a training and a large load
SMALL, BIG, RACED = "small shop", "big upload", "campaign week"
RENAMED = "campaign week two"
SMALL_SIM = {"n_users": 80, "weeks": 4, "seed": 4}  # 4 weeks: two training cutoffs for the 7-day horizon
BIG_SIM = {"n_users": 4_600, "weeks": 10, "seed": 3}  # about 306,000 events, 33 MB
RACE_SIMS = ({"n_users": 300, "weeks": 2, "seed": 21}, {"n_users": 200, "weeks": 2, "seed": 22})
#: added to the second race file's shopper ids, so that rows of the two files cannot be confused
SECOND_FILE_USER_OFFSET = 1_000_000_000
#: the tiny configuration of tests/e2e/test_e2e_journey.py: training takes seconds, not minutes
TINY_MODEL = {"max_len": 20, "hidden_size": 16, "n_layers": 1, "n_heads": 2, "epochs": 2, "min_train_steps": 20,
              "batch_size": 64, "max_train_examples": 3000, "n_train_cutoffs": 2, "item_vocab_cap": 500}
#: its run settings: small query chunks, one torch thread
TINY_SETTINGS = {"chunk_users": 150, "torch_threads": 1}
#: the loser's message: the name exists, another load saved it first (core.ingest.load), or another session is loading it
NAME_TAKEN = re.compile(
    r"named '(?P<name>[^']+)' (exists already|was saved by another load|is being loaded by another session)")

LAUNCHER = '''\
"""Start Streamlit in this process with core.model.forecast.train on a tiny model configuration."""
import sys

from core.model import forecast
from core.model.config import ModelConfig, PipelineSettings

_TINY = ModelConfig(**{tiny!r})
_SETTINGS = PipelineSettings(**{settings!r})
_train = forecast.train


def _tiny_train(*args, config=None, settings=None, **kwargs):
    return _train(*args, config=config or _TINY, settings=settings or _SETTINGS, **kwargs)


forecast.train = _tiny_train
from streamlit.web.cli import main

sys.argv = ["streamlit", *sys.argv[1:]]
main()
'''


# --------------------------------------------------------------------------- data
def _rees46_file(path: Path, n_users: int, weeks: int, seed: int, user_offset: int = 0) -> dict:
    """Write simulated REES46 rows to ``path``; returns what ingest must report, counted here by hand."""
    events = simulate.simulate(n_users, weeks=weeks, seed=seed).events
    events["user_id"] = events["user_id"] + user_offset
    simulate.write_csv(events, path)
    duplicates = int(events.duplicated().sum())  # exact repeats of an earlier line are quarantined
    kept = events[~events.duplicated()]
    return {"path": path, "rows_read": len(events), "rows_loaded": len(kept), "rows_quarantined": duplicates,
            "users": {str(u) for u in kept["user_id"]}, "price_sum": round(float(kept["price"].sum()), 2)}


def _prepared_store(url: str, folder: Path) -> dict:
    """Fill the store at ``url`` with the small dataset (the app then opens on it, without the sample)."""
    small = _rees46_file(folder / "small.csv", **SMALL_SIM)
    engine = store.make_engine(url)
    try:
        report = ingest_file(engine, small["path"], SMALL)
    finally:
        engine.dispose()
    assert (report.rows_loaded, report.users) == (small["rows_loaded"], len(small["users"]))
    return small


def _store_facts(store_at: str | sa.Engine) -> dict:
    """What the store holds (an engine, or a URL read with a plain engine): datasets by name, per-dataset
    event counts, shoppers and price sums, quarantine counts, models and their predictions."""
    engine = sa.create_engine(store_at) if isinstance(store_at, str) else store_at
    ev, q, pred = store.events, store.quarantine, store.predictions
    try:
        with engine.connect() as conn:
            datasets = {r["name"]: dict(r) for r in conn.execute(sa.select(store.datasets)).mappings()}
            events = {r[0]: {"rows": r[1], "price_sum": round(float(r[2] or 0), 2)} for r in conn.execute(
                sa.select(ev.c.dataset_id, sa.func.count(), sa.func.sum(ev.c.price)).group_by(ev.c.dataset_id))}
            users = {}
            for did, uid in conn.execute(sa.select(ev.c.dataset_id, ev.c.user_id).distinct()):
                users.setdefault(did, set()).add(uid)
            quarantined = dict(conn.execute(sa.select(q.c.dataset_id, sa.func.count()).group_by(q.c.dataset_id)).all())
            models = [dict(r) for r in conn.execute(sa.select(store.models)).mappings()]
            predictions = {r[0]: {"rows": r[1], "dataset_ids": set()} for r in conn.execute(
                sa.select(pred.c.model_version, sa.func.count()).group_by(pred.c.model_version))}
            pred_users = {}
            for version, did, uid in conn.execute(sa.select(pred.c.model_version, pred.c.dataset_id, pred.c.user_id)):
                predictions[version]["dataset_ids"].add(did)
                pred_users.setdefault(version, set()).add(uid)
    finally:
        if isinstance(store_at, str):
            engine.dispose()
    return {"datasets": datasets, "events": events, "users": users, "quarantined": quarantined, "models": models,
            "predictions": predictions, "prediction_users": pred_users}


def _assert_dataset_is(facts: dict, name: str, expected: dict) -> None:
    """The dataset ``name`` holds exactly the rows of ``expected``'s file: counts, shoppers and prices."""
    ds = facts["datasets"][name]
    did = ds["dataset_id"]
    assert (ds["rows_read"], ds["rows_loaded"], ds["rows_quarantined"]) == (
        expected["rows_read"], expected["rows_loaded"], expected["rows_quarantined"]), name
    assert facts["events"][did]["rows"] == expected["rows_loaded"], name
    assert facts["quarantined"].get(did, 0) == expected["rows_quarantined"], name
    assert facts["users"][did] == expected["users"], f"{name}: shoppers of another file are mixed in"
    assert facts["events"][did]["price_sum"] == pytest.approx(expected["price_sum"], abs=0.05), name


def _assert_no_orphans(facts: dict) -> None:
    """Every stored row belongs to a dataset that exists: a lost load left nothing behind."""
    ids = {d["dataset_id"] for d in facts["datasets"].values()}
    assert set(facts["events"]) <= ids, f"events of no dataset: {set(facts['events']) - ids}"
    assert set(facts["quarantined"]) <= ids, f"quarantine of no dataset: {set(facts['quarantined']) - ids}"
    assert {m["dataset_id"] for m in facts["models"]} <= ids


# --------------------------------------------------------------------------- the server
@contextlib.contextmanager
def _serving(folder: Path, db_url: str) -> Iterator[str]:
    """``streamlit run app.py`` as tests/e2e_support.running_app starts it (its own folder, HOME, store URL,
    the project's config.toml), through the tiny-training launcher; yields the base URL."""
    if not CHROMIUM.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser tests: {CHROMIUM} is missing (apt-get install -y chromium)")
        pytest.skip(f"{CHROMIUM} not installed (apt-get install -y chromium)")
    launcher = folder / "launch_tiny.py"
    launcher.write_text(LAUNCHER.format(tiny=TINY_MODEL, settings=TINY_SETTINGS))
    env = {**os.environ, "HOME": str(folder), config.DB_URL_ENV: db_url, config.HOME_ENV: str(folder / "home"),
           "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    with serve_app(folder, env, launcher=[str(launcher)]) as (base, _):
        yield base
    server_log = (folder / "streamlit.log").read_text(errors="replace")
    assert "Traceback" not in server_log, f"the server logged a traceback:\n{server_log[-4000:]}"


# --------------------------------------------------------------------------- page helpers
class _Clock:
    """Seconds per step, printed with the test's output (not asserted)."""

    def __init__(self) -> None:
        self.last, self.laps = time.monotonic(), []

    def lap(self, step: str) -> None:
        now = time.monotonic()
        self.laps.append(f"{step}: {now - self.last:.1f} s")
        self.last = now

    def __str__(self) -> str:
        return "; ".join(self.laps)


@contextlib.contextmanager
def _session(browser) -> Iterator:
    """One analyst: a browser context of its own (own cookies, own Streamlit session) and a page."""
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(STEP_TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


def _settle(page) -> None:
    """Wait until the script run triggered by the last action has finished."""
    page.wait_for_timeout(300)
    page.get_by_test_id("stStatusWidget").wait_for(state="detached")


def _open(page, base: str, path: str, heading: str, via_sidebar: bool = False) -> None:
    """Open a page: by its URL (a new session for this browser context) or by the sidebar (the same session)."""
    if via_sidebar:
        page.get_by_test_id("stSidebarNav").get_by_role("link", name=heading, exact=True).click()
    else:
        page.goto(f"{base}/{path}")
    page.get_by_role("heading", name=heading, exact=True).wait_for()
    _settle(page)


def _picked_dataset(page) -> str:
    return page.get_by_role("combobox", name="Dataset", exact=True).input_value()


def _metric(page, label: str) -> int:
    tile = page.get_by_test_id("stMetric").filter(has=page.get_by_test_id("stMetricLabel").filter(
        has_text=re.compile(f"^{re.escape(label)}$")))
    return int(tile.first.get_by_test_id("stMetricValue").inner_text().strip().replace(",", ""))


def _stage_upload(page, path: Path, name: str) -> None:
    """On Data: upload ``path``, wait until it is read, and name the dataset ``name`` (Load not pressed)."""
    page.get_by_test_id("stFileUploader").locator('input[type="file"]').set_input_files(str(path))
    page.get_by_text("How the file was read").wait_for()
    _settle(page)
    _name_dataset(page, name)


def _name_dataset(page, name: str) -> None:
    from playwright.sync_api import expect

    box = page.get_by_label("Dataset name")
    box.fill(name)
    box.press("Enter")
    _settle(page)
    expect(box).to_have_value(name)
    expect(page.get_by_role("button", name="Load", exact=True)).to_be_enabled()


def _load_outcome(page, name: str) -> str:
    """After Load of ``name``: wait for its report or an error naming it; returns the reconciliation or the error.

    Waiting on the name keeps an earlier outcome on the page (another name's) from being taken for this one.
    """
    loaded = page.get_by_role("heading", name=f"Loaded {name}", exact=True)
    failed = page.get_by_test_id("stAlertContentError").filter(has_text=f"'{name}'")
    loaded.or_(failed).first.wait_for()
    _settle(page)
    if failed.count():
        return failed.first.inner_text()
    return page.get_by_test_id("stAlertContentSuccess").filter(has_text="Every row is accounted for").inner_text()


def _assert_no_exception(*pages) -> None:
    for page in pages:
        assert page.get_by_test_id("stException").count() == 0, page.get_by_test_id("stException").first.inner_text()
        assert "Traceback" not in page.locator("body").inner_text()


# --------------------------------------------------------------------------- store level: the race made certain
def _two_loads_at_once(engine, files: list[dict], name_of, step: str, wait_s: float) -> dict[int, object]:
    """Load ``files[0]`` and ``files[1]`` (as ``name_of(i)``) in two threads, held by a barrier at progress ``step``
    until both reached it (a load that fails first lets the other go); each one's report or error, by index."""
    barrier = threading.Barrier(2, timeout=wait_s)
    outcome: dict[int, object] = {}

    def progress(fraction: float, message: str) -> None:
        if message == step:
            with contextlib.suppress(threading.BrokenBarrierError):  # the other load ended before it
                barrier.wait()

    def load(i: int) -> None:
        try:
            outcome[i] = ingest_file(engine, files[i]["path"], name_of(i), progress=progress)
        except Exception as exc:  # noqa: BLE001 - the outcome is asserted by the caller
            outcome[i] = exc
            barrier.abort()

    threads = [threading.Thread(target=load, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not any(t.is_alive() for t in threads)
    return outcome


def test_two_loads_of_one_name_at_once_one_wins_the_other_is_told(engine, tmp_path):
    """Both loads pass the name check before either writes (a barrier holds them): one commits, the other
    ends as DatasetExistsError naming the dataset, and the stored dataset is the winner's file alone. (On Spark,
    which has no unique name, the name is claimed after the check: the loser is told there, before the barrier,
    which it then lets go.)"""
    files = _race_files(tmp_path)
    # after the name check, before any row of the dataset is written
    outcome = _two_loads_at_once(engine, files, lambda i: RACED, "loading events", 120)
    errors = {i: o for i, o in outcome.items() if isinstance(o, Exception)}
    assert len(errors) == 1, f"expected exactly one loser, got {outcome}"
    (loser, error), = errors.items()
    assert isinstance(error, DatasetExistsError), f"{type(error).__name__}: {error}"
    assert NAME_TAKEN.search(str(error)).group("name") == RACED
    winner = 1 - loser
    assert outcome[winner].rows_loaded == files[winner]["rows_loaded"]
    facts = _store_facts(engine)
    assert list(facts["datasets"]) == [RACED]
    _assert_dataset_is(facts, RACED, files[winner])
    _assert_no_orphans(facts)
    # the loser's file loads under another name, whole
    report = ingest_file(engine, files[loser]["path"], RENAMED)
    assert report.rows_loaded == files[loser]["rows_loaded"]


def test_two_loads_of_two_names_at_once_each_keeps_its_own_rows(engine, tmp_path):
    """Two new datasets written at the same time (a barrier holds both once their rows are written): each gets an
    id of its own and holds its own file's rows. On Spark, with no sequence, both took the same id, cleared
    each other's rows and staging table and failed; now each claims its id (core.store.spark_claims)."""
    files = _race_files(tmp_path)
    # its id taken, its events written
    outcome = _two_loads_at_once(engine, files, lambda i: f"shop {i}", "summarising sessions and price bands", 180)
    assert not [o for o in outcome.values() if isinstance(o, Exception)], outcome
    assert outcome[0].dataset_id != outcome[1].dataset_id
    facts = _store_facts(engine)
    for i in range(2):
        _assert_dataset_is(facts, f"shop {i}", files[i])
    _assert_no_orphans(facts)
    if engine.dialect.name == "spark":  # every claim let go
        with engine.connect() as conn:
            assert not [n for n in conn.dialect.get_table_names(conn) if "__claim_" in n or "__name_" in n]


def test_a_load_holding_its_transaction_blocks_no_other_session(engine, tmp_path):
    """While one load holds its transaction open at its last step, another session on the same engine lists
    datasets (without the unfinished one), loads another file and deletes a dataset; then the held load commits.
    Nothing waits on the held transaction and every dataset holds its own file's rows."""
    skip_on_spark(engine, "Spark has no transactions: a load's dataset is visible once its row is written, its last "
                          "statement, and no transaction is held open for another session to wait on")
    held_file, other_file = _race_files(tmp_path)
    old = _rees46_file(tmp_path / "old.csv", n_users=30, weeks=1, seed=5, user_offset=2 * SECOND_FILE_USER_OFFSET)
    ingest_file(engine, old["path"], SMALL)
    holding, release = threading.Event(), threading.Event()
    outcome: dict = {}

    def progress(fraction: float, message: str) -> None:
        if fraction == 1.0:  # the dataset row is written, the transaction not yet committed
            holding.set()
            release.wait(timeout=120)

    def load() -> None:
        try:
            outcome["report"] = ingest_file(engine, held_file["path"], RACED, progress=progress)
        except Exception as exc:  # noqa: BLE001 - asserted below
            outcome["error"] = exc

    thread = threading.Thread(target=load)
    thread.start()
    try:
        assert holding.wait(timeout=120), outcome
        assert [d["name"] for d in store.list_datasets(engine)] == [SMALL]  # the held load is not visible yet
        assert ingest_file(engine, other_file["path"], RENAMED).rows_loaded == other_file["rows_loaded"]
        store.drop_dataset(engine, SMALL)
        assert sorted(d["name"] for d in store.list_datasets(engine)) == [RENAMED]
    finally:
        release.set()
        thread.join(timeout=120)
    assert "error" not in outcome, outcome
    facts = _store_facts(engine)
    assert set(facts["datasets"]) == {RACED, RENAMED}
    _assert_dataset_is(facts, RACED, held_file)
    _assert_dataset_is(facts, RENAMED, other_file)
    _assert_no_orphans(facts)


# --------------------------------------------------------------------------- in the browser: the two scenarios
def _upload_while_training(a, b, base: str, big: dict, clock: _Clock) -> dict:
    """B presses Train on the small dataset; while it trains, A loads the large file. Returns what the pages showed."""
    from playwright.sync_api import expect

    seen: dict = {}
    _open(b, base, "forecasts", "Forecasts")
    assert _picked_dataset(b) == SMALL
    b.get_by_text("No model yet for this dataset").wait_for()
    _open(a, base, "data", "Data")
    _stage_upload(a, big["path"], BIG)
    clock.lap("large file uploaded and read")

    b.get_by_role("button", name="Train", exact=True).click()
    b.get_by_role("button", name="Cancel", exact=True).wait_for()  # B's training runs
    clock.lap("training started")
    a.get_by_role("button", name="Load", exact=True).click()
    # A's load runs (or, on a fast machine, has already ended)
    a.get_by_test_id("stProgress").or_(a.get_by_role("heading", name=f"Loaded {BIG}", exact=True)).first.wait_for()
    # at this moment B's page still shows its training running (its progress redraws every second)
    seen["both_running"] = (b.get_by_role("button", name="Cancel", exact=True).count() == 1
                            and b.get_by_test_id("stAlertContentSuccess").filter(has_text="Trained model").count() == 0)
    outcome = _load_outcome(a, BIG)
    clock.lap("large file loaded")
    assert "Every row is accounted for" in outcome, outcome
    seen["a_counts"] = {k: _metric(a, k) for k in ("Rows read", "Rows loaded", "Rows quarantined")}
    expect(a.get_by_role("combobox", name="Dataset", exact=True)).to_have_value(BIG)

    trained = b.get_by_test_id("stAlertContentSuccess").filter(has_text="Trained model")
    trained.wait_for()
    clock.lap("model trained")
    seen["version"] = re.search(r"Trained model (\S+) in", trained.inner_text()).group(1)
    print(f"B's page: {trained.inner_text()}")
    b.get_by_role("heading", name=f"Model {seen['version']}").wait_for()
    seen["b_scored"] = _metric(b, "Shoppers scored")
    seen["b_picked"] = _picked_dataset(b)  # A's new dataset must not change B's choice
    return seen


def _check_upload_while_training(facts: dict, seen: dict, small: dict, big: dict) -> None:
    assert seen["both_running"], "B's training had ended when A's load began: nothing ran at the same time"
    assert seen["a_counts"] == {"Rows read": big["rows_read"], "Rows loaded": big["rows_loaded"],
                                "Rows quarantined": big["rows_quarantined"]}
    assert seen["b_picked"] == SMALL
    _assert_dataset_is(facts, BIG, big)
    _assert_dataset_is(facts, SMALL, small)
    small_id = facts["datasets"][SMALL]["dataset_id"]
    assert [(m["model_version"], m["dataset_id"], m["status"]) for m in facts["models"]] == [
        (seen["version"], small_id, "ready")]
    assert facts["predictions"][seen["version"]] == {"rows": len(small["users"]), "dataset_ids": {small_id}}
    assert facts["prediction_users"][seen["version"]] == small["users"]
    assert seen["b_scored"] == len(small["users"])


def _race_one_name(a, b, base: str, files: list[dict], clock: _Clock, shots: Path | None = None) -> dict:
    """A and B, both on Data, upload a file each, name both RACED and press Load back to back; the loser then
    loads its file as RENAMED. Returns what the pages showed; screenshots of the outcomes go to ``shots``."""
    pages = (a, b)
    for page in pages:  # a session already open goes on by the sidebar, keeping its state
        if page.get_by_role("heading", name="Data", exact=True).count() == 0:
            _open(page, base, "data", "Data", via_sidebar=page.url.startswith(base))
    for page, f in zip(pages, files):  # both uploads travel at once
        page.get_by_test_id("stFileUploader").locator('input[type="file"]').set_input_files(str(f["path"]))
    for page in pages:
        page.get_by_text("How the file was read").wait_for()
        _settle(page)
        _name_dataset(page, RACED)
    picked_before = [_picked_dataset(page) for page in pages]
    clock.lap("both files uploaded and read")
    for page in pages:  # back to back: both sessions saw the name free
        page.get_by_role("button", name="Load", exact=True).click()
    outcomes = [_load_outcome(page, RACED) for page in pages]
    clock.lap("raced loads ended")
    won = ["Every row is accounted for" in text for text in outcomes]
    assert sum(won) == 1, outcomes
    winner, loser = won.index(True), won.index(False)
    message = NAME_TAKEN.search(outcomes[loser])
    assert message and message.group("name") == RACED, outcomes[loser]
    if shots is not None:
        for label, page in zip("ab", pages):
            page.screenshot(path=str(shots / f"race-{label}.png"))
    seen = {"winner": winner, "loser": loser, "message": outcomes[loser],
            "winner_loaded": _metric(pages[winner], "Rows loaded"), "winner_picked": _picked_dataset(pages[winner]),
            "loser_picked": _picked_dataset(pages[loser]), "loser_picked_before": picked_before[loser]}

    _name_dataset(pages[loser], RENAMED)  # the loser's upload is still there: load it under another name
    pages[loser].get_by_role("button", name="Load", exact=True).click()
    assert "Every row is accounted for" in _load_outcome(pages[loser], RENAMED)
    clock.lap("renamed load ended")
    seen["renamed_loaded"] = _metric(pages[loser], "Rows loaded")
    seen["renamed_picked"] = _picked_dataset(pages[loser])
    seen["winner_picked_after"] = _picked_dataset(pages[winner])
    print(f"same-name race: session {'AB'[winner]} won; the other read: {seen['message']!r}")
    return seen


def _check_race(facts: dict, seen: dict, files: list[dict]) -> None:
    winner, loser = seen["winner"], seen["loser"]
    assert seen["winner_loaded"] == files[winner]["rows_loaded"]
    assert seen["renamed_loaded"] == files[loser]["rows_loaded"]
    # each session picks its own new dataset; the loser's choice stayed until its own load
    assert (seen["winner_picked"], seen["winner_picked_after"]) == (RACED, RACED)
    assert seen["loser_picked"] == seen["loser_picked_before"]
    assert seen["renamed_picked"] == RENAMED
    _assert_dataset_is(facts, RACED, files[winner])
    _assert_dataset_is(facts, RENAMED, files[loser])


def _race_files(folder: Path) -> list[dict]:
    return [_rees46_file(folder / f"upload{i}.csv", **sim, user_offset=i * SECOND_FILE_USER_OFFSET)
            for i, sim in enumerate(RACE_SIMS)]


# --------------------------------------------------------------------------- in the browser: the tests
@pytest.mark.browser
@pytest.mark.slow
def test_duckdb_upload_while_another_trains_then_two_loads_of_one_name(debian_chromium, tmp_path):
    """On the default DuckDB store, one server, two sessions: A loads about 300,000 rows while B trains on the
    small dataset; then both load a file under one name at once. Each page shows its own result, no page an
    exception, and the store holds exactly what the pages said."""
    url = f"duckdb:///{tmp_path / 'store.duckdb'}"
    small = _prepared_store(url, tmp_path)
    big = _rees46_file(tmp_path / "big.csv", **BIG_SIM)
    assert big["rows_read"] >= 300_000
    files = _race_files(tmp_path)
    clock = _Clock()
    with _serving(tmp_path, url) as base, _session(debian_chromium) as a, _session(debian_chromium) as b:
        clock.lap("server up")
        training = _upload_while_training(a, b, base, big, clock)
        _assert_no_exception(a, b)
        shots = tmp_path / "screenshots"
        shots.mkdir()
        race = _race_one_name(a, b, base, files, clock, shots)
        _assert_no_exception(a, b)
    print(f"{clock}; screenshots in {shots}")
    facts = _store_facts(url)  # the server has stopped: DuckDB lets one process open the file
    assert set(facts["datasets"]) == {SMALL, BIG, RACED, RENAMED}
    _check_upload_while_training(facts, training, small, big)
    _check_race(facts, race, files)
    _assert_no_orphans(facts)


@pytest.mark.browser
@pytest.mark.postgres
@pytest.mark.slow
def test_postgresql_two_loads_of_one_name(pg_url, debian_chromium, tmp_path):
    """The same-name race with the app on PostgreSQL (a fresh schema of the test server)."""
    engine = _fresh_pg_engine(pg_url)
    url = engine.url.render_as_string(hide_password=False)
    engine.dispose()
    small = _prepared_store(url, tmp_path)
    files = _race_files(tmp_path)
    clock = _Clock()
    with _serving(tmp_path, url) as base, _session(debian_chromium) as a, _session(debian_chromium) as b:
        clock.lap("server up")
        shots = tmp_path / "screenshots"
        shots.mkdir()
        race = _race_one_name(a, b, base, files, clock, shots)
        _assert_no_exception(a, b)
        facts = _store_facts(url)  # PostgreSQL is read while the app still runs
    print(f"{clock}; screenshots in {shots}")
    assert set(facts["datasets"]) == {SMALL, RACED, RENAMED}
    _assert_dataset_is(facts, SMALL, small)
    _check_race(facts, race, files)
    _assert_no_orphans(facts)
