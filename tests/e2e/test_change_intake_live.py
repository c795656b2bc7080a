"""Change intake on a real gunicorn (two processes of threads, as ``bbweb start`` runs it),
where concurrent requests of one process are stored together (group commit): every
change answered 202 is stored once, scheduled and in the event outbox, in id order; a
request refused among valid ones gets its own answer and the others land; and killing
the web server during intake loses no change that was answered."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from bbweb.db.schema import buildrequests, changes, event_counter, events, hook_deliveries
from bbweb.launcher import gunicorn_command
from bbweb.mastercfg.webstatus import ListenAddress
from tests.e2e.conftest import LiveMaster, start_live_master, stop_live_master, wait_for
from tests.plugins.hooks import sign
from tests.web.test_change_intake import push

CFG = """
from bbweb.config import *
c = BuildmasterConfig = {}
c['db_url'] = DB_URL
c['slaves'] = [BuildSlave('s1', 'pw')]
c['builders'] = [BuilderConfig(name='b', slavenames=['s1'], factory=BuildFactory())]
def refuse_boom(change):
    if 'boom' in change.comments:
        raise ValueError('this master refuses changes that say boom')
    return True
c['schedulers'] = [SingleBranchScheduler(name='all', builderNames=['b'],
                                         change_filter=ChangeFilter(filter_fn=refuse_boom))]
c['status'] = [WebStatus(http_port=PORT, change_hook_dialects={
    'base': True, 'github': {'secret': 'live-intake-secret'}})]
"""
SECRET = "live-intake-secret"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, e2e_db_url: str) -> Iterator[LiveMaster]:
    master = start_live_master(tmp_path_factory.mktemp("intake"), CFG, e2e_db_url,
                               daemon=False)
    yield master
    stop_live_master(master)


_local = threading.local()


def post(live: LiveMaster, comments: str, **fields: str) -> requests.Response:
    """One ``bbweb sendchange``-like POST, on this thread's keep-alive session."""
    session = getattr(_local, "session", None)
    if session is None:
        session = _local.session = requests.Session()
    return session.post(live.url + "/change_hook/base", timeout=60, data={
        "author": "dev <dev@example.org>", "comments": comments, "branch": "main",
        "revision": f"rev-{comments}", "files": json.dumps(["a.c"]), **fields})


def answered_ids(resp: requests.Response) -> list[int]:
    assert resp.status_code == 202, resp.text
    return [int(i) for i in resp.text.split(":", 1)[1].split()]


def in_outbox_in_order(live: LiveMaster, event_ids: list[int], ids: list[int]) -> bool:
    """Each change's ``change.new`` is in the outbox once. On SQLite, whose writers take
    turns, the outbox order is the change id order; on PostgreSQL ids come from a sequence
    when a change is inserted and event ids when its transaction ends, so two concurrent
    transactions may take them in different orders (the outbox is in commit order)."""
    if live.db.is_sqlite:
        return event_ids == ids
    return sorted(event_ids) == ids


def stored(live: LiveMaster, ids: list[int]) -> dict[str, Any]:
    """What the database holds for the change ids: their comments, how many build
    requests their source stamps got, the changeids of their ``change.new`` events in
    event order, and whether the outbox has no gap."""
    with live.db.read() as conn:
        rows = conn.execute(sa.select(changes.c.changeid, changes.c.comments)
                            .where(changes.c.changeid.in_(ids))).all()
        new = [json.loads(p) for p in conn.execute(
            sa.select(events.c.payload).where(events.c.kind == "change.new")
            .order_by(events.c.id)).scalars()]
        requests_ = conn.execute(sa.text(
            "SELECT count(*) FROM buildrequests br JOIN buildset_sourcestamps bss "
            "ON bss.buildsetid = br.buildsetid JOIN sourcestamp_changes sc "
            "ON sc.sourcestampid = bss.sourcestampid WHERE sc.changeid IN "
            f"({','.join(str(int(i)) for i in ids) or 'NULL'})")).scalar_one()
        count = conn.execute(sa.select(sa.func.count()).select_from(events)).scalar_one()
        counter = conn.execute(sa.select(event_counter.c.value)).scalar_one()
    wanted = set(ids)
    return {"comments": {r.changeid: r.comments for r in rows}, "requests": requests_,
            "event_ids": [e["changeid"] for e in new if e["changeid"] in wanted],
            "outbox_whole": count == counter}


def test_many_concurrent_changes_are_each_stored_once_scheduled_and_in_order(live):
    names = [f"many-{i}" for i in range(160)]
    with ThreadPoolExecutor(8) as pool:
        answers = dict(zip(names, pool.map(lambda n: post(live, n), names), strict=True))
    ids = {name: answered_ids(resp) for name, resp in answers.items()}
    assert all(len(v) == 1 for v in ids.values())
    flat = sorted(i for v in ids.values() for i in v)
    assert len(set(flat)) == len(names)
    db = stored(live, flat)
    assert db["comments"] == {ids[n][0]: n for n in names}  # each stored once, as sent
    assert db["requests"] == len(names)  # each scheduled (one builder)
    assert in_outbox_in_order(live, db["event_ids"], flat)
    assert db["outbox_whole"]


