"""Who a build mail goes to: Buildbot 0.8's "interested users", ``Domain`` and the
address checks.

The candidates are the build's blamelist (change and patch authors) and its ``owners``,
turned into addresses by ``lookup`` (a domain string, :class:`Domain`, or any object with
``getAddress(name)``), or, without ``lookup``, the email addresses stored for those users
in the users tables. Each candidate is cleaned (0.8's fix for ``'User' <u@foo.com>@foo.com``
git authors: cut at the last ``@``) and kept only if it looks like an address.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from email.headerregistry import Address
from email.utils import parseaddr
from typing import Any

from bbweb.mastercfg.errors import config_error
from bbweb.status import user_emails

log = logging.getLogger("bbweb.notifiers.mail")

# A domain: labels of letters, digits and '-', at least one dot, optionally a trailing dot.
_DOMAIN = r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+\.?"
# 0.8 took any non-blank local part; characters that separate or quote addresses in a
# header (',', ';', '<', '"'…) are refused, so one candidate can never become several.
_LOCAL = r"[^\s@<>()\[\],;:\"\\]+"
VALID_EMAIL = re.compile(rf"^(?:{_LOCAL}@{_DOMAIN}|(?:.*\s)?<{_LOCAL}@{_DOMAIN}>\s*)$",
                         re.DOTALL)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
DISPLAY_NAME_LIMIT = 200


def strip_controls(text: str) -> str:
    """Control characters (CR, LF, NUL, TAB…) become spaces: nothing user-controlled can
    start a new header line."""
    return _CONTROL.sub(" ", text)


class Domain:
    """``lookup`` that appends ``@domain`` to user names (names with an ``@`` are kept)."""

    def __init__(self, domain: str) -> None:
        if not isinstance(domain, str) or not domain or "@" in domain:
            config_error(f"Domain({domain!r}): give the domain alone, without '@' "
                         "(e.g. Domain('example.org'))")
        self.domain = domain

    def getAddress(self, name: str) -> str:
        if "@" in name:
            return name
        return name + "@" + self.domain

    def __repr__(self) -> str:
        return f"Domain({self.domain!r})"


def make_lookup(lookup: Any) -> Any:
    """0.8's ``lookup`` argument: None, a domain string (meaning ``Domain(str)``) or an
    object with ``getAddress(name)``."""
    if lookup is None:
        return None
    if isinstance(lookup, str):
        return Domain(lookup)
    if not callable(getattr(lookup, "getAddress", None)):
        config_error(f"MailNotifier: lookup={lookup!r} must be a domain string, "
                     "a Domain(...) or an object with a getAddress(name) method")
    return lookup


def clean_address(candidate: Any) -> str | None:
    """A candidate as it may go into To/CC, or None (logged as an invalid email)."""
    if candidate is None:
        return None
    if not isinstance(candidate, str):
        log.warning("INVALID EMAIL: %r is not a string", candidate)
        return None
    address = strip_controls(candidate).strip()
    if address.count("@") > 1:
        address = address[:address.rindex("@")]
    if VALID_EMAIL.match(address):
        return address
    log.warning("INVALID EMAIL: %r", candidate[:200])
    return None


@dataclass(frozen=True)
class Recipients:
    """The header lists (address strings as 0.8 wrote them, sorted) and the envelope."""

    to: tuple[str, ...]
    cc: tuple[str, ...]

    @property
    def envelope(self) -> list[str]:
        """Bare addresses, each once, in To then CC order."""
        seen: dict[str, str] = {}
        for text in (*self.to, *self.cc):
            spec = parseaddr(text)[1]
            if spec:
                seen.setdefault(spec.lower(), spec)
        return list(seen.values())

    def header_addresses(self, which: Sequence[str]) -> list[Address]:
        """``which`` (to or cc) as Address objects, display names shortened."""
        out: list[Address] = []
        for text in which:
            name, spec = parseaddr(text)
            if not spec:
                continue
            try:
                out.append(Address(display_name=name[:DISPLAY_NAME_LIMIT], addr_spec=spec))
            except (ValueError, IndexError):
                log.warning("INVALID EMAIL: %r cannot go into a header", text[:200])
        return out


def interested_candidates(builds: Iterable[Any], lookup: Any, db: Any) -> list[Any]:
    """Addresses (or None) for the blamelist and owners of every build."""
    out: list[Any] = []
    for build in builds:
        if lookup is not None:
            for name in [*build.getResponsibleUsers(), *build.getInterestedUsers()]:
                out.append(lookup.getAddress(name))
            continue
        authors = [c.who for c in build.getChanges()]
        with db.read() as conn:
            out.extend(user_emails.emails_for_authors(conn, authors))
            out.extend(user_emails.emails_for_usernames(conn, build.getInterestedUsers()))
    return out


def choose_recipients(candidates: Iterable[Any], extra: Sequence[str],
                      send_to_interested: bool) -> Recipients:
    """0.8's header rules: the interested addresses in To (sorted, once each); the extra
    recipients in CC when some interested address survived, else in To."""
    interested = sorted({a for a in (clean_address(c) for c in candidates) if a}) \
        if send_to_interested else []
    extras = sorted(set(extra))
    if interested:
        return Recipients(tuple(interested), tuple(e for e in extras if e not in interested))
    return Recipients(tuple(extras), ())
