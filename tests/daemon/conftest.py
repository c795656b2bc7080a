"""Daemon test helpers: daemons in threads with short timings, recording consumers, and
polling with deadlines (never sleeping to synchronise)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bbweb.daemon import run_daemon
from bbweb.db.schema import consumer_cursors, events, master_locks
from bbweb.engine import events as eevents
from bbweb.engine.changes import ChangeInput, add_change
from tests.support.polling import wait_for  # noqa: F401 (re-exported)

# Timings small enough for a fast suite, with the same ratios as the defaults.
FAST: dict[str, Any] = {
    "tick_interval": 0.05, "lease": 2.0, "renew_interval": 0.2, "lock_poll_interval": 0.05,
    "liveness_interval": 0.1, "dispatch_interval": 0.02, "retry_initial": 0.05,
    "retry_max": 0.2, "shutdown_timeout": 10.0,
}


class DaemonThread:
    """``run_daemon`` in a thread, stopped through its ``stop_event``."""

    def __init__(self, basedir: Path | str, **kwargs: Any) -> None:
        self.stop_event = threading.Event()
        self.rc: int | None = None
        self.error: BaseException | None = None
        self.kwargs = {**FAST, **kwargs}
        self.basedir = str(basedir)
        self.thread = threading.Thread(target=self._run, daemon=True,
                                       name=f"daemon-{kwargs.get('holder')}")

    def _run(self) -> None:
        try:
            self.rc = run_daemon(self.basedir, stop_event=self.stop_event, **self.kwargs)
        except BaseException as exc:  # surfaced by join()
            self.error = exc

    def start(self) -> DaemonThread:
        self.thread.start()
        return self

    def join(self, timeout: float = 30.0) -> int | None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the daemon did not stop"
        if self.error is not None:
            raise self.error
        return self.rc

    def stop(self, timeout: float = 30.0) -> int | None:
        self.stop_event.set()
        return self.join(timeout)


@pytest.fixture
def daemons() -> Iterator[Callable[..., DaemonThread]]:
    """Factory ``daemons(basedir, **run_daemon_kwargs)``; every daemon is stopped at the
    end of the test, even a failing one."""
    started: list[DaemonThread] = []

    def factory(basedir: Path | str, **kwargs: Any) -> DaemonThread:
        d = DaemonThread(basedir, **kwargs).start()
        started.append(d)
        return d

    yield factory
    for d in started:
        d.stop_event.set()
    for d in started:
        d.thread.join(30)


class Recorder:
    """A consumer that records the ids it handles (optionally into a shared list as
    ``(tag, id)``), and can block on a given event count until released."""

    def __init__(self, name: str = "recorder", *, tag: str = "", shared: list | None = None,
                 block_at: int | None = None) -> None:
        self.consumer_name = name
        self.tag = tag
        self.shared = shared
        self.seen: list[int] = []
        self.block_at = block_at
        self.blocked = threading.Event()
        self.release = threading.Event()

    def handle_event(self, event: dict[str, Any]) -> None:
        self.seen.append(event["id"])
        if self.shared is not None:
            self.shared.append((self.tag, event["id"]))
        if self.block_at is not None and len(self.seen) == self.block_at:
            self.blocked.set()
            assert self.release.wait(30), "the test never released the consumer"


def add_changes(master: Any, count: int, **fields: Any) -> list[int]:
    """Store ``count`` changes, one transaction each, as a hook would."""
    ids = []
    for i in range(count):
        with master.db.write() as conn:
            ids.append(add_change(conn, master.config, ChangeInput(
                author="alice", files=[f"f{i}.c"], revision=f"r{i}", **fields)))
    return ids


def latest_event(master: Any) -> int:
    with master.db.read() as conn:
        return eevents.latest_event_id(conn)


def all_event_ids(master: Any) -> list[int]:
    with master.db.read() as conn:
        return [r for (r,) in conn.execute(sa.select(events.c.id).order_by(events.c.id))]


def saved_cursor(master: Any, name: str) -> int | None:
    with master.db.read() as conn:
        return conn.execute(sa.select(consumer_cursors.c.last_event_id)
                            .where(consumer_cursors.c.consumer == name)).scalar()


def lock_holder(master: Any) -> str | None:
    with master.db.read() as conn:
        return conn.execute(sa.select(master_locks.c.holder)
                            .where(master_locks.c.name == "daemon")).scalar()


def caught_up(consumer: Recorder, master: Any) -> bool:
    latest = latest_event(master)
    return bool(consumer.seen) and consumer.seen[-1] == latest
