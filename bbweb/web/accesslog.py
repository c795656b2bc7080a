"""``http.log``: gunicorn's access log, rotated by size, safe with many worker processes.

gunicorn forks several worker processes (each with threads) that all append access-log
lines to the same file. Python's ``RotatingFileHandler`` is not safe there: two processes
decide to rotate at once, or one keeps writing into the file another has just renamed.
:class:`SharedRotatingFileHandler` takes an exclusive ``flock`` on a lock file beside the
log around "reopen if someone else rotated, rotate if full, write, flush", so every line
lands whole in exactly one file and at most ``backup_count`` rotated files
(``http.log.1`` newest … ``http.log.N`` oldest) are kept.

gunicorn uses it through ``--logger-class bbweb.web.accesslog.AccessLogger`` (what
``bbweb start`` passes); the size and count come from the ``BBWEB_HTTP_LOG_ROTATE_LENGTH``
and ``BBWEB_HTTP_LOG_MAX_ROTATED_FILES`` variables (gunicorn's ``--env`` or the
environment), which ``bbweb start`` sets from ``WebStatus(logRotateLength=…,
maxRotatedFiles=…)``.
"""

from __future__ import annotations

import fcntl
import logging
import os
import traceback
from typing import Any, TextIO

from gunicorn.glogging import Logger

ROTATE_LENGTH_VAR = "BBWEB_HTTP_LOG_ROTATE_LENGTH"
MAX_ROTATED_FILES_VAR = "BBWEB_HTTP_LOG_MAX_ROTATED_FILES"
DEFAULT_ROTATE_LENGTH = 10_000_000
DEFAULT_MAX_ROTATED_FILES = 10


def lock_path_for(filename: str) -> str:
    head, tail = os.path.split(os.path.abspath(filename))
    return os.path.join(head, f".{tail}.lock")


class SharedRotatingFileHandler(logging.FileHandler):
    """A size-rotated log file that several processes may append to at once."""

    def __init__(self, filename: str, max_bytes: int = DEFAULT_ROTATE_LENGTH,
                 backup_count: int = DEFAULT_MAX_ROTATED_FILES,
                 encoding: str = "utf-8") -> None:
        if max_bytes < 1 or backup_count < 1:
            raise ValueError("max_bytes and backup_count must be positive")
        super().__init__(filename, mode="a", encoding=encoding, delay=True)
        self.max_bytes = max_bytes
        self.backup_count = backup_count
        self.lock_path = lock_path_for(self.baseFilename)
        self._lock_fd: int | None = None
        self._lock_pid: int | None = None

    # -- the inter-process lock ------------------------------------------------------
    def _process_lock_fd(self) -> int:
        """A lock file descriptor of this process's own.

        ``flock`` locks belong to the open file description, which a forked child shares
        with its parent: a child must open the lock file itself or it would not exclude
        the parent (or its siblings).
        """
        pid = os.getpid()
        if self._lock_fd is None or self._lock_pid != pid:
            if self._lock_fd is not None:
                try:
                    os.close(self._lock_fd)  # the parent's copy; its lock is unaffected
                except OSError:
                    pass
            self._lock_fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                                    0o644)
            self._lock_pid = pid
        return self._lock_fd

    # -- writing -----------------------------------------------------------------------
    def _reopen_if_moved(self) -> tuple[TextIO, int]:
        """Follow the file name: another process (or logrotate) may have renamed it.
        Returns the stream and the size of its file (from the same ``fstat``)."""
        try:
            on_disk = os.stat(self.baseFilename)
        except FileNotFoundError:
            on_disk = None
        if self.stream is not None:
            mine = os.fstat(self.stream.fileno())
            if on_disk is not None and (mine.st_ino, mine.st_dev) == (on_disk.st_ino,
                                                                       on_disk.st_dev):
                return self.stream, mine.st_size
            self.stream.close()
            self.stream = None
        stream = self.stream = self._open()
        return stream, os.fstat(stream.fileno()).st_size

    def _rotate(self) -> TextIO:
        """http.log → http.log.1 → … → http.log.N; the oldest falls off the end."""
        if self.stream is not None:
            self.stream.close()
            self.stream = None
        for i in range(self.backup_count - 1, 0, -1):
            src = f"{self.baseFilename}.{i}"
            if os.path.exists(src):
                os.replace(src, f"{self.baseFilename}.{i + 1}")
        os.replace(self.baseFilename, f"{self.baseFilename}.1")
        stream = self.stream = self._open()
        return stream

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._append(self.format(record) + self.terminator)
        except Exception:
            self.handleError(record)

    def write_line(self, line: str) -> None:
        """Append one formatted line (what :meth:`emit` writes for a record whose
        formatted text is ``line``), under the handler's thread lock as ``handle`` takes
        it: :class:`AccessLogger` writes its lines here without a ``LogRecord``."""
        with self.lock:  # type: ignore[union-attr]
            self._append(line + self.terminator)

    def _append(self, line: str) -> None:
        """Rotate if ``line`` would not fit, then write it, all under the file lock: the
        threads of a process hold ``flock`` together, so callers hold the handler's lock."""
        size = len(line.encode(self.encoding or "utf-8", "backslashreplace"))
        fd = self._process_lock_fd()
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            stream, current = self._reopen_if_moved()
            if current > 0 and current + size > self.max_bytes:
                stream = self._rotate()
            stream.write(line)
            stream.flush()
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def close(self) -> None:
        self.acquire()
        try:
            if self._lock_fd is not None and self._lock_pid == os.getpid():
                try:
                    os.close(self._lock_fd)
                except OSError:
                    pass
            self._lock_fd = None
            super().close()
        finally:
            self.release()


