"""words.IRC's arguments: 0.8's defaults, and bad values reported by checkconfig with the
file and line of master.cfg; the bot enabled from plugins.toml."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from bbweb.cli import main
from bbweb.mastercfg.errors import ConfigErrors
from bbweb.status import words
from tests.irc.conftest import IRC_CFG, bot_nick
from tests.support.ircd import CHANNEL, CHANNEL_KEY


def test_defaults():
    bot = words.IRC("irc.example.org", "bb", ["#ci", {"channel": "#k", "password": "key"}])
    assert bot.channels == [("#ci", None), ("#k", "key")]
    assert (bot.port, bot.allowForce, bot.allowShutdown, bot.categories) == \
        (6667, False, False, None)
    assert (bot.noticeOnChannel, bot.showBlameList, bot.useRevisions, bot.useSSL,
            bot.useColors) == (False, True, False, False, True)
    assert bot.notify_events == frozenset() and bot.pm_to_nicks == []
    assert 1 <= bot.lostDelay <= 5 and 45 <= bot.failedDelay <= 60
    assert bot.name == "irc" and bot.consumer_name == "notifier.irc"
    assert bot.initial_position == "latest"
    assert (bot.allowedNicks, bot.allowedNicksIdentified) == (None, True)
    assert words.IRC("h", "bb", [], notify_events={"started": 1, "failureToSuccess": 1}
                     ).notify_events == {"started", "failureToSuccess"}


@pytest.mark.parametrize(("args", "kwargs", "message"), [
    (("irc", "bb", ["#ci"]), {"allowForce": "yes"}, "allowForce must be boolean, not 'yes'"),
    (("irc", "bb", ["#ci"]), {"allowShutdown": 1}, "allowShutdown must be boolean, not 1"),
    (("irc", "bb", ["#ci"]), {"allowedNicks": ["al ice"]}, "allowedNicks: 'al ice' is not"),
    (("irc", "bb", ["#ci"]), {"allowedNicksIdentified": "no"},
     "allowedNicksIdentified must be boolean, not 'no'"),
    ((None, "bb", ["#ci"]), {}, "host (the IRC server's name) is required"),
    (("irc", "b b", ["#ci"]), {}, "nick 'b b' is not a valid IRC nick"),
    (("irc", "bb", None), {}, "channels is required"),
    (("irc", "bb", "#ci"), {}, "channels must be a list"),
    (("irc", "bb", ["ci"]), {}, "'ci' is not a channel name"),
    (("irc", "bb", ["#a b"]), {}, "'#a b' is not a channel name"),
    (("irc", "bb", [{"name": "#x"}]), {}, "must be a dict with 'channel'"),
    (("irc", "bb", [{"channel": "#x", "password": "a b"}]), {},
     "the key of channel '#x' must be a word"),
    (("irc", "bb", []), {"notify_events": {"retry": 1}},
     "notify_events: 'retry' is not a notify event"),
    (("irc", "bb", []), {"notify_events": "started"}, "notify_events must be a dict"),
    (("irc", "bb", []), {"port": 70000}, "port must be a port number"),
    (("irc", "bb", []), {"lostDelay": -1}, "lostDelay must be a number of seconds"),
    (("irc", "bb", []), {"categories": "core"}, "categories must be a list"),
    (("irc", "bb", []), {"pm_to_nicks": ["a b"]}, "pm_to_nicks: 'a b' is not a nick"),
    (("irc", "bb", []), {"password": "a\r\nQUIT"}, "password (for NickServ) must be"),
    (("irc", "bb", []), {"sslCAFile": "/nonexistent/ca.pem"}, "does not exist"),
    (("irc", "bb", []), {"commandsPerMinute": 0}, "commandsPerMinute must be a whole number"),
    (("irc", "bb", []), {"colour": "blue"}, "unknown argument(s) colour"),
])
def test_argument_errors(args, kwargs, message):
    with pytest.raises(ConfigErrors) as info:
        words.IRC(*args, **kwargs)
    assert message in str(info.value)


def test_checkconfig_names_file_and_line(tmp_path, capsys):
    cfg = IRC_CFG.replace("DB_URL", repr("sqlite:///" + str(tmp_path / "s.sqlite")))
    cfg += textwrap.dedent("""
        c['status'].append(words.IRC('irc.example.org', 'bb', ['#ci'],
                                     allowForce='yes'))
    """)
    (tmp_path / "master.cfg").write_text(cfg)
    assert main(["checkconfig", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    line = next(i for i, text in enumerate(cfg.splitlines(), 1) if "words.IRC(" in text)
    assert re.search(rf"master\.cfg:{line}: IRC: allowForce must be boolean, not 'yes'",
                     err), err


def test_the_example_in_configuration_md_passes_checkconfig(tmp_path, capsys):
    docs = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    section = docs.split("\n## IRC\n", 1)[1].split("\n## ", 1)[0]
    example = section.split("```python\n", 1)[1].split("```", 1)[0]
    assert "allowedNicks=" in example
    cfg = IRC_CFG.replace("DB_URL", repr("sqlite:///" + str(tmp_path / "s.sqlite")))
    (tmp_path / "master.cfg").write_text(cfg + example)
    assert main(["checkconfig", str(tmp_path)]) == 0, capsys.readouterr().err


def test_plugins_toml(tmp_path, capsys):
    cfg = IRC_CFG.replace("DB_URL", repr("sqlite:///" + str(tmp_path / "s.sqlite")))
    (tmp_path / "master.cfg").write_text(cfg)
    (tmp_path / "plugins.toml").write_text(
        '[notifiers]\nirc = { host = "irc.example.org", nick = "bb", channels = ["#ci"], '
        'notify_events = ["sometimes"] }\n')
    assert main(["checkconfig", str(tmp_path)]) == 1
    assert "notifiers.irc: IRC: notify_events: 'sometimes' is not a notify event" in \
        capsys.readouterr().err
    (tmp_path / "plugins.toml").write_text(
        '[notifiers]\nirc = { host = "irc.example.org", nick = "bb", channels = ["#ci"], '
        'notify_events = ["started", "successToFailure"] }\n')
    assert main(["checkconfig", str(tmp_path)]) == 0, capsys.readouterr().err


def test_enabled_in_plugins_toml_joins(make_master, daemons, ircd, users):
    alice = users()
    nick = bot_nick()
    master = make_master(IRC_CFG)
    (master.basedir / "plugins.toml").write_text(
        f'[notifiers]\nirc = {{ host = "127.0.0.1", port = {ircd.port}, nick = "{nick}", '
        f'channels = [{{ channel = "{CHANNEL}", password = "{CHANNEL_KEY}" }}] }}\n')
    d = daemons(master.basedir, holder="d")
    alice.wait_for(lambda ln: ln.kind == "join" and ln.nick == nick, 30, "the bot")
    assert alice.ask(nick, "hello") == ["yes?"]
    assert d.stop() == 0
