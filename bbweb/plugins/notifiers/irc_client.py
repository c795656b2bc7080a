"""The IRC bot's connection: one thread that owns the socket, signs on, joins, answers
the server's pings, sends what is queued at a rate the server will not punish, and
reconnects after an outage.

Only this thread touches the ``irc`` library's objects (an SSL socket must not be read
and written from two threads). Other threads talk to it through :meth:`BotConnection.send`
(wait until the lines were written, or fail with :class:`NotConnected`) and
:meth:`BotConnection.call_later` (run a function on this thread).

Reconnection follows Buildbot 0.8's two delays: ``lost_delay`` after a connection that
was up is lost, ``failed_delay`` after an attempt that failed; repeated failures double
the wait, up to eight times ``failed_delay`` (0.8 retried at the same pace forever).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import queue
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import irc.client
import irc.connection

log = logging.getLogger("bbweb.notifiers.irc")

QUIT_MESSAGE = "buildmaster reconfigured: bot disconnecting"
MAX_NICK_TRIES = 10
JOIN_WAIT = 10.0


class NotConnected(Exception):
    """The bot is not (yet, or any more) connected, or not in the channel."""


@dataclass
class ConnectionSettings:
    host: str
    port: int
    nick: str
    channels: list[tuple[str, str | None]]  # (name, key)
    nickserv_password: str | None = None
    use_ssl: bool = False
    ca_file: str | None = None  # None: the system's trusted CAs
    verify: bool = True
    lost_delay: float = 3.0
    failed_delay: float = 50.0
    keepalive: float = 60.0
    connect_timeout: float = 20.0
    lines_per_second: float = 2.0
    line_burst: int = 5


@dataclass
class _Outgoing:
    target: str
    text: str
    kind: str  # privmsg, notice, action
    done: threading.Event = field(default_factory=threading.Event)
    error: str | None = None


class _Bucket:
    """Flood control: ``burst`` lines at once, then ``rate`` lines a second."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.at = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def wait_time(self) -> float:
        return max(0.0, (1.0 - self.tokens) / self.rate) if self.rate > 0 else 1.0


Handler = Callable[["BotConnection", Any], None]


