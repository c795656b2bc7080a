"""Event dispatch: every consumer follows the event table with its own durable cursor.

Each consumer (see :mod:`bbweb.daemon.consumers`) runs in its own thread, so one that is
slow or failing never holds the others up. The thread reads events after the consumer's
saved cursor in batches, hands them to ``handle_event`` in id order and, after each one,
saves the cursor in its own small write transaction.

Delivery is at least once: a crash after ``handle_event`` returned but before the cursor
was saved re-delivers exactly that event when a daemon next runs the consumer (and so does
losing the daemon lock at that moment: the cursor write is fenced by the lock, so a daemon
that lost it can never move a cursor its successor owns). Nothing is ever skipped: an
event whose handler raises is retried, with exponential backoff, until it succeeds.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import sqlalchemy as sa

from bbweb.daemon.consumers import initial_position
from bbweb.daemon.lock import DaemonLock, LeaseLost
from bbweb.db import wakeup
from bbweb.db.connection import Database
from bbweb.db.schema import consumer_cursors
from bbweb.engine import events

log = logging.getLogger("bbweb.daemon.dispatch")

# A consumer with nothing to do sleeps until an event is committed (a wake-up from
# :mod:`bbweb.db.wakeup`) and, should the wake-up be lost (an event written on another
# host), looks again after this many seconds anyway.
DEFAULT_POLL_INTERVAL = 10.0
# how long a consumer pauses while the lock's renewal is late
LATE_RENEWAL_PAUSE = 0.25
DEFAULT_BATCH_SIZE = 200
DEFAULT_RETRY_INITIAL = 1.0
DEFAULT_RETRY_MAX = 60.0
MAX_RETRY_AFTER = 2 * 3600.0  # the longest wait a consumer's exception may ask for


def backoff_delay(failures: int, initial: float, maximum: float) -> float:
    """Seconds to wait after ``failures`` consecutive failures (1, 2, 4 … × initial)."""
    return min(maximum, initial * (2.0 ** max(0, min(failures - 1, 30))))


def retry_delay(exc: BaseException, backoff: float) -> float:
    """How long to wait before handling an event again after ``exc``: the exception's
    ``retry_after`` (seconds) when it has one (a server that said when to come back, or a
    consumer with its own retry delay; at most :data:`MAX_RETRY_AFTER`), else
    ``backoff``."""
    asked = getattr(exc, "retry_after", None)
    if isinstance(asked, int | float) and not isinstance(asked, bool) and asked >= 0:
        return min(float(asked), MAX_RETRY_AFTER)
    return backoff


class ConsumerRunner:
    """The thread that feeds one consumer while the daemon holds the lock.

    A runner lives for one active period: it reads the consumer's cursor from the database
    when it starts (another daemon may have moved it meanwhile) and ends when stopped or
    when the lock is lost.
    """

    def __init__(self, db: Database, consumer: Any, lock: DaemonLock, *,
                 poll_interval: float = DEFAULT_POLL_INTERVAL,
                 batch_size: int = DEFAULT_BATCH_SIZE,
                 retry_initial: float = DEFAULT_RETRY_INITIAL,
                 retry_max: float = DEFAULT_RETRY_MAX,
                 predecessor: ConsumerRunner | None = None,
                 halt: threading.Event | None = None) -> None:
        self.db = db
        self.consumer = consumer
        self.name: str = consumer.consumer_name
        self.lock = lock
        self.poll_interval = poll_interval
        self.batch_size = batch_size
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.cursor: int | None = None  # last event handled and saved
        # the runner of a previous active period that was still busy when stopped: this one
        # waits for it, so a consumer never handles two events at once
        self.predecessor = predecessor
        self._stop = threading.Event()
        # the daemon's own stop event: seen between events at once, without waiting for
        # the daemon's main loop to wake up and call stop()
        self._halt = halt
        self._thread = threading.Thread(target=self._run, name=f"bbweb-consumer:{self.name}",
                                        daemon=True)

    # -- control -------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Ask the runner to finish: the event being handled completes (and its cursor is
        saved), no further event starts."""
        self._stop.set()
        self.db.wakeups.wake_here(wakeup.EVENTS)  # out of its wait for events

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread; True if it ended."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # -- the thread ----------------------------------------------------------------------

    def _stopping(self) -> bool:
        if self._halt is not None and self._halt.is_set():
            self._stop.set()
        return self._stop.is_set()

    def _backoff(self, failures: int) -> float:
        return backoff_delay(failures, self.retry_initial, self.retry_max)

    def _run(self) -> None:
        opened = False
        try:
            if self.predecessor is not None:
                while self.predecessor.alive and not self._stop.is_set():
                    self.predecessor.join(self.poll_interval)
                self.predecessor = None
                if self._stop.is_set():
                    return
            opened = self._open()
            if opened:
                self._follow()
        except LeaseLost:
            log.warning("consumer %r stops: the daemon lock was lost (the event in flight, "
                        "if any, will be delivered again by the next daemon)", self.name)
        except Exception:  # a bug here must not go unnoticed, but must not kill the daemon
            log.exception("event dispatch to consumer %r crashed", self.name)
        finally:
            if opened:
                self._close()

    def _open(self) -> bool:
        """Call the optional ``open()`` hook, retrying with backoff; False if stopped."""
        hook = getattr(self.consumer, "open", None)
        if not callable(hook):
            return True
        failures = 0
        while not self._stop.is_set():
            try:
                hook()
                return True
            except Exception:
                failures += 1
                delay = self._backoff(failures)
                log.exception("consumer %r: open() failed (attempt %d); retrying in %.1fs",
                              self.name, failures, delay)
                self._stop.wait(delay)
        return False

    def _close(self) -> None:
        hook = getattr(self.consumer, "close", None)
        if callable(hook):
            try:
                hook()
            except Exception:
                log.exception("consumer %r: close() failed", self.name)

    def _load_cursor(self) -> int:
        with self.db.read() as conn:
            saved = conn.execute(sa.select(consumer_cursors.c.last_event_id)
                                 .where(consumer_cursors.c.consumer == self.name)).scalar()
        if saved is not None:
            return int(saved)
        if initial_position(self.consumer) == "oldest":
            return 0
        with self.db.write() as conn:  # "latest": start from now, and remember that
            self.lock.check(conn)
            start = events.latest_event_id(conn)
            events.set_cursor(conn, self.name, start)
        log.info("consumer %r is new: it starts after event %d", self.name, start)
        return start

    def _follow(self) -> None:
        read_failures = 0  # consecutive failures to read events
        handle_failures = 0  # consecutive failures to handle the next event
        while not self._stopping():
            if not self.lock.valid():
                if not self.lock.held:
                    raise LeaseLost("the daemon lock was lost")
                # renewal late: pause, don't dispatch
                self._stop.wait(min(self.poll_interval, LATE_RENEWAL_PAUSE))
                continue
            # noted before reading: an event committed after the read wakes the wait below
            generation = self.db.wakeups.generation(wakeup.EVENTS)
            try:
                if self.cursor is None:
                    self.cursor = self._load_cursor()
                with self.db.read() as conn:
                    batch = events.read_events(conn, self.cursor, self.batch_size)
            except LeaseLost:
                raise
            except Exception:
                read_failures += 1
                delay = self._backoff(read_failures)
                log.exception("consumer %r: cannot read events (attempt %d); retrying in "
                              "%.1fs", self.name, read_failures, delay)
                self._stop.wait(delay)
                continue
            read_failures = 0
            if not batch:
                self.db.wakeups.wait(wakeup.EVENTS, generation,
                                     wakeup.fallback(self.poll_interval))
                continue
            for event in batch:
                if self._stopping() or not self.lock.valid():
                    break
                try:
                    self.consumer.handle_event(event)
                except Exception as exc:
                    handle_failures += 1
                    delay = retry_delay(exc, self._backoff(handle_failures))
                    log.exception("consumer %r failed to handle event %d (%s), attempt %d; "
                                  "retrying it in %.1fs", self.name, event["id"],
                                  event["kind"], handle_failures, delay)
                    self._stop.wait(delay)
                    break  # re-read from the unchanged cursor: the same event comes next
                handle_failures = 0
                self._save_cursor(event["id"])

    def _save_cursor(self, event_id: int) -> None:
        """Record that ``event_id`` was handled. Retries database errors (even while
        stopping: the event *was* handled, so saving it avoids a duplicate); raises
        :class:`LeaseLost` if the lock is no longer ours."""
        failures = 0
        while True:
            try:
                with self.db.write() as conn:
                    self.lock.check(conn)
                    events.set_cursor(conn, self.name, event_id)
                self.cursor = event_id
                return
            except LeaseLost:
                raise
            except Exception:
                failures += 1
                if failures > 5 and self._stop.is_set():
                    log.error("consumer %r: could not save its cursor at event %d while "
                              "stopping; that event will be delivered again", self.name,
                              event_id)
                    return
                delay = self._backoff(failures)
                log.exception("consumer %r: cannot save its cursor at event %d (attempt %d);"
                              " retrying in %.1fs", self.name, event_id, failures, delay)
                # a plain sleep, not self._stop.wait: keep trying even while stopping
                time.sleep(min(delay, 1.0) if self._stop.is_set() else delay)


