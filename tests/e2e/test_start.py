"""`bbweb create-master` + `bbweb start`: a newcomer sees a build happen, Ctrl-C stops all."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests
import sqlalchemy as sa

from bbweb.db.connection import Database
from bbweb.db.schema import builds
from bbweb.launcher import DEFAULT_LISTEN, gunicorn_settings
from bbweb.mastercfg.master import load_master_config
from bbweb.supervisor import PLAN_VAR, Plan
from tests.e2e.conftest import free_port, wait_for


def processes_mentioning(text: str) -> list[int]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmdline = fh.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{pid}/stat") as fh:
                state = fh.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            found.append(int(pid))
    return found


def test_create_master_and_start(tmp_path):
    basedir = tmp_path / "newcomer"
    port = free_port()
    subprocess.run([sys.executable, "-m", "bbweb.cli", "create-master", str(basedir),
                    "--port", str(port)], check=True, capture_output=True, timeout=60)
    log = (tmp_path / "start.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "bbweb.cli", "start", str(basedir)],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    db = Database(load_master_config(basedir).db_url)
    try:
        def healthy() -> bool:
            assert proc.poll() is None, (tmp_path / "start.log").read_text()
            try:
                return requests.get(f"http://127.0.0.1:{port}/health", timeout=2).ok
            except (requests.ConnectionError, requests.Timeout):  # not up yet, or busy
                return False

        wait_for(healthy, 60, what="bbweb start to serve")

        def finished_build():
            with db.read() as conn:
                return conn.execute(sa.select(builds).where(builds.c.finished_at.isnot(None))
                                    ).first()

        build = wait_for(finished_build, 90, what="the sample's first (Periodic) build")
        assert build.results == 0, (tmp_path / "start.log").read_text()
        assert len(processes_mentioning(str(basedir))) >= 3  # web, daemon, worker
    finally:
        os.kill(proc.pid, signal.SIGINT)  # what Ctrl-C delivers
        code = proc.wait(timeout=60)
        db.dispose()
    output = (tmp_path / "start.log").read_text()
    assert code == 0, output
    assert f"bbweb is running at http://127.0.0.1:{port}/" in output
    deadline = time.monotonic() + 10
    while processes_mentioning(str(basedir)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_mentioning(str(basedir)) == []
    try:
        requests.get(f"http://127.0.0.1:{port}/health", timeout=2)
        raise AssertionError("the web server is still answering after Ctrl-C")
    except requests.ConnectionError:
        pass


PROBED_CFG = """
import json, os, sys
from bbweb.config import *
c = BuildmasterConfig = {}
c['slaves'] = [BuildSlave('local-worker', 'pw')]
c['builders'] = [BuilderConfig(name='b', slavenames=['local-worker'],
                               factory=BuildFactory([ShellCommand(command=['true'])]))]


class ModulesProbe:
    # an event consumer: the daemon opens it, in whatever process runs the daemon
    consumer_name = 'test.modules'

    def open(self):
        with open('daemon-modules.json', 'w') as fh:
            json.dump({'pid': os.getpid(), 'modules': sorted(sys.modules)}, fh)

    def handle_event(self, event):
        pass