class BotConnection:
    """The connection thread. ``handlers`` maps ``irc`` event types (``pubmsg``,
    ``privmsg``, ``action``, ``join``…) to functions called on this thread;
    ``on_signed_on`` runs after the server welcomed the bot (and the channels were
    asked to be joined)."""

    def __init__(self, settings: ConnectionSettings, handlers: dict[str, Handler],
                 on_signed_on: Callable[[BotConnection], None] | None = None) -> None:
        self.settings = settings
        self.handlers = handlers
        self.on_signed_on = on_signed_on
        self._queue: queue.Queue[_Outgoing] = queue.Queue()
        self._pending: list[_Outgoing] = []
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._timer_ids = itertools.count()
        self._timer_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.signed_on = threading.Event()
        # signed on, and every channel joined (or given up on after JOIN_WAIT seconds)
        self.ready = threading.Event()
        self._welcomed_at = 0.0
        self.joined: set[str] = set()
        self.connected_at: float | None = None  # time.time() of the last sign-on
        self.connections = 0  # sign-ons so far
        self.nickname = settings.nick
        self.last_error: str | None = None
        self._conn: Any = None
        self._reactor: Any = None
        self._last_heard = 0.0
        self._last_ping = 0.0
        self._nick_tries = 0
        self._bucket = _Bucket(settings.lines_per_second, settings.line_burst)

    # -- control (any thread) ------------------------------------------------------------

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"bbweb-irc:{self.settings.nick}")
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Quit with 0.8's message and end the thread; nothing is reconnected."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait_ready(self, timeout: float) -> bool:
        return self.ready.wait(timeout)

    def send(self, target: str, lines: list[str], kind: str = "privmsg",
             timeout: float = 30.0) -> None:
        """Send ``lines`` (each already one clean line) to ``target`` and wait until they
        were written to the socket. Raises :class:`NotConnected` when the bot is not
        signed on, is not in the channel, or loses the connection meanwhile."""
        items = [_Outgoing(target, line, kind) for line in lines]
        for item in items:
            self._queue.put(item)
        deadline = time.monotonic() + timeout
        for item in items:
            if not item.done.wait(max(0.0, deadline - time.monotonic())):
                raise NotConnected(f"timed out sending to {target}")
            if item.error is not None:
                raise NotConnected(item.error)

    def post(self, target: str, lines: list[str], kind: str = "privmsg") -> None:
        """Queue ``lines`` without waiting (replies to commands)."""
        for line in lines:
            self._queue.put(_Outgoing(target, line, kind))

    def call_later(self, delay: float, func: Callable[[], None]) -> None:
        """Run ``func`` on the connection thread after ``delay`` seconds (dropped if the
        connection is lost before)."""
        with self._timer_lock:
            heapq.heappush(self._timers, (time.monotonic() + delay, next(self._timer_ids),
                                          func))

    def whois(self, nick: str) -> None:
        """Ask the server about ``nick`` (connection thread only: a command handler or a
        timer); the answer arrives as ``whois*`` events for the handlers."""
        if self._conn is not None and self._conn.is_connected():
            self._conn.whois([nick])

    def in_channel(self, channel: str) -> bool:
        return channel.lower() in self.joined

    # -- the thread ----------------------------------------------------------------------

    def _run(self) -> None:
        failures = 0
        try:
            while not self._stop.is_set():
                try:
                    self._connect()
                except (irc.client.ServerConnectionError, OSError, ssl.SSLError) as exc:
                    failures += 1
                    self.last_error = str(exc)
                    delay = min(self.settings.failed_delay * 2 ** (failures - 1),
                                self.settings.failed_delay * 8)
                    log.warning("IRC: cannot connect to %s:%d (%s); trying again in %.1fs",
                                self.settings.host, self.settings.port, exc, delay)
                    self._fail_queued(f"not connected to IRC ({exc})")
                    self._stop.wait(delay)
                    continue
                self._serve()
                if self.connected_at is not None:
                    failures = 0
                self._lost()
                if self._stop.is_set():
                    break
                log.warning("IRC: connection to %s:%d lost; reconnecting in %.1fs",
                            self.settings.host, self.settings.port, self.settings.lost_delay)
                self._stop.wait(self.settings.lost_delay)
        except Exception:
            log.exception("IRC: the connection thread crashed")
        finally:
            self._lost()
            self._fail_queued("the IRC bot stopped")

    def _factory(self) -> Callable[[tuple[str, int]], socket.socket]:
        s = self.settings

        def connect(address: tuple[str, int]) -> socket.socket:
            sock = socket.create_connection(address, timeout=s.connect_timeout)
            try:
                if s.use_ssl:
                    ctx = ssl.create_default_context(cafile=s.ca_file)
                    if not s.verify:
                        ctx.check_hostname = False
                        ctx.verify_mode = ssl.CERT_NONE
                    sock = ctx.wrap_socket(sock, server_hostname=s.host)
                sock.settimeout(None)
            except BaseException:
                sock.close()
                raise
            return sock
        return connect

    def _connect(self) -> None:
        s = self.settings
        self._reactor = irc.client.Reactor()
        for kind in ("welcome", "join", "part", "kick", "nicknameinuse", "erroneusnickname",
                     "privnotice",
                     "unavailresource", "nick", "disconnect", "badchannelkey",
                     "channelisfull", "inviteonlychan", "bannedfromchan", "all_raw_messages",
                     *self.handlers):
            self._reactor.add_global_handler(kind, self._dispatch)
        self.nickname = s.nick
        self._nick_tries = 0
        self.joined = set()
        self.connected_at = None
        self._conn = self._reactor.server()
        self._conn.connect(s.host, s.port, s.nick, ircname="bbweb IRC bot",
                           connect_factory=self._factory())
        self._last_heard = self._last_ping = time.monotonic()

    def _serve(self) -> None:
        while not self._stop.is_set() and self._conn is not None and \
                self._conn.is_connected():
            self._reactor.process_once(0.05)
            self._check_ready()
            self._run_timers()
            self._flush()
            self._keepalive()
        if self._stop.is_set() and self._conn is not None and self._conn.is_connected():
            self._flush(everything=True)
            try:
                self._conn.disconnect(QUIT_MESSAGE)
            except Exception:
                log.exception("IRC: error while quitting")

    def _check_ready(self) -> None:
        if self.ready.is_set() or not self.signed_on.is_set():
            return
        wanted = {c.lower() for c, _k in self.settings.channels}
        if wanted <= self.joined or time.monotonic() - self._welcomed_at > JOIN_WAIT:
            missing = wanted - self.joined
            if missing:
                log.error("IRC: could not join %s", ", ".join(sorted(missing)))
            self.ready.set()

    def _lost(self) -> None:
        self.ready.clear()
        self.signed_on.clear()
        self.joined = set()
        self.connected_at = None
        with self._timer_lock:
            self._timers = []
        if self._conn is not None:
            try:
                if self._conn.is_connected():
                    self._conn.disconnect("connection lost")
            except Exception:
                pass
        self._conn = None
        self._fail_queued("the IRC connection was lost")

    def _fail_queued(self, why: str) -> None:
        for item in self._pending:
            item.error = why
            item.done.set()
        self._pending = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            item.error = why
            item.done.set()

    def _run_timers(self) -> None:
        due = []
        now = time.monotonic()
        with self._timer_lock:
            while self._timers and self._timers[0][0] <= now:
                due.append(heapq.heappop(self._timers)[2])
        for func in due:
            try:
                func()
            except Exception:
                log.exception("IRC: a scheduled reply failed")

    def _flush(self, everything: bool = False) -> None:
        """Send what is queued as flood control allows (``everything``: all of it, when
        quitting, still paced)."""
        while True:
            try:
                self._pending.append(self._queue.get_nowait())
            except queue.Empty:
                break
        if not self.signed_on.is_set():
            return
        while self._pending:
            if not self._bucket.take():
                if not everything:
                    return
                time.sleep(self._bucket.wait_time())
                continue
            item = self._pending.pop(0)
            self._write(item)

    def _write(self, item: _Outgoing) -> None:
        target = item.target
        if target.startswith(("#", "&")) and target.lower() not in self.joined:
            item.error = f"not in {target}"
            item.done.set()
            return
        try:
            if item.kind == "notice":
                self._conn.notice(target, item.text)
            elif item.kind == "action":
                self._conn.action(target, item.text)
            else:
                self._conn.privmsg(target, item.text)
        except (irc.client.IRCError, ValueError, OSError) as exc:
            item.error = f"{type(exc).__name__}: {exc}"
        else:
            if self._conn is None or not self._conn.is_connected():
                item.error = "the IRC connection was lost while sending"
        item.done.set()

    def _keepalive(self) -> None:
        """0.8 pinged itself every 60 s; a server silent for two intervals is gone."""
        period = self.settings.keepalive
        now = time.monotonic()
        if now - self._last_ping >= period:
            self._last_ping = now
            try:
                self._conn.ping(self.nickname)
            except Exception:
                log.exception("IRC: keepalive ping failed")
        if now - self._last_heard > 2 * period + 5:
            log.warning("IRC: nothing heard from the server for %.0fs; reconnecting",
                        now - self._last_heard)
            self._conn.disconnect("keepalive timeout")

    # -- events (this thread) ------------------------------------------------------------

    def _dispatch(self, conn: Any, event: Any) -> None:
        kind = event.type
        try:
            own = getattr(self, "_on_" + kind, None)
            if own is not None:
                own(conn, event)
            handler = self.handlers.get(kind)
            if handler is not None:
                handler(self, event)
        except Exception:
            log.exception("IRC: handling %s failed", kind)

    def _on_all_raw_messages(self, conn: Any, event: Any) -> None:
        self._last_heard = time.monotonic()

    def _on_welcome(self, conn: Any, event: Any) -> None:
        s = self.settings
        self.nickname = conn.get_nickname()
        log.info("IRC: signed on to %s:%d as %s", s.host, s.port, self.nickname)
        if s.nickserv_password:
            conn.privmsg("NickServ", f"IDENTIFY {s.nickserv_password}")
        for channel, key in s.channels:
            conn.join(channel, key or "")
        self.connected_at = time.time()
        self._welcomed_at = time.monotonic()
        self.connections += 1
        self.signed_on.set()
        if self.on_signed_on is not None:
            self.on_signed_on(self)

    def _on_join(self, conn: Any, event: Any) -> None:
        if event.source.nick == conn.get_nickname():
            self.joined.add(event.target.lower())
            log.info("IRC: joined %s", event.target)

    def _on_part(self, conn: Any, event: Any) -> None:
        if event.source.nick == conn.get_nickname():
            self.joined.discard(event.target.lower())

    def _on_kick(self, conn: Any, event: Any) -> None:
        if event.arguments and event.arguments[0] == conn.get_nickname():
            self.joined.discard(event.target.lower())
            log.warning("IRC: kicked from %s by %s: %s", event.target, event.source.nick,
                        event.arguments[1] if len(event.arguments) > 1 else "")

    def _on_nick(self, conn: Any, event: Any) -> None:
        self.nickname = conn.get_nickname()

    def _alternative_nick(self, conn: Any, event: Any) -> None:
        """Nick taken (or refused): ``nick_``, then ``nick1``, ``nick2``…"""
        self._nick_tries += 1
        if self._nick_tries > MAX_NICK_TRIES:
            log.error("IRC: no free nick found after %d tries", MAX_NICK_TRIES)
            conn.disconnect("no free nick")
            return
        base = self.settings.nick
        new = base + "_" if self._nick_tries == 1 else f"{base}{self._nick_tries - 1}"
        log.warning("IRC: nick %s is not available; trying %s", base, new)
        conn.nick(new)

    _on_nicknameinuse = _alternative_nick
    _on_unavailresource = _alternative_nick

    def _on_privnotice(self, conn: Any, event: Any) -> None:
        source = event.source.nick if event.source else ""
        if source.lower() == "nickserv":
            log.info("IRC: NickServ says: %s", event.arguments[0] if event.arguments else "")

    def _on_badchannelkey(self, conn: Any, event: Any) -> None:
        log.error("IRC: cannot join %s: wrong channel key", event.arguments[0]
                  if event.arguments else "?")

    def _on_disconnect(self, conn: Any, event: Any) -> None:
        self.ready.clear()
        self.signed_on.clear()
