"""Rows that older versions stored before values were checked at entry — property values
and step texts with lone surrogates, NUL characters and nesting deep enough to exhaust
Python's stack — never break a page: every page and JSON document answers 200, showing
them repaired (U+FFFD, a "nested too deeply" marker), and the status layer logs what it
repaired.
The rows are inserted directly with SQLAlchemy, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import logging
import re

import pytest
import sqlalchemy as sa

from bbweb.db.schema import (
    build_properties,
    buildset_properties,
    change_properties,
    slaves,
    steps,
)
from bbweb.engine.changes import ChangeInput, add_change
from bbweb.status import queries
from bbweb.values.validation import TOO_DEEP
from tests.support.history import claim, run

SURROGATE_JSON = '"bad \\ud800 value"'  # what json.dumps made of "bad \ud800 value"
NUL_JSON = '"nul \\u0000 here"'
PAIRED_JSON = '"emoji \\ud83d\\ude00"'  # a proper pair: shown as the emoji, untouched


def deep_json(levels: int) -> str:
    return "[" * levels + '"bottom"' + "]" * levels


BAD_VALUES = {
    "x_surrogate": SURROGATE_JSON,
    "x_nul": NUL_JSON,
    "x_paired": PAIRED_JSON,
    "x_deep100": deep_json(100),  # decodes anywhere; deeper than any page shows
    "x_deep": deep_json(980),  # decodes at a shallow stack, fails to render
    "x_deeper": deep_json(20000),  # the decoder itself runs out of stack
    "x_key": '{"\\udfff": 1}',
    "x_notjson": "{not json",
}

PAGES = [
    "/changes/{change}", "/changes", "/builders/runtests", "/builders/runtests/builds/0",
    "/builders/runtests/builds/0/steps/hello", "/builders", "/waterfall", "/console", "/grid",
    "/tgrid", "/one_line_per_build", "/buildslaves", "/buildslaves/slave1", "/json",
    "/json/slaves", "/json/builders/runtests/builds/0", "/json/builders/runtests/builds/_all",
    "/json/builders/runtests", "/json/builders/docs/pendingBuilds",
    "/rss", "/atom", "/png?builder=runtests", "/badge.svg?builder=runtests",
    "/buildstatus?builder=runtests&number=0",
]


@pytest.fixture(autouse=True)
def fresh_process_log(monkeypatch):  # type: ignore[no-untyped-def]
    """Each test is a fresh process as far as "logged once per process" goes (change ids
    start at 1 in every test's database)."""
    monkeypatch.setattr(queries, "_logged", set())


def store_bad_history(master) -> int:  # type: ignore[no-untyped-def]
    """A change (scheduled on both builders), a finished build of runtests, a pending
    request for docs; then the bad values written straight into the property tables,
    as an older version could have stored them. Returns the change id."""
    with master.db.write() as conn:
        changeid = add_change(conn, master.config, ChangeInput(
            author="dev <dev@example.org>", comments="fine", revision="abc123",
            files=["a.c"]), now=1000.0)
    claimed = claim(master, "slave1", 1001.0)
    run(master, claimed.buildid, {}, 1002.0)
    with master.db.write() as conn:
        conn.execute(change_properties.insert(), [
            {"changeid": changeid, "name": name, "value": value, "source": "Change"}
            for name, value in BAD_VALUES.items()])
        conn.execute(build_properties.insert(), [
            {"buildid": claimed.buildid, "name": name, "value": value, "source": "Change"}
            for name, value in BAD_VALUES.items()]
            + [{"buildid": claimed.buildid, "name": "got_revision",
                "value": '"rev \\udc80"', "source": "Source"}])
        bsids = [r[0] for r in conn.execute(sa.select(buildset_properties.c.buildsetid)
                                            .distinct())]
        conn.execute(buildset_properties.insert(), [
            {"buildsetid": bsid, "name": name, "value": value, "source": "Change"}
            for bsid in bsids for name, value in BAD_VALUES.items()])
        conn.execute(slaves.update().where(slaves.c.name == "slave1").values(
            info=json.dumps({"admin": "x"})[:-1] + ', "host": ' + deep_json(980) + "}"))
        conn.execute(steps.update().where(steps.c.buildid == claimed.buildid).values(
            text=deep_json(980), urls='{"bad \\udc00": "http://example.org/"}',
            statistics=deep_json(20000)))
    return changeid


def test_every_page_answers_200_and_shows_bad_values_repaired(master, app, caplog):
    changeid = store_bad_history(master)
    client = app.test_client()
    caplog.set_level(logging.WARNING, logger="bbweb.status")
    for page in PAGES:
        url = page.format(change=changeid)
        resp = client.get(url)
        assert resp.status_code == 200, (url, resp.status_code, resp.get_data()[:300])
        if resp.mimetype.startswith("text/") or "json" in resp.mimetype:
            resp.get_data(as_text=True)  # valid UTF-8 throughout

    html = client.get(f"/changes/{changeid}").get_data(as_text=True)
    assert "bad \ufffd value" in html
    assert TOO_DEEP in html
    assert "emoji \U0001F600" in html  # a proper surrogate pair is left alone
    # the step's text, 980 levels deep, is shown cut (or replaced) wherever a step is shown
    for page in ("/waterfall", "/builders/runtests/builds/0",
                 "/builders/runtests/builds/0/steps/hello"):
        assert TOO_DEEP in client.get(page).get_data(as_text=True), page

    doc = client.get("/json/builders/runtests/builds/0").get_json()
    props = {name: value for name, value, _source in doc["properties"]}
    assert props["x_surrogate"] == "bad \ufffd value"
    assert props["x_nul"] == "nul \x00 here"  # storable and renderable: left as it is
    assert props["x_deeper"] == TOO_DEEP
    for name, shown_levels in (("x_deep100", [32]), ("x_deep", [0, 32])):
        deep, levels = props[name], 0
        while isinstance(deep, list):
            deep, levels = deep[0], levels + 1
        # 980 levels: cut at 32, or replaced whole when the decoder ran out of stack
        assert deep == TOO_DEEP and levels in shown_levels, (name, levels)
    assert props["x_key"] == {"\ufffd": 1}
    assert props["x_notjson"] is None
    assert props["got_revision"] == "rev \ufffd"

    logged = caplog.text
    assert f"change {changeid} property 'x_surrogate' cannot be shown as stored " \
           "(unpaired surrogate)" in logged
    assert "property 'x_deeper' cannot be shown as stored (nested too deeply" in logged
    assert "slave 'slave1' info cannot be shown as stored (nested too deeply" in logged
    assert re.search(r"step \d+ text cannot be shown as stored \(nested too deeply", logged)


def test_repairs_are_logged_once_per_process(master, app, caplog):
    changeid = store_bad_history(master)
    client = app.test_client()
    caplog.set_level(logging.WARNING, logger="bbweb.status")
    for _ in range(3):
        assert client.get(f"/changes/{changeid}").status_code == 200
    assert caplog.text.count(f"change {changeid} property 'x_surrogate'") == 1
