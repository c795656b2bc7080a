"""The IRC bot's commands, with Buildbot 0.8's grammar and reply texts.

A channel message is a command when it starts with ``<nick>:`` or ``<nick>,``; a private
message always is. Replies go where the command came from. ``force build`` and ``stop
build`` use the same engine actions as the web's buttons, so the build page shows "IRC
user alice on channel #bb" as who asked, and ``c['validation']`` applies.

Fixed from 0.8 (docs/compat.md): an empty command (``bot:``) is ignored instead of
crashing, ``list builders`` has no trailing space, ``notify off`` of an event that is not
on is no error, an unknown ``force`` option gets a usage message, a property without
``=`` is refused with a message; ``force``, ``stop`` and ``shutdown`` can be limited to
some NickServ accounts (``allowedNicks``; nicks alone on a server without services, with
``allowedNicksIdentified=False``), every nick is limited to ``commandsPerMinute``
commands, and ``shutdown now`` stops the running builds and shuts down cleanly instead of
killing the master.
"""

from __future__ import annotations

import collections
import functools
import logging
import shlex
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bbweb import __version__
from bbweb.engine import actions
from bbweb.engine.buildsets import BuildsetError
from bbweb.engine.force import force_build
from bbweb.plugins.notifiers.irc_accounts import AccountLookups
from bbweb.plugins.notifiers.irc_contacts import BadEvent, check_event, is_channel
from bbweb.plugins.notifiers.irc_format import clean, duration, fit
from bbweb.status import estimates, queries
from bbweb.values.validation import ValueRefused

if TYPE_CHECKING:
    from bbweb.plugins.notifiers.irc import IRC
    from bbweb.plugins.notifiers.irc_client import BotConnection

log = logging.getLogger("bbweb.notifiers.irc")

FORCE_USAGE = ("force build [--branch=BRANCH] [--revision=REVISION] "
               "[--props=PROP1=VAL1,PROP2=VAL2...]  <WHICH> <REASON>")
PROPERTY_SOURCE = "Force Build IRC"
QUEUED_AFTER = 5.0

USAGE: dict[str, Any] = {
    "list": "list builders - List configured builders",
    "status": "status [<which>] - List status of a builder (or all builders)",
    "notify": ("notify on|off|list [<EVENT>] ... - Notify me about build events.  event "
               "should be one or more of: 'started', 'finished', 'failure', 'success', "
               "'exception' or 'xToY' (where x and Y are one of success, warnings, failure, "
               "exception, but Y is capitalized)"),
    "watch": "watch <which> - announce the completion of an active build",
    "force": ("force build [--branch=branch] [--revision=revision] "
              "[--props=prop1=val1,prop2=val2...] <which> <reason> - Force a build"),
    "stop": "stop build <which> <reason> - Stop a running build",
    "last": "last <which> - list last build status for builder <which>",
    "mute": "mute - suppress all messages until a corresponding 'unmute' is issued",
    "unmute": "unmute - disable a previous 'mute'",
    "help": ("help <command> [<arg> [<subarg> ...]] - Give help for <command> or one of "
             "it's arguments"),
    "source": "source - the source code for Buildbot",
    "commands": "commands - List available commands",
    "shutdown": {
        None: "shutdown check|start|stop|now - shutdown the buildbot master",
        "check": "shutdown check - check if the buildbot master is running or shutting down",
        "start": "shutdown start - start a clean shutdown",
        "stop": "shutdown cancel - stop the clean shutdown",
        "now": "shutdown now - shutdown immediately without waiting for the builders to "
               "finish",
    },
}
COMMANDS = ("commands", "dance", "destroy", "force", "hello", "help", "last", "list", "mute",
            "notify", "shutdown", "source", "status", "stop", "unmute", "version", "watch")
