"""The master's processes under ``bbweb start``: memory, idle CPU, force -> finish latency.

Starts a real master with ``bbweb start`` on a populated history (made once with
``bench/bulk_history.py`` in ``--basedir`` and reused afterwards), with its local worker and
a ``trivial`` builder (one ``true`` step) added to the history's master.cfg, then prints:

* RSS and PSS of every process ``bbweb start`` runs (from ``/proc/PID/smaps_rollup``) and
  the master's total (every process but the local worker, which would run on another host),
  idle after start-up, at the peak while builds run, and after them;
* idle CPU: the master processes' own CPU time (``utime + stime`` from ``/proc/PID/stat``)
  over ``--idle-seconds``, as a percentage of one core (other processes' load on the
  machine does not count in a process's own CPU time);
* force -> finish of one trivial build on the idle master (``POST /builders/trivial/force``
  as the web form sends it, to the build's ``finished_at``; both on this host's clock),
  median, 90th percentile, min and max of ``--builds``, and the CPU time the master
  processes and the local worker used per build (the force request and the build, and the
  second of rest before the next force).

The last line is ``RESULT {json}``: figure name -> value, for ``bench/perf.py``.

    .venv/bin/python bench/processes.py                       # 20 builders x 200 builds
    .venv/bin/python bench/processes.py --full --basedir /tmp/bb-procs   # 20 x 2,000
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
import requests  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from bbweb.db.connection import Database  # noqa: E402
from bbweb.db.schema import builders, builds  # noqa: E402
from bbweb.mastercfg.master import load_master_config  # noqa: E402

MARK = "# --- added by bench/processes.py ---"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def prepare(basedir: Path, full: bool, port: int) -> None:
    """A populated history in ``basedir`` (made once), with a local worker, a trivial
    builder and ``port`` in its master.cfg."""
    if not (basedir / "master.cfg").exists():
        size = (["--builders", "20", "--builds", "2000", "--changes", "20000"] if full
                else ["--builders", "20", "--builds", "200", "--changes", "2000"])
        subprocess.run([sys.executable, str(Path(__file__).with_name("bulk_history.py")),
                        "--basedir", str(basedir), *size], check=True)
    cfg = (basedir / "master.cfg").read_text()
    cfg = cfg.split(MARK)[0]
    cfg += f"""{MARK}
c['slaves'].append(BuildSlave('local-worker', 'local-pw'))
_trivial = BuildFactory()
_trivial.addStep(ShellCommand(name='true', command=['true']))
c['builders'].append(BuilderConfig(name='trivial', slavenames=['local-worker'],
                                   factory=_trivial))
c['schedulers'].append(ForceScheduler(name='force-trivial', builderNames=['trivial']))
from bbweb.auth import Authz
c['status'] = [WebStatus(http_port='tcp:{port}:interface=127.0.0.1',
                         authz=Authz(default_action=True))]
