"""`bbweb upgrade-master` builds exactly the schema the code expects, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from bbweb.cli import main
from bbweb.db.connection import Database
from bbweb.db.migrate import head_revision, is_current, upgrade
from bbweb.db.schema import metadata


def test_upgrade_matches_schema_and_is_idempotent(db_url):
    upgrade(db_url)
    upgrade(db_url)  # a second run is a no-op
    db = Database(db_url)
    try:
        assert is_current(db)
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
        assert diff == []
    finally:
        db.dispose()


def test_upgrade_master_command(tmp_path, db_url, capsys):
    (tmp_path / "master.cfg").write_text(
        "from bbweb.config import *\nc = BuildmasterConfig = {}\n"
        f"c['db_url'] = {db_url!r}\n"
        "c['slaves'] = [BuildSlave('s', 'p')]\n"
        "c['builders'] = [BuilderConfig(name='b', slavenames=['s'], "
        "factory=BuildFactory())]\n")
    assert main(["upgrade-master", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"schema revision {head_revision()}" in out
    assert "password" not in out or "***" in out


def test_app_refuses_an_unupgraded_database(tmp_path):
    import pytest

    from bbweb.app import create_app

    (tmp_path / "master.cfg").write_text("c = BuildmasterConfig = {}\n")
    with pytest.raises(RuntimeError, match="bbweb upgrade-master"):
        create_app(tmp_path)
