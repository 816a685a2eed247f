"""A PostgreSQL server of a test's own, to stop and start at will: initdb into a temporary folder, pg_ctl
on a free loopback port, everything removed at the end.

Never the shared server at 127.0.0.1:5432: other test sessions run on it. A test that needs an outage takes
this one; without initdb it skips, saying why (and fails when CI=true). `streaming_replica` copies one with
pg_basebackup -R into a second server on another port, a hot standby streaming from it."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import IN_CI

START_TIMEOUT_S = 60


def _bin_dir() -> Path | None:
    found = shutil.which("initdb")
    if found:  # the folder of the real binary: a link on PATH may stand without pg_basebackup beside it
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(candidates[-1]).parent if candidates else None


def _run_as() -> list[str]:
    """initdb and postgres refuse to run as root: as root, run them as the `postgres` user."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        _unavailable("running as root and there is no `postgres` user to run initdb as")
    runuser = shutil.which("runuser")
    if runuser is None:
        _unavailable("running as root without runuser to run initdb as `postgres`")
    return [runuser, "-u", "postgres", "--"]


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: the database outage tests must run)")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivatePostgres:
    """One private server: `url` is its database `creditctl`; `stop()` and `start()` take it away and
    bring it back on the same port, with its data."""

    def __init__(
        self, bin_dir: Path, folder: Path, port: int, run_as: list[str], durable: bool = False
    ) -> None:
        self.bin_dir, self.folder, self.port, self._run_as = bin_dir, folder, port, run_as
        self.durable = durable  # fsync on (a bench of commits); off by default: tests need no durability
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/creditctl"
        self.admin_url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"

    def sql(self, statement: str) -> Any:
        """One statement in autocommit on this server (as postgres), its first value (None: no row)."""
        engine = create_engine(self.url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                result = conn.execute(text(statement))
                return result.scalar() if result.returns_rows else None
        finally:
            engine.dispose()

    def tool(self, name: str, *args: str) -> str:
        """Run one of PostgreSQL's programs (pg_dump, pg_restore, pg_basebackup…) as the server's user;
        its standard output. A failure raises with what it said."""
        done = subprocess.run(
            [*self._run_as, str(self.bin_dir / name), *args],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"{name} {' '.join(args)}: {done.stdout}{done.stderr}")
        return done.stdout

    def promote(self) -> None:
        """A standby becomes a primary (pg_ctl promote waits until it accepts writes)."""
        self._pg_ctl("-w", "promote")

    def _pg_ctl(self, *args: str) -> None:
        done = subprocess.run(
            [*self._run_as, str(self.bin_dir / "pg_ctl"), "-D", str(self.folder / "data"), *args],
            capture_output=True, text=True, timeout=START_TIMEOUT_S, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            log = self.folder / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"pg_ctl {' '.join(args)}: {done.stdout}{done.stderr}\n{tail}")

    def start(self) -> None:
        """Start it and wait until it accepts connections."""
        unsafe = "" if self.durable else "-c fsync=off -c full_page_writes=off "
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 {unsafe}-c max_connections=200"
        )
        self._pg_ctl("-o", options, "-l", str(self.folder / "server.log"), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop it: `fast` ends every session (what a restart or failover does to clients), `immediate`
        is a crash."""
        self._pg_ctl("-m", mode, "-w", "stop")

    def running(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False


def _server_folder(run_as: list[str], *, with_data: bool = True) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="creditctl-pg-"))  # not tmp_path: the postgres user must enter it
    if with_data:
        (folder / "data").mkdir()
    if run_as:
        shutil.chown(folder, user="postgres")
        if with_data:
            shutil.chown(folder / "data", user="postgres")
    return folder


def _remove(server: PrivatePostgres) -> None:
    if server.running():
        with contextlib.suppress(RuntimeError):  # removed below all the same
            server.stop("immediate")
    deadline = time.monotonic() + 10
    while server.running() and time.monotonic() < deadline:
        time.sleep(0.1)
    shutil.rmtree(server.folder, ignore_errors=True)


@contextmanager
def streaming_replica(primary: PrivatePostgres) -> Iterator[PrivatePostgres]:
    """A hot standby of `primary` on a port of its own: pg_basebackup -R (a copy, WAL streamed during it,
    and standby.signal with primary_conninfo written), started, and streaming before this yields. Stopped
    and removed at the end. Its `url` reads the same database `creditctl`; it refuses writes."""
    with _base_backup(primary, standby=True) as replica:
        deadline = time.monotonic() + START_TIMEOUT_S
        while primary.sql("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'") == 0:
            if time.monotonic() > deadline:
                raise RuntimeError("the replica did not start streaming")
            time.sleep(0.1)
        yield replica


@contextmanager
def restored_base_backup(primary: PrivatePostgres) -> Iterator[PrivatePostgres]:
    """A base backup of `primary` (pg_basebackup, WAL included) started as a server of its own: what a
    restore from such a backup gives. Stopped and removed at the end."""
    with _base_backup(primary, standby=False) as copy:
        yield copy


@contextmanager
def _base_backup(primary: PrivatePostgres, *, standby: bool) -> Iterator[PrivatePostgres]:
    folder = _server_folder(primary._run_as, with_data=False)
    copy = PrivatePostgres(primary.bin_dir, folder, _free_port(), primary._run_as, primary.durable)
    try:
        primary.tool(
            "pg_basebackup", "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres",
            "-D", str(folder / "data"), *(["-R"] if standby else []), "-X", "stream",
            "--checkpoint=fast", "--no-sync",
        )  # fmt: skip
        copy.start()
        yield copy
    finally:
        _remove(copy)


def caught_up(primary: PrivatePostgres, replica: PrivatePostgres, timeout_s: float = 30.0) -> None:
    """Wait until the replica has replayed everything the primary had written when this was called."""
    target = primary.sql("SELECT pg_current_wal_lsn()::text")
    deadline = time.monotonic() + timeout_s
    while not replica.sql(f"SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn"):
        if time.monotonic() > deadline:
            raise AssertionError(f"the replica did not replay up to {target} within {timeout_s} s")
        time.sleep(0.05)


@contextmanager
def private_postgres(*, durable: bool = False) -> Iterator[PrivatePostgres]:
    """A fresh server with an empty database `creditctl`, stopped and removed at the end; `durable`:
    with fsync (and its copies too), for a bench whose figures depend on it."""
    bin_dir = _bin_dir()
    if bin_dir is None:
        _unavailable("initdb not found (on PATH or under /usr/lib/postgresql/*/bin): no private PostgreSQL")
    assert bin_dir is not None
    run_as = _run_as()
    folder = _server_folder(run_as)
    server = PrivatePostgres(bin_dir, folder, _free_port(), run_as, durable)
    try:
        subprocess.run(
            [*run_as, str(bin_dir / "initdb"), "-D", str(folder / "data"), "-A", "trust", "-U", "postgres",
             "--no-sync", "-E", "UTF8", "--locale=C"],
            capture_output=True, check=True, timeout=120,
        )  # fmt: skip
        server.start()
        admin = create_engine(server.url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text("CREATE DATABASE creditctl"))
        admin.dispose()
        yield server
    finally:
        _remove(server)
