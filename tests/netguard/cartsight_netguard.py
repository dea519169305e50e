"""A socket guard for tests: record and refuse every attempt to reach beyond this machine.

Patches Python's socket layer (``socket.getaddrinfo``, ``gethostbyname``, ``gethostbyname_ex``,
``gethostbyaddr``, ``create_connection``, and ``socket.socket.connect`` / ``connect_ex`` /
``sendto``) so that a name lookup or a connection to anything but this machine (loopback,
the unspecified address, a Unix socket) is refused and written down: the call, the host,
the port, the process and the innermost frames of the caller. Used two ways:

* in a test process: ``with guarded() as attempts: ...`` (removed again at the end);
* in a subprocess, from interpreter start: put this folder on ``PYTHONPATH`` and set
  ``CARTSIGHT_NETGUARD_LOG`` to a file; ``sitecustomize.py`` installs the guard, writes one
  ``installed`` line, then one JSON line per refused attempt.

It sees what goes through Python's ``socket`` module, which is how Python code (requests,
urllib, huggingface_hub, asyncio, Streamlit) reaches the network. Native code with its own
sockets (libpq, DuckDB's extension installer, a browser) is outside it and is checked by
other means in tests/test_no_network.py.
"""
from __future__ import annotations

import contextlib
import errno
import ipaddress
import json
import os
import socket
import threading
import traceback
from collections.abc import Iterator

#: Environment variable naming the JSON-lines file a subprocess's guard writes to.
LOG_ENV = "CARTSIGHT_NETGUARD_LOG"
#: Host names that always mean this machine.
LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
#: Frames of the caller kept with each attempt (innermost last).
STACK_FRAMES = 14
_INET_FAMILIES = (socket.AF_INET, socket.AF_INET6)
REFUSED = "refused by the test's network guard"


class NetworkBlocked(ConnectionRefusedError):
    """A connection to a non-local address, refused by the test's network guard."""


def is_local_host(host) -> bool:
    """True for a host that stays on this machine: loopback or unspecified address, ``localhost``, no host."""
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    host = str(host).strip().strip("[]").split("%", 1)[0]
    if host == "" or host.lower().rstrip(".") in LOCAL_NAMES:
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False  # any other name would need a lookup that may leave the machine
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback or ip.is_unspecified


class Guard:
    """The installed patches and what they recorded (``attempts``: one dict per refused call)."""

    def __init__(self, log_path: str | None = None) -> None:
        self.log_path = log_path
        self.attempts: list[dict] = []
        self._lock = threading.Lock()
        self._saved: list[tuple[object, str, object]] = []

    # --- recording ---------------------------------------------------------------------------------

    def record(self, call: str, host, port) -> dict:
        """Write down one refused attempt (in memory and, for a subprocess, in the log file)."""
        frames = traceback.extract_stack()[:-2][-STACK_FRAMES:]  # less record() and the patch itself
        entry = {
            "event": "attempt", "call": call, "host": host if isinstance(host, str) else repr(host),
            "port": port if isinstance(port, (int, str)) or port is None else repr(port), "pid": os.getpid(),
            "stack": [f"{f.filename}:{f.lineno} {f.name}" for f in frames],
        }
        with self._lock:
            self.attempts.append(entry)
            self._write(entry)
        return entry

    def _write(self, entry: dict) -> None:
        if self.log_path:
            with open(self.log_path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(entry) + "\n")

    # --- patches -----------------------------------------------------------------------------------

    def install(self) -> Guard:
        """Patch the socket module; returns self."""
        guard = self
        real = {name: getattr(socket, name) for name in
                ("getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr", "create_connection")}
        real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
        real_sendto = socket.socket.sendto

        def lookup(name):
            def patched(host, *args, **kwargs):
                if not is_local_host(host):
                    port = args[0] if args else kwargs.get("port")
                    guard.record(name, host, port)
                    raise socket.gaierror(socket.EAI_NONAME, f"name lookup of {host!r} {REFUSED}")
                return real[name](host, *args, **kwargs)
            return patched

        def create_connection(address, *args, **kwargs):
            if not is_local_host(address[0]):
                guard.record("create_connection", address[0], address[1])
                raise NetworkBlocked(errno.ECONNREFUSED, f"connection to {address!r} {REFUSED}")
            return real["create_connection"](address, *args, **kwargs)

        def refused(sock, address) -> bool:
            return sock.family in _INET_FAMILIES and isinstance(address, tuple) and not is_local_host(address[0])

        def connect(sock, address):
            if refused(sock, address):
                guard.record("connect", address[0], address[1])
                raise NetworkBlocked(errno.ECONNREFUSED, f"connection to {address!r} {REFUSED}")
            return real_connect(sock, address)

        def connect_ex(sock, address):
            if refused(sock, address):
                guard.record("connect_ex", address[0], address[1])
                return errno.ECONNREFUSED
            return real_connect_ex(sock, address)

        def sendto(sock, data, *args):
            address = args[-1] if args else None
            if refused(sock, address):
                guard.record("sendto", address[0], address[1])
                raise NetworkBlocked(errno.ECONNREFUSED, f"datagram to {address!r} {REFUSED}")
            return real_sendto(sock, data, *args)

        for name in ("getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr"):
            self._patch(socket, name, lookup(name))
        self._patch(socket, "create_connection", create_connection)
        self._patch(socket.socket, "connect", connect)
        self._patch(socket.socket, "connect_ex", connect_ex)
        self._patch(socket.socket, "sendto", sendto)
        self._write({"event": "installed", "pid": os.getpid()})
        return self

    def _patch(self, owner, name: str, replacement) -> None:
        # socket.socket inherits connect & co. from _socket.socket: remember whether the name was its own
        self._saved.append((owner, name, owner.__dict__.get(name)))
        setattr(owner, name, replacement)

    def uninstall(self) -> None:
        """Put the socket module back as it was."""
        for owner, name, original in reversed(self._saved):
            if original is None:
                delattr(owner, name)
            else:
                setattr(owner, name, original)
        self._saved.clear()


def install(log_path: str | None = None) -> Guard:
    """Install a guard for the rest of this process (a subprocess's sitecustomize calls this)."""
    return Guard(log_path).install()


@contextlib.contextmanager
def guarded() -> Iterator[list[dict]]:
    """Refuse and record outbound attempts inside the block; yields the list the attempts go to."""
    guard = Guard().install()
    try:
        yield guard.attempts
    finally:
        guard.uninstall()


def read_log(path) -> tuple[set[int], list[dict]]:
    """A subprocess guard's log: the pids whose guard was installed, and the refused attempts."""
    installed: set[int] = set()
    attempts: list[dict] = []
    with contextlib.suppress(FileNotFoundError), open(path, encoding="utf-8") as fh:
        for line in fh:
            entry = json.loads(line)
            if entry["event"] == "installed":
                installed.add(entry["pid"])
            else:
                attempts.append(entry)
    return installed, attempts