c['status'] = [WebStatus(http_port='tcp:PORT:interface=127.0.0.1'), ModulesProbe()]
"""



def start(basedir, log_path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bbweb.cli", "start", str(basedir), *args],
                            stdout=log_path.open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)


@dataclass
class Started:
    """A master made from ``PROBED_CFG`` and started with ``bbweb start``."""

    basedir: Path
    port: int
    log: Path
    proc: subprocess.Popen

    def probed(self) -> dict | None:
        """What the daemon's probe wrote once it opened its consumers (None before);
        fails at once, with the output, if ``bbweb start`` has ended."""
        assert self.proc.poll() is None, self.log.read_text()
        return probe_of(self.basedir)


def start_probed(tmp_path: Path, name: str, *args: str) -> Started:
    basedir = tmp_path / name
    basedir.mkdir()
    port = free_port()
    (basedir / "master.cfg").write_text(PROBED_CFG.replace("PORT", str(port)))
    log = tmp_path / "start.log"
    return Started(basedir, port, log, start(basedir, log, *args))


def children_of(pid: int) -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and parent_of(int(p)) == pid
            and state_of(int(p)) not in (None, "Z")]


def state_of(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def maps(pid: int, library: str) -> bool:
    """Whether process ``pid`` has a shared library whose file name starts with
    ``library`` mapped (what a module it imported loaded)."""
    with open(f"/proc/{pid}/maps") as fh:
        return any(Path(line.split()[-1]).name.startswith(library)
                   for line in fh if "/" in line)


def probe_of(basedir) -> dict | None:
    probe = basedir / "daemon-modules.json"
    try:
        return json.loads(probe.read_text())
    except (OSError, ValueError):  # not written yet, or half-way
        return None


def stop(proc: subprocess.Popen, sig: int = signal.SIGINT) -> int:
    os.kill(proc.pid, sig)
    return proc.wait(timeout=60)


# what the web server needs and the daemon (in a process of its own) does not
WEB_ONLY = ("flask", "werkzeug", "jinja2", "gunicorn", "flask_login", "passlib", "bbweb.web",
            "bbweb.app", "alembic", "mako")


def test_start_runs_two_master_processes_the_daemon_inside_the_web_one(tmp_path):
    """By default ``bbweb start`` becomes gunicorn's arbiter (same pid, a fresh interpreter
    holding neither the web's modules nor the database driver) and runs one web process,
    which also runs the daemon: two master processes, plus the local worker."""
    master = start_probed(tmp_path, "probed")
    basedir, port, log, proc = master.basedir, master.port, master.log, master.proc
    try:
        found = wait_for(master.probed, 60, what="the daemon to open its consumers")
        modules = set(found["modules"])
        assert "bbweb.daemon.main" in modules and "flask" in modules  # web and daemon
        web = found["pid"]
        assert parent_of(web) == proc.pid
        children = children_of(proc.pid)
        workers = [p for p in children if " worker " in cmdline(p)]
        assert len(workers) == 1 and sorted(children) == sorted([web, *workers])
        assert children_of(web) == []  # the daemon is a thread, not a process
        # the arbiter has loaded neither Flask (its MarkupSafe) nor the SQLite driver,
        # which the web process has (the control)
        assert maps(web, "_speedups") and maps(web, "_sqlite3")
        assert not maps(proc.pid, "_speedups") and not maps(proc.pid, "_sqlite3")
        assert requests.get(f"http://127.0.0.1:{port}/health", timeout=10).ok
    finally:
        code = stop(proc)
    assert code == 0, log.read_text()
    wait_for(lambda: processes_mentioning(str(basedir)) == [], 15,
             what="every process of the master to exit")


def test_start_with_two_web_workers_runs_the_daemon_in_its_own_process(tmp_path):
    """With several web processes the daemon runs in a process of its own, without the
    web's modules, which no web process's replacement pauses; SIGTERM stops them all."""
    master = start_probed(tmp_path, "two", "--web-workers", "2", "--local-worker", "none")
    basedir, log, proc = master.basedir, master.log, master.proc
    try:
        found = wait_for(master.probed, 60, what="the daemon to open its consumers")
        daemon = found["pid"]
        assert parent_of(daemon) == proc.pid and " --daemon " in cmdline(daemon)
        assert "bbweb.daemon.main" in found["modules"]
        assert [m for m in found["modules"] if any(m == w or m.startswith(w + ".")
                                                   for w in WEB_ONLY)] == []

        def web() -> list[int]:
            return [p for p in children_of(proc.pid) if cmdline(p) == cmdline(proc.pid)]

        assert wait_for(lambda: len(web()) == 2, 60, what="two web processes")
        assert sorted(children_of(proc.pid)) == sorted([daemon, *web()])
    finally:
        code = stop(proc, signal.SIGTERM)
    assert code == 0, log.read_text()
    wait_for(lambda: processes_mentioning(str(basedir)) == [], 15,
             what="every process of the master to exit")


def test_killing_bbweb_start_ends_its_web_processes_and_daemon_process(tmp_path):
    """kill -9 of ``bbweb start`` itself (gunicorn's arbiter): its web processes notice
    their parent gone and the daemon's process its lifeline pipe closed; nothing of the
    master is left running (the local worker, on another host in production, is not
    started here)."""
    master = start_probed(tmp_path, "orphans", "--web-workers", "2", "--local-worker", "none")
    basedir, log, proc = master.basedir, master.log, master.proc
    try:
        def running() -> bool:
            assert proc.poll() is None, log.read_text()
            return probe_of(basedir) is not None and len(children_of(proc.pid)) == 3

        wait_for(running, 60, what="two web processes and the daemon's")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        wait_for(lambda: processes_mentioning(str(basedir)) == [], 30,
                 what="the web processes and the daemon to end")
        assert "bbweb start has gone; stopping" in log.read_text()
        assert "released the daemon lock" in log.read_text()
    finally:
        for pid in processes_mentioning(str(basedir)):
            os.kill(pid, signal.SIGKILL)


def test_sighup_replaces_the_web_process_and_the_daemon_moves_with_it(tmp_path):
    """gunicorn's reload (SIGHUP to ``bbweb start``): a new web process starts, the old one
    stops gracefully and releases the daemon lock, and the new one's daemon takes it."""
    master = start_probed(tmp_path, "reload", "--local-worker", "none")
    basedir, port, log, proc = master.basedir, master.port, master.log, master.proc
    try:
        old = wait_for(master.probed, 60, what="the daemon to open its consumers")["pid"]
        (basedir / "daemon-modules.json").unlink()
        os.kill(proc.pid, signal.SIGHUP)
        new = wait_for(master.probed, 60, what="the new web process's daemon")["pid"]
        assert new != old and parent_of(new) == proc.pid
        wait_for(lambda: children_of(proc.pid) == [new], 30, what="the old web process to end")
        assert "released the daemon lock" in log.read_text()
        assert requests.get(f"http://127.0.0.1:{port}/health", timeout=10).ok
    finally:
        code = stop(proc)
    assert code == 0, log.read_text()


def test_a_killed_web_process_is_replaced_and_its_daemon_takes_over_at_once(tmp_path):
    """kill -9 of the web process: gunicorn starts another, whose daemon takes the lock the
    killed one held without waiting for its lease (30 s) to run out."""
    master = start_probed(tmp_path, "victim", "--local-worker", "none")
    basedir, port, log, proc = master.basedir, master.port, master.log, master.proc
    try:
        first = wait_for(master.probed, 60, what="the daemon to open its consumers")["pid"]
        (basedir / "daemon-modules.json").unlink()
        os.kill(first, signal.SIGKILL)
        second = wait_for(master.probed, 20, what="a new web process's daemon to take the lock")
        assert second["pid"] != first and parent_of(second["pid"]) == proc.pid
        assert f":{first}:web-of-{proc.pid}, which was killed" in log.read_text()
        assert requests.get(f"http://127.0.0.1:{port}/health", timeout=10).ok
    finally:
        code = stop(proc)
    assert code == 0, log.read_text()


def test_ctrl_c_on_the_terminal_stops_the_local_worker_first(tmp_path):
    """Ctrl-C reaches every process of the terminal's group, the web process too: it
    leaves the stop to the arbiter, which stops the local worker while the web server is
    still up to hear its goodbye, then the web process and its daemon."""
    master = start_probed(tmp_path, "terminal")
    basedir, log, proc = master.basedir, master.log, master.proc
    try:
        def ready() -> bool:
            assert proc.poll() is None, log.read_text()
            return probe_of(basedir) is not None and "connected to" in log.read_text()

        wait_for(ready, 60, what="the daemon and the local worker")
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # what the terminal's Ctrl-C delivers
        code = proc.wait(timeout=60)
    output = log.read_text()
    assert code == 0, output
    assert "could not say goodbye" not in output
    http_log = (basedir / "http.log").read_text()
    assert '"POST /api/worker/goodbye HTTP/1.1" 200' in http_log, http_log[-2000:]
    assert output.index("worker local-worker stopped") < output.index("Worker exiting")
    assert "released the daemon lock" in output
    wait_for(lambda: processes_mentioning(str(basedir)) == [], 15,
             what="every process of the master to exit")


def test_a_killed_local_worker_stops_the_master_with_an_error(tmp_path):
    """The local worker is part of what ``bbweb start`` runs: if it dies, everything stops
    and the command fails, naming it."""
    master = start_probed(tmp_path, "lost")
    basedir, log, proc = master.basedir, master.log, master.proc
    try:
        def worker() -> int | None:
            assert proc.poll() is None, log.read_text()
            found = [p for p in children_of(proc.pid) if " worker " in cmdline(p)]
            return found[0] if found and probe_of(basedir) else None

        os.kill(wait_for(worker, 60, what="the local worker and the daemon"), signal.SIGKILL)
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            stop(proc)
    assert code != 0
    assert "the worker process exited with code -9; stopping" in log.read_text()
    wait_for(lambda: processes_mentioning(str(basedir)) == [], 15,
             what="every process of the master to exit")


def parent_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[1])
    except OSError:
        return None


