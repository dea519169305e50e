"""What every page shares: the store engine, the dataset picker, and showing project errors."""
from __future__ import annotations

import datetime as dt

import streamlit as st

from core import store
from core.errors import CartsightError

DATASET_KEY = "dataset"


def _leave_pages_directory_mode() -> None:
    """Hand routing to app.py's st.navigation even when the first request is a page URL.

    Streamlit treats a folder named ``pages/`` beside the entry script as its legacy
    multipage app until ``st.navigation`` is first called in the process; a server whose
    first request is ``/data`` would otherwise list every file of this folder (``common``
    included) as a page. The layout the project asks for keeps the folder's name, so the
    first script run that imports this module switches the legacy mode off and reruns:
    the rerun executes app.py, whose st.navigation then resolves the requested page.
    """
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


_leave_pages_directory_mode()


@st.cache_resource(show_spinner="Opening the database…")
def open_engine(url: str):
    """The engine for ``url``, cached for the server's life; raises StoreUnavailableError."""
    return store.make_engine(url)


def get_engine():
    """The store's engine, cached per URL; shows the reason and stops the page when it cannot open."""
    try:
        return open_engine(store.resolve_url())
    except CartsightError as exc:
        st.error(str(exc))
        st.stop()


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


def show_error(exc: CartsightError) -> None:
    """Show a project error's message (written for the analyst) without a traceback."""
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
