"""gunicorn's configuration for recsite: Prometheus metrics across worker processes.

    gunicorn -c recsite/gunicorn.conf.py recsite.wsgi:application --bind … --workers 2

gunicorn runs this file in the master process before it forks a worker (and never imports
the ``recsite`` package here), so the variable it sets reaches every worker before
prometheus_client is imported there:

* ``PROMETHEUS_MULTIPROC_DIR`` (unless the environment sets it) becomes
  ``$RECSITE_DATA_DIR/prometheus``: each worker writes its counters to files there and a
  scrape of ``/metrics`` adds up those of every process (``recommender.monitoring``). Give
  the Celery worker the same variable to see its task counters in the same scrape.
* At start the files of processes no longer running (an earlier run's) are removed; the
  files of live processes (a Celery worker sharing the directory) are kept.
* When a worker exits its live gauges are dropped (``mark_process_dead``); its counters
  stay until the next start, so that totals do not go backwards.

Options given on the command line win over the settings here (there are none yet).
"""

import os
import re
from pathlib import Path

_data_dir = Path(
    os.environ.get("RECSITE_DATA_DIR") or Path(__file__).resolve().parent.parent / ".recsite"
).resolve()
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(_data_dir / "prometheus"))

_PID = re.compile(r"_(\d+)\.db$")


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: running
        return True
    return True


def on_starting(server):
    """Create the directory and clear what earlier runs left in it."""
    directory = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    directory.mkdir(parents=True, exist_ok=True)
    for path in directory.glob("*.db"):
        match = _PID.search(path.name)
        if match is None or not _running(int(match.group(1))):
            path.unlink(missing_ok=True)
    server.log.info("Prometheus multiprocess directory: %s", directory)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
