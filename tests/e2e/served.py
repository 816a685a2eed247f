"""Running the real `creditctl` command in end-to-end tests: a clean environment, one command, and an
instance served by gunicorn on a free port, always stopped.

One place for what several e2e modules need, so they start servers the same way (the command the README
gives, `creditctl serve`) and clean up the same way (SIGTERM, then SIGKILL to the server's own group)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

CREDITCTL = Path(sys.executable).with_name("creditctl")
READY_TIMEOUT_S = 60.0
DEMO_KEY = re.compile(r"^(admin|orders|auditor|finance) key \(shown once\):\s+(\S+)$", re.M)


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any CREDITCTL_ or PROMETHEUS_ setting, balances from the
    fake provider, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CREDITCTL_", "PROMETHEUS_"))}
    return env | {"CREDITCTL_BALANCE_PROVIDER": "fake"} | extra


def run(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`creditctl ARGS`, whatever its exit code. Without CREDITCTL_INSTANCE_PATH in `env` it uses
    `cwd`/instance: never the checkout's own instance folder, creditctl's default (a developer's demo)."""
    env = dict(env or clean_env())
    env.setdefault("CREDITCTL_INSTANCE_PATH", str(cwd / "instance"))
    return subprocess.run(
        [str(CREDITCTL), *args], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip


def run_ok(*args: str, cwd: Path, env: dict[str, str]) -> str:
    """`creditctl ARGS`, which must succeed; its standard output."""
    done = run(*args, cwd=cwd, env=env)
    assert done.returncode == 0, f"creditctl {' '.join(args)}: {done.stdout}\n{done.stderr}"
    return done.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server exited with {process.returncode}:\n{log.read_text(errors='replace')}")
        try:
            if requests.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except requests.RequestException:  # not listening yet, or a worker still booting
            pass
        time.sleep(0.2)
    pytest.fail(f"the server was not ready within {READY_TIMEOUT_S}s:\n{log.read_text(errors='replace')}")


def wait_for(condition: Callable[[], object], timeout_s: float, what: str) -> None:
    """Poll `condition` until it is true; fail naming `what` after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to gunicorn (serve execs it: it is our child's pid); SIGKILL to its group if it hangs."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # the server's own session: its workers, nothing else
            process.wait(timeout=10)


@dataclass(frozen=True)
class Served:
    url: str
    keys: dict[str, str]  # the demo keys by role: admin, orders, auditor, finance
    log: Path
    env: dict[str, str] = field(repr=False)
    folder: Path = field(repr=False)


@contextmanager
def served_demo(folder: Path, *, workers: int = 1, **settings: str) -> Iterator[Served]:
    """A fresh SQLite instance in `folder` with the demo data, served by `creditctl serve`; stopped at
    the end whatever happens. `settings` are more CREDITCTL_* variables."""
    env = clean_env(
        CREDITCTL_INSTANCE_PATH=str(folder / "instance"),
        CREDITCTL_WORKERS=str(workers),
        CREDITCTL_LOG_LEVEL="WARNING",
        **settings,
    )
    run_ok("db", "upgrade", cwd=folder, env=env)
    keys = dict(DEMO_KEY.findall(run_ok("demo", cwd=folder, env=env)))
    assert set(keys) == {"admin", "orders", "auditor", "finance"}, keys
    with serving(folder, env) as (url, _process):
        yield Served(url=url, keys=keys, log=folder / "server.log", env=env, folder=folder)


@contextmanager
def serving(
    folder: Path, env: dict[str, str], *, port: int | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`creditctl serve` with `env` in its own session (so `kill_hard` reaches its workers too), ready;
    its URL and process. Stopped at the end unless already dead; the log is appended to server.log."""
    port, log = port or free_port(), folder / "server.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [str(CREDITCTL), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env, cwd=folder, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_ready(url, process, log)
        yield url, process
    finally:
        stop(process)


def kill_hard(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL to the server's own group (gunicorn and its workers), as a crash or the OOM killer would."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
