"""A big build history, fast, with rows exactly as the engine writes them.

Making history through the engine (``bench/populate.py``) runs ~100 builds/s, so the
issue-3 history (50 builders x 20,000 builds x 5 steps, 20,000 changes: one million
builds) would take hours. This script makes it in minutes, in two phases:

1. **Template, through the engine.** A fresh master (``master.cfg`` written here) with
   ``--builders`` builders of five steps (``update``, ``configure``, ``compile``,
   ``test``, ``lint``), ``--slaves`` slaves (each builder on two), builders split into up
   to five groups with one ``SingleBranchScheduler`` per group that takes changes of the
   projects that group builds (``core``: every group, ``client``/``server``: about half,
   ``docs``: the last group, ``website``: nobody), and a ``ForceScheduler``. For
   ``--template-builds K`` builds per builder, a seeded timeline of changes
   (``engine.changes.add_change``, which runs the schedulers) and forced builds of a
   whole group (``engine.force.force_build``) is played through the engine: each request
   is claimed by one of its builder's slaves and run step by step (``next_step`` ->
   ``append_step_log`` -> ``finish_step``; the update step sets ``got_revision``; the lint
   step writes a second log). Results are a seeded mix: success, test failures, lint
   warnings (lint has ``flunkOnFailure=False, warnOnFailure=True``), compile and update
   failures that halt the build, and exceptions. Engine time is a fake clock (``time.time``
   is patched while the template is made) so the template, and hence the whole history,
   is the same for the same ``--seed`` and ``--end-time``.

2. **Replication, in SQL.** The template's rows are copied ``builds / K - 1`` times with
   ``INSERT ... SELECT`` per copy and table: every id is shifted by copy x (the template's
   largest id of that table), build numbers by copy x K, every timestamp by copy x (the
   template's span), and revisions get a per-copy prefix (in ``changes``,
   ``sourcestamps`` and the ``revision``/``got_revision`` build properties; the
   ``buildnumber`` property follows the number). Tables copied: changes, change_files,
   change_properties, sourcestamps, sourcestamp_changes, buildsets,
   buildset_sourcestamps, buildset_properties, buildrequests, builds, build_properties,
   steps, logs, log_chunks. Not copied: ``events`` (the pages do not read the outbox; it
   holds the template's events only), slaves and builders (the same rows; each builder's
   ``next_number`` is set to the new history). Copies are inserted in id order, a batch
   of copies per transaction, with SQLite's foreign keys enforced (``foreign_keys=ON``). On
   PostgreSQL a superuser skips the foreign-key triggers for the copies
   (``session_replication_role = replica``): every reference is shifted with its parent's
   id, the tests check that none dangles, and each trigger is a lookup per row. The
   triggers that raise ``builds.doc_version`` are off while copying (each would update the
   copied build once per step, log and property row) and back afterwards, also after an
   error; a copy keeps its template build's ``doc_version``. On PostgreSQL the copied
   tables' plain indexes (not primary keys or unique constraints) are dropped for the
   copies and built again after them, and commits do not wait for their WAL flush. Then the
   id sequences are moved past the new rows and the tables are ANALYZEd at the end (as
   autovacuum would); SQLite is left without ``sqlite_stat1``, as an engine-made database
   is.

The sizes must fit the template: ``--builds`` a multiple of K, and ``--changes`` x K a
multiple of ``--builds`` (K is chosen automatically, at most 20, unless given). Changes
beyond what the builders build belong to the ``website`` project that no scheduler takes.

It refuses a non-empty ``--basedir`` and a database that already holds builds: it is not
a top-up; make a new basedir (or drop the PostgreSQL database) to change the size.

    # the issue-3 history on SQLite (about 10 minutes on 2 cores; ~10 GB)
    nice .venv/bin/python bench/bulk_history.py --basedir /tmp/bbbench-20k \\
        --builders 50 --builds 20000 --changes 20000
    # ten times smaller
    nice .venv/bin/python bench/bulk_history.py --basedir /tmp/bbbench-2k \\
        --builders 50 --builds 2000 --changes 2000
    # on PostgreSQL (an empty database; the basedir keeps master.cfg pointing at it)
    nice .venv/bin/python bench/bulk_history.py --basedir /tmp/bbbench-pg-20k \\
        --db-url postgresql+psycopg://u:pw@127.0.0.1:5432/bbbench20k

Prints the template's engine time, the replication's rows/s per table and in total, and
the row counts. ``bench/views.py --basedir DIR`` measures the pages on the result.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent))

import sqlalchemy as sa  # noqa: E402
from _common import (  # noqa: E402
    MARKER,
    PASSWORD,
    BenchMaster,
    banner,
    install_signal_handlers,
    open_master,
    safe_url,
)

from bbweb.db import schema  # noqa: E402
from bbweb.engine.builds import (  # noqa: E402
    append_step_log,
    claim_build_request,
    finish_step,
    next_step,
)
from bbweb.engine.changes import ChangeInput, add_change  # noqa: E402
from bbweb.engine.force import force_build  # noqa: E402
from bbweb.engine.slaves import mark_disconnected, slave_connected  # noqa: E402

STEPS = ("update", "configure", "compile", "test", "lint")
MAX_GROUPS = 5
MAX_TEMPLATE = 20
REPOSITORY = "https://example.org/bench/repo.git"
AUTHORS = [f"{n} <{n.lower()}@example.org>" for n in (
    "Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Heidi", "Ivan", "Judy",
    "Mallory", "Niaj", "Olivia", "Peggy", "Rupert", "Sybil", "Trent", "Victor", "Walter")]
WORDS = ("fix", "refactor", "speed up", "document", "test", "clean up", "port", "revert")
THINGS = ("the parser", "log rotation", "the scheduler", "unicode paths", "the build page",
          "slave reconnects", "the console", "rss feeds", "the test runner", "packaging")
# tables copied, parents first; name -> (primary key columns, the one that identifies the
# template's rows by being <= the template's largest value)
COPIED = ("changes", "change_files", "change_properties", "sourcestamps",
          "sourcestamp_changes", "buildsets", "buildset_sourcestamps", "buildset_properties",
          "buildrequests", "builds", "build_properties", "steps", "logs", "log_chunks")
# tables the template may write that are deliberately not copied
NOT_COPIED = {"builders", "slaves", "events", "event_counter", "consumer_cursors",
              "master_locks", "scheduler_state", "alembic_version"}
# foreign keys: column -> table whose id offset it takes
REFS = {
    ("change_files", "changeid"): "changes",
    ("change_properties", "changeid"): "changes",
    ("sourcestamp_changes", "sourcestampid"): "sourcestamps",
    ("sourcestamp_changes", "changeid"): "changes",
    ("buildset_sourcestamps", "buildsetid"): "buildsets",
    ("buildset_sourcestamps", "sourcestampid"): "sourcestamps",
    ("buildset_properties", "buildsetid"): "buildsets",
    ("buildrequests", "buildsetid"): "buildsets",
    ("builds", "buildrequestid"): "buildrequests",
    ("build_properties", "buildid"): "builds",
    ("steps", "buildid"): "builds",
    ("logs", "stepid"): "steps",
    ("log_chunks", "logid"): "logs",
}
# the column whose template values are 1..span (the table's own id, or its parent's)
KEY = {"changes": "changeid", "sourcestamp_changes": "sourcestampid",
       "buildset_sourcestamps": "buildsetid", "log_chunks": "logid"}
TIMES = {
    "changes": ("when_timestamp",),
    "buildsets": ("submitted_at", "complete_at"),
    "buildrequests": ("submitted_at", "claimed_at", "complete_at"),
    "builds": ("started_at", "finished_at"),
    "steps": ("started_at", "finished_at"),
}
REVISION_PROPS = ("revision", "got_revision")


# -- sizes and the master ---------------------------------------------------------------------

@dataclass
class Plan:
    builders: int
    builds: int  # per builder
    changes: int
    template: int  # K: builds per builder made through the engine
    slaves: int
    seed: int
    end_time: float
    spacing: float

    @property
    def copies(self) -> int:
        return self.builds // self.template

    @property
    def template_changes(self) -> int:
        return self.changes * self.template // self.builds

    @property
    def groups(self) -> int:
        return min(MAX_GROUPS, self.builders)


def choose_template(builds: int, changes: int, wanted: int | None) -> int:
    """K: divides ``builds`` and makes ``changes * K / builds`` whole; the largest such
    K <= 20 unless ``wanted`` is given (then it must fit)."""
    def fits(k: int) -> bool:
        return k >= 1 and builds % k == 0 and (changes * k) % builds == 0

    if wanted is not None:
        if not fits(wanted):
            raise SystemExit(f"--template-builds {wanted} does not fit: --builds ({builds}) "
                             f"must be a multiple of it and --changes x {wanted} a multiple "
                             "of --builds")
        return wanted
    for k in range(min(MAX_TEMPLATE, builds), 0, -1):
        if fits(k) and (k >= 4 or builds < 4):
            return k
    raise SystemExit(f"no template size <= {MAX_TEMPLATE} fits --builds {builds} and "
                     f"--changes {changes}: choose --builds with a divisor k in 4..20 such "
                     "that --changes x k is a multiple of --builds")


def builder_names(count: int) -> list[str]:
    return [f"builder-{i:02d}" for i in range(count)]


def group_of(index: int, groups: int) -> int:
    return index % groups


def projects(groups: int) -> dict[str, list[int]]:
    """Which groups build which project ('website' is built by nobody)."""
    half = max(1, math.ceil(groups / 2))
    return {"core": list(range(groups)), "client": list(range(half)),
            "server": list(range(groups - half, groups)), "docs": [groups - 1],
            "website": []}


PROJECT_WEIGHTS = {"core": 0.6, "client": 0.13, "server": 0.13, "docs": 0.07, "website": 0.07}


def master_cfg(plan: Plan, db_url: str | None) -> str:
    """A master.cfg with five-step builders, group schedulers and a ForceScheduler."""
    names = builder_names(plan.builders)
    slaves = [f"slave-{i}" for i in range(plan.slaves)]
    spec = [(n, sorted({slaves[i % len(slaves)], slaves[(i + 1) % len(slaves)]}),
             ("linux", "mac", "win")[i % 3], group_of(i, plan.groups))
            for i, n in enumerate(names)]
    lines = [
        "# generated by bench/bulk_history.py -- see its docstring",
        "from bbweb.config import *",
        "",
        "c = BuildmasterConfig = {}",
        "c['title'] = 'bbweb bench (bulk history)'",
        "c['titleURL'] = 'https://example.org/bench'",
        "c['buildbotURL'] = 'http://127.0.0.1:8010/'",
    ]
    if db_url:
        lines.append(f"c['db_url'] = {db_url!r}")
    lines += [
        f"SLAVES = {slaves!r}",
        f"c['slaves'] = [BuildSlave(n, {PASSWORD!r}) for n in SLAVES]",
        f"BUILDERS = {spec!r}",
        f"PROJECTS = {projects(plan.groups)!r}",
        "",
        "def factory():",
        "    f = BuildFactory()",
        "    f.addStep(ShellCommand(name='update', command=['git', 'pull', '--ff-only'],",
        "                           description=['updating'], descriptionDone=['update'],",
        "                           haltOnFailure=True))",
        "    f.addStep(Configure())",
        "    f.addStep(Compile())",
        "    f.addStep(Test())",
        "    f.addStep(ShellCommand(name='lint', command=['make', 'lint'],",
        "                           description=['linting'], descriptionDone=['lint'],",
        "                           flunkOnFailure=False, warnOnFailure=True))",
        "    return f",
        "",
        "c['builders'] = [BuilderConfig(name=n, slavenames=s, factory=factory(), category=cat)",
        "                 for n, s, cat, _g in BUILDERS]",
        "c['schedulers'] = []",
        f"for g in range({plan.groups}):",
        "    c['schedulers'].append(SingleBranchScheduler(",
        "        name='group-%d' % g,",
        "        change_filter=ChangeFilter(project=[p for p, gs in PROJECTS.items() if g in gs]),",
        "        builderNames=[b[0] for b in BUILDERS if b[3] == g]))",
        "c['schedulers'].append(ForceScheduler(name='force',",
        "                                      builderNames=[b[0] for b in BUILDERS]))",
        "c['status'] = [WebStatus(http_port='tcp:8010:interface=127.0.0.1')]",
        "",
    ]
    return "\n".join(lines)


def create_master(basedir: str, db_url: str | None, plan: Plan) -> BenchMaster:
    """Write the master into an empty (or missing) ``basedir`` and open it; refuse
    anything that already holds files or builds."""
    base = Path(basedir)
    if base.exists() and (not base.is_dir() or any(base.iterdir())):
        raise SystemExit(f"refusing to touch {base}: it is not empty. bulk_history.py makes "
                         "a new master and is not a top-up; give a new or empty --basedir")
    base.mkdir(parents=True, exist_ok=True)
    (base / "master.cfg").write_text(master_cfg(plan, db_url))
    marker = {"kind": "bulk_history", "builders": builder_names(plan.builders),
              "slaves": [f"slave-{i}" for i in range(plan.slaves)], "password": PASSWORD,
              "plan": plan.__dict__}
    (base / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
    master = open_master(str(base), None, builders=[], slaves=[], kind="bulk_history")
    with master.db.read() as conn:
        busy = [t for t in ("builds", "changes", "buildsets") if conn.execute(
            sa.select(sa.func.count()).select_from(schema.metadata.tables[t])).scalar()]
    if busy:
        master.db.dispose()
        (base / "master.cfg").unlink()
        (base / MARKER).unlink()
        raise SystemExit(f"refusing: the database {master.db_label} already holds "
                         f"{', '.join(busy)}; use an empty database")
    return master


# -- phase 1: the template through the engine -----------------------------------------------

class Clock:
    """The engine's ``time.time`` while the template is made: set explicitly."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@contextmanager
