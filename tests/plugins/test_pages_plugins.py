"""Extra pages through the ``bbweb.pages`` entry point (Buildbot's ``putChild``).

The example package under ``examples/bbweb-page-hello`` is made installed for this module
the way an installer leaves it: a ``*.dist-info`` whose ``entry_points.txt`` is generated
from the example's own pyproject.toml, on ``sys.path`` (and ``PYTHONPATH`` for the
processes the tests start) next to the example's source. Discovery then goes through
``importlib.metadata`` exactly as for a pip-installed plugin, without touching the shared
virtualenv. A few deliberately broken plugins are installed the same way.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import tomllib
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import requests

from bbweb.cli import main
from tests.conftest import DEFAULT_CFG

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "bbweb-page-hello"

BROKEN_MODULES = {
    # raises on import
    "bbweb_test_broken_page": "raise RuntimeError('this plugin is broken on purpose')\n",
    # imports, but its factory raises
    "bbweb_test_raising_page": textwrap.dedent("""
        def make_blueprint(options, config):
            raise ValueError('no database for this page')
    """),
    # returns something that is not a Blueprint
    "bbweb_test_notbp_page": "def make_blueprint(options, config):\n    return 'hello'\n",
    # wants a URL that bbweb's own pages own
    "bbweb_test_clash_page": textwrap.dedent("""
        from flask import Blueprint

        def make_blueprint(options, config):
            bp = Blueprint('clash', __name__, url_prefix='/builders')

            @bp.route('/x')
            def x():
                return 'mine'
            return bp
    """),
    # a blueprint with its own url_prefix, and a request-time error on one URL
    "bbweb_test_prefixed_page": textwrap.dedent("""
        from flask import Blueprint

        def make_blueprint(options, config):
            bp = Blueprint('prefixed', __name__, url_prefix='/tools/extra')

            @bp.route('/')
            def index():
                return 'prefixed page ' + options.get('word', '')

            @bp.route('/boom')
            def boom():
                raise RuntimeError('page bug')
            return bp
    """),
    # mounts where another plugin already is (and reuses its blueprint name)
    "bbweb_test_again_page": textwrap.dedent("""
        from flask import Blueprint

        def make_blueprint(options, config):
            return Blueprint('hello', __name__, url_prefix='/hello')
    """),
}
BROKEN_ENTRY_POINTS = {
    "broken": "bbweb_test_broken_page:make_blueprint",
    "raising": "bbweb_test_raising_page:make_blueprint",
    "notbp": "bbweb_test_notbp_page:make_blueprint",
    "clash": "bbweb_test_clash_page:make_blueprint",
    "prefixed": "bbweb_test_prefixed_page:make_blueprint",
    "again": "bbweb_test_again_page:make_blueprint",
}


def write_dist_info(site: Path, name: str, version: str,
                    groups: dict[str, dict[str, str]]) -> Path:
    """What pip leaves in site-packages, as far as importlib.metadata cares."""
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\n"
                                   f"Version: {version}\n")
    lines = []
    for group, entries in groups.items():
        lines.append(f"[{group}]")
        lines.extend(f"{k} = {v}" for k, v in entries.items())
        lines.append("")
    (info / "entry_points.txt").write_text("\n".join(lines))
    return info


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The example (from its pyproject.toml) and the broken plugins, installed."""
    site = tmp_path_factory.mktemp("site-packages")
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    write_dist_info(site, project["name"], project["version"], project["entry-points"])
    write_dist_info(site, "bbweb-test-broken-pages", "0", {"bbweb.pages": BROKEN_ENTRY_POINTS})
    for module, source in BROKEN_MODULES.items():
        (site / f"{module}.py").write_text(source)
    paths = [str(site), str(EXAMPLE)]
    mp = pytest.MonkeyPatch()
    for p in reversed(paths):
        mp.syspath_prepend(p)
    mp.setenv("PYTHONPATH", os.pathsep.join(paths + [os.environ.get("PYTHONPATH", "")]))
    try:
        yield site
    finally:
        mp.undo()
        for module in [*BROKEN_MODULES, "bbweb_page_hello"]:
            sys.modules.pop(module, None)


def enable(basedir: Path, toml: str) -> None:
    (basedir / "plugins.toml").write_text(textwrap.dedent(toml))


def test_the_example_declares_its_entry_point(installed):
    eps = {ep.name: ep for ep in entry_points(group="bbweb.pages")}
    assert eps["hello"].value == "bbweb_page_hello:make_blueprint"
    assert eps["hello"].dist.name == "bbweb-page-hello"


