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


def test_head_read_from_the_files_is_alembics_head():
    from alembic.script import ScriptDirectory

    from bbweb.db.migrate import alembic_config

    assert head_revision() == ScriptDirectory.from_config(alembic_config()).get_current_head()


def test_a_database_one_revision_behind_is_not_current(db_url):
    from alembic import command

    from bbweb.db.migrate import alembic_config, current_revision

    db = Database(db_url)
    try:
        assert current_revision(db) is None and not is_current(db)  # never upgraded
        upgrade(db_url)
        assert current_revision(db) == head_revision() and is_current(db)
        cfg = alembic_config()
        with db.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "-1")
        assert current_revision(db) not in (None, head_revision())
        assert not is_current(db)
    finally:
        db.dispose()
