"""A master.cfg carried over from Buildbot 0.8 that imports a status target bbweb does not
have yet gets one plain sentence at its line, not "No module named ...".

The message comes from a table consulted only after the import failed: the last test
adds a module where bbweb would ship it and shows the import then simply works.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
from pathlib import Path

import pytest

import bbweb.status
from bbweb import __version__
from bbweb.cli import main
from bbweb.config import load_master_config
from bbweb.mastercfg.planned import PLANNED_TARGETS, PlannedTarget

HEADER = "from bbweb.config import *\nc = BuildmasterConfig = {}\n"
NOT_YET = f"not available yet in this version of bbweb ({__version__})"

# Every 0.8 status target ships now, so the tests give the table a row of their own: a
# target 0.8 had that bbweb does not (Tinderbox mail).
TINDERBOX = PlannedTarget("bbweb.status.tinderbox", ("TinderboxMailNotifier",),
                          "mail in Tinderbox's format")


@pytest.fixture(autouse=True)
def planned_tinderbox(monkeypatch):
    monkeypatch.setitem(PLANNED_TARGETS, TINDERBOX.module, TINDERBOX)


# (the import lines of a 0.8 master.cfg with bbweb's prefix, the message's beginning)
IMPORTS = [
    ("from bbweb.status.tinderbox import TinderboxMailNotifier\n"
     "c['status'] = [TinderboxMailNotifier(fromaddr='bb@example.org')]",
     "TinderboxMailNotifier from bbweb.status.tinderbox (mail in Tinderbox's format) is"),
    ("from bbweb.status import tinderbox\n"
     "c['status'] = [tinderbox.TinderboxMailNotifier(fromaddr='bb@example.org')]",
     "TinderboxMailNotifier from bbweb.status.tinderbox (mail in Tinderbox's format) is"),
    ("import bbweb.status.tinderbox",
     "TinderboxMailNotifier from bbweb.status.tinderbox"),
    ("import bbweb.status\n"
     "c['status'] = [bbweb.status.tinderbox.TinderboxMailNotifier(fromaddr='x@y')]",
     "TinderboxMailNotifier from bbweb.status.tinderbox (mail in Tinderbox's format) is"),
]


def write(basedir: Path, body: str) -> Path:
    (basedir / "master.cfg").write_text(HEADER + body + "\n")
    return (basedir / "master.cfg").resolve()


@pytest.mark.parametrize(("body", "message"), IMPORTS, ids=[m.split()[0] + "-" + str(i)
                                                            for i, (_b, m)
                                                            in enumerate(IMPORTS)])
def test_checkconfig_says_the_target_is_not_available_yet(tmp_path, capsys, body, message):
    cfg = write(tmp_path, body)
    assert main(["checkconfig", str(tmp_path)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "bbweb: the configuration has errors:"
    assert len(err) == 2, err  # one line for the one problem
    line = err[1].strip()
    # the failing line: the import, or the use of a module attribute that is not there
    failing = 3 if body.startswith(("from", "import bbweb.status.")) else 4
    assert line.startswith(f"{cfg}:{failing}: {message} ")
    assert NOT_YET in line and "docs/compat.md" in line
    assert "No module named" not in line and "cannot import name" not in line


def test_a_buildbot_prefix_left_in_place_is_pointed_out(tmp_path, capsys):
    cfg = write(tmp_path, "from buildbot.status.html import WebStatus")
    assert main(["checkconfig", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert (f"{cfg}:3: there is no module 'buildbot.status.html' here: bbweb offers "
            "Buildbot's names under 'bbweb.' (write 'bbweb.status.html')") in err
    cfg = write(tmp_path, "from buildbot.status.tinderbox import TinderboxMailNotifier")
    assert main(["checkconfig", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert ("(write 'bbweb.status.tinderbox'); but TinderboxMailNotifier from "
            "bbweb.status.tinderbox") in err
    assert NOT_YET in err


def test_other_import_errors_keep_python_s_message(tmp_path, capsys):
    cfg = write(tmp_path, "import frobnicator_helpers")
    assert main(["checkconfig", str(tmp_path)]) == 1
    assert (f"{cfg}:3: error while executing the configuration: ModuleNotFoundError: No "
            "module named 'frobnicator_helpers'") in capsys.readouterr().err


def test_start_and_master_fail_with_the_same_sentence(tmp_path, capsys, caplog):
    cfg = write(tmp_path, "from bbweb.status.tinderbox import TinderboxMailNotifier")
    expected = (f"{cfg}:3: TinderboxMailNotifier from bbweb.status.tinderbox (mail in "
                "Tinderbox's format) is not available yet")
    assert main(["start", str(tmp_path)]) == 1
    assert expected in capsys.readouterr().err
    with caplog.at_level(logging.ERROR, logger="bbweb.daemon"):
        assert main(["master", str(tmp_path)]) == 1
    assert expected in caplog.text
    assert not (tmp_path / "state.sqlite").exists()


def test_the_message_disappears_once_the_module_exists(tmp_path, monkeypatch, capsys):
    """A target shipped later as bbweb/status/tinderbox.py is imported like any module."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "tinderbox.py").write_text(
        "class TinderboxMailNotifier:\n"
        "    consumer_name = 'tinderbox'\n"
        "    def __init__(self, fromaddr):\n"
        "        self.fromaddr = fromaddr\n"
        "    def handle_event(self, event):\n"
        "        pass\n")
    basedir = tmp_path / "master"
    basedir.mkdir()
    write(basedir, "from bbweb.status.tinderbox import TinderboxMailNotifier\n"
                   "c['status'] = [TinderboxMailNotifier('bb@example.org')]")
    assert main(["checkconfig", str(basedir)]) == 1
    assert NOT_YET in capsys.readouterr().err

    monkeypatch.setattr(bbweb.status, "__path__", [*bbweb.status.__path__, str(package)])
    importlib.invalidate_caches()
    try:
        assert main(["checkconfig", str(basedir)]) == 0, capsys.readouterr().err
        cfg = load_master_config(basedir)
        assert [type(t).__name__ for t in cfg.status] == ["TinderboxMailNotifier"]
    finally:
        sys.modules.pop("bbweb.status.tinderbox", None)
        if hasattr(bbweb.status, "tinderbox"):
            delattr(bbweb.status, "tinderbox")


