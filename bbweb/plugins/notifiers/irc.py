"""``words.IRC``: Buildbot 0.8's IRC bot, as a notifier of the master daemon.

Configured with 0.8's arguments (``from bbweb.status import words``;
``c['status'].append(words.IRC(host, nick, channels, ...))``), the bot connects when the
daemon becomes active (holds the master lock) and quits when it stops, so a second daemon
waiting for the lock never brings up a second bot. It follows the event outbox like every
notifier: ``build.started`` and ``build.finished`` become announcements to the contacts
that asked for them, each recorded on /notifications and never said twice. While the bot
is disconnected the events wait; after it reconnects it announces what it missed, at most
``backlogLines`` per contact, then one line saying how much more there was.

Commands (``hello``, ``status``, ``force build``…) are answered on the connection's own
thread (:mod:`bbweb.plugins.notifiers.irc_commands`). What changed from 0.8 on purpose is
listed in docs/compat.md.
"""

from __future__ import annotations

import logging
import os
import random
import re
import threading
import time
from collections.abc import Sequence
from typing import Any

from bbweb.engine import events as event_log
from bbweb.mastercfg.errors import caller_location, config_error
from bbweb.plugins.notifiers.base import DeliveryError, Notification, Notifier, Rejected
from bbweb.plugins.notifiers.irc_client import (
    BotConnection,
    ConnectionSettings,
    NotConnected,
)
from bbweb.plugins.notifiers.irc_commands import Commands, Watches
from bbweb.plugins.notifiers.irc_contacts import (
    BadEvent,
    Contact,
    ContactBook,
    check_event,
    is_channel,
)
from bbweb.plugins.notifiers.irc_format import (
    RESULT_EVENTS,
    clean,
    duration,
    finished_text,
    started_text,
    watched_text,
)
from bbweb.status import estimates, queries
from bbweb.values.results import SUCCESS

log = logging.getLogger("bbweb.notifiers.irc")

# 0.8 chose these once per process, so that several bots of one network spread out
LOST_DELAY = random.randint(1, 5)
FAILED_DELAY = random.randint(45, 60)
NICK_PATTERN = re.compile(r"^[A-Za-z\[\]\\`_^{|}][A-Za-z0-9\[\]\\`_^{|}-]{0,29}$")
CHANNEL_PATTERN = re.compile(r"^[#&][^\x00-\x20,\x07:]{1,49}$")
WAIT_FOR_CONNECTION = 10.0  # seconds an announcement waits for the bot to be signed on
SUMMARY_SCAN_LIMIT = 10_000  # events read to count what a summary line leaves out


def _bool(name: str, value: Any) -> bool:
    if value is not True and value is not False:
        config_error(f"IRC: {name} must be boolean, not {value!r}")
    return bool(value)


def _delay(name: str, value: Any, default: float) -> float:
    if value is None:
        return float(default)
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
        config_error(f"IRC: {name} must be a number of seconds (or None), not {value!r}")
    return float(value)


def _check_channels(channels: Any) -> list[tuple[str, str | None]]:
    if isinstance(channels, str) or not isinstance(channels, list | tuple):
        config_error("IRC: channels must be a list of channel names or "
                     "{'channel': '#name', 'password': 'key'} dicts")
    found: list[tuple[str, str | None]] = []
    for item in channels:
        key = None
        if isinstance(item, dict):
            unknown = set(item) - {"channel", "password"}
            if unknown or "channel" not in item:
                config_error(f"IRC: channel {item!r} must be a dict with 'channel' and an "
                             "optional 'password' (the channel key)")
            name, key = item["channel"], item.get("password")
            if key is not None and (not isinstance(key, str) or clean(key) != key
                                    or " " in key or not key):
                config_error(f"IRC: the key of channel {name!r} must be a word without "
                             "spaces or control characters")
        else:
            name = item
        if not isinstance(name, str) or not CHANNEL_PATTERN.match(name):
            config_error(f"IRC: {name!r} is not a channel name (it starts with '#' or '&' "
                         "and has no spaces, commas or control characters)")
        found.append((name, key))
    return found


def _check_nicks(label: str, nicks: Any) -> list[str]:
    if nicks is None:
        return []
    if isinstance(nicks, str) or not isinstance(nicks, list | tuple | set):
        config_error(f"IRC: {label} must be a list of nicks")
    for n in nicks:
        if not isinstance(n, str) or not NICK_PATTERN.match(n):
            config_error(f"IRC: {label}: {n!r} is not a nick")
    return list(nicks)


