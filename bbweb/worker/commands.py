"""Running one command for a step: output streamed as it arrives, the whole process group
killed on timeout or stop.

stdout and stderr are read by one thread from both pipes, so they reach the log in the
order they were written (as far as two pipes allow). That thread also cuts the output into
the chunks the master stores and compresses each one as soon as it is full, while the
step's own loop sends what is ready: compression and the master's work on the previous
request overlap instead of taking turns. A quiet command's output is sent within
:data:`FLUSH_INTERVAL`; a busy one's goes in requests of up to :data:`POST_BYTES`, which
keeps it from turning into thousands of requests.

A command may print faster than the master stores. Once :data:`MAX_HELD` bytes of its
output are held (compressed and not yet stored), its pipes are not read until the master
has taken some, so the command blocks on its next write instead of the worker's memory
growing with the log.
"""

from __future__ import annotations

import fcntl
import os
import re
import selectors
import shlex
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from bbweb.worker import logframes
from bbweb.worker.logframes import Frame

FLUSH_INTERVAL = 0.5  # seconds output may wait for more before it is sent
SUPERVISE_INTERVAL = 0.05  # seconds between looks at a running command (stop, timeouts)
BATCH_BYTES = 1024 * 1024  # bytes of text in full chunks that are sent at once (less
# waits for more, up to FLUSH_INTERVAL: each request costs the master a transaction)
POST_BYTES = 512 * 1024  # compressed bytes per request at most (a fast command's
# backlog goes in several requests, so neither side holds a whole log in one body)
FINISH_LOG_BYTES = 64 * 1024  # compressed bytes of a step's last output that its finish
# call may carry (to a master that takes it), instead of a log request of their own
MAX_HELD = 8 * 1024 * 1024  # bytes held (compressed chunks not yet stored, and the
# chunk being filled) before the command's pipes wait for the master
READ_BYTES = 1024 * 1024  # one read from a pipe at most
PIPE_BYTES = 1024 * 1024  # the pipes' capacity we ask the kernel for (it may give less)
KILL_GRACE = 3.0  # seconds between SIGTERM and SIGKILL for the process group
DRAIN_AFTER_EXIT = 2.0  # how long a finished command's descendants may hold its pipes

_SETPIPE_SZ: int | None = getattr(fcntl, "F_SETPIPE_SZ", None)
_ENV_REF = re.compile(r"\$\{([0-9A-Za-z_]*)\}")


