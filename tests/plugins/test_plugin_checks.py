"""Every plugin a master enables must be installed and import; the others are never imported.

A distribution whose entry points (one per plugin group) point at modules that raise on
import is installed for this module, and one with a notifier that imports. Enabled, each
broken plugin is named by ``bbweb checkconfig`` and ``bbweb start`` with the file and line
that enable it; installed but not enabled, it costs nothing: no import, no error in the
log when the web application starts.
"""

from __future__ import annotations

import logging
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from bbweb.cli import main
from tests.conftest import DEFAULT_CFG
from tests.support.distributions import on_path, write_distribution

GROUPS = {
    "change_hooks": "bbweb.change_hooks",
    "notifiers": "bbweb.notifiers",
    "auth": "bbweb.auth",
    "pages": "bbweb.pages",
}
# one broken module per group, each raising on import
BROKEN = {f"bbweb_test_broken_{section}": f"raise RuntimeError('broken {section} plugin')\n"
          for section in GROUPS}
WORKING_NOTIFIER = textwrap.dedent("""
    class Notifier:
        consumer_name = 'test-notifier'

        def handle_event(self, event):
            pass
""")


@pytest.fixture
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    site = tmp_path_factory.mktemp("site-packages")
    write_distribution(site, "bbweb-test-broken-plugins", "1.0", {
        group: {"broken": f"bbweb_test_broken_{section}:Plugin"}
        for section, group in GROUPS.items()}, BROKEN)
    write_distribution(site, "bbweb-test-notifier", "1.0",
                       {"bbweb.notifiers": {"pager": "bbweb_test_notifier:Notifier"}},
                       {"bbweb_test_notifier": WORKING_NOTIFIER})
    with on_path(site, [*BROKEN, "bbweb_test_notifier"]):
        yield site


def enable(basedir: Path, toml: str) -> Path:
    path = basedir / "plugins.toml"
    path.write_text(textwrap.dedent(toml))
    return path.resolve()


def checkconfig(basedir: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["checkconfig", str(basedir)])
    out = capsys.readouterr()
    return code, out.out, out.err


def plugin_lines(err: str) -> list[str]:
    lines = err.splitlines()
    start = lines.index("bbweb: plugins that cannot be used:")
    return [line.strip() for line in lines[start + 1:]]


def test_installed_but_not_enabled_is_never_imported(installed, make_master, caplog, capsys):
    m = make_master()
    with caplog.at_level(logging.DEBUG):
        app = m.app()
    try:
        assert app.extensions["bbweb"].plugin_failures == {}
        assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
        assert not any(module in sys.modules for module in BROKEN)
        assert app.test_client().post("/change_hook/base",
                                      data={"author": "a"}).status_code == 202
    finally:
        app.extensions["bbweb"].db.dispose()
    code, out, err = checkconfig(m.basedir, capsys)
    assert (code, err) == (0, ""), err
    assert "Config file is good!" in out


def test_every_enabled_broken_plugin_is_named_with_its_line(installed, make_master, capsys,
                                                            caplog):
    m = make_master()
    toml = enable(m.basedir, """\
        # every section enables the broken plugin of the same name
        [change_hooks]
        base = true
        broken = true

        [notifiers]
        broken = true

        [pages]
        broken = { colour = "red" }

        [auth]
        broken = true
    """)
    code, _out, err = checkconfig(m.basedir, capsys)
    assert code == 1
    assert plugin_lines(err) == [
        f"{toml}:13: auth.broken: RuntimeError: broken auth plugin",
        f"{toml}:4: change_hooks.broken: RuntimeError: broken change_hooks plugin",
        f"{toml}:7: notifiers.broken: RuntimeError: broken notifiers plugin",
        f"{toml}:10: pages.broken: RuntimeError: broken pages plugin",
    ]
    assert main(["start", str(m.basedir)]) == 1
    assert plugin_lines(capsys.readouterr().err) == plugin_lines(err)

    # the web application leaves them out and says where each was enabled
    with caplog.at_level(logging.ERROR):
        app = m.app()
    try:
        assert set(app.extensions["bbweb"].plugin_failures) == {
            "auth.broken", "change_hooks.broken", "pages.broken"}
        assert f"{toml}:4: plugin change_hooks.broken is not available: RuntimeError: " \
               "broken change_hooks plugin" in caplog.text
        assert app.test_client().post("/change_hook/base",
                                      data={"author": "a"}).status_code == 202
    finally:
        app.extensions["bbweb"].db.dispose()


def test_names_nobody_installed_are_errors_in_every_section(installed, make_master, capsys):
    m = make_master(DEFAULT_CFG.replace(
        "change_hook_dialects={'base': True}",
        "change_hook_dialects={'base': True,\n"
        "                                                  'nosuch': {}}"))
    toml = enable(m.basedir, """\
        [notifiers]
        nosuchplugin = true
        off = false

        [change_hooks.github]
        secret = "s"

        [change_hooks]
        "typo" = true

        [pages]
        hello.greeting = "hi"
    """)
    code, _out, err = checkconfig(m.basedir, capsys)
    assert code == 1
    cfg = (m.basedir / "master.cfg").resolve()
    nosuch_line = next(i for i, line in enumerate(cfg.read_text().splitlines(), 1)
                       if "'nosuch'" in line)
    dialects = "base, bitbucket, broken, github, gitlab, googlecode, poller"
    assert plugin_lines(err) == [
        f"{cfg}:{nosuch_line}: change_hooks.nosuch: no such change hook dialect is "
        f"installed (installed: {dialects})",
        f"{toml}:9: change_hooks.typo: no such change hook dialect is installed "
        f"(installed: {dialects})",
        f"{toml}:2: notifiers.nosuchplugin: no such notifier is installed "
        "(installed: broken, gerrit, github, httpstatuspush, irc, mail, pager, statuspush)",
        f"{toml}:12: pages.hello: no such pages plugin is installed (installed: broken)",
    ]


def test_notifiers_section_names_only_installed_notifiers(make_master, capsys):
    """bbweb registers ``gerrit`` and ``mail``; any other enabled name is an error that lists it."""
    m = make_master()
    toml = enable(m.basedir, "[notifiers]\nnosuchplugin = true\n")
    code, _out, err = checkconfig(m.basedir, capsys)
    assert code == 1
    assert plugin_lines(err) == [
        f"{toml}:2: notifiers.nosuchplugin: no such notifier is installed "
        "(installed: gerrit, github, httpstatuspush, irc, mail, statuspush)"]
    enable(m.basedir, "[notifiers]\nnosuchplugin = false\n")
    assert checkconfig(m.basedir, capsys)[0] == 0


def test_an_installed_notifier_enabled_in_plugins_toml_passes(installed, make_master,
                                                              capsys):
    """An installed consumer-shaped notifier is loaded and checked; the daemon runs it."""
    m = make_master()
    enable(m.basedir, "[notifiers]\npager = true\n")
    code, out, err = checkconfig(m.basedir, capsys)
    assert (code, err) == (0, "")
    assert out == "Config file is good!\n"


def test_plugins_toml_mistakes_name_their_line(make_master, capsys):
    m = make_master()
    toml = enable(m.basedir, """\
        [change_hooks]
        base = 3

        [colours]
        red = true
    """)
    code, _out, err = checkconfig(m.basedir, capsys)
    assert code == 1
    assert f"{toml}:2: [change_hooks] base must be true, false or a table of options" in err
    assert f"{toml}:4: unknown section [colours]" in err
