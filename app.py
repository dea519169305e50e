"""cartsight's entry point: page routes, shared state, the dataset picker, and data on first start.

Run with ``streamlit run app.py``. Pages live in ``pages/``; this file only routes. On the
first start with an empty store it shows the load of the bundled sample (``sample_data/``,
offered once per store by :mod:`core.ingest.sample`) so the app opens on data.
"""
from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from core import config, store
from core.errors import CartsightError
from core.ingest import sample
from pages import common

# Nothing may reach a model hub: models are built from code and trained here.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

PAGES_DIR = Path(__file__).resolve().parent / "pages"
#: (file in pages/, title, icon), in the order of the analyst's journey.
PAGES = (
    ("data.py", "Data", ":material/upload_file:"),
    ("overview.py", "Overview", ":material/monitoring:"),
    ("forecasts.py", "Forecasts", ":material/online_prediction:"),
    ("segments.py", "Segments", ":material/group_work:"),
    ("preferences.py", "Preferences", ":material/favorite:"),
    ("shopper.py", "Shopper", ":material/person_search:"),
    ("campaigns.py", "Campaigns", ":material/campaign:"),
)


def _load_sample(engine, url: str) -> None:
    """Load the bundled sample (:mod:`core.ingest.sample`) with a visible status; a failure is shown and
    retried next start."""
    with st.status("First start: loading the bundled sample data…", expanded=True) as status:
        bar = st.progress(0.0, text="Reading sample_data/")
        try:
            report = sample.load_sample(
                engine, url, progress=lambda fraction, message: bar.progress(min(max(fraction, 0.0), 1.0), text=message),
            )
        except CartsightError as exc:
            status.update(label="The sample data could not be loaded.", state="error", expanded=True)
            common.show_error(exc)
            return
        if report is None:
            status.update(label="The sample data is loaded.", state="complete", expanded=False)
        else:
            status.update(label=f"Loaded the sample: {report.rows_loaded:,} events of {report.users:,} shoppers.",
                          state="complete", expanded=False)
    st.session_state[common.DATASET_KEY] = config.SAMPLE_DATASET


def _store_unavailable(error: CartsightError):
    def page() -> None:
        st.title("cartsight")
        common.show_store_unavailable(error)
        st.markdown(
            "The database is set by `url` under `[connections.cartsight]` in `.streamlit/secrets.toml`, or by the "
            "`CARTSIGHT_DB_URL` environment variable; by default it is a DuckDB file in `CARTSIGHT_HOME`."
        )

    return page


def _store_error(exc: Exception, url: str) -> CartsightError | None:
    """The analyst's message for a store that cannot be opened or used, else None (a bug: let it raise)."""
    return exc if isinstance(exc, CartsightError) else store.describe_failure(exc, url)


st.set_page_config(page_title="cartsight", page_icon="🛒", layout="wide")
st.session_state.setdefault(common.DATASET_KEY, None)

url = store.resolve_url()
try:
    engine = common.open_engine(url)  # raises instead of stopping, so the error page below can show why
    load_sample = sample.sample_pending(engine, url)
    has_data = load_sample or bool(store.list_datasets(engine))
except Exception as exc:  # noqa: BLE001 - store faults become the error page; anything else re-raises
    error = _store_error(exc, url)
    if error is None:
        raise
    common.forget_engine(url)  # a server that comes back is reached on the next run, no restart needed
    st.navigation([st.Page(_store_unavailable(error), title="cartsight", url_path="unavailable")],
                  position="hidden").run()
    st.stop()

# Declared before the (slow) sample load so the sidebar shows these pages from the first moment.
present = [(f, title, icon) for f, title, icon in PAGES if (PAGES_DIR / f).is_file()]
landing = "overview.py" if has_data and any(f == "overview.py" for f, _, _ in present) else "data.py"
navigation = st.navigation(
    [st.Page(PAGES_DIR / f, title=title, icon=icon, default=(f == landing)) for f, title, icon in present]
)
# a store fault in any page (the database stopped mid-session, a full disk) shows its message, not a traceback
with common.store_faults(url):
    if load_sample:
        _load_sample(engine, url)
    common.dataset_picker()
    navigation.run()
