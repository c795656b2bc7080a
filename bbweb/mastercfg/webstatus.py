"""``WebStatus``: the web status target, configured with Buildbot 0.8's arguments.

In bbweb the web server is gunicorn (``bbweb start`` binds it to ``http_port`` and, if
set, ``distrib_port``, and writes ``http.log`` rotated by ``logRotateLength`` and
``maxRotatedFiles``); this object carries the options gunicorn and the Flask application
read.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from typing import Any

from bbweb.mastercfg.authz import Authz
from bbweb.mastercfg.errors import Location, argument_error, caller_location
from bbweb.mastercfg.hook_auth import validate_hook_auth
from bbweb.values.numbers import is_int_text

log = logging.getLogger("bbweb.config")

DEFAULT_FEEDS = ("atom", "json", "rss")


@dataclass(frozen=True)
class ListenAddress:
    host: str
    port: int

    def bind(self, basedir: str | os.PathLike[str] | None = None) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class UnixSocketAddress:
    """A UNIX socket for a front-end web server to proxy to (``distrib_port``).

    ``path`` is as configured with ``~`` expanded; a relative path is relative to the
    master's basedir, resolved by :meth:`resolve`.
    """

    path: str

    def resolve(self, basedir: str | os.PathLike[str] | None = None) -> str:
        if os.path.isabs(self.path) or basedir is None:
            return self.path
        return os.path.normpath(os.path.join(os.fspath(basedir), self.path))

    def bind(self, basedir: str | os.PathLike[str] | None = None) -> str:
        return f"unix:{self.resolve(basedir)}"


_STRPORT = re.compile(r"^tcp:(?P<port>\d+)(?P<opts>(:[a-zA-Z]+=[^:]*)*)$")
_UNIXPORT = re.compile(r"^unix:(?P<path>[^:]*)(?P<opts>(:[a-zA-Z]+=[^:]*)*)$")
_TCP_FORMS = "a port number, 'tcp:PORT' or 'tcp:PORT:interface=ADDR'"


def parse_http_port(value: int | str | None, option: str = "http_port"
                    ) -> ListenAddress | None:
    """Turn ``8010``, ``"8010"`` or ``"tcp:8010:interface=127.0.0.1"`` into an address.

    Raises ValueError with a message naming ``option`` and the accepted forms otherwise.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"{option} must be {_TCP_FORMS}")
    if isinstance(value, int):
        port, host = value, "0.0.0.0"
    elif isinstance(value, str) and is_int_text(value):
        port, host = int(value), "0.0.0.0"
    elif isinstance(value, str):
        m = _STRPORT.match(value)
        if not m:
            raise ValueError(f"{option} {value!r} is not understood: use {_TCP_FORMS}")
        port, host = int(m.group("port")), "0.0.0.0"
        for opt in filter(None, m.group("opts").split(":")):
            key, _, val = opt.partition("=")
            if key == "interface":
                host = val or host
            elif key != "backlog":
                raise ValueError(f"{option} {value!r}: unknown option {key!r}")
    else:
        raise ValueError(f"{option} must be {_TCP_FORMS}")
    if not 0 < port < 65536:
        raise ValueError(f"{option} {value!r}: port must be between 1 and 65535")
    return ListenAddress(host, port)


def parse_distrib_port(value: int | str | None
                       ) -> ListenAddress | UnixSocketAddress | None:
    """``distrib_port``: a TCP port in any ``http_port`` form, ``"unix:/path/to/socket"``,
    or (as 0.8) a path starting with ``/``, ``~`` or ``.`` meaning a UNIX socket.

    Raises ValueError naming ``distrib_port`` and the accepted forms otherwise.
    """
    if value is None:
        return None
    forms = "a port number, 'tcp:PORT[:interface=ADDR]' or 'unix:/path/to/socket'"
    if isinstance(value, str) and value[:1] in ("/", "~", "."):
        value = "unix:" + value
    if isinstance(value, str) and value.startswith("unix:"):
        m = _UNIXPORT.match(value)
        if not m:
            raise ValueError(f"distrib_port {value!r} is not understood: use {forms}")
        path = m.group("path")
        if path.startswith("address="):  # Twisted's keyword spelling
            path = path[len("address="):]
        opts = [o for o in m.group("opts").split(":") if o]
        if opts:
            raise ValueError(f"distrib_port {value!r}: socket options "
                             f"({', '.join(o.partition('=')[0] for o in opts)}) are not "
                             "supported; set permissions on the socket's directory instead")
        if not path:
            raise ValueError(f"distrib_port {value!r}: the socket path is empty")
        return UnixSocketAddress(os.path.expanduser(path))
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"distrib_port must be {forms}")
    if isinstance(value, str) and not (value.startswith("tcp:") and _STRPORT.match(value)
                                       or is_int_text(value)):
        raise ValueError(f"distrib_port {value!r} is not understood: use {forms}")
    return parse_http_port(value, option="distrib_port")


