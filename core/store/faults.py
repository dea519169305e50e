"""Failure messages of the store: a database or data folder that cannot be used, said for the analyst.

:func:`describe_failure` maps a driver or file-system error to a :class:`StoreUnavailableError`
naming the database or folder, the reason and what to do; :func:`check_data_folder` is the
start-up check of a DuckDB file's folder; :func:`lock_conflict_message` names the process that
holds a DuckDB file (:func:`process_role`, :func:`command_role`).
"""
from __future__ import annotations

import errno
import os
import re
import shutil
import tempfile
from pathlib import Path

from core import config
from core.errors import StoreUnavailableError
from core.store.url import _first_line, resolve_url, safe_url


_WHAT_TO_DO_DB = (
    "Check that the database server is running and accepts connections at that address (the URL comes from "
    "`[connections.cartsight] url` in .streamlit/secrets.toml, or the CARTSIGHT_DB_URL environment variable), "
    "then try again (in the app: reload the page); cartsight reconnects by itself once the database is back, "
    "no restart needed."
)
_WHAT_TO_DO_FOLDER = (
    f"Fix it, or point the {config.HOME_ENV} environment variable (or the store URL) at a writable folder "
    "with free space, then start cartsight again."
)


def check_data_folder(folder: Path) -> None:
    """Make sure ``folder`` can hold the store: created if missing, a writable folder, enough free space.

    Raises :class:`StoreUnavailableError` naming the folder, what was found (not a folder,
    read-only, the free bytes) and what to do. Writes and removes one empty probe file.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not folder.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "not a folder", str(folder))
        fd, probe = tempfile.mkstemp(prefix=".cartsight-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise StoreUnavailableError(_folder_message(folder, exc)) from exc
    free = free_bytes(folder)
    if free is not None and free < config.STORE_MIN_FREE_BYTES:
        raise StoreUnavailableError(
            f"{disk_full_message(folder, free)} (cartsight needs at least {config.STORE_MIN_FREE_BYTES:,} bytes free "
            "to open its database)."
        )


def free_bytes(path: Path) -> int | None:
    """Free bytes on the disk holding ``path`` (its nearest existing parent); None when unknown."""
    path = Path(path)
    for candidate in (path, *path.parents):
        if candidate.exists():
            try:
                return shutil.disk_usage(candidate).free
            except OSError:
                return None
    return None


def disk_full_message(folder: Path, free: int | None = None) -> str:
    """"The disk holding FOLDER is full: N bytes free" and what to do."""
    free = free_bytes(folder) if free is None else free
    found = f"{free:,} bytes free" if free is not None else "no space left"
    return (f"The disk holding {folder} is full: {found}. Free some space there, or point {config.HOME_ENV} "
            "(or the store URL) at a disk with room, then try again")


def _folder_message(folder: Path, exc: OSError) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return disk_full_message(folder) + "."
    if exc.errno in (errno.ENOTDIR, errno.EEXIST) or (folder.exists() and not folder.is_dir()):
        return (f"The data folder {folder} is not a folder (a file or another object is in its place): "
                f"{_os_reason(exc)}. {_WHAT_TO_DO_FOLDER}")
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"The data folder {folder} is read-only ({_os_reason(exc)}): cartsight writes its database and " \
               f"models there. {_WHAT_TO_DO_FOLDER}"
    return f"The data folder {folder} cannot be used: {_os_reason(exc)}. {_WHAT_TO_DO_FOLDER}"


def _os_reason(exc: OSError) -> str:
    return exc.strerror or _first_line(exc)


def _causes(exc: BaseException):
    seen: set[int] = set()
    todo = [exc]
    while todo:
        e = todo.pop(0)
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo.extend([getattr(e, "orig", None), e.__cause__, e.__context__])


_DISK_FULL_TEXT = ("no space left on device", "disk quota exceeded", "could not extend file", "disk is full")
_UNREACHABLE_CLASSES = {"OperationalError", "InterfaceError", "DisconnectionError", "ConnectionException",
                        "ConnectionTimeout"}


def describe_failure(exc: BaseException, url: str | None = None, opening: bool = False) -> StoreUnavailableError | None:
    """Map a database or file-system failure to a :class:`StoreUnavailableError` written for the analyst.

    Inputs: the exception caught (SQLAlchemy-wrapped or raw driver error, ``OSError``) and
    the store URL (default: :func:`resolve_url`). Output: the error whose message names
    the database (password masked) or the folder, the reason, and what to do; or None when
    ``exc`` is not about the store being unreachable, read-only or out of space (a bug,
    bad input: let it propagate). ``opening`` words it for a store that could not be opened
    ("Cannot open the database at URL: ..."). Never raises.
    """
    if isinstance(exc, StoreUnavailableError):
        return exc
    try:
        url = url or resolve_url()
    except Exception:  # noqa: BLE001 - a broken secrets.toml must not hide the original failure
        url = url or "the configured database"
    lead = f"Cannot open the database at {safe_url(url)}: " if opening else ""
    local = isinstance(url, str) and url.startswith("duckdb:///")
    for e in _causes(exc):
        held = lock_conflict_message(e)
        if held is not None:
            return StoreUnavailableError(lead + held if lead else held[0].upper() + held[1:])
    for e in _causes(exc):
        text = str(e).lower()
        code = getattr(e, "errno", None)
        is_os = isinstance(e, OSError)
        if (is_os and code in (errno.ENOSPC, errno.EDQUOT)) or any(t in text for t in _DISK_FULL_TEXT):
            if not is_os and not local and _path_in_message(e) is None:  # the database server's own disk
                return StoreUnavailableError(
                    f"{lead}The database at {safe_url(url)} is out of disk space ({_first_line(e)}). Free space on "
                    "the database server, then try again.")
            return StoreUnavailableError(lead + disk_full_message(_failing_folder(e, url)) + ".")
        if is_os and code in (errno.EROFS, errno.EACCES, errno.EPERM):
            return StoreUnavailableError(lead + _folder_message(_failing_folder(e, url), e))
        if not is_os and ("read-only file system" in text or ("io error" in text and "permission denied" in text)):
            folder = _failing_folder(e, url)
            return StoreUnavailableError(
                f"{lead}The data folder {folder} is read-only ({_first_line(e)}): cartsight writes its database and "
                f"models there. {_WHAT_TO_DO_FOLDER}")
    for e in _causes(exc):
        if type(e).__name__ in _UNREACHABLE_CLASSES and not isinstance(e, OSError):
            e = getattr(e, "orig", None) or e  # the driver's own words, without SQLAlchemy's prefix
            head = lead or f"The database at {safe_url(url)} cannot be reached: "
            return StoreUnavailableError(f"{head}{_first_line(e).rstrip('.')}. {_WHAT_TO_DO_DB}")
    return None


_LOCK_FILE = re.compile(r'Could not set lock on file "(?P<file>[^"]+)"')
_LOCK_HOLDER = re.compile(r"Conflicting lock is held in (?P<exe>.*?) \(PID (?P<pid>\d+)\)")


def lock_conflict_message(exc: BaseException) -> str | None:
    """"the app (PID n) has this store open: …" when ``exc`` is DuckDB refusing a file another process holds.

    DuckDB lets one process at a time open a database file, and names the holder's program
    and PID in its refusal; the holder is named from its command line (:func:`process_role`),
    or "another process" when DuckDB gave no PID. None for any other error.
    """
    text = str(exc)
    locked = _LOCK_FILE.search(text)
    if locked is None:
        return None
    holder = _LOCK_HOLDER.search(text)
    who = f"{process_role(int(holder['pid']), holder['exe'])} (PID {holder['pid']})" if holder else "another process"
    return (f"{who} has this store open: stop it, or use a PostgreSQL store, which many processes can use at "
            f"once (a DuckDB file, here {locked['file']}, takes one process at a time).")


def process_role(pid: int, program: str = "") -> str:
    """Who process ``pid`` is, from its command line (:func:`command_role`); ``program`` is the path DuckDB
    reports, used when the command line cannot be read (no /proc, another user's process)."""
    try:
        args = [a.decode(errors="replace") for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if a]
    except OSError:
        args = []
    return command_role(args, program)


def command_role(args: list[str], program: str = "") -> str:
    """"the app", "a `cartsight segment` command" or "another program (NAME)" for a command line ``args``."""
    names = [Path(a).name for a in args]
    if "streamlit" in names:
        return "the app"
    for i, (arg, name) in enumerate(zip(args, names)):
        if name == "cartsight" or arg == "core.cli":
            command = next((a for a in args[i + 1:] if not a.startswith("-")), None)
            return f"a `cartsight {command}` command" if command else "a cartsight command"
    shown = names[0] if names else Path(program).name or "unknown"
    if shown.startswith("python") and len(args) > 1:  # the script or module it runs says more than the interpreter
        if args[1] == "-m" and len(args) > 2:
            shown += f" -m {args[2]}"
        elif not args[1].startswith("-"):
            shown += f" {names[1]}"
    return f"another program ({shown})"


def _path_in_message(exc: BaseException) -> Path | None:
    """An absolute local path quoted in a driver's message (DuckDB names the file it failed to write)."""
    match = re.search(r'"(/[^"]+)"', str(exc))
    if match and Path(match[1]).parent.exists():
        return Path(match[1])
    return None


def _failing_folder(exc: BaseException, url: str) -> Path:
    name = getattr(exc, "filename", None)
    path = Path(name) if name else _path_in_message(exc)
    if path is not None:
        return path if path.is_dir() else path.parent
    if url.startswith("duckdb:///") and url != "duckdb:///:memory:":
        return Path(url.removeprefix("duckdb:///")).expanduser().parent
    return config.home_dir()
