"""Shared fixtures: a master basedir on SQLite and on PostgreSQL, an app and a client.

PostgreSQL comes from ``BBWEB_TEST_PG_URL`` (``scripts/test.sh`` starts a throwaway
cluster and sets it) or, when unset, from a cluster this session starts itself. Each test
gets its own database, so tests never see each other's rows.
"""

from __future__ import annotations

import os
import shutil
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from bbweb.db.connection import Database
from bbweb.db.migrate import upgrade
from bbweb.mastercfg.master import MasterConfig, load_master_config

DEFAULT_CFG = """
from bbweb.config import *
c = BuildmasterConfig = {}
c['title'] = 'Test Project'
c['titleURL'] = 'http://example.org/project'
c['buildbotURL'] = 'http://bb.example.org/'
c['db_url'] = DB_URL
c['slaves'] = [BuildSlave('slave1', 'pw1'), BuildSlave('slave2', 'pw2', max_builds=1)]
f = BuildFactory()
f.addStep(ShellCommand(command=['echo', 'hello'], name='hello'))
c['builders'] = [
    BuilderConfig(name='runtests', slavenames=['slave1', 'slave2'], factory=f,
                  category='core'),
    BuilderConfig(name='docs', slavenames=['slave1'], factory=f),
]
c['schedulers'] = [SingleBranchScheduler(name='all', branch=None,
                                         builderNames=['runtests', 'docs'])]
c['status'] = [WebStatus(http_port=8010, change_hook_dialects={'base': True})]
"""


@pytest.fixture(scope="session")
def pg_admin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str | None]:
    url = os.environ.get("BBWEB_TEST_PG_URL")
    if url:
        yield url
        return
    try:
        from tests.support.pgcluster import find_pg_bin, start_cluster
    except ImportError:  # pragma: no cover
        yield None
        return
    if find_pg_bin() is None:
        yield None
        return
    cluster = start_cluster(tmp_path_factory.mktemp("pg"))
    try:
        yield cluster.url
    finally:
        cluster.stop()


def _fresh_pg_database(admin_url: str, template: str | None = None) -> tuple[str, str]:
    name = "t_" + uuid.uuid4().hex[:16]
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"'
                             + (f' TEMPLATE "{template}"' if template else ""))
    engine.dispose()
    return admin_url.rsplit("/", 1)[0] + "/" + name, name


def _drop_pg_database(admin_url: str, name: str) -> None:
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    engine.dispose()


@pytest.fixture(scope="session")
def migrated_templates(tmp_path_factory: pytest.TempPathFactory, pg_admin_url: str | None
                       ) -> dict[str, str]:
    """One database per backend upgraded to the newest schema, made once per session, that
    masters start from (a file copy / ``CREATE DATABASE … TEMPLATE``) instead of running
    every migration again for each of ~1,500 tests. ``upgrade()`` still runs on each
    master's database (a no-op at head), and tests/db test the migrations themselves."""
    path = tmp_path_factory.mktemp("schema") / "state.sqlite"
    upgrade("sqlite:///" + str(path))
    templates = {"sqlite": str(path)}
    if pg_admin_url is not None:
        url, name = _fresh_pg_database(pg_admin_url)
        upgrade(url)  # disposes its engine: a template must have no open connections
        templates["postgresql"] = name
    return templates


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, pg_admin_url: str | None
           ) -> Iterator[str]:
    """A fresh database URL on each backend: empty, or — for tests that make a master
    (``make_master``) — already at the newest schema."""
    migrated = "make_master" in request.fixturenames
    templates = request.getfixturevalue("migrated_templates") if migrated else {}
    if request.param == "sqlite":
        path = tmp_path / "state.sqlite"
        if migrated:
            shutil.copyfile(templates["sqlite"], path)
        yield "sqlite:///" + str(path)
        return
    if pg_admin_url is None:
        pytest.skip("PostgreSQL server binaries are not installed (scripts/test.sh installs "
                    "them)")
    url, name = _fresh_pg_database(pg_admin_url, template=templates.get("postgresql"))
    try:
        yield url
    finally:
        _drop_pg_database(pg_admin_url, name)


@dataclass
class Master:
    """A master basedir with its loaded config and an upgraded database."""

    basedir: Path
    db_url: str
    config: MasterConfig
    db: Database

    def reload(self) -> None:
        self.config = load_master_config(self.basedir)

    def app(self):  # type: ignore[no-untyped-def]
        from bbweb.app import create_app

        return create_app(self.basedir, testing=True)


def write_master_cfg(basedir: Path, body: str, db_url: str) -> Path:
    basedir.mkdir(parents=True, exist_ok=True)
    path = basedir / "master.cfg"
    path.write_text(textwrap.dedent(body).replace("DB_URL", repr(db_url)))
    return path


@pytest.fixture
def make_master(tmp_path: Path, db_url: str) -> Iterator:
    """Factory: ``make_master(cfg_text=DEFAULT_CFG)`` -> :class:`Master` (schema created)."""
    made: list[Master] = []

    def factory(cfg_text: str = DEFAULT_CFG, name: str = "master") -> Master:
        basedir = tmp_path / name
        write_master_cfg(basedir, cfg_text, db_url)
        cfg = load_master_config(basedir)
        upgrade(cfg.db_url)
        m = Master(basedir, db_url, cfg, Database(cfg.db_url))
        made.append(m)
        return m

    yield factory
    for m in made:
        m.db.dispose()


@pytest.fixture
def master(make_master) -> Master:  # type: ignore[no-untyped-def]
    return make_master()


@pytest.fixture
def app(master: Master):  # type: ignore[no-untyped-def]
    application = master.app()
    yield application
    application.extensions["bbweb"].db.dispose()


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    return app.test_client()
