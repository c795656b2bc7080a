"""Starting the daemon: what makes it refuse to run, and builder rows it syncs."""

from __future__ import annotations

import logging
import threading

import pytest
import sqlalchemy as sa

from bbweb.daemon import run_daemon
from bbweb.daemon.consumers import ConsumerError, collect_consumers
from bbweb.db.schema import builders
from tests.conftest import DEFAULT_CFG, write_master_cfg
from tests.daemon.conftest import FAST, Recorder, lock_holder, wait_for


def _stopped() -> threading.Event:
    event = threading.Event()
    event.set()
    return event


def test_unupgraded_database_is_refused(tmp_path, caplog):
    basedir = tmp_path / "fresh"
    write_master_cfg(basedir, DEFAULT_CFG, "sqlite:///" + str(tmp_path / "empty.sqlite"))
    assert run_daemon(str(basedir), stop_event=_stopped(), **FAST) == 1
    assert "bbweb upgrade-master" in caplog.text


def test_config_errors_are_refused(tmp_path, caplog):
    basedir = tmp_path / "broken"
    write_master_cfg(basedir, "c = BuildmasterConfig = {'no_such_key': 1}\n", "sqlite://")
    assert run_daemon(str(basedir), stop_event=_stopped(), **FAST) == 1
    assert "no_such_key" in caplog.text


def test_duplicate_consumer_names_are_refused(master, caplog):
    rc = run_daemon(str(master.basedir), stop_event=_stopped(),
                    consumers=[Recorder("same"), Recorder("same")], **FAST)
    assert rc == 1
    assert "two event consumers are named 'same'" in caplog.text


def test_collect_consumers():
    class NotAConsumer:
        pass

    rec = Recorder("r")
    assert collect_consumers([rec], [NotAConsumer(), "x"]) == [rec]
    with pytest.raises(ConsumerError, match="not an event consumer"):
        collect_consumers([NotAConsumer()], [])
    bad = Recorder("b")
    bad.initial_position = "middle"  # type: ignore[attr-defined]
    with pytest.raises(ConsumerError, match="initial_position"):
        collect_consumers([bad], [])


def test_bad_timings_are_rejected(master):
    with pytest.raises(ValueError, match="renew_interval"):
        run_daemon(str(master.basedir), stop_event=_stopped(),
                   **{**FAST, "lease": 1.0, "renew_interval": 0.9})


def test_builders_are_synced_and_clean_stop_returns_zero(master, daemons, caplog):
    caplog.set_level(logging.INFO, logger="bbweb.daemon")
    d = daemons(master.basedir, holder="d")
    wait_for(lambda: lock_holder(master) == "d", what="the daemon to take the lock")
    with master.db.read() as conn:
        names = sorted(conn.execute(sa.select(builders.c.name)).scalars())
    assert names == ["docs", "runtests"]
    assert d.stop() == 0
    assert lock_holder(master) is None
    assert "took the daemon lock as d" in caplog.text
    assert "released the daemon lock" in caplog.text