SILLY = {
    "What happen ?": ["Somebody set up us the bomb."],
    "It's You !!": ["How are you gentlemen !!", "All your base are belong to us.",
                    "You are on the way to destruction."],
    "What you say !!": ["You have no chance to survive make your time.",
                        "HA HA HA HA ...."],
}
DANCE = ((1.0, "<(^.^<)"), (2.0, "<(^.^)>"), (3.0, "(>^.^)>"), (3.5, "(7^.^)7"),
         (5.0, "(>^.^<)"))


class UsageError(ValueError):
    """A command used wrongly; the text is the reply."""


@dataclass
class Context:
    """Who said it, where, and where the reply goes."""

    bot: BotConnection
    contact: str  # the contact's name: the channel or the nick, lower-cased
    reply_to: str
    user: str
    channel: str | None

    def describe_user(self) -> str:
        if self.channel:
            return f"IRC user {self.user} on channel {self.channel}"
        return f"IRC user {self.user} (privmsg)"


class Watches:
    """Builds somebody watches and requests somebody forced, by contact (this connection
    only, as in 0.8). Written on the connection thread, read by the notifier's.

    The notifier asks who watches a build when it handles the build's event; what it was
    told is kept (for the newest ``MEMORY`` builds and requests), so that a retry of the
    same event (the bot was disconnected while sending) gets the same answer, and so that
    a ``watch`` that comes after the notifier handled the build's end learns it came too
    late (:meth:`watch_build` returns False) and the command announces the end itself
    instead of waiting for an announcement that will never come."""

    MEMORY = 1000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._builds: dict[int, set[str]] = {}
        self._requests: dict[int, set[str]] = {}
        self._finished: collections.OrderedDict[int, set[str]] = collections.OrderedDict()
        self._started: collections.OrderedDict[int, set[str]] = collections.OrderedDict()

    def _remember(self, memo: collections.OrderedDict[int, set[str]], key: int,
                  value: set[str]) -> None:
        memo[key] = value
        while len(memo) > self.MEMORY:
            memo.popitem(last=False)

    def watch_build(self, buildid: int, contact: str) -> bool:
        """Announce the end of build ``buildid`` to ``contact``; False when the notifier
        already handled that end (the caller has to say it)."""
        with self._lock:
            if buildid in self._finished:
                return False
            self._builds.setdefault(buildid, set()).add(contact)
            return True

    def watch_request(self, brid: int, contact: str) -> None:
        with self._lock:
            self._requests.setdefault(brid, set()).add(contact)

    def forget_request(self, brid: int) -> None:
        with self._lock:
            self._requests.pop(brid, None)

    def request_pending(self, brid: int) -> bool:
        with self._lock:
            return brid in self._requests

    def forced_started(self, brid: Any, buildid: int) -> set[str]:
        """The contacts that forced request ``brid``: now they watch build ``buildid``."""
        if brid is None:
            return set()
        with self._lock:
            if int(brid) in self._started:
                return set(self._started[int(brid)])
            found = self._requests.pop(int(brid), set())
            self._remember(self._started, int(brid), found)
            if found:
                self._builds.setdefault(buildid, set()).update(found)
            return set(found)

    def finished(self, buildid: int) -> set[str]:
        """The contacts watching build ``buildid``, which just finished."""
        with self._lock:
            if buildid in self._finished:
                return set(self._finished[buildid])
            found = self._builds.pop(buildid, set())
            self._remember(self._finished, buildid, found)
            return set(found)


def _split(rest: str) -> list[str]:
    try:
        return list(shlex.split(rest))
    except ValueError as exc:
        raise UsageError(str(exc)) from exc


