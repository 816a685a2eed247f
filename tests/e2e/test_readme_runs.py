"""The README and the guides in docs/ run as written: their runnable shell examples, in order, in one shell,
against a fresh demo served as `./scripts/serve` serves it (the server and a worker beside it), each answer
checked against what the text promises next to the command (tests/e2e/readme_runner.py says how)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.e2e.readme_runner import RUNNABLE, commands_of, report, results_of, script
from tests.e2e.served import CREDITCTL, Served, served_demo, stop

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
# In the order the README lists them: a reader who follows the README goes on to its guides.
DOCUMENTS = [
    ROOT / "README.md",
    ROOT / "docs" / "order-systems.md",
    ROOT / "docs" / "administrators.md",
    ROOT / "docs" / "credit-managers.md",
    ROOT / "docs" / "auditors.md",
    ROOT / "docs" / "operators.md",
]
RUN_TIMEOUT_S = 240  # the whole reading; it takes well under a minute on a quiet machine


@contextmanager
def worker_beside(served: Served) -> Iterator[None]:
    """`creditctl worker`, as ./scripts/serve runs it beside the server (webhooks, sealing, anchors)."""
    log = (served.folder / "worker.log").open("wb")
    process = subprocess.Popen(
        [str(CREDITCTL), "worker"], env=served.env, cwd=served.folder, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        yield
    finally:
        stop(process)
        log.close()


def test_every_document_with_runnable_examples_is_read() -> None:
    marked = {p for p in [ROOT / "README.md", *(ROOT / "docs").rglob("*.md")] if RUNNABLE in p.read_text()}
    assert marked == set(DOCUMENTS)


def test_the_readme_and_its_guides_run_as_written(tmp_path: Path) -> None:
    commands = commands_of(DOCUMENTS, ROOT)
    assert len(commands) > 50
    reader = tmp_path / "reader"  # the reader's checkout: its .venv, nothing else
    reader.mkdir()
    (reader / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    assert (reader / ".venv" / "bin" / "activate").exists() and (
        reader / ".venv" / "bin" / "creditctl"
    ).exists()
    results = tmp_path / "results"
    results.mkdir()
    (tmp_path / "served").mkdir()
    with served_demo(tmp_path / "served") as served, worker_beside(served):
        text = script(commands, results, keys=served.keys, base_url=served.url)
        (tmp_path / "reading.sh").write_text(text, encoding="utf-8")
        # A reading that hangs is cut short; the commands that did not end are named below.
        with contextlib.suppress(subprocess.TimeoutExpired):
            subprocess.run(
                ["bash", str(tmp_path / "reading.sh")], cwd=reader, env=served.env, timeout=RUN_TIMEOUT_S,
                capture_output=True, check=False,
            )  # fmt: skip
    broken = report(results_of(commands, results))
    assert not broken, f"answers the text does not promise:\n{broken}"
