"""Running one command for a step: output streamed as it arrives, the whole process group
killed on timeout or stop.

stdout and stderr are read by one thread from both pipes, so they reach the log in the
order they were written (as far as two pipes allow). Output is batched and sent to the
master about twice a second, which keeps a busy command from turning into thousands of
requests while a watcher still sees lines within a second.
"""

from __future__ import annotations

import codecs
import os
import re
import selectors
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

FLUSH_INTERVAL = 0.5  # seconds between log posts while output is arriving
FLUSH_BYTES = 64 * 1024  # ... or sooner when this much is waiting
POST_BYTES = 4 * 1024 * 1024  # characters of output per request at most (a fast command's
# backlog goes in several requests, so neither side holds a whole log in one body)
KILL_GRACE = 3.0  # seconds between SIGTERM and SIGKILL for the process group
DRAIN_AFTER_EXIT = 2.0  # how long a finished command's descendants may hold its pipes

_ENV_REF = re.compile(r"\$\{([0-9A-Za-z_]*)\}")


class StepOutput:
    """Output of one step on its way to the master: threads append, the step's own loop
    sends (``flush``). The sender learns from each answer whether a stop was asked for."""

    def __init__(self, send: Callable[[list[tuple[str, str]]], bool],
                 stop: threading.Event) -> None:
        self._send = send
        self._stop = stop
        self._lock = threading.Lock()
        self._pending: list[tuple[str, str]] = []
        self._pending_bytes = 0
        self._last_flush = time.monotonic()
        # wakes the step's loop early: FLUSH_BYTES are waiting, or the output ended
        self.wake = threading.Event()
        self.finished = False

    def write(self, stream: str, text: str) -> None:
        if not text:
            return
        with self._lock:
            self._pending.append((stream, text))
            self._pending_bytes += len(text)
            if self._pending_bytes >= FLUSH_BYTES:
                self.wake.set()

    def end(self) -> None:
        """The command's output is closed (called by the thread reading it, last)."""
        self.finished = True
        self.wake.set()

    def header(self, text: str) -> None:
        self.write("h", text if text.endswith("\n") else text + "\n")

    def due(self) -> bool:
        with self._lock:
            waiting = self._pending_bytes
        return waiting >= FLUSH_BYTES or (
            waiting > 0 and time.monotonic() - self._last_flush >= FLUSH_INTERVAL)

    def flush(self) -> None:
        with self._lock:
            chunks, self._pending, self._pending_bytes = self._pending, [], 0
        self._last_flush = time.monotonic()
        for part in _parts(chunks, POST_BYTES):
            if self._send(part):
                self._stop.set()


def _parts(chunks: list[tuple[str, str]], limit: int) -> list[list[tuple[str, str]]]:
    """``chunks`` in order, in groups of at most ``limit`` characters (a longer text is
    cut)."""
    parts: list[list[tuple[str, str]]] = []
    current: list[tuple[str, str]] = []
    size = 0
    for stream, text in chunks:
        while size + len(text) > limit:
            room = limit - size
            current.append((stream, text[:room]))
            parts.append(current)
            current, size, text = [], 0, text[room:]
        if text:
            current.append((stream, text))
            size += len(text)
    if current:
        parts.append(current)
    return parts


@dataclass
class CommandResult:
    """How a command ended: ``rc`` as the OS gave it (negative for a signal), or an
    interruption (``timeout``, ``stopped``) when we killed it."""

    rc: int | None
    interrupted: str | None = None
    elapsed: float = 0.0
    details: list[str] = field(default_factory=list)


def build_env(overrides: dict[str, str | None], base: dict[str, str] | None = None
              ) -> dict[str, str]:
    """The command's environment: ours, with the step's ``env`` applied. ``${NAME}`` in a
    value refers to our own environment (so ``PATH='/opt/bin:${PATH}'`` works, as on a
    Buildbot slave); None removes a variable."""
    env = dict(os.environ if base is None else base)
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = _ENV_REF.sub(lambda m: env.get(m.group(1), ""), value)
    return env


