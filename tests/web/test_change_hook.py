"""/change_hook/base as a script or `bbweb sendchange` meets it."""

from __future__ import annotations

import json

import sqlalchemy as sa

from bbweb.db.schema import buildrequests, change_files, change_properties, changes
from tests.conftest import DEFAULT_CFG


def count(master, table) -> int:
    with master.db.read() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


def test_base_hook_stores_change_and_schedules(make_master):
    master = make_master(DEFAULT_CFG.replace(
        "change_hook_dialects={'base': True}",
        "change_hook_dialects={'base': {'allow_properties': True}}"))
    client = master.app().test_client()
    resp = client.post("/change_hook/base", data={
        "author": "Alice <alice@example.org>", "comments": "fix the frobnicator",
        "revision": "abc123", "branch": "", "files": json.dumps(["src/a.c", "README"]),
        "properties": json.dumps({"ticket": 42, "urgent": True}), "when": "1700000000.5",
        "category": "bugfix", "revlink": "http://vcs/abc123", "repository": "git://r",
        "project": "frob", "codebase": "",
    })
    assert resp.status_code == 202, resp.data
    with master.db.read() as conn:
        ch = conn.execute(sa.select(changes)).one()
        files = [r.filename for r in conn.execute(sa.select(change_files))]
        props = {r.name: json.loads(r.value) for r in conn.execute(sa.select(change_properties))}
        brs = conn.execute(sa.select(buildrequests)).all()
    assert ch.author == "Alice <alice@example.org>"
    assert ch.comments == "fix the frobnicator"
    assert ch.revision == "abc123" and ch.branch is None
    assert ch.when_timestamp == 1700000000.5
    assert (ch.category, ch.revlink, ch.repository, ch.project) == (
        "bugfix", "http://vcs/abc123", "git://r", "frob")
    assert files == ["src/a.c", "README"]
    assert props == {"ticket": 42, "urgent": True}
    assert len(brs) == 2  # the 'all' scheduler feeds runtests and docs


def test_who_is_accepted_for_author(master, client):
    assert client.get("/change_hook/base?who=bob&comments=x").status_code == 405  # POST only
    assert client.post("/change_hook/base?who=bob&comments=x").status_code == 202
    with master.db.read() as conn:
        assert conn.execute(sa.select(changes.c.author)).scalar_one() == "bob"


def test_bare_change_hook_means_base(master, client):
    assert client.post("/change_hook", data={"author": "carol"}).status_code == 202
    assert count(master, changes) == 1


def test_bad_files_json_is_400_and_nothing_stored(master, client):
    resp = client.post("/change_hook/base", data={"author": "a", "files": "[not json"})
    assert resp.status_code == 400
    assert b"'files' is not valid JSON" in resp.data
    resp = client.post("/change_hook/base", data={"author": "a", "properties": "[1, 2]"})
    assert resp.status_code == 400
    assert b"'properties' must be a JSON object" in resp.data
    resp = client.post("/change_hook/base", data={"author": "a", "when": "yesterday"})
    assert resp.status_code == 400
    assert count(master, changes) == 0
    assert count(master, buildrequests) == 0


def test_missing_author_is_400(master, client):
    resp = client.post("/change_hook/base", data={"comments": "anonymous"})
    assert resp.status_code == 400
    assert b"author" in resp.data


def test_dialect_not_enabled_is_404(master, client):
    resp = client.post("/change_hook/github", data={"payload": "{}"})
    assert resp.status_code == 404
    assert b"'github'" in resp.data


def test_json_body_accepted(master, client):
    resp = client.post("/change_hook/base", json={"author": "dave", "files": ["x"]})
    assert resp.status_code == 202
    assert count(master, changes) == 1


def test_change_hook_auth(make_master):
    cfg = DEFAULT_CFG.replace(
        "change_hook_dialects={'base': True}",
        "change_hook_dialects={'base': True}, change_hook_auth=('hookuser', 's3cret')")
    m = make_master(cfg)
    client = m.app().test_client()
    resp = client.post("/change_hook/base", data={"author": "a"})
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"].startswith("Basic")
    resp = client.post("/change_hook/base", data={"author": "a"},
                       auth=("hookuser", "wrong"))
    assert resp.status_code == 401
    resp = client.post("/change_hook/base", data={"author": "a"},
                       auth=("hookuser", "s3cret"))
    assert resp.status_code == 202


def test_change_hook_auth_file(make_master):
    cfg = DEFAULT_CFG.replace(
        "change_hook_dialects={'base': True}",
        "change_hook_dialects={'base': True}, change_hook_auth=['file:hook.passwd']")
    m = make_master(cfg)
    (m.basedir / "hook.passwd").write_text("# users\nhooker:pa:ss\n")
    client = m.app().test_client()
    assert client.post("/change_hook/base", data={"author": "a"}).status_code == 401
    assert client.post("/change_hook/base", data={"author": "a"},
                       auth=("hooker", "pa:ss")).status_code == 202


def test_no_dialects_means_no_change_hook(make_master):
    m = make_master(DEFAULT_CFG.replace("change_hook_dialects={'base': True}", ""))
    client = m.app().test_client()
    assert client.post("/change_hook/base", data={"author": "a"}).status_code == 404
    assert count(m, changes) == 0
