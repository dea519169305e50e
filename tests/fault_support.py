"""Helpers for the fault tests: a private PostgreSQL cluster, CLI subprocesses killed mid-way, generated files."""
from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PG_BIN_GLOB = "/usr/lib/postgresql/*/bin"
#: Seconds a CLI subprocess may take to reach the stage at which it is killed.
STAGE_TIMEOUT_SECONDS = 120


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_bin() -> Path | None:
    """The newest PostgreSQL server binaries folder, or None."""
    found = sorted(Path("/").glob(PG_BIN_GLOB.lstrip("/")), key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    found = [p for p in found if (p / "initdb").is_file() and (p / "pg_ctl").is_file()]
    return found[-1] if found else None


class PrivateCluster:
    """A throw-away PostgreSQL cluster on a free port (initdb + pg_ctl), run as ``postgres`` when root."""

    user = "cartsight"
    password = "s3cret-pw"  # trust authentication ignores it; it is there to check that messages mask it

    def __init__(self) -> None:
        self.bin = pg_bin()
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="cs-faults-pg-"))
        self.data = self.folder / "data"
        self.log = self.folder / "server.log"
        self.as_postgres = os.geteuid() == 0
        if self.as_postgres:
            pw = pwd.getpwnam("postgres")
            os.chown(self.folder, pw.pw_uid, pw.pw_gid)

    def _run(self, *argv: str) -> None:
        cmd = [str(a) for a in argv]
        if self.as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(cmd)} failed: {done.stdout}{done.stderr}{log[-2000:]}")

    def init(self) -> "PrivateCluster":
        self._run(self.bin / "initdb", "-D", self.data, "-A", "trust", "-U", self.user, "--no-sync",
                  "-E", "UTF8", "--locale=C")
        return self

    def start(self) -> None:
        opts = (f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c full_page_writes=off -c synchronous_commit=off")
        self._run(self.bin / "pg_ctl", "-D", self.data, "-l", self.log, "-o", opts, "-w", "-t", "60", "start")

    def stop(self) -> None:
        self._run(self.bin / "pg_ctl", "-D", self.data, "-m", "fast", "-w", "-t", "60", "stop")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}:{self.password}@127.0.0.1:{self.port}/{database}"

    def destroy(self) -> None:
        try:
            self.stop()
        except Exception:  # noqa: BLE001 - already stopped
            pass
        shutil.rmtree(self.folder, ignore_errors=True)


def private_cluster_or_skip() -> PrivateCluster:
    """A started private cluster; skips without PostgreSQL binaries locally, fails in CI."""
    if pg_bin() is None or (os.geteuid() == 0 and shutil.which("runuser") is None):
        message = f"no PostgreSQL server binaries under {PG_BIN_GLOB} (apt-get install -y postgresql)"
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the fault tests: {message}")
        pytest.skip(message)
    cluster = PrivateCluster().init()
    cluster.start()
    return cluster


def cli_env(home: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("CARTSIGHT_DB_URL",)}
    env.update(CARTSIGHT_HOME=str(home), HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", **extra)
    return env


def run_cli(home: Path, *argv, timeout: int = 120, **extra: str) -> subprocess.CompletedProcess:
    """Run ``python -m core.cli ARGV`` to its end."""
    return subprocess.run([sys.executable, "-m", "core.cli", *map(str, argv)], cwd=ROOT, env=cli_env(home, **extra),
                          capture_output=True, text=True, timeout=timeout)


def kill_cli_at(home: Path, argv: list, is_midway, **extra: str) -> list[str]:
    """Start ``python -m core.cli ARGV``, read its progress lines (stderr) and SIGKILL it at the first line
    for which ``is_midway(line)`` is true. Returns the lines read. Fails when the process ends first."""
    proc = subprocess.Popen([sys.executable, "-m", "core.cli", *map(str, argv)], cwd=ROOT, env=cli_env(home, **extra),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    watchdog = threading.Timer(STAGE_TIMEOUT_SECONDS, proc.kill)  # a hung process cannot block readline forever
    watchdog.start()
    try:
        while True:
            line = proc.stderr.readline()
            if not line:
                break  # the process ended before the stage
            lines.append(line.rstrip("\n"))
            if is_midway(line):
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=30)
                assert proc.returncode == -signal.SIGKILL, (proc.returncode, lines)
                return lines
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    pytest.fail(f"the CLI ended (code {proc.returncode}) before the stage to kill it at; its output: {lines}")


def write_events_csv(path: Path, n_rows: int, n_users: int = 20_000) -> Path:
    """A REES46-layout file of ``n_rows`` generated events (DuckDB writes it in well under a second)."""
    import duckdb

    con = duckdb.connect()
    con.execute(f"""
        COPY (SELECT strftime(TIMESTAMP '2019-10-01' + to_seconds((i * 7919) % 2592000), '%Y-%m-%d %H:%M:%S')
                       || ' UTC' AS event_time,
                     CASE WHEN i % 31 = 0 THEN 'purchase' WHEN i % 13 = 0 THEN 'cart' ELSE 'view' END AS event_type,
                     1000 + (i * 37) % 4000 AS product_id,
                     2053013555631882655 + (i % 40) AS category_id,
                     CASE i % 3 WHEN 0 THEN 'electronics.smartphone' WHEN 1 THEN 'apparel.shoes' ELSE '' END
                       AS category_code,
                     CASE i % 4 WHEN 0 THEN 'acme' WHEN 1 THEN 'zen' ELSE '' END AS brand,
                     round(1 + (i * 13) % 50000 / 100.0, 2) AS price,
                     500000000 + (i * 104729) % {int(n_users)} AS user_id,
                     md5(CAST(i // 20 AS VARCHAR)) AS user_session
              FROM range({int(n_rows)}) t(i))
        TO '{path}' (HEADER, DELIMITER ',')
    """)
    con.close()
    return path
