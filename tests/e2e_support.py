"""Helpers for driving the app in tests: an isolated store, AppTest polling, a live server, a browser."""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from core import config

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
APPTEST_TIMEOUT_S = 60  # the first run imports pandas, DuckDB and Plotly, and may load the sample
SERVER_START_TIMEOUT_S = 60
POLL_S = 0.2
#: The browser window the real-browser tests use.
VIEWPORT = {"width": 1440, "height": 1000}
#: Tries at choosing an option of a select box, and how long each waits for the option to show.
CHOOSE_TRIES, CHOOSE_WAIT_MS = 3, 10_000


def isolated_store(monkeypatch: pytest.MonkeyPatch, folder: Path) -> str:
    """Point cartsight at an empty DuckDB store in ``folder`` and keep every secrets.toml out of reach.

    Returns the store URL. The working directory and HOME move to ``folder`` because the store
    URL is read from ``.streamlit/secrets.toml`` there before ``CARTSIGHT_DB_URL``.
    """
    url = f"duckdb:///{folder / 'store.duckdb'}"
    monkeypatch.chdir(folder)
    monkeypatch.setenv("HOME", str(folder))
    monkeypatch.setenv(config.DB_URL_ENV, url)
    monkeypatch.setenv(config.HOME_ENV, str(folder / "home"))
    return url


def run_until(at, done: Callable[[], bool], timeout_s: float = APPTEST_TIMEOUT_S):
    """Rerun an AppTest until ``done()`` holds (a load runs in a worker thread between runs)."""
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"the page did not reach the expected state within {timeout_s} s")
        time.sleep(POLL_S)
        at.run()
    return at


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_app(folder: Path) -> Iterator[str]:
    """Start ``streamlit run app.py`` on a free port with its store in ``folder``; yields the base URL.

    The server runs in ``folder`` with HOME there too, so no secrets.toml of the developer's can
    redirect it to their data.
    """
    env = {
        **os.environ, "HOME": str(folder), config.DB_URL_ENV: f"duckdb:///{folder / 'store.duckdb'}",
        config.HOME_ENV: str(folder / "home"), "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1",
    }
    with serve_app(folder, env) as (base, _):
        yield base


