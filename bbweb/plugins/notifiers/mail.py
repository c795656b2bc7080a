"""``MailNotifier``: Buildbot 0.8's build mail, as a notifier of the master daemon.

Configured with 0.8's arguments (``from bbweb.status.mail import MailNotifier``), it
decides from each ``build.finished`` event (or, with ``buildSetSummary``, each
``buildset.complete``) whether the mode asks for a mail, to whom, and what it says, and
sends it over SMTP. What changed from 0.8 on purpose is listed in docs/compat.md.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Sequence
from email.utils import parseaddr
from typing import Any

from bbweb.mastercfg.errors import caller_location, config_error
from bbweb.plugins.notifiers.base import Notification, Notifier
from bbweb.plugins.notifiers.mail_compose import (
    HEADER_NAME,
    OWN_HEADERS,
    MailContent,
    add_extra_headers,
    attach_logs,
    attach_patches,
    build_message,
    message_id,
)
from bbweb.plugins.notifiers.mail_format import (
    BUILTIN_FORMATTERS,
    DEFAULT_SUBJECT,
    defaultMessage,
    result_word,
)
from bbweb.plugins.notifiers.mail_recipients import (
    VALID_EMAIL,
    Recipients,
    choose_recipients,
    interested_candidates,
    make_lookup,
    strip_controls,
)
from bbweb.plugins.notifiers.smtp import DEFAULT_TIMEOUT, SmtpSettings, SmtpTransport
from bbweb.values.results import EXCEPTION, FAILURE, SUCCESS, WARNINGS

log = logging.getLogger("bbweb.notifiers.mail")

MODES = ("change", "failing", "passing", "problem", "warnings", "exception")
# What the mode strings meant in 0.8's code (its manual said "all" was every mode).
MODE_STRINGS = {"all": ("failing", "passing", "warnings", "exception"),
                "warnings": ("failing", "warnings")}
DEFAULT_MODE = ("failing", "passing", "warnings")
WHOLE_BUILDSET = "(whole buildset)"
DEFAULT_LOG_TAIL = 256 * 1024  # characters of each attached log (its end)


def expand_mode(mode: Any) -> tuple[str, ...]:
    """0.8's mode argument as a tuple of modes; config errors as 0.8 worded them."""
    if isinstance(mode, str):
        modes = MODE_STRINGS.get(mode, (mode,))
    elif isinstance(mode, list | tuple):
        modes = tuple(mode)
    else:
        config_error(f"MailNotifier: mode must be a string or a list of strings, not "
                     f"{type(mode).__name__}")
    for m in modes:
        if m == "all":
            config_error("MailNotifier: mode 'all' is not valid in an iterator and must be "
                         "passed in as a separate string")
        if m not in MODES:
            config_error(f"MailNotifier: mode {m} is not a valid mode")
    return tuple(modes)


def _import_callable(value: Any, option: str) -> Any:
    """A callable option; from plugins.toml it can be ``"package.module:function"``."""
    if isinstance(value, str):
        module, _, attr = value.partition(":")
        if not module or not attr:
            config_error(f"MailNotifier: {option}={value!r} must be a function, or "
                         "'package.module:function' naming one")
        try:
            value = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            config_error(f"MailNotifier: {option}={value!r} cannot be imported: {exc}")
    if not callable(value):
        config_error(f"MailNotifier: {option} must be callable")
    return value


def _default_previous(build: Any) -> Any:
    return build.getPreviousFinishedBuild()


