"""Log pages: ``…/logs/L`` (HTML), ``…/logs/L/text`` and the live-follow ``…/logs/L/chunks``,
through HTTP against logs the engine wrote, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
import threading
import time
import tracemalloc
from typing import Any

import pytest
import sqlalchemy as sa

from bbweb.db.schema import log_chunks, logs
from bbweb.engine import builds as eb
from bbweb.engine import logs as elogs
from bbweb.engine import slaves as es
from bbweb.engine.builders import sync_builders
from bbweb.engine.force import force_build
from bbweb.status import logstream

CFG = """
from bbweb.config import *
c = BuildmasterConfig = {}
c['db_url'] = DB_URL
c['slaves'] = [BuildSlave('s1', 'pw')]
f = BuildFactory([ShellCommand(command=['make'], name='compile'),
                  ShellCommand(command=['make', 'test'], name='test'),
                  ShellCommand(command=['true'], name='quiet')])
c['builders'] = [BuilderConfig(name='b', slavenames=['s1'], factory=f)]
c['schedulers'] = [ForceScheduler(name='force', builderNames=['b'])]
"""

BASE = "/builders/b/builds/0/steps"
ANSI = ("plain \x1b[1;31mbold red\x1b[0m back \x1b[32mgreen \x1b[4munder\x1b[24m not"
        "\x1b[39m\x1b[2K erased\x1b[?25h shown \x1b[38;5;208mext\x1b[m"
        " \x1bXlit \x1b[31")


def text_of(resp) -> str:
    return resp.get_data(as_text=True)


@pytest.fixture
def lmaster(make_master):
    return make_master(CFG)


@pytest.fixture
def lclient(lmaster):
    app = lmaster.app()
    yield app.test_client()
    app.extensions["bbweb"].db.dispose()


def start_build(master) -> int:
    cfg = master.config
    with master.db.write() as conn:
        sync_builders(conn, cfg)
        es.slave_connected(conn, "s1", {}, now=1000.0)
        force_build(conn, cfg, ["b"], scheduler="force", reason="r", owner="o")
        claimed = eb.claim_build_request(conn, cfg, "s1", es.slave_id(conn, "s1"), now=1001.0)
    assert claimed is not None
    return claimed.buildid


def next_step(master, buildid: int) -> dict[str, Any]:
    with master.db.write() as conn:
        spec = eb.next_step(conn, master.config, buildid, now=1002.0)
    assert spec is not None
    return spec


def append(master, stepid: int, chunks: list, log: str = "stdio") -> None:
    with master.db.write() as conn:
        eb.append_step_log(conn, master.config, stepid, log, chunks)


def finish(master, stepid: int, rc: int = 0) -> None:
    with master.db.write() as conn:
        eb.finish_step(conn, master.config, stepid, rc, now=1003.0)


@pytest.fixture
def build(lmaster, lclient) -> dict[str, Any]:
    """b #0: compile finished with a header, stdout (with ANSI), stderr and a U+FFFD; test
    running with some output; quiet not started."""
    buildid = start_build(lmaster)
    compile_ = next_step(lmaster, buildid)
    append(lmaster, compile_["id"], [("h", "$ make <all>\n"), ("o", ANSI + "\n"),
                                     ("e", "warning: x < y & z\n"), ("o", "done\n")])
    with lmaster.db.write() as conn:  # bytes that are not UTF-8, through the engine
        logid = conn.execute(sa.select(logs.c.id).where(
            logs.c.stepid == compile_["id"])).scalar_one()
        elogs.append_chunks(conn, logid, [("o", b"bad \xff\xfe bytes\n")])
    finish(lmaster, compile_["id"])
    test = next_step(lmaster, buildid)
    append(lmaster, test["id"], [("o", "line 1\n")])
    return {"buildid": buildid, "compile": compile_["id"], "test": test["id"],
            "compile_log": logid}


# -- HTML ---------------------------------------------------------------------------------------

def test_html_log_streams_spans_per_stream_with_ansi_classes(lclient, build):
    resp = lclient.get(f"{BASE}/compile/logs/stdio")
    assert resp.status_code == 200 and resp.content_type == "text/html; charset=utf-8"
    assert resp.is_streamed
    assert resp.headers["Cache-Control"] == "max-age=604800"
    html = text_of(resp)
    assert "<title>Log File contents</title>" in html and '<body class="log">' in html
    assert 'class="footer"' not in html  # a standalone document, not the layout
    assert '<a href="../../../../../../../builders/b/builds/0/steps/compile/logs/stdio/text"' \
           ' class="as-text">(view as text)</a>' in html
    assert '<link rel="stylesheet" href="../../../../../../../default.css">' in html
    assert '<span class="header-chunk">$ make &lt;all&gt;\n</span>' in html
    assert '<span class="stderr">warning: x &lt; y &amp; z\n</span>' in html
    pre = html.split('<pre class="log" id="log">')[1].split("</pre>")[0]
    spans = re.findall(r'<span class="([^"]*)">([^<]*)</span>', pre)
    assert spans[1:10] == [
        ("stdout", "plain "), ("stdout ansi1 ansi31", "bold red"), ("stdout", " back "),
        ("stdout ansi32", "green "), ("stdout ansi4 ansi32", "under"),
        ("stdout ansi32", " not"), ("stdout", " erased"), ("stdout", " shown "),
        ("stdout", "ext")]
    # a lone ESC and an unfinished CSI sequence are kept as they are
    assert spans[10] == ("stdout", " \x1bXlit \x1b[31\n")
    assert "\x1b[2K" not in pre and "\x1b[?25h" not in pre and "[38;5" not in pre
    assert '<span class="stdout">bad \ufffd\ufffd bytes\n</span>' in pre
    # finished: no live follow
    assert "<script" not in html and "refresh" not in html


def test_running_log_page_follows_with_a_script_and_a_noscript_refresh(lclient, build):
    resp = lclient.get(f"{BASE}/test/logs/stdio")
    assert resp.status_code == 200
    assert resp.headers["Cache-Control"] == "no-cache"
    html = text_of(resp)
    assert '<noscript><meta http-equiv="refresh" content="5"></noscript>' in html
    assert '<span class="stdout">line 1\n</span>' in html
    script = html.split("<script>")[1].split("</script>")[0]
    assert 'var url = "../../../../../../../builders/b/builds/0/steps/test/logs/stdio/chunks";' \
           in script
    assert "var after = 0;" in script
    assert "textContent" in script and "innerHTML" not in script


def test_chunks_endpoint_returns_only_new_chunks(lmaster, lclient, build):
    url = f"{BASE}/test/logs/stdio/chunks"
    first = json.loads(lclient.get(url).data)
    assert first == {"after": 0, "complete": False, "more": False,
                     "chunks": [["stdout", "line 1\n"]], "spans": [["stdout", "line 1\n"]]}
    empty = json.loads(lclient.get(url + "?after=0").data)
    assert empty["chunks"] == [] and empty["after"] == 0 and not empty["complete"]
    append(lmaster, build["test"], [("e", "\x1b[31moops\n")])
    append(lmaster, build["test"], [("h", "program finished\n")])
    resp = lclient.get(url + "?after=0")
    assert resp.headers["Cache-Control"] == "no-cache"
    new = json.loads(resp.data)
    assert new["chunks"] == [["stderr", "\x1b[31moops\n"], ["header", "program finished\n"]]
    assert new["spans"] == [["stderr ansi31", "oops\n"], ["header-chunk", "program finished\n"]]
    assert new["after"] == 2 and not new["complete"]
    finish(lmaster, build["test"])
    done = json.loads(lclient.get(url + "?after=2").data)
    assert done["chunks"] == [] and done["complete"] is True
    assert json.loads(lclient.get(url + "?after=1").data)["complete"] is True
    assert lclient.get(url + "?after=x").status_code == 400


def test_chunks_endpoint_is_bounded_per_answer(lmaster, lclient, build, monkeypatch):
    monkeypatch.setattr(logstream, "CHUNKS_MAX_BYTES", 10)
    append(lmaster, build["test"], [("e", "abcdefgh\n")])
    append(lmaster, build["test"], [("o", "ijklmnop\n")])
    one = json.loads(lclient.get(f"{BASE}/test/logs/stdio/chunks?after=0").data)
    assert one["chunks"] == [["stderr", "abcdefgh\n"]] and one["more"] is True
    two = json.loads(lclient.get(f"{BASE}/test/logs/stdio/chunks?after=1").data)
    assert two["chunks"] == [["stdout", "ijklmnop\n"]] and two["more"] is False


# -- text ---------------------------------------------------------------------------------------

def test_text_view_has_stdout_and_stderr_but_no_headers(lclient, build):
    resp = lclient.get(f"{BASE}/compile/logs/stdio/text")
    assert resp.status_code == 200 and resp.content_type == "text/plain; charset=utf-8"
    assert resp.headers["Cache-Control"] == "max-age=604800"
    body = text_of(resp)
    assert body == ANSI + "\nwarning: x < y & z\ndone\nbad \ufffd\ufffd bytes\n"
    assert "$ make" not in body


def test_text_view_of_an_unfinished_log_ends_when_the_log_completes(
        lmaster, lclient, build, monkeypatch):
    monkeypatch.setattr(logstream, "FOLLOW_POLL_SECONDS", 0.05)

    def later() -> None:
        time.sleep(0.4)
        append(lmaster, build["test"], [("o", "line 2\n"), ("h", "header\n")])
        time.sleep(0.3)
        append(lmaster, build["test"], [("e", "line 3\n")])
        finish(lmaster, build["test"])

    writer = threading.Thread(target=later)
    started = time.monotonic()
    resp = lclient.get(f"{BASE}/test/logs/stdio/text", buffered=False)
    assert resp.headers["Cache-Control"] == "no-cache"
    writer.start()
    try:
        body = b"".join(resp.response)
    finally:
        resp.close()
        writer.join()
    assert body == b"line 1\nline 2\nline 3\n"
    assert time.monotonic() - started >= 0.7


def test_text_view_follows_for_a_bounded_time(lclient, build, monkeypatch):
    monkeypatch.setattr(logstream, "FOLLOW_POLL_SECONDS", 0.05)
    monkeypatch.setattr(logstream, "FOLLOW_MAX_SECONDS", 0.3)
    started = time.monotonic()
    resp = lclient.get(f"{BASE}/test/logs/stdio/text")
    assert resp.data == b"line 1\n"
    assert 0.3 <= time.monotonic() - started < 5


# -- errors, HEAD, trailing slashes ---------------------------------------------------------------

def test_empty_and_unknown_logs_are_404(lmaster, lclient, build):
    append(lmaster, build["test"], [], log="nothing")  # no chunks: an empty log
    finish(lmaster, build["test"])
    resp = lclient.get(f"{BASE}/test/logs/nothing")
    assert resp.status_code == 404 and "Empty Log &#39;nothing&#39;" in text_of(resp)
    assert lclient.get(f"{BASE}/test/logs/nothing/text").status_code == 404
    for url in (f"{BASE}/compile/logs/nosuch", f"{BASE}/nosuch/logs/stdio",
                "/builders/b/builds/5/steps/compile/logs/stdio",
                "/builders/nosuch/builds/0/steps/compile/logs/stdio",
                f"{BASE}/compile/logs/stdio/other", f"{BASE}/compile/logs"):
        assert lclient.get(url).status_code == 404, url
    # the step page links only logs with content
    step = text_of(lclient.get(f"{BASE}/test"))
    assert "nothing <span class=\"note\">(empty)</span>" in step
    assert '/logs/stdio">stdio</a>' in step


def test_head_has_no_body_and_trailing_slashes_work(lclient, build):
    resp = lclient.head(f"{BASE}/compile/logs/stdio")
    assert resp.status_code == 200 and resp.data == b""
    assert resp.content_type == "text/html; charset=utf-8"
    assert lclient.head(f"{BASE}/compile/logs/stdio/text").data == b""
    assert lclient.get(f"{BASE}/compile/logs/stdio/").status_code == 200
    assert text_of(lclient.get(f"{BASE}/compile/logs/stdio/text/")).startswith("plain")
    assert lclient.get("/builders/b/builds/-1/steps/0/logs/stdio/text").status_code == 200


def test_text_stored_before_the_engine_replaced_bad_utf8(lmaster, lclient, build):
    # rows written by an older version may hold any bytes; the reader replaces them
    with lmaster.db.write() as conn:
        logid = elogs.create_log(conn, build["test"], "legacy")
        conn.execute(log_chunks.insert().values(logid=logid, seq=0, stream="o", compressed=0,
                                                content=b"old \xc3( bytes\n"))
        conn.execute(logs.update().where(logs.c.id == logid).values(num_chunks=1,
                                                                    num_bytes=13))
        elogs.finish_log(conn, logid)
    assert text_of(lclient.get(f"{BASE}/test/logs/legacy/text")) == "old \ufffd( bytes\n"
    assert '<span class="stdout">old \ufffd( bytes\n</span>' in \
        text_of(lclient.get(f"{BASE}/test/logs/legacy"))


# -- a big log in constant memory ---------------------------------------------------------------

def test_a_50mb_log_streams_in_bounded_memory(lmaster, lclient, build):
    piece = "".join(f"{i:08d} compiling module_{i % 977}.c with -O2 -Wall\n"
                    for i in range(5500))  # ~256 KiB, compressible like real output
    count = (50 * 1024 * 1024) // len(piece) + 1
    with lmaster.db.write() as conn:
        logid = elogs.create_log(conn, build["test"], "big")
        for _batch in range(0, count, 8):
            elogs.append_chunks(conn, logid,
                                [("o" if j % 3 else "e", piece) for j in range(8)],
                                compression_limit=lmaster.config.logCompressionLimit)
        size = conn.execute(sa.select(logs.c.num_bytes).where(logs.c.id == logid)).scalar()
        elogs.finish_log(conn, logid)
    assert size >= 50 * 1024 * 1024
    del piece

    for suffix in ("", "/text"):
        resp = lclient.get(f"{BASE}/test/logs/big{suffix}", buffered=False)
        total = 0
        tracemalloc.start()
        try:
            for data in resp.response:
                total += len(data)
            _current, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
            resp.close()
        assert total >= size
        assert peak < 12 * 1024 * 1024, (suffix, peak)
