"""What every page shares: the store engine, the dataset picker, showing project errors and names as plain text."""
from __future__ import annotations

import contextlib
import datetime as dt
import re
import sys
from pathlib import Path

import streamlit as st

from core import config, jobs, store
from core.errors import CartsightError, StoreUnavailableError
from core.present import formats

DATASET_KEY = "dataset"
#: what Markdown would read as formatting, escaped by :func:`md`
_MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")
_HANDED_KEY = "common_routing_handed_to_app"  # set in the session whose run switched Streamlit to st.navigation


def _hand_routing_to_app() -> None:
    """Hand routing to app.py's st.navigation even when a server's first request is a page URL.

    Streamlit (1.67) routes an app whose entry script has a folder named ``pages/`` beside it
    by that folder (its legacy multipage mode: every file a page, ``common`` included) until
    ``st.navigation`` is first called in the server process; then, as its docs say, "if you call
    st.navigation in your app (in any session), Streamlit will switch to using the newer,
    Page-and-navigation multipage structure", for every session until the server restarts. So
    a first request for ``/data`` would run this folder's data.py alone, under a sidebar of
    every file. No public setting turns that mode off (``client.showSidebarNavigation`` only
    hides a sidebar, st.navigation's too; Streamlit's advice is a folder named otherwise, and
    the layout the project asks for keeps ``pages/``), so the first script run that imports
    this module (always before st.navigation: app.py and every page import it first) makes the
    public switch itself: a hidden navigation of the same pages the folder mode lists, which
    resolves the requested URL as that mode did, then a rerun, which executes app.py, whose
    st.navigation resolves it to the app's own page. A page run as its own app (AppTest, or
    ``streamlit run pages/x.py``) has no ``pages/`` beside it and is left alone.
    """
    entry = getattr(sys.modules.get("__main__"), "__file__", None)  # the script Streamlit runs is __main__
    if not entry or (Path(entry).resolve().parent / "pages") != _PAGES_DIR or st.session_state.get(_HANDED_KEY):
        return
    st.session_state[_HANDED_KEY] = True  # the rerun imports this module again (this import ends in the rerun)
    folder_pages = sorted(p for p in _PAGES_DIR.glob("*.py") if p.name != "__init__.py" and not p.name.startswith("."))
    st.navigation([st.Page(Path(entry), default=True), *map(st.Page, folder_pages)], position="hidden")
    st.rerun()


_PAGES_DIR = Path(__file__).resolve().parent
_hand_routing_to_app()


@st.cache_resource(show_spinner="Opening the database…")
def open_engine(url: str):
    """The engine for ``url``, cached for the server's life; raises StoreUnavailableError."""
    return store.make_engine(url)


def get_engine():
    """The store's engine, cached per URL; shows the reason and stops the page when it cannot open."""
    url = store.resolve_url()
    try:
        return open_engine(url)
    except CartsightError as exc:
        st.error(str(exc))
        st.stop()


def forget_engine(url: str) -> None:
    """Drop the cached engine of ``url`` so that the next run opens a fresh one (after a store fault).

    A PostgreSQL pool heals by itself (pre-ping); opening afresh also runs the start-up
    checks again, so while the fault lasts every page shows it the same way, and once it is
    gone the page simply works. Code still holding the old engine (a worker thread) keeps it.
    """
    open_engine.clear(url)


@contextlib.contextmanager
def store_faults(url: str | None = None):
    """Show a store fault raised inside (database unreachable, disk full, read-only) as its message.

    Wraps a whole page run (app.py uses it around ``st.navigation(...).run()``): the page
    stops at the failing call with an error that names the database or folder and what to
    do, never a traceback; the engine is forgotten so the next run reconnects. Anything that
    is not a store fault propagates unchanged.
    """
    url = url or store.resolve_url()
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - only store faults are turned into messages
        known = store.describe_failure(exc, url)
        if known is None:
            raise
        forget_engine(url)
        show_store_unavailable(known)


def show_store_unavailable(exc: CartsightError) -> None:
    """The message of a store that cannot be used, with a button to try again."""
    st.error(str(exc), icon=":material/cloud_off:")
    st.button("Try again", key="store_retry", help="Reconnect to the database and reload this page.")


def dataset_picker() -> str | None:
    """Sidebar select box of the stored datasets; the choice is shared by all pages."""
    names = [d["name"] for d in store.list_datasets(get_engine())]
    if not names:
        st.session_state[DATASET_KEY] = None
        return None
    current = st.session_state.get(DATASET_KEY)
    index = names.index(current) if current in names else 0
    choice = st.sidebar.selectbox("Dataset", names, index=index, help="Every page shows this dataset.")
    st.session_state[DATASET_KEY] = choice
    return choice