def test_compat_md_says_which_targets_exist():
    """docs/compat.md's status-target table marks a target not available yet exactly when
    bbweb does not ship its module (when one ships, its row there has to say so)."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "compat.md").read_text()
    section = text.split("## Status targets", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    shipped = ["mail.MailNotifier", "words.IRC", "status_push.StatusPush",
               "status_gerrit.GerritStatusPush", "github.GitHubStatus", "client.PBListener"]
    for name in shipped:
        row = next((r for r in rows if f"`{name}`" in r), None)
        assert row is not None, f"docs/compat.md has no row for {name}"
        assert importlib.util.find_spec("bbweb.status." + name.split(".")[0]) is not None
        assert "not available yet" not in row, row


@pytest.mark.parametrize("body", [
    "from bbweb.status import client\nc['status'] = [client.PBListener(9988)]",
    "import bbweb.status.client\n"
    "c['status'] = [bbweb.status.client.PBListener(port=9988, user='u', passwd='p')]",
])
def test_pblistener_points_at_the_live_stream(tmp_path, capsys, body):
    cfg = write(tmp_path, body)
    assert main(["checkconfig", str(tmp_path)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2, err
    assert err[1].strip().startswith(f"{cfg}:4: PBListener (Buildbot's Perspective Broker "
                                     "status port")
    assert "/json/events" in err[1] and "bbweb statuslog --master URL" in err[1]