def _same_port(a: ListenAddress, b: ListenAddress) -> bool:
    anywhere = ("0.0.0.0", "::", "")
    return a.port == b.port and (a.host == b.host or a.host in anywhere
                                 or b.host in anywhere)


DEFAULT_LOG_ROTATE_LENGTH = 10_000_000
DEFAULT_MAX_ROTATED_FILES = 10


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


class WebStatus:
    """The web status target (``c['status'].append(WebStatus(http_port=8010, ...))``)."""

    def __init__(
        self,
        http_port: int | str | None = None,
        distrib_port: Any = None,
        allowForce: Any = None,
        public_html: str = "public_html",
        site: Any = None,
        numbuilds: int = 20,
        num_events: int = 200,
        num_events_max: int | None = None,
        auth: Any = None,
        authz: Any = None,
        order_console_by_time: bool = False,
        changecommentlink: Any = None,
        revlink: Any = None,
        projects: Any = None,
        repositories: Any = None,
        logRotateLength: int | None = None,
        rotateLength: int | None = None,
        maxRotatedFiles: int | None = None,
        change_hook_dialects: dict[str, Any] | None = None,
        change_hook_auth: Any = None,
        provide_feeds: list[str] | None = None,
        jinja_loaders: list[Any] | None = None,
        **unknown: Any,
    ) -> None:
        if unknown:
            argument_error(f"WebStatus: unknown argument(s) {', '.join(sorted(unknown))}")
        self.location: Location | None = caller_location()
        self.listen, self.distrib = _addresses(http_port, distrib_port)
        self.http_port = http_port
        self.distrib_port = distrib_port
        if site is not None:
            argument_error("WebStatus: site= (a Twisted Site) has no equivalent in bbweb")
        numbuilds, num_events, num_events_max = _page_sizes(numbuilds, num_events,
                                                            num_events_max)
        change_hook_dialects = _hook_options(change_hook_dialects, change_hook_auth)
        provide_feeds = _feeds(provide_feeds)
        logRotateLength, maxRotatedFiles = _log_rotation(logRotateLength, rotateLength,
                                                         maxRotatedFiles)
        if jinja_loaders is not None and not isinstance(jinja_loaders, list | tuple):
            argument_error("WebStatus: jinja_loaders must be a list of Jinja loaders")
            jinja_loaders = None
        self.allowForce = allowForce
        self.authz = _effective_authz(authz, auth, allowForce)
        _check_header_trust(self.authz, [self.listen, self.distrib])
        self.public_html = public_html
        self.numbuilds = numbuilds
        self.num_events = num_events
        self.num_events_max = num_events_max
        self.auth = auth
        self.order_console_by_time = bool(order_console_by_time)
        self.changecommentlink = changecommentlink
        self.revlink = revlink
        self.projects = projects
        self.repositories = repositories
        self.logRotateLength: int = logRotateLength
        self.maxRotatedFiles: int = maxRotatedFiles
        self.change_hook_dialects = dict(change_hook_dialects)
        self.change_hook_auth = change_hook_auth
        self.provide_feeds = list(provide_feeds)
        self.jinja_loaders = list(jinja_loaders or [])


# -- WebStatus's arguments, checked one group at a time: a bad value is reported (the loader
# -- collects every problem) and replaced by its default ---------------------------------------

def _addresses(http_port: int | str | None, distrib_port: Any
               ) -> tuple[ListenAddress | None, ListenAddress | UnixSocketAddress | None]:
    """Where the web server listens: ``http_port`` and ``distrib_port``, not the same port."""
    listen: ListenAddress | None = None
    try:
        listen = parse_http_port(http_port)
    except ValueError as exc:
        argument_error(f"WebStatus: {exc}")
    distrib: ListenAddress | UnixSocketAddress | None = None
    try:
        distrib = parse_distrib_port(distrib_port)
    except ValueError as exc:
        argument_error(f"WebStatus: {exc}")
    if (isinstance(distrib, ListenAddress) and listen is not None
            and _same_port(distrib, listen)):
        argument_error(f"WebStatus: distrib_port {distrib_port!r} is the same port as "
                       f"http_port {http_port!r}")
    return listen, distrib


def _page_sizes(numbuilds: Any, num_events: Any, num_events_max: Any
                ) -> tuple[int, int, int | None]:
    """``numbuilds``, ``num_events`` and ``num_events_max``."""
    if not _positive_int(numbuilds):
        argument_error("WebStatus: numbuilds must be a positive integer")
        numbuilds = 20
    if not _positive_int(num_events):
        argument_error("WebStatus: num_events must be a positive integer")
        num_events = 200
    if num_events_max is not None and (not _positive_int(num_events_max)
                                       or num_events_max < num_events):
        argument_error("WebStatus: num_events_max must be an integer >= num_events")
        num_events_max = None
    return numbuilds, num_events, num_events_max


