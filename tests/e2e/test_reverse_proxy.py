"""The site behind a real Apache (Debian's apache2) mounted under ``/bbot/``: every link
resolves and stays under the prefix; ``distrib_port``'s UNIX socket works as a proxy
backend too.

Apache runs from a minimal config of its own under the test's tmp directory (mod_proxy,
mod_proxy_http, a free 127.0.0.1 port), in the foreground, and is stopped afterwards.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import textwrap
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qsl, urldefrag, urljoin, urlsplit

import pytest
import requests

from tests.e2e.conftest import (
    LiveMaster,
    free_port,
    start_live_master,
    stop_live_master,
    wait_for,
)

MODULES = Path("/usr/lib/apache2/modules")
MAX_PAGES = 200
SAME_SHAPE = 3  # fetch at most this many URLs per (path, query keys): ?numbuilds=N chains
PREFIX = "/bbot/"

CFG = r"""
from bbweb.config import *
c = BuildmasterConfig = {}
c['title'] = 'Proxied <Project>'
c['titleURL'] = 'http://example.org/project'
c['buildbotURL'] = 'http://127.0.0.1:PORT/'
c['db_url'] = DB_URL
c['slaves'] = [BuildSlave('rp-worker', 'pw')]
f = BuildFactory()
f.addStep(ShellCommand(name='hello', command=['sh', '-c', 'echo out; echo err >&2']))
bad = BuildFactory([ShellCommand(name='compile', command=['sh', '-c', 'exit 2'])])
c['builders'] = [
    BuilderConfig(name='proxied', slavenames=['rp-worker'], factory=f, category='web'),
    BuilderConfig(name='with space', slavenames=['rp-worker'], factory=bad),
]
c['schedulers'] = [SingleBranchScheduler(name='all', branch=None,
                                         builderNames=['proxied', 'with space'])]
c['status'] = [WebStatus(http_port=PORT, distrib_port='unix:SOCKET',
                         change_hook_dialects={'base': True})]