class _NoHeaders:
    """A response as gunicorn's atoms see it, without its headers (no atom of the format
    names one)."""

    headers: tuple[()] = ()

    def __init__(self, resp: Any) -> None:
        self.status = resp.status
        self.sent = getattr(resp, "sent", None)


def _setting(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise RuntimeError(f"{name}={raw!r} is not a number") from None
    if value < 1:
        raise RuntimeError(f"{name} must be positive, not {value}")
    return value


# What gunicorn's own atoms (``%(h)s``, ``%(r)s``, ``%(u)s`` …) read from the environ.
_ATOM_ENVIRON = ("REMOTE_ADDR", "REQUEST_METHOD", "RAW_URI", "SERVER_PROTOCOL", "PATH_INFO",
                 "QUERY_STRING", "HTTP_REFERER", "HTTP_USER_AGENT", "HTTP_AUTHORIZATION")


class AccessLogger(Logger):
    """gunicorn's logger with ``--access-logfile FILE`` written through
    :class:`SharedRotatingFileHandler` (``-`` and no access log behave as usual).

    gunicorn makes an atom of every request header and every environ variable for each
    line, whether the format uses them or not (a fifth of a small request's time); with a
    format that names none (``{...}i``, ``{...}o``, ``{...}e``: the default one), only the
    atoms it can use are made. The line is the same."""

    def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> Any:
        if "}" in (self.cfg.access_log_format or ""):
            return super().atoms(resp, req, environ, request_time)
        needed = {k: environ[k] for k in _ATOM_ENVIRON if k in environ}
        no_headers: Any = _NoHeaders(resp)
        no_request_headers: Any = ()
        return super().atoms(no_headers, no_request_headers, needed, request_time)

    def setup(self, cfg: Any) -> None:
        self._direct = None
        super().setup(cfg)
        target = cfg.accesslog
        if target is None or target == "-":
            return
        env = dict(os.environ)
        env.update(cfg.env or {})
        max_bytes = _setting(env, ROTATE_LENGTH_VAR, DEFAULT_ROTATE_LENGTH)
        backups = _setting(env, MAX_ROTATED_FILES_VAR, DEFAULT_MAX_ROTATED_FILES)
        formatter = None
        for handler in list(self.access_log.handlers):
            if getattr(handler, "_gunicorn", False):
                formatter = handler.formatter
                self.access_log.removeHandler(handler)
                handler.close()
        handler = SharedRotatingFileHandler(target, max_bytes, backups)
        handler.setFormatter(formatter or logging.Formatter(self.access_fmt))
        handler._gunicorn = True  # type: ignore[attr-defined]  # replaced on reload
        self.access_log.addHandler(handler)
        self._direct = handler if self._plain_handler(handler) else None

    def _plain_handler(self, handler: SharedRotatingFileHandler) -> bool:
        """Whether a line written straight to ``handler`` is what logging would write:
        it is the access logger's only handler, nothing filters, and its format is the
        bare message."""
        formatter = handler.formatter
        return (self.access_log.handlers == [handler] and not self.access_log.filters
                and not handler.filters and not self.access_log.propagate
                and formatter is not None and formatter._fmt == "%(message)s"
                and type(formatter) is logging.Formatter)

    _direct: SharedRotatingFileHandler | None = None

    def access(self, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
        """gunicorn's access line, written to ``http.log`` without the logging module's
        record, handler and formatter calls in between (a tenth of a small request's
        time): the same format applied to the same atoms, the same file and rotation.
        A logging configuration of the operator's own (other handlers, filters, another
        format, a level above INFO) goes through logging as before."""
        handler = self._direct
        if (handler is None or self.access_log.handlers != [handler]
                or not self.access_log.isEnabledFor(logging.INFO)
                or handler.level > logging.INFO):
            super().access(resp, req, environ, request_time)
            return
        try:
            line = self.cfg.access_log_format % self.atoms_wrapper_class(
                self.atoms(resp, req, environ, request_time))
            handler.write_line(line)
        except Exception:
            self.error(traceback.format_exc())