def test_enabled_page_renders_inside_the_site(installed, make_master):
    m = make_master()
    enable(m.basedir, '[pages]\nhello = {greeting = "Howdy"}\n')
    app = m.app()
    try:
        client = app.test_client()
        resp = client.get("/hello/")
        assert resp.status_code == 200
        html = resp.get_data(as_text=True)
        assert "<h1>Howdy!</h1>" in html
        assert 'href="../builders/docs"' in html and 'href="../builders/runtests"' in html
        assert 'href="../buildslaves/slave1"' in html
        assert 'class="header"' in html and 'href="../default.css"' in html  # the layout
        assert "Howdy from Test Project" in html  # <title>
        assert client.get("/hello").status_code in (301, 308)
        assert app.extensions["bbweb"].plugin_failures == {}
    finally:
        app.extensions["bbweb"].db.dispose()


def test_installed_but_not_enabled_is_not_mounted(installed, make_master):
    m = make_master()
    app = m.app()
    try:
        assert app.test_client().get("/hello/").status_code == 404
        enable(m.basedir, "[pages]\nhello = false\n")
        app2 = m.app()
        assert app2.test_client().get("/hello/").status_code == 404
        app2.extensions["bbweb"].db.dispose()
    finally:
        app.extensions["bbweb"].db.dispose()


def test_broken_plugins_never_take_the_site_down(installed, make_master, caplog):
    m = make_master()
    enable(m.basedir, """
        [pages]
        hello = true
        broken = true
        raising = true
        notbp = true
        clash = true
        missing = true
        prefixed = {word = "ok"}
        again = true
    """)
    with caplog.at_level(logging.ERROR):
        app = m.app()
    try:
        client = app.test_client()
        assert client.get("/").status_code == 200
        assert client.get("/hello/").status_code == 200
        assert client.get("/tools/extra/").get_data(as_text=True) == "prefixed page ok"
        assert client.get("/builders/x").get_data(as_text=True) != "mine"
        assert client.get("/again/").status_code == 404
        failures = app.extensions["bbweb"].plugin_failures
        assert set(failures) == {"pages.broken", "pages.raising", "pages.notbp",
                                 "pages.clash", "pages.missing", "pages.again"}
        assert "'/hello' is already served" in failures["pages.again"]
        assert "RuntimeError: this plugin is broken on purpose" in failures["pages.broken"]
        assert "ValueError: no database for this page" in failures["pages.raising"]
        assert "not a flask.Blueprint" in failures["pages.notbp"]
        assert "'/builders'" in failures["pages.clash"]
        assert "no such pages plugin is installed" in failures["pages.missing"]
        for name in ("broken", "raising", "notbp", "clash", "missing", "again"):
            assert f"pages.{name}" in caplog.text
    finally:
        app.extensions["bbweb"].db.dispose()


def test_a_page_that_fails_at_request_time_is_a_500_for_that_page_only(installed,
                                                                       make_master):
    m = make_master()
    enable(m.basedir, "[pages]\nprefixed = true\n")
    app = m.app()
    app.testing = False  # answer 500 instead of raising into the test
    try:
        client = app.test_client()
        assert client.get("/tools/extra/boom").status_code == 500
        assert client.get("/tools/extra/").status_code == 200
        assert client.get("/").status_code == 200
    finally:
        app.extensions["bbweb"].db.dispose()


def test_checkconfig_names_broken_plugins(installed, make_master, capsys):
    m = make_master()
    enable(m.basedir, "[pages]\nhello = true\n")
    assert main(["checkconfig", str(m.basedir)]) == 0
    assert "Config file is good!" in capsys.readouterr().out

    enable(m.basedir, "[pages]\nhello = {greeting = 3}\nbroken = true\nraising = true\n")
    assert main(["checkconfig", str(m.basedir)]) == 1
    err = capsys.readouterr().err
    assert "pages.broken: RuntimeError: this plugin is broken on purpose" in err
    assert "pages.raising: ValueError: no database for this page" in err
    assert "pages.hello: ValueError: the 'greeting' option must be a non-empty string" in err

    enable(m.basedir, "[pages]\n'bad/name' = true\n")
    assert main(["checkconfig", str(m.basedir)]) == 1
    assert "cannot be a URL path segment" in capsys.readouterr().err


def test_page_served_by_real_gunicorn(installed, tmp_path):
    """The gunicorn workers find the plugin by themselves (PYTHONPATH, as after pip)."""
    from tests.e2e.conftest import start_live_master, stop_live_master

    basedir = tmp_path / "live"
    basedir.mkdir()
    enable(basedir, "[pages]\nhello = true\nbroken = true\n")
    live = start_live_master(basedir, DEFAULT_CFG.replace("8010", "PORT"),
                             "sqlite:///" + str(tmp_path / "state.sqlite"), daemon=False)
    try:
        resp = requests.get(live.url + "/hello/", timeout=10)
        assert resp.status_code == 200 and "<h1>Hello!</h1>" in resp.text
        assert requests.get(live.url + "/", timeout=10).status_code == 200
        assert "pages.broken" in live.log_text("web")
    finally:
        stop_live_master(live)
    out = subprocess.run([sys.executable, "-m", "bbweb.cli", "checkconfig", str(basedir)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "pages.broken" in out.stderr