"""


def apache_binary() -> str | None:
    found = shutil.which("apache2") or ("/usr/sbin/apache2"
                                        if os.access("/usr/sbin/apache2", os.X_OK) else None)
    if found and (MODULES / "mod_proxy_http.so").exists():
        return found
    return None


@dataclass
class Apache:
    url: str  # http://127.0.0.1:PORT
    proc: subprocess.Popen
    error_log: Path


def apache_config(root: Path, port: int, backend: str, socket_path: str) -> str:
    user = "User nobody\nGroup nogroup\n" if os.geteuid() == 0 else ""
    return textwrap.dedent(f"""\
        ServerRoot "{root}"
        ServerName 127.0.0.1
        Listen 127.0.0.1:{port}
        PidFile "{root}/httpd.pid"
        DefaultRuntimeDir "{root}"
        {user}
        LoadModule mpm_event_module {MODULES}/mod_mpm_event.so
        LoadModule authz_core_module {MODULES}/mod_authz_core.so
        LoadModule alias_module {MODULES}/mod_alias.so
        LoadModule proxy_module {MODULES}/mod_proxy.so
        LoadModule proxy_http_module {MODULES}/mod_proxy_http.so

        ErrorLog "{root}/error.log"
        LogLevel warn
        LogFormat "%h %l %u %t \\"%r\\" %>s %b" common
        CustomLog "{root}/access.log" common

        ProxyRequests Off
        # the documented recipe (docs/deployment.md): bbweb under /bbot/ over TCP ...
        RedirectMatch 301 ^/bbot$ /bbot/
        ProxyPass        /bbot/ {backend}/
        ProxyPassReverse /bbot/ {backend}/
        # ... and the same site through distrib_port's UNIX socket
        ProxyPass        /bbot-unix/ unix:{socket_path}|http://localhost/
        ProxyPassReverse /bbot-unix/ http://localhost/
        """)


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveMaster]:
    if apache_binary() is None:
        pytest.skip("Debian's apache2 is not installed (scripts/test.sh installs it with "
                    "apt-get install apache2)")
    tmp = tmp_path_factory.mktemp("revproxy")
    # the socket must be reachable by Apache's children (user nobody), so not under
    # pytest's private tmp directory
    sockdir = Path(tempfile.mkdtemp(prefix="bbweb-rp-"))
    sockdir.chmod(0o755)
    cfg = CFG.replace("SOCKET", str(sockdir / "web.sock"))
    live = start_live_master(tmp / "master", cfg, "sqlite:///" + str(tmp / "state.sqlite"))
    live.start_worker("rp-worker", "pw")
    try:
        yield live
    finally:
        stop_live_master(live)
        shutil.rmtree(sockdir, ignore_errors=True)


@pytest.fixture(scope="module")
def apache(backend: LiveMaster, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Apache]:
    binary = apache_binary()
    assert binary is not None
    root = tmp_path_factory.mktemp("apache")
    port = free_port()
    sock = backend.config.web.distrib.resolve(backend.basedir)
    (root / "httpd.conf").write_text(apache_config(root, port, backend.url, sock))
    check = subprocess.run([binary, "-t", "-f", str(root / "httpd.conf")],
                           capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr
    log = (root / "stdout.log").open("wb")
    proc = subprocess.Popen([binary, "-f", str(root / "httpd.conf"), "-DFOREGROUND"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    server = Apache(f"http://127.0.0.1:{port}", proc, root / "error.log")

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError("apache2 exited:\n" + (root / "stdout.log").read_text()
                                 + server.error_log.read_text(errors="replace"))
        try:
            requests.get(server.url + "/", timeout=2)
            return True
        except (requests.ConnectionError, requests.Timeout):  # not up yet, or busy
            return False

    try:
        wait_for(up, 30, what="apache2 to listen")
        yield server
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def with_builds(backend: LiveMaster, apache: Apache) -> LiveMaster:
    """One change through the proxy; both builders finish a build for it."""
    resp = requests.post(apache.url + PREFIX + "change_hook/base", timeout=10, data={
        "author": "Ann <ann@example.org>", "comments": "proxied change #1",
        "revision": "abc123", "branch": "", "files": '["a.txt", "b c.txt"]'})
    assert resp.status_code == 202, resp.text

    def finished() -> bool:
        return all((backend.get_json(f"/json/builders/{name}/builds/-1") or {})
                   .get("times", [None, None])[1] is not None
                   for name in ("proxied", "with space"))

    wait_for(finished, 60, what="the builds of the proxied change to finish")
    return backend


class Links(HTMLParser):
    """Every URL a browser would load or follow from a page."""

    ATTRS = {"a": "href", "link": "href", "script": "src", "img": "src", "iframe": "src"}

    def __init__(self) -> None:
        super().__init__()
        self.follow: list[str] = []
        self.forms: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag in self.ATTRS and values.get(self.ATTRS[tag]):
            self.follow.append(values[self.ATTRS[tag]] or "")
        elif tag == "form":
            self.forms.append(values.get("action") or "")


def crawl(start: str, backend_url: str, limit: int = MAX_PAGES) -> dict[str, int]:
    """Breadth-first over same-site links from ``start``; returns url -> status.

    Every link found is checked; pages that differ only in query values (``?numbuilds=25``,
    ``?numbuilds=30``, …) are fetched a few times each, not all, so the budget reaches
    every kind of page."""
    site = urlsplit(start)
    backend = urlsplit(backend_url).netloc
    seen = {start}
    shapes: Counter[tuple[str, tuple[str, ...]]] = Counter()
    queue = deque([(start, "(start)")])
    statuses: dict[str, int] = {}
    problems: list[str] = []
    session = requests.Session()

    def check_target(url: str, origin: str) -> bool:
        """Same-site and under the prefix: True to follow; other sites: False."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            return False
        if parts.netloc == backend:
            problems.append(f"{origin} links to the backend directly: {url}")
            return False
        if parts.netloc != site.netloc:
            return False  # another site (titleURL, buildbot.net)
        if not parts.path.startswith(site.path):
            problems.append(f"{origin} links outside {site.path}: {url}")
            return False
        return True

    while queue and len(statuses) < limit:
        url, origin = queue.popleft()
        resp = session.get(url, timeout=30)
        for hop in [*resp.history, resp]:
            check_target(hop.url, f"redirect from {url}")
        statuses[url] = resp.status_code
        if resp.status_code >= 400:
            problems.append(f"{url} (linked from {origin}) answered {resp.status_code}")
            continue
        if not resp.headers.get("Content-Type", "").startswith("text/html"):
            continue
        links = Links()
        links.feed(resp.text)
        for action in links.forms:
            check_target(urljoin(resp.url, action), f"a form on {resp.url}")
        for href in links.follow:
            target = urldefrag(urljoin(resp.url, href.strip())).url
            if check_target(target, resp.url) and target not in seen:
                seen.add(target)
                parts = urlsplit(target)
                shape = (parts.path, tuple(sorted(k for k, _ in parse_qsl(parts.query))))
                shapes[shape] += 1
                if shapes[shape] <= SAME_SHAPE:
                    queue.append((target, resp.url))
    assert not problems, "\n".join(problems)
    return statuses