class StepOutput:
    """Output of one step on its way to the master. Threads :meth:`write` whole UTF-8
    text; it is cut into chunks of at most ``logframes.MAX_CHUNK_BYTES`` of one stream, each
    compressed when full. The step's loop sends them (:meth:`send_due`, :meth:`flush`)
    and learns from each answer whether a stop was asked for."""

    def __init__(self, send: Callable[[list[Frame]], bool], stop: threading.Event,
                 max_held: int = MAX_HELD, keep: int = 0) -> None:
        self._send = send
        self._stop = stop
        self._max_held = max_held
        # bytes of compressed output that flush() leaves for rest(), for the step's finish
        # call to carry: the last output costs no request of its own
        self._keep = keep
        self._cond = threading.Condition()
        self._frames: deque[Frame] = deque()  # compressed, waiting to be sent
        self._ready = 0  # bytes of text in them
        self._stream = "o"  # of the chunk being filled
        self._filling: list[bytes] = []
        self._filling_bytes = 0
        self._held = 0  # bytes held: frames' zlib data until stored, the chunk being filled
        self._abandoned = False
        self._last_flush = time.monotonic()
        # wakes the step's loop early: a chunk is ready, or the output ended
        self.wake = threading.Event()
        self.waiting_for_room = False  # the pipes wait for the master, not the command

    def write(self, stream: str, data: bytes) -> None:
        """Append ``data`` (whole UTF-8) to ``stream``'s output."""
        if not data:
            return
        limit = logframes.MAX_CHUNK_BYTES
        with self._cond:
            if self._abandoned:
                return
            self._held += len(data)  # until it is compressed
            if self._filling_bytes and stream != self._stream:
                self._seal()
            self._stream = stream
            while self._filling_bytes + len(data) > limit:
                cut = logframes.cut_point(data, limit - self._filling_bytes)
                if cut:
                    self._filling.append(data[:cut])
                    self._filling_bytes += cut
                    data = data[cut:]
                self._seal()
            if data:
                self._filling.append(data)
                self._filling_bytes += len(data)

    def header(self, text: str) -> None:
        self.write("h", (text if text.endswith("\n") else text + "\n").encode(
            "utf-8", errors="replace"))

    def _seal(self) -> None:
        """The chunk being filled is done: compress it (the lock is held)."""
        data = self._filling[0] if len(self._filling) == 1 else b"".join(self._filling)
        frame = logframes.compress(self._stream, data)
        self._frames.append(frame)
        self._ready += frame.size
        self._held += len(frame.compressed) - frame.size
        self._filling, self._filling_bytes = [], 0
        self.wake.set()

    def wait_for_room(self) -> None:
        """Return once less than ``max_held`` bytes are held (called by the thread that
        reads the command's pipes before each read)."""
        with self._cond:
            if self._held < self._max_held or self._abandoned:
                return
            self.waiting_for_room = True
            self.wake.set()  # what is held is due now
            try:
                while self._held >= self._max_held and not self._abandoned:
                    self._cond.wait()
            finally:
                self.waiting_for_room = False

    def abandon(self) -> None:
        """Nothing more will be sent (the master is gone): drop what is held and let a
        reader waiting for room go on (it discards the rest)."""
        with self._cond:
            self._abandoned = True
            self._frames.clear()
            self._ready = 0
            self._filling, self._filling_bytes = [], 0
            self._cond.notify_all()

    def _take(self, everything: bool) -> list[Frame]:
        """The frames of the next request, up to POST_BYTES of zlib data: when BATCH_BYTES
        are ready or the reader waits for room, anything once output waited FLUSH_INTERVAL
        (the chunk being filled too, when no full one is ready), or everything when
        ``everything`` is wanted."""
        with self._cond:
            waited = time.monotonic() - self._last_flush >= FLUSH_INTERVAL
            if not (everything or waited or self._ready >= BATCH_BYTES
                    or self.waiting_for_room):
                return []
            if self._filling_bytes and (everything or not self._frames):
                self._seal()
            if everything and self._keep and \
                    sum(len(f.compressed) for f in self._frames) <= self._keep:
                return []  # left for rest()
            frames: list[Frame] = []
            size = 0
            while self._frames and (not frames or size + len(self._frames[0].compressed)
                                    <= POST_BYTES):
                frame = self._frames.popleft()
                frames.append(frame)
                size += len(frame.compressed)
                self._ready -= frame.size
            if self._frames:
                self.wake.set()  # more is ready: the loop comes straight back
            return frames

    def _post(self, frames: list[Frame]) -> None:
        self._last_flush = time.monotonic()
        stop = self._send(frames)
        with self._cond:
            self._held -= sum(len(f.compressed) for f in frames)
            self._cond.notify_all()
        if stop:
            self._stop.set()

    def send_due(self) -> None:
        """Send one request of what is due, if anything is."""
        frames = self._take(everything=False)
        if frames:
            self._post(frames)

    def flush(self) -> None:
        """Send everything held (but what is left for :meth:`rest`, when ``keep`` is set)."""
        while frames := self._take(everything=True):
            self._post(frames)

    def rest(self) -> list[Frame]:
        """The output not sent yet, for the step's finish call to carry (at most ``keep``
        compressed bytes: more is sent first); none when ``keep`` is 0 (all is sent)."""
        self.flush()
        with self._cond:
            if self._filling_bytes:
                self._seal()
            frames = list(self._frames)
            self._frames.clear()
            self._ready = 0
            self._held -= sum(len(f.compressed) for f in frames)
            self._cond.notify_all()
            return frames


class Utf8Pipe:
    """The bytes of one pipe as whole UTF-8: a character cut by a read waits for the next
    read, invalid bytes become U+FFFD (rather than failing the step)."""

    def __init__(self) -> None:
        self._carry = b""

    def feed(self, data: bytes, final: bool = False) -> bytes:
        if self._carry:
            data, self._carry = self._carry + data, b""
        if data.isascii():
            return data
        if not final:
            end = _whole_end(data)
            if end < len(data):
                data, self._carry = data[:end], data[end:]
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return data.decode("utf-8", errors="replace").encode("utf-8")
        return data


