"""A push of many commits through ``/change_hook/github`` is written in bulk (one insert per
table, the events in one block): every change is still stored, scheduled and in the event
outbox, in one transaction; a failure part-way through stores nothing at all."""

from __future__ import annotations

import hashlib
import json
import uuid

import sqlalchemy as sa

from bbweb.db.schema import (
    buildrequests,
    buildsets,
    change_files,
    changes,
    event_counter,
    events,
    hook_deliveries,
    sourcestamp_changes,
)
from tests.conftest import DEFAULT_CFG
from tests.plugins.hooks import sign

SECRET = "intake-secret"
REPO_URL = "https://github.com/example/intake"


def intake_cfg(filter_fn: str = "None") -> str:
    """DEFAULT_CFG with the signed github dialect; the 'all' scheduler (both builders)
    passes its changes through ``filter_fn`` (Python source) when given."""
    cfg = DEFAULT_CFG.replace("change_hook_dialects={'base': True}",
                              f"change_hook_dialects={{'github': {{'secret': {SECRET!r}}}}}")
    return cfg.replace(
        "SingleBranchScheduler(name='all', branch=None,",
        f"SingleBranchScheduler(name='all', change_filter=ChangeFilter(branch='main', "
        f"filter_fn={filter_fn}),")


def push(messages: list[str]) -> bytes:
    """A GitHub push of one commit per message onto refs/heads/main."""
    ids = [hashlib.sha1(f"{uuid.uuid4()}".encode()).hexdigest() for _ in messages]
    author = {"name": "Dev", "email": "dev@example.org", "username": "dev"}
    commits = [{"id": cid, "distinct": True, "message": message,
                "timestamp": "2024-05-15T15:19:25-07:00", "url": f"{REPO_URL}/commit/{cid}",
                "author": author, "committer": author, "added": [f"new{i}.c"],
                "removed": [], "modified": ["README.md"]}
               for i, (cid, message) in enumerate(zip(ids, messages, strict=True))]
    return json.dumps({
        "ref": "refs/heads/main", "before": "1" * 40, "after": ids[-1], "deleted": False,
        "commits": commits, "head_commit": commits[-1],
        "repository": {"name": "intake", "url": REPO_URL, "html_url": REPO_URL},
    }).encode()


def deliver(client, body: bytes, delivery: str):  # type: ignore[no-untyped-def]
    return client.post("/change_hook/github", data=body, content_type="application/json",
                       headers={"X-GitHub-Event": "push", "X-GitHub-Delivery": delivery,
                                "X-Hub-Signature-256": "sha256=" + sign(SECRET, body,
                                                                         "sha256")})


def snapshot(master) -> dict[str, int]:  # type: ignore[no-untyped-def]
    with master.db.read() as conn:
        out = {t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
               for t in (changes, change_files, buildsets, buildrequests, events,
                         hook_deliveries, sourcestamp_changes)}
        out["counter"] = conn.execute(sa.select(event_counter.c.value)).scalar_one()
    return out


