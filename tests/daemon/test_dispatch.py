"""Event dispatch: durable cursors, in-order at-least-once delivery, failing consumers."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path

from bbweb.daemon.dispatch import MAX_RETRY_AFTER, retry_delay
from bbweb.plugins.notifiers.base import DeliveryError
from tests.conftest import DEFAULT_CFG
from tests.daemon.conftest import (
    FAST,
    Recorder,
    add_changes,
    all_event_ids,
    caught_up,
    latest_event,
    saved_cursor,
    wait_for,
)

REPO = Path(__file__).resolve().parents[2]


def test_stop_mid_stream_and_resume_from_saved_cursor(master, daemons):
    add_changes(master, 4)
    every = all_event_ids(master)
    assert len(every) > 6
    first = Recorder("notify", block_at=4)
    d = daemons(master.basedir, consumers=[first], holder="first")
    wait_for(first.blocked.is_set, what="the consumer to be handling its 4th event")
    d.stop_event.set()  # stop while the 4th event is in flight...
    first.release.set()  # ...and let that event finish
    assert d.join() == 0
    assert first.seen == every[:4]  # nothing after the in-flight event was started
    assert saved_cursor(master, "notify") == every[3]

    add_changes(master, 2)
    second = Recorder("notify")
    d2 = daemons(master.basedir, consumers=[second], holder="second")
    wait_for(lambda: caught_up(second, master), what="the restarted daemon to catch up")
    assert d2.stop() == 0
    everything = all_event_ids(master)
    assert len(everything) > len(every)
    assert first.seen + second.seen == everything  # in order, none skipped, none twice
    assert saved_cursor(master, "notify") == everything[-1]


def test_crash_after_handling_redelivers_only_that_event(master, daemons, tmp_path):
    """A daemon killed between handle_event and saving the cursor: the next daemon (here
    a different holder, which has to wait for the dead one's lease to expire) delivers
    that one event again and continues."""
    add_changes(master, 3)
    every = all_event_ids(master)
    crash_at = every[4]
    out = tmp_path / "handled.txt"
    script = tmp_path / "crashing_daemon.py"
    script.write_text(textwrap.dedent(f"""
        import os, sys
        from bbweb.daemon import run_daemon

        class Crashing:
            consumer_name = "notify"

            def handle_event(self, event):
                with open({str(out)!r}, "a") as f:
                    f.write("%d\\n" % event["id"])
                    f.flush()
                    os.fsync(f.fileno())
                if event["id"] == {crash_at}:
                    os._exit(3)  # handled, cursor not saved yet

        sys.exit(run_daemon({str(master.basedir)!r}, consumers=[Crashing()],
                            holder="crasher", **{FAST!r}))
    """))
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 3, proc.stderr
    crashed = [int(x) for x in out.read_text().split()]
    assert crashed == every[:5]
    assert saved_cursor(master, "notify") == every[3]

    add_changes(master, 1)
    successor = Recorder("notify")
    d = daemons(master.basedir, consumers=[successor], holder="successor")
    wait_for(lambda: caught_up(successor, master), what="the successor to catch up")
    assert d.stop() == 0
    assert successor.seen[0] == crash_at  # the in-flight event, again
    assert crashed + successor.seen[1:] == all_event_ids(master)


class Flaky:
    """Raises on one event until healed; records what it handled."""

    consumer_name = "flaky"

    def __init__(self, fail_on: int) -> None:
        self.fail_on = fail_on
        self.attempts: Counter[int] = Counter()
        self.seen: list[int] = []
        self.healed = threading.Event()

    def handle_event(self, event):  # type: ignore[no-untyped-def]
        self.attempts[event["id"]] += 1
        if event["id"] == self.fail_on and not self.healed.is_set():
            raise ConnectionError("smtp server unreachable")
        self.seen.append(event["id"])


def test_failing_consumer_retries_same_event_and_blocks_nobody(master, daemons, caplog):
    caplog.set_level(logging.INFO, logger="bbweb.daemon")
    add_changes(master, 3)
    every = all_event_ids(master)
    flaky = Flaky(fail_on=every[2])
    steady = Recorder("steady")
    d = daemons(master.basedir, consumers=[flaky, steady], holder="d")
    wait_for(lambda: caught_up(steady, master), what="the healthy consumer to catch up")
    wait_for(lambda: flaky.attempts[every[2]] >= 3, what="retries of the failing event")
    assert flaky.seen == every[:2]  # stuck at the failing event, nothing skipped
    assert saved_cursor(master, "flaky") == every[1]
    assert saved_cursor(master, "steady") == every[-1]
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("bbweb.daemon")]
    assert any(f"'flaky' failed to handle event {every[2]}" in m for m in messages)
    assert any(r.exc_info and "smtp server unreachable" in str(r.exc_info[1])
               for r in caplog.records)

    flaky.healed.set()
    add_changes(master, 1)
    wait_for(lambda: flaky.seen and flaky.seen[-1] == latest_event(master),
             what="the healed consumer to catch up")
    assert d.stop() == 0
    assert flaky.seen == all_event_ids(master)
    assert steady.seen == all_event_ids(master)
    assert all(n == 1 for eid, n in flaky.attempts.items() if eid != every[2])


STATUS_CONSUMER_CFG = DEFAULT_CFG + """
import os

class FileNotifier:
    consumer_name = 'file-notifier'

    def handle_event(self, event):
        with open(os.path.join(basedir, 'notified.txt'), 'a') as f:
            f.write('%d %s\\n' % (event['id'], event['kind']))

c['status'].append(FileNotifier())
"""


def test_status_targets_with_the_interface_are_consumers(make_master, daemons):
    m = make_master(STATUS_CONSUMER_CFG)
    add_changes(m, 2)
    every = all_event_ids(m)
    path = m.basedir / "notified.txt"

    def notified() -> list[int]:
        if not path.exists():
            return []
        return [int(line.split()[0]) for line in path.read_text().splitlines()]

    d = daemons(m.basedir, holder="d")
    wait_for(lambda: notified() == every, what="the master.cfg notifier to see every event")
    assert d.stop() == 0
    assert "change.new" in path.read_text()


class Latecomer(Recorder):
    initial_position = "latest"


def test_latest_consumer_skips_history_but_not_later_events(master, daemons):
    add_changes(master, 2)
    history_end = latest_event(master)
    late = Latecomer("late")
    d = daemons(master.basedir, consumers=[late], holder="d")
    wait_for(lambda: saved_cursor(master, "late") == history_end,
             what="the new consumer's cursor to be set at the latest event")
    add_changes(master, 1)
    wait_for(lambda: caught_up(late, master), what="the late consumer to see the new change")
    assert d.stop() == 0
    assert late.seen == [i for i in all_event_ids(master) if i > history_end]


class Hooked(Recorder):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.calls: list[str] = []
        self.closed = threading.Event()
        self.open_failures = 1

    def open(self) -> None:
        if self.open_failures:
            self.open_failures -= 1
            raise OSError("irc server refused the connection")
        self.calls.append("open")

    def close(self) -> None:
        self.calls.append("close")
        self.closed.set()

    def handle_event(self, event):  # type: ignore[no-untyped-def]
        assert self.calls[-1:] == ["open"], "event handled while not open"
        super().handle_event(event)


def test_open_is_retried_and_close_called_on_stop(master, daemons):
    add_changes(master, 1)
    hooked = Hooked("irc")
    d = daemons(master.basedir, consumers=[hooked], holder="d")
    wait_for(lambda: caught_up(hooked, master), what="the consumer to catch up")
    assert d.stop() == 0
    assert hooked.calls == ["open", "close"]


class Throttled:
    """Refuses one event once, saying when to come back (``retry_after``), as a
    rate-limited server does; records when each attempt came."""

    consumer_name = "throttled"

    def __init__(self, fail_on: int, retry_after: float) -> None:
        self.fail_on = fail_on
        self.retry_after = retry_after
        self.times: list[float] = []
        self.seen: list[int] = []

    def handle_event(self, event):  # type: ignore[no-untyped-def]
        if event["id"] == self.fail_on:
            self.times.append(time.monotonic())
            if len(self.times) == 1:
                raise DeliveryError("rate limited", retry_after=self.retry_after)
        self.seen.append(event["id"])


def test_retry_after_replaces_the_backoff(master, daemons):
    """FAST's backoff would retry within 0.2 s; the consumer asked for 1.5 s and the
    daemon waits that long, and no longer than needed."""
    add_changes(master, 2)
    every = all_event_ids(master)
    throttled = Throttled(fail_on=every[0], retry_after=1.5)
    d = daemons(master.basedir, consumers=[throttled], holder="d")
    wait_for(lambda: throttled.seen == every, what="the throttled consumer to catch up")
    first, second = throttled.times
    assert 1.5 <= second - first < 5.0
    assert d.stop() == 0
    assert retry_delay(DeliveryError("x"), 0.4) == 0.4  # no retry_after: the backoff
    assert retry_delay(DeliveryError("x", retry_after=10 ** 9), 0.4) == MAX_RETRY_AFTER


def test_new_events_wake_an_idle_consumer_without_its_fallback(master, daemons):
    """A consumer with nothing to do sleeps until an event is committed: with its fallback
    look an hour away, events written afterwards still reach it (the wake-up of the
    committing transaction, bbweb.db.wakeup), and a stop ends its sleep."""
    add_changes(master, 1)
    rec = Recorder("woken")
    d = daemons(master.basedir, consumers=[rec], holder="woken",
                **{**FAST, "dispatch_interval": 3600.0})
    wait_for(lambda: caught_up(rec, master), what="the consumer to read the history")
    for _ in range(2):  # each time from an idle sleep
        add_changes(master, 1)
        wait_for(lambda: caught_up(rec, master), what="the consumer to be woken")
    assert rec.seen == all_event_ids(master)
    assert d.stop(timeout=15) == 0
