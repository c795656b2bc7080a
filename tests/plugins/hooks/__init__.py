"""Helpers for the forge change-hook dialect tests.

Payloads live in ``tests/data/payloads`` (what each file is, where it comes from and under
which licence: its ``SOURCES`` file). The tests assert the values in those very files, so
there is no setting to read them from elsewhere.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bbweb.db.schema import buildsets, change_files, change_properties, changes
from bbweb.status.queries import get_changes
from bbweb.status.records import ChangeInfo
from tests.conftest import DEFAULT_CFG

REPO = Path(__file__).resolve().parents[3]
PAYLOADS = REPO / "tests" / "data" / "payloads"

# Statuses a dialect may answer for any input (never a 500).
ALLOWED_STATUSES = {200, 202, 400, 403}


def payload_bytes(name: str) -> bytes:
    path = PAYLOADS / name
    assert path.is_file(), f"payload {path} is missing"
    return path.read_bytes()


def payload(name: str) -> dict[str, Any]:
    return json.loads(payload_bytes(name))


def hook_cfg(dialects: dict[str, Any]) -> str:
    """DEFAULT_CFG with only these change-hook dialects enabled."""
    return DEFAULT_CFG.replace("change_hook_dialects={'base': True}",
                               f"change_hook_dialects={dialects!r}")


def dialect_site(make_master: Any, dialect: str) -> Any:
    """A factory ``(options=None) -> (master, client)`` for a master with only ``dialect``
    enabled (``True`` when no options are given)."""
    def factory(options: Any = None) -> tuple[Any, Any]:
        m = make_master(hook_cfg({dialect: options if options is not None else True}))
        return m, m.app().test_client()
    return factory


def fuzz_settings() -> Any:
    """Hypothesis settings shared by the dialects' fuzz tests (a master per test function
    is fine; deadlines are not, on a loaded CI machine)."""
    from hypothesis import HealthCheck, settings

    return settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


def sign(secret: str | bytes, body: bytes, algorithm: str) -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, body, getattr(hashlib, algorithm)).hexdigest()


def stored(master) -> list[ChangeInfo]:  # type: ignore[no-untyped-def]
    """Every stored change, read back through the status queries, in id order."""
    with master.db.read() as conn:
        ids = [r[0] for r in conn.execute(sa.select(changes.c.changeid)
                                          .order_by(changes.c.changeid))]
        found = get_changes(conn, ids)
    return [found[i] for i in ids]


def row_counts(master) -> dict[str, int]:  # type: ignore[no-untyped-def]
    out = {}
    with master.db.read() as conn:
        for table in (changes, change_files, change_properties, buildsets):
            out[table.name] = conn.execute(
                sa.select(sa.func.count()).select_from(table)).scalar_one()
    return out


def nothing_stored(master) -> bool:  # type: ignore[no-untyped-def]
    return not any(row_counts(master).values())


def props(change: ChangeInfo) -> dict[str, Any]:
    return {name: value for name, value, _source in change.properties}


# -- fuzzing helpers (hypothesis is optional: the fuzz tests skip without it) ------------------

def json_strategy():  # type: ignore[no-untyped-def]
    """Random JSON values, biased toward the keys the dialects read, so the fuzz reaches
    past the first type check."""
    from hypothesis import strategies as st

    keys = st.sampled_from([
        "ref", "after", "before", "deleted", "commits", "repository", "url", "html_url",
        "id", "distinct", "author", "name", "email", "message", "timestamp", "added",
        "modified", "removed", "action", "pull_request", "number", "head", "sha", "user",
        "login", "title", "body", "push", "changes", "new", "type", "target", "hash", "date",
        "links", "html", "href", "raw", "canon_url", "absolute_url", "scm", "raw_node",
        "raw_author", "utctimestamp", "branch", "files", "file", "revisions", "revision",
        "project_name", "repository_path", "object_kind", "updated_at", "base",
    ]) | st.text(max_size=8)
    scalars = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True)
               | st.text(max_size=20)
               | st.sampled_from(["refs/heads/master", "refs/tags/v1", "0" * 40,
                                  "2008-02-15T14:57:17-08:00", "2012-05-30 03:58:56+00:00",
                                  "opened", "branch", "tag", "git", "\x00", "\ud800"]))
    return st.recursive(scalars, lambda children: st.lists(children, max_size=4)
                        | st.dictionaries(keys, children, max_size=6), max_leaves=25)


def mutate(value: Any, path: list[Any], replacement: Any) -> Any:
    """A deep copy of ``value`` with the item at ``path`` replaced (for fuzzing real
    payloads one field at a time)."""
    if not path:
        return replacement
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        copy = dict(value)
        copy[head] = mutate(value.get(head), rest, replacement)
        return copy
    if isinstance(value, list) and isinstance(head, int) and 0 <= head < len(value):
        copy_list = list(value)
        copy_list[head] = mutate(value[head], rest, replacement)
        return copy_list
    return value


def paths(value: Any, prefix: list[Any] | None = None, limit: int = 400) -> list[list[Any]]:
    """Every path into a JSON value (to pick one to mutate)."""
    prefix = prefix or []
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out.extend(paths(v, prefix + [k], limit))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.extend(paths(v, prefix + [i], limit))
    return out[:limit]
