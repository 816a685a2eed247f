"""gunicorn builds no access line that its configuration drops, and builds it again when raised to INFO."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.adapters

# In a child process: dictConfig replaces the root logger's handlers, which this process's tests rely on.
PROBE = """
import json, sys
from gunicorn.config import Config
from adapters.cli import gunicorn_conf
from adapters.web.gunicorn_logger import CreditctlGunicornLogger

config = json.loads(sys.argv[1])
cfg = Config()
cfg.set("logconfig_dict", config or gunicorn_conf.logconfig_dict)
assert cfg.logger_class is not None
logger = CreditctlGunicornLogger(cfg)
built = []
logger.atoms = lambda *a: built.append(1) or {}
logger.access(None, None, {}, None)
print(json.dumps({"enabled": logger.access_log_enabled, "built": len(built)}))
"""


def _probe(config: dict[str, object] | None) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(config)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def test_serve_builds_no_gunicorn_access_line_it_would_drop() -> None:
    assert _probe(None) == {"enabled": False, "built": 0}


def test_a_configuration_raising_gunicorn_access_to_info_gets_its_line_back() -> None:
    from adapters.cli import gunicorn_conf

    config = json.loads(json.dumps(gunicorn_conf.logconfig_dict))
    config["loggers"]["gunicorn.access"]["level"] = "INFO"
    assert _probe(config) == {"enabled": True, "built": 1}


def test_serve_runs_gunicorn_with_this_logger() -> None:
    from adapters.cli import gunicorn_conf

    assert gunicorn_conf.logger_class == "adapters.web.gunicorn_logger.CreditctlGunicornLogger"


FREEZE_PROBE = """
import gc, json
import wsgi  # the app as a worker loads it (SQLite in CREDITCTL_HOME)
from adapters.cli import gunicorn_conf

before = len(gc.get_objects())
gunicorn_conf.post_worker_init(None)
print(json.dumps({"before": before, "after": len(gc.get_objects()), "frozen": gc.get_freeze_count()}))
"""


def test_a_loaded_worker_leaves_the_apps_objects_out_of_every_full_collection(tmp_path) -> None:
    """After a worker loaded the app, gunicorn's post_worker_init hook moves every object the app holds
    into the collector's permanent generation: a full collection no longer walks them (some 18 ms in a
    serving worker, a pause any request could land in)."""
    env = {"PATH": "/usr/bin:/bin", "CREDITCTL_HOME": str(tmp_path), "CREDITCTL_LOG_LEVEL": "WARNING"}
    out = subprocess.run(
        [sys.executable, "-c", FREEZE_PROBE], capture_output=True, text=True, env=env, check=True, timeout=120
    )
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["before"] > 50_000, seen  # the loaded app: Flask, SQLAlchemy, the service
    assert seen["after"] < 1_000, seen
    assert seen["frozen"] >= seen["before"], seen
