"""A web process keeps the /json documents of builds it served (encoded, checked against the
build's row on every request): what it answers must follow every change to a build, made
by whichever process, exactly as a process that never saw the build answers.

Two apps stand for two gunicorn workers (each its own kept documents); the engine, called
directly, stands for the daemon and the workers' reports; a third app made after each
change, with nothing kept, gives the expected answer.
"""

from __future__ import annotations

import sqlalchemy as sa

from bbweb.db.schema import slaves, steps
from bbweb.engine import builds as eb
from bbweb.engine import slaves as es
from bbweb.engine.logs import create_log
from tests.actions.conftest import OPEN_CFG, post
from tests.support.history import claim, force, run

B = "/json/builders/runtests/builds"
SELECT = B + "?select=-1&select=-2&select=-3&select=0"
URLS = [B + "/0", B + "/-1", SELECT, B + "/_all?max=5", B + "/-1?filter=1",
        B + "/0/steps", B + "/-1/source_stamp", "/json/slaves", "/json/slaves/slave1?numbuilds=1",
        "/json/builders/runtests"]


def answers(app, urls: list[str] = URLS) -> dict[str, bytes]:  # type: ignore[no-untyped-def]
    client = app.test_client()
    out = {}
    for url in urls:
        resp = client.get(url)
        assert resp.status_code in (200, 404), (url, resp.data[:200])
        out[url] = resp.data
    return out


class Web:
    """Two long-lived web processes and the check that both answer as a fresh one."""

    def __init__(self, master, urls: list[str] = URLS) -> None:  # type: ignore[no-untyped-def]
        self.master = master
        self.urls = urls
        self.apps = [master.app(), master.app()]

    def same_as_fresh(self) -> dict[str, bytes]:
        fresh = self.master.app()
        try:
            expected = answers(fresh, self.urls)
        finally:
            fresh.extensions["bbweb"].db.dispose()
        for app in self.apps:
            assert answers(app, self.urls) == expected
        return expected

    def close(self) -> None:
        for app in self.apps:
            app.extensions["bbweb"].db.dispose()


def doc(app, url: str):  # type: ignore[no-untyped-def]
    resp = app.test_client().get(url)
    assert resp.status_code == 200, resp.data[:200]
    return resp.get_json()


