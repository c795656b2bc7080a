"""gunicorn with its defaults serves one request at a time per process. A worker's claim
long-poll must then not wait for work — it would hold the only process and every page
would wait behind it — so the master answers at once and the worker polls again shortly."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import requests
import sqlalchemy as sa

from bbweb.db.connection import Database
from bbweb.db.migrate import upgrade
from bbweb.db.schema import slaves
from bbweb.launcher import gunicorn_command
from bbweb.mastercfg.master import load_master_config
from bbweb.mastercfg.webstatus import ListenAddress
from tests.e2e.conftest import LiveMaster, free_port, stop_live_master, wait_for

CFG = """
from bbweb.config import *
c = BuildmasterConfig = {}
c['title'] = 'one at a time'
c['db_url'] = DB_URL
c['slaves'] = [BuildSlave('lp', 'pwl'), BuildSlave('other', 'pwo')]
c['builders'] = [BuilderConfig(name='b', slavenames=['lp', 'other'], factory=BuildFactory(
    [ShellCommand(command=['true'])]))]
c['status'] = [WebStatus(http_port=PORT)]
"""

LONG_POLL = 20.0  # what `bbweb worker` asks for


def serving_options(worker_class: str) -> list[str]:
    if worker_class == "sync":
        return ["--worker-class", "sync"]
    return ["--worker-class", "gthread", "--threads", "1"]


@pytest.fixture(params=["sync", "gthread-1-thread"])
def one_at_a_time(request, tmp_path) -> Iterator[LiveMaster]:
    basedir = tmp_path / "master"
    basedir.mkdir()
    port = free_port()
    db_url = "sqlite:///" + str(tmp_path / "state.sqlite")
    (basedir / "master.cfg").write_text(
        CFG.replace("DB_URL", repr(db_url)).replace("PORT", str(port)))
    upgrade(load_master_config(basedir).db_url)
    cmd = gunicorn_command(basedir, ListenAddress("127.0.0.1", port), 1)
    at = cmd.index("--worker-class")
    cmd[at:at + 4] = serving_options(request.param)  # replaces gthread and its 16 threads
    live = LiveMaster(basedir, f"http://127.0.0.1:{port}", db_url, Database(db_url))
    live.spawn("web", cmd)

    def up() -> bool:
        assert live.procs["web"].poll() is None, live.log_text("web")
        try:
            return requests.get(live.url + "/health", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    wait_for(up, 60, what="gunicorn to answer")
    try:
        yield live
    finally:
        stop_live_master(live)


def claims_in_access_log(live: LiveMaster, name: str) -> int:
    path = live.basedir / "http.log"
    text = path.read_text() if path.exists() else ""
    return sum(1 for line in text.splitlines() if f" {name} " in line and "/claim " in line)


def test_pages_answer_while_a_worker_is_connected(one_at_a_time):
    live = one_at_a_time
    live.start_worker("lp", "pwl")

    def connected():
        with live.db.read() as conn:
            return conn.execute(sa.select(slaves.c.connected)
                                .where(slaves.c.name == "lp")).scalar()

    wait_for(connected, 60, what="the worker to connect")
    # the worker polls instead of holding the server in a 20 s long-poll
    wait_for(lambda: claims_in_access_log(live, "lp") >= 3, LONG_POLL - 5,
             what="the worker to claim three times within one long-poll's wait")

    claim: dict = {}

    def long_poll() -> None:
        claim["answer"] = requests.post(live.url + "/api/worker/claim", auth=("other", "pwo"),
                                        json={"wait": LONG_POLL, "seq": 1},
                                        timeout=LONG_POLL + 30)

    started = time.monotonic()
    poller = threading.Thread(target=long_poll)
    poller.start()
    page = requests.get(live.url + "/", timeout=LONG_POLL + 30)
    page_answered = time.monotonic() - started
    poller.join(LONG_POLL + 30)
    assert page.status_code == 200 and "one at a time" in page.text
    assert page_answered < LONG_POLL, "the page waited for a long-poll"
    assert claim["answer"].status_code == 204  # it did not wait, and said when to poll
    assert claim["answer"].headers["X-Poll-After"] == "1"
    assert live.procs["worker-lp"].poll() is None
