"""``PBListener``: Buildbot 0.8's Perspective Broker status port, replaced by the live
status stream.

0.8's ``PBListener(port, user, passwd)`` opened a Twisted PB port (plaintext, with public
default credentials) for ``buildbot statuslog`` and ``statusgui``. PB has no
implementation outside Twisted, so bbweb offers the same feed of builder, build, step and
log events over HTTP instead: ``/json/events`` on the web server, and ``bbweb statuslog``
printing the lines ``buildbot statuslog`` printed. A master.cfg still listing a
PBListener is refused with a sentence saying so at its line, rather than silently opening
nothing where a client expects a port.
"""

from __future__ import annotations

from typing import Any

from bbweb.mastercfg.errors import argument_error, caller_location

MESSAGE = ("PBListener (Buildbot's Perspective Broker status port for 'buildbot statuslog' "
           "and 'statusgui') does not exist in bbweb: remove it from c['status']; the same "
           "events are served as a live stream at /json/events on the web server, and "
           "'bbweb statuslog --master URL' prints what 'buildbot statuslog' did "
           "(docs/configuration.md, 'The live status stream')")


class PBListener:
    """Accepts 0.8's arguments only to refuse the object with :data:`MESSAGE`."""

    def __init__(self, port: Any = None, user: str = "statusClient", passwd: str = "clientpw",
                 **_kwargs: Any) -> None:
        self.location = caller_location()
        self.port = port
        argument_error(MESSAGE)
