"""No data leaves the machine: the whole journey, and every page of the running app, with the network blocked.

A socket guard (tests/netguard/) refuses and records every name lookup or connection that
would leave this machine. It is installed from interpreter start (``sitecustomize`` on
``PYTHONPATH``) in two subprocesses:

1. ``tests/netguard/journey.py``: ingest a simulated file, train a tiny model (Hugging Face
   ``transformers`` classes), score, segment, build and export a top-10 % campaign list,
   all through ``core/``;
2. ``streamlit run app.py`` as an analyst or a team server starts it (headless, the
   project's ``.streamlit/config.toml``, no command-line overrides), on the store the journey
   left, while headless Chromium opens every page; in the browser every request and
   WebSocket to a host other than this machine is recorded too (and refused).

Neither subprocess gets ``HF_HUB_OFFLINE`` or proxy settings from the environment: staying
offline must not depend on the caller. Native code has its own sockets, out of the Python
guard's sight; what it would leave behind is checked instead: no DuckDB extension was
installed (``~/.duckdb/extensions``) and nothing was put in the Hugging Face cache.
The guard itself is proven first: a connection to 203.0.113.1 (TEST-NET-3) is refused and
recorded, in this process, in a subprocess, and in the browser.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import re
import socket
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest

from core import config
from tests.e2e_support import APPTEST_TIMEOUT_S, ROOT, isolated_store, serve_app
from tests.netguard import journey
from tests.netguard.cartsight_netguard import LOG_ENV, NetworkBlocked, guarded, is_local_host, read_log

NETGUARD = ROOT / "tests" / "netguard"
#: An address reserved for documentation (RFC 5737): never a real host, so refusing it costs nothing.
OUTSIDE_IP = "203.0.113.1"
#: Variables a caller may have set that would make staying offline depend on them, or route around the guard.
CALLER_SETTINGS = re.compile(r"^(HF_|HUGGINGFACE_|TRANSFORMERS_|STREAMLIT_|(HTTPS?|ALL|NO|FTP)_PROXY$)", re.I)
JOURNEY_TIMEOUT_S = 300  # about 20 s on an idle machine; the 2 cores are shared
STEP_TIMEOUT_MS = 90_000
VIEWPORT = {"width": 1440, "height": 1000}
PAGES = ("Data", "Overview", "Forecasts", "Segments", "Preferences", "Shopper", "Campaigns")


def _offline_env(folder: Path, log: Path) -> dict[str, str]:
    """The environment of a guarded subprocess: the caller's, less its hub/proxy/Streamlit settings."""
    env = {k: v for k, v in os.environ.items() if not CALLER_SETTINGS.match(k)}
    env.update({
        "HOME": str(folder), config.HOME_ENV: str(folder / "home"),
        config.DB_URL_ENV: f"duckdb:///{folder / 'store.duckdb'}",
        "HF_HOME": str(folder / "hf"),  # anything the hub client downloaded or cached would land here
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(NETGUARD)]), LOG_ENV: str(log),
    })
    return env


def _no_native_downloads(folder: Path) -> None:
    """Nothing the Python guard cannot see was fetched: no DuckDB extension, no Hugging Face cache."""
    extensions = folder / ".duckdb" / "extensions"
    assert not extensions.exists(), f"DuckDB installed extensions: {sorted(p.name for p in extensions.rglob('*'))}"
    hub = folder / "hf"
    assert not hub.exists() or not any(hub.rglob("*")), f"Hugging Face cache written: {sorted(hub.rglob('*'))}"


# --- the guard itself ------------------------------------------------------------------------------------


def test_guard_refuses_and_records_outbound_but_not_local():
    with guarded() as attempts:
        with pytest.raises(NetworkBlocked):
            socket.create_connection((OUTSIDE_IP, 80), timeout=1)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with sock, pytest.raises(NetworkBlocked):
            sock.connect(("8.8.8.8", 1))  # a UDP "connect" sends nothing, but names where it would go
        with pytest.raises(socket.gaierror):
            socket.getaddrinfo("huggingface.co", 443)
        # this machine stays reachable: loopback by number and by name, and Unix sockets
        with socket.socket() as server:
            server.bind(("127.0.0.1", 0))
            server.listen(1)
            with socket.create_connection(("localhost", server.getsockname()[1]), timeout=5):
                pass
        left, right = socket.socketpair()
        left.close()
        right.close()
    assert [(a["call"], a["host"], a["port"]) for a in attempts] == [
        ("create_connection", OUTSIDE_IP, 80), ("connect", "8.8.8.8", 1), ("getaddrinfo", "huggingface.co", 443)]
    assert "test_no_network.py" in attempts[0]["stack"][-1]  # the caller is named
    # removed again afterwards
    assert socket.socket.connect is socket.SocketType.connect and "connect" not in socket.socket.__dict__