"""
    (basedir / "master.cfg").write_text(cfg)


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        kids.setdefault(ppid, []).append(int(name))
    return kids


def tree(root: int) -> list[int]:
    kids = _children()
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(kids.get(pid, []))
    return out


def role(pid: int, root: int) -> str:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        parent = _ppid(pid)
        parent_cmd = Path(f"/proc/{parent}/cmdline").read_bytes().replace(
            b"\0", b" ").decode(errors="replace")
    except OSError:
        return "gone"
    if pid == root:  # bbweb start's own process: gunicorn's arbiter since it execs
        return "bbweb start"
    if " worker " in cmd or cmd.rstrip().endswith(" worker"):
        return "local worker"
    if " master " in cmd or " --daemon " in cmd:
        return "daemon"
    if parent == root and cmd == parent_cmd:  # forked by bbweb start: a web process
        return "web+daemon" if _runs_daemon(root) else "web worker"
    if "gunicorn" in cmd or "gunicorn" in parent_cmd:
        return "web worker" if "gunicorn" in parent_cmd else "web arbiter"
    return cmd.split(" ", 1)[-1][:40]


def _runs_daemon(root: int) -> bool:
    """Whether bbweb start's web process runs the daemon (no daemon process beside it)."""
    return not any(" --daemon " in _cmdline(p) or " master " in _cmdline(p)
                   for p in tree(root))


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _ppid(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as fh:
        return int(fh.read().rsplit(")", 1)[1].split()[1])


def snapshot(root: int) -> dict[int, tuple[str, float, float]]:
    out = {}
    for pid in tree(root):
        try:
            out[pid] = (role(pid, root), *_common.rss_pss_mib(pid))
        except OSError:
            continue
    return out


def print_memory(title: str, snap: dict[int, tuple[str, float, float]]) -> tuple[float, float]:
    print(f"-- memory, {title} (MiB)")
    rss = pss = 0.0
    for pid, (name, r, p) in sorted(snap.items()):
        print(f"   {name:<14} pid {pid:<8} RSS {r:6.1f}  PSS {p:6.1f}")
        if name != "local worker":
            rss += r
            pss += p
    print(f"   {'master total':<23} RSS {rss:6.1f}  PSS {pss:6.1f}")
    sys.stdout.flush()
    return rss, pss


def idle_cpu(root: int, seconds: float) -> tuple[float, dict[str, float], dict[str, Any]]:
    """Percent of one core the master processes used over ``seconds``: from clock ticks
    (``/proc/PID/stat``, 10 ms each: a few ticks make the figure), then per process the
    exact time on a CPU and the wake-ups per second (``/proc/PID/task/*/schedstat``), with
    the threads that woke most."""
    pids = {p: role(p, root) for p in tree(root)}
    before = {p: _common.cpu_seconds(p) for p in pids}
    runs = {p: _common.thread_runs(p) for p in pids}
    time.sleep(seconds)
    per: dict[str, float] = {}
    exact: dict[str, Any] = {}
    for pid, name in pids.items():
        try:
            used = _common.cpu_seconds(pid) - before[pid]
            after = _common.thread_runs(pid)
        except OSError:
            continue
        per[name] = per.get(name, 0.0) + used / seconds * 100
        ns = wakes = 0
        threads = []
        for tid, (ran, slices) in after.items():
            ran0, slices0 = runs[pid].get(tid, (0, 0))
            ns += ran - ran0
            wakes += slices - slices0
            if slices > slices0:
                threads.append(((slices - slices0) / seconds, tid, (ran - ran0) / 1e3))
        entry = exact.setdefault(name, {"cpu_percent": 0.0, "wakeups_s": 0.0, "threads": []})
        entry["cpu_percent"] += ns / 1e9 / seconds * 100
        entry["wakeups_s"] += wakes / seconds
        entry["threads"] += sorted(threads, reverse=True)
    total = sum(v for k, v in per.items() if k != "local worker")
    return total, per, exact


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--basedir", default=None,
                        help="the master (history made there once, then reused); default: "
                             "a temporary directory, deleted at the end")
    parser.add_argument("--full", action="store_true",
                        help="20 builders x 2,000 builds, 20,000 changes (default 200 builds)")
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument("--settle", type=float, default=10.0,
                        help="seconds to let the master settle after start-up")
    parser.add_argument("--builds", type=int, default=10, help="trivial builds to force")
    parser.add_argument("--web-workers", type=int, default=None,
                        help="passed to bbweb start (default: its own)")
    args = parser.parse_args(argv)
    _common.install_signal_handlers()

    tmp = None
    if args.basedir is None:
        tmp = tempfile.mkdtemp(prefix="bbweb-procs-")
        basedir = Path(tmp) / "master"
    else:
        basedir = Path(args.basedir).resolve()
    port = _common.free_port()
    prepare(basedir, args.full, port)
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "bbweb.cli", "start", str(basedir)]
    if args.web_workers is not None:
        cmd += ["--web-workers", str(args.web_workers)]
    log_path = basedir / "bench-start.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    db = Database(load_master_config(basedir).db_url)
    results: dict[str, Any] = {}
    try:
        with db.read() as conn:
            history = conn.execute(sa.select(sa.func.count()).select_from(builds)).scalar()

        def up() -> bool:
            if proc.poll() is not None:
                raise RuntimeError("bbweb start exited:\n" + log_path.read_text())
            try:
                return requests.get(url + "/health", timeout=2).ok
            except requests.RequestException:
                return False

        _common.wait_for(up, 120, "bbweb start to serve")
        _common.banner("bbweb start", basedir=basedir, builds_in_history=history,
                       url=url, pid=proc.pid)
        time.sleep(args.settle)

        rss, pss = print_memory("idle after start-up", snapshot(proc.pid))
        results.update(idle_rss_mib=round(rss, 1), idle_pss_mib=round(pss, 1))

        total, per, exact = idle_cpu(proc.pid, args.idle_seconds)
        print(f"-- idle CPU over {args.idle_seconds:g} s: master {total:.3f} % of one core "
              f"({', '.join(f'{k} {v:.3f}' for k, v in sorted(per.items()))})")
        results["idle_cpu_percent"] = round(total, 3)
        print("   exact (schedstat): " + ", ".join(
            f"{k} {v['cpu_percent']:.4f} % {v['wakeups_s']:.2f} wake-ups/s"
            for k, v in sorted(exact.items())))
        for name, entry in sorted(exact.items()):
            print(f"   {name:<14} threads (wake-ups/s, tid, us on CPU): " + ", ".join(
                f"{w:.2f} {tid} {us:.0f}" for w, tid, us in entry["threads"][:6]))
        master = [v for k, v in exact.items() if k != "local worker"]
        results.update(
            idle_cpu_exact_percent=round(sum(v["cpu_percent"] for v in master), 4),
            idle_wakeups_s=round(sum(v["wakeups_s"] for v in master), 2))

        session = requests.Session()
        token = CSRF.search(session.get(url + "/builders/trivial", timeout=10).text)
        if not token:
            raise RuntimeError("no force form on /builders/trivial")
        latencies = []
        peak_rss = peak_pss = 0.0
        roles = {p: role(p, proc.pid) for p in tree(proc.pid)}
        cpu_before = {p: _common.cpu_seconds(p) for p in roles}
        for _ in range(args.builds):
            time.sleep(1.0)  # an idle master: whatever polls has gone back to waiting
            with db.read() as conn:
                last = conn.execute(
                    sa.select(sa.func.max(builds.c.id))).scalar() or 0
            t0 = time.time()
            resp = session.post(url + "/builders/trivial/force",
                                data={"forcescheduler": "force-trivial",
                                      "csrf_token": token.group(1)},
                                allow_redirects=False, timeout=30)
            if resp.status_code != 303:
                raise RuntimeError(f"force answered {resp.status_code}: {resp.text[:300]}")

            def finished(last: int = last) -> Any:
                with db.read() as conn:
                    return conn.execute(
                        sa.select(builds.c.finished_at, builds.c.results)
                        .join(builders, builders.c.id == builds.c.builderid)
                        .where(builders.c.name == "trivial", builds.c.id > last,
                               builds.c.finished_at.isnot(None))).first()

            row = _common.wait_for(finished, 60, "the forced build to finish", interval=0.01)
            if row.results != 0:
                raise RuntimeError(f"the trivial build ended with result {row.results}")
            latencies.append((row.finished_at - t0) * 1000)
            snap = snapshot(proc.pid)
            r = sum(v[1] for v in snap.values() if v[0] != "local worker")
            p = sum(v[2] for v in snap.values() if v[0] != "local worker")
            peak_rss, peak_pss = max(peak_rss, r), max(peak_pss, p)
        cpu_used = {"master": 0.0, "local worker": 0.0}
        for pid, name in roles.items():
            try:
                used = _common.cpu_seconds(pid) - cpu_before[pid]
            except OSError:
                continue
            cpu_used["local worker" if name == "local worker" else "master"] += used
        per_build = {k: v / len(latencies) * 1000 for k, v in cpu_used.items()}
        print(f"-- CPU per forced build (the force request, the build, 1 s idle after it; "
              f"clock ticks): master {per_build['master']:.1f} ms, local worker "
              f"{per_build['local worker']:.1f} ms")
        results.update(force_cpu_ms_per_build=round(per_build["master"], 1),
                       force_worker_cpu_ms_per_build=round(per_build["local worker"], 1))
        p90 = statistics.quantiles(latencies, n=10)[-1] if len(latencies) > 1 \
            else latencies[0]
        print(f"-- force -> finish of a trivial build, {len(latencies)} builds: median "
              f"{statistics.median(latencies):.1f} ms, p90 {p90:.1f}, min "
              f"{min(latencies):.1f}, max {max(latencies):.1f}")
        results.update(force_finish_ms=round(statistics.median(latencies), 1),
                       force_finish_p90_ms=round(p90, 1))
        print(f"-- memory at the end of each build, highest: master RSS {peak_rss:.1f}, "
              f"PSS {peak_pss:.1f} MiB")
        results.update(build_peak_rss_mib=round(peak_rss, 1),
                       build_peak_pss_mib=round(peak_pss, 1))
        time.sleep(2.0)
        rss, pss = print_memory("after the builds", snapshot(proc.pid))
        results.update(after_rss_mib=round(rss, 1), after_pss_mib=round(pss, 1))
    finally:
        db.dispose()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if tmp is not None:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    results["loadavg_1m"] = round(os.getloadavg()[0], 2)
    print(f"-- load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("RESULT " + json.dumps(results, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
