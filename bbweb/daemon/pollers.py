"""Polling change sources in the master daemon (``GitPoller``, ``SVNPoller``, ...).

While the daemon holds its lock, every poller in ``c['change_source']`` has a thread of
its own that calls :meth:`~bbweb.mastercfg.interfaces.Poller.poll` every ``pollInterval``
seconds (the first time at once when ``pollAtLaunch``; "launch" is when this daemon takes
the lock), so a slow or failing poller never delays another. A failed poll is logged with
the poller's name and tried again at the next interval. Each poll stores its changes and
the poller's new state in one write transaction fenced by the daemon lock: a daemon that
lost the lock stores nothing, and its successor polls again from the saved state.

Polls on demand (``/change_hook/poller``). The web process never polls: it records a
``poller.poll_requested`` event naming the pollers
(:func:`~bbweb.engine.poll_requests.request_polls`). The daemon follows these with an
ordinary event consumer (:class:`PollRequestConsumer`), which wakes the named pollers and
returns once each has finished a poll that *started after the request was recorded*, so the
request's cursor only moves once it was honoured: a daemon that stops or loses its lock
first leaves the request to the next daemon. Requests made while a poll was already pending
share that poll (a burst of requests costs one or two polls, not one each).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from bbweb.changes import PollCancelled, PollError, redact_url
from bbweb.daemon.lock import DaemonLock, LeaseLost
from bbweb.db.connection import Database
from bbweb.engine import events
from bbweb.engine.poll_requests import POLL_REQUESTED
from bbweb.mastercfg.interfaces import Poller, pollers_of

log = logging.getLogger("bbweb.daemon.pollers")

CONSUMER_NAME = "bbweb.daemon.pollers"
# how often a waiting thread re-checks that the daemon is still active
CHECK_INTERVAL = 0.2


class PollsNotDone(RuntimeError):
    """The daemon stopped polling before a requested poll ran (the request stays
    pending: the next active daemon handles it)."""


class PollerRunner:
    """The thread that polls one poller during one active period of the daemon."""

    def __init__(self, poller: Poller, db: Database, cfg: Any,
                 lock: DaemonLock, predecessor: PollerRunner | None = None) -> None:
        self.poller = poller
        self.name = poller.name
        self.label = redact_url(poller.name)  # for the log: no password from a URL
        self.db = db
        self.cfg = cfg
        self.lock = lock
        self.predecessor = predecessor
        self.polls = 0  # polls attempted
        self.failures = 0  # of which failed
        # The highest event id known to be committed when the last finished poll began:
        # a poll request recorded as an event with an id up to this one has been served.
        self.served_through = 0
        self._requested = False
        self._cond = threading.Condition()
        self._stop = threading.Event()
        first = 0.0 if poller.pollAtLaunch else poller.pollInterval
        self._next_due = time.monotonic() + first
        self._thread = threading.Thread(target=self._run, name=f"bbweb-poller:{self.label}",
                                        daemon=True)

    # -- control -------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop: a running VCS command is killed and that poll stores nothing."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()

    def join(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def request(self) -> None:
        """Poll as soon as possible (once more after the current poll, if one runs)."""
        with self._cond:
            self._requested = True
            self._cond.notify_all()

    def wait_served(self, event_id: int, timeout: float) -> bool:
        """Wait until a poll that began after event ``event_id`` was committed has
        finished; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self.served_through >= event_id, timeout)

    # -- the thread ----------------------------------------------------------------------

    def _run(self) -> None:
        try:
            if self.predecessor is not None:  # never two polls of one poller at once
                while self.predecessor.alive and not self._stop.is_set():
                    self.predecessor.join(CHECK_INTERVAL)
                self.predecessor = None
            while not self._stop.is_set():
                with self._cond:
                    while not (self._stop.is_set() or self._requested or
                               time.monotonic() >= self._next_due):
                        self._cond.wait(max(0.0, self._next_due - time.monotonic()))
                    if self._stop.is_set():
                        return
                if not self.lock.valid():
                    if not self.lock.held:
                        raise LeaseLost("the daemon lock was lost")
                    self._stop.wait(CHECK_INTERVAL)  # renewal late: pause, don't poll
                    continue
                self._poll_once()
        except LeaseLost:
            log.warning("poller %r stops: the daemon lock was lost (the next daemon polls "
                        "it again)", self.label)
        except Exception:  # a bug here must not go unnoticed, but must not kill the daemon
            log.exception("the thread of poller %r crashed", self.label)

    def _poll_once(self) -> None:
        with self._cond:
            self._requested = False
        started = time.monotonic()
        self._next_due = started + self.poller.pollInterval
        self.polls += 1
        seen: int | None = None
        try:
            with self.db.read() as conn:
                seen = events.latest_event_id(conn)
            self.poller.poll(self.db, self.cfg, lock=self.lock, stop=self._stop)
        except PollCancelled:
            return  # stopping: nothing was stored, and requests stay unserved
        except LeaseLost:
            raise
        except PollError as exc:
            self.failures += 1
            log.error("poller %r failed: %s (next poll in %.0fs)", self.label, exc,
                      self.poller.pollInterval)
        except Exception:
            self.failures += 1
            log.exception("poller %r failed (next poll in %.0fs)", self.label,
                          self.poller.pollInterval)
        # A failed poll serves the requests too: they asked for an attempt, and waiting
        # for a success could block the request queue for as long as the repository is
        # unreachable.
        if seen is not None:
            with self._cond:
                self.served_through = max(self.served_through, seen)
                self._cond.notify_all()


