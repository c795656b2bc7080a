"""``bbweb master BASEDIR``: the master daemon's main loop.

Startup: load master.cfg, open the status database (it must be upgraded), make the builders
table match the configuration, collect the event consumers. Then loop:

* without the lock: try to take it, otherwise log who holds it and poll again;
* with the lock: renew it every ``renew_interval``, fire scheduler timers every
  ``tick_interval``, reap silent workers when one could next be found silent (at least
  ``liveness_interval`` apart, :func:`~bbweb.daemon.liveness.next_due`), see whether a
  pending clean shutdown is due whenever an event is committed, while one thread per
  consumer dispatches events and one thread per change-source poller polls
  (:mod:`bbweb.daemon.pollers`). Between these it sleeps until a wake-up
  (:mod:`bbweb.db.wakeup`) or the next thing due: nothing polls;
* lock lost (renewal found someone else's row): stop dispatching at once and go back to
  waiting for it;
* stop (``stop_event``, SIGINT or SIGTERM): let the events being handled finish, release
  the lock so a stand-by takes over immediately, return 0.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Any

from bbweb.daemon import dispatch
from bbweb.daemon import lock as lockmod
from bbweb.daemon.consumers import ConsumerError, collect_consumers
from bbweb.daemon.dispatch import Dispatcher
from bbweb.daemon.liveness import longest_sleep, next_due, reap_lost_workers
from bbweb.daemon.lock import DaemonLock, LeaseLost, default_holder
from bbweb.daemon.pollers import PollerService
from bbweb.daemon.shutdown import clean_shutdown_due, forget_clean_shutdown
from bbweb.daemon.timers import fire_timers, has_timers
from bbweb.db import wakeup
from bbweb.db.connection import Database
from bbweb.db.migrate import is_current
from bbweb.engine.builders import sync_builders
from bbweb.mastercfg.errors import ConfigErrors
from bbweb.mastercfg.master import MasterConfig, load_master_config
from bbweb.plugins.notifiers.base import Notifier
from bbweb.plugins.notifiers.loading import bind_notifiers, load_notifiers
from bbweb.plugins.registry import load_plugin_settings

log = logging.getLogger("bbweb.daemon")

DEFAULT_TICK_INTERVAL = 1.0
DEFAULT_LIVENESS_INTERVAL = 2.0
DEFAULT_LOCK_POLL_INTERVAL = 2.0
DEFAULT_SHUTDOWN_TIMEOUT = 30.0
STOP_BRIDGE_CHECK = 60.0  # how often the stop-to-wake-up thread checks the loop ended


@dataclass
class DaemonOptions:
    """Timings of one daemon (seconds). The defaults suit production; tests shrink them."""

    tick_interval: float = DEFAULT_TICK_INTERVAL
    lease: float = lockmod.DEFAULT_LEASE_SECONDS
    renew_interval: float = lockmod.DEFAULT_RENEW_INTERVAL
    lock_poll_interval: float = DEFAULT_LOCK_POLL_INTERVAL
    liveness_interval: float = DEFAULT_LIVENESS_INTERVAL
    heartbeat_timeout: float | None = None  # None: each worker's own timeout
    dispatch_interval: float = dispatch.DEFAULT_POLL_INTERVAL
    batch_size: int = dispatch.DEFAULT_BATCH_SIZE
    retry_initial: float = dispatch.DEFAULT_RETRY_INITIAL
    retry_max: float = dispatch.DEFAULT_RETRY_MAX
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT

    def validate(self) -> None:
        for name in ("tick_interval", "lease", "renew_interval", "lock_poll_interval",
                     "liveness_interval", "dispatch_interval", "retry_initial", "retry_max"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.renew_interval > self.lease / 2:
            raise ValueError(f"renew_interval ({self.renew_interval}s) must be at most half "
                             f"the lease ({self.lease}s)")
        if self.heartbeat_timeout is not None and self.heartbeat_timeout <= 0:
            raise ValueError("heartbeat_timeout must be positive")
        if self.batch_size < 1:
            raise ValueError("batch_size must be at least 1")


class MasterDaemon:
    """One daemon over an opened database; :meth:`run` blocks until ``stop_event``."""

    def __init__(self, cfg: MasterConfig, db: Database, consumers: list[Any], holder: str,
                 options: DaemonOptions,
                 dead_holder: Callable[[str], bool] | None = None) -> None:
        self.cfg = cfg
        self._dead_holder = dead_holder
        self.db = db
        self.options = options
        self.lock = DaemonLock(db, holder, lease=options.lease)
        self.pollers = PollerService(db, cfg, self.lock)
        self.dispatcher = Dispatcher(
            db, [*consumers, *self.pollers.consumers()], self.lock,
            poll_interval=options.dispatch_interval, batch_size=options.batch_size,
            retry_initial=options.retry_initial, retry_max=options.retry_max)
        self._waiting_for: str | None = None
        self._ever_held = False
        self._has_timers = has_timers(cfg)
        self._next_renew = self._next_tick = self._next_liveness = 0.0
        self._events_seen: int | None = None
        self.clean_shutdown_done = False  # set when a clean shutdown ended the run

    @property
    def holder(self) -> str:
        return self.lock.holder

    def run(self, stop_event: threading.Event) -> int:
        self.dispatcher.halt = stop_event  # no event starts once a stop is asked for
        wakeups = self.db.wakeups
        ended = threading.Event()

        def wake_on_stop() -> None:
            # the active loop sleeps on wake-ups, not on stop_event: a stop wakes it too
            while not stop_event.wait(STOP_BRIDGE_CHECK):
                if ended.is_set():
                    return
            wakeups.wake_here(wakeup.EVENTS)

        threading.Thread(target=wake_on_stop, name="bbweb-daemon-stop-wake",
                         daemon=True).start()
        try:
            while not stop_event.is_set():
                if not self.lock.held:
                    if not self._acquire():
                        stop_event.wait(self.options.lock_poll_interval)
                    continue
                # noted before the step looks: an event committed after it ends the sleep
                generation = wakeups.generation(wakeup.EVENTS)
                timeout = self._step(generation)
                if self.clean_shutdown_done:
                    log.info("clean shutdown: no build is running any more; stopping")
                    break
                if not stop_event.is_set():
                    wakeups.wait(wakeup.EVENTS, generation, timeout)
        finally:
            ended.set()
            self._deactivate("the daemon is stopping")
            if self._ever_held:
                try:
                    if self.lock.release():
                        log.info("released the daemon lock")
                except Exception:
                    log.exception("could not release the daemon lock; a stand-by takes "
                                  "over when it expires")
        return 0

    # -- holding the lock ----------------------------------------------------------------

    def _acquire(self) -> bool:
        try:
            got = self.lock.try_acquire()
            info = None if got else self.lock.current()
            if info is not None and self._dead_holder is not None \
                    and self._dead_holder(info.holder):
                got = self.lock.take_over(info.holder)
                if got:
                    self._waiting_for = f"{info.holder}, which was killed"
        except Exception:
            log.exception("cannot take the daemon lock (database problem?)")
            return False
        if got:
            log.info("took the daemon lock as %s%s", self.holder,
                     f" (taking over from {self._waiting_for})" if self._waiting_for else "")
            self._ever_held = True
            self._waiting_for = None
            now = time.monotonic()
            self._next_renew = now + self.options.renew_interval
            self._next_tick = self._next_liveness = now
            self.pollers.start()  # before dispatch: poll requests are served by pollers
            self.dispatcher.start()
            return True
        if info is not None and info.holder != self._waiting_for:
            log.info("waiting for the daemon lock held by %s (its lease expires in %.0fs "
                     "unless renewed)", info.holder, max(0.0, info.expires_in))
            self._waiting_for = info.holder
        return False  # (no row: it was released just now; the next poll takes it)

    def _deactivate(self, why: str) -> None:
        if self.dispatcher.running:
            log.info("stopping event dispatch: %s", why)
            self.dispatcher.stop(self.options.shutdown_timeout)
        if self.pollers.running:  # after dispatch: a poll request in flight completes
            log.info("stopping the pollers: %s", why)
            self.pollers.stop(self.options.shutdown_timeout)

    def _lost(self, detail: str) -> None:
        log.error("lost the daemon lock (%s): stopping dispatch and waiting to take it "
                  "back", detail)
        self.lock.mark_lost()
        self._deactivate("the daemon lock was lost")

    def _step(self, events: int | None = None) -> float:
        """Do whatever is due while holding the lock; returns seconds until the next.
        ``events`` is the generation of the events channel (:mod:`bbweb.db.wakeup`): when
        it moved since the last step, something was committed, and a pending clean
        shutdown may be due."""
        opts = self.options
        now = time.monotonic()
        new_events = events is not None and events != self._events_seen
        self._events_seen = events
        if now >= self._next_renew:
            try:
                renewed = self.lock.renew()
            except Exception:
                log.exception("cannot renew the daemon lock; retrying")
                self._next_renew = now + min(1.0, opts.renew_interval)
            else:
                if not renewed:
                    self._lost(self._holder_description())
                    return 0.0
                self._next_renew = now + opts.renew_interval
        if not self.lock.held:  # a fence in a consumer thread found someone else's row
            self._lost(self._holder_description())
            return 0.0
        if self.lock.valid():
            try:
                if now >= self._next_tick:
                    self._next_tick = now + opts.tick_interval
                    if self._has_timers:
                        self._guarded("scheduler timers", fire_timers, self.db, self.cfg,
                                      self.lock)
                if now >= self._next_liveness:
                    # a pass finds nothing before next_due: idle workers' claims keep
                    # moving it on, and looking costs one read where a pass writes
                    due = self._guarded("worker liveness schedule", next_due, self.db,
                                        self.cfg, heartbeat_timeout=opts.heartbeat_timeout)
                    if due is None or due <= time.time():
                        self._guarded("worker liveness", reap_lost_workers, self.db,
                                      self.cfg, lock=self.lock,
                                      heartbeat_timeout=opts.heartbeat_timeout)
                        due = self._guarded(
                            "worker liveness schedule", next_due, self.db, self.cfg,
                            heartbeat_timeout=opts.heartbeat_timeout)
                        new_events = True
                    self._next_liveness = now + self._liveness_sleep(due)
                if new_events:
                    self.clean_shutdown_done = bool(self._guarded(
                        "clean shutdown check", clean_shutdown_due, self.db))
            except LeaseLost:
                self._lost(self._holder_description())
                return 0.0
        dues = [self._next_renew, self._next_liveness]
        if self._has_timers:  # without timer schedulers nothing is due at a tick
            dues.append(self._next_tick)
        first = min(dues)
        return max(0.0, min(first - time.monotonic(), opts.renew_interval))

    def _liveness_sleep(self, due: float | None) -> float:
        """Seconds until the next liveness pass: until a worker could next be found
        silent, a lease run out or an answer be forgotten (``due``, from
        :func:`next_due`), at least ``liveness_interval`` and at most the shortest
        heartbeat timeout."""
        opts = self.options
        longest = max(opts.liveness_interval,
                      longest_sleep(self.cfg, opts.heartbeat_timeout))
        if due is None:
            return longest
        return min(longest, max(opts.liveness_interval, float(due) - time.time()))

    def _guarded(self, what: str, func: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except LeaseLost:
            raise
        except Exception:
            log.exception("%s failed; trying again at the next interval", what)
            return None

    def _holder_description(self) -> str:
        try:
            info = self.lock.current()
        except Exception:
            return "its holder is unknown"
        return f"now held by {info.holder}" if info else "nobody holds it now"


@contextmanager
def _stop_on_signals(stop_event: threading.Event) -> Iterator[None]:
    """SIGINT/SIGTERM set ``stop_event`` (only possible in the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[signal.Signals, Callable[[int, FrameType | None], Any] | int | None] = {}

    def handler(signum: int, _frame: Any) -> None:
        # Set the event from another thread: the handler runs in the main thread, which
        # may be inside stop_event.wait() holding the event's (non-reentrant) lock.
        threading.Thread(target=stop_event.set, name="bbweb-daemon-stop").start()
        log.info("received %s, stopping", signal.Signals(signum).name)

    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def run_daemon(basedir: str, *, stop_event: threading.Event | None = None,
               consumers: list[Any] | None = None, holder: str | None = None,
               tick_interval: float = DEFAULT_TICK_INTERVAL,
               lease: float = lockmod.DEFAULT_LEASE_SECONDS,
               renew_interval: float = lockmod.DEFAULT_RENEW_INTERVAL,
               lock_poll_interval: float = DEFAULT_LOCK_POLL_INTERVAL,
               liveness_interval: float = DEFAULT_LIVENESS_INTERVAL,
               heartbeat_timeout: float | None = None,
               dispatch_interval: float = dispatch.DEFAULT_POLL_INTERVAL,
               batch_size: int = dispatch.DEFAULT_BATCH_SIZE,
               retry_initial: float = dispatch.DEFAULT_RETRY_INITIAL,
               retry_max: float = dispatch.DEFAULT_RETRY_MAX,
               shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
               dead_holder: Callable[[str], bool] | None = None) -> int:
    """Run the master daemon for ``basedir`` until stopped; returns the exit code.

    Stops when ``stop_event`` is set or, when called from the main thread, on SIGINT or
    SIGTERM. ``consumers`` are event consumers (see :mod:`bbweb.daemon.consumers`) run in
    addition to the consumer-shaped objects of ``c['status']`` and the notifiers of
    plugins.toml's ``[notifiers]`` (:mod:`bbweb.plugins.notifiers.loading`); a notifier
    plugin that cannot be loaded is logged and left out. ``holder`` names this
    daemon in the lock table (default: host, pid and a random suffix). The remaining
    arguments are timings in seconds (see :class:`DaemonOptions`); ``heartbeat_timeout``
    overrides every worker's own timeout. ``dead_holder`` tells whether a lock holder's
    name is a process known to have died (a killed web process that ran the daemon, under
    ``bbweb start``): its lease is taken over at once instead of when it expires.

    Exit codes: 0 after a clean stop, 1 when the configuration, the database or the
    consumers are unusable (the reason is logged).
    """
    options = DaemonOptions(
        tick_interval=tick_interval, lease=lease, renew_interval=renew_interval,
        lock_poll_interval=lock_poll_interval, liveness_interval=liveness_interval,
        heartbeat_timeout=heartbeat_timeout, dispatch_interval=dispatch_interval,
        batch_size=batch_size, retry_initial=retry_initial, retry_max=retry_max,
        shutdown_timeout=shutdown_timeout)
    options.validate()
    stop_event = stop_event if stop_event is not None else threading.Event()
    try:
        cfg = load_master_config(basedir)
    except ConfigErrors as exc:
        log.error("cannot start the daemon: master.cfg has errors:\n%s", exc)
        return 1
    for warning in cfg.warnings:
        log.warning("%s", warning)
    try:
        notifiers, failures, notes = load_notifiers(cfg, load_plugin_settings(basedir))
    except ConfigErrors as exc:  # plugins.toml itself is unreadable
        log.error("cannot start the daemon: plugins.toml has errors:\n%s", exc)
        return 1
    for note in notes:
        log.warning("%s", note)
    for name, message in sorted(failures.items()):
        log.error("plugin %s is not available: %s", name, message)
    others = [t for t in cfg.status if not isinstance(t, Notifier)]
    try:
        all_consumers = collect_consumers([*(consumers or []), *notifiers], others)
    except ConsumerError as exc:
        log.error("cannot start the daemon: %s", exc)
        return 1
    db = Database(cfg.db_url)
    try:
        try:
            if not is_current(db):
                log.error("cannot start the daemon: the database is not at the current "
                          "schema; run 'bbweb upgrade-master %s'", basedir)
                return 1
            with db.write() as conn:
                sync_builders(conn, cfg)
            forget_clean_shutdown(db)
            bind_notifiers(all_consumers, db, cfg)
        except Exception:
            log.exception("cannot start the daemon: the status database is unusable")
            return 1
        daemon = MasterDaemon(cfg, db, all_consumers, holder or default_holder(), options,
                              dead_holder)
        log.info("master daemon %s starting for %s", daemon.holder, cfg.basedir)
        with _stop_on_signals(stop_event):
            return daemon.run(stop_event)
    finally:
        db.dispose()
