"""Creating and upgrading the status database (``bbweb upgrade-master``).

Alembic owns the schema's history; ``upgrade`` brings any database, empty or old, to the
current revision and seeds the single-row tables the engine relies on.

Alembic (with Mako, which it brings) costs a running process about 12 MiB, so only
:func:`upgrade` imports it. The check every web and daemon process makes at start-up
(:func:`is_current`) reads the revision table with SQLAlchemy and finds the newest revision
from the migration files' ``revision``/``down_revision`` lines.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from bbweb.db.connection import Database, _ensure_counter

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
VERSION_TABLE = "alembic_version"  # alembic's default, which env.py keeps


def alembic_config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def _revisions() -> dict[str, str | None]:
    """revision -> down_revision of every migration file, read without importing it."""
    found: dict[str, str | None] = {}
    for path in sorted((MIGRATIONS / "versions").glob("*.py")):
        values: dict[str, object] = {}
        for node in ast.parse(path.read_text(), str(path)).body:
            if isinstance(node, ast.Assign):
                target, value = node.targets[0], node.value
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                target, value = node.target, node.value
            else:
                continue
            if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
                try:
                    values[target.id] = ast.literal_eval(value)
                except ValueError:
                    pass
        revision, down = values.get("revision"), values.get("down_revision")
        if isinstance(revision, str) and (down is None or isinstance(down, str)):
            found[revision] = down
        else:
            raise ValueError(f"{path}: no plain revision/down_revision strings")
    return found


def head_revision() -> str:
    """The newest revision: the one no other migration names as its ``down_revision``.
    Alembic is asked when the files do not form one plain chain (a merge revision)."""
    try:
        revisions = _revisions()
    except ValueError:
        revisions = {}
    heads = set(revisions) - {down for down in revisions.values() if down}
    if len(heads) == 1:
        return heads.pop()
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head() or ""


def current_revision(db: Database) -> str | None:
    """The revision the database is at (None: never upgraded)."""
    with db.read() as conn:
        if not sa.inspect(conn).has_table(VERSION_TABLE):
            return None
        rows = conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).all()
    return rows[0][0] if len(rows) == 1 else None


def upgrade(url: str) -> str:
    """Bring the database at ``url`` to the newest schema; returns the revision."""
    from alembic import command

    db = Database(url)
    try:
        cfg = alembic_config()
        with db.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
        with db.write() as conn:
            _ensure_counter(conn)
        return head_revision()
    finally:
        db.dispose()


def is_current(db: Database) -> bool:
    return current_revision(db) == head_revision()


def table_names(db: Database) -> list[str]:
    return sa.inspect(db.engine).get_table_names()