def test_kept_documents_follow_every_change_to_a_build(make_master):
    master = make_master(OPEN_CFG)
    web = Web(master)
    try:
        force(master, "runtests", reason="first")
        first = claim(master, "slave1", 100.0)
        spec = None
        with master.db.write() as conn:
            spec = eb.next_step(conn, master.config, first.buildid, now=100.0)
        assert spec is not None
        web.same_as_fresh()  # both processes keep the running build
        running = doc(web.apps[0], B + "/0")
        assert running["results"] is None and running["currentStep"]["name"] == spec["name"]

        # a step finishes, setting properties
        with master.db.write() as conn:
            eb.append_step_log(conn, master.config, spec["id"], "stdio", [("o", "ok\n")])
            eb.finish_step(conn, master.config, spec["id"], 0, properties={"got": "r1"},
                           now=101.0)
        web.same_as_fresh()
        after_step = doc(web.apps[0], B + "/0")
        assert after_step["steps"][0]["isFinished"] is True
        assert any(p[:2] == ["got", "r1"] for p in after_step["properties"])

        # the build finishes
        run(master, first.buildid, {}, 102.0)
        finished = web.same_as_fresh()
        build0 = doc(web.apps[1], B + "/0")
        assert build0["results"] == 0 and build0["times"][1] is not None

        # a property set on the finished build (a rare operation, but a write)
        with master.db.write() as conn:
            eb.set_properties(conn, first.buildid, {"got": ("r2", "Fix")})
        web.same_as_fresh()
        assert any(p == ["got", "r2", "Fix"] for p in doc(web.apps[0], B + "/0")["properties"])

        # a log added to a finished step, and a hand-made SQL change to a step
        with master.db.write() as conn:
            stepid = conn.execute(sa.select(steps.c.id).where(steps.c.buildid == first.buildid)
                                  .order_by(steps.c.number)).scalars().first()
            create_log(conn, stepid, "late.txt")
        web.same_as_fresh()
        assert "late.txt" in [lg[0] for lg in doc(web.apps[1], B + "/0")["steps"][0]["logs"]]
        with master.db.write() as conn:
            conn.execute(steps.update().where(steps.c.id == stepid)
                         .values(text='["fixed", "by", "hand"]'))
        web.same_as_fresh()
        assert doc(web.apps[0], B + "/0")["steps"][0]["text"] == ["fixed", "by", "hand"]
        assert finished != web.same_as_fresh()

        # a new build, stopped from the other process's page while it runs
        force(master, "runtests", reason="second")
        second = claim(master, "slave2", 200.0)
        web.same_as_fresh()
        assert doc(web.apps[0], B + "/-1")["number"] == 1
        client = web.apps[1].test_client()
        assert post(client, "/builders/runtests/builds/1/stop",
                    {"comments": "enough"}).status_code in (302, 303)
        run(master, second.buildid, {}, 201.0)
        web.same_as_fresh()
        stopped = doc(web.apps[0], B + "/-1")
        assert stopped["number"] == 1 and stopped["results"] is not None
        assert stopped["results"] != 0

        # rebuilt from the page: a new build 2; build 0 keeps its document
        before = doc(web.apps[0], B + "/0")
        assert post(client, "/builders/runtests/builds/0/rebuild",
                    {"comments": "again"}).status_code in (302, 303)
        third = claim(master, "slave1", 300.0)
        run(master, third.buildid, {"hello": 1}, 301.0)
        latest = web.same_as_fresh()
        assert doc(web.apps[0], B + "/-1")["number"] == 2
        assert doc(web.apps[1], B + "/0") == before
        selected = doc(web.apps[1], SELECT)
        assert [selected[k]["number"] for k in ("-1", "-2", "-3", "0")] == [2, 1, 0, 0]
        assert latest[SELECT] == web.apps[0].test_client().get(SELECT).data
    finally:
        web.close()


def test_a_select_below_kept_builds_reads_their_details_in_one_batch(make_master):
    """Paths below builds whose documents are kept (their steps, their source stamps)
    still cost a fixed number of statements, however many builds they name."""
    from tests.support.querycount import counting

    master = make_master(OPEN_CFG)
    app = master.app()
    try:
        for i in range(4):
            force(master, "runtests", reason=f"r{i}")
            run(master, claim(master, "slave1", 100.0 * (i + 1)).buildid, {}, 100.0 * i + 1)
        client = app.test_client()
        one = B + "?select=-1&select=-1/steps"
        four = B + "?" + "&".join(f"select=-{i}&select=-{i}/steps&select=-{i}/source_stamp"
                                  for i in range(1, 5))
        counts = {}
        for url in (one, four):
            client.get(B + "?" + "&".join(f"select=-{i}" for i in range(1, 5)))  # all kept
            with counting(app) as seen:
                resp = client.get(url)
            assert resp.status_code == 200
            counts[url] = len(seen)
        assert counts[one] == counts[four], counts
        body = client.get(four).get_json()
        assert [body[f"-{i}"]["number"] for i in range(1, 5)] == [3, 2, 1, 0]
        assert all(body[f"-{i}"]["steps"]["0"]["name"] == "hello" for i in range(1, 5))
    finally:
        app.extensions["bbweb"].db.dispose()


def test_kept_documents_stay_within_their_bytes(make_master):
    """The kept documents of a process are bounded in bytes (the least recently used
    go first), and answers are the same whatever was dropped."""
    master = make_master(OPEN_CFG)
    app = master.app()
    try:
        for i in range(5):
            force(master, "runtests", reason=f"r{i}")
            run(master, claim(master, "slave1", 100.0 * (i + 1)).buildid, {}, 100.0 * i + 1)
        client = app.test_client()
        one = len(client.get(B + "/0").data)
        kept = app.extensions["bbweb"].build_docs
        kept.max_bytes = 2 * one + one // 2  # room for two documents
        url = B + "?" + "&".join(f"select={n}" for n in range(5))
        first = client.get(url).get_json()
        assert len(kept) == 2
        assert client.get(url).get_json() == first
        assert [first[str(n)]["number"] for n in range(5)] == list(range(5))
        assert first["3"]["reason"].endswith(": r3")
    finally:
        app.extensions["bbweb"].db.dispose()


