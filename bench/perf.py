"""Every figure of the performance table in one command, printed as one table.

1. **History, once.** ``bench/bulk_history.py`` makes the history the table is measured on
   (20 builders x 2,000 builds, 5 steps each, 20,000 changes, SQLite) in
   ``CACHE/history``; later runs reuse it (delete the directory to make it again).
2. **Figures.** Each figure comes from its own bench script, run as a subprocess whose
   output goes to ``CACHE/logs/NAME.log``; its last line ``RESULT {json}`` holds the
   figures (see bench/README.md). A script that is not there is "not measured (bench/X.py
   missing)"; one that ends without a RESULT line is "not measured" with the reason. The
   scripts that read history get ``--basedir CACHE/history``; the others make their own
   temporary masters.
3. **PostgreSQL beside SQLite** for the change hooks, on a throwaway local cluster (the
   test suite's, ``tests/support/pgcluster.py``), when the server programs are installed
   (``--no-pg`` skips it).
4. **The table**, in Markdown (README's "Performance" section shows one), with the machine
   it ran on and its load average before and after (a busy, shared machine makes every
   figure slower). The figures are saved to ``CACHE/last.json``; ``--compare FILE`` (an
   earlier run's JSON, e.g. of another branch) adds that run's column and the ratios.

A Buildbot 4 installed beside bbweb (the ``buildbot`` package in this interpreter, or a
``buildbot`` program on PATH) is detected and named; this command does not drive a
Buildbot master, so its column is only filled from ``--compare`` with a JSON of the same
keys.

    .venv/bin/python bench/perf.py                      # ~10 minutes on 2 cores
    .venv/bin/python bench/perf.py --only hooks,ingest  # some rows
    .venv/bin/python bench/perf.py --compare /tmp/bbweb-perf/before.json
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
DEFAULT_CACHE = Path(os.environ.get("BBWEB_PERF_CACHE", "/tmp/bbweb-perf"))
HISTORY = ["--builders", "20", "--builds", "2000", "--changes", "20000"]


@dataclass
class Job:
    """One run of one bench script."""

    key: str  # what --only names
    script: str  # file name in bench/
    args: Callable[[Path, str | None], list[str]]  # (history basedir, pg url) -> argv
    timeout: float = 900.0
    history: bool = False  # needs the cached history
    pg: bool = False  # run on PostgreSQL (skipped without a cluster)


JOBS = [
    Job("views", "views.py", lambda h, _: ["--basedir", str(h), "--url", "/grid",
                                           "--url", "/console", "--repeat", "30"],
        history=True),
    Job("json", "json_builds.py", lambda h, _: ["--basedir", str(h), "--sizes", "2000"],
        history=True, timeout=1800),
    Job("forced", "engine_overhead.py", lambda h, _: ["--builds", "200", "--workers", "2"]),
    Job("download", "pages.py", lambda h, _: ["--log-only", "--log-mb", "50"]),
    Job("processes", "processes.py", lambda h, _: ["--basedir", str(h)], history=True),
    Job("hooks", "github_hook.py", lambda h, _: ["--requests", "1000"]),
    Job("hooks", "change_hook.py", lambda h, _: ["--requests", "1000"]),
    Job("hooks-pg", "github_hook.py", lambda h, pg: ["--requests", "1000", "--db-url",
                                                      str(pg)], pg=True),
    Job("hooks-pg", "change_hook.py", lambda h, pg: ["--requests", "1000", "--db-url",
                                                      str(pg)], pg=True),
    Job("ingest", "log_ingest.py", lambda h, _: ["--mib", "50"]),
]


def job_name(job: Job) -> str:
    return job.script.removesuffix(".py") + ("-pg" if job.pg else "")


# -- running -------------------------------------------------------------------------------------

def run_job(job: Job, history: Path, pg_url: str | None, logdir: Path) -> dict[str, Any] | str:
    """The script's RESULT figures, or why there are none."""
    path = BENCH / job.script
    if not path.exists():
        return f"not measured (bench/{job.script} missing)"
    cmd = [sys.executable, str(path), *job.args(history, pg_url)]
    log = logdir / f"{job_name(job)}.log"
    started = time.monotonic()
    with log.open("w") as out:
        out.write("$ " + " ".join(cmd) + "\n")
        out.flush()
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            rc = proc.wait(timeout=job.timeout)
        except subprocess.TimeoutExpired:
            _stop_group(proc)
            return f"not measured (bench/{job.script} ran over {job.timeout:.0f} s; {log})"
        except BaseException:
            _stop_group(proc)
            raise
    figures = None
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("RESULT "):
            try:
                figures = json.loads(line[len("RESULT "):])
            except ValueError:
                figures = None
    took = time.monotonic() - started
    print(f"  {job_name(job):22} {took:6.0f} s  exit {rc}  {log}", flush=True)
    if not isinstance(figures, dict):
        return f"not measured (bench/{job.script} printed no RESULT line, exit {rc}; {log})"
    return figures


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the script's process group (the scripts stop what they started on it),
    then SIGKILL what is left."""
    for sig, wait in ((signal.SIGTERM, 30.0), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def ensure_history(cache: Path, logdir: Path) -> Path:
    history = cache / "history"
    if (history / "master.cfg").is_file() and (history / "bench-history.done").is_file():
        return history
    if history.exists():
        shutil.rmtree(history)  # an interrupted earlier run
    print(f"making the history in {history} (once; bench/bulk_history.py {' '.join(HISTORY)})",
          flush=True)
    log = logdir / "bulk_history.log"
    cmd = [sys.executable, str(BENCH / "bulk_history.py"), "--basedir", str(history), *HISTORY]
    t0 = time.monotonic()
    with log.open("w") as out:
        rc = subprocess.call(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    if rc != 0:
        raise SystemExit(f"bench/bulk_history.py failed (exit {rc}); see {log}")
    (history / "bench-history.done").write_text(" ".join(HISTORY) + "\n")
    print(f"  history made in {time.monotonic() - t0:.0f} s", flush=True)
    return history


class ThrowawayPg:
    """The test suite's throwaway PostgreSQL cluster, and a fresh database per URL asked."""

    def __init__(self, workdir: Path) -> None:
        sys.path.insert(0, str(REPO))
        sys.path.insert(0, str(BENCH))
        from _common import sibling_pg_url

        from tests.support.pgcluster import start_cluster

        self._sibling = sibling_pg_url
        self.cluster = start_cluster(workdir)
        self.count = 0

    def fresh_url(self) -> str:
        self.count += 1
        url, _name = self._sibling(self.cluster.url, f"_perf{self.count}")
        return str(url)

    def stop(self) -> None:
        self.cluster.stop()


