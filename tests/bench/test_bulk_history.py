"""``bench/bulk_history.py``: a history replicated in SQL must look, to the pages and the
JSON API, exactly like one the engine made (on SQLite and PostgreSQL)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bbweb.app import create_app
from bbweb.db import schema

BENCH = Path(__file__).resolve().parents[2] / "bench"
BUILDERS, BUILDS, TEMPLATE = 3, 50, 10
ARGS = ["--builders", str(BUILDERS), "--builds", str(BUILDS), "--template-builds",
        str(TEMPLATE), "--end-time", "1700000000", "--seed", "7"]


def _load_bulk_history() -> Any:
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location("bench_bulk_history",
                                                  BENCH / "bulk_history.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


bulk_history = _load_bulk_history()


@pytest.fixture
def bulk(tmp_path: Path, db_url: str) -> Any:
    """A 3 x 50 history (template of 10 builds per builder, copied 4 times)."""
    master, plan = bulk_history.run(["--basedir", str(tmp_path / "bulk"), "--db-url", db_url]
                                    + ARGS)
    app = create_app(master.basedir, testing=True)
    yield master, plan, app
    app.extensions["bbweb"].db.dispose()
    master.db.dispose()


def _count(conn: sa.Connection, table: str) -> int:
    return int(conn.execute(sa.select(sa.func.count())
                            .select_from(schema.metadata.tables[table])).scalar())


def test_sizes_numbers_times_and_foreign_keys(bulk: Any) -> None:
    master, plan, _app = bulk
    assert plan.copies == BUILDS // TEMPLATE
    with master.db.read() as conn:
        assert _count(conn, "builds") == BUILDERS * BUILDS
        assert _count(conn, "steps") == BUILDERS * BUILDS * 5
        assert _count(conn, "changes") == BUILDS  # --changes defaults to --builds
        # every builder: numbers 0..49 with started_at increasing, next_number after them
        for b in conn.execute(sa.select(schema.builders)).all():
            rows = conn.execute(sa.select(schema.builds.c.number, schema.builds.c.started_at)
                                .where(schema.builds.c.builderid == b.id)
                                .order_by(schema.builds.c.number)).all()
            assert [r.number for r in rows] == list(range(BUILDS))
            starts = [r.started_at for r in rows]
            assert starts == sorted(starts) and len(set(starts)) == BUILDS
            assert b.next_number == BUILDS
        # no dangling reference anywhere
        for (child, column), parent in bulk_history.REFS.items():
            c = schema.metadata.tables[child]
            p = schema.metadata.tables[parent]
            pk = "changeid" if parent == "changes" else "id"
            dangling = conn.execute(sa.select(sa.func.count()).select_from(
                c.outerjoin(p, c.c[column] == p.c[pk])).where(p.c[pk].is_(None))).scalar()
            assert dangling == 0, f"{child}.{column} -> {parent}"
        # the properties follow the copy: buildnumber = number, revision = the sourcestamp's
        props = conn.execute(
            sa.select(schema.builds.c.number, schema.build_properties.c.name,
                      schema.build_properties.c.value, schema.sourcestamps.c.revision)
            .join(schema.build_properties,
                  schema.build_properties.c.buildid == schema.builds.c.id)
            .join(schema.buildrequests,
                  schema.buildrequests.c.id == schema.builds.c.buildrequestid)
            .join(schema.buildset_sourcestamps, schema.buildset_sourcestamps.c.buildsetid
                  == schema.buildrequests.c.buildsetid)
            .join(schema.sourcestamps, schema.sourcestamps.c.id
                  == schema.buildset_sourcestamps.c.sourcestampid)
            .where(schema.build_properties.c.name.in_(["buildnumber", "revision"]))).all()
        assert props
        for r in props:
            expected = str(r.number) if r.name == "buildnumber" else (
                f'"{r.revision}"' if r.revision else "null")
            assert r.value == expected
        # revisions stay distinct across copies
        revs = [r for (r,) in conn.execute(sa.select(schema.changes.c.revision))]
        assert len(set(revs)) == len(revs) == BUILDS


def _shape(doc: dict[str, Any]) -> dict[str, Any]:
    """What must be equal between a build and its copy (not numbers, times, revisions)."""
    return {
        "results": doc["results"], "text": doc["text"], "reason": doc["reason"],
        "slave": doc["slave"], "blame": doc["blame"],
        "steps": [(s["name"], s["results"], s["text"], [n for n, _u in s["logs"]],
                   s["isFinished"]) for s in doc["steps"]],
        "properties": sorted((n, src) for n, _v, src in doc["properties"]),
        "changes": [len(ss["changes"]) for ss in doc["sourceStamps"]],
    }


def test_pages_show_replicated_builds_like_engine_builds(bulk: Any) -> None:
    _master, _plan, app = bulk
    client = app.test_client()
    template_number, copy_number = 3, 3 + 4 * TEMPLATE  # build 43 is copy 4 of build 3
    engine_made = client.get(f"/json/builders/builder-00/builds/{template_number}").get_json()
    copied = client.get(f"/json/builders/builder-00/builds/{copy_number}").get_json()
    assert copied["number"] == copy_number
    assert _shape(copied) == _shape(engine_made)
    assert copied["times"][0] > engine_made["times"][0]
    assert copied["sourceStamps"][0]["revision"] != engine_made["sourceStamps"][0]["revision"]
    assert [s["name"] for s in copied["steps"]] == list(bulk_history.STEPS)

    last = client.get("/json/builders/builder-00/builds/-1")
    assert last.status_code == 200 and last.get_json()["number"] == BUILDS - 1

    page = client.get(f"/builders/builder-00/builds/{copy_number}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    for step in bulk_history.STEPS:
        assert f"/builders/builder-00/builds/{copy_number}/steps/{step}/logs/stdio" in html \
            or copied["steps"][bulk_history.STEPS.index(step)]["isStarted"] is False
    log = client.get(f"/builders/builder-00/builds/{copy_number}/steps/update/logs/stdio/text")
    assert log.status_code == 200 and "update: line 0 of output" in log.get_data(as_text=True)

    builder_page = client.get("/builders/builder-00")
    assert builder_page.status_code == 200
    assert f"/builders/builder-00/builds/{BUILDS - 1}" in builder_page.get_data(as_text=True)
    assert client.get("/builders").status_code == 200


def test_same_seed_same_history_and_no_top_up(tmp_path: Path) -> None:
    prints = []
    for name in ("a", "b"):
        master, _plan = bulk_history.run(["--basedir", str(tmp_path / name)] + ARGS)
        prints.append(bulk_history.fingerprint(master))
        master.db.dispose()
    assert prints[0] == prints[1]
    with pytest.raises(SystemExit, match="not empty"):
        bulk_history.run(["--basedir", str(tmp_path / "a")] + ARGS)
    with pytest.raises(SystemExit, match="multiple"):
        bulk_history.run(["--basedir", str(tmp_path / "c"), "--builders", "2", "--builds",
                          "50", "--template-builds", "7"])


def _migration_triggers() -> dict[str, list[str]]:
    """The doc_version triggers the migration defines, per dialect."""
    path = next((Path(schema.__file__).parent / "migrations" / "versions")
                .glob("*_build_doc_versions.py"))
    spec = importlib.util.spec_from_file_location("build_doc_versions_migration", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {"sqlite": [f"build_doc_{n}" for n in module.SQLITE_TRIGGERS],
            "postgresql": [f"build_doc_{n}" for n in module.PG_TRIGGERS]}


def _doc_version(conn: sa.Connection, number: int) -> int:
    return int(conn.execute(
        sa.select(schema.builds.c.doc_version).join(
            schema.builders, schema.builders.c.id == schema.builds.c.builderid)
        .where(schema.builders.c.name == "builder-00", schema.builds.c.number == number))
        .scalar_one())


def test_doc_version_triggers_are_back_and_json_follows_changes(bulk: Any) -> None:
    """The copy runs with the doc_version triggers off: afterwards they are all there and
    enabled again, a copy carries its template build's version, and a change to a copied
    build's steps, logs or properties reaches its /json document at once."""
    master, _plan, app = bulk
    dialect = master.db.engine.dialect.name
    with master.db.read() as conn:
        if dialect == "sqlite":
            present = sorted(conn.execute(sa.text(
                "SELECT name FROM sqlite_master WHERE type = 'trigger'")).scalars())
        else:
            rows = conn.execute(sa.text(
                "SELECT tgname, tgenabled FROM pg_trigger WHERE NOT tgisinternal")).all()
            assert {enabled for _name, enabled in rows} == {"O"}
            present = sorted(name for name, _enabled in rows)
        assert present == sorted(_migration_triggers()[dialect])
        template_number, copy_number = 3, 3 + 4 * TEMPLATE
        assert _doc_version(conn, copy_number) == _doc_version(conn, template_number) > 0
        buildid = conn.execute(
            sa.select(schema.builds.c.id).join(
                schema.builders, schema.builders.c.id == schema.builds.c.builderid)
            .where(schema.builders.c.name == "builder-00",
                   schema.builds.c.number == copy_number)).scalar_one()
        stepid = conn.execute(sa.select(schema.steps.c.id).where(
            schema.steps.c.buildid == buildid, schema.steps.c.name == "lint")).scalar_one()

    client = app.test_client()
    url = f"/json/builders/builder-00/builds/{copy_number}"
    before = client.get(url).get_json()
    assert client.get(url).get_json() == before  # the second answer comes from the cache
    lint = before["steps"][bulk_history.STEPS.index("lint")]

    with master.db.write() as conn:  # a hand-made fix, as any writer could make it
        conn.execute(schema.steps.update().where(schema.steps.c.id == stepid)
                     .values(text=json.dumps(["lint", "rechecked"])))
    steps = client.get(url).get_json()["steps"]
    assert steps[bulk_history.STEPS.index("lint")]["text"] == ["lint", "rechecked"]
    assert steps[bulk_history.STEPS.index("lint")]["text"] != lint["text"]

    with master.db.write() as conn:
        conn.execute(schema.logs.update().where(schema.logs.c.stepid == stepid,
                                                schema.logs.c.name == "stdio")
                     .values(name="stdio-old"))
    logs = client.get(url).get_json()["steps"][bulk_history.STEPS.index("lint")]["logs"]
    assert "stdio-old" in [name for name, _url in logs]

    with master.db.write() as conn:
        conn.execute(schema.build_properties.delete().where(
            schema.build_properties.c.buildid == buildid,
            schema.build_properties.c.name == "buildnumber"))
    props = client.get(url).get_json()["properties"]
    assert "buildnumber" not in [name for name, _v, _src in props]
    assert "buildnumber" in [name for name, _v, _src in before["properties"]]