def test_every_link_resolves_under_the_prefix(apache, with_builds):
    statuses = crawl(apache.url + PREFIX, with_builds.url)
    fetched = {urlsplit(u).path for u in statuses}
    # the crawl really went through the site, not just the front page
    for path in ("/bbot/", "/bbot/builders", "/bbot/builders/proxied",
                 "/bbot/builders/proxied/builds/0", "/bbot/default.css"):
        assert path in fetched, sorted(fetched)
    assert any(p.startswith("/bbot/builders/proxied/builds/0/steps/hello/logs/")
               for p in fetched), sorted(fetched)
    assert any(p.startswith("/bbot/changes/") for p in fetched), sorted(fetched)


def test_json_and_static_files_through_the_proxy(apache, backend):
    resp = requests.get(apache.url + PREFIX + "json/project", timeout=10)
    assert resp.status_code == 200
    assert resp.json()["title"] == "Proxied <Project>"
    css = requests.get(apache.url + PREFIX + "default.css", timeout=10)
    assert css.status_code == 200 and css.headers["Content-Type"].startswith("text/css")
    assert css.content == requests.get(backend.url + "/default.css", timeout=10).content


def test_redirects_stay_under_the_prefix(apache, backend):
    resp = requests.get(apache.url + "/bbot", timeout=10, allow_redirects=False)
    assert resp.status_code == 301
    assert urljoin(resp.url, resp.headers["Location"]) == apache.url + PREFIX
    # bbweb's own redirects are relative, so they need no rewriting
    resp = requests.get(apache.url + PREFIX + "one_box_per_builder", timeout=10)
    assert [h.status_code for h in resp.history] == [302]
    assert resp.status_code == 200 and resp.url == apache.url + PREFIX + "builders"


def test_distrib_port_socket_behind_apache(apache, backend):
    resp = requests.get(apache.url + "/bbot-unix/json/project", timeout=10)
    assert resp.status_code == 200, resp.text
    assert resp.json() == requests.get(backend.url + "/json/project", timeout=10).json()
    page = requests.get(apache.url + "/bbot-unix/", timeout=10)
    assert page.status_code == 200 and 'href="./builders"' in page.text
    assert requests.get(apache.url + "/bbot-unix/builders", timeout=10).status_code == 200


def test_live_stream_passes_through_apache_at_once(apache, backend):
    """Apache hands each event of /json/events on as it comes (no buffering until the
    connection ends), with the stream's headers intact."""
    import time

    from bbweb.statuslog import parse_sse

    resp = requests.get(apache.url + PREFIX + "json/events?kind=changes", stream=True,
                        headers={"Accept": "text/event-stream"}, timeout=(10, 12))
    try:
        assert resp.status_code == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        posted = time.monotonic()
        hook = requests.post(apache.url + PREFIX + "change_hook/base", timeout=10, data={
            "author": "Sam <sam@example.org>", "comments": "streamed through apache",
            "revision": "fedcba", "branch": "side"})
        assert hook.status_code == 202, hook.text
        event = next(parse_sse(resp.iter_lines(decode_unicode=True)))
        assert event.kind == "change.new" and event.data["branch"] == "side"
        assert time.monotonic() - posted < 5  # well before the 15 s keepalive
    finally:
        resp.close()
