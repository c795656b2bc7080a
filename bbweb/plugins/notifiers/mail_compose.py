"""Building a build mail as an :class:`email.message.EmailMessage`: headers (none of them
able to carry a line break from outside), the body, patches, log tails, and the
Message-ID that stays the same when a mail is sent again.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import formatdate
from typing import Any
from urllib.parse import urlsplit

from bbweb.plugins.notifiers.mail_recipients import Recipients, strip_controls

log = logging.getLogger("bbweb.notifiers.mail")

HEADER_VALUE_LIMIT = 998
# Headers MailNotifier writes itself; extraHeaders cannot add them a second time.
OWN_HEADERS = frozenset({"date", "subject", "from", "to", "cc", "message-id",
                         "mime-version", "content-type", "content-transfer-encoding",
                         "content-disposition"})
HEADER_NAME = re.compile(r"^[!-9;-~]+$")
# 7bit: a body that is not ASCII goes quoted-printable or base64, so no server needs to
# support 8BITMIME.
POLICY = SMTP_POLICY.clone(cte_type="7bit")


def header_value(text: str) -> str:
    """A header value with control characters (CR, LF…) turned to spaces and whitespace
    runs made one space, at most one header line's worth of characters."""
    text = " ".join(strip_controls(text).split())
    return text if len(text) <= HEADER_VALUE_LIMIT else text[:HEADER_VALUE_LIMIT - 1] + "…"


def body_encoding(body: str) -> str | None:
    """7bit for ASCII text whose lines SMTP carries as they are (as 0.8 did); otherwise
    the email package's choice (quoted-printable or base64)."""
    lines = body.splitlines() or [""]
    if body.isascii() and max(len(line) for line in lines) <= 998:
        return "7bit"
    return None


def message_id(buildbot_url: str, notifier: str, event_id: int,
               envelope: Sequence[str]) -> str:
    """The same for the same master, notifier, event and recipients, so a mail sent again
    after a crash is recognisably the same mail."""
    host = urlsplit(buildbot_url).hostname or "bbweb.invalid"
    key = "\0".join([buildbot_url, notifier, str(event_id),
                     ",".join(sorted(a.lower() for a in envelope))])
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:24]
    return f"<bbweb.{event_id}.{digest}@{host}>"


@dataclass
class MailContent:
    """What the formatter(s) said: body, ``plain``/``html`` and the subject."""

    body: str
    kind: str
    subject: str


def build_message(content: MailContent, *, sender: str, recipients: Recipients,
                  msgid: str, date: float) -> EmailMessage:
    """The message with 0.8's headers (Date, Subject, From, To, CC) and the body."""
    msg = EmailMessage(policy=POLICY)
    msg["Date"] = formatdate(date, localtime=True)
    msg["Subject"] = header_value(content.subject)
    msg["From"] = sender
    msg["To"] = recipients.header_addresses(recipients.to)
    if recipients.cc:
        msg["CC"] = recipients.header_addresses(recipients.cc)
    msg["Message-ID"] = msgid
    msg.set_content(content.body, subtype=content.kind, charset="utf-8",
                    cte=body_encoding(content.body))
    return msg


def add_extra_headers(msg: EmailMessage, headers: dict[Any, Any], build: Any,
                      notifier: str) -> None:
    """``extraHeaders``, names and values rendered against ``build``'s properties; a
    name that is not one, or a header already there, is left out (logged)."""
    for key, value in headers.items():
        name = strip_controls(str(build.render(key))).strip()
        if not HEADER_NAME.match(name) or name.lower() in OWN_HEADERS or name in msg:
            log.warning("mail %r: extra header %r is not added (not a header name, or "
                        "already in the message)", notifier, name[:100])
            continue
        msg[name] = header_value(str(build.render(value)))


def attach_patches(msg: EmailMessage, builds: Sequence[Any], master_status: Any) -> None:
    """Each source stamp's patch as ``source patch <i>``: text if it is UTF-8, else the
    submitted bytes as application/octet-stream."""
    index = 0
    for build in builds:
        for ss in build.getSourceStamps():
            if not ss.patch or ss.patch[1] is None:
                continue
            raw = master_status.getPatchBody(ss)
            if raw is None:
                continue
            filename = f"source patch {index}"
            index += 1
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                msg.add_attachment(raw, maintype="application", subtype="octet-stream",
                                   filename=filename)
            else:
                msg.add_attachment(text, subtype="plain", charset="utf-8", filename=filename)


def attach_logs(msg: EmailMessage, builds: Sequence[Any], wanted: bool | Sequence[str], *,
                summary: bool, tail_size: int, master_status: Any) -> None:
    """The logs ``addLogs`` names (all with True), each as its last ``tail_size``
    characters, named ``<step>.<log>`` (``<builder>.<step>.<log>`` in a summary)."""
    names = None if wanted is True else set(wanted or ())
    for build in builds:
        for step in build.getSteps():
            for logfile in step.getLogs():
                short = f"{step.getName()}.{logfile.getName()}"
                if names is not None and logfile.getName() not in names \
                        and short not in names:
                    continue
                text, cut = logfile.getTail(tail_size)
                if cut:
                    where = master_status.getURLForThing(logfile) or "the build's page"
                    text = (f"[only the last {len(text)} characters of this log are "
                            f"attached; the whole log is at {where}]\n" + text)
                filename = f"{build.getBuilder().getName()}.{short}" if summary else short
                msg.add_attachment(text, subtype="plain", charset="utf-8",
                                   filename=header_value(filename))