class Commands:
    """The interpreter of one bot; its handlers run on the connection thread."""

    def __init__(self, notifier: IRC) -> None:
        self.n = notifier
        self._recent: dict[str, collections.deque[float]] = {}
        self._warned: dict[str, float] = {}
        self.accounts = AccountLookups()

    def handlers(self) -> dict[str, Callable[[BotConnection, Any], None]]:
        return {"pubmsg": self.on_pubmsg, "privmsg": self.on_privmsg,
                "action": self.on_action, "whoisaccount": self.accounts.on_whoisaccount,
                "endofwhois": self.accounts.on_endofwhois}

    # -- addressing ----------------------------------------------------------------------

    def on_pubmsg(self, bot: BotConnection, event: Any) -> None:
        text = event.arguments[0] if event.arguments else ""
        nick = bot.nickname
        if not (text.startswith(nick + ":") or text.startswith(nick + ",")):
            return
        channel = event.target
        ctx = Context(bot, channel.lower(), channel, event.source.nick, channel)
        self.handle(ctx, text[len(nick) + 1:])

    def on_privmsg(self, bot: BotConnection, event: Any) -> None:
        if event.target.lower() != bot.nickname.lower():
            return
        user = event.source.nick
        ctx = Context(bot, user.lower(), user, user, None)
        self.handle(ctx, event.arguments[0] if event.arguments else "")

    def on_action(self, bot: BotConnection, event: Any) -> None:
        """``/me slaps bot`` → ``* bot slaps alice too``; ``/me kicks bot`` → ``kicks
        back``."""
        text = event.arguments[0] if event.arguments else ""
        nick = bot.nickname
        if nick not in text or not text.endswith("s " + nick):
            return
        words = text.split()
        if len(words) < 2:
            return
        verb = words[-2]
        where = event.target if is_channel(event.target) else event.source.nick
        ctx = Context(bot, where.lower(), where, event.source.nick,
                      where if is_channel(where) else None)
        self.act(ctx, "kicks back" if verb == "kicks" else f"{verb} {event.source.nick} too")

    # -- replying ------------------------------------------------------------------------

    def _muted(self, ctx: Context) -> bool:
        assert self.n.book is not None
        return self.n.book.get(ctx.contact).muted

    def send(self, ctx: Context, text: str) -> None:
        if self._muted(ctx):
            return
        ctx.bot.post(ctx.reply_to, [fit(clean(text))], self.n.target_kind(ctx.reply_to))

    def send_lines(self, ctx: Context, lines: list[str]) -> None:
        """Lines made by :mod:`irc_format` (clean already, perhaps with colours)."""
        if not self._muted(ctx):
            ctx.bot.post(ctx.reply_to, lines, self.n.target_kind(ctx.reply_to))

    def act(self, ctx: Context, text: str) -> None:
        if self._muted(ctx):
            return
        ctx.bot.post(ctx.reply_to, [fit(clean(text))], "action")

    def send_later(self, ctx: Context, delay: float, text: str) -> None:
        ctx.bot.call_later(delay, lambda: self.send(ctx, text))

    # -- dispatch ------------------------------------------------------------------------

    def handle(self, ctx: Context, message: str) -> None:
        message = message.lstrip()
        if message in SILLY:
            for i, line in enumerate(SILLY[message]):
                self.send_later(ctx, 0.5 + 2.5 * i, line)
            return
        if not message.strip():
            return  # 0.8 crashed on an empty command
        cmd, _, rest = message.partition(" ")
        cmd, rest = cmd.lower(), rest.strip()
        method = getattr(self, "command_" + cmd, None) if cmd in COMMANDS else None
        if method is None:
            if message.endswith("!"):
                self.send(ctx, "What you say!")
            return
        if not self._rate_ok(ctx):
            return
        self._run(ctx, message, functools.partial(method, ctx, rest))

    def _run(self, ctx: Context, message: str, func: Callable[[], None]) -> None:
        """Run (part of) a command: a usage error is the reply, a crash is logged."""
        try:
            func()
        except UsageError as exc:
            self.send(ctx, str(exc))
        except Exception:
            log.exception("IRC: command %r from %s failed", message[:200], ctx.user)
            self.send(ctx, "Something bad happened (see logs)")

    def _rate_ok(self, ctx: Context) -> bool:
        """At most ``commandsPerMinute`` commands a minute from one nick (0.8 had no
        limit); the first refused one is answered, later ones are ignored."""
        now = time.monotonic()
        key = ctx.user.lower()
        recent = self._recent.setdefault(key, collections.deque())
        while recent and now - recent[0] > 60:
            recent.popleft()
        if len(recent) >= self.n.commandsPerMinute:
            if now - self._warned.get(key, -1e9) > 60:
                self._warned[key] = now
                self.send(ctx, f"{ctx.user}: too many commands; wait a minute")
            return False
        recent.append(now)
        return True

    def _permitted(self, ctx: Context, action: str, what: str,
                   then: Callable[[], None]) -> None:
        """Run ``then`` if ``ctx.user`` may ``action`` (``control builds``…): anybody
        without ``allowedNicks``; else, by default, only a user the server says is
        identified to NickServ as one of those accounts (asked with WHOIS, whatever nick
        the user has now); with ``allowedNicksIdentified=False`` a user whose nick is
        listed. ``what`` names the command in the log if ``then`` crashes."""
        allowed = self.n.allowedNicks
        if allowed is None:
            then()
            return
        refused = f"sorry {ctx.user}, you are not allowed to {action}"
        if not self.n.allowedNicksIdentified:
            if ctx.user.lower() not in allowed:
                raise UsageError(refused)
            then()
            return

        def decided(account: str | None, answered: bool) -> None:
            if not answered:
                self.send(ctx, f"sorry {ctx.user}, the IRC server did not answer whether "
                               "you are identified to NickServ; try again")
            elif account is None:
                self.send(ctx, f"sorry {ctx.user}, you must be identified to NickServ to "
                               f"{action}")
            elif account.lower() not in allowed:
                self.send(ctx, refused)
            else:
                self._run(ctx, what, then)
        self.accounts.lookup(ctx.bot, ctx.user, decided)

    # -- simple commands -----------------------------------------------------------------

    def command_hello(self, ctx: Context, rest: str) -> None:
        self.send(ctx, "yes?")

    def command_version(self, ctx: Context, rest: str) -> None:
        self.send(ctx, f"bbweb-{__version__} at your service")

    def command_source(self, ctx: Context, rest: str) -> None:
        self.send(ctx, f"My source is bbweb {__version__}, a re-creation of Buildbot 0.8's "
                       "status and bot; it is where this master was installed from")

    def command_commands(self, ctx: Context, rest: str) -> None:
        self.send(ctx, "buildbot commands: " + ", ".join(COMMANDS))

    def command_mute(self, ctx: Context, rest: str) -> None:
        assert self.n.book is not None
        self.send(ctx, "Shutting up for now.")
        self.n.book.update(ctx.contact, muted=True, by=ctx.describe_user())

    def command_unmute(self, ctx: Context, rest: str) -> None:
        assert self.n.book is not None
        if self._muted(ctx):
            self.n.book.update(ctx.contact, muted=False, by=ctx.describe_user())
            self.send(ctx, "I'm baaaaaaaaaaack!")
        else:
            self.send(ctx, "You hadn't told me to be quiet, but it's the thought that "
                           "counts, right?")

    def command_dance(self, ctx: Context, rest: str) -> None:
        for delay, text in DANCE:
            self.send_later(ctx, delay, text)

    def command_destroy(self, ctx: Context, rest: str) -> None:
        if ctx.bot.nickname in rest.split():
            return
        self.act(ctx, "readies phasers")

    def command_help(self, ctx: Context, rest: str) -> None:
        args = _split(rest)
        if not args:
            raise UsageError("Get help on what? (try 'help <foo>', 'help <foo> <bar>, or "
                             "'commands' for a command list)")
        cmd = args[0].lower()
        if cmd not in COMMANDS:
            raise UsageError(f"no such command '{cmd}'")
        usage: Any = USAGE.get(cmd)
        for arg in args[1:]:
            usage = usage.get(arg) if isinstance(usage, dict) else None
        if isinstance(usage, dict):
            usage = usage.get(None)
        if usage:
            self.send(ctx, f"Usage: {usage}")
        else:
            self.send(ctx, "No usage info for " + " ".join(f"'{a}'" for a in args))

    # -- builders ------------------------------------------------------------------------

    def _builder_names(self) -> list[str]:
        return list(self.n.master_status.getBuilderNames(categories=self.n.categories))

    def _check_builder(self, name: str) -> None:
        if name not in self.n.config.builders:
            raise UsageError(f"no such builder '{name}'")

    def command_list(self, ctx: Context, rest: str) -> None:
        args = _split(rest)
        if not args:
            raise UsageError("try 'list builders'")
        if args[0] != "builders":
            return
        names = self._builder_names()
        cfg = self.n.config
        with self.n.db.read() as conn:
            online = queries.connected_slave_names(
                conn, {s for n in names for s in cfg.builders[n].slavenames})
        parts = [n + ("" if online & set(cfg.builders[n].slavenames) else " [offline]")
                 for n in names]
        self.send(ctx, "Configured builders: " + " ".join(parts))

    def _which(self, rest: str, usage: str) -> list[str]:
        args = _split(rest)
        if len(args) > 1:
            raise UsageError(usage)
        which = args[0] if args else "all"
        if which == "all":
            return self._builder_names()
        self._check_builder(which)
        return [which]

    def _expected(self, name: str) -> tuple[float | None, Any]:
        with self.n.db.read() as conn:
            info = queries.get_builder(conn, name)
            if info is None:
                return None, None
            return estimates.expected_durations(conn, [info]).get(info.id), info

    def command_status(self, ctx: Context, rest: str) -> None:
        for name in self._which(rest, "try 'status <builder>'"):
            self.send(ctx, self._status_line(name))

    def _status_line(self, name: str) -> str:
        builder = self.n.master_status.getBuilder(name)
        state, builds = builder.getState()
        line = f"{name}: {state}"
        now = time.time()
        if state == "idle":
            last = builder.getLastFinishedBuild()
            if last is not None:
                finished = last.getTimes()[1] or now
                line += (f", last build {duration(now - finished)} ago: "
                         f"{' '.join(last.getText())}")
        elif state == "building":
            expected, _info = self._expected(name)
            parts = []
            for b in builds:
                step = b.getCurrentStep()
                part = f"({' '.join(step.getText()) or step.getName()})" if step is not None \
                    else "(no current step)"
                eta = estimates.eta_seconds(expected, b.getTimes()[0], now)
                if eta is not None:
                    part += f" [ETA {duration(eta)}]"
                parts.append(part)
            line += ", ".join(parts)
        return line

    def command_last(self, ctx: Context, rest: str) -> None:
        for name in self._which(rest, "try 'last <builder>'"):
            last = self.n.master_status.getBuilder(name).getLastFinishedBuild()
            if last is None:
                self.send(ctx, f"last build [{name}]: (no builds run since last restart)")
                continue
            ago = duration(time.time() - (last.getTimes()[1] or time.time()))
            self.send(ctx, f"last build [{name}]: {ago} ago: {' '.join(last.getText())}")

    def _describe(self, build: Any) -> str:
        if self.n.useRevisions:
            revs = ", ".join(str(c.revision)[:7] for c in build.getChanges() if c.revision)
            return f"containing revision(s) [{revs}]"
        return f"#{build.getNumber()}"

    def command_watch(self, ctx: Context, rest: str) -> None:
        args = _split(rest)
        if len(args) != 1:
            raise UsageError("try 'watch <builder>'")
        name = args[0]
        self._check_builder(name)
        builds = self.n.master_status.getBuilder(name).getCurrentBuilds()
        if not builds:
            self.send(ctx, "there are no builds currently running")
            return
        expected, _info = self._expected(name)
        for b in builds:
            text = f"watching build {name} {self._describe(b)} until it finishes"
            eta = estimates.eta_seconds(expected, b.getTimes()[0], time.time())
            if eta is not None:
                text += f" [{duration(eta)}]"
            self.send(ctx, text + "..")
            if not self.n.watches.watch_build(b.info.id, ctx.contact):
                # it finished after getCurrentBuilds() and the notifier has handled that
                # already: nobody else will say it
                finished = self.n.master_status.getBuildById(b.info.id)
                self.send_lines(ctx, self.n.watched_lines(finished))

    # -- notify --------------------------------------------------------------------------

    def command_notify(self, ctx: Context, rest: str) -> None:
        assert self.n.book is not None
        args = _split(rest)
        if not args:
            raise UsageError("try 'notify on|off|list <EVENT>'")
        action, names = args[0], args[1:]
        contact = self.n.book.get(ctx.contact)
        events = set(contact.events)
        bad = False
        if action == "on":
            for name in names or ["started", "finished"]:
                try:
                    events.add(check_event(name))
                except BadEvent:
                    bad = True
                    break
        elif action == "off":
            if not names:
                events = set()
            for name in names:
                try:
                    events.discard(check_event(name))
                except BadEvent:
                    bad = True
                    break
        elif action != "list":
            bad = True
        if events != contact.events:
            self.n.book.update(ctx.contact, events=events, by=ctx.describe_user())
        if bad:
            raise UsageError("try 'notify on|off <EVENT>'")
        self.send(ctx, f"The following events are being notified: {sorted(events)!r}")

    # -- control -------------------------------------------------------------------------

    def _control(self, ctx: Context, name: str, what: str,
                 then: Callable[[], None]) -> None:
        if not self.n.allowForce:
            raise UsageError("builder control is not enabled")
        self._check_builder(name)
        self._permitted(ctx, "control builds", what, then)

    def _parse_force(self, args: list[str]) -> tuple[dict[str, str], list[str]]:
        opts: dict[str, str] = {}
        positional: list[str] = []
        i = 0
        while i < len(args):
            arg = args[i]
            if arg.startswith("--") and len(arg) > 2:
                key, eq, value = arg[2:].partition("=")
                if key not in ("branch", "revision", "props", "reason", "builder"):
                    raise UsageError(f"unknown option --{key}; {FORCE_USAGE}")
                if not eq:
                    i += 1
                    if i >= len(args):
                        raise UsageError(f"option --{key} needs a value")
                    value = args[i]
                opts[key] = value
            else:
                positional.append(arg)
            i += 1
        return opts, positional

    def command_force(self, ctx: Context, rest: str) -> None:
        args = _split(rest)
        if not args or args[0] != "build":
            raise UsageError(f"try '{FORCE_USAGE}'")
        opts, positional = self._parse_force(args[1:])
        builder = opts.get("builder")
        if positional:
            if builder is not None:
                raise UsageError("--builder provided in two ways")
            builder = positional.pop(0)
        reason = opts.get("reason")
        if positional:
            if reason is not None:
                raise UsageError("--reason provided in two ways")
            reason = " ".join(positional)
        if not builder:
            raise UsageError(f"you must provide a Builder, {FORCE_USAGE}")
        validation = self.n.config.validation
        branch, revision = opts.get("branch"), opts.get("revision")
        if branch and not validation["branch"].match(branch):
            raise UsageError(f"sorry, bad branch '{branch}'")
        if revision and not validation["revision"].match(revision):
            raise UsageError(f"sorry, bad revision '{revision}'")
        props: dict[str, str] = {}
        for piece in (opts.get("props") or "").split(","):
            if not piece:
                continue
            pname, eq, pvalue = piece.partition("=")
            if not eq:
                raise UsageError(f"sorry, property '{pname}' has no value (write "
                                 "--props=name=value,...)")
            if not validation["property_name"].match(pname) or \
                    not validation["property_value"].match(pvalue):
                raise UsageError(f"sorry, bad property name='{pname}', value='{pvalue}'")
            props[pname] = pvalue
        self._control(ctx, builder, "force build", functools.partial(
            self._force, ctx, builder, reason or "", branch or None, revision or None, props))

    def _force(self, ctx: Context, builder: str, reason: str, branch: str | None,
               revision: str | None, props: dict[str, str]) -> None:
        who = ctx.describe_user()
        brids: dict[str, int] = {}
        try:
            with self.n.db.write() as conn:
                _bsid, brids = force_build(
                    conn, self.n.config, [builder], reason=reason, owner=who,
                    branch=branch, revision=revision, properties=props,
                    reason_template="forced: by %(owner)s: %(reason)s",
                    property_source=PROPERTY_SOURCE)
                # watched before the request is committed: no worker can start it (and
                # the notifier see it start) before the bot knows who forced it
                for brid in brids.values():
                    self.n.watches.watch_request(brid, ctx.contact)
        except (BuildsetError, ValueRefused) as exc:
            raise UsageError(f"sorry, nothing forced: {exc}") from exc
        except BaseException:
            for brid in brids.values():
                self.n.watches.forget_request(brid)
            raise
        for brid in brids.values():
            ctx.bot.call_later(QUEUED_AFTER, functools.partial(self._still_queued, ctx, brid))

    def _still_queued(self, ctx: Context, brid: int) -> None:
        if self.n.watches.request_pending(brid):
            self.send(ctx, "The build has been queued, I'll give a shout when it starts")

    def command_stop(self, ctx: Context, rest: str) -> None:
        args = _split(rest)
        if len(args) < 3 or args[0] != "build":
            raise UsageError("try 'stop build WHICH <REASON>'")
        name, reason = args[1], args[2]
        self._control(ctx, name, "stop build",
                      functools.partial(self._stop, ctx, name, reason))

    def _stop(self, ctx: Context, name: str, reason: str) -> None:
        builds = self.n.master_status.getBuilder(name).getCurrentBuilds()
        if not builds:
            self.send(ctx, "sorry, no build is currently running")
            return
        who = ctx.describe_user()
        for b in builds:
            with self.n.db.write() as conn:
                stopped = actions.stop_build(conn, b.info.id, who,
                                             reason=f"stopped: by {who}: {reason}")
            if stopped:
                what = self._describe(b)
                self.send(ctx, f"build {what.lstrip('#')} interrupted"
                          if not self.n.useRevisions else f"build {what} interrupted")

    def command_shutdown(self, ctx: Context, rest: str) -> None:
        if rest not in ("check", "start", "stop", "now"):
            raise UsageError("try 'shutdown check|start|stop|now'")
        if not self.n.allowShutdown:
            raise UsageError("shutdown control is not enabled")
        self._permitted(ctx, "shut down the master", "shutdown",
                        functools.partial(self._shutdown, ctx, rest))

    def _shutdown(self, ctx: Context, rest: str) -> None:
        who = ctx.describe_user()
        with self.n.db.write() as conn:
            pending = actions.shutting_down(conn)
            if rest == "check":
                reply = ("Status: buildbot is shutting down" if pending
                         else "Status: buildbot is running")
            elif rest == "start":
                if pending:
                    reply = "Already started"
                else:
                    actions.request_clean_shutdown(conn, who, "asked on IRC")
                    reply = "Starting clean shutdown"
            elif rest == "stop":
                if not pending:
                    reply = "Nothing to stop"
                else:
                    actions.cancel_clean_shutdown(conn, who)
                    reply = "Stopping clean shutdown"
            else:
                actions.request_clean_shutdown(conn, who, "shutdown now, asked on IRC")
                actions.stop_builds(conn, None, who, "shutdown now, asked on IRC")
                reply = "Stopping buildbot"
        self.send(ctx, reply)
