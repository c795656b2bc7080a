"""Group commit of change intake: requests that queue behind a writing one are stored
together in one transaction, and each still gets its own result (its ids, its error)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bbweb.db.connection import Database
from bbweb.db.migrate import upgrade
from bbweb.db.schema import buildrequests, changes, event_counter, events
from bbweb.engine.changes import ChangeError, ChangeInput, add_changes
from bbweb.engine.hook_deliveries import AlreadyProcessed
from bbweb.engine.intake import ChangeIntake
from bbweb.mastercfg.master import load_master_config
from bbweb.mastercfg.schedulers import ChangeFilter
from tests.conftest import (
    DEFAULT_CFG,
    Master,
    _drop_pg_database,
    _fresh_pg_database,
    write_master_cfg,
)
from tests.support.polling import wait_for


class HeldWriter:
    """An intake whose first request ('first') holds the write transaction, inside the
    scheduler's filter, until :meth:`release`; the others queue behind it in the order
    they are submitted."""

    def __init__(self, master: Any, refuse: str | None = None,
                 intake: ChangeIntake | None = None) -> None:
        self.master = master
        self.intake = intake or ChangeIntake(master.db)
        self.results: dict[str, Any] = {}
        self._entered = threading.Event()
        self._release = threading.Event()
        self._threads: list[threading.Thread] = []

        def filter_fn(change: Any) -> bool:
            if change.comments == "first":
                self._entered.set()
                assert self._release.wait(30)
            if refuse is not None and change.comments == refuse:
                raise ValueError(f"the scheduler refuses {refuse!r}")
            return True

        master.config.schedulers["all"].change_filter = ChangeFilter(filter_fn=filter_fn)
        self.submit("first")
        wait_for(self._entered.is_set, what="the first request to be writing")

    def submit(self, name: str, delivery: str | None = None, author: str = "dev") -> None:
        def run() -> None:
            try:
                self.results[name] = self.intake.store(
                    self.master.config, "base", [ChangeInput(author=author, comments=name)],
                    delivery)
            except Exception as exc:  # what the request would be answered
                self.results[name] = exc

        queued = self.intake.waiting
        thread = threading.Thread(target=run)
        thread.start()
        self._threads.append(thread)
        if self._threads[1:]:  # the first one writes; the others queue in this order
            wait_for(lambda: self.intake.waiting == queued + 1 or name in self.results,
                     what=f"{name} to queue")

    def release(self) -> dict[str, Any]:
        self._release.set()
        for thread in self._threads:
            thread.join(30)
        return self.results


def stored(master: Any) -> dict[str, Any]:
    with master.db.read() as conn:
        rows = conn.execute(sa.select(changes.c.changeid, changes.c.comments)
                            .order_by(changes.c.changeid)).all()
        new = [e for e in conn.execute(sa.select(events.c.kind, events.c.payload)
                                       .order_by(events.c.id)).all()
               if e.kind == "change.new"]
        return {
            "changes": [r.comments for r in rows],
            "ids": {r.comments: r.changeid for r in rows},
            "requests": conn.execute(sa.select(sa.func.count()).select_from(buildrequests)
                                     ).scalar_one(),
            "event_changeids": [json.loads(e.payload)["changeid"] for e in new],
            "events": conn.execute(sa.select(sa.func.count()).select_from(events)
                                   ).scalar_one(),
            "counter": conn.execute(sa.select(event_counter.c.value)).scalar_one(),
        }


def test_queued_requests_share_one_transaction_in_their_order(make_master):
    master = make_master()
    held = HeldWriter(master)
    for name in ("second", "third", "fourth"):
        held.submit(name)
    results = held.release()

    assert held.intake.transactions == 2  # the first alone, then the three together
    after = stored(master)
    assert after["changes"] == ["first", "second", "third", "fourth"]
    for name in after["changes"]:
        assert results[name] == [after["ids"][name]]
    assert after["requests"] == 4 * 2  # each change scheduled on both builders
    assert after["event_changeids"] == [after["ids"][n] for n in after["changes"]]
    assert after["events"] == after["counter"]


def test_a_request_refused_in_the_group_gets_its_own_error_and_the_others_land(make_master):
    master = make_master()
    held = HeldWriter(master, refuse="bad")
    held.submit("before")
    held.submit("bad")
    held.submit("after")
    results = held.release()

    assert isinstance(results["bad"], ValueError)
    assert "the scheduler refuses 'bad'" in str(results["bad"])
    after = stored(master)
    assert after["changes"] == ["first", "before", "after"]
    for name in after["changes"]:
        assert results[name] == [after["ids"][name]]
    assert after["requests"] == 3 * 2
    assert after["event_changeids"] == [after["ids"][n] for n in after["changes"]]
    assert after["events"] == after["counter"]


def test_a_redelivery_in_the_group_is_already_processed_without_undoing_the_others(
        make_master):
    master = make_master()
    intake = ChangeIntake(master.db)
    [seen] = intake.store(master.config, "base", [ChangeInput(author="dev",
                                                                comments="seen")], "d-1")
    held = HeldWriter(master, intake=intake)
    held.submit("again", delivery="d-1")
    held.submit("new", delivery="d-2")
    results = held.release()

    assert isinstance(results["again"], AlreadyProcessed)
    after = stored(master)
    assert after["changes"] == ["seen", "first", "new"]
    assert results["new"] == [after["ids"]["new"]] and seen == after["ids"]["seen"]


def test_an_invalid_change_is_refused_before_it_can_join_a_group(make_master):
    master = make_master()
    intake = ChangeIntake(master.db)
    with pytest.raises(ChangeError, match="author"):
        intake.store(master.config, "base", [ChangeInput(author=" ")], None)
    assert intake.transactions == 0
    assert stored(master)["changes"] == []


SCHEDULERS_CFG = DEFAULT_CFG.replace(
    "c['schedulers'] = [SingleBranchScheduler(name='all', branch=None,\n"
    "                                         builderNames=['runtests', 'docs'])]",
    "c['schedulers'] = [\n"
    "    SingleBranchScheduler(name='all', branch=None, builderNames=['runtests', 'docs'],\n"
    "                          fileIsImportant=lambda ch: 'minor' not in ch.comments),\n"
    "    SingleBranchScheduler(name='docs-only', change_filter=ChangeFilter(project='docs'),\n"
    "                          builderNames=['docs', 'docs'], properties={'flavour': 'docs'}),\n"
    "    SingleBranchScheduler(name='stable', branch='stable', treeStableTimer=60,\n"
    "                          builderNames=['runtests']),\n"
    "]")

# every table the schedulers write, in full (times included: both masters get one `now`)
SCHEDULED_TABLES = ("changes", "sourcestamps", "sourcestamp_changes", "buildsets",
                    "buildset_sourcestamps", "buildset_properties", "buildrequests",
                    "scheduler_changes", "events", "event_counter")


def dump(master: Any) -> dict[str, list[tuple[Any, ...]]]:
    with master.db.read() as conn:
        return {t: [tuple(r) for r in conn.execute(sa.text(f"SELECT * FROM {t}")).all()]
                for t in SCHEDULED_TABLES}


@pytest.fixture
def other_master(db_url: str, tmp_path: Any, pg_admin_url: str | None,
                 migrated_templates: dict[str, str]) -> Any:
    """Factory: a master on a database of its own (``make_master``'s all share one), on
    the same backend."""
    made: list[tuple[Master, str | None]] = []

    def factory(cfg_text: str, name: str) -> Master:
        pg_name = None
        if db_url.startswith("sqlite"):
            path = tmp_path / f"{name}.sqlite"
            path.write_bytes(Path(migrated_templates["sqlite"]).read_bytes())
            url = "sqlite:///" + str(path)
        else:
            assert pg_admin_url is not None
            url, pg_name = _fresh_pg_database(pg_admin_url, migrated_templates["postgresql"])
        basedir = tmp_path / name
        write_master_cfg(basedir, cfg_text, url)
        cfg = load_master_config(basedir)
        upgrade(cfg.db_url)
        master = Master(basedir, url, cfg, Database(cfg.db_url))
        made.append((master, pg_name))
        return master

    yield factory
    for master, pg_name in made:
        master.db.dispose()
        if pg_name is not None and pg_admin_url is not None:
            _drop_pg_database(pg_admin_url, pg_name)


def test_changes_stored_together_schedule_exactly_what_they_would_one_by_one(make_master,
                                                                             other_master):
    # minor changes wait for the next important one of the default branch; a project's own
    # scheduler names one builder twice; another waits for a stable tree; several codebases
    new = [ChangeInput(author="dev", comments=comments, branch=branch, project=project,
                       codebase=codebase, revision=f"r{i}", files=[f"f{i}.c"],
                       properties={"n": i})
           for i, (comments, branch, project, codebase) in enumerate([
               ("one", None, "", ""), ("minor two", None, "docs", "lib"),
               ("minor three", None, "", ""), ("four", None, "docs", ""),
               ("five", "stable", "", "lib"), ("minor six", "stable", "", ""),
               ("seven", None, "", "lib"), ("eight", None, "docs", "")])]
    warm = ChangeInput(author="dev", comments="warm-up")  # builder rows made, both alike
    together, alone = make_master(SCHEDULERS_CFG, "together"), other_master(SCHEDULERS_CFG,
                                                                            "alone")
    assert together.db.url != alone.db.url
    now = 1_700_000_000.0
    for master in (together, alone):
        with master.db.write() as conn:
            add_changes(conn, master.config, [warm], now=now)
    with together.db.write() as conn:
        add_changes(conn, together.config, new, now=now)
    for change in new:
        with alone.db.write() as conn:
            add_changes(conn, alone.config, [change], now=now)

    want, got = dump(alone), dump(together)
    for table in SCHEDULED_TABLES:
        if table == "events":
            # the same events (their creation time is when they were written); stored
            # together, every change.new comes before the buildsets' events
            assert sorted((r[1], r[3]) for r in got[table]) == sorted(
                (r[1], r[3]) for r in want[table])
        else:
            assert got[table] == want[table], table
    # it did something: buildsets of both immediate schedulers, changes waiting
    assert {r.scheduler for r in dump_rows(alone, "buildsets")} == {"all", "docs-only"}
    assert len(want["buildsets"]) >= 5 and want["scheduler_changes"]


def dump_rows(master: Any, table: str) -> list[Any]:
    with master.db.read() as conn:
        return list(conn.execute(sa.text(f"SELECT * FROM {table}")).all())
