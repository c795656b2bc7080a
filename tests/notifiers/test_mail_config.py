"""MailNotifier's arguments: defaults, and bad values reported by checkconfig with the
file and line of master.cfg."""

from __future__ import annotations

import re
import textwrap

import pytest

from bbweb.cli import main
from bbweb.mastercfg.errors import ConfigErrors
from bbweb.status.mail import Domain, MailNotifier
from tests.notifiers.conftest import MAIL_CFG


def test_defaults():
    m = MailNotifier("bb@example.org")
    assert m.mode == ("failing", "passing", "warnings")
    assert (m.builders, m.categories, m.addLogs, m.addPatch) == (None, None, False, True)
    assert (m.relayhost, m.smtpPort, m.useTls, m.smtpUser) == ("localhost", 25, False, None)
    assert m.subject == "buildbot %(result)s in %(title)s on %(builder)s"
    assert (m.extraRecipients, m.sendToInterestedUsers, m.lookup) == ([], True, None)
    assert (m.buildSetSummary, m.extraHeaders) == (False, {})
    assert m.name == "mail" and m.consumer_name == "notifier.mail"
    assert m.initial_position == "latest"
    assert m.smtp.implicit_tls is False
    assert MailNotifier("bb@example.org", smtpPort=465).smtp.implicit_tls is True
    assert isinstance(MailNotifier("bb@example.org", lookup="example.org").lookup, Domain)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"mode": ("failing", "all")}, "mode 'all' is not valid in an iterator and must be "
                                   "passed in as a separate string"),
    ({"mode": "sometimes"}, "mode sometimes is not a valid mode"),
    ({"mode": ["failing", "bogus"]}, "mode bogus is not a valid mode"),
    ({"builders": ["a"], "categories": ["b"]},
     "Please specify only builders or categories to include - not both."),
    ({"subject": "two\nlines"}, "Newlines are not allowed in email subjects"),
    ({"subject": "%(nope)s"}, "cannot be filled in"),
    ({"extraRecipients": "a@example.org"}, "extraRecipients must be a list or tuple"),
    ({"extraRecipients": ["not an address"]},
     "extra recipient 'not an address' is not a valid email"),
    ({"customMesg": lambda *a: {}}, "customMesg is deprecated; use messageFormatter instead"),
    ({"extraHeaders": [("X-A", "b")]}, "extraHeaders must be a dictionary"),
    ({"extraHeaders": {"To": "x@example.org"}}, "MailNotifier writes that header itself"),
    ({"extraHeaders": {"Bad Name": "v"}}, "is not a valid header name"),
    ({"lookup": 42}, "must be a domain string, a Domain(...) or an object with a "
                     "getAddress(name) method"),
    ({"lookup": "a@b.org"}, "without '@'"),
    ({"smtpUser": "u"}, "give both smtpUser and smtpPassword"),
    ({"smtpPort": 0}, "smtpPort must be a port number"),
    ({"useTls": True, "smtpPort": 465}, "exclude each other"),
    ({"smtpCAFile": "/nonexistent/ca.pem"}, "does not exist"),
    ({"addLogs": "stdio"}, "addLogs must be True, False or a list of log names"),
    ({"messageFormatter": "nomodule_xyz:f"}, "cannot be imported"),
    ({"name": "no spaces allowed"}, "name='no spaces allowed' must be"),
    ({"colour": "blue"}, "unknown argument(s) colour"),
])
def test_argument_errors(kwargs, message):
    with pytest.raises(ConfigErrors) as info:
        MailNotifier("bb@example.org", **kwargs)
    assert message in str(info.value)


def test_fromaddr_is_required():
    with pytest.raises(ConfigErrors, match="fromaddr"):
        MailNotifier()
    with pytest.raises(ConfigErrors, match="not an email address"):
        MailNotifier("bb@example.org\r\nBcc: x@evil.org")


def test_checkconfig_names_file_and_line(tmp_path, capsys):
    cfg = MAIL_CFG.replace("DB_URL", repr("sqlite:///" + str(tmp_path / "s.sqlite")))
    cfg += textwrap.dedent("""
        c['status'].append(MailNotifier(fromaddr='bb@example.org',
                                        mode=('failing', 'all')))
    """)
    (tmp_path / "master.cfg").write_text(cfg)
    assert main(["checkconfig", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    line = next(i for i, text in enumerate(cfg.splitlines(), 1) if "MailNotifier(" in text
                and "append" in text)
    assert re.search(rf"master\.cfg:{line}: MailNotifier: mode 'all' is not valid", err), err


def test_a_good_configuration_passes_checkconfig(tmp_path, capsys):
    cfg = MAIL_CFG.replace("DB_URL", repr("sqlite:///" + str(tmp_path / "s.sqlite")))
    cfg += "c['status'].append(MailNotifier(fromaddr='bb@example.org', lookup='example.org'))\n"
    (tmp_path / "master.cfg").write_text(cfg)
    assert main(["checkconfig", str(tmp_path)]) == 0, capsys.readouterr().err


def test_checkconfig_reports_plugins_toml_notifiers(tmp_path, capsys):
    cfg = MAIL_CFG.replace("DB_URL", repr("sqlite:///" + str(tmp_path / "s.sqlite")))
    (tmp_path / "master.cfg").write_text(cfg)
    (tmp_path / "plugins.toml").write_text(
        '[notifiers]\nmail = { fromaddr = "bb@example.org", mode = ["failing", "all"] }\n')
    assert main(["checkconfig", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "notifiers.mail: MailNotifier: mode 'all' is not valid in an iterator" in err
    (tmp_path / "plugins.toml").write_text(
        '[notifiers]\nmail = { fromaddr = "bb@example.org", mode = "all" }\n')
    assert main(["checkconfig", str(tmp_path)]) == 0
