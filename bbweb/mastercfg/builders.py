"""Builders and the slaves (workers) that run them."""

from __future__ import annotations

import re
from typing import Any

from bbweb.mastercfg.errors import Location, argument_error, caller_location
from bbweb.mastercfg.steps import BuildFactory

_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.+-]+")


class BuildSlave:
    """A worker allowed to connect: ``BuildSlave(name, password, max_builds, properties)``."""

    def __init__(self, name: str, password: str, max_builds: int | None = None,
                 properties: dict[str, Any] | None = None, notify_on_missing: Any = None,
                 missing_timeout: int = 3600, keepalive_interval: int | None = None,
                 **unknown: Any) -> None:
        if unknown:
            argument_error(f"BuildSlave: unknown argument(s) {', '.join(sorted(unknown))}")
        self.location: Location | None = caller_location()
        if not isinstance(name, str) or not name:
            argument_error("BuildSlave: name must be a non-empty string")
        elif name.startswith("_"):
            argument_error(f"BuildSlave: name {name!r} may not start with '_' (reserved)")
        if not isinstance(password, str):
            argument_error(f"BuildSlave {name!r}: password must be a string")
        if max_builds is not None and (not isinstance(max_builds, int) or max_builds < 1):
            argument_error(f"BuildSlave {name!r}: max_builds must be a positive integer "
                           "or None")
        if properties is not None and not isinstance(properties, dict):
            argument_error(f"BuildSlave {name!r}: properties must be a dict")
            properties = None
        if isinstance(notify_on_missing, str):
            notify_on_missing = [notify_on_missing]
        elif notify_on_missing is not None and not isinstance(notify_on_missing, list | tuple):
            argument_error(f"BuildSlave {name!r}: notify_on_missing must be an address or "
                           "a list of addresses")
            notify_on_missing = None
        self.name = name
        self.slavename = name
        self.password = password
        self.max_builds = max_builds
        self.properties = dict(properties or {})
        self.notify_on_missing = list(notify_on_missing or [])
        self.missing_timeout = missing_timeout
        self.keepalive_interval = keepalive_interval


class BuilderConfig:
    """``BuilderConfig(name, slavenames, factory, category, properties, builddir)``."""

    def __init__(self, name: str | None = None, slavename: str | None = None,
                 slavenames: list[str] | str | None = None, factory: BuildFactory | None = None,
                 builddir: str | None = None, slavebuilddir: str | None = None,
                 category: str | None = None, properties: dict[str, Any] | None = None,
                 env: dict[str, str] | None = None, description: str | None = None,
                 nextSlave: Any = None, mergeRequests: Any = None, locks: Any = None,
                 tags: list[str] | None = None, **unknown: Any) -> None:
        if unknown:
            argument_error(f"BuilderConfig: unknown argument(s) {', '.join(sorted(unknown))}")
        self.location: Location | None = caller_location()
        if not isinstance(name, str) or not name:
            argument_error("BuilderConfig: name is required and must be a string")
        elif name.startswith("_"):
            argument_error(f"BuilderConfig: builder name {name!r} may not start with '_' "
                           "(reserved for _all/_selected)")
        if not isinstance(factory, BuildFactory):
            argument_error(f"builder {name!r}: factory must be a BuildFactory")
        names: list[str] = []
        if slavename:
            if isinstance(slavename, str):
                names.append(slavename)
            else:
                argument_error(f"builder {name!r}: slavename must be a string")
        if isinstance(slavenames, str):
            slavenames = [slavenames]
        if slavenames:
            if not isinstance(slavenames, list | tuple) or not all(
                    isinstance(s, str) for s in slavenames):
                argument_error(f"builder {name!r}: slavenames must be a list of strings")
            else:
                names.extend(slavenames)
        elif not names:
            argument_error(f"builder {name!r}: at least one slave name is required "
                           "(slavename or slavenames)")
        if category is not None and not isinstance(category, str):
            argument_error(f"builder {name!r}: category must be a string")
            category = None
        if properties is not None and not isinstance(properties, dict):
            argument_error(f"builder {name!r}: properties must be a dict")
            properties = None
        if env is not None and not isinstance(env, dict):
            argument_error(f"builder {name!r}: env must be a dict")
            env = None
        for label, value in (("builddir", builddir), ("slavebuilddir", slavebuilddir)):
            if value is not None and not isinstance(value, str):
                argument_error(f"builder {name!r}: {label} must be a string")
        if not isinstance(builddir, str):
            builddir = None
        if not isinstance(slavebuilddir, str):
            slavebuilddir = None
        # after an argument error the loader refuses the whole configuration; until then
        # the object holds stand-ins of the right types
        self.name: str = name if isinstance(name, str) else str(name)
        self.slavenames = names
        self.factory: BuildFactory = factory if isinstance(factory, BuildFactory) \
            else BuildFactory()
        self.builddir = builddir or _SAFE_NAME.sub("_", str(name))
        self.slavebuilddir = slavebuilddir or self.builddir
        self.category = category
        self.properties = dict(properties or {})
        self.env = dict(env or {})
        self.description = description
        self.nextSlave = nextSlave
        self.mergeRequests = mergeRequests
        self.locks = locks or []
        self.tags = tags or []
