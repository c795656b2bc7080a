"""Links the site adds to plain data: revisions (``revlink``), commit comments
(``changecommentlink``), projects and repositories, and e-mail addresses.

Each function takes untrusted text and returns :class:`markupsafe.Markup` in which every
piece of that text is escaped; only the links we build are markup. The configuration forms
are Buildbot 0.8's (format strings, dicts, tuples, callables), checked at render time so a
broken user callable costs a link, never the page.
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import quote, urlsplit

from markupsafe import Markup, escape

log = logging.getLogger("bbweb.web")

SHORTREV_LEN = 12
LONGREV_LEN = 40

_GITHUB = re.compile(
    r"^(?:https?://|git://|ssh://git@|git@)github\.com[/:]"
    r"(?P<owner>[\w.-]+)/(?P<repo>[\w.-]+?)(?:\.git)?/?$")


def default_revlink(revision: str, repository: str) -> str | None:
    """Without configuration, GitHub repositories still get commit links."""
    m = _GITHUB.match(repository or "")
    if m and revision:
        return f"https://github.com/{m['owner']}/{m['repo']}/commit/{quote(revision)}"
    return None


def revision_url(revision: str | None, repository: str | None, webstatus_revlink: Any,
                 global_revlink: Any) -> str | None:
    """The URL for a revision, from ``WebStatus(revlink=…)`` if set, else ``c['revlink']``,
    else the built-in GitHub rule. Forms: a format string with ``%s``, a dict of
    repository → format string, or a callable ``(revision, repository)``."""
    if not revision:
        return None
    rule = webstatus_revlink or global_revlink or default_revlink
    repository = repository or ""
    try:
        if isinstance(rule, str):
            return rule % quote(revision, safe="") if "%s" in rule else None
        if isinstance(rule, dict):
            fmt = rule.get(repository)
            return fmt % quote(revision, safe="") if isinstance(fmt, str) else None
        if callable(rule):
            url = rule(revision, repository)
            return str(url) if url else None
    except Exception:
        log.exception("revlink failed for %r in %r", revision, repository)
    return None


SAFE_SCHEMES = ("", "http", "https", "mailto", "ftp")


def safe_href(url: str) -> str | None:
    """Only web and mail links: a configured rule must not produce ``javascript:``."""
    try:
        scheme = urlsplit(url.strip()).scheme.lower()
    except ValueError:
        return None
    return url if scheme in SAFE_SCHEMES else None


def link(url: str | None, text: str, title: str | None = None, cls: str | None = None
         ) -> Markup:
    """``<a href=url>text</a>`` with everything escaped, or the escaped text alone."""
    href = safe_href(url) if url else None
    if href is None:
        return escape(text)
    attrs = Markup(' href="{}"').format(href)
    if title:
        attrs += Markup(' title="{}"').format(title)
    if cls:
        attrs += Markup(' class="{}"').format(cls)
    return Markup("<a{}>{}</a>").format(attrs, text)


def revlink_markup(revision: str | None, url: str | None) -> Markup:
    """A full revision (at most 40 characters shown), linked when a URL is known."""
    if not revision:
        return Markup("")
    shown = revision if len(revision) <= LONGREV_LEN else revision[:LONGREV_LEN] + "..."
    if not url:
        return escape(shown)
    return Markup('<span class="revision" title="Revision {}">{}</span>').format(
        revision, link(url, shown))


def shortrev_markup(revision: str | None, url: str | None) -> Markup:
    """An abbreviated revision (12 characters), the full one in the tooltip."""
    if not revision:
        return Markup("")
    if len(revision) <= SHORTREV_LEN:
        return link(url, revision) if url else escape(revision)
    short = revision[:SHORTREV_LEN] + "..."
    if not url:
        return Markup('<span class="revision" title="{}">{}</span>').format(revision, short)
    return Markup('<span class="revision" title="Revision {}">{}</span>').format(
        revision, link(url, short))


def comment_markup(comment: str | None, rule: Any, project: str | None = None) -> Markup:
    """A commit comment with issue references linked by ``changecommentlink``: a tuple
    ``(regex, url_template[, title_template])``, a dict of project → tuple, or a callable
    ``(escaped_markup, project)``."""
    text = comment or ""
    if isinstance(rule, dict):
        rule = rule.get(project or "")
    try:
        if callable(rule):
            return Markup(rule(escape(text), project))
        if isinstance(rule, tuple | list) and len(rule) >= 2:
            pattern = re.compile(rule[0])
            url_tpl, title_tpl = rule[1], (rule[2] if len(rule) > 2 else None)
            out = Markup("")
            pos = 0
            for m in pattern.finditer(text):
                out += escape(text[pos:m.start()])
                out += link(m.expand(url_tpl), m.group(0),
                            m.expand(title_tpl) if title_tpl else None)
                pos = m.end()
            return out + escape(text[pos:])
    except Exception:
        log.exception("changecommentlink failed for project %r", project)
    return escape(text)


def name_link(name: str | None, rule: Any) -> Markup:
    """A project or repository name, linked through ``projects=``/``repositories=`` (a
    dict of name → URL, or a callable name → URL)."""
    if not name:
        return Markup("")
    url = None
    try:
        if isinstance(rule, dict):
            url = rule.get(name)
        elif callable(rule):
            url = rule(name)
    except Exception:
        log.exception("project/repository link failed for %r", name)
    return link(str(url), name) if url else escape(name)


_AT = Markup('<span style="display:none">ohnoyoudont</span>@')


def email_markup(text: str | None) -> Markup:
    """Text with every ``@`` interrupted by hidden junk, against address harvesters."""
    return Markup(_AT).join(escape(part) for part in (text or "").split("@"))


_USER = re.compile(r"^(?P<name>[^<>]*?)\s*<(?P<email>[^<>@\s]+@[^<>\s]+)>$")


def user_markup(text: str | None) -> Markup:
    """``Name <email>`` shown as the name, the (obfuscated) address kept for the
    curious; anything else goes through :func:`email_markup`."""
    m = _USER.match((text or "").strip())
    if not m:
        return email_markup(text)
    return Markup('<span class="user">{} <span class="email">&lt;{}&gt;</span></span>').format(
        m["name"] or m["email"], email_markup(m["email"]))
