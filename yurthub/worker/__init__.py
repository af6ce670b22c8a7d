"""yurthub's gunicorn worker: gthread's pool behind a connection loop that idle clients cannot
freeze (``gunicorn -k yurthub.worker.YurthubWorker``; see ``gthread.py``)."""

from yurthub.worker.gthread import ConnectionStats, YurthubWorker
from yurthub.worker.settings import Limits, ListenerSpec, WorkerSettings

__all__ = ["ConnectionStats", "Limits", "ListenerSpec", "WorkerSettings", "YurthubWorker"]
