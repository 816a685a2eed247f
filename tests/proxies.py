"""PgBouncer and nginx of a test's own, run from the configs shipped in deploy/ (their addresses, ports and
paths replaced, nothing else), so a test exercises exactly what an operator installs.

Both are Debian's packages (`./scripts/setup dev` installs them as root). Without them a test skips,
saying why, and fails when CI=true. As root, PgBouncer runs as the `postgres` user (it refuses root)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import IN_CI

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
PGBOUNCER_INI = DEPLOY / "pgbouncer" / "pgbouncer.ini"
NGINX_CONF = DEPLOY / "nginx" / "creditctl.conf"
START_TIMEOUT_S = 20.0


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: the production-shape tests must run)")
    pytest.skip(reason)


def _binary(name: str, package: str) -> str:
    found = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)), None
    )
    if found is None:
        _unavailable(f"{name} not found: install Debian's {package} (./scripts/setup dev does, as root)")
    assert found is not None
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, process: subprocess.Popen[bytes], log: Path, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{log.read_text(errors='replace')}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} not listening on {port} within {START_TIMEOUT_S}s")


def _replace_once(text: str, pattern: str, replacement: str, where: Path) -> str:
    """`pattern` (a regex, multiline) must occur exactly once in the shipped file: if the file changes
    shape, the test says so instead of running something else."""
    out, n = re.subn(pattern, replacement, text, flags=re.M)
    if n != 1:
        raise AssertionError(f"{where}: expected one match of {pattern!r}, found {n}")
    return out


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@dataclass(frozen=True)
class Pgbouncer:
    port: int
    folder: Path
    log: Path

    def url(self, user: str, password: str, database: str = "creditctl") -> str:
        return f"postgresql+psycopg://{user}:{password}@127.0.0.1:{self.port}/{database}"


def pgbouncer_ini(
    server_port: int, port: int, folder: Path, dbname: str = "creditctl", **overrides: str
) -> str:
    """The shipped pgbouncer.ini pointed at the database `dbname` of a server on `server_port` (clients
    still name it `creditctl`), listening on `port`, its files in `folder`; `overrides` replace settings of
    the [pgbouncer] section (e.g. default_pool_size="2")."""
    ini = PGBOUNCER_INI.read_text()
    ini = _replace_once(
        ini,
        r"^creditctl = host=127\.0\.0\.1 port=5432 dbname=creditctl$",
        f"creditctl = host=127.0.0.1 port={server_port} dbname={dbname}",
        PGBOUNCER_INI,
    )
    settings = {
        "listen_port": str(port),
        "auth_file": str(folder / "userlist.txt"),
        "logfile": str(folder / "pgbouncer.log"),
        "pidfile": str(folder / "pgbouncer.pid"),
        **overrides,
    }
    for name, value in settings.items():
        ini = _replace_once(ini, rf"^{name} = .*$", f"{name} = {value}", PGBOUNCER_INI)
    return ini


@contextmanager
def pgbouncer(
    server_port: int, users: dict[str, str], dbname: str = "creditctl", **overrides: str
) -> Iterator[Pgbouncer]:
    """PgBouncer from deploy/pgbouncer/pgbouncer.ini in front of the PostgreSQL on `server_port`; `users`
    (name: password) are its userlist (the server itself trusts loopback: tests/private_postgres.py)."""
    binary = _binary("pgbouncer", "pgbouncer")
    folder = Path(tempfile.mkdtemp(prefix="creditctl-pgbouncer-"))
    port = free_port()
    (folder / "pgbouncer.ini").write_text(pgbouncer_ini(server_port, port, folder, dbname, **overrides))
    (folder / "userlist.txt").write_text("".join(f'"{u}" "{p}"\n' for u, p in users.items()))
    as_user: list[str] = []
    if os.geteuid() == 0:  # pgbouncer refuses to run as root
        shutil.chown(folder, user="postgres")
        for f in folder.iterdir():
            shutil.chown(f, user="postgres")
        as_user = ["-u", "postgres"]
    log = folder / "stdout.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [binary, *as_user, str(folder / "pgbouncer.ini")],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_listening(port, process, folder / "pgbouncer.log", "pgbouncer")
        yield Pgbouncer(port, folder, folder / "pgbouncer.log")
    finally:
        _stop(process)
        shutil.rmtree(folder, ignore_errors=True)


@dataclass(frozen=True)
class Nginx:
    port: int
    folder: Path
    error_log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def nginx_conf(instance_ports: list[int], port: int) -> str:
    """The shipped http-context file with its two instances replaced by `instance_ports` and its listen
    port by `port`."""
    conf = NGINX_CONF.read_text()
    servers = "".join(f"    server 127.0.0.1:{p} max_fails=1 fail_timeout=2s;\n" for p in instance_ports)
    conf = _replace_once(
        conf,
        r"^    server 127\.0\.0\.1:8001 max_fails=1 fail_timeout=2s;\n    server 127\.0\.0\.1:8002 .*\n",
        servers,
        NGINX_CONF,
    )
    return _replace_once(conf, r"^    listen 8080;$", f"    listen 127.0.0.1:{port};", NGINX_CONF)


@contextmanager
def nginx(instance_ports: list[int]) -> Iterator[Nginx]:
    """nginx in the foreground with deploy/nginx/creditctl.conf in front of `instance_ports`."""
    binary = _binary("nginx", "nginx")
    folder = Path(tempfile.mkdtemp(prefix="creditctl-nginx-"))
    folder.chmod(0o755)
    port = free_port()
    (folder / "creditctl.conf").write_text(nginx_conf(instance_ports, port))
    user = "user root;\n" if os.geteuid() == 0 else ""  # its temp files are in this folder
    (folder / "nginx.conf").write_text(
        f"{user}worker_processes 1;\nerror_log {folder / 'error.log'} warn;\npid {folder / 'nginx.pid'};\n"
        "events { worker_connections 4096; }\n"
        "http {\n"
        f"    access_log {folder / 'access.log'};\n"
        f"    client_body_temp_path {folder / 'body'};\n    proxy_temp_path {folder / 'proxy'};\n"
        f"    fastcgi_temp_path {folder / 'fcgi'};\n    uwsgi_temp_path {folder / 'uwsgi'};\n"
        f"    scgi_temp_path {folder / 'scgi'};\n"
        f"    include {folder / 'creditctl.conf'};\n"
        "}\n"
    )
    log = folder / "stdout.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [binary, "-p", str(folder), "-c", str(folder / "nginx.conf"), "-g", "daemon off;"],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_listening(port, process, folder / "error.log", "nginx")
        yield Nginx(port, folder, folder / "error.log")
    finally:
        _stop(process)
        shutil.rmtree(folder, ignore_errors=True)