def fake_time(clock: Clock) -> Iterator[None]:
    with mock.patch.object(time, "time", clock):
        yield


@dataclass
class Event:
    at: float
    kind: str  # "change" | "force"
    project: str = ""
    group: int = -1


@dataclass
class TemplateStats:
    builds: int = 0
    results: dict[str, int] = field(default_factory=dict)
    elapsed: float = 0.0
    span: float = 0.0


def plan_timeline(plan: Plan, rng: random.Random, start: float) -> tuple[list[Event], float]:
    """The template's changes and forces in time order, and its span (the shift from one
    copy to the next). Each group builds exactly K times: the changes of its projects,
    topped up with forced builds."""
    k, u, groups = plan.template, plan.template_changes, plan.groups
    proj = projects(groups)
    hits = [0] * groups
    kinds: list[Event] = []
    names, weights = list(PROJECT_WEIGHTS), list(PROJECT_WEIGHTS.values())
    for _ in range(u):
        p = rng.choices(names, weights)[0]
        if any(hits[g] >= k for g in proj[p]):
            p = "website"
        for g in proj[p]:
            hits[g] += 1
        kinds.append(Event(0.0, "change", project=p))
    for g in range(groups):
        kinds.extend(Event(0.0, "force", group=g) for _ in range(k - hits[g]))
    rng.shuffle(kinds)
    for i, ev in enumerate(kinds):
        ev.at = start + i * plan.spacing + rng.uniform(0, plan.spacing / 4)
    return kinds, len(kinds) * plan.spacing


