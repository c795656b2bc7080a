"""The master daemon: scheduler timers, worker liveness and event dispatch to consumers
(notifiers), active in exactly one process at a time thanks to a database lease.

Public API: :func:`run_daemon` (what ``bbweb master BASEDIR`` runs) and the consumer
interface documented in :mod:`bbweb.daemon.consumers`.
"""

from bbweb.daemon.consumers import EventConsumer
from bbweb.daemon.main import DaemonOptions, MasterDaemon, run_daemon

__all__ = ["DaemonOptions", "EventConsumer", "MasterDaemon", "run_daemon"]