def test_killing_bbweb_start_ends_its_one_web_process_and_releases_the_daemon_lock(tmp_path):
    """kill -9 of ``bbweb start`` with its default single web process (which runs the
    daemon): the web process, sleeping between heartbeats, sees its arbiter's end on the
    pipe only the arbiter writes to, stops, and its daemon releases the lock."""
    master = start_probed(tmp_path, "orphan", "--local-worker", "none")
    basedir, log, proc = master.basedir, master.log, master.proc
    try:
        web = wait_for(master.probed, 60, what="the daemon to open its consumers")["pid"]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        wait_for(lambda: state_of(web) in (None, "Z"), 30, what="the web process to end")
        text = log.read_text()
        assert "the arbiter has gone, shutting down" in text
        assert "released the daemon lock" in text
    finally:
        for pid in processes_mentioning(str(basedir)):
            os.kill(pid, signal.SIGKILL)


def test_a_hung_web_process_is_still_replaced_after_gunicorns_timeout(tmp_path):
    """The arbiter no longer wakes every second, yet a web process that stops
    heartbeating (stopped with SIGSTOP here) is killed once gunicorn's timeout has passed
    since its last heartbeat, and another one serves. The timeout is cut to 3 s in the
    plan ``bbweb start`` would pass (it gives 90)."""
    basedir = tmp_path / "hung"
    basedir.mkdir()
    port = free_port()
    (basedir / "master.cfg").write_text(PROBED_CFG.replace("PORT", str(port)))
    subprocess.run([sys.executable, "-m", "bbweb.cli", "upgrade-master", str(basedir)],
                   check=True, capture_output=True)
    cfg = load_master_config(basedir)
    web = gunicorn_settings(basedir, cfg.web.listen or DEFAULT_LISTEN, 1, cfg.web)
    web["timeout"] = 3
    plan = Plan(web, [], daemon=None)
    env = dict(os.environ, BBWEB_BASEDIR=str(basedir), **{PLAN_VAR: plan.to_json()})
    log = tmp_path / "start.log"
    proc = subprocess.Popen([sys.executable, "-m", "bbweb.supervisor", str(basedir)],
                            env=env, cwd=basedir, stdout=log.open("wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def serving() -> list[int] | None:
            assert proc.poll() is None, log.read_text()
            try:
                ok = requests.get(f"http://127.0.0.1:{port}/health", timeout=2).ok
            except requests.RequestException:
                return None
            return children_of(proc.pid) if ok else None

        first = wait_for(serving, 60, what="the web process to serve")
        assert len(first) == 1
        time.sleep(4)  # idle: a heartbeat's deadline is now far away, not a second
        os.kill(first[0], signal.SIGSTOP)
        replaced = wait_for(lambda: (lambda c: c if c and c != first else None)(serving()),
                            60, what="the hung web process to be replaced")
        assert first[0] not in replaced
        assert f"WORKER TIMEOUT (pid:{first[0]})" in log.read_text()
    finally:
        for pid in children_of(proc.pid):
            os.kill(pid, signal.SIGKILL)
        proc.kill()
        proc.wait(timeout=30)