class MailNotifier(Notifier):
    """Mail about finished builds (one per build, or one per buildset)."""

    plugin_name = "mail"
    event_kinds = frozenset({"build.finished", "buildset.complete"})

    def __init__(
        self,
        fromaddr: str | None = None,
        mode: Any = DEFAULT_MODE,
        categories: Sequence[str] | None = None,
        builders: Sequence[str] | None = None,
        addLogs: bool | Sequence[str] = False,
        relayhost: str = "localhost",
        buildSetSummary: bool = False,
        subject: str = DEFAULT_SUBJECT,
        lookup: Any = None,
        extraRecipients: Sequence[str] = (),
        sendToInterestedUsers: bool = True,
        customMesg: Any = None,
        messageFormatter: Any = defaultMessage,
        extraHeaders: dict[Any, Any] | None = None,
        addPatch: bool = True,
        useTls: bool = False,
        smtpUser: str | None = None,
        smtpPassword: str | None = None,
        smtpPort: int = 25,
        previousBuildGetter: Any = _default_previous,
        *,
        name: str | None = None,
        useSmtps: bool | None = None,
        smtpCAFile: str | None = None,
        smtpTimeout: float = DEFAULT_TIMEOUT,
        logTailSize: int = DEFAULT_LOG_TAIL,
        **unknown: Any,
    ) -> None:
        if unknown:
            config_error(f"MailNotifier: unknown argument(s) {', '.join(sorted(unknown))}")
        super().__init__(name)
        self.location = caller_location()
        address = fromaddr if isinstance(fromaddr, str) else ""
        if not address.strip():
            config_error("MailNotifier: fromaddr (the From: address) is required")
        if strip_controls(address) != address or "@" not in parseaddr(address)[1]:
            config_error(f"MailNotifier: fromaddr {address!r} is not an email address")
        self.fromaddr: str = address
        self.mode = expand_mode(mode)
        if customMesg is not None:
            config_error("MailNotifier: customMesg is deprecated; use messageFormatter "
                         "instead")
        if categories is not None and builders is not None:
            config_error("MailNotifier: Please specify only builders or categories to "
                         "include - not both.")
        for label, value in (("builders", builders), ("categories", categories)):
            if value is not None and (not isinstance(value, list | tuple | set)
                                      or not all(isinstance(v, str) for v in value)):
                config_error(f"MailNotifier: {label} must be a list of names")
        self.builders = None if builders is None else list(builders)
        self.categories = None if categories is None else list(categories)
        if not (isinstance(addLogs, bool) or (isinstance(addLogs, list | tuple) and all(
                isinstance(n, str) for n in addLogs))):
            config_error("MailNotifier: addLogs must be True, False or a list of log names "
                         "('<log>' or '<step>.<log>')")
        self.addLogs = addLogs if isinstance(addLogs, bool) else list(addLogs)
        if not isinstance(relayhost, str) or not relayhost or strip_controls(relayhost) \
                != relayhost:
            config_error("MailNotifier: relayhost must be a host name")
        self.relayhost = relayhost
        self.buildSetSummary = bool(buildSetSummary)
        self.subject = self._check_subject(subject)
        self.lookup = make_lookup(lookup)
        if not isinstance(extraRecipients, list | tuple):
            config_error("MailNotifier: extraRecipients must be a list or tuple")
        for r in extraRecipients:
            if not isinstance(r, str) or not VALID_EMAIL.match(r) \
                    or strip_controls(r) != r:
                config_error(f"MailNotifier: extra recipient {r!r} is not a valid email")
        self.extraRecipients = list(extraRecipients)
        self.sendToInterestedUsers = bool(sendToInterestedUsers)
        self.messageFormatter = _import_callable(messageFormatter, "messageFormatter")
        self.extraHeaders = self._check_headers(extraHeaders)
        self.addPatch = bool(addPatch)
        self.previousBuildGetter = _import_callable(previousBuildGetter,
                                                    "previousBuildGetter")
        self.smtp = self._smtp_settings(useTls, useSmtps, smtpUser, smtpPassword, smtpPort,
                                        smtpCAFile, smtpTimeout)
        self.useTls = bool(useTls)
        self.smtpPort = smtpPort
        self.smtpUser = smtpUser
        if not isinstance(logTailSize, int) or isinstance(logTailSize, bool) \
                or logTailSize < 1024:
            config_error("MailNotifier: logTailSize must be a number of characters, at "
                         "least 1024")
        self.logTailSize = logTailSize
        self._transport: SmtpTransport | None = None

    def __repr__(self) -> str:
        return f"<MailNotifier {self.name!r} from {self.fromaddr!r}>"

    # -- argument checks -----------------------------------------------------------------

    @staticmethod
    def _check_subject(subject: Any) -> str:
        if not isinstance(subject, str):
            config_error("MailNotifier: subject must be a string")
        if "\n" in subject or "\r" in subject:
            config_error("MailNotifier: Newlines are not allowed in email subjects")
        try:
            subject % {"result": "", "title": "", "projectName": "", "builder": ""}
        except (KeyError, ValueError, TypeError) as exc:
            config_error(f"MailNotifier: subject {subject!r} cannot be filled in: "
                         f"{type(exc).__name__}: {exc} (the keys are result, title, "
                         "projectName and builder)")
        return str(subject)

    @staticmethod
    def _check_headers(headers: Any) -> dict[Any, Any]:
        if headers is None:
            return {}
        if not isinstance(headers, dict):
            config_error("MailNotifier: extraHeaders must be a dictionary")
        for key in headers:
            if isinstance(key, str):
                if not HEADER_NAME.match(key):
                    config_error(f"MailNotifier: extraHeaders key {key!r} is not a valid "
                                 "header name")
                if key.lower() in OWN_HEADERS:
                    config_error(f"MailNotifier: extraHeaders cannot set {key!r}: "
                                 "MailNotifier writes that header itself")
        return dict(headers)

    def _smtp_settings(self, useTls: Any, useSmtps: Any, user: Any, password: Any,
                       port: Any, ca_file: Any, timeout: Any) -> SmtpSettings:
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            config_error("MailNotifier: smtpPort must be a port number (1-65535)")
        if (user is None) != (password is None):
            config_error("MailNotifier: give both smtpUser and smtpPassword (SMTP AUTH), "
                         "or neither")
        if user is not None and not (isinstance(user, str) and isinstance(password, str)):
            config_error("MailNotifier: smtpUser and smtpPassword must be strings")
        implicit = port == 465 if useSmtps is None else bool(useSmtps)
        if implicit and useTls:
            config_error("MailNotifier: useTls (STARTTLS) and implicit TLS (useSmtps, or "
                         "port 465) exclude each other; choose one")
        if ca_file is not None:
            if not isinstance(ca_file, str):
                config_error("MailNotifier: smtpCAFile must be a file name")
            if not os.path.isabs(os.path.expanduser(ca_file)) and self.location is not None:
                ca_file = os.path.join(os.path.dirname(self.location.filename), ca_file)
            ca_file = os.path.expanduser(ca_file)
            if not os.path.isfile(ca_file):
                config_error(f"MailNotifier: smtpCAFile {ca_file!r} does not exist")
        if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0:
            config_error("MailNotifier: smtpTimeout must be a positive number of seconds")
        return SmtpSettings(host=self.relayhost, port=port, starttls=bool(useTls),
                            implicit_tls=implicit, user=user, password=password,
                            ca_file=ca_file, timeout=float(timeout))

    # -- deciding ------------------------------------------------------------------------

    def builder_watched(self, name: str, category: str | None) -> bool:
        if self.builders is not None and name not in self.builders:
            return False
        return self.categories is None or category in self.categories

    def isMailNeeded(self, build: Any, results: int | None) -> bool:
        """0.8's mode table for one build with result ``results``."""
        builder = build.getBuilder()
        if not self.builder_watched(builder.getName(), builder.getCategory()):
            return False
        mode = self.mode
        prev = None
        if "change" in mode or "problem" in mode:
            prev = self.previousBuildGetter(build)
        if "change" in mode and prev is not None and prev.getResults() != results:
            return True
        if "failing" in mode and results == FAILURE:
            return True
        if "passing" in mode and results == SUCCESS:
            return True
        if "problem" in mode and results == FAILURE and prev is not None \
                and prev.getResults() != FAILURE:
            return True
        if "warnings" in mode and results == WARNINGS:
            return True
        return "exception" in mode and results == EXCEPTION

    def notifications_for(self, event: dict[str, Any]) -> list[Notification]:
        payload = event["payload"]
        if event["kind"] == "build.finished":
            if self.buildSetSummary:
                return []
            builder_cfg = self.config.builders.get(payload["builder"])
            category = builder_cfg.category if builder_cfg is not None else None
            if not self.builder_watched(payload["builder"], category):
                return []
            build = self.master_status.getBuildById(int(payload["buildid"]))
            if build is None:
                log.warning("mail %r: build %s #%s is gone; no mail", self.name,
                            payload["builder"], payload["number"])
                return []
            results = payload.get("results", build.getResults())
            if not self.isMailNeeded(build, results):
                return []
            return [self._compose(event, build.getBuilder().getName(), [build], results)]
        if event["kind"] == "buildset.complete":
            if not self.buildSetSummary:
                return []
            bsid = int(payload["buildsetid"])
            kept = [b for b in self.master_status.getBuildsOfBuildset(bsid)
                    if self.isMailNeeded(b, b.getResults())]
            if not kept:
                return []
            return [self._compose(event, WHOLE_BUILDSET, kept, payload.get("results"),
                                  buildsetid=bsid)]
        return []

    # -- composing -----------------------------------------------------------------------

    def _format(self, build: Any) -> dict[str, Any]:
        """The formatter's answer for one build, checked."""
        name, results = build.getBuilder().getName(), build.getResults()
        builtin = BUILTIN_FORMATTERS.get(self.messageFormatter)
        if builtin is not None:
            answer = builtin(self.mode, name, build, results, self.master_status,
                             self.previousBuildGetter(build))
        else:
            answer = self.messageFormatter(self.mode, name, build, results,
                                           self.master_status)
        if not isinstance(answer, dict) or not isinstance(answer.get("body"), str):
            raise ValueError(f"messageFormatter returned {type(answer).__name__}, not a dict "
                             "with a 'body' string")
        if answer.get("type", "plain") not in ("plain", "html"):
            raise ValueError(f"messageFormatter returned type {answer.get('type')!r}; it "
                             "must be 'plain' or 'html'")
        if "subject" in answer and not isinstance(answer["subject"], str):
            raise ValueError("messageFormatter returned a subject that is not a string")
        return answer

    def _compose(self, event: dict[str, Any], name: str, builds: list[Any],
                 results: int | None, buildsetid: int | None = None) -> Notification:
        content = self._content(name, builds, results)
        recipients = self._recipients(builds)
        first = builds[0]
        what = (f"{name} #{first.getNumber()}" if buildsetid is None
                else f"buildset {buildsetid}: " + ", ".join(
                    f"{b.getBuilder().getName()} #{b.getNumber()}" for b in builds))
        what += f" ({result_word(results)})"
        msgid = message_id(self.config.buildbotURL or "", self.name, event["id"],
                           recipients.envelope)
        note = Notification(key=msgid, what=what, recipients=[*recipients.to, *recipients.cc],
                            builder=name if buildsetid is None else None,
                            build_number=first.getNumber() if buildsetid is None else None,
                            buildsetid=buildsetid)
        if not recipients.envelope:
            note.skip_reason = "no recipients: nobody interested and no extraRecipients"
            return note
        msg = build_message(content, sender=self.fromaddr, recipients=recipients,
                            msgid=msgid, date=event["created_at"])
        # 0.8 rendered the headers only for a single build; a summary uses its first
        add_extra_headers(msg, self.extraHeaders, first, self.name)
        if self.addPatch:
            attach_patches(msg, builds, self.master_status)
        if self.addLogs:
            attach_logs(msg, builds, self.addLogs, summary=buildsetid is not None,
                        tail_size=self.logTailSize, master_status=self.master_status)
        note.payload = (recipients.envelope, msg)
        return note

    def _content(self, name: str, builds: list[Any], results: int | None) -> MailContent:
        """The formatter's body, type and subject (0.8: with several builds the bodies
        follow one another, each followed by a blank line; the last type and the last
        subject given win)."""
        if len(builds) == 1:
            answer = self._format(builds[0])
            body, kind, subject = answer["body"], answer.get("type", "plain"), \
                answer.get("subject")
        else:
            body, kind, subject = "", "plain", None
            for build in builds:
                answer = self._format(build)
                body += answer["body"] + "\n\n"
                kind = answer.get("type", "plain")
                subject = answer.get("subject", subject)
        if subject is None:
            title = self.master_status.getTitle()
            subject = self.subject % {"result": result_word(results), "title": title,
                                      "projectName": title, "builder": name}
        return MailContent(body, kind, subject)

    def _recipients(self, builds: list[Any]) -> Recipients:
        candidates = interested_candidates(builds, self.lookup, self.db) \
            if self.sendToInterestedUsers else []
        return choose_recipients(candidates, self.extraRecipients,
                                 self.sendToInterestedUsers)

    # -- delivering ----------------------------------------------------------------------

    def deliver(self, notification: Notification) -> str:
        envelope, msg = notification.payload
        if self._transport is None:
            self._transport = SmtpTransport(self.smtp)
        sender = parseaddr(self.fromaddr)[1] or self.fromaddr
        return self._transport.send(sender, list(envelope), msg.as_bytes())

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None


__all__ = ["DEFAULT_MODE", "MODES", "MailNotifier", "WHOLE_BUILDSET", "expand_mode"]
