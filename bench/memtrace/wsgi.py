"""bench only: the production wsgi.py with tracemalloc on, for bench/memory_bench.py --tracemalloc, to say
what grows when a worker's memory grows. This folder is never deployed.

Run as `creditctl serve` with this folder as the working directory (gunicorn imports `wsgi:app` from it)
and BENCH_TRACEMALLOC_DIR set: a daemon thread in the worker watches that folder and, for every
`<name>.request` file the bench writes, dumps a tracemalloc snapshot to `<name>.snapshot` (the request
file is then removed). tracemalloc slows the worker and adds its own memory: its figures say *what*
grows, the plain run says *how much*.
"""

import os
import threading
import time
import tracemalloc
from pathlib import Path

_DIR = Path(os.environ["BENCH_TRACEMALLOC_DIR"])


def _watch() -> None:
    while True:
        for request in sorted(_DIR.glob("*.request")):
            target = request.with_suffix(".snapshot")
            tracemalloc.take_snapshot().dump(str(target.with_suffix(".tmp")))
            os.replace(target.with_suffix(".tmp"), target)
            request.unlink()
        time.sleep(0.5)


threading.Thread(target=_watch, name="bench-tracemalloc", daemon=True).start()

import adapters.bootstrap as _bootstrap  # noqa: E402

app = _bootstrap.create_wsgi_app()
# Started once the app is built: what requests allocate is the question, and tracing every import makes a
# worker too slow to boot on a loaded machine.
tracemalloc.start(int(os.environ.get("BENCH_TRACEMALLOC_FRAMES", "10")))
