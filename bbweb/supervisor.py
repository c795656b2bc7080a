"""What ``bbweb start`` becomes once it has checked the master: gunicorn's arbiter, with the
master daemon inside the web process and the local worker as a child.

``bbweb start`` (:mod:`bbweb.launcher`) reads master.cfg and plugins.toml, checks them and
upgrades the database, which loads Flask, Alembic and every plugin. Rather than keep all of
that in memory for as long as the master runs, it replaces itself (``exec``, same process
id, same terminal) with ``python -m bbweb.supervisor BASEDIR``, a fresh interpreter that is
gunicorn's arbiter itself (no second interpreter just to supervise one). What to start
comes in the environment (:data:`PLAN_VAR`, JSON), so that the worker's password is not on
a command line.

Where the daemon runs: with one web process (the default) the daemon is a thread of that
web process: one interpreter holds SQLAlchemy, the configuration and the status database's
connections for both. With several web processes it is a process of its own
(``bbweb master``), so that one web process being replaced never pauses it. The arbiter
itself runs no thread of ours: it forks web processes whenever one has to be replaced, and
a fork copies only the forking thread (a lock another thread held stays locked forever in
the child). The web process never forks, so the daemon's threads are safe there. The
daemon's database lock keeps a second daemon (an old web process still finishing during a
reload, say) waiting until the first has let go.

Ctrl-C/SIGTERM stop everything in order: the worker first, while the web server is still
up to hear its goodbye (so its build is handed back), then the daemon and the web server
together. Everything stops when one part ends: the daemon ending with code 0 on its own is
the end of a clean shutdown (the root page's button), after which ``bbweb start`` exits 0;
the daemon ending otherwise, or the worker or the daemon's process ending at all, is an
error. A web process that dies is replaced by gunicorn, as under a bare ``gunicorn``; the
daemon it held starts again in the new one (taking the lock over once its lease expires).
"""

from __future__ import annotations

import json
import logging
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

PLAN_VAR = "BBWEB_START_PLAN"
STOP_GRACE = 15.0
CLEAN_SHUTDOWN = "clean shutdown finished (no build is running)"
DAEMON_IN_WEB = "web"  # Plan.daemon: a thread of the (one) web process
DAEMON_PROCESS = "process"  # Plan.daemon: a child process of its own
APP = "bbweb.app:serving_app()"
LIFELINE_VAR = "BBWEB_START_LIFELINE"  # the daemon's process: a pipe that ends with us
DAEMON_OPTION = "--daemon"  # python -m bbweb.supervisor --daemon BASEDIR: the daemon alone
OVERDUE_MARGIN = 0.05  # seconds past a web process's heartbeat deadline the arbiter looks
HEARTBEAT_MAX = 30.0  # the longest an idle web process sleeps between heartbeats
log = logging.getLogger("bbweb.start")


@dataclass
class Plan:
    """What to run: gunicorn's settings (setting name -> value, as
    :func:`bbweb.launcher.gunicorn_settings` gives them), child processes in start order
    (name, command, environment added to ours), where the daemon runs
    (:data:`DAEMON_IN_WEB`, :data:`DAEMON_PROCESS` or ``None``), the lines to print once
    started."""

    web: dict[str, Any]
    children: list[tuple[str, list[str], dict[str, str]]]
    daemon: str | None = DAEMON_IN_WEB
    banner: list[str] = field(default_factory=list)
    verbose: bool = False

    def to_json(self) -> str:
        return json.dumps({"web": self.web, "children": self.children, "daemon": self.daemon,
                           "banner": self.banner, "verbose": self.verbose})

    @classmethod
    def from_json(cls, text: str) -> Plan:
        data = json.loads(text)
        return cls(dict(data["web"]), [(n, list(c), dict(e)) for n, c, e in data["children"]],
                   data["daemon"], list(data["banner"]), bool(data["verbose"]))


class _DaemonThread:
    """The master daemon in a thread of the web process. ``on_end`` is called with its exit
    code when it ends by itself (not when :meth:`stop` asked it to)."""

    def __init__(self, basedir: str, on_end: Callable[[int], None], holder: str,
                 dead_holder: Callable[[str], bool]) -> None:
        self.stop_event = threading.Event()
        self._basedir = basedir
        self._holder = holder
        self._dead_holder = dead_holder
        self._on_end = on_end
        self._stopping = False
        # not a daemon thread: the process waits for the lock to be released at exit
        self._thread = threading.Thread(target=self._run, name="bbweb-daemon")

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        code = 1
        try:
            from bbweb.daemon import run_daemon

            code = run_daemon(self._basedir, stop_event=self.stop_event, holder=self._holder,
                              dead_holder=self._dead_holder)
        except BaseException:
            logging.getLogger("bbweb.daemon").exception("the daemon crashed")
        finally:
            if not self._stopping:
                self._on_end(code)

    def request_stop(self) -> None:
        """Ask the daemon to stop without waiting (safe in a signal handler: the event is
        set from another thread, as the main thread may hold its lock)."""
        self._stopping = True
        threading.Thread(target=self.stop_event.set, name="bbweb-daemon-stop").start()

    def stop(self, timeout: float) -> None:
        self._stopping = True
        self.stop_event.set()
        self._thread.join(timeout)


