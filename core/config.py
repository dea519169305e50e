"""Every tunable constant of cartsight in one place.

Pages and CLI read defaults from here; nothing else should hard-code these numbers.
"""
from __future__ import annotations

import os
from pathlib import Path

# --- storage -----------------------------------------------------------------
#: Environment variable that names the SQLAlchemy URL of the store.
DB_URL_ENV = "CARTSIGHT_DB_URL"
#: Environment variable that overrides the folder holding the default DuckDB file and models.
HOME_ENV = "CARTSIGHT_HOME"
#: Name of the Streamlit connection section in ``.streamlit/secrets.toml``.
SECRETS_SECTION = "cartsight"
#: Version of the table layout; bumped whenever ``core.store`` changes a table.
SCHEMA_VERSION = 1

# --- ingest --------------------------------------------------------------------
#: Inactivity gap that starts a new session when a file carries no session ids.
SESSION_GAP_MINUTES = 30
#: Bytes read from the start of a file to sniff its encoding, delimiter and layout.
SNIFF_BYTES = 256 * 1024
#: A price above this (in the file's currency) is taken as a data error and quarantined.
MAX_PRICE = 1_000_000.0
#: Canonical event types; anything else is kept as given and reported as unknown.
EVENT_TYPES = ("view", "cart", "remove_from_cart", "purchase", "wishlist")
#: Name of the dataset the app loads from ``sample_data/`` on first start.
SAMPLE_DATASET = "sample"
SAMPLE_FILE = Path(__file__).resolve().parent.parent / "sample_data" / "sample_events.csv.gz"

# --- forecasting -----------------------------------------------------------------
#: Days after the cutoff in which a purchase counts for the propensity target.
DEFAULT_HORIZON_DAYS = 7
MIN_HORIZON_DAYS = 1
MAX_HORIZON_DAYS = 60
#: Held-out windows with fewer buyers than this are reported as "too few to measure".
MIN_BUYERS_TO_MEASURE = 20


def home_dir() -> Path:
    """Folder for the default database and saved models (``$CARTSIGHT_HOME`` or the user's data folder)."""
    env = os.environ.get(HOME_ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "cartsight"


def models_dir() -> Path:
    """Folder where trained model versions are written (weights, config, vocabularies)."""
    return home_dir() / "models"
