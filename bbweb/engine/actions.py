"""Control actions on builds, build requests and the master: stop, cancel, rebuild, clean
shutdown.

Each function is one write transaction's worth of work (the caller owns the transaction)
and emits its event, and each records who asked and why on the row it touched, so pages
can show it. The web's action views (``bbweb/web/actions*.py``) call these after
authorization; they never check permissions themselves.
"""

from __future__ import annotations

import json
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bbweb.db.schema import (
    builders,
    buildrequests,
    builds,
    buildset_properties,
    buildset_sourcestamps,
    buildsets,
    master_state,
    sourcestamp_changes,
    sourcestamps,
)
from bbweb.engine import events
from bbweb.engine.builds import get_properties
from bbweb.engine.buildsets import create_buildset, create_sourcestamp, maybe_complete_buildset
from bbweb.mastercfg.master import MasterConfig
from bbweb.values.results import CANCELLED

NO_REASON = "<no reason specified>"
CLEAN_SHUTDOWN = "clean_shutdown"


class ActionError(ValueError):
    """An action that cannot be done as asked; the message is shown to the user."""


# -- stopping builds ------------------------------------------------------------------------

def stop_reason(user: str, comments: str | None) -> str:
    """The reason recorded on a build stopped from the web (0.8's wording)."""
    return (f"The web-page 'stop build' button was pressed by '{user}': "
            f"{(comments or '').strip() or NO_REASON}")


def stop_build(conn: Connection, buildid: int, user: str, comments: str | None = None,
               now: float | None = None, reason: str | None = None) -> bool:
    """Ask the worker running build ``buildid`` to stop it. The worker hears of it on its
    next heartbeat or log post, kills the step's processes, and the build ends as
    EXCEPTION. False when the build is finished or a stop was already asked for.
    ``reason`` replaces the web button's wording (the IRC bot words its own)."""
    now = time.time() if now is None else now
    reason = stop_reason(user, comments) if reason is None else reason
    updated = conn.execute(builds.update().where(
        builds.c.id == buildid, builds.c.finished_at.is_(None),
        builds.c.stop_requested.is_(None),
    ).values(stop_requested=reason, stopped_by=user, stop_requested_at=now)).rowcount
    if updated:
        events.emit(conn, "build.stop_requested", buildid=buildid, reason=reason, user=user)
    return bool(updated)


def running_build_ids(conn: Connection, builderids: list[int] | None = None) -> list[int]:
    """Unfinished builds (of ``builderids``, or all), by the unfinished-builds index."""
    query = sa.select(builds.c.id).where(builds.c.finished_at.is_(None))
    if builderids is not None:
        if not builderids:
            return []
        query = query.where(builds.c.builderid.in_(builderids))
    return [r.id for r in conn.execute(query.order_by(builds.c.id))]


def stop_builds(conn: Connection, builderids: list[int] | None, user: str,
                comments: str | None = None) -> list[int]:
    """Stop every running build of ``builderids`` (None: of every builder); returns the
    ids of the builds asked to stop."""
    return [b for b in running_build_ids(conn, builderids)
            if stop_build(conn, b, user, comments)]


# -- cancelling pending requests ------------------------------------------------------------

def cancel_request(conn: Connection, brid: int, user: str, reason: str | None = None,
                   now: float | None = None) -> bool:
    """Cancel a build request nobody has claimed yet: it completes as CANCELLED (and its
    buildset, once all its requests are done). False when it was claimed or finished in
    the meantime."""
    now = time.time() if now is None else now
    updated = conn.execute(buildrequests.update().where(
        buildrequests.c.id == brid, buildrequests.c.claimed_at.is_(None),
        buildrequests.c.complete.is_(False),
    ).values(complete=True, complete_at=now, results=CANCELLED, cancelled_at=now,
             cancelled_by=user, cancel_reason=(reason or "").strip() or None)).rowcount
    if not updated:
        return False
    bsid = conn.execute(sa.select(buildrequests.c.buildsetid)
                        .where(buildrequests.c.id == brid)).scalar_one()
    events.emit(conn, "buildrequest.cancelled", brid=brid, buildsetid=bsid, user=user,
                reason=reason or "")
    maybe_complete_buildset(conn, bsid, now)
    return True


