"""Real processes: sessions shared by several gunicorn workers and kept over a restart;
header mode behind a real Apache (Debian's apache2) configured with the recipe of
docs/security.md, read from there — ``ProxyPass /`` to bbweb and Basic auth on ``/login``
against an htpasswd file made by the real ``htpasswd``."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from bbweb.db.connection import Database
from bbweb.db.migrate import upgrade
from bbweb.launcher import gunicorn_command
from bbweb.mastercfg.master import load_master_config
from bbweb.mastercfg.webstatus import ListenAddress
from tests.e2e.conftest import LiveMaster, free_port, stop_live_master
from tests.e2e.test_reverse_proxy import MODULES, apache_binary
from tests.support.polling import wait_for

REPO = Path(__file__).resolve().parents[2]

CFG = """
from bbweb.config import *
c = BuildmasterConfig = {}
c['db_url'] = DB_URL
c['slaves'] = [BuildSlave('s1', 'pw')]
c['builders'] = [BuilderConfig(name='b', slavenames=['s1'], factory=BuildFactory())]
c['schedulers'] = []
AUTHZ_LINE
c['status'] = [WebStatus(http_port=PORT, authz=authz)]
"""

USER_SPAN = re.compile(r'<span class="user">([^<]*)</span>')


def start_web(live: LiveMaster, port: int) -> None:
    """gunicorn with 2 processes; waits (patiently: CI machines are busy) for /health."""
    live.spawn("web", gunicorn_command(live.basedir, ListenAddress("127.0.0.1", port), 2))

    def answers() -> bool:
        if live.procs["web"].poll() is not None:
            raise AssertionError("gunicorn exited:\n" + live.log_text("web"))
        try:
            return requests.get(live.url + "/health", timeout=5).status_code == 200
        except (requests.ConnectionError, requests.Timeout):
            return False

    wait_for(answers, 60, what="gunicorn to answer /health")


def start_live_master(basedir: Path, cfg_text: str, db_url: str, daemon: bool = False
                      ) -> LiveMaster:
    """The web processes only (no daemon, no worker: these tests build nothing)."""
    port = free_port()
    basedir.mkdir(parents=True, exist_ok=True)
    (basedir / "master.cfg").write_text(
        textwrap.dedent(cfg_text).replace("DB_URL", repr(db_url)).replace("PORT", str(port)))
    cfg = load_master_config(basedir)
    upgrade(cfg.db_url)
    live = LiveMaster(basedir, f"http://127.0.0.1:{port}", cfg.db_url, Database(cfg.db_url))
    start_web(live, port)
    return live


def who(html: str) -> str | None:
    m = USER_SPAN.search(html)
    return m.group(1) if m else None


@pytest.fixture(scope="module")
def session_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveMaster]:
    tmp = tmp_path_factory.mktemp("live-sessions")
    cfg = CFG.replace("AUTHZ_LINE", "authz = Authz(auth=BasicAuth([('alice', 'pw-a')]), "
                                    "view='auth')")
    live = start_live_master(tmp / "master", cfg, "sqlite:///" + str(tmp / "state.sqlite"),
                             daemon=False)
    try:
        yield live
    finally:
        stop_live_master(live)


def test_session_in_every_worker_and_after_restart(session_site: LiveMaster) -> None:
    live = session_site
    s = requests.Session()
    page = s.get(live.url + "/login", timeout=10).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    r = s.post(live.url + "/login", data={"username": "alice", "passwd": "pw-a",
                                          "csrf_token": token, "next": "builders"},
               allow_redirects=False, timeout=10)
    assert r.status_code == 303 and r.headers["Location"] == "./builders"
    # gunicorn runs 2 processes; many requests land on both, all see the session
    for _ in range(30):
        r = s.get(live.url + "/builders", timeout=10, allow_redirects=False)
        assert r.status_code == 200 and who(r.text) == "alice"
    assert requests.get(live.url + "/builders", timeout=10,
                        allow_redirects=False).status_code == 303
    # restart the web server: the session still holds
    live.stop("web")
    start_web(live, int(live.url.rsplit(":", 1)[1]))
    r = s.get(live.url + "/builders", timeout=10, allow_redirects=False)
    assert r.status_code == 200 and who(r.text) == "alice"


# ------------------------------------------------------------------ Apache, header mode

def apache_conf(root: Path, port: int, backend: str, htpasswd: Path) -> str:
    user = "User nobody\nGroup nogroup\n" if os.geteuid() == 0 else ""
    mods = ["mpm_event", "authz_core", "authz_user", "authn_core", "authn_file",
            "auth_basic", "rewrite", "proxy", "proxy_http"]
    loads = "\n".join(f"LoadModule {m}_module {MODULES}/mod_{m}.so" for m in mods)
    return textwrap.dedent(f"""\
        ServerRoot "{root}"
        ServerName 127.0.0.1
        Listen 127.0.0.1:{port}
        PidFile "{root}/httpd.pid"
        DefaultRuntimeDir "{root}"
        {user}
        """) + loads + textwrap.dedent(f"""
        ErrorLog "{root}/error.log"
        LogLevel warn
        ProxyRequests Off
        """) + documented_recipe(backend, htpasswd)


def documented_recipe(backend: str, htpasswd: Path) -> str:
    """The Apache recipe of docs/security.md, as written there, pointed at this test's
    bbweb and htpasswd file."""
    text = (REPO / "docs" / "security.md").read_text()
    found = re.search(r"```apache\n(.*?)```", text, re.S)
    assert found, "docs/security.md has no apache recipe"
    recipe = found.group(1)
    for documented, here in (("http://127.0.0.1:8010/", backend + "/"),
                             ("/etc/apache2/bbweb.htpasswd", str(htpasswd))):
        assert documented in recipe
        recipe = recipe.replace(documented, here)
    return recipe


@pytest.fixture(scope="module")
def header_site(tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[tuple[LiveMaster, str]]:
    binary = apache_binary()
    htpasswd_bin = shutil.which("htpasswd")
    if binary is None or htpasswd_bin is None:
        pytest.skip("Debian's apache2 and apache2-utils are not installed")
    tmp = tmp_path_factory.mktemp("live-header")
    root = tmp / "apache"
    root.mkdir()
    # Apache's children (user nobody) read the htpasswd file: not under pytest's private
    # tmp directory
    public = Path(tempfile.mkdtemp(prefix="bbweb-htpasswd-"))
    public.chmod(0o755)
    htfile = public / "htpasswd"
    subprocess.run([htpasswd_bin, "-b", "-c", "-m", str(htfile), "alice", "alice-pw"],
                   check=True, capture_output=True)
    subprocess.run([htpasswd_bin, "-b", "-B", "-C", "5", str(htfile), "bob", "bob-pw"],
                   check=True, capture_output=True)
    htfile.chmod(0o644)
    aport = free_port()
    front = f"http://127.0.0.1:{aport}"
    cfg = CFG.replace("AUTHZ_LINE", textwrap.dedent(f"""\
        authz = Authz(useHttpHeader=True, httpLoginLink='{front}/login',
                      auth=HTPasswdAprAuth({str(htfile)!r}), showUsersPage='auth')"""))
    live = start_live_master(tmp / "master", cfg, "sqlite:///" + str(tmp / "state.sqlite"),
                             daemon=False)
    (root / "httpd.conf").write_text(apache_conf(root, aport, live.url, htfile))
    check = subprocess.run([binary, "-t", "-f", str(root / "httpd.conf")],
                           capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr
    out = (root / "stdout.log").open("wb")
    proc = subprocess.Popen([binary, "-f", str(root / "httpd.conf"), "-DFOREGROUND"],
                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError("apache2 exited:\n" + (root / "stdout.log").read_text())
        try:
            requests.get(front + "/health", timeout=2)
            return True
        except (requests.ConnectionError, requests.Timeout):  # not up yet, or busy
            return False

    try:
        wait_for(up, 30, what="apache2 to listen")
        yield live, front
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        out.close()
        stop_live_master(live)
        shutil.rmtree(public, ignore_errors=True)


def test_anonymous_visitor_gets_a_login_link(header_site) -> None:
    _live, front = header_site
    page = requests.get(front + "/builders", timeout=10).text
    assert f'<a href="{front}/login" class="login">Login</a>' in page
    assert 'name="passwd"' not in page and who(page) is None


def test_apache_guards_login_and_sends_the_user_back(header_site) -> None:
    _live, front = header_site
    r = requests.get(front + "/login", timeout=10, allow_redirects=False)
    assert r.status_code == 401 and 'realm="bbweb"' in r.headers["WWW-Authenticate"]
    r = requests.get(front + "/login", auth=("alice", "wrong"), timeout=10,
                     allow_redirects=False)
    assert r.status_code == 401
    r = requests.get(front + "/login", auth=("alice", "alice-pw"), timeout=10,
                     headers={"Referer": front + "/builders/b"}, allow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"] == front + "/builders/b"


@pytest.mark.parametrize("user,password", [("alice", "alice-pw"), ("bob", "bob-pw")])
def test_pages_show_the_front_end_user(header_site, user: str, password: str) -> None:
    _live, front = header_site
    s = requests.Session()
    s.auth = (user, password)  # what the browser sends after /login
    page = s.get(front + "/builders", timeout=10).text
    assert who(page) == user
    assert "Logout" not in page  # Basic auth cannot be logged out of
    r = s.get(front + "/users", timeout=10, allow_redirects=False)
    assert r.status_code == 200 and "<title>Users</title>" in r.text


def test_forged_header_is_not_trusted(header_site) -> None:
    """The recipe checks credentials on /login only; elsewhere Apache passes whatever
    Authorization a client sends, so bbweb checks it against the same htpasswd file."""
    live, front = header_site
    for target in (front, live.url):
        page = requests.get(target + "/builders", auth=("alice", "guess"), timeout=10).text
        assert who(page) is None
        r = requests.get(target + "/users", auth=("alice", "guess"), timeout=10,
                         allow_redirects=False)
        assert r.status_code == 303 and r.headers["Location"].endswith("authzfail")
