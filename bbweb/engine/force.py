"""Force requests: a build of given sources on chosen builders, on somebody's say-so."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection

from bbweb.engine.buildsets import BuildsetError, create_buildset, create_sourcestamp
from bbweb.mastercfg.master import MasterConfig
from bbweb.mastercfg.schedulers import ForceScheduler
from bbweb.values.validation import ValueRefused, check_properties, check_text

SOURCE = "Force Build Form"


def force_build(conn: Connection, cfg: MasterConfig, builder_names: list[str], *,
                reason: str = "", owner: str = "", branch: str | None = None,
                revision: str | None = None, repository: str = "", project: str = "",
                properties: dict[str, Any] | None = None,
                scheduler: str | None = None,
                codebases: dict[str, dict[str, str]] | None = None,
                reason_template: str | None = None,
                property_source: str = SOURCE
                ) -> tuple[int, dict[str, int]]:
    """Create a buildset for ``builder_names`` with the given sources and properties.

    ``codebases`` (codebase -> branch/revision/repository/project, from a validated force
    form) gives one sourcestamp per codebase instead of the single one described by
    ``branch``, ``revision``, ``repository`` and ``project``.

    When ``scheduler`` names a ForceScheduler, only its builders may be forced through it
    (a user cannot reach other builders by editing the form): BuildsetError. A value that
    cannot be stored is :class:`~bbweb.values.validation.ValueRefused` (naming the field),
    a different kind of error: the request, not the choice made in the form, is wrong.

    ``reason_template`` and ``property_source`` let another front end than the web form
    (the IRC bot) word the reason and name the properties' source its own way.
    """
    if scheduler is not None:
        sched = cfg.schedulers.get(scheduler)
        if not isinstance(sched, ForceScheduler):
            raise BuildsetError(f"no ForceScheduler named {scheduler!r}")
        outside = [b for b in builder_names if b not in sched.builderNames]
        if outside:
            raise BuildsetError(f"ForceScheduler {scheduler!r} cannot build "
                                f"{', '.join(outside)}")
        reason_template = reason_template or sched.reasonString
    elif reason_template is None:
        reason_template = "A build was forced by '%(owner)s': %(reason)s"
    check_force_values(reason=reason, owner=owner, branch=branch, revision=revision,
                       repository=repository, project=project, properties=properties,
                       codebases=codebases)
    full_reason = reason_template % {"owner": owner or "<unknown>", "reason": reason}
    if codebases:
        ssids = [create_sourcestamp(conn, branch=ss.get("branch") or None,
                                    revision=ss.get("revision") or None,
                                    repository=ss.get("repository") or "",
                                    project=ss.get("project") or "", codebase=cb)
                 for cb, ss in sorted(codebases.items())]
    else:
        ssids = [create_sourcestamp(conn, branch=branch or None, revision=revision or None,
                                    repository=repository or "", project=project or "")]
    props: dict[str, tuple[Any, str]] = {k: (v, property_source)
                                         for k, v in (properties or {}).items()}
    props["reason"] = (reason, property_source)
    props["owner"] = (owner, property_source)
    if scheduler:
        props["scheduler"] = (scheduler, "Scheduler")
    return create_buildset(conn, cfg, sourcestampids=ssids, builder_names=builder_names,
                           reason=full_reason, scheduler=scheduler, properties=props)


def check_force_values(*, reason: Any, owner: Any, branch: Any, revision: Any,
                       repository: Any, project: Any, properties: dict[str, Any] | None,
                       codebases: dict[str, dict[str, str]] | None) -> None:
    """What a force request may carry (:mod:`bbweb.values.validation`: text every database
    stores, bounded property values); ValueRefused naming the field, nothing stored."""
    for name, value in (("reason", reason), ("owner", owner), ("branch", branch),
                        ("revision", revision), ("repository", repository),
                        ("project", project)):
        check_text(f"the {name} field", value)
    for cb, fields in (codebases or {}).items():
        check_text("a codebase name", cb)
        for name, value in (fields or {}).items():
            check_text(f"the {name} field", value)
    for name in properties or {}:
        if not isinstance(name, str) or not name:
            raise ValueRefused("property names", "must be non-empty strings")
    check_properties(properties or {})