def _revision(rng: random.Random) -> str:
    return f"{rng.getrandbits(160):040x}"


def _outcome(rng: random.Random) -> tuple[str, str]:
    """(failing step or '', how): the seeded mix of results."""
    r = rng.random()
    if r < 0.76:
        return "", ""
    if r < 0.85:
        return "test", "fail"
    if r < 0.93:
        return "lint", "fail"
    if r < 0.965:
        return "compile", "fail"
    if r < 0.98:
        return "update", "fail"
    return "test", "exception"


def run_claimed(master: BenchMaster, clock: Clock, rng: random.Random, buildid: int,
                start: float, got_revision: str | None) -> str:
    """Play the worker for a whole claimed build at fake times; returns its outcome."""
    cfg = master.cfg
    bad, how = _outcome(rng)
    t = start
    with master.db.write() as conn:
        while True:
            clock.now = t
            spec = next_step(conn, cfg, buildid, now=t)
            if spec is None:
                break
            name = spec["name"]
            command = " ".join(spec.get("command") or [])
            lines = rng.randint(2, 8)
            chunks = [("h", f"{command}\n in dir {spec.get('workdir')}\n"),
                      ("o", "".join(f"{name}: line {i} of output\n" for i in range(lines)))]
            if name == bad and how == "fail":
                chunks.append(("e", f"{name}: error: something broke (exit 1)\n"))
            append_step_log(conn, cfg, spec["id"], "stdio", chunks)
            if name == "lint":
                warnings = "".join(f"src/mod{i}.c:{10 * i}: warning: unused variable\n"
                                   for i in range(rng.randint(0, 3) + (name == bad) * 2))
                append_step_log(conn, cfg, spec["id"], "warnings",
                                [("o", warnings or "no warnings\n")])
            t += rng.uniform(2, 45)
            clock.now = t
            props = {"got_revision": got_revision} if name == "update" and got_revision \
                else None
            if name == bad and how == "exception":
                finish_step(conn, cfg, spec["id"], None, interrupted="error",
                            error="the worker lost its command", now=t, properties=props)
            else:
                finish_step(conn, cfg, spec["id"], 1 if name == bad else 0, now=t,
                            properties=props)
            t += rng.uniform(0.5, 2)
    return f"{bad} {how}".strip() or "success"


