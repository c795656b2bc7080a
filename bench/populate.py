"""Populate a master with build history THROUGH THE ENGINE and print how fast it goes.

For every build: a change (``engine.changes.add_change``, which runs the builder's
scheduler) or a force (``engine.force.force_build``), then ``claim_build_request`` by one
of the builder's slaves, then each step via ``next_step`` -> ``append_step_log`` (a small
log) -> ``finish_step`` until ``next_step`` returns None (which finishes the build). Each
engine call is its own write transaction, as it is when a worker drives it over HTTP; the
HTTP layer itself is not involved.

    .venv/bin/python bench/populate.py                           # 20 x 250, temporary master
    .venv/bin/python bench/populate.py --builds-per-builder 5000 --basedir /tmp/bb5k
    .venv/bin/python bench/populate.py --db-url postgresql+psycopg://u:pw@host/db

``--builds-per-builder N`` is a target: a reused ``--basedir`` is topped up to N builds per
builder, so the other scripts can point ``--basedir`` at the result.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import sqlalchemy as sa  # noqa: E402
from _common import (  # noqa: E402
    BenchMaster,
    add_common_args,
    banner,
    bench_builders,
    install_signal_handlers,
    open_master,
    timed,
)

from bbweb.db.schema import builders as builders_table  # noqa: E402
from bbweb.engine.builds import (  # noqa: E402
    append_step_log,
    claim_build_request,
    finish_step,
    next_step,
)
from bbweb.engine.changes import ChangeInput, add_change  # noqa: E402
from bbweb.engine.force import force_build  # noqa: E402
from bbweb.engine.slaves import mark_disconnected, slave_connected  # noqa: E402

DEFAULT_BUILDERS = 20
DEFAULT_BUILDS = 250
FULL_BUILDS = 5000
DEFAULT_SLAVES = 4
PHASES = ("schedule", "claim", "next_step", "log", "finish_step")


@dataclass
class PopulateStats:
    builds: int = 0
    steps: int = 0
    failed: int = 0
    elapsed: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)

    def report(self, label: str = "populate") -> None:
        rate = self.builds / self.elapsed if self.elapsed else float("nan")
        print(f"{label}: {self.builds} builds ({self.steps} steps, {self.failed} failed on "
              f"purpose) in {self.elapsed:.1f} s = {rate:.1f} builds/s")
        if self.builds:
            total = sum(self.phases.values()) or 1.0
            parts = ", ".join(
                f"{p} {self.phases.get(p, 0.0) / self.builds * 1000:.2f} ms "
                f"({self.phases.get(p, 0.0) / total * 100:.0f}%)" for p in PHASES)
            print(f"  per build: {parts}")
        sys.stdout.flush()


def default_master(args: argparse.Namespace, builders: int = DEFAULT_BUILDERS,
                   slaves: int = DEFAULT_SLAVES, kind: str = "populate") -> BenchMaster:
    slave_names = [f"slave-{i}" for i in range(slaves)]
    return open_master(args.basedir, args.db_url, builders=bench_builders(builders, slave_names),
                       slaves=slave_names, reset_db=args.reset_db, kind=kind)


def _revision(builder: str, n: int) -> str:
    return hashlib.sha1(f"{builder}:{n}".encode()).hexdigest()


def run_one_build(master: BenchMaster, builder: str, n: int, slave: tuple[str, int],
                  use_change: bool, fail: bool, stats: PopulateStats) -> None:
    db, cfg, acc = master.db, master.cfg, stats.phases
    revision = _revision(builder, n)
    with timed(acc, "schedule"), db.write() as conn:
        if use_change:
            add_change(conn, cfg, ChangeInput(
                author=f"dev{n % 7} <dev{n % 7}@example.org>",
                comments=f"change {n} to {builder}\n\nbench history",
                files=[f"src/{builder}/file{n % 13}.c", "README"], revision=revision,
                branch="main", project=builder, repository="https://example.org/repo.git",
                properties={"bench": True}))
        else:
            force_build(conn, cfg, [builder], reason=f"bench build {n}", owner="bench",
                        branch="main", revision=revision, project=builder,
                        repository="https://example.org/repo.git", scheduler="force")
    with timed(acc, "claim"), db.write() as conn:
        claimed = claim_build_request(conn, cfg, slave[0], slave[1])
    if claimed is None:
        raise RuntimeError(f"{slave[0]} could not claim the request just made for {builder}")
    nsteps = len(cfg.builders[claimed.builder].factory.steps)
    while True:
        with timed(acc, "next_step"), db.write() as conn:
            spec = next_step(conn, cfg, claimed.buildid)
        if spec is None:
            break
        stepid = spec["id"]
        command = " ".join(spec.get("command") or []) if isinstance(spec.get("command"), list) \
            else str(spec.get("command"))
        with timed(acc, "log"), db.write() as conn:
            append_step_log(conn, cfg, stepid, "stdio", [
                ("h", f"{command}\n in dir {spec.get('workdir')}\n"),
                ("o", "".join(f"output line {i} of {spec['name']}\n" for i in range(5))),
            ])
        last = spec["number"] == nsteps - 1
        with timed(acc, "finish_step"), db.write() as conn:
            finish_step(conn, cfg, stepid, 1 if (fail and last) else 0)
        stats.steps += 1
    stats.builds += 1
    stats.failed += int(fail)


def populate(master: BenchMaster, target: int, mode: str = "mixed", progress: bool = True,
             ) -> PopulateStats:
    """Add builds round-robin over the builders until each has ``target`` builds."""
    cfg, db = master.cfg, master.db
    stats = PopulateStats()
    with db.write() as conn:
        slave_ids = {name: slave_connected(conn, name, {"host": "bench (populate.py)"})
                     for name in cfg.slaves}
        have = {r.name: int(r.next_number) for r in conn.execute(
            sa.select(builders_table.c.name, builders_table.c.next_number)
            .where(builders_table.c.name.in_(list(cfg.builders))))}
    todo = sum(max(target - have.get(b, 0), 0) for b in cfg.builders)
    if todo == 0:
        return stats
    start = time.perf_counter()
    next_report = start + 10
    try:
        for n in range(min(have.values(), default=0), target):
            for bname, bcfg in cfg.builders.items():
                if have.get(bname, 0) > n:
                    continue
                slavename = bcfg.slavenames[n % len(bcfg.slavenames)]
                use_change = mode == "change" or (mode == "mixed" and n % 2 == 0)
                run_one_build(master, bname, n, (slavename, slave_ids[slavename]), use_change,
                              fail=(n % 10 == 9), stats=stats)
            now = time.perf_counter()
            if progress and now >= next_report:
                rate = stats.builds / (now - start)
                print(f"  ... {stats.builds}/{todo} builds, {rate:.1f} builds/s, "
                      f"eta {(todo - stats.builds) / rate:.0f} s", flush=True)
                next_report = now + 10
    finally:
        stats.elapsed = time.perf_counter() - start
        with db.write() as conn:
            for name, sid in slave_ids.items():
                mark_disconnected(conn, sid, name)
    return stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(parser)
    parser.add_argument("--builders", type=int, default=DEFAULT_BUILDERS,
                        help=f"builders in a new master (default {DEFAULT_BUILDERS})")
    parser.add_argument("--builds-per-builder", type=int, default=None,
                        help=f"target builds per builder (default {DEFAULT_BUILDS}; "
                             f"--full: {FULL_BUILDS})")
    parser.add_argument("--full", action="store_true",
                        help=f"the issue's full size: {FULL_BUILDS} builds per builder")
    parser.add_argument("--mode", choices=("mixed", "change", "force"), default="mixed",
                        help="how builds are requested (mixed: alternate change / force)")
    args = parser.parse_args(argv)
    target = args.builds_per_builder or (FULL_BUILDS if args.full else DEFAULT_BUILDS)
    install_signal_handlers()

    master = default_master(args, builders=args.builders)
    try:
        before = master.history()
        banner("populate", basedir=f"{master.basedir}"
               f"{' (temporary)' if master.temporary else ' (kept)'}",
               database=master.db_label, builders=len(master.cfg.builders),
               slaves=len(master.cfg.slaves), target=f"{target} builds per builder "
               f"(history now {before})", mode=args.mode)
        stats = populate(master, target, args.mode)
        stats.report()
        counts = master.counts()
        print("rows: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        sqlite = Path(master.cfg.db_url.removeprefix("sqlite:///"))
        if master.db.is_sqlite and sqlite.exists():
            print(f"sqlite file: {sqlite.stat().st_size / 1e6:.1f} MB")
        if not master.temporary:
            print(f"kept: --basedir {master.basedir}")
    finally:
        master.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