# the lists a process keeps encoded by the rows they were made from
LISTS = ["/json/builders", "/json/slaves", "/json/slaves?numbuilds=1", "/json/builders?filter=1",
         "/json/slaves?as_text=1", "/json?select=builders&select=slaves",
         "/json/builders/runtests/slaves", "/json/builders/runtests", "/json/slaves/slave1"]


def test_kept_builder_and_slave_lists_follow_every_change(make_master):
    master = make_master(OPEN_CFG)
    web = Web(master, LISTS)
    try:
        web.same_as_fresh()
        assert doc(web.apps[0], "/json/builders")["runtests"]["state"] == "offline"

        # a request waits; a slave connects; it claims the request
        force(master, "runtests", reason="first")
        web.same_as_fresh()
        assert doc(web.apps[1], "/json/builders")["runtests"]["pendingBuilds"] == 1
        with master.db.write() as conn:
            es.slave_connected(conn, "slave1", {"host": "box1", "version": "0.8.5"}, now=90.0)
        web.same_as_fresh()
        assert doc(web.apps[0], "/json/builders")["runtests"]["state"] == "idle"
        first = claim(master, "slave1", 100.0)
        web.same_as_fresh()
        builders_doc = doc(web.apps[0], "/json/builders")["runtests"]
        assert builders_doc["state"] == "building" and builders_doc["currentBuilds"] == [0]
        assert builders_doc["pendingBuilds"] == 0

        # the running build's steps change its document inside the slave's
        with master.db.write() as conn:
            spec = eb.next_step(conn, master.config, first.buildid, now=100.0)
        assert spec is not None
        web.same_as_fresh()
        with master.db.write() as conn:
            eb.finish_step(conn, master.config, spec["id"], 0, properties={"got": "r1"},
                           now=101.0)
        web.same_as_fresh()
        running = doc(web.apps[1], "/json/slaves")["slave1"]["runningBuilds"]
        assert len(running) == 1 and running[0]["steps"][0]["isFinished"] is True

        # it finishes: in the slave's recent builds, no longer running
        run(master, first.buildid, {}, 102.0)
        web.same_as_fresh()
        slave1 = doc(web.apps[0], "/json/slaves")["slave1"]
        assert slave1["runningBuilds"] == [] and slave1["builders"]["runtests"] == [0]
        web.same_as_fresh()  # all recent builds known finished: the same windows again

        # another build moves the windows (numbuilds=1 keeps only the newest)
        force(master, "runtests", reason="second")
        run(master, claim(master, "slave1", 200.0).buildid, {}, 201.0)
        web.same_as_fresh()
        assert doc(web.apps[1], "/json/slaves")["slave1"]["builders"]["runtests"] == [1, 0]
        assert doc(web.apps[0], "/json/slaves?numbuilds=1")["slave1"]["builders"]["runtests"] \
            == [1]

        # the slave's row changed by hand: its info, then it goes away
        with master.db.write() as conn:
            conn.execute(slaves.update().where(slaves.c.name == "slave1")
                         .values(info='{"host": "box2"}'))
        web.same_as_fresh()
        assert doc(web.apps[1], "/json/slaves")["slave1"]["host"] == "box2"
        with master.db.write() as conn:
            es.mark_disconnected(conn, es.slave_id(conn, "slave1") or -1, "slave1")
        web.same_as_fresh()
        assert doc(web.apps[0], "/json/builders")["runtests"]["state"] == "offline"
        assert doc(web.apps[1], "/json/slaves")["slave1"]["connected"] is False
    finally:
        web.close()