def make_template(master: BenchMaster, plan: Plan) -> TemplateStats:
    """Play the seeded timeline through the engine (phase 1)."""
    cfg = master.cfg
    rng = random.Random(plan.seed)
    names = builder_names(plan.builders)
    groups = {g: [n for i, n in enumerate(names) if group_of(i, plan.groups) == g]
              for g in range(plan.groups)}
    proj = projects(plan.groups)
    # the history ends at end_time: the template is the oldest copy
    _events, span = plan_timeline(plan, random.Random(plan.seed), 0.0)
    start = plan.end_time - span * plan.copies
    events_, span = plan_timeline(plan, rng, start)
    clock = Clock(start - 60)
    stats = TemplateStats(span=span)
    t0 = time.perf_counter()
    latest_rev: str | None = None
    with fake_time(clock):
        with master.db.write() as conn:
            slave_ids = {n: slave_connected(conn, n, {"host": "bench (bulk_history.py)"},
                                            now=clock.now) for n in cfg.slaves}
        for n_event, ev in enumerate(events_):
            clock.now = ev.at
            if ev.kind == "change":
                latest_rev = _revision(rng)
                author = rng.choice(AUTHORS)
                files = sorted({f"src/{ev.project}/{rng.choice(THINGS).split()[-1]}"
                                f"{rng.randint(0, 30)}.c" for _ in range(rng.randint(1, 4))})
                with master.db.write() as conn:
                    add_change(conn, cfg, ChangeInput(
                        author=author, comments=f"{rng.choice(WORDS).capitalize()} "
                        f"{rng.choice(THINGS)}\n\nbench change {n_event}", files=files,
                        revision=latest_rev, when=ev.at, branch="main", project=ev.project,
                        repository=REPOSITORY, category=None), now=ev.at)
                targets = [b for g in proj[ev.project] for b in groups[g]]
                revision = latest_rev
            else:
                targets = groups[ev.group]
                revision = latest_rev
                with master.db.write() as conn:
                    force_build(conn, cfg, targets, reason=rng.choice(
                        ("rebuild", "flaky test?", "nightly check", "")),
                        owner=rng.choice(AUTHORS), branch="main", revision=revision,
                        repository=REPOSITORY, project="core", scheduler="force")
            t = ev.at
            for name in targets:
                bcfg = cfg.builders[name]
                t += rng.uniform(0.2, 3)
                slavename = bcfg.slavenames[rng.randrange(len(bcfg.slavenames))]
                clock.now = t
                with master.db.write() as conn:
                    claimed = claim_build_request(conn, cfg, slavename, slave_ids[slavename],
                                                  now=t)
                if claimed is None:
                    raise RuntimeError(f"{slavename} could not claim the request for {name}")
                outcome = run_claimed(master, clock, rng, claimed.buildid, t + 1, revision)
                stats.results[outcome] = stats.results.get(outcome, 0) + 1
                stats.builds += 1
        clock.now = start + span
        with master.db.write() as conn:
            for n, sid in slave_ids.items():
                mark_disconnected(conn, sid, n)
    stats.elapsed = time.perf_counter() - t0
    with master.db.read() as conn:
        numbers = {r.name: r.next_number for r in conn.execute(
            sa.select(schema.builders.c.name, schema.builders.c.next_number))}
    wrong = {n: v for n, v in numbers.items() if n in cfg.builders and v != plan.template}
    if wrong:
        raise RuntimeError(f"template: builders with other than {plan.template} builds: {wrong}")
    return stats