def _whole_end(data: bytes) -> int:
    """Where a character that ``data`` ends inside of starts (``len(data)`` if none)."""
    n = len(data)
    for i in range(n - 1, max(n - 4, -1), -1):
        byte = data[i]
        if byte & 0xC0 == 0x80:
            continue  # a continuation byte: look further back for the first
        need = 2 if 0xC0 <= byte < 0xE0 else 3 if 0xE0 <= byte < 0xF0 else \
            4 if 0xF0 <= byte < 0xF8 else 1
        return i if n - i < need else n
    return n


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


def _pump(proc: subprocess.Popen[bytes], output: StepOutput, activity: list[float],
          ended: threading.Event) -> None:
    """Read stdout and stderr until both close; wait for room before each read."""
    sel = selectors.DefaultSelector()
    utf8 = {}
    for stream, pipe in (("o", proc.stdout), ("e", proc.stderr)):
        assert pipe is not None
        if _SETPIPE_SZ is not None:  # fewer, larger reads (Linux only)
            try:
                fcntl.fcntl(pipe.fileno(), _SETPIPE_SZ, PIPE_BYTES)
            except OSError:
                pass  # over the system's limit: the default size does too
        sel.register(pipe, selectors.EVENT_READ, stream)
        utf8[stream] = Utf8Pipe()
    open_pipes = 2
    try:
        while open_pipes:
            output.wait_for_room()
            for key, _ in sel.select():
                data = os.read(key.fd, READ_BYTES)
                stream = key.data
                if not data:
                    sel.unregister(key.fileobj)
                    output.write(stream, utf8[stream].feed(b"", final=True))
                    open_pipes -= 1
                    continue
                activity[0] = time.monotonic()
                output.write(stream, utf8[stream].feed(data))
    finally:
        sel.close()
        ended.set()
        output.wake.set()


def run_command(command: str | list[str], cwd: str, env: dict[str, str],
                output: StepOutput, stop: threading.Event, timeout: float | None = None,
                max_time: float | None = None) -> CommandResult:
    """Run ``command`` (a list is exec'd, a string goes to ``/bin/sh -c``) in ``cwd``.

    ``timeout`` is Buildbot's: seconds *without output* before the command is killed
    (time its output waits for the master does not count); ``max_time`` bounds the whole
    run. ``stop`` (set by a heartbeat or a log answer) kills it too. Output is sent to the
    master while it runs. Should sending fail for good (the master is gone), the command
    is killed before the error goes up.
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
    ended = threading.Event()
    reader = threading.Thread(target=_pump, args=(proc, output, activity, ended),
                              daemon=True, name="output-pump")
    reader.start()
    try:
        result = _supervise(proc, output, stop, reader, ended, activity, started, timeout,
                            max_time)
    except BaseException:
        # the output cannot be sent: the command must not wait for a master that is gone
        output.abandon()
        _kill_group(proc)
        reader.join(5)
        raise
    finally:
        if not reader.is_alive():
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
    return result


def _supervise(proc: subprocess.Popen[bytes], output: StepOutput, stop: threading.Event,
               reader: threading.Thread, ended: threading.Event, activity: list[float],
               started: float, timeout: float | None, max_time: float | None
               ) -> CommandResult:
    """Send the output of a running command until it ends; kill it when it must be."""
    interrupted: str | None = None
    details: list[str] = []
    exited_at: float | None = None
    while reader.is_alive() or proc.poll() is None:
        if reader.is_alive():
            # a poll interval, cut short when a chunk is ready or the output ends
            if output.wake.wait(SUPERVISE_INTERVAL):
                output.wake.clear()
                if ended.is_set():
                    reader.join()  # it is returning: the command's output is all read
        else:
            # the output is all read: the command closed it as it exited, but is often
            # not yet reaped (about half the time for a quick one). Wait for its exit
            # itself rather than a whole interval.
            try:
                proc.wait(SUPERVISE_INTERVAL)
            except subprocess.TimeoutExpired:
                pass
        output.send_due()
        now = time.monotonic()
        if output.waiting_for_room:
            activity[0] = now  # the command is not silent: the master is slow
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
    return CommandResult(rc, interrupted, elapsed, details)
