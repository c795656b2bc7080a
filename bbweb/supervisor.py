"""What ``bbweb start`` becomes once it has checked the master: the daemon, supervising the
web server and the local worker.

``bbweb start`` (:mod:`bbweb.launcher`) reads master.cfg and plugins.toml, checks them and
upgrades the database, which loads Flask, Alembic and every plugin. Rather than keep all of
that in memory for as long as the master runs, it replaces itself (``exec``, same process
id, same terminal) with ``python -m bbweb.supervisor BASEDIR``, a fresh interpreter that
runs the master daemon in a thread (loading only what the daemon needs) and the web server
(gunicorn) and the local worker as child processes, exactly as they would run on separate
hosts. What to start comes in the environment (:data:`PLAN_VAR`, JSON), so that the worker's
password is not on a command line.

It forwards Ctrl-C/SIGTERM (the worker is stopped first, while the web server is still up to
hear its goodbye, then the daemon and the web server together) and stops everything when
one part ends: the daemon ending with code 0 on its own is the end of a clean shutdown (the
root page's button), after which ``bbweb start`` exits 0; anything else ending is an error.
Nothing here polls: the main thread sleeps until a signal, a child's exit or the daemon's
end wakes it.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

PLAN_VAR = "BBWEB_START_PLAN"
STOP_GRACE = 15.0


@dataclass
class Plan:
    """What to run: child processes in start order (name, command, environment added to
    ours), whether to run the daemon here, the line to print once started."""

    children: list[tuple[str, list[str], dict[str, str]]]
    daemon: bool = True
    banner: list[str] = field(default_factory=list)
    verbose: bool = False

    def to_json(self) -> str:
        return json.dumps({"children": self.children, "daemon": self.daemon,
                           "banner": self.banner, "verbose": self.verbose})

    @classmethod
    def from_json(cls, text: str) -> Plan:
        data = json.loads(text)
        return cls([(n, list(c), dict(e)) for n, c, e in data["children"]],
                   bool(data["daemon"]), list(data["banner"]), bool(data["verbose"]))


class _DaemonThread:
    """The master daemon running in a thread of this process, with its own stop event."""

    def __init__(self, basedir: str, wake: threading.Event) -> None:
        self.stop_event = threading.Event()
        self.code: int | None = None
        self._basedir = basedir
        self._wake = wake
        self._thread = threading.Thread(target=self._run, name="bbweb-daemon")

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            from bbweb.daemon import run_daemon

            self.code = run_daemon(self._basedir, stop_event=self.stop_event)
        except BaseException:
            logging.getLogger("bbweb.daemon").exception("the daemon crashed")
            self.code = 1
        finally:
            self._wake.set()

    def stop(self, timeout: float) -> None:
        self.stop_event.set()
        self._thread.join(timeout)


def _watch(proc: subprocess.Popen[bytes], wake: threading.Event) -> None:
    proc.wait()
    wake.set()


def run(basedir: str, plan: Plan) -> int:
    """Run the plan until Ctrl-C, SIGTERM or one part ending; returns the exit code."""
    wake = threading.Event()
    stopping = threading.Event()

    def request_stop(_signum: int, _frame: object) -> None:
        stopping.set()
        # set from another thread: the main thread may be inside wake.wait(), holding
        # the event's (non-reentrant) lock
        threading.Thread(target=wake.set, name="bbweb-stop").start()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    daemon = _DaemonThread(basedir, wake) if plan.daemon else None
    exit_code = 0
    try:
        for name, cmd, extra in plan.children:
            procs[name] = subprocess.Popen(cmd, env=dict(os.environ, **extra), cwd=basedir,
                                           start_new_session=True)
            threading.Thread(target=_watch, args=(procs[name], wake), daemon=True,
                             name=f"bbweb-watch:{name}").start()
        if daemon is not None:
            daemon.start()
        for line in plan.banner:
            print(line, flush=True)
        while not stopping.is_set():
            wake.wait()
            wake.clear()
            if stopping.is_set():
                break
            if daemon is not None and daemon.code is not None:
                if daemon.code == 0:
                    # the daemon stops by itself only after a clean shutdown
                    print("bbweb: clean shutdown finished (no build is running); stopping",
                          flush=True)
                else:
                    print(f"bbweb: the daemon exited with code {daemon.code}; stopping",
                          file=sys.stderr, flush=True)
                    exit_code = daemon.code
                break
            ended = [(n, p.returncode) for n, p in procs.items() if p.poll() is not None]
            if ended:
                name, code = ended[0]
                print(f"bbweb: the {name} process exited with code {code}; stopping",
                      file=sys.stderr, flush=True)
                exit_code = code or 1
                break
    finally:
        _stop_all(procs, daemon)
    return exit_code


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


def _stop_all(procs: dict[str, subprocess.Popen[bytes]], daemon: _DaemonThread | None,
              grace: float = STOP_GRACE) -> None:
    """The worker first, while the web server is still up to hear its goodbye (so its
    build is handed back), then the daemon and the web server together."""
    deadline = time.monotonic() + grace
    for group in (["worker"], ["daemon", "web"]):
        names = [n for n in group if n in procs]
        for name in names:
            _terminate(procs[name])
        if "daemon" in group and daemon is not None:
            daemon.stop(max(deadline - time.monotonic(), 0.1))
        for name in names:
            proc = procs[name]
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    text = os.environ.pop(PLAN_VAR, None)
    if len(args) != 1 or text is None:
        print("usage: python -m bbweb.supervisor BASEDIR (run by 'bbweb start', which "
              f"passes what to start in ${PLAN_VAR})", file=sys.stderr)
        return 2
    plan = Plan.from_json(text)
    logging.basicConfig(level=logging.DEBUG if plan.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    return run(args[0], plan)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
