"""The production drill, long form: two instances behind nginx, two workers, PgBouncer, a private
PostgreSQL, the Haier emulator, a load generator and a webhook receiver, while things break; prints the
figures and every problem found, exit status 1 if any.

    .venv/bin/python deploy/drill.py [--cycles 3] [--threads 8] [--pg-down-s 10] [--seed S] [--keep]

The bounded form runs in CI as tests/e2e/test_production_shape.py; tests/e2e/production_drill.py holds
both and says what runs. docs/running-in-production.md has the figures."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.production_drill import main

if __name__ == "__main__":
    sys.exit(main())
