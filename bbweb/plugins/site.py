"""The site a request is served for: what every blueprint, page plugin and change-hook
dialect may ask during a request, with :func:`site`.

:func:`bbweb.app.create_app` builds one :class:`Site` per process before serving; nothing
in it changes while requests are served, except what the per-process caches keep.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import current_app

from bbweb.db.connection import Database
from bbweb.mastercfg.master import MasterConfig
from bbweb.plugins.registry import PluginSettings
from bbweb.status.jsoncache import BuildDocCache, MadeDocCache
from bbweb.status.queries import FinishedBuildSlaves


@dataclass
class Site:
    """Everything a request handler needs: configuration, database, enabled plugins."""

    basedir: str
    config: MasterConfig
    db: Database
    plugin_settings: PluginSettings
    change_hooks: dict[str, Any] = field(default_factory=dict)  # dialect -> plugin instance
    pages: dict[str, Any] = field(default_factory=dict)  # name -> Blueprint (bbweb.pages)
    auth: Any = None  # the authentication back end plugins.toml's [auth] enables, if any
    plugin_failures: dict[str, str] = field(default_factory=dict)
    # this process's encoded /json build documents, each checked against its build's row
    build_docs: BuildDocCache = field(default_factory=BuildDocCache)
    # this process's encoded /json documents made from a few rows (builders, slaves)
    made_docs: MadeDocCache = field(default_factory=MadeDocCache)
    # this process's finished builds' slaves, for /json slave documents
    finished_slaves: FinishedBuildSlaves = field(default_factory=FinishedBuildSlaves)


def site() -> Site:
    """The current application's :class:`Site`."""
    current: Site = current_app.extensions["bbweb"]
    return current