class IRC(Notifier):
    """The IRC bot (0.8's ``buildbot.status.words.IRC``)."""

    plugin_name = "irc"
    event_kinds = frozenset({"build.started", "build.finished"})

    def __init__(
        self,
        host: str | None = None,
        nick: str | None = None,
        channels: Sequence[Any] | None = None,
        pm_to_nicks: Sequence[str] = (),
        port: int = 6667,
        allowForce: bool = False,
        categories: Sequence[str] | None = None,
        password: str | None = None,
        notify_events: Any = None,
        noticeOnChannel: bool = False,
        showBlameList: bool = True,
        useRevisions: bool = False,
        useSSL: bool = False,
        lostDelay: float | None = None,
        failedDelay: float | None = None,
        useColors: bool = True,
        allowShutdown: bool = False,
        *,
        name: str | None = None,
        sslCAFile: str | None = None,
        allowedNicks: Sequence[str] | None = None,
        allowedNicksIdentified: bool = True,
        commandsPerMinute: int = 20,
        linesPerSecond: float = 2.0,
        lineBurst: int = 5,
        backlogLines: int = 5,
        keepalive: float = 60.0,
        **unknown: Any,
    ) -> None:
        if unknown:
            config_error(f"IRC: unknown argument(s) {', '.join(sorted(unknown))}")
        super().__init__(name)
        self.location = caller_location()
        if not isinstance(host, str) or not host.strip() or clean(host) != host \
                or " " in host:
            config_error("IRC: host (the IRC server's name) is required")
        self.host: str = str(host)
        if not isinstance(nick, str) or not NICK_PATTERN.match(nick):
            config_error(f"IRC: nick {nick!r} is not a valid IRC nick")
        self.nick: str = str(nick)
        if channels is None:
            config_error("IRC: channels is required (a list; it may be empty)")
        self.channels = _check_channels(channels)
        self.pm_to_nicks = _check_nicks("pm_to_nicks", pm_to_nicks)
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            config_error("IRC: port must be a port number (1-65535)")
        self.port = port
        self.allowForce = _bool("allowForce", allowForce)
        self.allowShutdown = _bool("allowShutdown", allowShutdown)
        if categories is not None and (isinstance(categories, str) or not isinstance(
                categories, list | tuple | set) or not all(isinstance(c, str)
                                                           for c in categories)):
            config_error("IRC: categories must be a list of category names")
        self.categories = None if categories is None else list(categories)
        if password is not None and (not isinstance(password, str) or not password
                                     or clean(password) != password):
            config_error("IRC: password (for NickServ) must be a non-empty string")
        self.password = password
        events = [] if notify_events is None else notify_events
        if not isinstance(events, dict | list | tuple | set):
            config_error("IRC: notify_events must be a dict (its keys are the events) or "
                         "a list of event names")
        try:
            self.notify_events = frozenset(check_event(e) for e in events)
        except BadEvent as exc:
            config_error(f"IRC: notify_events: {exc}")
        self.noticeOnChannel = bool(noticeOnChannel)
        self.showBlameList = bool(showBlameList)
        self.useRevisions = bool(useRevisions)
        self.useSSL = bool(useSSL)
        self.useColors = bool(useColors)
        self.lostDelay = _delay("lostDelay", lostDelay, LOST_DELAY)
        self.failedDelay = _delay("failedDelay", failedDelay, FAILED_DELAY)
        self.sslCAFile = self._ca_file(sslCAFile)
        self.allowedNicks = None if allowedNicks is None else \
            [n.lower() for n in _check_nicks("allowedNicks", allowedNicks)]
        # the entries are NickServ accounts the server must vouch for (WHOIS 330); False:
        # bare nicks, for servers without services (anybody may take a free nick there)
        self.allowedNicksIdentified = _bool("allowedNicksIdentified", allowedNicksIdentified)
        for label, value, low in (("commandsPerMinute", commandsPerMinute, 1),
                                  ("lineBurst", lineBurst, 1), ("backlogLines", backlogLines, 0)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                config_error(f"IRC: {label} must be a whole number, at least {low}")
        self.commandsPerMinute = commandsPerMinute
        self.lineBurst = lineBurst
        self.backlogLines = backlogLines
        for label, number in (("linesPerSecond", linesPerSecond), ("keepalive", keepalive)):
            if not isinstance(number, int | float) or isinstance(number, bool) or number <= 0:
                config_error(f"IRC: {label} must be a positive number")
        self.linesPerSecond = float(linesPerSecond)
        self.keepalive = float(keepalive)
        self.bot: BotConnection | None = None
        self.book: ContactBook | None = None
        self.watches = Watches()
        self.commands: Commands | None = None
        self._backlog: dict[str, int] = {}
        self._backlog_connection = -1
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<IRC {self.name!r} {self.nick}@{self.host}:{self.port}>"

    def _ca_file(self, ca_file: Any) -> str | None:
        if ca_file is None:
            return None
        if not isinstance(ca_file, str):
            config_error("IRC: sslCAFile must be a file name")
        if not os.path.isabs(os.path.expanduser(ca_file)) and self.location is not None:
            ca_file = os.path.join(os.path.dirname(self.location.filename), ca_file)
        ca_file = os.path.expanduser(ca_file)
        if not os.path.isfile(ca_file):
            config_error(f"IRC: sslCAFile {ca_file!r} does not exist")
        return str(ca_file)

    # -- the daemon's side ---------------------------------------------------------------

    def settings(self) -> ConnectionSettings:
        return ConnectionSettings(
            host=self.host, port=self.port, nick=self.nick, channels=self.channels,
            nickserv_password=self.password, use_ssl=self.useSSL, ca_file=self.sslCAFile,
            lost_delay=self.lostDelay, failed_delay=self.failedDelay,
            keepalive=self.keepalive, lines_per_second=self.linesPerSecond,
            line_burst=self.lineBurst)

    def open(self) -> None:
        """Connect (in the bot's own thread; this returns at once)."""
        super().open()
        self.book = ContactBook(self.db, self.name, self.notify_events,
                                [c for c, _k in self.channels] + self.pm_to_nicks)
        self.book.load()
        self.watches = Watches()
        self.commands = Commands(self)
        self.bot = BotConnection(self.settings(), self.commands.handlers())
        self.bot.start()

    def close(self) -> None:
        bot, self.bot = self.bot, None
        if bot is not None:
            bot.stop()

    # -- deciding ------------------------------------------------------------------------

    def announced(self, builder: str) -> bool:
        """0.8: with ``categories`` only builders of those categories are announced."""
        if self.categories is None:
            return True
        bcfg = self.config.builders.get(builder)
        return bcfg is not None and bcfg.category in self.categories

    def target_kind(self, target: str) -> str:
        return "notice" if self.noticeOnChannel and is_channel(target) else "privmsg"

    def notifications_for(self, event: dict[str, Any]) -> list[Notification]:
        bot = self.bot
        if bot is None or not bot.wait_ready(WAIT_FOR_CONNECTION):
            raise DeliveryError("the IRC bot is not connected"
                                + (f" ({bot.last_error})" if bot and bot.last_error else ""))
        assert self.book is not None
        payload = event["payload"]
        builder, number = str(payload["builder"]), int(payload["number"])
        build = self.master_status.getBuildById(int(payload["buildid"]))
        if build is None:
            return []
        started = event["kind"] == "build.started"
        watchers = (self.watches.forced_started(payload.get("brid"), int(payload["buildid"]))
                    if started else self.watches.finished(int(payload["buildid"])))
        joined = {c.lower() for c, _k in self.channels}
        contacts = {c.name: c for c in self.book.all()
                    if not c.channel or c.name in joined}
        for name in watchers:
            contacts.setdefault(name, self.book.get(name))
        announced = self.announced(builder)
        notes = []
        for contact in contacts.values():
            if contact.name in watchers:
                lines = (self._forced_lines(build) if started else self.watched_lines(build))
            elif not announced:
                continue
            elif started:
                lines = self._started_lines(contact, build)
            else:
                lines = self._finished_lines(contact, build, payload.get("results"))
            if not lines:
                continue
            note = Notification(key=contact.name, what=f"{builder} #{number} to "
                                f"{contact.name}", recipients=[contact.name],
                                payload=(contact.name, lines), builder=builder,
                                build_number=number)
            if contact.muted:
                note.skip_reason = f"{contact.name} muted the bot"
            else:
                self._limit_backlog(event, contact, note)
            notes.append(note)
        return notes

    def _revisions(self, build: Any) -> list[str]:
        return [str(c.revision) for c in build.getChanges() if c.revision]

    def _started_lines(self, contact: Contact, build: Any) -> list[str]:
        if "started" not in contact.events:
            return []
        return [started_text(build.getBuilder().getName(), build.getNumber(),
                             self._revisions(build), self.useRevisions)]

    def _wants_finished(self, contact: Contact, build: Any, result: int | None) -> bool:
        if "finished" in contact.events:
            return True
        name = RESULT_EVENTS.get(result) if result is not None else None
        if name is not None and name in contact.events:
            return True
        if name is None:
            return False  # 0.8 crashed here for SKIPPED or no result; say nothing
        prev = build.getPreviousFinishedBuild()
        prev_name = RESULT_EVENTS.get(prev.getResults()) if prev is not None else None
        return prev_name is not None and \
            f"{prev_name}To{name.capitalize()}" in contact.events

    def _finished_lines(self, contact: Contact, build: Any, result: Any) -> list[str]:
        result = build.getResults() if result is None else result
        if not self._wants_finished(contact, build, result):
            return []
        blame = sorted({c.who for c in build.getChanges()}) if result != SUCCESS else []
        return [finished_text(
            build.getBuilder().getName(), build.getNumber(), result, build.getText(),
            self._revisions(build), self.master_status.getURLForThing(build), blame,
            use_revisions=self.useRevisions, use_colours=self.useColors,
            show_blame=self.showBlameList)]

    def watched_lines(self, build: Any) -> list[str]:
        lines = [watched_text(build.getBuilder().getName(), build.getNumber(),
                              build.getResults(), build.getText(), self._revisions(build),
                              use_revisions=self.useRevisions, use_colours=self.useColors)]
        url = self.master_status.getURLForThing(build)
        if url:
            lines.append(clean(f"Build details are at {url}", 400))
        return lines

    def build_eta(self, build: Any) -> float | None:
        """Seconds until ``build`` should end, from its builder's recent successful
        builds; None when there are none."""
        with self.db.read() as conn:
            info = queries.get_builder(conn, build.getBuilder().getName())
            if info is None:
                return None
            expected = estimates.expected_durations(conn, [info]).get(info.id)
        return estimates.eta_seconds(expected, build.getTimes()[0], time.time())

    def _forced_lines(self, build: Any) -> list[str]:
        eta = self.build_eta(build)
        if eta is not None:  # 0.8 then said neither the number nor the revisions
            first = f"build forced [ETA {duration(eta)}]"
        elif self.useRevisions:
            first = (f"build containing revision(s) "
                     f"[{', '.join(r[:7] for r in self._revisions(build))}] forced")
        else:
            first = f"build #{build.getNumber()} forced"
        return [clean(first, 400), "I'll give a shout when the build finishes"]

    def _limit_backlog(self, event: dict[str, Any], contact: Contact,
                       note: Notification) -> None:
        """Announcements of events from before this connection's sign-on: the first
        ``backlogLines`` per contact, then one summary line, then nothing."""
        bot = self.bot
        if bot is None or bot.connected_at is None or event["created_at"] >= bot.connected_at:
            return
        with self._lock:
            if self._backlog_connection != bot.connections:
                self._backlog_connection = bot.connections
                self._backlog = {}
            count = self._backlog.get(contact.name, 0)
            self._backlog[contact.name] = count + 1
        if count < self.backlogLines:
            return
        if count > self.backlogLines:
            note.skip_reason = (f"missed while the bot was disconnected; more than "
                                f"{self.backlogLines} such announcements for {contact.name}")
            return
        missed = self._count_missed(int(event["id"]), bot.connected_at)
        url = self.config.buildbotURL or ""
        note.payload = (contact.name, [clean(
            f"... and {missed} more build{'s' if missed != 1 else ''} finished while I was "
            f"disconnected" + (f"; see {url}waterfall" if url else ""), 400)])
        note.what = f"summary of {missed} missed builds to {contact.name}"

    def _count_missed(self, from_id: int, before: float) -> int:
        """``build.finished`` events from ``from_id`` on, created before ``before``, of
        announced builders."""
        count, after, scanned = 0, from_id - 1, 0
        while scanned < SUMMARY_SCAN_LIMIT:
            with self.db.read() as conn:
                batch = event_log.read_events(conn, after, 500)
            if not batch:
                break
            for ev in batch:
                if ev["created_at"] >= before:
                    return count
                if ev["kind"] == "build.finished" and self.announced(
                        str(ev["payload"].get("builder"))):
                    count += 1
            scanned += len(batch)
            after = batch[-1]["id"]
        return count

    # -- delivering ----------------------------------------------------------------------

    def deliver(self, notification: Notification) -> str:
        target, lines = notification.payload
        bot = self.bot
        if bot is None:
            raise DeliveryError("the IRC bot is not running")
        if is_channel(target) and bot.ready.is_set() and not bot.in_channel(target):
            raise Rejected(f"the bot is not in {target} (see the daemon's log for why)")
        try:
            bot.send(target, list(lines), self.target_kind(target))
        except NotConnected as exc:
            raise DeliveryError(str(exc)) from exc
        return f"{len(lines)} line{'s' if len(lines) != 1 else ''} sent to {target}"
