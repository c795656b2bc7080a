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
from bbweb.mastercfg.planned import PLANNED_TARGETS

HEADER = "from bbweb.config import *\nc = BuildmasterConfig = {}\n"
NOT_YET = f"not available yet in this version of bbweb ({__version__})"

# (the import lines of a 0.8 master.cfg with bbweb's prefix, the message's beginning)
IMPORTS = [
    ("from bbweb.status.client import PBListener\n"
     "c['status'] = [PBListener(9988)]",
     "PBListener from bbweb.status.client"),
    ("from bbweb.status import status_gerrit\n"
     "c['status'] = [status_gerrit.GerritStatusPush('gerrit.example.org', 'bb')]",
     "GerritStatusPush from bbweb.status.status_gerrit (reviews posted to Gerrit) is"),
    ("from bbweb.status.status_push import StatusPush, HttpStatusPush",
     "StatusPush and HttpStatusPush from bbweb.status.status_push (pushing status events "
     "to a server) are"),
    ("from bbweb.status.status_push import HttpStatusPush",
     "HttpStatusPush from bbweb.status.status_push (pushing status events to a server) is"),
    ("import bbweb.status.status_push\n"
     "c['status'] = [bbweb.status.status_push.HttpStatusPush('http://x/')]",
     "StatusPush and HttpStatusPush from bbweb.status.status_push"),
    ("from bbweb.status.github import GitHubStatus",
     "GitHubStatus from bbweb.status.github (GitHub commit statuses) is"),
    ("from bbweb.status.status_gerrit import GerritStatusPush",
     "GerritStatusPush from bbweb.status.status_gerrit (reviews posted to Gerrit) is"),
    ("import bbweb.status.client\n"
     "c['status'] = [bbweb.status.client.PBListener(9988)]",
     "PBListener from bbweb.status.client"),
    ("import bbweb.status\n"
     "c['status'] = [bbweb.status.status_gerrit.GerritStatusPush('gerrit', 'bb')]",
     "GerritStatusPush from bbweb.status.status_gerrit (reviews posted to Gerrit) is"),
    ("import bbweb.status\nc['status'] = [bbweb.status.words.IRC('irc', 'bb', [])]",
     "IRC from bbweb.status.words (the IRC bot) is"),
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
    cfg = write(tmp_path, "from buildbot.status.status_gerrit import GerritStatusPush")
    assert main(["checkconfig", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert ("(write 'bbweb.status.status_gerrit'); but GerritStatusPush from "
            "bbweb.status.status_gerrit") in err
    assert NOT_YET in err


def test_other_import_errors_keep_python_s_message(tmp_path, capsys):
    cfg = write(tmp_path, "import frobnicator_helpers")
    assert main(["checkconfig", str(tmp_path)]) == 1
    assert (f"{cfg}:3: error while executing the configuration: ModuleNotFoundError: No "
            "module named 'frobnicator_helpers'") in capsys.readouterr().err


def test_start_and_master_fail_with_the_same_sentence(tmp_path, capsys, caplog):
    cfg = write(tmp_path, "from bbweb.status.status_gerrit import GerritStatusPush")
    expected = (f"{cfg}:3: GerritStatusPush from bbweb.status.status_gerrit (reviews posted "
                "to Gerrit) is not available yet")
    assert main(["start", str(tmp_path)]) == 1
    assert expected in capsys.readouterr().err
    with caplog.at_level(logging.ERROR, logger="bbweb.daemon"):
        assert main(["master", str(tmp_path)]) == 1
    assert expected in caplog.text
    assert not (tmp_path / "state.sqlite").exists()


def test_every_planned_target_is_really_missing_or_imports():
    """Each row names a module bbweb does not ship yet; once it ships, importing it works
    and the row is never consulted (remove it then, and update docs/compat.md)."""
    for module, target in PLANNED_TARGETS.items():
        assert module.startswith("bbweb.status.")
        if importlib.util.find_spec(module) is not None:
            mod = importlib.import_module(module)
            assert all(hasattr(mod, name) for name in target.names), module


def test_the_message_disappears_once_the_module_exists(tmp_path, monkeypatch, capsys):
    """A target shipped later as bbweb/status/client.py is imported like any module."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "client.py").write_text(
        "class PBListener:\n"
        "    consumer_name = 'pb'\n"
        "    def __init__(self, port):\n"
        "        self.port = port\n"
        "    def handle_event(self, event):\n"
        "        pass\n")
    basedir = tmp_path / "master"
    basedir.mkdir()
    write(basedir, "from bbweb.status.client import PBListener\n"
                   "c['status'] = [PBListener(9988)]")
    assert main(["checkconfig", str(basedir)]) == 1
    assert NOT_YET in capsys.readouterr().err

    monkeypatch.setattr(bbweb.status, "__path__", [*bbweb.status.__path__, str(package)])
    importlib.invalidate_caches()
    try:
        assert main(["checkconfig", str(basedir)]) == 0, capsys.readouterr().err
        cfg = load_master_config(basedir)
        assert [type(t).__name__ for t in cfg.status] == ["PBListener"]
    finally:
        sys.modules.pop("bbweb.status.client", None)
        if hasattr(bbweb.status, "client"):
            delattr(bbweb.status, "client")


def test_compat_md_says_which_targets_exist():
    """docs/compat.md's status-target table marks exactly the absent targets as not
    available yet (when one ships, its row there has to say so)."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "compat.md").read_text()
    section = text.split("## Status targets", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    for module, target in PLANNED_TARGETS.items():
        short = module.rsplit(".", 1)[1]
        row = next((r for r in rows if f"`{short}.{target.names[0]}`" in r), None)
        assert row is not None, f"docs/compat.md has no row for {short}.{target.names[0]}"
        missing = importlib.util.find_spec(module) is None
        assert ("not available yet" in row) == missing, row


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