def pg_available() -> bool:
    sys.path.insert(0, str(REPO))
    try:
        from tests.support.pgcluster import find_pg_bin
    except ImportError:
        return False
    return find_pg_bin() is not None


# -- the machine and Buildbot 4 --------------------------------------------------------------

def machine() -> dict[str, Any]:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) // 1024
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_mib": mem,
            "system": f"{platform.system()} {platform.release()}",
            "python": platform.python_version(), "sqlite": sqlite3.sqlite_version,
            "load_before": round(os.getloadavg()[0], 2)}


def buildbot4() -> str | None:
    """Where a Buildbot 4 is installed beside bbweb, if one is."""
    if importlib.util.find_spec("buildbot") is not None:
        try:
            version = importlib.metadata.version("buildbot")
        except importlib.metadata.PackageNotFoundError:
            version = "?"
        if version.startswith("4."):
            return f"Buildbot {version} (the buildbot package of {sys.executable})"
    program = shutil.which("buildbot")
    if program:
        try:
            out = subprocess.run([program, "--version"], capture_output=True, text=True,
                                 timeout=30).stdout
        except (OSError, subprocess.TimeoutExpired):
            out = ""
        for line in out.splitlines():
            if line.lower().startswith("buildbot version") and ": 4." in line:
                return f"Buildbot {line.split(':', 1)[1].strip()} ({program})"
    return None


# -- the table -----------------------------------------------------------------------------------

