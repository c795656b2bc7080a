"""A plugin that imports but does not fit its kind's interface (bbweb.plugins.interfaces) is
found when it loads, not when a request reaches it: ``bbweb checkconfig`` and ``bbweb
start`` name it with the line that enables it, and the web application leaves it out, so
its URL answers as a disabled one does (404), never 500."""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from bbweb.cli import main
from tests.conftest import DEFAULT_CFG
from tests.plugins.test_plugin_checks import checkconfig, enable, plugin_lines
from tests.support.distributions import on_path, write_distribution

MISFITS = textwrap.dedent("""
    class Dialect:
        '''A dialect whose author named its method wrongly.'''

        def __init__(self, options, config):
            pass

        def changes(self, request):
            return []


    class Backend:
        '''An authentication back end without authenticate().'''

        def check(self, user, passwd):
            return True


    class Notifier:
        consumer_name = 'misfit'

        def handle(self, event):
            pass


    def page(options, config):
        '''A page factory that returns its page's HTML instead of a Blueprint.'''
        return '<p>hello</p>'
""")


@pytest.fixture
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    site = tmp_path_factory.mktemp("site-packages")
    write_distribution(site, "bbweb-test-misfits", "1.0", {
        "bbweb.change_hooks": {"misfit": "bbweb_test_misfits:Dialect"},
        "bbweb.auth": {"misfit": "bbweb_test_misfits:Backend"},
        "bbweb.notifiers": {"misfit": "bbweb_test_misfits:Notifier"},
        "bbweb.pages": {"misfit": "bbweb_test_misfits:page"},
    }, {"bbweb_test_misfits": MISFITS})
    with on_path(site, ["bbweb_test_misfits"]):
        yield site


def test_plugins_that_do_not_fit_are_named_at_load(installed, make_master, capsys, caplog):
    m = make_master()
    toml = enable(m.basedir, """\
        [change_hooks]
        misfit = true

        [auth]
        misfit = true

        [notifiers]
        misfit = true
    """)
    code, _out, err = checkconfig(m.basedir, capsys)
    assert code == 1
    assert plugin_lines(err) == [
        f"{toml}:5: auth.misfit: Backend is not an authentication back end: it has no "
        "authenticate(user, passwd) method (docs/plugins.md)",
        f"{toml}:2: change_hooks.misfit: Dialect is not a change-hook dialect: it has no "
        "get_changes(request) method (docs/plugins.md)",
        f"{toml}:8: notifiers.misfit: notifier plugin 'misfit' (bbweb_test_misfits.Notifier) "
        "is neither a bbweb.plugins.notifiers.base.Notifier subclass nor an event consumer "
        "(a class with consumer_name and handle_event(event))",
    ]
    assert main(["start", str(m.basedir)]) == 1
    assert plugin_lines(capsys.readouterr().err) == plugin_lines(err)

    with caplog.at_level(logging.ERROR):
        app = m.app()
    try:
        s = app.extensions["bbweb"]
        assert set(s.plugin_failures) == {"auth.misfit", "change_hooks.misfit"}
        assert "misfit" not in s.change_hooks and s.auth is None
        assert f"{toml}:2: plugin change_hooks.misfit is not available: Dialect is not a " \
               "change-hook dialect" in caplog.text
        client = app.test_client()
        answer = client.post("/change_hook/misfit", data={"author": "a"})
        assert answer.status_code == 404, answer.get_data(as_text=True)
        assert client.post("/change_hook/base", data={"author": "a"}).status_code == 202
    finally:
        app.extensions["bbweb"].db.dispose()


def test_a_misfit_page_and_a_misfit_dialect_of_master_cfg_are_named_at_load(
        installed, make_master, capsys, caplog):
    """The other two ways in: a ``bbweb.pages`` factory whose result is no Blueprint, and a
    dialect enabled by master.cfg's ``change_hook_dialects`` rather than plugins.toml."""
    m = make_master(DEFAULT_CFG.replace(
        "change_hook_dialects={'base': True}",
        "change_hook_dialects={'base': True,\n"
        "                                                  'misfit': {}}"))
    toml = enable(m.basedir, "[pages]\nmisfit = true\n")
    cfg = (m.basedir / "master.cfg").resolve()
    line = next(i for i, text in enumerate(cfg.read_text().splitlines(), 1)
                if "'misfit'" in text)
    code, _out, err = checkconfig(m.basedir, capsys)
    assert code == 1
    assert plugin_lines(err) == [
        f"{cfg}:{line}: change_hooks.misfit: Dialect is not a change-hook dialect: it has no "
        "get_changes(request) method (docs/plugins.md)",
        f"{toml}:2: pages.misfit: make_blueprint returned str, not a flask.Blueprint",
    ]
    assert main(["start", str(m.basedir)]) == 1
    assert plugin_lines(capsys.readouterr().err) == plugin_lines(err)

    with caplog.at_level(logging.ERROR):
        app = m.app()
    try:
        assert set(app.extensions["bbweb"].plugin_failures) == {"change_hooks.misfit",
                                                                "pages.misfit"}
        client = app.test_client()
        assert client.post("/change_hook/misfit", data={"author": "a"}).status_code == 404
        assert client.get("/misfit/").status_code == 404
        assert client.get("/").status_code == 200
        assert client.post("/change_hook/base", data={"author": "a"}).status_code == 202
    finally:
        app.extensions["bbweb"].db.dispose()
