"""gunicorn's logger for `creditctl serve`: no access line built when none would be written.

gunicorn builds its access line's atoms (the time via strftime, every request and response header and
every environ variable, formatted) for every request as soon as any log configuration is given, and only
then hands it to the `gunicorn.access` logger, which our configuration keeps at WARNING: the line was
built and dropped, ~25 µs of every request. The application writes its own access line
(adapters/web/request_context.py). Raising `gunicorn.access` to INFO in a configuration brings
gunicorn's line back.
"""

from __future__ import annotations

import logging
from typing import Any

from gunicorn.glogging import Logger


class CreditctlGunicornLogger(Logger):
    def setup(self, cfg: Any) -> None:
        super().setup(cfg)  # applies logconfig_dict: the access logger's level is known from here on
        self._access_log_enabled = self._access_line_written()

    def _access_line_written(self) -> bool:
        if not self._compute_access_log_enabled():
            return False
        return self.access_log.isEnabledFor(logging.INFO)
