"""Choosing the port: `./scripts/serve --port`, and a taken port refused at once by `creditctl serve`
and by the script (real processes against a port held open by the test)."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.served import clean_env, run

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port another process is listening on for the whole test."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


class TestServe:
    def test_serving_on_a_taken_port_fails_at_once_and_says_so(self, tmp_path: Path, held_port: int) -> None:
        started = time.monotonic()
        done = run("serve", "--port", str(held_port), cwd=tmp_path, timeout=30)
        took = time.monotonic() - started
        assert done.returncode != 0
        assert f"port {held_port} on 127.0.0.1 is already in use" in done.stderr
        assert "--port" in done.stderr  # how to choose another
        assert "serving on" not in done.stdout + done.stderr
        assert "Traceback" not in done.stderr
        assert took < 15, f"took {took:.1f} s: it should not wait for gunicorn to give up"

    def test_the_serve_script_checks_the_port_it_is_given_before_loading_the_demo(
        self, tmp_path: Path, held_port: int
    ) -> None:
        done = subprocess.run(
            [str(REPO / "scripts" / "serve"), "--port", str(held_port)],
            env=clean_env(CREDITCTL_INSTANCE_PATH=str(tmp_path / "instance")),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode != 0
        assert f"port {held_port} on 127.0.0.1 is already in use" in done.stderr
        assert "key (shown once)" not in done.stdout  # nothing minted for a server that cannot start
        assert not (tmp_path / "instance" / "creditctl.db").exists()

    @pytest.mark.parametrize("args", [["--port"], ["--port", "eighty"], ["--what"]])
    def test_the_serve_script_refuses_bad_arguments_with_its_usage(self, args: list[str]) -> None:
        done = subprocess.run(
            [str(REPO / "scripts" / "serve"), *args], capture_output=True, text=True, timeout=30, check=False
        )
        assert done.returncode == 2
        assert "--port" in done.stderr

    def test_the_serve_script_says_how_to_choose_the_port(self) -> None:
        done = subprocess.run(
            [str(REPO / "scripts" / "serve"), "--help"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0
        assert "--port PORT" in done.stdout and "PORT=" in done.stdout