def describe_command(command: str | list[str]) -> str:
    return command if isinstance(command, str) else shlex.join(command)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the command's whole process group, then SIGKILL whatever is left of it
    (descendants included) after a grace period."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=KILL_GRACE)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _pump(proc: subprocess.Popen[bytes], output: StepOutput, activity: list[float]) -> None:
    """Read stdout and stderr until both close, decoding UTF-8 across read boundaries
    (invalid bytes become U+FFFD rather than failing the step)."""
    sel = selectors.DefaultSelector()
    decoders = {}
    for stream, pipe in (("o", proc.stdout), ("e", proc.stderr)):
        assert pipe is not None
        sel.register(pipe, selectors.EVENT_READ, stream)
        decoders[stream] = codecs.getincrementaldecoder("utf-8")(errors="replace")
    open_pipes = 2
    try:
        while open_pipes:
            for key, _ in sel.select():
                data = os.read(key.fd, 65536)
                stream = key.data
                if not data:
                    sel.unregister(key.fileobj)
                    output.write(stream, decoders[stream].decode(b"", final=True))
                    open_pipes -= 1
                    continue
                activity[0] = time.monotonic()
                output.write(stream, decoders[stream].decode(data))
    finally:
        sel.close()
        output.end()


def run_command(command: str | list[str], cwd: str, env: dict[str, str],
                output: StepOutput, stop: threading.Event, timeout: float | None = None,
                max_time: float | None = None) -> CommandResult:
    """Run ``command`` (a list is exec'd, a string goes to ``/bin/sh -c``) in ``cwd``.

    ``timeout`` is Buildbot's: seconds *without output* before the command is killed;
    ``max_time`` bounds the whole run. ``stop`` (set by a heartbeat or a log answer)
    kills it too. Output is flushed to the master while it runs.
    """
    os.makedirs(cwd, exist_ok=True)
    output.header(describe_command(command))
    output.header(f" in dir {cwd} (timeout {timeout} secs"
                  + (f", maxTime {max_time} secs" if max_time else "") + ")")
    started = time.monotonic()
    try:
        proc = subprocess.Popen(command, cwd=cwd, env=env, shell=isinstance(command, str),
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True)
    except OSError as exc:
        # the shell's conventions: 127 not found, 126 found but not runnable
        rc = 127 if isinstance(exc, FileNotFoundError) else 126
        output.header(f"cannot run the command: {exc.strerror or exc}")
        output.header(f"program finished with exit code {rc}")
        output.flush()
        return CommandResult(rc, None, time.monotonic() - started)

    activity = [started]
    reader = threading.Thread(target=_pump, args=(proc, output, activity), daemon=True,
                              name="output-pump")
    reader.start()
    interrupted: str | None = None
    details: list[str] = []
    exited_at: float | None = None
    while reader.is_alive() or proc.poll() is None:
        # a poll interval, cut short when output piles up or ends
        if output.wake.wait(0.05):
            output.wake.clear()
            if output.finished:
                reader.join()  # it is returning: the command's output is all read
        now = time.monotonic()
        if output.due():
            output.flush()
        if proc.poll() is None and interrupted is None:
            if stop.is_set():
                interrupted = "stopped"
                details.append("command interrupted: the build was stopped, killing it")
            elif timeout and now - activity[0] > timeout:
                interrupted = "timeout"
                details.append(f"command timed out: {timeout:g} seconds without output, "
                               "killing it")
            elif max_time and now - started > max_time:
                interrupted = "timeout"
                details.append(f"command timed out: {max_time:g} seconds elapsed, killing it")
            if interrupted:
                output.header(details[-1])
                _kill_group(proc)
        elif reader.is_alive():
            # the command is done but something it started still holds its output open
            exited_at = exited_at or now
            if now - exited_at > DRAIN_AFTER_EXIT:
                output.header("the command exited but left processes holding its output; "
                              "killing them")
                _kill_group(proc)
                reader.join(5)
                break
    rc = proc.wait()
    elapsed = time.monotonic() - started
    if rc < 0:
        output.header(f"process killed by signal {-rc}")
    output.header(f"program finished with exit code {rc}")
    output.header(f"elapsedTime={elapsed:.6f}")
    output.flush()
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()
    return CommandResult(rc, interrupted, elapsed, details)