def _hook_options(change_hook_dialects: Any, change_hook_auth: Any) -> dict[str, Any]:
    """``change_hook_dialects`` (a dict of dialect name -> options) and
    ``change_hook_auth``."""
    if change_hook_dialects is None:
        change_hook_dialects = {}
    if not isinstance(change_hook_dialects, dict) or not all(
            isinstance(k, str) for k in change_hook_dialects):
        argument_error("WebStatus: change_hook_dialects must be a dict of "
                       "dialect name -> options")
        change_hook_dialects = {}
    problem = validate_hook_auth(change_hook_auth)
    if problem:
        argument_error(f"WebStatus: {problem}")
    return dict(change_hook_dialects)


def _feeds(provide_feeds: Any) -> list[str]:
    """``provide_feeds``: drawn from atom, json, rss; all of them when not given."""
    if provide_feeds is None:
        provide_feeds = list(DEFAULT_FEEDS)
    elif not isinstance(provide_feeds, list | tuple) or any(
            f not in DEFAULT_FEEDS for f in provide_feeds):
        argument_error("WebStatus: provide_feeds must be a list drawn from "
                       f"{', '.join(DEFAULT_FEEDS)}")
        provide_feeds = list(DEFAULT_FEEDS)
    return list(provide_feeds)


def _log_rotation(logRotateLength: Any, rotateLength: Any, maxRotatedFiles: Any  # noqa: N803
                  ) -> tuple[int, int]:
    """``http.log``'s rotation: ``logRotateLength`` (or 0.8's ``rotateLength``) and
    ``maxRotatedFiles``."""
    if logRotateLength is None:
        logRotateLength = rotateLength  # documented as rotateLength; 0.8 took this
    elif rotateLength is not None and rotateLength != logRotateLength:
        argument_error("WebStatus: logRotateLength and rotateLength are the same "
                       "option; give one of them")
    if logRotateLength is None:
        logRotateLength = DEFAULT_LOG_ROTATE_LENGTH
    elif not _positive_int(logRotateLength):
        argument_error("WebStatus: logRotateLength (rotateLength) must be a positive "
                       "number of bytes")
        logRotateLength = DEFAULT_LOG_ROTATE_LENGTH
    if maxRotatedFiles is None:
        maxRotatedFiles = DEFAULT_MAX_ROTATED_FILES
    elif not _positive_int(maxRotatedFiles):
        argument_error("WebStatus: maxRotatedFiles must be a positive integer")
        maxRotatedFiles = DEFAULT_MAX_ROTATED_FILES
    return logRotateLength, maxRotatedFiles


def _is_loopback(host: str) -> bool:
    return host == "localhost" or host == "::1" or host.startswith("127.")


def _check_header_trust(authz: Any, addresses: list[Any]) -> None:
    """``useHttpHeader=True`` without ``auth=`` believes whatever user name a request's
    ``Authorization``/``REMOTE_USER`` says, so only the front end may be able to reach
    bbweb: refuse a configuration that listens on a non-loopback interface."""
    if authz is None or not getattr(authz, "useHttpHeader", False) or authz.auth is not None:
        return
    exposed = [a for a in addresses
               if isinstance(a, ListenAddress) and not _is_loopback(a.host)]
    if exposed:
        argument_error(
            f"WebStatus: Authz(useHttpHeader=True) without auth= trusts the user name in "
            f"every request's Authorization header, but bbweb listens on "
            f"{exposed[0].bind()}, where anybody can send one: bind it to the loopback "
            f"interface (http_port='tcp:{exposed[0].port}:interface=127.0.0.1') or a unix "
            f"socket so only the front-end server reaches it, or give auth= so bbweb "
            f"checks the password itself (docs/security.md)")


def _effective_authz(authz: Any, auth: Any, allowForce: Any) -> Any:
    """The site's :class:`~bbweb.mastercfg.authz.Authz`, including 0.8's deprecated forms:
    ``allowForce=True`` (everything allowed to everyone, or to logged-in users with
    ``auth=``); no ``authz`` at all gives read-only ``Authz()``."""
    if authz is not None:
        if not isinstance(authz, Authz):
            argument_error(f"WebStatus: authz={authz!r} is not an Authz(...) object")
            return Authz()
        if allowForce is not None or auth is not None:
            argument_error("WebStatus: give either authz=Authz(...) or the deprecated "
                           "allowForce=/auth=, not both (put auth= inside Authz)")
        return authz
    if allowForce:
        log.warning("WebStatus(allowForce=True) is deprecated: use authz=Authz(...)")
        if auth is not None:
            return Authz(auth=auth, default_action="auth")
        return Authz(default_action=True)
    if auth is not None:
        log.warning("WebStatus: auth= without allowForce=True is ignored; give "
                    "authz=Authz(auth=..., forceBuild='auth', ...) instead")
    return Authz()


def Waterfall(*args: Any, **kwargs: Any) -> WebStatus:
    """The pre-0.8 name used in Buildbot's documented first example; a WebStatus in all respects."""
    return WebStatus(*args, **kwargs)