class Dispatcher:
    """Starts and stops one :class:`ConsumerRunner` per consumer."""

    def __init__(self, db: Database, consumers: list[Any], lock: DaemonLock,
                 halt: threading.Event | None = None, **runner_options: Any) -> None:
        self.db = db
        self.halt = halt
        self.consumers = list(consumers)
        self.lock = lock
        self.runner_options = runner_options
        self.runners: list[ConsumerRunner] = []
        self._stragglers: dict[str, ConsumerRunner] = {}

    @property
    def running(self) -> bool:
        return bool(self.runners)

    def start(self) -> None:
        """Start a fresh runner per consumer (each re-reads its cursor)."""
        if self.runners:
            return
        self.runners = [ConsumerRunner(self.db, c, self.lock,
                                       predecessor=self._stragglers.get(c.consumer_name),
                                       halt=self.halt,
                                       **self.runner_options)
                        for c in self.consumers]
        self._stragglers = {}
        for runner in self.runners:
            runner.start()
        if self.runners:
            log.info("dispatching events to %s", ", ".join(repr(r.name) for r in self.runners))

    def stop(self, timeout: float = 30.0) -> None:
        """Stop every runner and wait (up to ``timeout`` in all) for the events being
        handled to finish. A runner still busy after that is left to finish on its own:
        its cursor write is fenced, so at worst its event is delivered again."""
        runners, self.runners = self.runners, []
        for runner in runners:
            runner.stop()
        deadline = time.monotonic() + timeout
        for runner in runners:
            if not runner.join(max(0.0, deadline - time.monotonic())):
                self._stragglers[runner.name] = runner
                log.warning("consumer %r is still handling an event after %.0fs; not "
                            "waiting for it any longer", runner.name, timeout)