# -- phase 2: replication in SQL ----------------------------------------------------------------

def copy_prefix(k: int) -> str:
    """Eight hex digits that replace the start of a copy's revisions (a bijection of k)."""
    return f"{(k * 2654435761) % 2**32:08x}"


def _pk(table: sa.Table) -> str:
    return KEY.get(table.name, "id")


def template_spans(conn: sa.Connection) -> dict[str, int]:
    """Largest id (or key) of each copied table in the template."""
    out = {}
    for name in COPIED:
        t = schema.metadata.tables[name]
        out[name] = int(conn.execute(sa.select(sa.func.max(t.c[_pk(t)]))).scalar() or 0)
    return out


def check_tables(conn: sa.Connection) -> None:
    """Refuse to replicate when the engine wrote a table this script does not know."""
    unknown = []
    for name, t in schema.metadata.tables.items():
        if name in COPIED or name in NOT_COPIED:
            continue
        if conn.execute(sa.select(sa.func.count()).select_from(t)).scalar():
            unknown.append(name)
    if unknown:
        raise RuntimeError(f"the template wrote rows to {', '.join(unknown)}, which "
                           "bench/bulk_history.py does not know how to replicate")


def copy_statement(table: sa.Table, dialect: str) -> tuple[str, list[str]]:
    """``INSERT INTO t (...) SELECT <shifted columns> FROM t WHERE key <= :span ORDER BY
    pk`` with named parameters ``off_<table>``, ``dt``, ``dn``, ``pfx``, ``span``."""
    cols = [c.name for c in table.columns]
    own = table.name
    exprs = []
    for c in cols:
        ref = REFS.get((own, c))
        if c == _pk(table) and ref is None and c in ("id", "changeid"):
            exprs.append(f"{c} + :off_{own}")
        elif ref is not None:
            exprs.append(f"{c} + :off_{ref}")
        elif c in TIMES.get(own, ()):
            exprs.append(f"{c} + :dt")
        elif own == "builds" and c == "number":
            exprs.append("number + :dn")
        elif own in ("changes", "sourcestamps") and c == "revision":
            exprs.append("CASE WHEN revision IS NULL THEN NULL "
                         "ELSE :pfx || substr(revision, 9) END")
        elif own == "build_properties" and c == "value":
            names = ", ".join(f"'{p}'" for p in REVISION_PROPS)
            exprs.append(
                "CASE WHEN name = 'buildnumber' THEN CAST(CAST(value AS INTEGER) + :dn AS TEXT) "
                f"WHEN name IN ({names}) AND value LIKE '\"%' "
                "THEN '\"' || :pfx || substr(value, 10) ELSE value END")
        else:
            exprs.append(c)
    order = ", ".join(c.name for c in table.primary_key.columns)
    sql = (f"INSERT INTO {own} ({', '.join(cols)}) SELECT {', '.join(exprs)} FROM {own} "
           f"WHERE {_pk(table)} <= :span ORDER BY {order}")
    params = sorted({p for p in ("dt", "dn", "pfx") if f":{p}" in sql}
                    | {f"off_{t}" for t in COPIED if f":off_{t}" in sql})
    return sql, params


