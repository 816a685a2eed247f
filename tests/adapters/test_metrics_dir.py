"""Each server's metrics files in a folder of its own (`creditctl serve`, gunicorn's multiprocess mode).

Instances side by side on one host may share an instance folder. With one metrics folder for it, a
server restarted after a SIGKILL deleted the other's files while its workers wrote them, and failed to
start when one was written between the delete and its mkdir (the production drill met it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from adapters.cli.main import metrics_dir


def _a_process_that_ended() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_server_started_beside_a_running_one_leaves_its_files_alone(tmp_path: Path) -> None:
    root = tmp_path / "prometheus"
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        theirs = metrics_dir(root, other.pid)
        (theirs / "counter_1.db").write_bytes(b"their samples")
        ours = metrics_dir(root, os.getpid())  # this test's process: running too
        assert ours != theirs and ours.is_dir() and not any(ours.iterdir())
        assert (theirs / "counter_1.db").read_bytes() == b"their samples"
    finally:
        other.kill()
        other.wait()


def test_the_folders_of_servers_no_longer_running_are_removed(tmp_path: Path) -> None:
    root = tmp_path / "prometheus"
    gone = metrics_dir(root, _a_process_that_ended())
    (gone / "counter_2.db").write_bytes(b"stale")
    unrelated = root / "notes"
    unrelated.mkdir()
    ours = metrics_dir(root, os.getpid())
    assert not gone.exists()
    assert unrelated.is_dir()  # only folders named as a server's are taken away
    assert sorted(p.name for p in root.iterdir()) == sorted([ours.name, "notes"])


def test_a_server_given_a_crashed_servers_pid_starts_with_an_empty_folder(tmp_path: Path) -> None:
    root = tmp_path / "prometheus"
    first = metrics_dir(root, os.getpid())
    (first / "counter_3.db").write_bytes(b"from before the crash")
    again = metrics_dir(root, os.getpid())
    assert again == first and not any(again.iterdir())
