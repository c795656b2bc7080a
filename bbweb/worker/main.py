"""``bbweb worker``: claim builds from a master over HTTP and run their steps.

The worker keeps no judgement of its own: the master says which step runs next, with
what command, and decides results. The worker runs commands, streams their output,
heartbeats, and obeys stop requests. It can run on any host that reaches the master's
web port.

Each process makes a random session id and says hello listing no running build, so that
whatever a previous process of the same name was running is ended by the master at once
(a restart by systemd within the heartbeat timeout leaves nothing stuck). Claims are
numbered: a claim answers a lease, which the worker confirms to get the build; the
heartbeat lists the builds the worker runs and the number of the last claim settled (its
build, if any, already listed), so the master can tell a build the worker dropped from
one it is just receiving.
"""

from __future__ import annotations

import fcntl
import logging
import os
import platform
import signal
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from bbweb import __version__
from bbweb.worker.client import AuthenticationError, MasterClient, MasterGone, NotOurs
from bbweb.worker.commands import (
    FINISH_LOG_BYTES,
    CommandResult,
    StepOutput,
    build_env,
    run_command,
)
from bbweb.worker.git import run_git_checkout

log = logging.getLogger("bbweb.worker")

CLAIM_WAIT = 20.0  # seconds one long-poll for work may last
# An idle worker's claims say it is alive (each one is a heartbeat on the master), so it
# sends no separate heartbeat while one is waiting and it has nothing new to report; its
# claims then end this many seconds (or half the timeout, whichever is more) before the
# heartbeat timeout the master gave in its hello (from a master that gives none, they last
# IDLE_CLAIM_BEATS heartbeat intervals).
IDLE_CLAIM_MARGIN = 10.0
IDLE_CLAIM_BEATS = 2
GOODBYE_RETRY = 5.0  # a master that is itself shutting down is not waited for
ASK = object()  # no step was handed over with the last answer: ask the master for it


class ShutdownRequested(Exception):
    """Raised from the signal handler to abandon a long-poll that is waiting for work."""


@dataclass
class WorkerOptions:
    master_url: str
    name: str
    password: str
    basedir: Path
    claim_wait: float = CLAIM_WAIT


def worker_info(basedir: Path) -> dict[str, Any]:
    """What the master shows about this worker. As on a Buildbot slave, the files
    ``BASEDIR/info/admin``, ``info/host`` and ``info/access_uri`` override the defaults."""
    info: dict[str, Any] = {
        "host": f"{platform.node()} ({platform.system()} {platform.release()}, "
                f"Python {platform.python_version()})",
        "version": __version__,
        "admin": os.environ.get("BBWEB_WORKER_ADMIN", ""),
        "basedir": str(basedir),
    }
    for name in ("admin", "host", "access_uri"):
        path = basedir / "info" / name
        if path.is_file():
            info[name] = path.read_text(errors="replace").strip()
    return info