def test_refused_requests_among_valid_ones_get_their_own_answer(live):
    names = [f"mixed-{i}" for i in range(60)]
    bad = {7: "boom-7", 23: "boom-23", 41: "nul-41"}  # refused in the transaction / before
    sent = [bad.get(i, n) for i, n in enumerate(names)]

    def send(comments: str) -> requests.Response:
        if comments.startswith("nul"):
            return post(live, comments, project="bad\x00name")
        return post(live, comments)

    with ThreadPoolExecutor(8) as pool:
        answers = dict(zip(sent, pool.map(send, sent), strict=True))
    for comments in ("boom-7", "boom-23"):
        assert answers[comments].status_code == 400
        assert "refuses changes that say boom" in answers[comments].text
    assert answers["nul-41"].status_code == 400
    good = [c for c in sent if c in names]
    ids = sorted(answered_ids(answers[c])[0] for c in good)
    db = stored(live, ids)
    assert sorted(db["comments"].values()) == sorted(good)
    assert db["requests"] == len(good)
    assert in_outbox_in_order(live, db["event_ids"], ids)
    with live.db.read() as conn:
        refused = conn.execute(sa.select(sa.func.count()).select_from(changes).where(
            changes.c.comments.in_(["boom-7", "boom-23", "nul-41"]))).scalar_one()
    assert refused == 0
    assert db["outbox_whole"]


def deliver(live: LiveMaster, delivery: str, body: bytes) -> requests.Response:
    """One signed GitHub push delivery, on this thread's keep-alive session."""
    session = getattr(_local, "session", None)
    if session is None:
        session = _local.session = requests.Session()
    return session.post(live.url + "/change_hook/github", data=body, timeout=60, headers={
        "Content-Type": "application/json", "X-GitHub-Event": "push",
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": "sha256=" + sign(SECRET, body, "sha256")})


def test_concurrent_deliveries_and_redeliveries_are_each_stored_once(live):
    # each delivery (two commits) is sent three times, the copies interleaved with the
    # other deliveries, so that copies of one delivery and other deliveries meet in one
    # group; one copy stores it, the others are told it was processed already
    bodies = {f"live-{i}": push([f"live-{i}-a", f"live-{i}-b"]) for i in range(40)}
    sends = [(d, body) for _ in range(3) for d, body in bodies.items()]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda job: (job[0], deliver(live, *job)), sends))
    stored_by: dict[str, list[int]] = {}
    for delivery, resp in answers:
        if resp.status_code == 202:
            assert delivery not in stored_by, f"{delivery} stored twice"
            stored_by[delivery] = answered_ids(resp)
        else:
            assert (resp.status_code, resp.text) == (200, "already processed\n")
    assert sorted(stored_by) == sorted(bodies)
    flat = sorted(i for ids in stored_by.values() for i in ids)
    assert len(flat) == 2 * len(bodies) == len(set(flat))
    db = stored(live, flat)
    assert db["comments"] == {ids[k]: f"{d}-{'ab'[k]}"
                              for d, ids in stored_by.items() for k in (0, 1)}
    assert db["requests"] == len(flat)  # each change scheduled once
    assert in_outbox_in_order(live, db["event_ids"], flat)
    assert db["outbox_whole"]
    with live.db.read() as conn:
        claimed = dict(conn.execute(sa.select(hook_deliveries.c.delivery_id,
                                              hook_deliveries.c.changeids).where(
            hook_deliveries.c.dialect == "github")).all())
    assert {d: json.loads(ids) for d, ids in claimed.items()} == stored_by


def test_killing_the_web_server_during_intake_loses_nothing_answered(live):
    stop = threading.Event()
    answered: list[int] = []
    lock = threading.Lock()

    def sender(k: int) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            try:
                resp = post(live, f"kill-{k}-{n}")
            except requests.RequestException:
                return  # the server is gone
            if resp.status_code == 202:
                with lock:
                    answered.extend(answered_ids(resp))

    threads = [threading.Thread(target=sender, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: len(answered) >= 100, 60, what="100 changes answered")
        live.stop("web", sig=signal.SIGKILL)  # every gunicorn process, mid-request
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    got = sorted(answered)
    db = stored(live, got)
    assert sorted(db["comments"]) == got
    assert db["requests"] == len(got)
    assert in_outbox_in_order(live, db["event_ids"], got)
    assert db["outbox_whole"]
    restart_web(live)


def restart_web(live: LiveMaster) -> None:
    port = int(live.url.rsplit(":", 1)[1])
    live.spawn("web", gunicorn_command(Path(live.basedir), ListenAddress("127.0.0.1", port),
                                       2))

    def up() -> bool:
        try:
            return requests.get(live.url + "/health", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    wait_for(up, 60, what="the web server to answer again")
    assert post(live, "after-restart").status_code == 202
    with live.db.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(buildrequests)
                            ).scalar_one() > 0