class PollRequestConsumer:
    """Follows ``poller.poll_requested`` events (see the module docstring)."""

    consumer_name = CONSUMER_NAME
    initial_position = "latest"

    def __init__(self, service: PollerService) -> None:
        self.service = service

    def handle_event(self, event: dict[str, Any]) -> None:
        if event["kind"] != POLL_REQUESTED:
            return
        names = event["payload"].get("pollers")
        runners = self.service.runners
        if not runners:
            raise PollsNotDone("the pollers are not running")
        if names is None:
            chosen = list(runners.values())
        else:
            chosen = []
            for name in names:
                runner = runners.get(name)
                if runner is None:  # master.cfg changed since the request
                    log.warning("poll requested for %r, which is not a configured poller; "
                                "ignored", redact_url(name))
                else:
                    chosen.append(runner)
        event_id = int(event["id"])
        pending = [r for r in chosen if r.served_through < event_id]
        if not pending:
            return
        log.info("polling %s on request (event %d)",
                 ", ".join(repr(r.label) for r in pending), event_id)
        for runner in pending:
            runner.request()
        for runner in pending:
            while not runner.wait_served(event_id, CHECK_INTERVAL):
                if not runner.alive or not self.service.runners or \
                        not self.service.lock.held:
                    raise PollsNotDone(f"the daemon stopped polling before poller "
                                       f"{runner.label!r} served the request of event "
                                       f"{event_id}; it is delivered again to the next "
                                       "active daemon")


class PollerService:
    """Starts and stops one :class:`PollerRunner` per poller of the configuration."""

    def __init__(self, db: Database, cfg: Any, lock: DaemonLock) -> None:
        self.db = db
        self.cfg = cfg
        self.lock = lock
        self.pollers = pollers_of(cfg.change_sources)
        self.runners: dict[str, PollerRunner] = {}
        self._stragglers: dict[str, PollerRunner] = {}
        self.consumer = PollRequestConsumer(self) if self.pollers else None

    def consumers(self) -> list[Any]:
        """The event consumer serving poll requests (none without pollers)."""
        return [self.consumer] if self.consumer is not None else []

    @property
    def running(self) -> bool:
        return bool(self.runners)

    def start(self) -> None:
        if self.runners or not self.pollers:
            return
        self.runners = {p.name: PollerRunner(p, self.db, self.cfg, self.lock,
                                             predecessor=self._stragglers.get(p.name))
                        for p in self.pollers}
        self._stragglers = {}
        for runner in self.runners.values():
            runner.start()
        log.info("polling %s", ", ".join(
            f"{r.label!r} every {r.poller.pollInterval:g}s" for r in self.runners.values()))

    def stop(self, timeout: float = 30.0) -> None:
        runners, self.runners = list(self.runners.values()), {}
        for runner in runners:
            runner.stop()
        deadline = time.monotonic() + timeout
        for runner in runners:
            if not runner.join(max(0.0, deadline - time.monotonic())):
                self._stragglers[runner.name] = runner
                log.warning("poller %r is still busy after %.0fs; not waiting for it any "
                            "longer", runner.label, timeout)