def current_dataset() -> dict:
    """The picked dataset's row; on a store with no dataset, says where to load one and stops the page."""
    name = st.session_state.get(DATASET_KEY)
    if name:
        try:
            return store.get_dataset(get_engine(), name)
        except CartsightError:
            st.session_state[DATASET_KEY] = None
    st.info("No dataset yet: load a CSV on the **Data** page.")
    st.stop()


def page_start(title: str) -> tuple[dict, object, str]:
    """The page's title and the dataset it shows: ``(dataset row, engine, store key)``; the store key (the URL,
    password masked by SQLAlchemy) keys the page's cached queries."""
    st.title(title)
    dataset = current_dataset()
    engine = get_engine()
    st.caption(f"Dataset **{md(dataset['name'])}**")
    return dataset, engine, str(engine.url)


def training_now(dataset_id: int) -> bool:
    """True while a model for the dataset ``dataset_id`` of the current store is being trained."""
    return jobs.training_for(store.resolve_url(), dataset_id) is not None


def no_forecasts_text(dataset_id: int, otherwise: str) -> str:
    """What a page says where forecasts would be: "Training…" while a model is being trained, else ``otherwise``."""
    return config.TRAINING_TEXT if training_now(dataset_id) else otherwise


def md(text: object) -> str:
    """Text shown literally inside Markdown: dataset, file and column names and values are data, not formatting."""
    return _MARKDOWN_SPECIALS.sub(r"\\\1", str(text))


def show_error(exc: CartsightError) -> None:
    """Show a project error's message (written for the analyst) without a traceback.

    A store fault that a core function reported in its own words is shown in the store's
    words (which database or folder, what to do), and the engine is forgotten so the next
    run reconnects.
    """
    if isinstance(exc, StoreUnavailableError) and exc.__cause__ is not None:
        url = store.resolve_url()
        known = store.describe_failure(exc.__cause__, url)
        if known is not None:
            forget_engine(url)
            show_store_unavailable(known)
            return
    st.error(str(exc))


def date_window(dataset: dict, key: str, help_text: str) -> tuple[dt.datetime | None, dt.datetime | None]:
    """A date-range filter over the dataset's days: (start, end) as naive UTC datetimes, end exclusive.

    None means open at that end (the whole dataset), also while the analyst picks the second date.
    """
    first, last = dataset.get("first_event"), dataset.get("last_event")
    if first is None or last is None:
        return None, None
    chosen = st.date_input(
        "Dates (UTC)", value=(first.date(), last.date()), min_value=first.date(), max_value=last.date(),
        key=f"{key}_{dataset['dataset_id']}", help=help_text,
    )
    if not isinstance(chosen, (tuple, list)) or len(chosen) != 2:
        return None, None  # the analyst is still picking the second date
    day_from, day_to = chosen
    start = None if day_from <= first.date() else dt.datetime.combine(day_from, dt.time())
    end = None if day_to >= last.date() else dt.datetime.combine(day_to + dt.timedelta(days=1), dt.time())
    return start, end


def show_table(frame, kinds: dict | None = None, labels: dict | None = None, column_config: dict | None = None,
               **kwargs) -> None:
    """``st.dataframe`` of ``frame`` with every column labelled and every number formatted by its kind
    (``core.present.formats``): no code name and no bare float reaches the screen. ``column_config`` entries
    (e.g. a progress or link column) replace the formatted ones; other keyword arguments go to ``st.dataframe``."""
    shown, spec = formats.table(frame, kinds or {}, labels)
    config_ = {}
    for col, (label, fmt) in spec.items():
        config_[col] = (st.column_config.NumberColumn(label, format=fmt) if fmt else
                        st.column_config.Column(label))
    config_.update(column_config or {})
    kwargs.setdefault("hide_index", True)
    st.dataframe(shown, column_config=config_, **kwargs)


def percent_range(where, label: str, key: str, help: str, disabled: bool = False) -> tuple[float, float]:  # noqa: A002
    """A range slider over chances shown in percent (0 % to 100 %, in whole points); returns the range as 0-1
    shares, as the forecasts are stored."""
    low, high = where.slider(label, 0, 100, (0, 100), step=1, format="%d %%", key=key, help=help, disabled=disabled)
    return low / 100, high / 100


def number_column(label: str, kind: str, help: str | None = None):  # noqa: A002 - Streamlit's own word
    """A table column of ``kind`` (``core.present.formats``) for :func:`show_table`'s ``column_config``; a percent
    column's values are in 0-100 there (``show_table`` scales the frame's shares)."""
    return st.column_config.NumberColumn(label, format=formats.TABLE_FORMATS[kind], help=help)
