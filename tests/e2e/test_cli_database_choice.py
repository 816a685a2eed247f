"""A `creditctl` command run from another folder, or against a database that is not migrated or not
there: it names the database it used and says how to choose one, in one error line, not a traceback."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.e2e.served import clean_env, run

pytestmark = pytest.mark.e2e


class TestDatabaseChoice:
    @pytest.mark.parametrize("args", [["keys", "list"], ["demo"], ["rules", "export"], ["expire"]])
    def test_a_command_on_an_unmigrated_database_says_which_and_how_to_choose(
        self, tmp_path: Path, args: list[str]
    ) -> None:
        done = run(*args, cwd=tmp_path)  # CREDITCTL_INSTANCE_PATH of a folder with no database yet
        assert done.returncode == 1
        assert "Traceback" not in done.stderr
        database = tmp_path / "instance" / "creditctl.db"
        assert f"sqlite:///{database}" in done.stderr and "not migrated" in done.stderr
        for hint in ("creditctl db upgrade", "CREDITCTL_DATABASE_URL", "CREDITCTL_INSTANCE_PATH"):
            assert hint in done.stderr

    def test_an_unreachable_database_is_named_without_its_password(self, tmp_path: Path) -> None:
        with socket.socket() as s:  # a port nothing listens on
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        url = f"postgresql+psycopg://someone:hunter2@127.0.0.1:{port}/nowhere"
        done = run("keys", "list", cwd=tmp_path, env=clean_env(CREDITCTL_DATABASE_URL=url))
        assert done.returncode == 1
        assert "Traceback" not in done.stderr and "hunter2" not in done.stderr
        assert f"someone:***@127.0.0.1:{port}/nowhere" in done.stderr
        assert "CREDITCTL_DATABASE_URL" in done.stderr