def pending_request_ids(conn: Connection, builderids: list[int] | None = None,
                        changeid: int | None = None) -> list[int]:
    """Unclaimed, unfinished requests (of ``builderids``, or all; containing change
    ``changeid`` when given), oldest first."""
    query = sa.select(buildrequests.c.id).where(buildrequests.c.complete.is_(False),
                                               buildrequests.c.claimed_at.is_(None))
    if builderids is not None:
        if not builderids:
            return []
        query = query.where(buildrequests.c.builderid.in_(builderids))
    if changeid is not None:
        with_change = (sa.select(buildset_sourcestamps.c.buildsetid)
                       .join(sourcestamp_changes, sourcestamp_changes.c.sourcestampid
                             == buildset_sourcestamps.c.sourcestampid)
                       .where(sourcestamp_changes.c.changeid == changeid))
        query = query.where(buildrequests.c.buildsetid.in_(with_change))
    return [r.id for r in conn.execute(query.order_by(buildrequests.c.id))]


def cancel_requests(conn: Connection, brids: list[int], user: str,
                    reason: str | None = None) -> list[int]:
    """Cancel each of ``brids`` that is still pending; returns those cancelled."""
    return [b for b in brids if cancel_request(conn, b, user, reason)]


def request_builder(conn: Connection, brid: int) -> str | None:
    """The name of the builder a request is for (None: no such request)."""
    return conn.execute(sa.select(builders.c.name)
                        .join(buildrequests, buildrequests.c.builderid == builders.c.id)
                        .where(buildrequests.c.id == brid)).scalar()


# -- rebuilding ------------------------------------------------------------------------------

def rebuild_reason(user: str, comments: str | None) -> str:
    return (f"The web-page 'rebuild' button was pressed by '{user}': "
            f"{(comments or '').strip()}")


def rebuild(conn: Connection, cfg: MasterConfig, buildid: int, user: str,
            comments: str | None = None, use_sourcestamp: str = "exact",
            extra_properties: dict[str, Any] | None = None) -> tuple[int, dict[str, int]]:
    """Resubmit a finished build: a new buildset for the same builder with the build's
    requested properties. ``exact`` builds the revisions the build got (its
    ``got_revision``); ``updated`` reuses the original sourcestamps (so a stamp without a
    revision builds the newest one again)."""
    if use_sourcestamp not in ("exact", "updated"):
        raise ActionError(f"could not rebuild: unknown sourcestamp choice "
                          f"'{use_sourcestamp}' (exact or updated)")
    build = conn.execute(sa.select(builds).where(builds.c.id == buildid)).first()
    if build is None:
        raise ActionError("could not rebuild: no such build")
    if build.finished_at is None:
        raise ActionError("could not rebuild: build still not finished")
    name = conn.execute(sa.select(builders.c.name)
                        .where(builders.c.id == build.builderid)).scalar_one()
    if name not in cfg.builders:
        raise ActionError(f"could not rebuild: builder '{name}' is no longer configured")
    bsid = conn.execute(sa.select(buildrequests.c.buildsetid)
                        .where(buildrequests.c.id == build.buildrequestid)).scalar_one()
    old = conn.execute(sa.select(buildsets.c.scheduler).where(buildsets.c.id == bsid)).one()
    stamps = conn.execute(sa.select(sourcestamps)
                          .join(buildset_sourcestamps,
                                buildset_sourcestamps.c.sourcestampid == sourcestamps.c.id)
                          .where(buildset_sourcestamps.c.buildsetid == bsid)
                          .order_by(sourcestamps.c.id)).all()
    if use_sourcestamp == "updated":
        ssids = [s.id for s in stamps]
    else:
        got = get_properties(conn, buildid).get("got_revision", (None, ""))[0]
        ssids = []
        for s in stamps:
            rev = got.get(s.codebase) if isinstance(got, dict) else \
                (got if (s.codebase == "" or len(stamps) == 1) else None)
            changeids = [c for (c,) in conn.execute(
                sa.select(sourcestamp_changes.c.changeid)
                .where(sourcestamp_changes.c.sourcestampid == s.id))]
            patch = None if s.patch_body is None else {
                "level": s.patch_level, "body": s.patch_body, "subdir": s.patch_subdir,
                "author": s.patch_author, "comment": s.patch_comment}
            ssids.append(create_sourcestamp(
                conn, branch=s.branch, revision=str(rev) if rev else s.revision,
                repository=s.repository, project=s.project, codebase=s.codebase,
                changeids=changeids, patch=patch))
    props: dict[str, tuple[Any, str]] = {
        r.name: (json.loads(r.value), r.source) for r in conn.execute(
            sa.select(buildset_properties).where(buildset_properties.c.buildsetid == bsid)
            .order_by(buildset_properties.c.id))}
    for key, value in (extra_properties or {}).items():
        props[key] = (value, "Rebuild")
    props["owner"] = (user, "Rebuild")
    props["rebuild_of"] = (f"{name} #{build.number}", "Rebuild")
    return create_buildset(conn, cfg, sourcestampids=ssids, builder_names=[name],
                           reason=rebuild_reason(user, comments), scheduler=old.scheduler,
                           properties=props)