@dataclass
class ReplicationStats:
    rows: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    elapsed: float = 0.0
    after: float = 0.0  # triggers and indexes back, ANALYZE


def _tune_sqlite(conn: sa.Connection) -> None:
    conn.exec_driver_sql("PRAGMA cache_size = -262144")  # 256 MB for this connection
    conn.exec_driver_sql("PRAGMA temp_store = MEMORY")


def _pg_superuser(db: Any) -> bool:
    """Whether this PostgreSQL role may switch off trigger-enforced foreign keys."""
    with db.read() as conn:
        return bool(conn.exec_driver_sql(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user").scalar())


# the triggers that raise builds.doc_version when a build's steps, logs or properties change
DOC_TRIGGERS = "build_doc_%"


@contextmanager
def doc_triggers_off(db: Any) -> Iterator[None]:
    """The doc_version triggers off while copying, back on afterwards (also on an error).

    Each copied step, log and property would otherwise run an ``UPDATE builds`` of its
    build: on SQLite that was most of the copy's time. A copy's ``doc_version`` is then
    its template build's, the value the engine left on a build with the same writes; the
    counter only has to change when a build changes, and copies are new builds. SQLite
    cannot switch a trigger off, so they are dropped and re-created from their own stored
    SQL (``sqlite_master``), i.e. exactly as the migration made them; PostgreSQL disables
    and re-enables them (as their table's owner)."""
    pattern = {"pattern": DOC_TRIGGERS}
    if db.is_sqlite:
        with db.read() as conn:
            saved = conn.execute(sa.text(
                "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' "
                "AND name LIKE :pattern ORDER BY name"), pattern).all()
        with dropped_meanwhile(db, "TRIGGER", saved):
            yield
        return
    with db.read() as conn:
        triggers = conn.execute(sa.text(
            "SELECT tgrelid::regclass::text, tgname FROM pg_trigger "
            "WHERE NOT tgisinternal AND tgname LIKE :pattern ORDER BY tgname"),
            pattern).all()

    def switch(state: str) -> None:
        with db.write() as conn:
            for table, name in triggers:
                conn.exec_driver_sql(f'ALTER TABLE {table} {state} TRIGGER "{name}"')

    switch("DISABLE")
    try:
        yield
    finally:
        switch("ENABLE")


@contextmanager
def pg_indexes_after(db: Any, tables: tuple[str, ...]) -> Iterator[None]:
    """PostgreSQL: the copied tables' plain indexes dropped while copying and built again
    afterwards from their own definitions (``pg_indexes``), one sort each instead of an
    index insert per copied row. Primary keys and unique constraints stay: foreign keys
    depend on them, and they keep the copy checked."""
    with db.read() as conn:
        saved = conn.execute(sa.text(
            "SELECT i.indexname, i.indexdef FROM pg_indexes i "
            "WHERE i.schemaname = current_schema() AND i.tablename = ANY(:tables) "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname "
            "AND c.connamespace = (SELECT oid FROM pg_namespace "
            "WHERE nspname = current_schema())) ORDER BY i.indexname"),
            {"tables": list(tables)}).all()
    with dropped_meanwhile(db, "INDEX", saved,
                           before_rebuild="SET LOCAL maintenance_work_mem = '512MB'"):
        yield


@contextmanager
def dropped_meanwhile(db: Any, kind: str, saved: list[Any],
                      before_rebuild: str | None = None) -> Iterator[None]:
    """The database objects of ``kind`` (``TRIGGER``, ``INDEX``) in ``saved``, as (name,
    the statement that made it) rows, dropped for the block and made again after it, in
    one transaction each way (``before_rebuild`` first runs in the second)."""
    with db.write() as conn:
        for name, _sql in saved:
            conn.exec_driver_sql(f'DROP {kind} "{name}"')
    try:
        yield
    finally:
        with db.write() as conn:
            if before_rebuild is not None:
                conn.exec_driver_sql(before_rebuild)
            for _name, sql in saved:
                conn.exec_driver_sql(sql)


def replicate(master: BenchMaster, plan: Plan, span_seconds: float, batch: int,
              progress: bool = True) -> ReplicationStats:
    """Copy the template ``copies - 1`` times (phase 2), with the doc_version triggers
    (and on PostgreSQL the plain indexes) off meanwhile."""
    db = master.db
    t0 = time.perf_counter()
    with doc_triggers_off(db):
        if db.is_sqlite:
            stats = _replicate(master, plan, span_seconds, batch, progress)
        else:
            with pg_indexes_after(db, COPIED):
                stats = _replicate(master, plan, span_seconds, batch, progress)
    if not db.is_sqlite:
        finish_postgresql(master)
    total = time.perf_counter() - t0
    stats.after = total - stats.elapsed
    stats.elapsed = total
    return stats


def _replicate(master: BenchMaster, plan: Plan, span_seconds: float, batch: int,
               progress: bool) -> ReplicationStats:
    db = master.db
    dialect = db.engine.dialect.name
    stats = ReplicationStats()
    with db.read() as conn:
        check_tables(conn)
        spans = template_spans(conn)
        per_copy = {name: int(conn.execute(sa.select(sa.func.count()).select_from(
            schema.metadata.tables[name])).scalar() or 0) for name in COPIED}
    statements = {name: copy_statement(schema.metadata.tables[name], dialect)
                  for name in COPIED}
    copies = plan.copies
    skip_fk = dialect == "postgresql" and _pg_superuser(db)
    t0 = time.perf_counter()
    next_report = t0 + 15
    for first in range(1, copies, batch):
        last = min(copies, first + batch)
        with db.write() as conn:
            if db.is_sqlite:
                _tune_sqlite(conn)
            if not db.is_sqlite:
                # a bench database: nothing is lost by not waiting for each commit's flush
                conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
            if skip_fk:
                # each foreign-key trigger is a lookup per copied row; every reference is
                # shifted with its parent, and the tests check that none dangles
                conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
            for k in range(first, last):
                values: dict[str, Any] = {f"off_{t}": k * spans[t] for t in COPIED}
                values.update(dt=k * span_seconds, dn=k * plan.template, pfx=copy_prefix(k))
                for name in COPIED:
                    sql, params = statements[name]
                    ts = time.perf_counter()
                    args = {p: values[p] for p in params}
                    args["span"] = spans[name]
                    conn.execute(sa.text(sql), args)
                    stats.seconds[name] = stats.seconds.get(name, 0.0) + \
                        time.perf_counter() - ts
                    stats.rows[name] = stats.rows.get(name, 0) + per_copy[name]
        now = time.perf_counter()
        if progress and now >= next_report:
            done = last - 1
            rate = sum(stats.rows.values()) / (now - t0)
            print(f"  ... {done}/{copies - 1} copies, {rate:,.0f} rows/s, eta "
                  f"{(copies - last) * (now - t0) / done:.0f} s", flush=True)
            next_report = now + 15
    with db.write() as conn:
        conn.execute(schema.builders.update().where(
            schema.builders.c.name.in_(builder_names(plan.builders)))
            .values(next_number=plan.builds))
    stats.elapsed = time.perf_counter() - t0
    return stats


def finish_postgresql(master: BenchMaster) -> None:
    """Sequences past the copied ids (inserts gave explicit ids), then ANALYZE."""
    with master.db.write() as conn:
        for name in COPIED:
            t = schema.metadata.tables[name]
            if "id" in t.c and t.c.id.primary_key or name == "changes":
                col = _pk(t)
                conn.exec_driver_sql(
                    f"SELECT setval(pg_get_serial_sequence('{name}', '{col}'), "
                    f"(SELECT COALESCE(MAX({col}), 1) FROM {name}))")
    with master.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("ANALYZE")


# -- main -----------------------------------------------------------------------------------

def fingerprint(master: BenchMaster) -> str:
    """A digest of a few columns of the newest builds and changes (for determinism checks)."""
    h = hashlib.sha1()
    with master.db.read() as conn:
        for r in conn.execute(sa.select(schema.builds.c.builderid, schema.builds.c.number,
                                        schema.builds.c.results, schema.builds.c.started_at,
                                        schema.builds.c.text)
                              .order_by(schema.builds.c.id.desc()).limit(200)):
            h.update(repr(tuple(r)).encode())
        for r in conn.execute(sa.select(schema.changes.c.revision, schema.changes.c.author,
                                        schema.changes.c.when_timestamp)
                              .order_by(schema.changes.c.changeid.desc()).limit(200)):
            h.update(repr(tuple(r)).encode())
    return h.hexdigest()[:16]


def row_counts(master: BenchMaster) -> dict[str, int]:
    with master.db.read() as conn:
        return {name: int(conn.execute(sa.select(sa.func.count()).select_from(
            schema.metadata.tables[name])).scalar() or 0) for name in COPIED + ("events",)}


def parse_end_time(text: str | None) -> float:
    if text is None:
        return float(int(time.time()) // 3600 * 3600)
    try:
        return float(text)
    except ValueError:
        raise SystemExit(f"--end-time must be seconds since the epoch, not {text!r}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--basedir", required=True,
                        help="new (or empty) directory for the master; kept afterwards")
    parser.add_argument("--db-url", default=None,
                        help="an EMPTY database (e.g. postgresql+psycopg://u:pw@host/db); "
                             "default: state.sqlite in the basedir")
    parser.add_argument("--builders", type=int, default=50)
    parser.add_argument("--builds", type=int, default=20000, help="builds per builder")
    parser.add_argument("--changes", type=int, default=None,
                        help="changes in all (default: = --builds)")
    parser.add_argument("--template-builds", type=int, default=None,
                        help=f"builds per builder made through the engine (default: the "
                             f"largest fitting size <= {MAX_TEMPLATE})")
    parser.add_argument("--slaves", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--end-time", default=None,
                        help="epoch seconds the history ends at (default: now, rounded "
                             "down to the hour); same --seed and --end-time = same rows")
    parser.add_argument("--spacing", type=float, default=300.0,
                        help="seconds between changes/forces in the timeline (default 300)")
    parser.add_argument("--batch", type=int, default=20,
                        help="template copies per transaction (default 20)")
    return parser


def run(argv: list[str] | None = None) -> tuple[BenchMaster, Plan]:
    """Make the history; returns the (open) master and the plan. Used by the tests."""
    args = build_parser().parse_args(argv)
    for label in ("builders", "builds", "slaves", "batch"):
        if getattr(args, label) < 1:
            raise SystemExit(f"--{label} must be at least 1")
    changes = args.builds if args.changes is None else args.changes
    if changes < 0:
        raise SystemExit("--changes must not be negative")
    k = choose_template(args.builds, changes, args.template_builds)
    plan = Plan(builders=args.builders, builds=args.builds, changes=changes, template=k,
                slaves=max(2, args.slaves), seed=args.seed,
                end_time=parse_end_time(args.end_time), spacing=args.spacing)
    master = create_master(args.basedir, args.db_url, plan)
    try:
        banner("bulk_history", basedir=master.basedir, database=safe_url(master.cfg.db_url),
               size=f"{plan.builders} builders x {plan.builds} builds x {len(STEPS)} steps, "
               f"{plan.changes} changes",
               template=f"{plan.template} builds per builder, {plan.template_changes} changes "
               f"(through the engine), copied {plan.copies - 1} times",
               seed=plan.seed, end_time=f"{plan.end_time:.0f} ({time.ctime(plan.end_time)})")
        tstats = make_template(master, plan)
        print(f"template: {tstats.builds} builds through the engine in {tstats.elapsed:.1f} s "
              f"({tstats.builds / max(tstats.elapsed, 1e-9):.1f} builds/s); span "
              f"{tstats.span / 3600:.2f} h per copy; outcomes "
              + ", ".join(f"{k} {v}" for k, v in sorted(tstats.results.items())), flush=True)
        rstats = replicate(master, plan, tstats.span, args.batch)
        total = sum(rstats.rows.values())
        print(f"replication: {total:,} rows in {rstats.elapsed:.1f} s = "
              f"{total / max(rstats.elapsed, 1e-9):,.0f} rows/s = "
              f"{rstats.elapsed * 1e6 / (plan.builders * plan.builds):.0f} s per million "
              f"builds ({rstats.after:.1f} s of it after the copies: indexes, triggers, "
              "ANALYZE)")
        for name in COPIED:
            secs = rstats.seconds.get(name, 0.0)
            rows = rstats.rows.get(name, 0)
            print(f"  {name:22} {rows:>12,} rows {secs:8.1f} s "
                  f"{rows / secs if secs else 0:>12,.0f} rows/s")
        counts = row_counts(master)
        print("rows: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
        sqlite = Path(master.cfg.db_url.removeprefix("sqlite:///"))
        if master.db.is_sqlite and sqlite.exists():
            print(f"sqlite file: {sqlite.stat().st_size / 1e9:.2f} GB")
        print(f"fingerprint: {fingerprint(master)}")
        print(f"kept: --basedir {master.basedir}")
    except BaseException:
        master.db.dispose()
        raise
    return master, plan


def main(argv: list[str] | None = None) -> int:
    install_signal_handlers()
    t = time.perf_counter()
    master, _plan = run(argv)
    master.db.dispose()
    print(f"total: {time.perf_counter() - t:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