@contextlib.contextmanager
def serve_app(folder: Path, env: dict, launcher: list[str] | None = None,
              pinned: bool = True) -> Iterator[tuple[str, subprocess.Popen]]:
    """``streamlit run app.py`` in ``folder`` on a free port, headless; yields (base URL, process).

    ``folder`` gets a copy of the project's ``.streamlit/config.toml``; ``env`` is the server's
    whole environment. ``launcher``: what runs Streamlit after the interpreter (default
    ``-m streamlit``; a script that patches something first). ``pinned``: also pin the address
    to 127.0.0.1 and usage statistics off on the command line; False leaves them to the
    project's config.toml (as the README starts the app). The server's output goes to
    ``folder/streamlit.log``; the process is stopped on exit.
    """
    (folder / ".streamlit").mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / ".streamlit" / "config.toml", folder / ".streamlit" / "config.toml")
    port = free_port()
    options = ["--server.headless", "true", "--server.port", str(port), "--server.fileWatcherType", "none"]
    if pinned:
        options += ["--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"]
    log_path = folder / "streamlit.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, *(launcher or ["-m", "streamlit"]), "run", str(ROOT / "app.py"), *options],
            cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_healthy(base, proc, log_path)
            yield base, proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_healthy(base: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as resp:
                if resp.read().strip() == b"ok":
                    return
        time.sleep(POLL_S)
    raise RuntimeError(f"streamlit did not answer {base}/_stcore/health within {SERVER_START_TIMEOUT_S} s")


def launch_chromium(playwright):
    """Debian's Chromium under Playwright (Playwright cannot download its own browser here)."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


@contextlib.contextmanager
def app_in_browser(chromium, folder: Path, step_timeout_ms: int) -> Iterator:
    """The app on the store in ``folder``, open on its Overview in a page of a new browser context (``VIEWPORT``,
    downloads accepted, ``step_timeout_ms`` for each step); yields the page. The context is closed on leaving;
    the browser is the session's (``conftest.debian_chromium``): later tests use it."""
    with running_app(folder) as url:
        context = chromium.new_context(viewport=VIEWPORT, accept_downloads=True)
        context.set_default_timeout(step_timeout_ms)
        page = context.new_page()
        try:
            page.goto(url)
            page.get_by_role("heading", name="Overview").first.wait_for()
            yield page
        finally:
            context.close()


#: Set to 1 to have the real-browser tests save their screenshots (off by default: no test reads them, and
#: waiting for the charts and encoding each page cost some 10 s a journey on two busy cores).
SCREENS_ENV = "CARTSIGHT_TEST_SCREENS"


def screens_wanted() -> bool:
    """Whether this run saves screenshots (:data:`SCREENS_ENV`)."""
    return os.environ.get(SCREENS_ENV) == "1"


def full_screenshot(page, path: Path, viewport: dict | None = None) -> None:
    """The whole page, when :func:`screens_wanted`: Streamlit scrolls inside its main block, so grow the viewport
    to its height first. Each time the page is taken once its charts have drawn (at most ``CHARTS_WAIT_MS``), with
    CSS transitions ended."""
    if not screens_wanted():
        return
    viewport = viewport or VIEWPORT
    _charts_drawn(page)
    height = page.evaluate("document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": viewport["width"], "height": max(viewport["height"], int(height))})
    _charts_drawn(page)  # the charts redraw at the new size
    page.screenshot(path=str(path), full_page=True, animations="disabled")
    page.set_viewport_size(viewport)


#: How long a screenshot waits for the page's Plotly charts to draw before it is taken anyway.
CHARTS_WAIT_MS = 5_000
#: Holds once every Plotly chart on the page has its plot drawn and no transition under way.
_CHARTS_DRAWN = """() => [...document.querySelectorAll('.js-plotly-plot')].every(
    chart => chart._fullLayout && !chart._transitioning && chart.querySelector('.main-svg'))"""
_TWO_FRAMES = "() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))"