class _Children:
    """The arbiter's own child processes (the local worker, the daemon's process)."""

    def __init__(self, basedir: str, specs: list[tuple[str, list[str], dict[str, str]]],
                 lifeline: int) -> None:
        self.basedir = basedir
        self.specs = specs
        self.lifeline = lifeline
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self) -> None:
        for name, cmd, extra in self.specs:
            # their own sessions: a Ctrl-C on the terminal reaches the arbiter alone, which
            # stops them in order
            self.procs[name] = subprocess.Popen(
                cmd, env=dict(os.environ, **extra), cwd=self.basedir, start_new_session=True,
                pass_fds=[self.lifeline] if LIFELINE_VAR in extra else [])

    def ended(self) -> tuple[str, int] | None:
        """The first child that has ended, with its code (0 when gunicorn's reaping of
        unknown children got to it first and the code is lost)."""
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                return name, proc.returncode
        return None

    def terminate(self, names: list[str]) -> None:
        for name in names:
            proc = self.procs.get(name)
            if proc is not None and proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass

    def wait(self, names: list[str], deadline: float) -> None:
        for name in names:
            proc = self.procs.get(name)
            if proc is None:
                continue
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()


class Supervisor:
    """One ``bbweb start``: gunicorn's hooks on both sides of the fork (the arbiter's, and
    the web process's that runs the daemon), and the arbiter's child processes."""

    def __init__(self, basedir: str, plan: Plan) -> None:
        self.basedir = basedir
        self.plan = plan
        specs = list(plan.children)
        # the daemon's process reads this pipe, whose other end only we hold: it ends when
        # we do, even killed, and the daemon stops then (as it would as our thread)
        lifeline, self._lifeline_w = os.pipe()
        if plan.daemon == DAEMON_PROCESS:
            specs.append(("daemon", [sys.executable, "-m", "bbweb.supervisor", DAEMON_OPTION,
                                     basedir, *(["--verbose"] if plan.verbose else [])],
                          {LIFELINE_VAR: str(lifeline)}))
        self.children = _Children(basedir, specs, lifeline)
        # the web process tells the arbiter the daemon's exit code through this pipe
        self._report_r, self._report_w = os.pipe()
        os.set_blocking(self._report_r, False)
        self.arbiter_pid = os.getpid()
        self._daemon: _DaemonThread | None = None
        self._stopped = False
        # web processes of this arbiter that have ended (the arbiter's; a web process forked
        # later sees those before it): a daemon lock one of them still holds is stale
        self._dead_web: set[int] = set()

    def _holder(self, pid: int) -> str:
        """The daemon lock's holder name of the daemon in web process ``pid``."""
        return f"{socket.gethostname()}:{pid}:web-of-{self.arbiter_pid}"

    # -- in the arbiter ------------------------------------------------------------------

    def when_ready(self, _server: Any) -> None:
        self.children.start()
        for line in self.plan.banner:
            print(line, flush=True)

    def child_exit(self, _server: Any, worker: Any) -> None:
        self._dead_web.add(worker.pid)

    def daemon_code(self) -> int | None:
        """The exit code a web process reported for its daemon, if any."""
        try:
            data = os.read(self._report_r, 64)
        except BlockingIOError:
            return None
        return int(data.split()[0]) if data.strip() else None

    def child_ended(self) -> tuple[str, int] | None:
        """(message, exit code for ``bbweb start``) when one of our child processes has
        ended: the daemon's process ending with 0 is the end of a clean shutdown (0);
        anything else is an error."""
        ended = self.children.ended()
        if ended is None:
            return None
        name, code = ended
        if name == "daemon" and code == 0:
            return CLEAN_SHUTDOWN, 0
        return f"the {name} process exited with code {code}", code or 1

    def stop_children_first(self) -> float:
        """The worker first, while the web server is still up to hear its goodbye; then the
        daemon's process is told to stop (it stops with the web processes). Returns the
        deadline for what remains."""
        deadline = time.monotonic() + STOP_GRACE
        if not self._stopped:
            self._stopped = True
            self.children.terminate(["worker"])
            self.children.wait(["worker"], deadline)
            self.children.terminate(["daemon"])
        return deadline

    def stop_children_last(self, deadline: float) -> None:
        self.children.wait(["daemon"], deadline)

    # -- in the web process --------------------------------------------------------------

    def post_fork(self, _server: Any, _worker: Any) -> None:
        # the lifeline ends when the arbiter does only if the arbiter alone holds its write
        # end: the web process watches it (:func:`_web_worker_class`)
        os.close(self._lifeline_w)

    @property
    def lifeline(self) -> int:
        """The read end of a pipe that reads end of file once the arbiter has gone."""
        return self.children.lifeline

    def post_worker_init(self, _worker: Any) -> None:
        # Ctrl-C on the terminal reaches every process of its group: the arbiter stops
        # this one in order (after the local worker), with SIGTERM
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if self.plan.daemon == DAEMON_IN_WEB:
            dead = {self._holder(pid) for pid in self._dead_web}
            daemon = self._daemon = _DaemonThread(self.basedir, self._report_daemon_end,
                                                  self._holder(os.getpid()),
                                                  dead.__contains__)
            daemon.start()
            # gunicorn's graceful stop (SIGTERM) lets requests finish: the daemon stops
            # meanwhile, not after them
            graceful = signal.getsignal(signal.SIGTERM)

            def stop_both(signum: int, frame: Any) -> None:
                daemon.request_stop()
                if callable(graceful):
                    graceful(signum, frame)

            signal.signal(signal.SIGTERM, stop_both)

    def _report_daemon_end(self, code: int) -> None:
        os.write(self._report_w, f"{code}\n".encode())
        try:
            os.kill(self.arbiter_pid, signal.SIGTERM)
        except ProcessLookupError:
            pass

    def worker_exit(self, _server: Any, _worker: Any) -> None:
        if self._daemon is not None:
            self._daemon.stop(STOP_GRACE)