# -- clean shutdown of the master ------------------------------------------------------------

def clean_shutdown_state(conn: Connection) -> dict[str, Any] | None:
    """``{"by": user, "at": time, "reason": …}`` while a clean shutdown is pending."""
    row = conn.execute(sa.select(master_state)
                       .where(master_state.c.name == CLEAN_SHUTDOWN)).first()
    if row is None:
        return None
    value = json.loads(row.value)
    return {"by": row.set_by, "at": row.set_at,
            "reason": value.get("reason", "") if isinstance(value, dict) else ""}


def request_clean_shutdown(conn: Connection, user: str, reason: str = "",
                           now: float | None = None) -> bool:
    """No build starts any more; the daemon (and ``bbweb start``) stop once the running
    builds are done. False if one was already pending."""
    now = time.time() if now is None else now
    if clean_shutdown_state(conn) is not None:
        return False
    conn.execute(master_state.insert().values(name=CLEAN_SHUTDOWN,
                                              value=json.dumps({"reason": reason}),
                                              set_by=user, set_at=now))
    events.emit(conn, "master.clean_shutdown", user=user)
    return True


def cancel_clean_shutdown(conn: Connection, user: str) -> bool:
    """Builds start again; False if no clean shutdown was pending."""
    deleted = conn.execute(master_state.delete()
                           .where(master_state.c.name == CLEAN_SHUTDOWN)).rowcount
    if deleted:
        events.emit(conn, "master.clean_shutdown_cancelled", user=user)
    return bool(deleted)


def shutting_down(conn: Connection) -> bool:
    return conn.execute(sa.select(master_state.c.name)
                        .where(master_state.c.name == CLEAN_SHUTDOWN)).first() is not None


def clean_shutdown_due(conn: Connection) -> bool:
    """A clean shutdown is pending and nothing is running any more."""
    return shutting_down(conn) and not running_build_ids(conn)


__all__ = ["ActionError", "cancel_clean_shutdown", "cancel_request", "cancel_requests",
           "clean_shutdown_due", "clean_shutdown_state", "pending_request_ids", "rebuild",
           "request_builder", "request_clean_shutdown", "running_build_ids", "shutting_down",
           "stop_build", "stop_builds", "stop_reason"]
