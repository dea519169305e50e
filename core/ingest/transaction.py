"""A load's transaction: a new dataset's name checked free at its start, or the dataset an append adds to; two
loads racing for one name end in the :class:`DatasetExistsError` an analyst reads, never a database error."""
from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import sqlalchemy as sa

from core import store
from core.errors import DatasetExistsError
from core.ingest import append as appends

#: Seconds a load that lost a race for its name waits for the winner's commit (see _lost_name_race).
_NAME_RACE_WAIT_S = 120.0


@contextlib.contextmanager
def load_transaction(engine: sa.Engine, name: str,
                      append: bool) -> Iterator[tuple[sa.Connection, appends.FileTarget | None]]:
    """The load's transaction and, for an append, the dataset it adds to (None: a new dataset)."""
    if append:
        with appends.appending(engine, name) as (conn, target):
            yield conn, target
    else:
        with _named_load(engine, name) as conn:
            yield conn, None


@contextlib.contextmanager
def _named_load(engine: sa.Engine, name: str) -> Iterator[sa.Connection]:
    """The load's transaction, ``name`` checked free at its start.

    Two loads of one name at once (two analysts, the app and the CLI) both find it free; the
    store's unique name lets one commit and the other fail at its insert (PostgreSQL) or its
    commit (DuckDB) with a driver error, rolled back. That loss is turned into the
    :class:`DatasetExistsError` an analyst reads, never a database error.
    """
    try:
        with engine.begin() as conn:
            with store.new_dataset(conn, name):  # Spark: no unique name to fail on, so the name is claimed
                yield conn
    except sa.exc.DBAPIError as exc:
        if _lost_name_race(engine, name, exc):
            raise DatasetExistsError(
                f"A dataset named {name!r} was saved by another load while this one ran: nothing of this "
                f"file was kept; load it again under another name."
            ) from exc
        raise


def _lost_name_race(engine: sa.Engine, name: str, exc: sa.exc.DBAPIError) -> bool:
    """True when ``exc`` is a unique-key violation and ``name`` now belongs to a committed dataset.

    DuckDB refuses the name as soon as the other load has inserted it, before that load commits:
    the other load's commit is waited for (up to ``_NAME_RACE_WAIT_S``), so that a loser is told
    the name is taken rather than shown a driver error.
    """
    text = str(exc).lower()
    if not (isinstance(exc, sa.exc.IntegrityError) or "duplicate key" in text or "unique constraint" in text):
        return False
    deadline = time.monotonic() + _NAME_RACE_WAIT_S
    while True:
        with engine.connect() as conn:
            taken = conn.execute(sa.select(store.datasets.c.dataset_id).where(store.datasets.c.name == name)).first()
        if taken is not None or time.monotonic() > deadline:
            return taken is not None
        time.sleep(0.1)
