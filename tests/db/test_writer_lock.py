"""SQLite writers queue on a file lock beside the database (between processes) as well as
on a lock of their process: a writer waits there instead of sleeping in SQLite's busy
handler, the lock is the writer's only while its transaction is open, a process that
dies holding it loses it, and a directory where the lock file cannot be made still
takes writes."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from bbweb.db.connection import Database
from bbweb.db.schema import event_counter
from bbweb.engine import events
from tests.support.polling import wait_for

REPO = Path(__file__).resolve().parents[2]

# a process that opens a write transaction, says so, and stays in it until killed
HOLDER = textwrap.dedent("""
    import sys, time
    from bbweb.db.connection import Database
    db = Database(sys.argv[1])
    with db.write() as conn:
        conn.exec_driver_sql("UPDATE event_counter SET value = value")
        print("writing", flush=True)
        sys.stdin.readline()  # until killed
""")


@pytest.fixture
def db(tmp_path: Path):  # type: ignore[no-untyped-def]
    database = Database("sqlite:///" + str(tmp_path / "state.sqlite"))
    database.create_all()
    yield database
    database.dispose()


def lock_is_free(path: Path) -> bool:
    """Whether another open file of ``path`` can take the exclusive lock now."""
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # (releases it if taken)
    return True


def test_the_lock_file_is_held_only_while_a_write_transaction_is_open(db, tmp_path):
    lock = tmp_path / "state.sqlite-lock"
    with db.write() as conn:
        events.emit(conn, "test.one")
        assert lock.exists() and not lock_is_free(lock)
    assert lock_is_free(lock)
    with db.read() as conn:  # readers never take it
        assert conn.execute(sa.select(event_counter.c.value)).scalar_one() == 1
        assert lock_is_free(lock)


def test_a_writer_of_another_process_waits_for_the_holder_and_then_writes(db, tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, db.url], cwd=REPO,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "writing"
        done = threading.Event()

        def write() -> None:
            with db.write() as conn:
                events.emit(conn, "test.after")
            done.set()

        writer = threading.Thread(target=write)
        writer.start()
        assert not done.wait(0.5)  # queued behind the other process's transaction
        os.kill(holder.pid, signal.SIGKILL)  # dies holding it: the kernel lets go
        holder.wait()
        wait_for(done.is_set, 30, what="the queued writer to write")
        writer.join()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    with db.read() as conn:
        assert conn.execute(sa.select(event_counter.c.value)).scalar_one() == 1


def test_two_databases_on_one_file_in_one_process_share_the_queue(db):
    other = Database(db.url)
    try:
        results: list[int] = []

        def write(database: Database) -> None:
            for _ in range(50):
                with database.write() as conn:
                    results.append(events.emit(conn, "test.shared") or 0)

        threads = [threading.Thread(target=write, args=(d,)) for d in (db, other, db)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sorted(results) == list(range(1, 151))
    finally:
        other.dispose()


def test_writes_go_on_where_the_lock_file_cannot_be_made(tmp_path):
    url = "sqlite:///" + str(tmp_path / "state.sqlite")
    (tmp_path / "state.sqlite-lock").mkdir()  # a directory: it cannot be opened as one
    db = Database(url)
    try:
        db.create_all()
        with db.write() as conn:
            events.emit(conn, "test.nolock")
        with db.read() as conn:
            assert conn.execute(sa.select(event_counter.c.value)).scalar_one() == 1
    finally:
        db.dispose()


def test_the_last_database_disposed_of_closes_the_lock_file(tmp_path):
    url = "sqlite:///" + str(tmp_path / "state.sqlite")
    first, second = Database(url), Database(url)
    first.create_all()

    lock_file = str(tmp_path / "state.sqlite-lock")

    def open_descriptors() -> int:
        return sum(1 for fd in os.listdir("/proc/self/fd")
                   if os.path.realpath(f"/proc/self/fd/{fd}") == lock_file)

    with second.write() as conn:
        events.emit(conn, "test.open")
    assert open_descriptors() == 1
    first.dispose()
    assert open_descriptors() == 1  # the other still writes through it
    with second.write() as conn:
        events.emit(conn, "test.still")
    second.dispose()
    assert open_descriptors() == 0