@pytest.mark.parametrize(("host", "local"), [
    ("127.0.0.1", True), ("127.8.9.1", True), ("::1", True), ("[::1]", True), ("::ffff:127.0.0.1", True),
    ("localhost", True), ("LOCALHOST.", True), ("0.0.0.0", True), ("", True), (None, True), (b"127.0.0.1", True),
    (OUTSIDE_IP, False), ("10.0.0.1", False), ("192.168.1.1", False), ("2001:db8::1", False),
    ("example.com", False), ("localhost.example.com", False),
])
def test_what_counts_as_this_machine(host, local):
    assert is_local_host(host) is local


def test_guard_is_active_in_a_subprocess(tmp_path):
    log = tmp_path / "net.jsonl"
    code = ("import socket, urllib.request\n"
            f"try:\n    socket.create_connection(({OUTSIDE_IP!r}, 443), timeout=1)\nexcept ConnectionRefusedError:\n"
            "    print('refused')\n"
            "try:\n    urllib.request.urlopen('https://huggingface.co/api/models', timeout=1)\nexcept OSError:\n"
            "    print('refused')\n")
    out = subprocess.run([sys.executable, "-c", code], env=_offline_env(tmp_path, log), cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["refused", "refused"]
    installed, attempts = read_log(log)
    assert len(installed) == 1
    assert [(a["host"], a["port"]) for a in attempts] == [(OUTSIDE_IP, 443), ("huggingface.co", 443)]


def _guard_browser(context) -> list[str]:
    """Refuse and record every request or WebSocket of ``context`` to a host other than this machine."""
    outside: list[str] = []

    def leaves(url: str) -> bool:
        parsed = urlparse(url)
        return parsed.scheme in ("http", "https", "ws", "wss") and not is_local_host(parsed.hostname)

    def route(r) -> None:
        if leaves(r.request.url):
            outside.append(r.request.url)
            r.abort("blockedbyclient")
        else:
            r.continue_()

    context.route("**/*", route)
    context.on("page", lambda page: page.on(
        "websocket", lambda ws: outside.append(ws.url) if leaves(ws.url) else None))
    return outside


@pytest.mark.browser
def test_browser_guard_refuses_and_records(debian_chromium):
    from playwright.sync_api import Error as PlaywrightError

    context = debian_chromium.new_context()
    try:
        outside = _guard_browser(context)
        page = context.new_page()
        with pytest.raises(PlaywrightError, match="ERR_BLOCKED_BY_CLIENT"):
            page.goto(f"http://{OUTSIDE_IP}/collect?x=1", timeout=10_000)
        assert outside == [f"http://{OUTSIDE_IP}/collect?x=1"]
    finally:
        context.close()


# --- what the app is configured to do --------------------------------------------------------------------


def test_streamlit_is_configured_not_to_reach_out():
    settings = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert settings["browser"]["gatherUsageStats"] is False
    # Without a set browser.serverAddress, Streamlit prints its "Network URL"/"External URL" at start
    # by opening a UDP socket towards 8.8.8.8 and asking checkip.amazonaws.com for the public IP.
    assert settings["browser"].get("serverAddress") == "localhost"


def test_app_turns_hub_access_off_itself(monkeypatch, tmp_path):
    from streamlit.testing.v1 import AppTest

    isolated_store(monkeypatch, tmp_path)
    monkeypatch.setattr(config, "SAMPLE_FILE", tmp_path / "no-sample.csv.gz")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=APPTEST_TIMEOUT_S).run()
    assert not at.exception, [e.value for e in at.exception]
    assert os.environ.get("HF_HUB_OFFLINE") == "1"


# --- the journey and the app, guarded --------------------------------------------------------------------


@pytest.fixture(scope="module")
def offline_journey(tmp_path_factory):
    """Run tests/netguard/journey.py guarded; yields (folder, what it printed, its guard log)."""
    folder = tmp_path_factory.mktemp("offline")
    log = folder / "net-journey.jsonl"
    out = subprocess.run([sys.executable, "-m", "tests.netguard.journey", str(folder)], cwd=folder,
                         env=_offline_env(folder, log), capture_output=True, text=True, timeout=JOURNEY_TIMEOUT_S)
    assert out.returncode == 0, out.stderr[-4000:]
    return folder, json.loads(out.stdout.strip().splitlines()[-1]), log


@pytest.mark.slow
def test_whole_journey_through_core_reaches_nothing_outside(offline_journey):
    folder, done, log = offline_journey
    installed, attempts = read_log(log)
    assert len(installed) == 1, "the guard was not installed in the journey's process"
    assert attempts == []
    _no_native_downloads(folder)

    # and the journey really ran: every row accounted for, every shopper scored, segmented and listed
    assert done["rows_read"] == done["lines_written"] == done["rows_loaded"] + done["rows_quarantined"]
    assert done["users"] == done["sim_users"] == journey.N_USERS
    assert done["n_users_scored"] == done["rescored"] == done["predictions"] == journey.N_USERS
    assert done["n_segments"] == journey.N_SEGMENTS
    assert done["segment_rows"] == done["segmented_users"] == journey.N_USERS
    counts = done["counts"]
    assert counts["matched"] == math.ceil(journey.N_USERS * journey.TOP_PERCENT / 100)  # top 10 %, rounded up
    assert counts["exported"] + counts["holdout"] == counts["matched"]
    assert done["exported_rows"] == counts["exported"] and done["exported_users"] == done["top_users"]
    assert done["stored_sha256"] == done["file_sha256"]
    assert (folder / "home" / "exports").is_dir() and any((folder / "home" / "models").rglob("*.safetensors"))