def _arbiter_class() -> type:
    from gunicorn.arbiter import Arbiter
    from gunicorn.errors import HaltServer

    class StartArbiter(Arbiter):
        """gunicorn's arbiter, stopping the whole master when a part of it ends."""

        supervisor: Supervisor

        def handle_term(self) -> None:
            code = self.supervisor.daemon_code()
            if code == 0:
                print(f"bbweb: {CLEAN_SHUTDOWN}; stopping", flush=True)
                raise HaltServer(CLEAN_SHUTDOWN, 0)
            if code is not None:
                print(f"bbweb: the daemon exited with code {code}; stopping",
                      file=sys.stderr, flush=True)
                raise HaltServer(f"the daemon exited with code {code}", code)
            raise StopIteration

        # Ctrl-C stops in order too (gunicorn's own SIGINT is a quick stop)
        handle_int = handle_term

        def wait_for_signals(self, timeout: float | None = 1.0) -> list[int]:
            # gunicorn wakes every second to look for web processes that stopped
            # heartbeating; a signal (a child ending, a stop, a reload) wakes it anyway, so
            # it sleeps until a web process could first be overdue (gunicorn >= 27)
            if timeout is not None:
                timeout = self._quiet_for(timeout)
            return list(super().wait_for_signals(timeout))

        def _quiet_for(self, timeout: float) -> float:
            workers = list(self.WORKERS.values())
            if not self.timeout or not workers or self.master_pid or \
                    getattr(self.cfg, "dirty_workers", 0) or \
                    any(w.aborted for w in workers):
                return timeout
            try:
                first = min(w.tmp.last_update() for w in workers)
            except (OSError, ValueError):
                return timeout
            # just past the moment gunicorn's check would find it silent too long
            overdue = first + self.timeout + OVERDUE_MARGIN - time.monotonic()
            return min(max(overdue, timeout), float(self.timeout))

        def handle_chld(self, *args: Any) -> None:  # (gunicorn < 24: the signal handler)
            # ours first: gunicorn reaps every child, and the exit code of one it does not
            # know is lost
            ended = self.supervisor.child_ended()
            super().handle_chld(*args)
            ended = ended or self.supervisor.child_ended()
            if ended is not None:
                message, code = ended
                print(f"bbweb: {message}; stopping", file=sys.stderr if code else sys.stdout,
                      flush=True)
                raise HaltServer(message, code)

        handle_cld = handle_chld

        def stop(self, graceful: bool = True) -> None:
            deadline = self.supervisor.stop_children_first()
            super().stop(graceful)
            self.supervisor.stop_children_last(deadline)

    return StartArbiter


