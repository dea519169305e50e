"""A new dataset's id on Spark, claimed so that two loads at once never take the same one.

Spark has no sequence and no transaction: a new dataset's id was one more than the largest recorded, and a
dataset is recorded only by a load's last statement. Two loads running at once (two analysts, the app and the
CLI) took the same id, cleared each other's rows and staging table, and both failed (the Spark variant of
``test_two_loads_of_one_name_at_once_one_wins_the_other_is_told``). What Spark's catalog does do atomically is
create a table: a ``CREATE TABLE`` of a name that exists fails. So a load claims its id by creating the empty
table ``cs_datasets__claim_<id>`` (one more than the largest id recorded or claimed; taken already: the next).
A new dataset's name is claimed the same way while it is written (``cs_datasets__name_<hash>``): two loads of
one name at once both found it free, both recorded a dataset of that name, and neither was told. Both claims
are made and let go by one block, :func:`core.store.datasets.new_dataset` (:func:`claimed_name` and
:func:`holding_ids`): its dataset recorded or its rows taken out again, the block ends and drops them, so no
caller releases a claim itself.

A claim whose process was killed stays behind. One made on this machine by a process that no longer runs (its
host and process id are the table's properties) is dropped, and its rows cleared, by the next claim; one made
elsewhere is kept, and its id skipped: another machine's load may still be running.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import re
import socket
from collections.abc import Iterator

import sqlalchemy as sa
from sqlalchemy.engine import Connection

CLAIM_PREFIX = "cs_datasets__claim_"
NAME_PREFIX = "cs_datasets__name_"
_OWNER = "cartsight.claimed_by"
#: Where a connection keeps the ids it claimed inside a holding_ids block.
_HELD = "cartsight.claimed_dataset_ids"
#: Claims tried before giving up (each lost one means another load claimed that id at the same moment).
_ATTEMPTS = 20


def _owner() -> str:
    return f"{socket.gethostname()} {os.getpid()}"


def _claims(conn: Connection, prefix: str = CLAIM_PREFIX) -> dict[str, str]:
    """The claims made now with ``prefix``: what each claims (an id, a name's hash), by its table's name."""
    pattern = re.compile(re.escape(prefix) + r"(\w+)$")
    found = (pattern.match(name) for name in conn.dialect.get_table_names(conn))
    return {m.group(1): m.group(0) for m in found if m}


def _create_claim(conn: Connection, table: str) -> None:
    """Create the claim ``table``, owned by this process; a :class:`sqlalchemy.exc.DBAPIError` when it exists."""
    conn.exec_driver_sql(f"CREATE TABLE {table} (claimed INT) USING parquet TBLPROPERTIES ('{_OWNER}' = '{_owner()}')")


def _taken(exc: Exception) -> bool:
    return "already exists" in str(exc).lower() or "ALREADY_EXISTS" in str(exc)


def _dead_here(conn: Connection, table: str) -> bool:
    """Whether the claim ``table`` was made on this machine by a process that no longer runs."""
    rows = conn.exec_driver_sql(f"SHOW TBLPROPERTIES {table} ('{_OWNER}')").fetchall()
    host, _, pid = (str(rows[0][-1]) if rows else "").partition(" ")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # runs, as another user
        return False
    return False


def claim_dataset_id(conn: Connection, clear_rows) -> int:
    """A new dataset id that no other load holds, claimed (see the module) until the :func:`holding_ids` block it
    is taken in ends; ``clear_rows(conn, id)`` removes what a killed load left under an id taken again."""
    from core.store.schema import datasets

    held = conn.info.get(_HELD)
    if held is None:
        raise RuntimeError("a new dataset's id on Spark is taken inside store.new_dataset(conn, name), which lets "
                           "its claim go")
    for _ in range(_ATTEMPTS):
        claims = {int(did): table for did, table in _claims(conn).items() if did.isdigit()}
        for did, table in sorted(claims.items()):
            if _dead_here(conn, table):
                clear_rows(conn, did)
                conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
                del claims[did]
        recorded = conn.execute(sa.select(sa.func.max(datasets.c.dataset_id))).scalar() or 0
        did = max([int(recorded), *claims]) + 1
        try:
            _create_claim(conn, f"{CLAIM_PREFIX}{did}")
        except sa.exc.DBAPIError as exc:
            if _taken(exc):
                continue  # another load claimed it a moment ago: the next one
            raise
        held.append(did)
        clear_rows(conn, did)  # a load killed before it claimed (an older cartsight) left rows under it
        return did
    raise sa.exc.InvalidRequestError(f"no dataset id could be claimed in {_ATTEMPTS} tries: too many loads at once")


def _name_claim(name: str) -> str:
    return f"{NAME_PREFIX}{hashlib.sha1(name.encode()).hexdigest()[:20]}"


@contextlib.contextmanager
def claimed_name(conn: Connection, name: str) -> Iterator[None]:
    """On Spark, hold dataset name ``name`` while a new dataset of that name is written (checked free before):
    another load of the same name at the same time is told so at once (:class:`DatasetExistsError`); the claim
    is let go when the block ends, the dataset recorded or not. Elsewhere the store's unique name does it."""
    if conn.dialect.name != "spark":
        yield
        return
    from core.errors import DatasetExistsError

    table = _name_claim(name)
    if table in _claims(conn, NAME_PREFIX).values() and _dead_here(conn, table):
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
    try:
        _create_claim(conn, table)
    except sa.exc.DBAPIError as exc:
        if not _taken(exc):
            raise
        raise DatasetExistsError(f"A dataset named {name!r} is being loaded by another session right now: nothing "
                                 f"of this file was kept; load it again under another name.") from exc
    try:
        yield
    finally:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")


@contextlib.contextmanager
def holding_ids(conn: Connection) -> Iterator[None]:
    """On Spark, the block in which :func:`claim_dataset_id` may claim ids on ``conn``; they are dropped when it
    ends (the dataset recorded, or its rows taken out again). Nothing elsewhere."""
    if conn.dialect.name != "spark":
        yield
        return
    conn.info[_HELD] = []
    try:
        yield
    finally:
        for did in conn.info.pop(_HELD):
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {CLAIM_PREFIX}{int(did)}")
