"""Throwaway PostgreSQL clusters for the test suite.

Every database test runs on PostgreSQL as well as SQLite, so the suite needs a real server.
Rather than depend on a system service (its port, users and state), each run makes its own
cluster in a temporary directory on a free loopback port, with durability off for speed,
and deletes it afterwards.

The cluster is owned by a small supervisor process (``serve`` below) that lives exactly as
long as a pipe from its owner: when the owner calls ``stop()``, exits, or is killed
(``timeout``, Ctrl-C, SIGKILL), the pipe closes and the supervisor shuts postgres down and
removes its files, so an interrupted run never leaves a server behind. The supervisor is
also postgres's parent and reaps it.

Two users: ``tests/conftest.py`` calls :func:`start_cluster` when ``BBWEB_TEST_PG_URL`` is
unset, and ``scripts/test.sh`` runs ``python -m tests.support.pgcluster serve DIR`` as a
coprocess (it prints the URL, then runs until its stdin closes).

initdb and postgres refuse to run as root, so as root they run as the ``postgres`` user via
``runuser``, in a fresh directory that user owns.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import psycopg

SERVER_PROGRAMS = ("initdb", "postgres", "pg_ctl")
SUPERUSER = "bbweb"
RUN_AS = "postgres"  # the account the server runs as when we are root
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 60.0
START_ATTEMPTS = 4  # a probed free port can be taken before postgres binds it; retry then
# sun_path is 108 bytes; leave room for "/.s.PGSQL.65535.lock".
MAX_SOCKET_DIR_LEN = 80
REPO_ROOT = Path(__file__).resolve().parents[2]


def _has_server_programs(directory: Path) -> bool:
    return all(os.access(directory / prog, os.X_OK) for prog in SERVER_PROGRAMS)


def _version_key(name: str) -> tuple[int, ...]:
    """Sort ``/usr/lib/postgresql/<version>`` numerically (so 9.6 < 10 < 15)."""
    try:
        return tuple(int(part) for part in name.split("."))
    except ValueError:
        return (-1,)


def find_pg_bin() -> Path | None:
    """The directory with initdb, postgres and pg_ctl, or None when not installed.

    Order: ``BBWEB_PG_BIN``, the newest Debian/Ubuntu ``/usr/lib/postgresql/<v>/bin``
    (Debian keeps the server programs off PATH), then PATH.
    """
    env = os.environ.get("BBWEB_PG_BIN")
    if env and _has_server_programs(Path(env)):
        return Path(env)
    root = Path("/usr/lib/postgresql")
    if root.is_dir():
        for version in sorted((p.name for p in root.iterdir()), key=_version_key,
                              reverse=True):
            candidate = root / version / "bin"
            if _has_server_programs(candidate):
                return candidate
    initdb = shutil.which("initdb")
    if initdb:
        candidate = Path(initdb).resolve().parent
        if _has_server_programs(candidate):
            return candidate
    return None


# --- the owner's side ------------------------------------------------------------------


@dataclass
class Cluster:
    """A running throwaway cluster; ``url`` is its superuser's SQLAlchemy URL."""

    url: str
    _supervisor: subprocess.Popen[bytes]

    def stop(self) -> None:
        """Close the supervisor's pipe (it stops postgres and removes the files); wait."""
        proc = self._supervisor
        if proc.stdin and not proc.stdin.closed:
            proc.stdin.close()
        try:
            proc.wait(timeout=STOP_TIMEOUT_S + 30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()


def start_cluster(path: str | os.PathLike[str]) -> Cluster:
    """Start a cluster for ``path`` (its files go there, or elsewhere as root); returns
    once a real connection succeeds. Raises RuntimeError with the server log's tail."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.pgcluster", "serve", str(path)],
        cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        # Own session: a Ctrl-C meant for pytest must not kill postgres before the fixture
        # teardown; the supervisor still goes away with its pipe.
        start_new_session=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    line = proc.stdout.readline().decode().strip()
    if not line:
        if proc.stdin:
            proc.stdin.close()
        proc.wait()
        err = proc.stderr.read().decode(errors="replace").strip()
        proc.stdout.close()
        proc.stderr.close()
        raise RuntimeError(f"could not start a PostgreSQL cluster: {err}")
    # Nothing more to read from stderr in normal operation; don't let a full pipe block it.
    proc.stderr.close()
    return Cluster(url=line, _supervisor=proc)


# --- the supervisor's side -------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"
    return "\n".join(text.splitlines()[-lines:])


def _traversable_by_others(directory: Path) -> bool:
    """Whether the postgres user can reach ``directory`` (it and every ancestor o+x)."""
    for p in [directory, *directory.parents]:
        try:
            if not p.stat().st_mode & 0o001:
                return False
        except OSError:
            return False
    return True


class _Server:
    """initdb + postgres in one directory, run by the supervisor process."""

    def __init__(self, path: Path, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.as_postgres = os.geteuid() == 0
        self.dirs = [path]  # removed on stop
        if self.as_postgres:
            # The caller's directory (e.g. pytest's 0700 tmp tree) is often unreachable
            # for the postgres user: use a fresh directory it owns in the system temp dir.
            tmp = Path(tempfile.gettempdir())
            if not _traversable_by_others(tmp):
                tmp = Path("/tmp")
            self.base = Path(tempfile.mkdtemp(prefix="bbweb-pg-", dir=tmp))
            shutil.chown(self.base, RUN_AS, RUN_AS)
            self.dirs.insert(0, self.base)
        else:
            self.base = path
        self.datadir = self.base / "data"
        self.logfile = self.base / "postgres.log"
        self.password = secrets.token_hex(16)
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def _cmd(self, prog: str, *args: str) -> list[str]:
        cmd = [str(self.bin_dir / prog), *args]
        return ["runuser", "-u", RUN_AS, "--", *cmd] if self.as_postgres else cmd

    def _run(self, prog: str, *args: str) -> subprocess.CompletedProcess[str]:
        # cwd=base: as postgres, the caller's cwd may not be readable.
        return subprocess.run(self._cmd(prog, *args), cwd=self.base, capture_output=True,
                              text=True, check=False)

    @property
    def url(self) -> str:
        return (f"postgresql+psycopg://{SUPERUSER}:{self.password}@127.0.0.1:{self.port}"
                "/postgres")

    def start(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        # A real file owned by the server's user (process substitution does not survive
        # runuser), removed right after initdb.
        pwfile = self.base / "pwfile"
        pwfile.write_text(self.password + "\n")
        pwfile.chmod(0o600)
        if self.as_postgres:
            shutil.chown(pwfile, RUN_AS, RUN_AS)
        res = self._run("initdb", "-D", str(self.datadir), "--auth=scram-sha-256",
                        f"--username={SUPERUSER}", f"--pwfile={pwfile}", "--encoding=UTF8",
                        "--locale=C.UTF-8", "--no-sync", "--no-instructions")
        pwfile.unlink()
        if res.returncode != 0:
            raise RuntimeError(f"initdb failed ({res.returncode}):\n{res.stdout}{res.stderr}")
        for attempt in range(1, START_ATTEMPTS + 1):
            if self._start_postgres():
                return
            log = _tail(self.logfile)
            if "could not bind" not in log or attempt == START_ATTEMPTS:
                raise RuntimeError(f"postgres did not come up on port {self.port}; "
                                   f"log tail:\n{log}")
            self.logfile.unlink(missing_ok=True)  # port taken meanwhile; try another

    def _start_postgres(self) -> bool:
        """Start postgres; True once a real TCP login works, False if it exited."""
        self.port = _free_port()
        socket_dir = str(self.base) if len(str(self.base)) <= MAX_SOCKET_DIR_LEN else ""
        opts = ["-c", "listen_addresses=127.0.0.1", "-c", f"port={self.port}",
                "-c", f"unix_socket_directories={socket_dir}", "-c", "fsync=off",
                "-c", "full_page_writes=off", "-c", "synchronous_commit=off",
                "-c", "max_connections=300"]
        with open(self.logfile, "ab") as log:
            if self.as_postgres:
                shutil.chown(self.logfile, RUN_AS, RUN_AS)
            self.proc = subprocess.Popen(self._cmd("postgres", "-D", str(self.datadir), *opts),
                                         cwd=self.base, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT)
        deadline = time.monotonic() + READY_TIMEOUT_S
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with psycopg.connect(host="127.0.0.1", port=self.port, user=SUPERUSER,
                                     password=self.password, dbname="postgres",
                                     connect_timeout=5, sslmode="disable") as conn:
                    conn.execute("SELECT 1")
                return True
            except psycopg.OperationalError as exc:
                last = exc
                time.sleep(0.05)
        raise RuntimeError(f"postgres on port {self.port} not accepting connections after "
                           f"{READY_TIMEOUT_S:.0f}s ({last}); log tail:\n{_tail(self.logfile)}")

    def stop(self) -> None:
        """Fast shutdown (disconnects clients), reap postgres, delete every file."""
        try:
            if self.proc is not None and self.proc.poll() is None:
                res = self._run("pg_ctl", "stop", "-D", str(self.datadir), "-m", "fast",
                                "-w", "-t", str(int(STOP_TIMEOUT_S)))
                if res.returncode != 0:
                    self._run("pg_ctl", "stop", "-D", str(self.datadir), "-m", "immediate",
                              "-w", "-t", "10")
                try:
                    self.proc.wait(timeout=STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        finally:
            for d in self.dirs:
                shutil.rmtree(d, ignore_errors=True)


class _Shutdown(Exception):
    pass


def _raise_shutdown(_signum: int, _frame: object) -> None:
    raise _Shutdown


def serve(path: Path, out: IO[str] = sys.stdout) -> int:
    """Start a cluster in ``path``, print its URL, keep it until stdin reaches EOF (or
    SIGTERM/SIGHUP), then stop it and remove ``path``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the owner decides, through the pipe
    signal.signal(signal.SIGTERM, _raise_shutdown)
    signal.signal(signal.SIGHUP, _raise_shutdown)
    bin_dir = find_pg_bin()
    if bin_dir is None:
        print("PostgreSQL server binaries (initdb, postgres, pg_ctl) not found; install "
              "the 'postgresql' package or set BBWEB_PG_BIN", file=sys.stderr)
        return 1
    server = _Server(path.resolve(), bin_dir)
    try:
        try:
            server.start()
        except RuntimeError as exc:
            print(exc, file=sys.stderr)
            return 1
        print(server.url, file=out, flush=True)
        with contextlib.suppress(_Shutdown):
            while sys.stdin.buffer.read(65536):
                pass
    except _Shutdown:
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # finish cleaning up regardless
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        server.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] != "serve":
        print("usage: python -m tests.support.pgcluster serve DIR\n"
              "  prints the cluster's URL, runs until stdin is closed, then removes DIR",
              file=sys.stderr)
        return 2
    return serve(Path(args[1]))


if __name__ == "__main__":
    sys.exit(main())
