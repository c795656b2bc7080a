"""The 0.8 JSON read path runs a fixed number of SQL statements whatever the builds hold.

One master has a *thin* builder, whose builds have one step with one log, one property
and one change of one file, and a *rich* one, whose builds have six steps of three logs
each, a dozen properties and two codebases of three changes each (files and properties on
every change); each has a build running. A URL about the rich builder must run exactly as
many statements as the same URL about the thin one, the master-wide documents as many
after the rich builds as before them, and asking for twenty builds as many as asking for
one. (History length is covered by test_json_queries.py.)
"""

from __future__ import annotations

from bbweb.engine import builds as eb
from bbweb.engine import slaves as es
from bbweb.engine.builders import sync_builders
from bbweb.engine.buildsets import create_buildset, create_sourcestamp
from bbweb.engine.changes import ChangeInput, add_change
from tests.support.querycount import counting

CFG = """
from bbweb.config import *
c = BuildmasterConfig = {}
c['db_url'] = DB_URL
c['buildbotURL'] = 'http://bb.example.org/'
c['slaves'] = [BuildSlave('s1', 'pw'), BuildSlave('s2', 'pw')]
def factory(steps):
    return BuildFactory([ShellCommand(command=['make', str(i)], name=f'step{i}')
                         for i in range(steps)])
c['builders'] = [BuilderConfig(name='thin', slavenames=['s1', 's2'], factory=factory(1)),
                 BuilderConfig(name='rich', slavenames=['s1', 's2'], factory=factory(6))]
c['schedulers'] = [ForceScheduler(name='force', builderNames=['thin', 'rich'])]
"""

THIN = {"steps": 1, "logs": 1, "properties": 1, "codebases": [""], "changes": 1, "files": 1}
RICH = {"steps": 6, "logs": 3, "properties": 12, "codebases": ["", "lib"], "changes": 3,
        "files": 4}


def builder_urls(builder: str) -> list[str]:
    return ["/json/builders/B/builds?" + "&".join(f"select=-{i}" for i in range(1, 21)),
            "/json/builders/B/builds?select=-1", "/json/builders/B/builds/-1",
            "/json/builders/B/builds/_all?max=20", "/json/builders/B"]


MASTER_URLS = ["/json/builders", "/json/slaves", "/json/slaves/s1?numbuilds=20"]


def add_build(master, builder: str, shape: dict, i: int, *, finish: bool = True) -> None:
    """One build of ``shape`` through the engine: its changes, a buildset of one source
    stamp per codebase, the claim and (when ``finish``) every step with its logs and
    properties."""
    cfg = master.config
    t = 1_700_000_000.0 + 100 * i
    with master.db.write() as conn:
        stamps = []
        for codebase in shape["codebases"]:
            changeids = [add_change(conn, cfg, ChangeInput(
                author=f"dev{i}-{j}", comments="fix", revision=f"r{i}{codebase}{j}",
                codebase=codebase, files=[f"src/f{k}.c" for k in range(shape["files"])],
                properties={f"cp{k}": [k, "x"] for k in range(shape["files"])}), now=t)
                for j in range(shape["changes"])]
            stamps.append(create_sourcestamp(conn, codebase=codebase, changeids=changeids,
                                             revision=f"r{i}{codebase}"))
        create_buildset(conn, cfg, sourcestampids=stamps, builder_names=[builder],
                        reason=f"build {i}", scheduler="force", now=t,
                        properties={f"p{k}": ({"k": k}, "Force") for k in range(3)})
        slave = "s1" if i % 2 else "s2"
        claimed = eb.claim_build_request(conn, cfg, slave, es.slave_id(conn, slave), now=t)
        assert claimed is not None and claimed.builder == builder
        if not finish:
            eb.next_step(conn, cfg, claimed.buildid, now=t)
            return
        while (spec := eb.next_step(conn, cfg, claimed.buildid, now=t)) is not None:
            for n in range(shape["logs"]):
                eb.append_step_log(conn, cfg, spec["id"], f"log{n}", [("o", "x\n")])
            eb.finish_step(conn, cfg, spec["id"], i % 2, now=t + 1, properties={
                f"sp{spec['name']}{k}": f"v{k}" for k in range(shape["properties"])})


def add_history(master, builder: str, shape: dict) -> None:
    """Twenty-one finished builds and a running one (in /json/slaves and /json/builders)."""
    for i in range(21):
        add_build(master, builder, shape, i)
    add_build(master, builder, shape, 21, finish=False)


def statements(app, urls: list[str]) -> dict[str, list[str]]:
    client = app.test_client()
    out = {}
    for url in urls:
        client.get(url)  # the same warm state each time
        with counting(app) as seen:
            resp = client.get(url)
        assert resp.status_code == 200, (url, resp.data[:300])
        out[url] = list(seen)
    return out


def test_statements_do_not_grow_with_what_builds_hold(make_master):
    master = make_master(CFG)
    with master.db.write() as conn:
        sync_builders(conn, master.config)
        es.slave_connected(conn, "s1", {"host": "h1"})
        es.slave_connected(conn, "s2", {"host": "h2"})
    app = master.app()
    try:
        add_history(master, "thin", THIN)
        thin = statements(app, [u.replace("B", "thin") for u in builder_urls("thin")])
        before = statements(app, MASTER_URLS)
        add_history(master, "rich", RICH)
        rich = statements(app, [u.replace("B", "rich") for u in builder_urls("rich")])
        after = statements(app, MASTER_URLS)
        doc = app.test_client().get(builder_urls("rich")[0].replace("B", "rich")).get_json()
    finally:
        app.extensions["bbweb"].db.dispose()
    for url in builder_urls("B"):
        few, many = thin[url.replace("B", "thin")], rich[url.replace("B", "rich")]
        assert len(many) == len(few), (url, few, many)
    for url in MASTER_URLS:
        assert len(after[url]) == len(before[url]), (url, before[url], after[url])
    # twenty builds cost what one costs, and that is a handful
    twenty, one = (rich[u.replace("B", "rich")] for u in builder_urls("B")[:2])
    assert len(twenty) == len(one) <= 10, twenty

    # what those statements read is all there: steps, logs, properties, changes
    assert sorted(doc, key=lambda n: -int(n)) == [f"-{i}" for i in range(1, 21)]
    build = doc["-2"]  # -1 is the running one
    assert build["number"] == 20 and build["results"] is not None
    assert [s["name"] for s in build["steps"]] == [f"step{i}" for i in range(6)]
    assert [lg[0] for lg in build["steps"][0]["logs"]] == ["stdio", "log0", "log1", "log2"]
    assert build["logs"][1][1] == ("http://bb.example.org/builders/rich/builds/20/steps/step0"
                                   "/logs/log0")
    props = {name: value for name, value, _source in build["properties"]}
    assert props["spstep511"] == "v11" and props["p2"] == {"k": 2}
    stamps = build["sourceStamps"]
    assert [ss["codebase"] for ss in stamps] == ["", "lib"]
    change = stamps[1]["changes"][2]
    assert change["revision"] == "r20lib2" and len(change["files"]) == 4
    assert change["properties"][0] == ["cp0", [0, "x"], "Change"]
    assert build["blame"] == sorted(f"dev20-{j}" for j in range(3))
    running = doc["-1"]
    assert running["results"] is None and running["currentStep"]["name"] == "step0"