def _web_worker_class(base: type, lifeline: int) -> type:
    """gunicorn's threaded worker class ``base``, waking only when there is something to do.

    gunicorn's loop wakes every second to heartbeat to the arbiter, to look whether the
    arbiter is still its parent and to close idle connections whose time is up. Here it
    sleeps until the first idle connection's time is up, and at most half the arbiter's
    heartbeat timeout (what gunicorn itself gives a worker to heartbeat in); the
    arbiter's end is seen at once, as the end of file of ``lifeline``. Requests, their
    completions and signals wake it as before (gunicorn >= 27; older versions are left
    as they are)."""

    class QuietThreadWorker(base):
        orphaned = False

        def run(self) -> None:
            def arbiter_gone(_fd: Any) -> None:
                self.poller.unregister(lifeline)
                self.orphaned = True

            self.poller.register(lifeline, selectors.EVENT_READ, arbiter_gone)
            super().run()

        def is_parent_alive(self) -> bool:
            if self.orphaned:
                self.log.info("the arbiter has gone, shutting down: %s", self)
                return False
            return bool(super().is_parent_alive())

        def wait_for_and_dispatch_events(self, timeout: float) -> None:
            if self.alive:  # (while stopping, gunicorn's own timeouts apply)
                quiet = self.timeout if self.timeout > 0 else HEARTBEAT_MAX
                now = time.monotonic()
                for conns in (self.keepalived_conns, self.pending_conns):
                    if conns:
                        quiet = min(quiet, conns[0].timeout - now)
                timeout = min(max(quiet, 0.0), HEARTBEAT_MAX)
            super().wait_for_and_dispatch_events(timeout)

    QuietThreadWorker.__name__ = QuietThreadWorker.__qualname__ = base.__name__
    return QuietThreadWorker


def run(basedir: str, plan: Plan) -> int:
    """Serve until Ctrl-C, SIGTERM or one part ending; returns the exit code."""
    from gunicorn.app.base import BaseApplication
    from gunicorn.util import import_app
    from gunicorn.workers.gthread import ThreadWorker

    supervisor = Supervisor(basedir, plan)
    arbiter_class = _arbiter_class()

    class StartApplication(BaseApplication):
        def load_config(self) -> None:
            for name, value in plan.web.items():
                self.cfg.set(name, value)
            self.cfg.set("when_ready", supervisor.when_ready)
            self.cfg.set("post_worker_init", supervisor.post_worker_init)
            self.cfg.set("worker_exit", supervisor.worker_exit)
            self.cfg.set("child_exit", supervisor.child_exit)
            self.cfg.set("post_fork", supervisor.post_fork)
            worker_class = self.cfg.worker_class
            if worker_class is ThreadWorker and \
                    hasattr(worker_class, "wait_for_and_dispatch_events"):
                self.cfg.set("worker_class", _web_worker_class(worker_class,
                                                               supervisor.lifeline))

        def load(self) -> Any:
            # by name, as ``gunicorn bbweb.app:serving_app()`` would (the app is a layer
            # beside this one, not below it); BBWEB_BASEDIR names the master
            return import_app(APP)

        def run(self) -> None:
            arbiter = arbiter_class(self)
            arbiter.supervisor = supervisor
            arbiter.run()

    try:
        StartApplication().run()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


def _stop_when_closed(fd: int, stop_event: threading.Event) -> None:
    """Set ``stop_event`` once the pipe ``fd`` reads end of file: ``bbweb start``, which
    holds its other end, has ended."""
    while os.read(fd, 64):
        pass
    logging.getLogger("bbweb.daemon").error("bbweb start has gone; stopping")
    stop_event.set()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == [DAEMON_OPTION] and len(args) in (2, 3) and args[2:] in ([], ["--verbose"]):
        # the daemon's own process (several web processes): only what the daemon needs,
        # not the command line's parsers (which load the launcher and with it the web)
        logging.basicConfig(level=logging.DEBUG if args[2:] else logging.INFO,
                            format="%(asctime)s %(name)s %(levelname)s %(message)s")
        from bbweb.daemon import run_daemon

        stop_event = threading.Event()
        lifeline = os.environ.pop(LIFELINE_VAR, None)
        if lifeline is not None:
            threading.Thread(target=_stop_when_closed, args=(int(lifeline), stop_event),
                             name="bbweb-lifeline", daemon=True).start()
        return run_daemon(args[1], stop_event=stop_event)
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
