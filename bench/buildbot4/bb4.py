"""A Buildbot 4 master (and its workers) driven from outside, for the side-by-side figures.

Everything here runs in bbweb's own interpreter and talks to the Buildbot installation
only through its programs (``buildbot``, ``buildbot-worker``, ``twistd`` in the Buildbot
virtualenv made by ``bench/buildbot4/install.py``), its REST API over HTTP and its SQLite
file (read-only, to see when a build finished without adding HTTP load to the master).
No Buildbot code is imported here; the one script that uses the installed package,
``history.py``, runs in the Buildbot virtualenv's interpreter.

The master.cfg written here mirrors the bbweb bench masters: ``--builders`` builders
``builder-00``… of five cheap steps, local workers (each builder on two of them), a
``ForceScheduler`` for every builder, one ``SingleBranchScheduler`` per builder taking the
changes whose ``project`` is its name, and the ``github`` change hook with the same
secret as ``bench/github_hook.py``. The master runs as one ``twistd --nodaemon`` process,
which is the whole master (Buildbot 4 runs the web server, the scheduler and the build
logic in one process).
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import _common  # noqa: E402
import requests  # noqa: E402
from _common import Processes, free_port, wait_for  # noqa: E402

# the row scripts measure a Buildbot master as the bbweb benches measure bbweb's processes
rss_pss_mib = _common.rss_pss_mib
cpu_seconds = _common.cpu_seconds

GITHUB_SECRET = "bench-github-secret"  # the same secret bench/github_hook.py gives bbweb
WORKER_PASSWORD = "bench-pw"
STEPS = ("update", "configure", "compile", "test", "lint")
HISTORY_DONE = "bench-history.done"


@dataclass
class Venv:
    """The virtualenv Buildbot 4 is installed in (never bbweb's own)."""

    path: Path

    def bin(self, name: str) -> str:
        return str(self.path / "bin" / name)

    @property
    def python(self) -> str:
        return self.bin("python")

    def version(self) -> str | None:
        """``4.x.y`` when a Buildbot 4 master and worker are installed there, else None."""
        if not (self.path / "bin" / "buildbot").exists():
            return None
        try:
            out = subprocess.run(
                [self.python, "-c", "import importlib.metadata as m; "
                 "print(m.version('buildbot'), m.version('buildbot-worker'))"],
                capture_output=True, text=True, timeout=60).stdout.split()
        except (OSError, subprocess.TimeoutExpired):
            return None
        if len(out) == 2 and out[0].startswith("4."):
            return out[0]
        return None


@dataclass
class Layout:
    """What a bench master.cfg holds."""

    builders: int = 20
    workers: int = 2  # worker-0 … worker-(n-1); builder i runs on two of them
    trivial: bool = False  # a builder ``trivial`` (one ``true`` step) on its own worker
    noop: bool = False  # a builder ``noop`` (one ``true`` step) on every worker-N
    big_log_mib: int = 0  # a builder ``biglog`` whose step prints this many MiB
    extra: list[str] = field(default_factory=list)


def builder_names(count: int) -> list[str]:
    return [f"builder-{i:02d}" for i in range(count)]


BIG_LOG_PROGRAM = (
    "import sys\n"
    "line = b'%08d compiling src/module_%04d.c: cc -O2 -Wall -c -o build/module.o ok\\n'\n"
    "out = sys.stdout.buffer\n"
    "total = {mib} * 1024 * 1024\n"
    "n = 0\n"
    "while total > 0:\n"
    "    chunk = b''.join(line % (n + i, (n + i) % 10000) for i in range(1000))[:total]\n"
    "    out.write(chunk)\n"
    "    total -= len(chunk)\n"
    "    n += 1000\n"
)


def master_cfg(layout: Layout, http_port: int, pb_port: int) -> str:
    """The master.cfg text for ``layout``."""
    names = builder_names(layout.builders)
    workers = [f"worker-{i}" for i in range(layout.workers)]
    lines = [
        "# A bench master written by bbweb's bench/buildbot4/bb4.py.",
        "from buildbot.plugins import schedulers, steps, util, worker",
        "c = BuildmasterConfig = {}",
        "c['buildbotNetUsageData'] = None",
        "c['collapseRequests'] = False  # every forced build runs, as in bbweb's bench",
        "c['title'] = 'bench'",
        f"c['buildbotURL'] = 'http://127.0.0.1:{http_port}/'",
        "c['db'] = {'db_url': 'sqlite:///state.sqlite'}",
        f"c['protocols'] = {{'pb': {{'port': 'tcp:{pb_port}:interface=127.0.0.1'}}}}",
        f"c['workers'] = [worker.Worker(n, {WORKER_PASSWORD!r}) for n in {workers!r}]",
        f"NAMES = {names!r}",
        "def _factory():",
        "    f = util.BuildFactory()",
        f"    for name in {list(STEPS)!r}:",
        "        f.addStep(steps.ShellCommand(name=name, command=['true']))",
        "    return f",
        "c['builders'] = [util.BuilderConfig(name=n, factory=_factory(),",
        f"    workernames=[{workers!r}[i % {len(workers)}], "
        f"{workers!r}[(i + 1) % {len(workers)}]])",
        "    for i, n in enumerate(NAMES)]",
        "c['schedulers'] = [schedulers.ForceScheduler(name='force', builderNames=list(NAMES))]",
        "c['schedulers'] += [schedulers.SingleBranchScheduler(name='sbs-' + n,",
        "    change_filter=util.ChangeFilter(project=n), treeStableTimer=None,",
        "    builderNames=[n]) for n in NAMES]",
    ]
    if layout.noop:
        lines += [
            "_n = util.BuildFactory()",
            "_n.addStep(steps.ShellCommand(name='true', command=['true']))",
            f"c['builders'].append(util.BuilderConfig(name='noop', workernames={workers!r}, "
            "factory=_n))",
            "c['schedulers'].append(schedulers.ForceScheduler(name='force-noop', "
            "builderNames=['noop']))",
        ]
    if layout.trivial:
        lines += [
            "c['workers'].append(worker.Worker('local-worker', "
            f"{WORKER_PASSWORD!r}))",
            "_t = util.BuildFactory()",
            "_t.addStep(steps.ShellCommand(name='true', command=['true']))",
            "c['builders'].append(util.BuilderConfig(name='trivial', "
            "workernames=['local-worker'], factory=_t))",
            "c['schedulers'].append(schedulers.ForceScheduler(name='force-trivial', "
            "builderNames=['trivial']))",
        ]
    if layout.big_log_mib:
        program = BIG_LOG_PROGRAM.format(mib=layout.big_log_mib)
        lines += [
            "c['workers'].append(worker.Worker('log-worker', "
            f"{WORKER_PASSWORD!r}))",
            "_b = util.BuildFactory()",
            f"_b.addStep(steps.ShellCommand(name='print', command=['python3', '-c', "
            f"{program!r}]))",
            "c['builders'].append(util.BuilderConfig(name='biglog', "
            "workernames=['log-worker'], factory=_b))",
            "c['schedulers'].append(schedulers.ForceScheduler(name='force-biglog', "
            "builderNames=['biglog']))",
        ]
    lines += [
        "c['www'] = {",
        f"    'port': 'tcp:{http_port}:interface=127.0.0.1',",
        "    'plugins': {},",
        f"    'change_hook_dialects': {{'github': {{'secret': {GITHUB_SECRET!r}, "
        "'strict': True}},",
        "}",
        *layout.extra,
    ]
    return "\n".join(lines) + "\n"


def all_worker_names(layout: Layout) -> list[str]:
    names = [f"worker-{i}" for i in range(layout.workers)]
    if layout.trivial:
        names.append("local-worker")
    if layout.big_log_mib:
        names.append("log-worker")
    return names


def create_master(venv: Venv, basedir: Path, layout: Layout) -> None:
    """``buildbot create-master`` (which makes the database schema) and our master.cfg,
    with fresh ports."""
    if not (basedir / "buildbot.tac").exists():
        basedir.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([venv.bin("buildbot"), "create-master", "-q", "--db",
                        "sqlite:///state.sqlite", str(basedir)], check=True,
                       stdout=subprocess.DEVNULL)
    write_cfg(basedir, layout)


def write_cfg(basedir: Path, layout: Layout) -> tuple[int, int]:
    http_port, pb_port = free_port(), free_port()
    (basedir / "master.cfg").write_text(master_cfg(layout, http_port, pb_port))
    (basedir / "bench-ports.json").write_text(json.dumps({"http": http_port, "pb": pb_port}))
    return http_port, pb_port


class Master:
    """A running Buildbot 4 master and its local workers (each in its own process group,
    stopped on exit whatever happened)."""

    def __init__(self, venv: Venv, basedir: Path, layout: Layout) -> None:
        self.venv = venv
        self.basedir = basedir
        self.layout = layout
        ports = json.loads((basedir / "bench-ports.json").read_text())
        self.url = f"http://127.0.0.1:{ports['http']}"
        self.pb_port = int(ports["pb"])
        self.procs = Processes(basedir)
        self.session = requests.Session()
        self.builder_ids: dict[str, int] = {}

    # -- processes --
    def start(self, workers: bool = True, timeout: float = 180.0) -> Master:
        self.procs.spawn("master", [self.venv.bin("twistd"), "--nodaemon", "--no_save",
                                    "--pidfile=", "-y", "buildbot.tac"], cwd=self.basedir)
        wait_for(self._builders_up, timeout, "the Buildbot master's REST API",
                 interval=0.2, procs=self.procs)
        if workers:
            for name in all_worker_names(self.layout):
                self.start_worker(name)
            wait_for(self._workers_connected, timeout, "the Buildbot workers to connect",
                     interval=0.2, procs=self.procs)
        return self

    @property
    def pid(self) -> int:
        return self.procs.procs["master"].pid

    def start_worker(self, name: str) -> None:
        wdir = self.basedir / "workers" / name
        if not (wdir / "buildbot.tac").exists():
            wdir.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run([self.venv.bin("buildbot-worker"), "create-worker", "-q",
                            str(wdir), f"127.0.0.1:{self.pb_port}", name, WORKER_PASSWORD],
                           check=True, stdout=subprocess.DEVNULL)
        else:  # the port changes from run to run
            tac = (wdir / "buildbot.tac").read_text()
            lines = [f"port = {self.pb_port}" if ln.startswith("port = ") else ln
                     for ln in tac.splitlines()]
            (wdir / "buildbot.tac").write_text("\n".join(lines) + "\n")
        self.procs.spawn(f"worker-{name}", [self.venv.bin("twistd"), "--nodaemon",
                                            "--no_save", "--pidfile=", "-y", "buildbot.tac"],
                         cwd=wdir)

    def stop(self) -> None:
        self.session.close()
        self.procs.stop_all()

    def __enter__(self) -> Master:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _builders_up(self) -> bool:
        try:
            resp = self.session.get(self.url + "/api/v2/builders", timeout=5)
        except requests.RequestException:
            return False
        if resp.status_code != 200:
            return False
        found = {b["name"]: b["builderid"] for b in resp.json()["builders"]
                 if b.get("masterids")}
        if len(found) < self.layout.builders:
            return False
        self.builder_ids = found
        return True

    def _workers_connected(self) -> bool:
        body = self.get("/api/v2/workers")
        connected = {w["name"] for w in body["workers"] if w.get("connected_to")}
        return set(all_worker_names(self.layout)) <= connected

    # -- REST --
    def get(self, path: str, **params: Any) -> Any:
        resp = self.session.get(self.url + path, params=params or None, timeout=120)
        resp.raise_for_status()
        return resp.json()

    def force(self, builder: str, reason: str = "bench") -> tuple[int, int]:
        """Force ``builder`` through its ForceScheduler's JSON-RPC, as the web UI does;
        returns (buildset id, build request id)."""
        scheduler = {"trivial": "force-trivial", "biglog": "force-biglog",
                     "noop": "force-noop"}.get(builder,
                                                                              "force")
        body = {"jsonrpc": "2.0", "method": "force", "id": 1,
                "params": {"builderid": str(self.builder_ids[builder]), "reason": reason,
                           "owner": "bench"}}
        resp = self.session.post(f"{self.url}/api/v2/forceschedulers/{scheduler}",
                                 json=body, timeout=120)
        resp.raise_for_status()
        answer = resp.json()
        if "error" in answer:
            raise RuntimeError(f"force {builder}: {answer['error']}")
        bsid, brids = answer["result"]
        return int(bsid), int(next(iter(brids.values())))

    # -- the database, read-only (no load on the master's HTTP side) --
    @contextmanager
    def db(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(f"file:{self.basedir / 'state.sqlite'}?mode=ro", uri=True,
                               timeout=30)
        try:
            yield conn
        finally:
            conn.close()


def wait_requests_complete(master: Master, first_brid: int, count: int, timeout: float,
                           interval: float = 0.005) -> float:
    """Poll the database until ``count`` build requests from ``first_brid`` on are
    complete; returns ``time.perf_counter()`` when that was seen."""
    deadline = time.monotonic() + timeout
    with master.db() as conn:
        while True:
            try:
                done = conn.execute("SELECT count(*) FROM buildrequests WHERE id >= ? AND "
                                    "complete = 1", (first_brid,)).fetchone()[0]
            except sqlite3.OperationalError:  # locked for a moment by the master
                done = -1
            if done >= count:
                return time.perf_counter()
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {done}/{count} Buildbot builds finished in "
                                   f"{timeout:.0f} s")
            master.procs.check_alive()
            time.sleep(interval)


def history_layout(basedir: Path) -> Layout:
    """The layout of the history master in ``basedir`` (its builder count is in the mark
    ``ensure_history`` leaves)."""
    builders = 20
    mark = basedir / HISTORY_DONE
    if mark.is_file():
        words = mark.read_text().split()
        builders = int(words[words.index("--builders") + 1])
    return Layout(builders=builders, workers=2, trivial=True)


def ensure_history(venv: Venv, basedir: Path, builders: int = 20, changes: int = 20000,
                   log: Path | None = None) -> Path:
    """A Buildbot 4 master in ``basedir`` holding the bench history (made once: the master
    is started once so that it registers its builders and workers, stopped, then
    ``history.py`` inserts the rows); later calls reuse it."""
    if (basedir / HISTORY_DONE).is_file():
        write_cfg(basedir, history_layout(basedir))  # fresh ports
        return basedir
    if basedir.exists():
        import shutil

        shutil.rmtree(basedir)  # an interrupted earlier attempt
    layout = Layout(builders=builders, workers=2, trivial=True)
    create_master(venv, basedir, layout)
    with Master(venv, basedir, layout) as master:
        master.start(workers=False)
    out = log.open("w") if log else None
    try:
        subprocess.run(["nice", "-n", "10", venv.python, str(HERE / "history.py"), "--db",
                        str(basedir / "state.sqlite"), "--builders", str(builders),
                        "--changes", str(changes)], check=True, stdout=out,
                       stderr=subprocess.STDOUT if out else None)
    finally:
        if out:
            out.close()
    (basedir / HISTORY_DONE).write_text(f"--builders {builders} --changes {changes}\n")
    return basedir


def add_args(parser: Any, history: bool = False) -> None:
    """The options every Buildbot 4 bench script takes."""
    parser.add_argument("--venv", type=Path, required=True,
                        help="the virtualenv Buildbot 4 is installed in "
                             "(bench/buildbot4/install.py makes one)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where the masters are made (default: a temporary directory, "
                             "deleted at the end)")
    if history:
        parser.add_argument("--history", type=Path, required=True,
                            help="the master holding the history (made there once)")


@contextmanager
def workdir(path: Path | None) -> Iterator[Path]:
    import shutil
    import tempfile

    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        yield path.resolve()
        return
    tmp = Path(tempfile.mkdtemp(prefix="bbweb-bb4-"))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def fresh_master(venv: Venv, where: Path, name: str, layout: Layout) -> Master:
    """A new, empty master in ``where/name`` (an old one there is removed first)."""
    import shutil

    basedir = where / name
    if basedir.exists():
        shutil.rmtree(basedir)
    create_master(venv, basedir, layout)
    return Master(venv, basedir, layout)


def checked_venv(path: Path) -> Venv:
    venv = Venv(path.resolve())
    if venv.version() is None:
        raise SystemExit(f"no Buildbot 4 in {path}; make one with "
                         "bench/buildbot4/install.py --venv DIR")
    return venv


class MemorySampler:
    """The master process's RSS every ``interval`` seconds in a thread, for peaks."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        import threading

        self.pid = pid
        self.interval = interval
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, rss_pss_mib(self.pid)[0])
            except OSError:
                return
            self._stop.wait(self.interval)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def result(figures: dict[str, Any]) -> None:
    print("RESULT " + json.dumps(figures, sort_keys=True), flush=True)