@contextlib.contextmanager
def _guarded_app(folder: Path, log: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """``streamlit run app.py`` as the README starts it, headless, with the guard; yields (base URL, process).

    Run in ``folder`` holding a copy of the project's .streamlit/config.toml (and HOME there), so
    no secrets.toml of the developer's can redirect it. No option is overridden on the command
    line but the port, headless mode (a server has no browser to open) and the file watcher.
    """
    with serve_app(folder, _offline_env(folder, log), pinned=False) as (base, proc):
        yield base, proc


@pytest.mark.slow
@pytest.mark.browser
def test_every_page_of_the_running_app_reaches_nothing_outside(offline_journey, debian_chromium):
    folder, done, _ = offline_journey
    log = folder / "net-app.jsonl"
    visited: list[str] = []
    with _guarded_app(folder, log) as (base, proc):
        context = debian_chromium.new_context(viewport=VIEWPORT)
        context.set_default_timeout(STEP_TIMEOUT_MS)
        outside = _guard_browser(context)
        try:
            page = context.new_page()
            page.goto(base)
            nav = page.get_by_test_id("stSidebarNav")
            for title in PAGES:
                try:
                    nav.get_by_role("link", name=title, exact=True).click()
                    page.get_by_role("heading", name=title, exact=True).wait_for()
                    _wait_for_the_data(page, title, done)
                except Exception as exc:  # say which page, keep what it showed and what the server said
                    shot = folder / f"failed-{title}.png"
                    page.screenshot(path=str(shot), full_page=True)
                    server = (folder / "streamlit.log").read_text(errors="replace")[-3000:]
                    raise AssertionError(f"the {title} page did not show the data ({shot}): {exc}\n{server}") from exc
                visited.append(title)
            page.get_by_test_id("stStatusWidget").wait_for(state="detached")
        finally:
            context.close()
        server_pid = proc.pid
    installed, attempts = read_log(log)
    assert server_pid in installed, "the guard was not installed in the app's process"
    assert (attempts, outside) == ([], []), json.dumps({"app's processes": attempts, "browser": outside}, indent=1)
    _no_native_downloads(folder)
    assert visited == list(PAGES)


def _wait_for_the_data(page, title: str, done: dict) -> None:
    """Wait until ``title``'s page shows the journey's data (its numbers where the page shows them as text)."""
    from playwright.sync_api import expect

    main = page.get_by_test_id("stMain")
    chart = main.get_by_test_id("stPlotlyChart").locator(".main-svg").first
    if title == "Data":
        main.get_by_role("heading", name="Datasets").wait_for()
        picker = page.get_by_role("combobox", name="Dataset", exact=True)
        expect(picker).to_have_value(journey.DATASET, timeout=STEP_TIMEOUT_MS)
    elif title == "Overview":
        main.get_by_role("heading", name="Funnel").wait_for()
        chart.wait_for()
        expect(_metric(page, "Shoppers")).to_have_text(f"{journey.N_USERS:,}", timeout=STEP_TIMEOUT_MS)
    elif title == "Forecasts":
        main.get_by_role("heading", name=f"Model {done['model_version']}").wait_for()
        # a tiny shop has too few buyers for the lift chart: its charts sit folded in the card's details
        expect(_metric(page, "Shoppers scored")).to_have_text(f"{journey.N_USERS:,}", timeout=STEP_TIMEOUT_MS)
    elif title == "Segments":
        main.get_by_role("heading", name="Profiles").wait_for()
        chart.wait_for()
    elif title == "Preferences":
        main.get_by_role("heading", name="Categories by segment").wait_for()
        chart.wait_for()
    elif title == "Shopper":
        shopper = done["top_users"][0]
        box = page.get_by_label("Shopper id")
        box.fill(shopper)
        box.press("Enter")
        main.get_by_role("heading", name="Timeline").wait_for()
        chart.wait_for()
    elif title == "Campaigns":
        main.get_by_role("heading", name="Past exports").wait_for()
        live = _metric(page, "Shoppers matching these filters")
        expect(live).to_have_text(f"{journey.N_USERS:,}", timeout=STEP_TIMEOUT_MS)


def _metric(page, label: str):
    tile = page.get_by_test_id("stMetric").filter(has=page.get_by_test_id("stMetricLabel").filter(
        has_text=re.compile(f"^{re.escape(label)}$")))
    return tile.first.get_by_test_id("stMetricValue")
