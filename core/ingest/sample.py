"""The bundled sample, offered once on a first start so the app opens on data.

Offered once per store URL, and only to a store that never held data: the analyst's own data coming first
means the sample is never added later. A marker file in :func:`core.config.home_dir` remembers the offer;
a failed load leaves no marker, so the next start tries again.
"""
from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.engine import Engine

from core import config, store
from core.errors import DatasetExistsError
from core.ingest.load import IngestReport, ingest_file

#: One sample load at a time in this process, whatever the number of sessions.
_LOCK = threading.Lock()


def marker(url: str) -> Path:
    """The file whose presence says the store at ``url`` was already offered the sample."""
    return config.home_dir() / f".sample-offered-{hashlib.sha256(url.encode()).hexdigest()[:16]}"


def mark_offered(url: str) -> None:
    """Remember the offer; a read-only data folder only means the offer is repeated next start."""
    path = marker(url)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{store.safe_url(url)}\n")
    except OSError:
        pass


def sample_pending(engine: Engine, url: str) -> bool:
    """True on a first start: a store that never held data and was never offered the sample."""
    if marker(url).exists() or not config.SAMPLE_FILE.is_file():
        return False
    if store.list_datasets(engine):
        mark_offered(url)  # the analyst's own data came first: never add the sample later
        return False
    return True


def load_sample(engine: Engine, url: str,
                progress: Callable[[float, str], None] | None = None) -> IngestReport | None:
    """Load the sample as :data:`core.config.SAMPLE_DATASET`; None when the store holds data by now
    (another session loaded it). A :class:`core.errors.CartsightError` propagates, unmarked, for a retry."""
    with _LOCK:
        if store.list_datasets(engine):
            mark_offered(url)
            return None
        try:
            report = ingest_file(engine, config.SAMPLE_FILE, config.SAMPLE_DATASET, progress=progress)
        except DatasetExistsError:
            report = None
        mark_offered(url)
        return report