def test_push_of_many_commits_stores_schedules_and_emits_each(make_master):
    master = make_master(intake_cfg())
    client = master.app().test_client()
    before = snapshot(master)
    messages = [f"commit {i}" for i in range(6)]
    resp = deliver(client, push(messages), "delivery-many")
    assert resp.status_code == 202, resp.data
    ids = [int(i) for i in resp.data.decode().split(":", 1)[1].split()]
    assert len(ids) == 6 and ids == sorted(ids)

    with master.db.read() as conn:
        rows = conn.execute(sa.select(changes).order_by(changes.c.changeid)).all()
        files = conn.execute(sa.select(change_files.c.changeid, change_files.c.filename)
                             .order_by(change_files.c.id)).all()
        links = dict(conn.execute(sa.select(sourcestamp_changes.c.changeid,
                                            sourcestamp_changes.c.sourcestampid)).all())
        requests = conn.execute(sa.select(buildrequests.c.buildsetid)).scalars().all()
        evs = conn.execute(sa.select(events.c.id, events.c.kind, events.c.payload)
                           .where(events.c.id > before["counter"])
                           .order_by(events.c.id)).all()
        counter = conn.execute(sa.select(event_counter.c.value)).scalar_one()
        delivery = conn.execute(sa.select(hook_deliveries.c.changeids)).scalar_one()

    # stored, in the push's order, with their files
    assert [r.changeid for r in rows] == ids
    assert [r.comments for r in rows] == messages
    assert files == [row for i, cid in enumerate(ids)
                     for row in ((cid, f"new{i}.c"), (cid, "README.md"))]
    # scheduled: each change alone in its own buildset, one request per builder
    assert sorted(links) == ids and len(set(links.values())) == 6
    assert len(requests) == 12 and len(set(requests)) == 6
    # in the outbox: one change.new per change, a buildset.new and two buildrequest.new
    # per buildset, with ids that follow the counter without a gap
    assert [e.id for e in evs] == list(range(before["counter"] + 1, counter + 1))
    kinds = [e.kind for e in evs]
    assert kinds.count("change.new") == 6 and kinds.count("buildset.new") == 6
    assert kinds.count("buildrequest.new") == 12
    assert [json.loads(e.payload)["changeid"] for e in evs if e.kind == "change.new"] == ids
    # a buildset's events follow the change.new of the change it builds
    first_change_event = min(e.id for e in evs if e.kind == "change.new")
    assert all(e.id > first_change_event for e in evs if e.kind != "change.new")
    assert json.loads(delivery) == ids


def test_a_failure_part_way_through_a_push_stores_nothing(make_master):
    # the scheduler's filter raises on the third commit, after two changes were scheduled
    # in the same transaction
    master = make_master(intake_cfg(
        "lambda ch: 1 // (0 if 'boom' in ch.comments else 1) == 1"))
    client = master.app().test_client()
    before = snapshot(master)
    resp = deliver(client, push(["one", "two", "boom", "four"]), "delivery-boom")
    assert resp.status_code == 500
    assert resp.data == b"Error processing changes.\n"
    assert snapshot(master) == before  # no change, buildset, event or delivery row

    # nothing was claimed either: the same delivery, redelivered without the bad
    # commit, is stored whole
    resp = deliver(client, push(["one", "two", "three"]), "delivery-boom")
    assert resp.status_code == 202, resp.data
    after = snapshot(master)
    assert after["changes"] == before["changes"] + 3
    assert after["buildsets"] == before["buildsets"] + 3
    assert after["buildrequests"] == before["buildrequests"] + 6
    assert after["events"] - before["events"] == after["counter"] - before["counter"] == 12
    assert after["hook_deliveries"] == before["hook_deliveries"] + 1


def test_unimportant_commits_of_one_push_wait_for_the_next_important_one(make_master):
    # one transaction stores the four changes; the scheduler's waiting changes must be
    # seen as they are after each (none, then b, then none, then d)
    cfg = intake_cfg().replace(
        "change_filter=ChangeFilter(",
        "fileIsImportant=lambda ch: 'important' in ch.comments, change_filter=ChangeFilter(")
    master = make_master(cfg)
    client = master.app().test_client()
    resp = deliver(client, push(["a important", "b", "c important", "d"]), "delivery-mixed")
    assert resp.status_code == 202, resp.data
    a, b, c, d = [int(i) for i in resp.data.decode().split(":", 1)[1].split()]
    with master.db.read() as conn:
        built = conn.execute(sa.select(sourcestamp_changes.c.sourcestampid,
                                       sourcestamp_changes.c.changeid)).all()
        waiting = conn.execute(sa.text("SELECT changeid FROM scheduler_changes")
                               ).scalars().all()
    together: dict[int, set[int]] = {}
    for ssid, changeid in built:
        together.setdefault(ssid, set()).add(changeid)
    assert sorted(together.values(), key=min) == [{a}, {b, c}]
    assert waiting == [d]

    # the next push's important commit takes d along
    resp = deliver(client, push(["e important"]), "delivery-next")
    [e] = [int(i) for i in resp.data.decode().split(":", 1)[1].split()]
    with master.db.read() as conn:
        linked = conn.execute(sa.select(sourcestamp_changes.c.changeid).where(
            sourcestamp_changes.c.sourcestampid == sa.select(
                sourcestamp_changes.c.sourcestampid).where(
                    sourcestamp_changes.c.changeid == e).scalar_subquery())).scalars().all()
    assert sorted(linked) == [d, e]
