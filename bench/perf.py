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

5. **Buildbot 4 side by side.** With a Buildbot 4 installed in a virtualenv of its own
   (``--buildbot-venv DIR``, default ``CACHE/buildbot4-venv``; ``--install-buildbot``
   makes it with ``bench/buildbot4/install.py``), each row is also measured on a Buildbot
   4 master by its counterpart in ``bench/buildbot4/`` (the same workload, the same
   history written into Buildbot's own database in ``CACHE/buildbot4/history``), run
   right after bbweb's script so that the two alternate under the same load; the table
   gets a Buildbot column and the ratio bbweb / Buildbot, said in words. Rows Buildbot is
   not measured on say so. ``--pairs N`` runs each row N times, alternating, and shows
   each figure's median.

    .venv/bin/python bench/perf.py                      # ~10 minutes on 2 cores
    .venv/bin/python bench/perf.py --install-buildbot   # and Buildbot 4.3 beside it
    .venv/bin/python bench/perf.py --only hooks,ingest  # some rows
    .venv/bin/python bench/perf.py --compare /tmp/bbweb-perf/before.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import sqlite3
import statistics
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


@dataclass
class Bb4Job:
    """The Buildbot 4 counterpart of one bbweb job (a script in bench/buildbot4/, run with
    bbweb's interpreter; it drives the Buildbot virtualenv's programs)."""

    script: str
    args: Callable[[Path], list[str]]  # (the Buildbot history master's basedir) -> argv
    timeout: float = 1800.0


# bbweb job name -> its Buildbot 4 counterpart; a job without one has no Buildbot figure
BB4_JOBS: dict[str, Bb4Job] = {
    "views": Bb4Job("views.py", lambda h: ["--history", str(h), "--repeat", "7"]),
    "json_builds": Bb4Job("rest_builds.py", lambda h: ["--history", str(h)]),
    "engine_overhead": Bb4Job("forced.py", lambda h: ["--builds", "200", "--workers", "2"]),
    "pages": Bb4Job("log_download.py", lambda h: ["--log-mb", "50"]),
    "processes": Bb4Job("idle.py", lambda h: ["--history", str(h)]),
    # 300 deliveries a level, not 1,000: Buildbot took 40-70 ms of CPU per change here
    "github_hook": Bb4Job("github_hook.py", lambda h: ["--requests", "300"]),
    "log_ingest": Bb4Job("log_ingest.py", lambda h: ["--mib", "50"]),
}


# -- running -------------------------------------------------------------------------------------

def run_job(job: Job, history: Path, pg_url: str | None, logdir: Path) -> dict[str, Any] | str:
    """The script's RESULT figures, or why there are none."""
    path = BENCH / job.script
    if not path.exists():
        return f"not measured (bench/{job.script} missing)"
    return run_script(path, job.args(history, pg_url), logdir / f"{job_name(job)}.log",
                      job_name(job), job.timeout)


def run_bb4_job(name: str, venv: Path, cache: Path, logdir: Path) -> dict[str, Any] | str:
    """The Buildbot 4 figures of bbweb's job ``name``, or why there are none."""
    job = BB4_JOBS.get(name)
    if job is None:
        return "not measured on Buildbot"
    path = BENCH / "buildbot4" / job.script
    args = ["--venv", str(venv), "--workdir", str(cache / "buildbot4" / "masters"),
            *job.args(cache / "buildbot4" / "history")]
    return run_script(path, args, logdir / f"buildbot4-{name}.log", f"  buildbot4 {name}",
                      job.timeout)


def run_script(path: Path, args: list[str], log: Path, label: str,
               timeout: float) -> dict[str, Any] | str:
    script = path.relative_to(BENCH)
    cmd = [sys.executable, str(path), *args]
    started = time.monotonic()
    with log.open("w") as out:
        out.write("$ " + " ".join(cmd) + "\n")
        out.flush()
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _stop_group(proc)
            return f"not measured (bench/{script} ran over {timeout:.0f} s; {log})"
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
    print(f"  {label:22} {took:6.0f} s  exit {rc}  {log}", flush=True)
    if not isinstance(figures, dict):
        return f"not measured (bench/{script} printed no RESULT line, exit {rc}; {log})"
    return figures


def median_figures(runs: list[dict[str, Any] | str]) -> dict[str, Any] | str:
    """One row's figures from several runs: each number the median of the runs that gave
    it (other values from the first run); the first failure when no run succeeded."""
    good = [r for r in runs if isinstance(r, dict)]
    if not good:
        return runs[0]
    out: dict[str, Any] = dict(good[0])
    for key, value in good[0].items():
        values = [r[key] for r in good if isinstance(r.get(key), int | float)
                  and not isinstance(r.get(key), bool)]
        if isinstance(value, int | float) and not isinstance(value, bool) and values:
            out[key] = round(statistics.median(values), 3)
    if len(runs) > 1:
        out["runs"] = len(good)
    return out


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


def buildbot4(venv: Path) -> str | None:
    """The Buildbot 4 version installed in the virtualenv ``venv``, if one is."""
    sys.path.insert(0, str(BENCH / "buildbot4"))
    from bb4 import Venv

    return Venv(venv).version()


# -- the table -----------------------------------------------------------------------------------

def _num(value: Any, digits: int = 0) -> str:
    if isinstance(value, int | float):
        return f"{value:,.{digits}f}"
    return "?"


def _pair(fig: dict[str, Any], a: str, b: str, digits: int = 0) -> str | None:
    if a in fig and b in fig:
        return f"{_num(fig[a], digits)} / {_num(fig[b], digits)}"
    return None


def _json_cell(f: dict[str, Any]) -> str | None:
    if "json_select20_c1_rps" not in f:
        return None
    out = (f"{_num(f.get('json_select20_c1_rps'))} / {_num(f.get('json_select20_c8_rps'))} "
           f"req/s (c=1 median {_num(f.get('json_select20_c1_median_ms'), 1)} ms")
    if "json_select20_c1_server_cpu_ms" in f:
        out += f", server CPU {_num(f.get('json_select20_c1_server_cpu_ms'), 1)} ms/req"
    size = f.get("rest_select20_bytes")
    return out + (f", {size / 1024:.0f} KiB)" if isinstance(size, int) else ")")


def _json_reads_cell(f: dict[str, Any]) -> str | None:
    names = ("builders", "slaves", "build")
    if not all(f"json_{n}_c8_rps" in f for n in names):
        return None
    rates = " / ".join(_num(f.get(f"json_{n}_c8_rps")) for n in names)
    cpu = " / ".join(_num(f.get(f"json_{n}_c8_server_cpu_ms"), 2) for n in names)
    return f"{rates} req/s (server CPU {cpu} ms/req)"


def _views_cell(f: dict[str, Any]) -> str | None:
    if "view_grid_ms" not in f:
        return None
    out = (_pair(f, "view_grid_ms", "view_console_ms", 1) or "") + " ms"
    if "view_grid_cpu_ms" in f:
        out += f" (server CPU {_pair(f, 'view_grid_cpu_ms', 'view_console_cpu_ms')} ms)"
    return out


# (workload, job names whose figures it shows, format, the keys a ratio is taken of, and
# what the figures are: "time", "memory" and "CPU" are better lower, "rate" higher)
Row = tuple[str, tuple[str, ...], Callable[[dict[str, Any]], str | None], tuple[str, ...], str]
ROWS: list[Row] = [
    ("grid / console page data (median)", ("views",), _views_cell,
     ("view_grid_ms", "view_console_ms"), "time"),
    ("200 forced builds on 2 workers", ("engine_overhead",),
     lambda f: f"{_num(f.get('forced_builds_per_min'))} builds/min"
     if "forced_builds_per_min" in f else None, ("forced_builds_per_min",), "rate"),
    ("50 MiB log download (serving process RSS growth)", ("pages",),
     lambda f: f"{_num(f.get('log_download_mb_s'), 1)} MiB/s "
               f"(+{_num(f.get('log_download_growth_mib'), 1)} MiB)"
     if "log_download_mb_s" in f else None, ("log_download_mb_s",), "rate"),
    ("one build force → finish, idle", ("processes",),
     lambda f: f"{_num(f.get('force_finish_ms'))} ms" if "force_finish_ms" in f else None,
     ("force_finish_ms",), "time"),
    ("GitHub push hook (2 commits), c=1 / c=8, SQLite", ("github_hook",),
     lambda f: (_pair(f, "github_hook_changes_s_c1", "github_hook_changes_s_c8") or "?")
     + " changes/s", ("github_hook_changes_s_c1", "github_hook_changes_s_c8"), "rate"),
    ("GitHub push hook (2 commits), c=1 / c=8, PostgreSQL", ("github_hook-pg",),
     lambda f: (_pair(f, "github_hook_changes_s_c1", "github_hook_changes_s_c8") or "?")
     + " changes/s", ("github_hook_changes_s_c1", "github_hook_changes_s_c8"), "rate"),
    ("base hook, c=1 / c=8, SQLite", ("change_hook",),
     lambda f: (_pair(f, "base_hook_changes_s_c1", "base_hook_changes_s_c8") or "?")
     + " changes/s", ("base_hook_changes_s_c1", "base_hook_changes_s_c8"), "rate"),
    ("base hook, c=1 / c=8, PostgreSQL", ("change_hook-pg",),
     lambda f: (_pair(f, "base_hook_changes_s_c1", "base_hook_changes_s_c8") or "?")
     + " changes/s", ("base_hook_changes_s_c1", "base_hook_changes_s_c8"), "rate"),
    ("last 20 builds of a builder, c=1 / c=8 (bbweb: `/json/builders/B/builds?select=-1…-20`;"
     " Buildbot: `/api/v2/builders/N/builds?order=-number&limit=20`)", ("json_builds",),
     _json_cell, ("json_select20_c1_rps", "json_select20_c8_rps"), "rate"),
    ("`/json/builders`, `/json/slaves`, `/json/builders/B/builds/-1`, c=8", ("json_builds",),
     _json_reads_cell, ("json_builders_c8_rps", "json_slaves_c8_rps", "json_build_c8_rps"),
     "rate"),
    ("build log ingest (a step printing 50 MiB; master peak over idle)", ("log_ingest",),
     lambda f: f"{_num(f.get('ingest_mb_s'), 1)} MB/s (+{_num(f.get('ingest_growth_mib'), 1)} "
               f"MiB; master CPU {_num(f.get('ingest_master_cpu_s'), 1)} s)"
     if "ingest_mb_s" in f else None, ("ingest_mb_s",), "rate"),
    ("idle, all master processes (RSS / PSS)", ("processes",),
     lambda f: f"{_num(f.get('idle_rss_mib'))} / {_num(f.get('idle_pss_mib'))} MiB"
     if "idle_rss_mib" in f else None, ("idle_rss_mib",), "memory"),
    ("idle CPU, all master processes (% of one core)", ("processes",),
     lambda f: f"{_num(f.get('idle_cpu_percent'), 2)} %" if "idle_cpu_percent" in f else None,
     ("idle_cpu_percent",), "CPU"),
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


def _pairs(now: dict[str, Any], then: dict[str, Any], jobs: tuple[str, ...],
           keys: tuple[str, ...]) -> list[tuple[float, float] | None]:
    out: list[tuple[float, float] | None] = []
    for name in jobs:
        a, b = now.get(name), then.get(name)
        if not (isinstance(a, dict) and isinstance(b, dict)):
            return []
        for key in keys:
            x, y = a.get(key), b.get(key)
            ok = isinstance(x, int | float) and isinstance(y, int | float) and x and y
            out.append((float(x), float(y)) if ok else None)
    return out


def ratio(now: dict[str, Any], then: dict[str, Any], jobs: tuple[str, ...],
          keys: tuple[str, ...]) -> str:
    return " / ".join(f"{p[0] / p[1]:.2f}×" for p in _pairs(now, then, jobs, keys) if p)


def in_words(x: float, y: float, sense: str) -> str:
    """bbweb's figure ``x`` over Buildbot's ``y``, and what it means."""
    r = x / y
    if sense in ("memory", "CPU"):
        return f"{_ratio(r)} ({r:.1f}× the {sense})"
    faster = r >= 1 if sense == "rate" else r <= 1
    factor = r if sense == "rate" else 1 / r
    if not faster:
        factor = 1 / factor
    return f"{_ratio(r)} ({factor:.3g}× {'faster' if faster else 'slower'})"


def _ratio(r: float) -> str:
    """Two significant figures at least (0.0039, 0.59, 12.5, 222)."""
    return f"{r:.2g}" if r < 0.1 else f"{r:.2f}" if r < 10 else f"{r:.3g}"


def bb4_ratio(now: dict[str, Any], bb: dict[str, Any], jobs: tuple[str, ...],
              keys: tuple[str, ...], sense: str) -> str:
    if not any(isinstance(bb.get(j), dict) for j in jobs):
        return ""
    out = []
    for name in jobs:
        a, b = now.get(name), bb.get(name)
        for key in keys:
            x = a.get(key) if isinstance(a, dict) else None
            y = b.get(key) if isinstance(b, dict) else None
            if isinstance(x, int | float) and isinstance(y, int | float) and x and y:
                out.append(in_words(x, y, sense))
            elif isinstance(x, int | float) and x and y == 0:
                out.append("— (Buildbot's is 0)")
            else:
                out.append("—")
    return " / ".join(out)


def _has_any(results: dict[str, Any], jobs: tuple[str, ...], keys: tuple[str, ...]) -> bool:
    """Whether a run's ``results`` hold any figure of a row (or the reason one is missing)."""
    for name in jobs:
        value = results.get(name)
        if isinstance(value, str) or (isinstance(value, dict) and any(k in value for k in keys)):
            return True
    return False


def print_table(results: dict[str, Any], info: dict[str, Any], compare: dict[str, Any] | None,
                compare_label: str, bb4: dict[str, Any] | None = None) -> None:
    print()
    head = "| workload | bbweb |"
    rule = "|---|---|"
    if bb4 is not None:
        head += f" Buildbot {info.get('buildbot4') or '4'} | bbweb / Buildbot |"
        rule += "---|---|"
    if compare is not None:
        head += f" {compare_label} | this / that |"
        rule += "---|---|"
    print(head)
    print(rule)
    for label, jobs, fmt, keys, sense in ROWS:
        line = f"| {label} | {cell(results, jobs, fmt)} |"
        if bb4 is not None:
            if _has_any(bb4, jobs, keys):
                line += (f" {cell(bb4, jobs, fmt)} | "
                         f"{bb4_ratio(results, bb4, jobs, keys, sense)} |")
            else:  # (no such job there, or its Buildbot script measures other things)
                line += " not measured on Buildbot |  |"
        if compare is not None:
            line += (f" {cell(compare.get('results', {}), jobs, fmt)} | "
                     f"{ratio(results, compare.get('results', {}), jobs, keys)} |")
        print(line)
    print()
    print(f"Machine: {info['cpu']}, {info['cores']} cores, {info['memory_mib']:,} MiB; "
          f"{info['system']}; Python {info['python']}, SQLite {info['sqlite']}. Load "
          f"average {info['load_before']} before"
          + (" (the machine was shared while measuring)" if info["load_before"] > 0.7
             else "") + f" and {info.get('load_after', '?')} just after (the rows' own "
          "load: the busiest keep both cores at work).")
    if bb4 is not None:
        print("bbweb / Buildbot: bbweb's figure over Buildbot's, the two run one after the "
              "other on the same history; for times below 1 is faster, for rates above 1.")
    if compare is not None:
        print("this / that: this run's figure over the other's (for times, below 1 is "
              "faster).")


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
    parser.add_argument("--buildbot-venv", type=Path, default=None,
                        help="the virtualenv holding Buildbot 4 (default: "
                             "CACHE/buildbot4-venv when it holds one)")
    parser.add_argument("--install-buildbot", action="store_true",
                        help="install Buildbot 4.3 into --buildbot-venv first "
                             "(bench/buildbot4/install.py)")
    parser.add_argument("--pairs", type=int, default=1,
                        help="run each row this many times (bbweb, Buildbot, bbweb, …) and "
                             "show the medians (default 1)")
    parser.add_argument("--no-buildbot", action="store_true",
                        help="bbweb's figures only, even with a Buildbot 4 installed")
    parser.add_argument("--show", type=Path, default=None,
                        help="print the table of a saved run (CACHE/last.json of it) and "
                             "run nothing")
    args = parser.parse_args(argv)
    if args.show is not None:
        saved = json.loads(args.show.read_text())
        compare = json.loads(args.compare.read_text()) if args.compare else None
        bb_saved = saved.get("buildbot4_results") if saved["machine"].get("buildbot4") else None
        print(f"figures of {saved.get('when', 'an earlier run')}")
        print_table(saved["results"], saved["machine"], compare,
                    args.label or (compare or {}).get("when", "earlier run"), bb_saved)
        return 0
    only = set(args.only.split(",")) if args.only else None
    jobs = [j for j in JOBS if only is None or j.key in only]
    if args.no_pg:
        jobs = [j for j in jobs if not j.pg]
    compare = json.loads(args.compare.read_text()) if args.compare else None

    cache = args.cache.resolve()
    logdir = cache / "logs"
    logdir.mkdir(parents=True, exist_ok=True)
    info = machine()
    bb_venv = (args.buildbot_venv or cache / "buildbot4-venv").resolve()
    if args.install_buildbot and not args.no_buildbot:
        rc = subprocess.call([sys.executable, str(BENCH / "buildbot4" / "install.py"),
                              "--venv", str(bb_venv)])
        if rc != 0:
            raise SystemExit(f"bench/buildbot4/install.py failed (exit {rc})")
    bb4 = None if args.no_buildbot else buildbot4(bb_venv)
    print(f"bench/perf.py: cache {cache}; {info['cpu']}, {info['cores']} cores, "
          f"load average {info['load_before']}", flush=True)
    print("Buildbot 4: " + (f"{bb4} in {bb_venv}; each row is run on it right after bbweb"
                             if bb4 else f"not measured (none in {bb_venv}; "
                             "--install-buildbot makes one)"), flush=True)

    history = cache / "history"
    if any(j.history for j in jobs):
        history = ensure_history(cache, logdir)
    pg: ThrowawayPg | None = None
    results: dict[str, Any] = {}
    bb_results: dict[str, Any] = {}
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
            name = job_name(job)
            ours, theirs = [], []
            for _ in range(args.pairs):
                ours.append(run_job(job, history, pg.fresh_url() if job.pg and pg else None,
                                    logdir))
                if bb4 and name in BB4_JOBS:  # alternate: Buildbot right after bbweb
                    theirs.append(run_bb4_job(name, bb_venv, cache, logdir))
            results[name] = median_figures(ours)
            if theirs:
                bb_results[name] = median_figures(theirs)
    finally:
        if pg is not None:
            pg.stop()
    info["load_after"] = round(os.getloadavg()[0], 2)
    info["buildbot4"] = bb4
    record = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": info,
              "results": results}
    if bb4:
        record["buildbot4_results"] = bb_results
    (cache / "last.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    label = args.label or (f"{compare.get('when', 'earlier run')}" if compare else "")
    print_table(results, info, compare, label, bb_results if bb4 else None)
    print(f"\nfigures saved to {cache / 'last.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
