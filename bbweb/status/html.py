"""``WebStatus``: the web status target, configured with Buildbot 0.8's arguments.

In bbweb the web server is gunicorn (``bbweb start`` binds it to ``http_port``); this
object carries the options the Flask application reads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from bbweb.config.errors import Location, caller_location, config_error

DEFAULT_FEEDS = ("atom", "json", "rss")


@dataclass(frozen=True)
class ListenAddress:
    host: str
    port: int

    def bind(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


_STRPORT = re.compile(r"^tcp:(?P<port>\d+)(?P<opts>(:[a-zA-Z]+=[^:]*)*)$")


def parse_http_port(value: int | str | None) -> ListenAddress | None:
    """Turn ``8010``, ``"8010"`` or ``"tcp:8010:interface=127.0.0.1"`` into an address.

    Raises ValueError with a message naming the accepted forms otherwise.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("http_port must be a port number or 'tcp:PORT[:interface=ADDR]'")
    if isinstance(value, int):
        port, host = value, "0.0.0.0"
    elif isinstance(value, str) and value.isdigit():
        port, host = int(value), "0.0.0.0"
    elif isinstance(value, str):
        m = _STRPORT.match(value)
        if not m:
            raise ValueError(f"http_port {value!r} is not understood: use a port number or "
                             "'tcp:PORT' or 'tcp:PORT:interface=ADDR'")
        port, host = int(m.group("port")), "0.0.0.0"
        for opt in filter(None, m.group("opts").split(":")):
            key, _, val = opt.partition("=")
            if key == "interface":
                host = val or host
            elif key != "backlog":
                raise ValueError(f"http_port {value!r}: unknown option {key!r}")
    else:
        raise ValueError("http_port must be a port number or 'tcp:PORT[:interface=ADDR]'")
    if not 0 < port < 65536:
        raise ValueError(f"http_port {value!r}: port must be between 1 and 65535")
    return ListenAddress(host, port)


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
            config_error(f"WebStatus: unknown argument(s) {', '.join(sorted(unknown))}")
        self.location: Location | None = caller_location()
        try:
            self.listen = parse_http_port(http_port)
        except ValueError as exc:
            config_error(f"WebStatus: {exc}")
        self.http_port = http_port
        if distrib_port is not None:
            config_error("WebStatus: distrib_port (Twisted web.distrib) has no equivalent; "
                         "put bbweb behind Apache or nginx instead (see docs/deployment.md)")
        if site is not None:
            config_error("WebStatus: site= (a Twisted Site) has no equivalent in bbweb")
        for label, value in (("numbuilds", numbuilds), ("num_events", num_events)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                config_error(f"WebStatus: {label} must be a positive integer")
        if num_events_max is not None and (not isinstance(num_events_max, int)
                                           or num_events_max < num_events):
            config_error("WebStatus: num_events_max must be an integer >= num_events")
        if change_hook_dialects is None:
            change_hook_dialects = {}
        if not isinstance(change_hook_dialects, dict) or not all(
                isinstance(k, str) for k in change_hook_dialects):
            config_error("WebStatus: change_hook_dialects must be a dict of "
                         "dialect name -> options")
        from bbweb.web.hook_auth import validate_hook_auth

        problem = validate_hook_auth(change_hook_auth)
        if problem:
            config_error(f"WebStatus: {problem}")
        if provide_feeds is None:
            provide_feeds = list(DEFAULT_FEEDS)
        elif not isinstance(provide_feeds, list | tuple) or any(
                f not in DEFAULT_FEEDS for f in provide_feeds):
            config_error("WebStatus: provide_feeds must be a list drawn from "
                         f"{', '.join(DEFAULT_FEEDS)}")
        if logRotateLength is None:
            logRotateLength = rotateLength  # the seed documents rotateLength; 0.8 took this
        self.allowForce = allowForce
        self.public_html = public_html
        self.numbuilds = numbuilds
        self.num_events = num_events
        self.num_events_max = num_events_max
        self.auth = auth
        self.authz = authz
        self.order_console_by_time = bool(order_console_by_time)
        self.changecommentlink = changecommentlink
        self.revlink = revlink
        self.projects = projects
        self.repositories = repositories
        self.logRotateLength = logRotateLength
        self.maxRotatedFiles = maxRotatedFiles
        self.change_hook_dialects = dict(change_hook_dialects)
        self.change_hook_auth = change_hook_auth
        self.provide_feeds = list(provide_feeds)
        self.jinja_loaders = list(jinja_loaders or [])


def Waterfall(*args: Any, **kwargs: Any) -> WebStatus:
    """The pre-0.8 name used in the seed's first example; a WebStatus in all respects."""
    return WebStatus(*args, **kwargs)