def _charts_drawn(page) -> None:
    """Wait two frames (a resize reaches the charts), then until every chart has drawn, then two frames more."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.evaluate(_TWO_FRAMES)
    with contextlib.suppress(PlaywrightTimeout):  # a screenshot is for looking at later: take it all the same
        page.wait_for_function(_CHARTS_DRAWN, timeout=CHARTS_WAIT_MS)
    page.evaluate(_TWO_FRAMES)


#: Where the real-browser journeys leave a full-page screenshot of every page (git-ignored), to look at after a run.
SCREENS_DIR = ROOT / "test-artifacts" / "screens"
#: The window the screenshots are taken in: an analyst's laptop.
SCREEN_VIEWPORT = {"width": 1440, "height": 900}


def screens_of_every_page(page, prefix: str) -> list[str]:
    """Open every page from the sidebar, wait until each has run, and (when :func:`screens_wanted`) save a
    full-page screenshot of each, 1440 px wide, as ``test-artifacts/screens/<prefix>-<page>.png``; returns the
    titles of the pages opened. The page is left on the last one."""
    SCREENS_DIR.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size(SCREEN_VIEWPORT)
    opened = []
    for file_name, title, _ in _app_pages():
        page.get_by_test_id("stSidebarNav").get_by_role("link", name=title, exact=True).click()
        page.get_by_role("heading", name=title, exact=True).wait_for()
        page.wait_for_timeout(300)
        page.get_by_test_id("stStatusWidget").wait_for(state="detached")
        if title == "Shopper":
            _pick_first_suggestion(page)
        full_screenshot(page, SCREENS_DIR / f"{prefix}-{Path(file_name).stem}.png", SCREEN_VIEWPORT)
        opened.append(title)
    return opened


def _pick_first_suggestion(page) -> None:
    """On the Shopper page, open the first suggested shopper (when there is one), so its screenshot shows a shopper."""
    box = page.get_by_test_id("stSelectbox").filter(has_text="Pick a shopper")
    if not box.count():
        return
    open_options(page, box.first).first.click()
    page.get_by_role("heading", name="Timeline").wait_for()
    page.wait_for_timeout(300)
    page.get_by_test_id("stStatusWidget").wait_for(state="detached")


def _app_pages() -> tuple:
    """app.py's ``PAGES`` (file, title, icon), read from its source: importing app.py would run the app."""
    import ast

    tree = ast.parse((ROOT / "app.py").read_text())
    node = next(n for n in tree.body if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", None) == "PAGES")
    return ast.literal_eval(node.value)


def settle(page) -> None:
    """Wait until the script run triggered by the last widget change has finished."""
    page.wait_for_timeout(300)
    page.get_by_test_id("stStatusWidget").wait_for(state="detached")


def labelled(page, test_id: str, label: str):
    """The widget of kind ``test_id`` (``stSelectbox``, ``stMultiSelect``, ...) whose label reads exactly ``label``."""
    return page.get_by_test_id(test_id).filter(
        has=page.get_by_test_id("stWidgetLabel").filter(has_text=re.compile(f"^{re.escape(label)}$"))).first


def open_options(page, box, typed: str = ""):
    """Open the list of the select box ``box``, typing ``typed`` into it first (which filters the list to the
    options that match it); returns the listed options that contain ``typed`` once one shows. A click that lands
    while another popover closes does not open the list: it is tried ``CHOOSE_TRIES`` times."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    field, options = box.locator("input"), page.get_by_role("option")
    options = options.filter(has_text=typed) if typed else options
    for attempt in range(1, CHOOSE_TRIES + 1):
        field.click()
        if typed:
            field.fill(typed)
        try:
            options.first.wait_for(timeout=CHOOSE_WAIT_MS)
            return options
        except PlaywrightTimeout:
            if attempt == CHOOSE_TRIES:
                raise
            page.keyboard.press("Escape")
    raise AssertionError("unreachable")


def choose(page, test_id: str, label: str, option: str) -> None:
    """Choose the option that contains ``option`` in the select box (or multiselect) labelled ``label``.

    Streamlit lists a select box's options in a virtualised popover, where an option further down may not be
    rendered or may lie outside the window (Playwright then waits for it to come into view until its step times
    out): the box is scrolled to the middle of the window and the option's text typed into it, which filters the
    list to the options that match, so the wanted one is rendered at the top of the list and clicked there, or,
    when even that lies outside the window, chosen with the keyboard. Once the page has rerun the box must show it
    (a select box's value, or a multiselect's tag), or the choice is made again.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    box = labelled(page, test_id, label)
    for _ in range(CHOOSE_TRIES):
        box.evaluate("element => element.scrollIntoView({block: 'center'})")
        options = open_options(page, box, typed=option)
        try:
            options.first.click(timeout=CHOOSE_WAIT_MS)
        except PlaywrightTimeout:
            page.keyboard.press("ArrowDown")  # the first option that matches, then choose it
            page.keyboard.press("Enter")
        if test_id == "stMultiSelect":
            page.keyboard.press("Escape")
        settle(page)
        if _shows(box, test_id, option):
            return
    raise AssertionError(f"the {label!r} box does not show {option!r} after {CHOOSE_TRIES} tries at choosing it")


def _shows(box, test_id: str, option: str) -> bool:
    """Whether the select box shows ``option`` as its value, or the multiselect shows it as one of its tags."""
    if test_id == "stMultiSelect":
        return box.locator("[data-tag]").filter(has_text=option).count() > 0
    return option in box.locator("input").input_value()