def _num(value: Any, digits: int = 0) -> str:
    if isinstance(value, int | float):
        return f"{value:,.{digits}f}"
    return "?"


def _pair(fig: dict[str, Any], a: str, b: str, digits: int = 0) -> str | None:
    if a in fig and b in fig:
        return f"{_num(fig[a], digits)} / {_num(fig[b], digits)}"
    return None


# (workload, job names whose figures it shows, format, the keys a ratio is taken of)
Row = tuple[str, tuple[str, ...], Callable[[dict[str, Any]], str | None], tuple[str, ...]]
ROWS: list[Row] = [
    ("grid / console page (server time, median)", ("views",),
     lambda f: (_pair(f, "view_grid_ms", "view_console_ms", 1) or "") + " ms"
     if "view_grid_ms" in f else None, ("view_grid_ms", "view_console_ms")),
    ("200 forced builds on 2 workers", ("engine_overhead",),
     lambda f: f"{_num(f.get('forced_builds_per_min'))} builds/min"
     if "forced_builds_per_min" in f else None, ("forced_builds_per_min",)),
    ("50 MiB log download (text; serving process RSS growth)", ("pages",),
     lambda f: f"{_num(f.get('log_download_mb_s'))} MB/s "
               f"(+{_num(f.get('log_download_growth_mib'), 1)} MiB)"
     if "log_download_mb_s" in f else None, ("log_download_mb_s",)),
    ("one build force → finish, idle", ("processes",),
     lambda f: f"{_num(f.get('force_finish_ms'))} ms" if "force_finish_ms" in f else None,
     ("force_finish_ms",)),
    ("GitHub push hook (2 commits), c=1 / c=8, SQLite", ("github_hook",),
     lambda f: (_pair(f, "github_hook_changes_s_c1", "github_hook_changes_s_c8") or "?")
     + " changes/s", ("github_hook_changes_s_c1", "github_hook_changes_s_c8")),
    ("GitHub push hook (2 commits), c=1 / c=8, PostgreSQL", ("github_hook-pg",),
     lambda f: (_pair(f, "github_hook_changes_s_c1", "github_hook_changes_s_c8") or "?")
     + " changes/s", ("github_hook_changes_s_c1", "github_hook_changes_s_c8")),
    ("base hook, c=1 / c=8, SQLite", ("change_hook",),
     lambda f: (_pair(f, "base_hook_changes_s_c1", "base_hook_changes_s_c8") or "?")
     + " changes/s", ("base_hook_changes_s_c1", "base_hook_changes_s_c8")),
    ("base hook, c=1 / c=8, PostgreSQL", ("change_hook-pg",),
     lambda f: (_pair(f, "base_hook_changes_s_c1", "base_hook_changes_s_c8") or "?")
     + " changes/s", ("base_hook_changes_s_c1", "base_hook_changes_s_c8")),
    ("`/json/builders/B/builds?select=-1…-20`", ("json_builds",), lambda f: None, ()),
    ("build log ingest (a step printing 50 MiB; master peak over idle)", ("log_ingest",),
     lambda f: f"{_num(f.get('ingest_mb_s'))} MB/s (+{_num(f.get('ingest_growth_mib'), 1)} "
               "MiB)" if "ingest_mb_s" in f else None, ("ingest_mb_s",)),
    ("idle, all master processes (RSS)", ("processes",),
     lambda f: f"{_num(f.get('idle_rss_mib'))} MiB" if "idle_rss_mib" in f else None,
     ("idle_rss_mib",)),
]


def cell(results: dict[str, Any], jobs: tuple[str, ...],
         fmt: Callable[[dict[str, Any]], str | None]) -> str:
    for name in jobs:
        value = results.get(name)
        if value is None:
            return "not run"
        if isinstance(value, str):
            return value
        shown = fmt(value)
        if shown is None:  # a script whose keys this table does not know: show them all
            shown = ", ".join(f"{k} {v}" for k, v in sorted(value.items()))
        return shown
    return "not run"