class Worker:
    """One worker identity serving one master, one build at a time."""

    def __init__(self, opts: WorkerOptions) -> None:
        self.opts = opts
        self.client = MasterClient(opts.master_url, opts.name, opts.password)
        self.shutdown = threading.Event()
        self.stop_build = threading.Event()
        self.current_build: int | None = None
        self.heartbeat_interval = 5.0
        self.idle_claim_wait = opts.claim_wait
        self._in_build = False
        self.session = uuid.uuid4().hex
        # what the heartbeat reports, changed together under the lock: the builds we run,
        # and the number of our last claim whose build (if it had one) is among them
        self._state_lock = threading.Lock()
        self._running: set[int] = set()
        self._claims = 0
        self._settled = 0
        self._claimed_at = float("-inf")  # time.monotonic() when the last claim was sent
        self._news = 0  # the last settled claim that brought a build or a lease
        # the builds and the news the last heartbeat reported
        self._reported: tuple[list[int], int] | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def run(self) -> int:
        try:
            hello = self.client.hello(worker_info(self.opts.basedir), self.session, [])
        except AuthenticationError as exc:
            log.error("the master refused worker %r: %s", self.opts.name, exc)
            return 2
        except MasterGone as exc:
            log.error("%s", exc)
            return 1
        self.heartbeat_interval = float(hello.get("heartbeat_interval") or 5.0)
        timeout = hello.get("heartbeat_timeout")
        if isinstance(timeout, int | float) and timeout > 0:
            self.idle_claim_wait = max(timeout - IDLE_CLAIM_MARGIN, timeout / 2)
        else:
            self.idle_claim_wait = IDLE_CLAIM_BEATS * self.heartbeat_interval
        log.info("worker %s connected to %s; builders: %s", self.opts.name,
                 self.opts.master_url, ", ".join(hello.get("builders", [])) or "(none)")
        if hello.get("ended"):
            log.warning("the master ended build(s) %s that a previous run of this worker "
                        "left unfinished; their requests are queued again",
                        ", ".join(map(str, hello["ended"])))
        beat = threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True)
        beat.start()
        code = 0
        try:
            while not self.shutdown.is_set():
                self._claims += 1
                seq = self._claims
                wait = min(self.opts.claim_wait, self.idle_claim_wait)
                self._claimed_at = time.monotonic()
                try:
                    answer = self.client.claim(wait, seq)
                except MasterGone as exc:
                    self._settle(seq, quiet=True)  # a lease we never saw just runs out
                    log.warning("%s; still trying", exc)
                    continue
                if answer is None:
                    self._settle(seq, quiet=True)
                    continue
                for command in answer.get("commands") or []:
                    self._obey(command, self.client)
                if answer.get("shutdown"):
                    self._settle(seq)
                    log.info("the master asked this worker to shut down gracefully")
                    break
                build = answer.get("build")
                first: Any = ASK
                lease = answer.get("lease")
                if isinstance(lease, dict) and isinstance(lease.get("request"), int):
                    confirmed = self._confirm(lease["request"], seq) or {}
                    build = confirmed.get("build")
                    first = confirmed.get("step", ASK)
                if isinstance(build, dict):
                    self._run_build(build, seq, first)
                else:  # a lease it could not confirm may have started a build: report it
                    self._settle(seq, quiet=not isinstance(lease, dict))
                poll_after = answer.get("poll_after")
                if isinstance(poll_after, int | float) and poll_after > 0:
                    # the master would not wait for work (its server cannot afford it)
                    self.shutdown.wait(min(float(poll_after), self.opts.claim_wait))
        except ShutdownRequested:
            pass
        except AuthenticationError as exc:
            log.error("the master no longer accepts worker %r: %s", self.opts.name, exc)
            code = 2
        finally:
            self.shutdown.set()
            try:
                self.client.copy(retry_for=GOODBYE_RETRY).goodbye()
            except Exception as exc:  # the master may be down already; the heartbeat
                log.info("could not say goodbye to the master: %s", exc)  # timeout covers it
            log.info("worker %s stopped", self.opts.name)
        return code

    def request_shutdown(self, signum: int, _frame: FrameType | None) -> None:
        """SIGTERM/SIGINT: stop the running command, leave at once. An idle long-poll is
        abandoned; a build in progress is killed and handed back to the master."""
        log.info("signal %d: shutting down", signum)
        self.shutdown.set()
        self.stop_build.set()
        if not self._in_build:
            raise ShutdownRequested()

    def _settle(self, seq: int, build_id: int | None = None, quiet: bool = False) -> None:
        """Claim ``seq`` is dealt with: its build (if any) is now among those we run.
        ``quiet``: it brought no build and no lease, so it is no news for a heartbeat."""
        with self._state_lock:
            if build_id is not None:
                self._running.add(build_id)
            self._settled = seq
            if not quiet:
                self._news = seq

    def _confirm(self, request_id: int, seq: int) -> dict[str, Any] | None:
        """Confirm a lease: the master's answer (the build to run, and its first step from
        a master that hands it over at once), or None when the lease was lost."""
        try:
            return self.client.confirm(request_id, self.session, seq)
        except NotOurs as exc:
            log.warning("lost the claim on build request %d: %s", request_id, exc)
        except MasterGone as exc:
            log.warning("could not confirm the claim on build request %d: %s", request_id,
                        exc)
        return None

    def _heartbeat_loop(self) -> None:
        client = self.client.copy()
        while not self.shutdown.wait(self.heartbeat_interval):
            with self._state_lock:
                running, settled, news = sorted(self._running), self._settled, self._news
            claiming = time.monotonic() - self._claimed_at < \
                self.idle_claim_wait + self.heartbeat_interval
            if not running and claiming and self._reported == (running, news):
                continue  # our claims tell the master we are alive, and nothing changed
            try:
                commands = client.heartbeat(running, self.session, settled)
            except AuthenticationError:
                log.error("the master refused our heartbeat; stopping")
                self.shutdown.set()
                self.stop_build.set()
                return
            except Exception as exc:
                log.warning("heartbeat failed: %s", exc)
                continue
            self._reported = (running, news)
            for command in commands:
                self._obey(command, client)

    def _obey(self, command: dict[str, Any], client: MasterClient) -> None:
        """A command from the master (heartbeat or claim answer): stop the current build,
        or answer a ping at once (the round trip the web page shows)."""
        kind = command.get("type")
        if kind == "stop" and command.get("build_id") == self.current_build:
            log.info("the master asks to stop build %s: %s", command.get("build_id"),
                     command.get("reason"))
            self.stop_build.set()
        elif kind == "ping" and isinstance(command.get("token"), int | float):
            try:
                client.pong(float(command["token"]))
                log.info("answered a ping from the master")
            except (MasterGone, NotOurs, RuntimeError) as exc:
                log.warning("could not answer a ping: %s", exc)

    # -- builds ------------------------------------------------------------------------------
    def _run_build(self, build: dict[str, Any], seq: int, first: Any = ASK) -> None:
        """Run the build's steps. Each step comes with the answer to the call before it
        (the confirmation, the previous step's finish), from a master that hands it over
        so; else (``ASK``) it is asked for."""
        self._in_build = True
        self.stop_build.clear()
        self.current_build = build["id"]
        self._settle(seq, build["id"])
        builddir = self.opts.basedir / build["builddir"]
        log.info("building %s #%d", build["builder"], build["number"])
        step = first
        try:
            while not self.shutdown.is_set():
                if step is ASK:
                    step = self.client.next_step(build["id"])
                if not isinstance(step, dict):
                    break
                answer = self._run_step(step, builddir)
                step = answer.get("step", ASK)
        except NotOurs as exc:
            log.warning("build %s #%d was taken away by the master: %s", build["builder"],
                        build["number"], exc)
        except MasterGone as exc:
            log.error("lost the master during %s #%d: %s", build["builder"],
                      build["number"], exc)
        finally:
            with self._state_lock:
                self._running.discard(build["id"])
            self.current_build = None
            self._in_build = False
        log.info("done with %s #%d", build["builder"], build["number"])

    def _run_step(self, step: dict[str, Any], builddir: Path) -> dict[str, Any]:
        """Run one step; the master's answer to its finish (with the next step, from a
        master that hands it over so)."""
        stepid = step["id"]
        # a master that takes a step's last output with its finish saves a request per step
        carry = "finish-log" in self.client.features and self.client.log_frames
        output = StepOutput(lambda frames: self.client.send_log(stepid, frames),
                            self.stop_build, keep=FINISH_LOG_BYTES if carry else 0)
        workdir = os.path.normpath(os.path.join(builddir, step.get("workdir") or "build"))
        env = build_env(step.get("env") or {})
        properties: dict[str, Any] = {}
        error: str | None = None
        result: CommandResult
        try:
            if step.get("type") == "shell":
                result = run_command(step["command"], workdir, env, output, self.stop_build,
                                     step.get("timeout"), step.get("maxTime"))
            elif step.get("type") == "git":
                checkout = run_git_checkout(step, workdir, env, output, self.stop_build)
                result = checkout.result
                if checkout.got_revision:
                    properties["got_revision"] = checkout.got_revision
            else:
                error = f"this worker cannot run steps of type {step.get('type')!r}"
                result = CommandResult(None, "error")
        except (NotOurs, MasterGone, AuthenticationError):
            raise
        except Exception as exc:  # a worker-side failure is the step's exception
            log.exception("step %s failed on the worker", step.get("name"))
            error = f"worker error: {type(exc).__name__}: {exc}"
            result = CommandResult(None, "error")
            output.flush()
        interrupted = result.interrupted
        if self.shutdown.is_set() and interrupted == "stopped":
            interrupted, error = "error", "the worker was shut down during this step"
        frames = output.rest()  # what was written after the last send, if anything
        # a worker shutting down starts no next step: the master would mark it lost
        return self.client.finish_step(stepid, result.rc, interrupted, properties, error,
                                       frames=frames, then_next=not self.shutdown.is_set())


def run_worker(master_url: str, name: str, password: str, basedir: str) -> int:
    """Entry point of ``bbweb worker``; returns the process exit code (2: refused)."""
    base = Path(basedir).resolve()
    base.mkdir(parents=True, exist_ok=True)
    lock = (base / "worker.lock").open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"bbweb worker: another worker is already running in {base}", file=sys.stderr)
        return 1
    worker = Worker(WorkerOptions(master_url.rstrip("/"), name, password, base))
    signal.signal(signal.SIGTERM, worker.request_shutdown)
    signal.signal(signal.SIGINT, worker.request_shutdown)
    try:
        return worker.run()
    finally:
        lock.close()
