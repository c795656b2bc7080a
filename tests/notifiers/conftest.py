"""Notifier test helpers: real SMTP servers (one per kind for the session), builds made
through the engine with a chosen result, and feeding a notifier the outbox's events."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bbweb.db.schema import notifications
from bbweb.engine import builds as eb
from bbweb.engine import events as eevents
from bbweb.engine import slaves as es
from bbweb.engine.changes import ChangeInput, add_change
from bbweb.status.builder import EXCEPTION, FAILURE, SUCCESS, WARNINGS
from tests.daemon.conftest import daemons  # noqa: F401 (the fixture, for daemon tests)
from tests.support.history import claim, force
from tests.support.push_receiver import receiver  # noqa: F401 (the fixture)
from tests.support.smtpd import SmtpServer
from tests.support.sshd import fake_gerrit, fake_gerrit_server  # noqa: F401 (fixtures)

# compile fails the build, lint only warns
MAIL_CFG = """
from bbweb.config import *
from bbweb.status.mail import MailNotifier
c = BuildmasterConfig = {}
c['title'] = 'Mail Project'
c['buildbotURL'] = 'http://bb.example.org/'
c['db_url'] = DB_URL
c['slaves'] = [BuildSlave('slave1', 'pw1')]
f = BuildFactory()
f.addStep(ShellCommand(command=['make'], name='compile', descriptionDone=['compile']))
f.addStep(ShellCommand(command=['make', 'lint'], name='lint', descriptionDone=['lint'],
                       flunkOnFailure=False, warnOnFailure=True))
c['builders'] = [
    BuilderConfig(name='runtests', slavenames=['slave1'], factory=f, category='core'),
    BuilderConfig(name='docs', slavenames=['slave1'], factory=f, category='doc'),
]
c['schedulers'] = [
    AnyBranchScheduler(name='all', builderNames=['runtests', 'docs']),
    ForceScheduler(name='force', builderNames=['runtests', 'docs']),
]
c['status'] = []
"""

T0 = 1_700_000_000.0


@pytest.fixture(scope="session")
def certdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("smtp-certs")


def _server(kind: str, certdir: Path) -> Iterator[SmtpServer]:
    server = SmtpServer(kind, certdir).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def smtp(certdir: Path) -> Iterator[SmtpServer]:
    """Plain SMTP: no TLS, no AUTH."""
    yield from _server("plain", certdir)


@pytest.fixture(scope="session")
def smtp_starttls(certdir: Path) -> Iterator[SmtpServer]:
    """STARTTLS required before MAIL and AUTH; AUTH required."""
    yield from _server("starttls", certdir)


@pytest.fixture(scope="session")
def smtp_smtps(certdir: Path) -> Iterator[SmtpServer]:
    yield from _server("smtps", certdir)


@pytest.fixture(scope="session")
def smtp_clear_auth(certdir: Path) -> Iterator[SmtpServer]:
    yield from _server("clear-auth", certdir)


@pytest.fixture
def sender() -> str:
    """A From address of this test's own, to tell its mail apart on a shared server."""
    return f"bb-{uuid.uuid4().hex[:12]}@example.org"


@pytest.fixture
def mail_master(make_master):  # type: ignore[no-untyped-def]
    return make_master(MAIL_CFG)


def mail_cfg(extra: str) -> str:
    """MAIL_CFG with master.cfg lines appended (e.g. c['status'] = [MailNotifier(...)])."""
    return MAIL_CFG + "\n" + extra


class Clock:
    """Explicit, increasing times for the engine."""

    def __init__(self, start: float = T0) -> None:
        self.now = start

    def __call__(self, step: float = 1.0) -> float:
        self.now += step
        return self.now


def change(master: Any, clock: Clock, author: str = "alice", **fields: Any) -> int:
    """A change that the 'all' scheduler turns into a buildset for both builders."""
    fields.setdefault("files", ["src/a.c"])
    fields.setdefault("revision", uuid.uuid4().hex[:12])
    with master.db.write() as conn:
        return add_change(conn, master.config, ChangeInput(author=author, **fields),
                          now=clock())


def finish_claimed(master: Any, buildid: int, result: int, clock: Clock,
                   log: list[tuple[str, str]] | None = None) -> None:
    """Play the worker for a claimed build so that it ends with ``result`` (SUCCESS,
    WARNINGS, FAILURE or EXCEPTION through the steps; anything else set directly)."""
    cfg = master.config
    rcs = {FAILURE: {"compile": 1}, WARNINGS: {"lint": 1}}.get(result, {})
    if result not in (SUCCESS, WARNINGS, FAILURE, EXCEPTION):
        with master.db.write() as conn:
            eb.finish_build(conn, cfg, buildid, now=clock(), result=result, text=["odd"])
        return
    while True:
        with master.db.write() as conn:
            spec = eb.next_step(conn, cfg, buildid, now=clock())
        if spec is None:
            return
        with master.db.write() as conn:
            eb.append_step_log(conn, cfg, spec["id"], "stdio",
                               log or [("h", "$ make\n"), ("o", "ok\n")])
            if result == EXCEPTION:
                eb.finish_step(conn, cfg, spec["id"], None, interrupted="error", now=clock())
            else:
                eb.finish_step(conn, cfg, spec["id"], rcs.get(spec["name"], 0), now=clock())


def run_pending(master: Any, result: int, clock: Clock) -> list[int]:
    """Claim and run every pending request (oldest first) to ``result``; build ids."""
    done = []
    while True:
        with master.db.write() as conn:
            sid = es.slave_id(conn, "slave1") or es.ensure_slave(conn, "slave1")
            claimed = eb.claim_build_request(conn, master.config, "slave1", sid, now=clock())
        if claimed is None:
            return done
        finish_claimed(master, claimed.buildid, result, clock)
        done.append(claimed.buildid)


def build(master: Any, builder: str, result: int, clock: Clock, **force_kw: Any) -> int:
    """Force one build of ``builder`` and run it to ``result``; returns its build id."""
    force(master, builder, **force_kw)
    claimed = claim(master, "slave1", clock())
    finish_claimed(master, claimed.buildid, result, clock)
    return claimed.buildid


def feed(notifier: Any, master: Any, after: int = 0) -> int:
    """Hand the notifier every event after ``after`` (as the daemon would, in order);
    returns the last event id."""
    if notifier.db is None:
        notifier.bind(master.db, master.config)
    with master.db.read() as conn:
        batch = eevents.read_events(conn, after, 100_000)
    for event in batch:
        notifier.handle_event(event)
    return batch[-1]["id"] if batch else after


def latest_event(master: Any) -> int:
    with master.db.read() as conn:
        return eevents.latest_event_id(conn)


def attempts(master: Any, notifier: str | None = None) -> list[Any]:
    with master.db.read() as conn:
        query = sa.select(notifications).order_by(notifications.c.id)
        if notifier is not None:
            query = query.where(notifications.c.notifier == notifier)
        return conn.execute(query).all()
