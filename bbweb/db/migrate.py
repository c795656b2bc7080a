"""Creating and upgrading the status database (``bbweb upgrade-master``).

Alembic owns the schema's history; ``upgrade`` brings any database, empty or old, to the
current revision and seeds the single-row tables the engine relies on.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from bbweb.db.connection import Database, _ensure_counter

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head_revision() -> str:
    return ScriptDirectory.from_config(alembic_config()).get_current_head() or ""


def current_revision(db: Database) -> str | None:
    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(url: str) -> str:
    """Bring the database at ``url`` to the newest schema; returns the revision."""
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
