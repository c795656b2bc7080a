"""Wake-ups between processes (bbweb.db.wakeup): a notification reaches a process waiting
on the channel, a committed write transaction notifies what it named and a rolled-back one
does not, and a socket left by a dead process is cleared away."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from bbweb.db import wakeup
from bbweb.db.connection import Database
from tests.support.polling import wait_for

REPO = Path(__file__).resolve().parents[2]

WAITER = textwrap.dedent("""
    import sys
    from bbweb.db import wakeup
    w = wakeup.for_url(sys.argv[1])
    since = w.generation("events")
    print("ready", flush=True)
    moved = w.wait("events", since, 3600) != since
    print("woken" if moved else "timed out", flush=True)
""")


def sqlite_url(tmp_path: Path) -> str:
    return "sqlite:///" + str(tmp_path / "state.sqlite")


def test_a_notification_wakes_another_process(tmp_path):
    url = sqlite_url(tmp_path)
    child = subprocess.Popen([sys.executable, "-c", WAITER, url], cwd=REPO,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        wakeup.for_url(url).notify("events")
        # the child waits an hour unless woken: it ends only if the wake-up arrived
        wait_for(lambda: child.poll() is not None, 30, what="the waiting process to wake")
        assert child.stdout.read().strip() == "woken"
    finally:
        child.kill()
        child.wait()


def test_only_a_committed_transaction_notifies(tmp_path):
    db = Database(sqlite_url(tmp_path))
    try:
        db.create_all()
        before = db.wakeups.generation("events")
        with pytest.raises(RuntimeError), db.write() as conn:
            wakeup.after_commit(conn, "events")
            raise RuntimeError("rolled back")
        assert db.wakeups.generation("events") == before
        with db.write() as conn:
            wakeup.after_commit(conn, "events")
            assert db.wakeups.generation("events") == before  # not before the commit
        assert db.wakeups.generation("events") != before
    finally:
        db.dispose()


def test_recording_an_event_notifies_the_events_channel(tmp_path):
    from bbweb.engine import events

    db = Database(sqlite_url(tmp_path))
    try:
        db.create_all()
        before = db.wakeups.generation(wakeup.EVENTS)
        with db.write() as conn:
            events.emit(conn, "test.happened")
        assert db.wakeups.generation(wakeup.EVENTS) != before
    finally:
        db.dispose()


def test_a_dead_process_socket_is_cleared(tmp_path):
    url = sqlite_url(tmp_path)
    directory = wakeup.directory_for(url)
    assert directory is not None and directory.parent == tmp_path
    wakeup.for_url(url).generation("events")  # this process listens: the directory exists
    stale = directory / "999999999"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(stale))
    sock.close()  # the file stays, nobody reads it: as after a process was killed
    wakeup.for_url(url).notify("events")
    assert not stale.exists()
    assert (directory / str(os.getpid())).exists()


def test_the_directory_must_be_private(tmp_path):
    url = sqlite_url(tmp_path)
    directory = wakeup.directory_for(url)
    assert directory is not None
    directory.mkdir(mode=0o777)
    directory.chmod(0o777)
    w = wakeup.Wakeups(directory)
    since = w.generation("events")  # refused: wake-ups stay within this process
    assert not (directory / str(os.getpid())).exists()
    w.notify("events")
    assert w.wait("events", since, 0) != since


def test_fallback_setting(monkeypatch):
    monkeypatch.delenv(wakeup.FALLBACK_VAR, raising=False)
    assert wakeup.fallback(5.0) == 5.0
    monkeypatch.setenv(wakeup.FALLBACK_VAR, "3600")
    assert wakeup.fallback(5.0) == 3600.0
    monkeypatch.setenv(wakeup.FALLBACK_VAR, "soon")
    assert wakeup.fallback(5.0) == 5.0


def test_long_database_paths_meet_in_the_temporary_directory(tmp_path, monkeypatch):
    deep = tmp_path / ("d" * 90) / "state.sqlite"
    directory = wakeup.directory_for("sqlite:///" + str(deep))
    assert directory is not None and len(str(directory)) < 90
    assert wakeup.directory_for("sqlite://") is None
    pg = wakeup.directory_for("postgresql+psycopg://u:secret@db.example/bb")
    assert pg is not None and "secret" not in str(pg)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / ("t" * 100)))
    pg = wakeup.directory_for("postgresql+psycopg://u:secret@db.example/bb")
    assert pg is not None and len(os.fsencode(str(pg))) + 11 <= 107


@pytest.fixture
def pg_url(pg_admin_url):  # type: ignore[no-untyped-def]
    from tests.conftest import _drop_pg_database, _fresh_pg_database

    if pg_admin_url is None:
        pytest.skip("PostgreSQL server binaries are not installed (scripts/test.sh installs "
                    "them)")
    url, name = _fresh_pg_database(pg_admin_url)
    try:
        yield url
    finally:
        _drop_pg_database(pg_admin_url, name)


def test_postgresql_notifies_processes_that_share_no_directory(pg_url):
    """On PostgreSQL the committing transaction's NOTIFY wakes a waiting process even when
    the two meet in no socket directory (as on two hosts): the child's temporary
    directory is another one."""
    elsewhere = Path(tempfile.mkdtemp(prefix="bbweb-other-host-"))  # short: socket paths
    child = subprocess.Popen([sys.executable, "-c", WAITER, pg_url], cwd=REPO,
                             stdout=subprocess.PIPE, text=True,
                             env=dict(os.environ, TMPDIR=str(elsewhere)))
    db = Database(pg_url)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"  # its LISTEN is in place
        # its socket is in its own temporary directory, where this process sends nothing
        assert [p.name for p in elsewhere.rglob(str(child.pid))] == [str(child.pid)]
        assert not str(wakeup.directory_for(pg_url)).startswith(str(elsewhere))
        with db.write() as conn:
            wakeup.after_commit(conn, "events")
        wait_for(lambda: child.poll() is not None, 30, what="the waiting process to wake")
        assert child.stdout.read().strip() == "woken"
    finally:
        child.kill()
        child.wait()
        db.dispose()
        shutil.rmtree(elsewhere, ignore_errors=True)
