"""Housekeeping of the store's files: owner tokens, temporary folders, and the stale files a killed process left.

:func:`process_owner` gives each process a token locked for its life; :func:`temp_prefix` names
its temporary folders; :func:`cleanup_stale_files` removes what dead processes left behind.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import tempfile
import threading
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from core import config
from core.store.schema import models, schema_info


# Files that outlive a killed process (a model folder renamed but never published, a temporary
# folder of a load) carry an owner token. Each process holds an exclusive flock on its token's
# lock file for its whole life; the kernel drops the lock when the process dies, however it dies.
# A file whose owner's lock can be taken belongs to a dead process and may go.

_OWNER_PATTERN = re.compile(r"(?P<host>[A-Za-z0-9]+)_(?P<pid>\d+)_(?P<nonce>[0-9a-f]{8})")
_owner_state: dict[str, Any] = {}
_owner_guard = threading.Lock()
TEMP_PREFIX = "cartsight-"
OWNERS_FOLDER = "cartsight-owners"
OWNER_SUFFIX = ".owner.json"
PARTIAL_MARK = ".partial-"


def _owners_dir() -> Path:
    return Path(tempfile.gettempdir()) / OWNERS_FOLDER


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9]", "x", socket.gethostname())[:40] or "host"


def process_owner() -> str:
    """This process's owner token (``host_pid_nonce``), locked for the process's life; made on first use."""
    import fcntl

    with _owner_guard:
        if _owner_state.get("pid") == os.getpid():
            return _owner_state["token"]
        token = f"{_host()}_{os.getpid()}_{secrets.token_hex(4)}"
        folder = _owners_dir()
        folder.mkdir(parents=True, exist_ok=True)
        fresh = folder / f".{token}.new"
        fd = os.open(fresh, os.O_CREAT | os.O_RDWR, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.rename(fresh, folder / f"{token}.lock")  # appears already locked: a cleaner never sees it free
        _owner_state.update(pid=os.getpid(), token=token, fd=fd)
        return token


def owner_alive(token: str) -> bool:
    """True unless ``token``'s process is known dead (its lock is free or gone on this host).

    A token from another host cannot be checked and counts as alive. Removes the lock file
    of a dead owner.
    """
    import fcntl

    match = _OWNER_PATTERN.fullmatch(token)
    if match is None:
        return True  # not ours to judge
    if match["host"] != _host():
        return True
    path = _owners_dir() / f"{token}.lock"
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return False
    except OSError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        path.unlink(missing_ok=True)
        return False
    finally:
        os.close(fd)


def temp_prefix(kind: str) -> str:
    """Prefix for a temporary folder of this process (``tempfile.mkdtemp(prefix=...)``), cleaned if it dies."""
    return f"{TEMP_PREFIX}{kind}-{process_owner()}-"


def store_tag(conn: Connection) -> str:
    """An identity of the store behind ``conn`` (its dialect and the creation time of its schema)."""
    created = conn.execute(sa.select(sa.func.min(schema_info.c.created_at))).scalar()
    return f"{conn.dialect.name}:{created.isoformat() if created else 'unknown'}"


def cleanup_stale_files(engine: Engine) -> list[Path]:
    """Remove what killed processes left behind; returns the paths removed. Never raises.

    * model folders under :func:`core.config.models_dir` that this store never published
      (no ``cs_models`` row) and whose writer is dead, half-written ``.partial-`` folders
      of dead writers, and their ``.owner.json`` notes; folders of another store sharing
      the data folder, of a live writer, or without an owner note are kept;
    * temporary folders and files ``cartsight-<kind>-<owner>-*`` (see :func:`temp_prefix`)
      of dead processes in the system's temporary folder, and dead owners' lock files.
    """
    removed: list[Path] = []
    try:
        removed += _cleanup_models(engine)
    except (OSError, sa.exc.SQLAlchemyError):
        pass  # a read-only data folder or a busy store: try again next start
    try:
        removed += _cleanup_temp()
    except OSError:
        pass
    return removed


def _cleanup_models(engine: Engine) -> list[Path]:
    root = config.models_dir()
    if not root.is_dir():
        return []
    entries = [p for d in root.iterdir() if d.is_dir() and not d.name.startswith(".") for p in d.iterdir()]
    if not entries:
        return []
    with engine.connect() as conn:
        tag = store_tag(conn)
        published = set(conn.execute(sa.select(models.c.model_version)).scalars())
    removed = []
    for path in entries:
        if path.is_dir() and PARTIAL_MARK in path.name:
            token = path.name.split(PARTIAL_MARK, 1)[1]
            if not owner_alive(token):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
        elif path.is_file() and path.name.startswith(".") and OWNER_SUFFIX + "." in path.name:
            if not owner_alive(path.name.rsplit(".", 1)[1]):  # a note killed before its rename
                path.unlink(missing_ok=True)
                removed.append(path)
        elif path.is_file() and path.name.endswith(OWNER_SUFFIX):
            version = path.name.removesuffix(OWNER_SUFFIX)
            note = _read_note(path)
            if note is None or version in published:
                continue  # published here, or a note we cannot read: keep
            if note.get("store") not in (None, tag):
                continue  # written for another store sharing this data folder: not ours to judge
            if owner_alive(str(note.get("owner", ""))):
                continue  # its writer is alive: it may be publishing right now
            folder = path.with_name(version)
            if folder.exists():
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _read_note(path: Path) -> dict | None:
    try:
        note = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return note if isinstance(note, dict) else None


def _cleanup_temp() -> list[Path]:
    removed = []
    pattern = re.compile(re.escape(TEMP_PREFIX) + r"[a-z]+-(?P<token>" + _OWNER_PATTERN.pattern + ")-")
    for path in Path(tempfile.gettempdir()).glob(f"{TEMP_PREFIX}*"):
        match = pattern.match(path.name)
        if match and not owner_alive(match["token"]):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
    owners = _owners_dir()
    if owners.is_dir():
        for lock in owners.glob("*.lock"):
            if not owner_alive(lock.stem):  # removes the lock file of a dead owner
                removed.append(lock)
    return removed
