"""Write the bench history into a Buildbot 4 master's database, with Buildbot's own model.

Runs in the Buildbot virtualenv's interpreter (it imports the installed ``buildbot``
package for its SQLAlchemy tables; nothing of Buildbot is copied here). Making 40,000
builds through real runs would take hours on Buildbot 4, so, as ``bench/bulk_history.py``
does for bbweb, the rows are inserted directly, in the shape Buildbot writes them:

* ``--changes`` changes (each with its sourcestamp, two files and a revision), one a
  minute, oldest first, project ``core`` on branch ``main``;
* one buildset per change (reason, ``scheduler`` property, the change's sourcestamp) with
  build requests for two builders (change i: builders ``2(i mod n/2)`` and the next one),
  so that each of the ``--builders`` builders gets ``--changes x 2 / builders`` builds;
* each request claimed by the master and built by one of its builder's two workers,
  numbered per builder from 1, with the properties a Buildbot 4 build of a change carries
  (buildername, buildnumber, workername, branch, revision, got_revision, repository,
  project, codebase, scheduler);
* five steps per build (update, configure, compile, test, lint), each with one ``stdio``
  log of a few lines in one uncompressed chunk (stream-prefixed lines, as Buildbot stores
  a stdio log); every tenth build fails its ``test`` step.

The master must have been started once on the database first, so that its builders,
workers and master row exist (``bench/buildbot4/bb4.py`` does that); builders are found by
name.

    BUILDBOT_VENV/bin/python bench/buildbot4/history.py --db BASEDIR/state.sqlite \\
        --builders 20 --changes 20000
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time

import sqlalchemy as sa
from buildbot.db.model import Model

STEPS = ("update", "configure", "compile", "test", "lint")
REPO = "https://github.com/example/bench"
BATCH = 500  # changes per transaction


def sha(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def log_text(step: str, failed: bool) -> tuple[bytes, int]:
    lines = [f"h{step}: running command in build directory",
             f"o{step}: line one of the output",
             f"o{step}: line two of the output",
             f"o{step}: line three of the output"]
    lines.append(f"e{step}: 3 tests failed" if failed else f"o{step}: done")
    lines.append("hprogram finished with exit code " + ("1" if failed else "0"))
    return ("\n".join(lines) + "\n").encode(), len(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", required=True, help="the master's state.sqlite")
    parser.add_argument("--builders", type=int, default=20)
    parser.add_argument("--changes", type=int, default=20000)
    parser.add_argument("--end-time", type=int, default=None,
                        help="when the last build finished (default: an hour ago)")
    args = parser.parse_args(argv)
    if args.builders % 2:
        parser.error("--builders must be even (each change builds two builders)")

    engine = sa.create_engine(f"sqlite:///{args.db}")
    m = Model
    with engine.connect() as conn:
        if conn.execute(sa.select(sa.func.count()).select_from(m.builds)).scalar():
            raise SystemExit(f"{args.db} already holds builds; make a new master")
        builders = dict(conn.execute(sa.select(m.builders.c.name, m.builders.c.id)).all())
        workers = dict(conn.execute(sa.select(m.workers.c.name, m.workers.c.id)).all())
        masterid = conn.execute(sa.select(sa.func.min(m.masters.c.id))).scalar()
    names = [f"builder-{i:02d}" for i in range(args.builders)]
    missing = [n for n in names if n not in builders]
    if missing or masterid is None or "worker-0" not in workers or "worker-1" not in workers:
        raise SystemExit("start the master once on this database first (builders "
                         f"{missing[:3]}…, master row, worker-0/1 missing)")

    end = args.end_time or int(time.time()) - 3600
    start = end - args.changes * 60
    numbers = dict.fromkeys(names, 0)
    t0 = time.monotonic()
    counts = dict.fromkeys(("changes", "builds", "steps", "logchunks", "properties"), 0)
    for first in range(0, args.changes, BATCH):
        rows: dict[str, list[dict]] = {t: [] for t in (
            "sourcestamps", "changes", "change_files", "buildsets", "buildset_sourcestamps",
            "buildset_properties", "buildrequests", "buildrequest_claims", "builds",
            "build_properties", "steps", "logs", "logchunks")}
        for i in range(first, min(first + BATCH, args.changes)):
            cid = i + 1
            when = start + i * 60
            rev = sha(f"rev-{i}")
            rows["sourcestamps"].append(dict(
                id=cid, ss_hash=sha(f"ss-{i}"), branch="main", revision=rev, patchid=None,
                repository=REPO, codebase="", project="core", created_at=when))
            rows["changes"].append(dict(
                changeid=cid, author=f"Dev {i % 7} <dev{i % 7}@example.org>",
                committer=f"Dev {i % 7} <dev{i % 7}@example.org>",
                comments=f"change {i}: fix module {i % 97}\n\nbench history",
                branch="main", revision=rev, revlink=f"{REPO}/commit/{rev}",
                when_timestamp=when, category=None, repository=REPO, codebase="",
                project="core", sourcestampid=cid, parent_changeids=cid - 1 if i else None))
            rows["change_files"] += [dict(changeid=cid, filename=f"src/file{i % 13}.c"),
                                     dict(changeid=cid, filename="README.md")]
            pair = (2 * (i % (args.builders // 2)), 2 * (i % (args.builders // 2)) + 1)
            failed_any = False
            duration = 40 + i % 20
            for k, b in enumerate(pair):
                bname = names[b]
                numbers[bname] += 1
                number = numbers[bname]
                brid = 2 * i + k + 1
                failed = number % 10 == 0
                failed_any = failed_any or failed
                result = 2 if failed else 0
                wname = f"worker-{(b + number) % 2}"
                started, done = when + 2, when + 2 + duration
                rows["buildrequests"].append(dict(
                    id=brid, buildsetid=cid, builderid=builders[bname], priority=0,
                    complete=1, results=result, submitted_at=when, complete_at=done,
                    waited_for=0))
                rows["buildrequest_claims"].append(dict(brid=brid, masterid=masterid,
                                                        claimed_at=when + 1))
                rows["builds"].append(dict(
                    id=brid, number=number, builderid=builders[bname], buildrequestid=brid,
                    workerid=workers[wname], masterid=masterid, started_at=started,
                    complete_at=done, locks_duration_s=0,
                    state_string="failed test (failure)" if failed else "build successful",
                    results=result))
                props = {"buildername": (bname, "Builder"), "buildnumber": (number, "Build"),
                         "workername": (wname, "Worker"), "branch": ("main", "Build"),
                         "revision": (rev, "Build"), "got_revision": (rev, "Git"),
                         "repository": (REPO, "Build"), "project": ("core", "Build"),
                         "codebase": ("", "Build"), "scheduler": ("sbs", "Scheduler")}
                for pname, (value, source) in props.items():
                    rows["build_properties"].append(dict(
                        buildid=brid, name=pname, value=json.dumps(value), source=source))
                for s, step in enumerate(STEPS):
                    stepid = 5 * (brid - 1) + s + 1
                    s_failed = failed and step == "test"
                    s_start = started + s * duration // 5
                    rows["steps"].append(dict(
                        id=stepid, number=s, name=step, buildid=brid, started_at=s_start,
                        locks_acquired_at=s_start, complete_at=s_start + duration // 5,
                        state_string=f"'{step}' (failure)" if s_failed else f"'{step}'",
                        results=2 if s_failed else 0, urls_json="[]", hidden=0))
                    content, nlines = log_text(step, s_failed)
                    rows["logs"].append(dict(id=stepid, name="stdio", slug="stdio",
                                             stepid=stepid, complete=1, num_lines=nlines,
                                             type="s"))
                    rows["logchunks"].append(dict(logid=stepid, first_line=0,
                                                  last_line=nlines - 1, content=content,
                                                  compressed=0))
            rows["buildsets"].append(dict(
                id=cid, external_idstring=None,
                reason="The SingleBranchScheduler scheduler named 'sbs' triggered this build",
                submitted_at=when, complete=1, complete_at=when + 2 + duration,
                results=2 if failed_any else 0, parent_buildid=None, parent_relationship=None,
                rebuilt_buildid=None))
            rows["buildset_sourcestamps"].append(dict(id=cid, buildsetid=cid,
                                                      sourcestampid=cid))
            rows["buildset_properties"].append(dict(
                buildsetid=cid, property_name="scheduler",
                property_value=json.dumps(["sbs", "Scheduler"])))
        with engine.begin() as conn:
            for table, values in rows.items():
                if values:
                    conn.execute(getattr(m, table).insert(), values)
        counts["changes"] += len(rows["changes"])
        counts["builds"] += len(rows["builds"])
        counts["steps"] += len(rows["steps"])
        counts["logchunks"] += len(rows["logchunks"])
        counts["properties"] += len(rows["build_properties"])
    took = time.monotonic() - t0
    print(f"inserted {counts} in {took:.0f} s; builds per builder "
          f"{min(numbers.values())}..{max(numbers.values())}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
