"""A real IRC server for tests: Debian's ngircd on free loopback ports, with a keyed
channel, a TLS port whose certificate is made with ``openssl``, and atheme-services linked
in as NickServ when that package is installed. Plus :class:`IrcUser`, a real client (the
``irc`` package) that joins, speaks and waits for lines with a deadline.

ngircd runs in the foreground (``-n``) as a child of the test process and is stopped by
its pid; :meth:`IrcServer.restart` stops it and starts it again on the same ports, as an
outage would look to a client.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import irc.client
import irc.connection

from tests.support.polling import wait_for
from tests.support.smtpd import free_port, make_certificate

CHANNEL, CHANNEL_KEY = "#bb", "sekrit"
OPEN_CHANNEL = "#open"
LINK_PASSWORD = "linkpass"
ATHEME_EXAMPLE = Path("/usr/share/doc/atheme-services/examples/atheme.conf.example")

NGIRCD_CONF = """\
[Global]
\tName = irc.bbweb.test
\tInfo = bbweb test IRC server
\tListen = 127.0.0.1
\tPorts = {port}
\tMotdPhrase = bbweb test server
\tServerUID = {uid}
\tServerGID = {gid}
[Limits]
\tMaxNickLength = 30
\tPingTimeout = 120
\tPongTimeout = 20
\tConnectRetry = 1
[Options]
\tPAM = no
\tIdent = no
\tDNS = no
[SSL]
\tCertFile = {cert}
\tKeyFile = {key}
\tPorts = {tls_port}
[Channel]
\tName = {channel}
\tTopic = bbweb test channel
\tModes = +tnk {key_word}
[Server]
\tName = services.bbweb.test
\tMyPassword = {link}
\tPeerPassword = {link}
\tServiceMask = *Serv
"""


def have_ngircd() -> bool:
    return shutil.which("ngircd") is not None or os.path.exists("/usr/sbin/ngircd")


def have_atheme() -> bool:
    return shutil.which("atheme-services") is not None and ATHEME_EXAMPLE.exists()


def _atheme_conf(port: int) -> str:
    """Debian's example configuration, pointed at our ngircd (protocol module, names,
    one uplink)."""
    text = ATHEME_EXAMPLE.read_text()
    text = text.replace('#loadmodule "modules/protocol/charybdis";',
                        'loadmodule "modules/protocol/ngircd";')
    text = text.replace('"services.int"', '"services.bbweb.test"')
    text = text.replace('"misconfigured network"', '"bbwebtest"')
    text = text.replace('"users.misconfigured"', '"users.bbweb.test"')
    text = text.replace('"misconfigured admin"', '"bbweb"')
    text = text.replace('"misconfigured@admin.tld"', '"admin@bbweb.test"')
    text = text.replace('"noreply@admin.tld"', '"noreply@bbweb.test"')
    uplinks = re.compile(r'^uplink "[^"]*" \{.*?^\};\n', re.M | re.S)
    text = uplinks.sub("", text)
    return text + (f'\nuplink "irc.bbweb.test" {{\n\thost = "127.0.0.1";\n'
                   f'\tpassword = "{LINK_PASSWORD}";\n\tport = {port};\n}};\n')


class IrcServer:
    """ngircd (and atheme when installed) in ``workdir``; ``port`` plain, ``tls_port``
    TLS with ``cert`` (a self-signed certificate for 127.0.0.1/localhost)."""

    def __init__(self, workdir: Path, *, services: bool = True) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.tls_port = free_port()
        self.cert, self.key = make_certificate(workdir)
        os.chmod(self.key, 0o644)  # ngircd may read it after dropping to nobody
        self.services = services and have_atheme()
        self.proc: subprocess.Popen[bytes] | None = None
        self.atheme: subprocess.Popen[bytes] | None = None
        self.conf = workdir / "ngircd.conf"
        uid = gid = os.getuid() if os.getuid() else 65534
        self.conf.write_text(NGIRCD_CONF.format(
            port=self.port, tls_port=self.tls_port, cert=self.cert, key=self.key,
            channel=CHANNEL, key_word=CHANNEL_KEY, link=LINK_PASSWORD, uid=uid, gid=gid))
        os.chmod(workdir, 0o755)
        os.chmod(self.conf, 0o644)

    # -- life ----------------------------------------------------------------------------

    def start(self) -> IrcServer:
        with open(self.workdir / "ngircd.log", "ab") as log:
            self.proc = subprocess.Popen(["ngircd", "-n", "-f", str(self.conf)], stdout=log,
                                         stderr=subprocess.STDOUT)
        wait_for(self._accepting, 20, "ngircd to accept connections")
        if self.services:
            self._start_atheme()
        return self

    def _accepting(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError("ngircd exited: " +
                                 (self.workdir / "ngircd.log").read_text()[-2000:])
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def _start_atheme(self) -> None:
        data = self.workdir / "atheme-data"
        data.mkdir(exist_ok=True)
        conf = self.workdir / "atheme.conf"
        conf.write_text(_atheme_conf(self.port))
        out_path = self.workdir / "atheme.out"
        with open(out_path, "wb") as out:
            self.atheme = subprocess.Popen(
                ["atheme-services", "-n", "-c", str(conf), "-D", str(data), "-l",
                 str(self.workdir / "atheme.log"), "-p", str(self.workdir / "atheme.pid")],
                stdout=out, stderr=subprocess.STDOUT)
        wait_for(lambda: b"finished synching" in out_path.read_bytes()
                 or self.atheme is None or self.atheme.poll() is not None, 30,
                 "atheme to link to ngircd")
        if self.atheme.poll() is not None:
            raise AssertionError("atheme exited: " + out_path.read_text()[-2000:])

    def stop(self) -> None:
        for proc in (self.atheme, self.proc):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
        self.atheme = self.proc = None

    def kill(self) -> None:
        """Kill ngircd (and atheme) at once, as a crash would."""
        for proc in (self.atheme, self.proc):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(10)
        self.atheme = self.proc = None

    def restart(self) -> None:
        self.kill()
        self.start()

    def log_text(self) -> str:
        return (self.workdir / "ngircd.log").read_text(errors="replace")


@dataclass
class Line:
    """One message an :class:`IrcUser` received."""

    kind: str  # pubmsg, privmsg, pubnotice, privnotice, action, join, kick, quit…
    nick: str  # who sent it
    target: str
    text: str
    raw_args: tuple[str, ...] = ()


class IrcUser:
    """A person on IRC: a real ``irc`` client on its own reactor and thread."""

    def __init__(self, server: IrcServer, nick: str, *, tls: bool = False) -> None:
        self.server = server
        self.nick = nick
        self.lines: list[Line] = []
        self.raw: list[str] = []
        self._cond = threading.Condition()
        self.reactor = irc.client.Reactor()
        self.welcomed = threading.Event()
        self._stop = threading.Event()
        for kind in ("pubmsg", "privmsg", "pubnotice", "privnotice", "action", "join",
                     "part", "kick", "quit", "nick", "ctcp"):
            self.reactor.add_global_handler(kind, self._record)
        self.reactor.add_global_handler("all_raw_messages", self._record_raw)
        self.reactor.add_global_handler("welcome", lambda c, e: self.welcomed.set())
        factory: Any = irc.connection.Factory()
        port = server.port
        if tls:
            ctx = ssl.create_default_context(cafile=str(server.cert))
            factory = irc.connection.Factory(
                wrapper=lambda s: ctx.wrap_socket(s, server_hostname="localhost"))
            port = server.tls_port
        self.conn = self.reactor.server().connect("127.0.0.1", port, nick,
                                                  connect_factory=factory)
        self.thread = threading.Thread(target=self._loop, daemon=True, name=f"irc-{nick}")
        self.thread.start()
        assert self.welcomed.wait(20), f"{nick} was not welcomed by the IRC server"

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.reactor.process_once(0.05)

    def _record(self, conn: Any, event: Any) -> None:
        nick = event.source.nick if event.source and "!" in event.source else \
            str(event.source or "")
        text = event.arguments[0] if event.arguments else ""
        with self._cond:
            self.lines.append(Line(event.type, nick, event.target or "", text,
                                   tuple(event.arguments)))
            self._cond.notify_all()

    def _record_raw(self, conn: Any, event: Any) -> None:
        with self._cond:
            self.raw.append(event.arguments[0])
            self._cond.notify_all()

    # -- acting --------------------------------------------------------------------------

    def join(self, channel: str = CHANNEL, key: str = CHANNEL_KEY) -> None:
        with self.reactor.mutex:
            self.conn.join(channel, key)
        self.wait_for(lambda ln: ln.kind == "join" and ln.nick == self.nick
                      and ln.target.lower() == channel.lower(), what=f"{self.nick} joining "
                      f"{channel}")

    def say(self, target: str, text: str) -> None:
        with self.reactor.mutex:
            self.conn.privmsg(target, text)

    def me(self, target: str, text: str) -> None:
        with self.reactor.mutex:
            self.conn.action(target, text)

    def quit(self) -> None:
        self._stop.set()
        self.thread.join(5)
        self.conn.disconnect("bye")

    # -- waiting -------------------------------------------------------------------------

    def mark(self) -> int:
        """A position in :attr:`lines`: wait_for(after=...) looks only at later lines."""
        with self._cond:
            return len(self.lines)

    def wait_for(self, predicate: Callable[[Line], bool], timeout: float = 20.0,
                 what: str = "a line", after: int = 0) -> Line:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines[after:]:
                    if predicate(line):
                        return line
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = "\n".join(f"  {ln.kind} {ln.nick}->{ln.target}: {ln.text!r}"
                                     for ln in self.lines[after:][-30:])
                    raise AssertionError(f"{self.nick}: timed out after {timeout}s waiting "
                                         f"for {what}; got:\n{seen}")
                self._cond.wait(min(left, 0.5))

    def messages_from(self, nick: str, after: int = 0, target: str | None = None
                      ) -> list[Line]:
        with self._cond:
            return [ln for ln in self.lines[after:]
                    if ln.nick == nick and ln.kind in ("pubmsg", "privmsg", "pubnotice",
                                                        "privnotice", "action")
                    and (target is None or ln.target.lower() == target.lower())]

    def wait_for_text(self, nick: str, text: str | re.Pattern[str], *, after: int = 0,
                      timeout: float = 20.0, target: str | None = None) -> Line:
        """The first message from ``nick`` (to ``target`` if given) equal to ``text`` (or
        matching the pattern)."""
        def match(ln: Line) -> bool:
            if ln.nick != nick or ln.kind not in ("pubmsg", "privmsg", "pubnotice",
                                                  "privnotice", "action"):
                return False
            if target is not None and ln.target.lower() != target.lower():
                return False
            return bool(text.search(ln.text)) if isinstance(text, re.Pattern) else \
                ln.text == text
        return self.wait_for(match, timeout, f"{text!r} from {nick}", after)

    def ask(self, bot: str, command: str, target: str = CHANNEL, *, timeout: float = 20.0,
            replies: int = 1) -> list[str]:
        """Say ``bot: command`` in ``target`` (a channel; or the bot's nick for a private
        message) and return the first ``replies`` texts the bot sends back there."""
        start = self.mark()
        where = target if target.startswith("#") else None
        self.say(target, f"{bot}: {command}" if where else command)
        got: list[str] = []

        def enough(_ln: Line) -> bool:
            found = self.messages_from(bot, start, where or self.nick)
            got[:] = [ln.text for ln in found]
            return len(found) >= replies
        self.wait_for(enough, timeout, f"{replies} repl(y/ies) of {bot} to {command!r}",
                      start)
        return got[:replies]
