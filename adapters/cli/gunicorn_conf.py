"""gunicorn settings for `creditctl serve`: its own log lines are JSON too, like the application's."""

from __future__ import annotations

import gc

logger_class = "adapters.web.gunicorn_logger.CreditctlGunicornLogger"  # builds no access line it would drop

logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(levelname)s %(name)s %(message)s",
            "rename_fields": {"levelname": "level", "name": "logger"},
            "timestamp": "time",
        }
    },
    "handlers": {
        "stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    },
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["stderr"], "propagate": False},
        "gunicorn.access": {"level": "WARNING", "handlers": ["stderr"], "propagate": False},
    },
    "root": {"level": "INFO", "handlers": []},
}


def post_worker_init(worker: object) -> None:
    """Move everything the loaded app holds (about 130,000 objects) out of the collector's reach: a full
    collection over them takes some 18 ms, a pause any request may land in."""
    gc.freeze()