def ratio(now: dict[str, Any], then: dict[str, Any], jobs: tuple[str, ...],
          keys: tuple[str, ...]) -> str:
    out = []
    for name in jobs:
        a, b = now.get(name), then.get(name)
        if not (isinstance(a, dict) and isinstance(b, dict)):
            return ""
        for key in keys:
            x, y = a.get(key), b.get(key)
            if isinstance(x, int | float) and isinstance(y, int | float) and x and y:
                out.append(f"{x / y:.2f}×")
    return " / ".join(out)


def print_table(results: dict[str, Any], info: dict[str, Any], compare: dict[str, Any] | None,
                compare_label: str) -> None:
    print()
    head = "| workload | bbweb |"
    rule = "|---|---|"
    if compare is not None:
        head += f" {compare_label} | this / that |"
        rule += "---|---|"
    print(head)
    print(rule)
    for label, jobs, fmt, keys in ROWS:
        line = f"| {label} | {cell(results, jobs, fmt)} |"
        if compare is not None:
            line += (f" {cell(compare.get('results', {}), jobs, fmt)} | "
                     f"{ratio(results, compare.get('results', {}), jobs, keys)} |")
        print(line)
    print()
    print(f"Machine: {info['cpu']}, {info['cores']} cores, {info['memory_mib']:,} MiB; "
          f"{info['system']}; Python {info['python']}, SQLite {info['sqlite']}. Load "
          f"average {info['load_before']} before and {info.get('load_after', '?')} after"
          + (" (the machine was shared while measuring)" if max(
              info["load_before"], info.get("load_after", 0)) > 0.7 else "") + ".")
    print("Ratios are this run's figure over the other's (for times, below 1 is faster).")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE,
                        help=f"where the history, logs and results live (default "
                             f"{DEFAULT_CACHE}, or $BBWEB_PERF_CACHE)")
    parser.add_argument("--only", default=None,
                        help="comma-separated rows to run: "
                             + ", ".join(sorted({j.key for j in JOBS})))
    parser.add_argument("--no-pg", action="store_true", help="no PostgreSQL figures")
    parser.add_argument("--compare", type=Path, default=None,
                        help="an earlier run's JSON (CACHE/last.json of it) to show beside")
    parser.add_argument("--label", default=None, help="what to call --compare's column")
    args = parser.parse_args(argv)
    only = set(args.only.split(",")) if args.only else None
    jobs = [j for j in JOBS if only is None or j.key in only]
    if args.no_pg:
        jobs = [j for j in jobs if not j.pg]
    compare = json.loads(args.compare.read_text()) if args.compare else None

    cache = args.cache.resolve()
    logdir = cache / "logs"
    logdir.mkdir(parents=True, exist_ok=True)
    info = machine()
    bb4 = buildbot4()
    print(f"bench/perf.py: cache {cache}; {info['cpu']}, {info['cores']} cores, "
          f"load average {info['load_before']}", flush=True)
    print(f"Buildbot 4: {bb4 or 'not installed beside bbweb'}"
          + ("; its figures are shown only from --compare (this command does not drive a "
             "Buildbot master)" if bb4 else ""), flush=True)

    history = cache / "history"
    if any(j.history for j in jobs):
        history = ensure_history(cache, logdir)
    pg: ThrowawayPg | None = None
    results: dict[str, Any] = {}
    try:
        if any(j.pg for j in jobs):
            if pg_available():
                pg = ThrowawayPg(cache / "pg")
            else:
                for j in jobs:
                    if j.pg:
                        results[job_name(j)] = ("not measured (the PostgreSQL server "
                                                "programs are not installed)")
        print("running:", flush=True)
        for job in jobs:
            if job.pg and pg is None:
                continue
            results[job_name(job)] = run_job(job, history, pg.fresh_url() if job.pg and pg
                                             else None, logdir)
    finally:
        if pg is not None:
            pg.stop()
    info["load_after"] = round(os.getloadavg()[0], 2)
    info["buildbot4"] = bb4
    record = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": info,
              "results": results}
    (cache / "last.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    label = args.label or (f"{compare.get('when', 'earlier run')}" if compare else "")
    print_table(results, info, compare, label)
    print(f"\nfigures saved to {cache / 'last.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
