"""The change-hook framework is safe by default, whatever the dialect.

Methods (only POST changes anything), body size (413 before parsing), error answers that
never reflect the request, reserved and request-supplied properties, delivery ids
(a redelivery is stored once, even when both arrive at the same time), the access log, and
``change_hook_auth`` with pairs and real ``htpasswd`` files.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import subprocess
import threading
import time

import pytest
import sqlalchemy as sa
from flask import g

from bbweb.db.schema import buildrequests, change_properties, changes, hook_deliveries
from bbweb.engine.changes import ChangeInput
from bbweb.engine.hook_deliveries import RETENTION_SECONDS
from bbweb.mastercfg.hook_auth import validate_hook_auth
from bbweb.plugins import loading
from bbweb.web import change_hook as framework
from tests.conftest import DEFAULT_CFG


def count(master, table) -> int:
    with master.db.read() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


class FakeForge:
    """A dialect like GitHub's: a delivery id header, one change per request, properties
    of its own; ``X-Fake`` selects a failure."""

    src = "git"

    def __init__(self, options, config):
        self.options = options
        self.calls = 0

    def delivery_id(self, request):
        return request.headers.get("X-Delivery")

    def get_changes(self, request):
        self.calls += 1
        mode = request.headers.get("X-Fake", "")
        if mode == "forbidden":
            raise PermissionError("the signature does not match")
        if mode == "bad":
            raise ValueError("the payload has no commits")
        if mode == "crash":
            raise KeyError("internal detail <b>")
        if mode == "badjson":
            request.get_json(force=True)  # werkzeug's BadRequest
        if mode == "ping":
            g.change_hook_note = "ping received"
            return []
        body = request.get_data()
        props = json.loads(request.headers.get("X-Props", "{}"))
        return [ChangeInput(author="forge <f@example.org>", comments=f"{len(body)} bytes",
                            revision=request.headers.get("X-Rev", "abc"), branch="main",
                            properties=props, src=self.src)]


class Poller:
    """A dialect that is triggered with GET (like ``poller``)."""

    allow_get = True

    def __init__(self, options, config):
        self.options = options

    def get_changes(self, request):
        return []


@pytest.fixture
def hooked(make_master):
    """(master, app, client) with ``base`` (default options), ``fake`` and ``poll``."""
    made = []

    def factory(cfg=DEFAULT_CFG, fake_options=None):
        m = make_master(cfg)
        app = m.app()
        hooks = app.extensions["bbweb"].change_hooks
        hooks["fake"] = FakeForge(fake_options or {}, m.config)
        hooks["poll"] = Poller({}, m.config)
        made.append(app)
        return m, app, app.test_client()

    yield factory
    for app in made:
        app.extensions["bbweb"].db.dispose()


def with_base_options(options: str) -> str:
    return DEFAULT_CFG.replace("change_hook_dialects={'base': True}",
                               f"change_hook_dialects={{'base': {options}}}")


# -- methods -----------------------------------------------------------------------------------

def test_get_never_changes_anything(hooked):
    m, app, client = hooked()
    resp = client.get("/change_hook/base?author=mallory&comments=csrf")
    assert resp.status_code == 405
    assert resp.headers["Allow"] == "POST"
    assert b"only accept POST" in resp.data
    assert client.head("/change_hook/base?author=mallory").status_code == 405
    assert client.get("/change_hook?author=mallory").status_code == 405
    assert client.get("/change_hook/fake", headers={"X-Delivery": "g1"}).status_code == 405
    assert client.put("/change_hook/base", data={"author": "m"}).status_code == 405
    assert app.extensions["bbweb"].change_hooks["fake"].calls == 0
    assert count(m, changes) == 0


def test_a_dialect_can_declare_allow_get(hooked):
    _m, _app, client = hooked()
    resp = client.get("/change_hook/poll")
    assert resp.status_code == 200
    assert resp.get_data(as_text=True) == "no changes found\n"


# -- size ---------------------------------------------------------------------------------------

def test_oversized_body_is_413_before_parsing(hooked):
    m, app, client = hooked()
    big = b"x" * (framework.MAX_BODY_BYTES + 1)
    resp = client.post("/change_hook/fake", data=big, content_type="application/json")
    assert resp.status_code == 413
    assert app.extensions["bbweb"].change_hooks["fake"].calls == 0
    resp = client.post("/change_hook/base", data={"author": "a", "comments": "y" * 2_000_000})
    assert resp.status_code == 413
    ok = client.post("/change_hook/fake", data=b"x" * framework.MAX_BODY_BYTES,
                     content_type="application/octet-stream")
    assert ok.status_code == 202
    assert count(m, changes) == 1


def test_body_without_length_is_capped_while_read(hooked):
    """A chunked body has no Content-Length: the limit applies as the dialect reads."""
    m, _app, client = hooked()
    resp = client.post("/change_hook/fake",
                       input_stream=io.BytesIO(b"y" * (framework.MAX_BODY_BYTES + 10)),
                       environ_overrides={"wsgi.input_terminated": True},
                       content_type="application/octet-stream")
    assert resp.status_code == 413
    assert count(m, changes) == 0


def test_max_body_size_option(hooked):
    m, _app, client = hooked(with_base_options("{'max_body_size': 200}"))
    assert client.post("/change_hook/base", data={"author": "a"}).status_code == 202
    resp = client.post("/change_hook/base", data={"author": "a", "comments": "c" * 300})
    assert resp.status_code == 413 and b"200 bytes" in resp.data
    assert count(m, changes) == 1


# -- error answers ------------------------------------------------------------------------------

SCRIPT = "<script>alert(1)</script>"


def assert_plain_and_not_reflected(resp, *needles: str) -> None:
    assert resp.mimetype == "text/plain"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    text = resp.get_data(as_text=True)
    for needle in (SCRIPT, *needles):
        assert needle not in text
    assert len(text) < 400


def test_malformed_requests_are_short_400s_that_never_echo(hooked):
    m, _app, client = hooked()
    for data in ({"author": "a", "files": SCRIPT}, {"author": "a", "properties": SCRIPT},
                 {"author": "a", "when": SCRIPT}, {"comments": SCRIPT}):
        resp = client.post("/change_hook/base", data=data)
        assert resp.status_code == 400, data
        assert_plain_and_not_reflected(resp)
    resp = client.post("/change_hook/base", data=SCRIPT, content_type="application/json")
    assert resp.status_code == 400
    assert_plain_and_not_reflected(resp)
    resp = client.post("/change_hook/fake", data=SCRIPT, headers={"X-Fake": "badjson"},
                       content_type="application/json")
    assert resp.status_code == 400 and resp.get_data(as_text=True) == "malformed request\n"
    resp = client.post("/change_hook/fake", headers={"X-Fake": "bad"})
    assert resp.status_code == 400
    assert resp.get_data(as_text=True) == "the payload has no commits\n"
    assert count(m, changes) == 0


def test_forbidden_and_crashing_dialects(hooked, caplog):
    m, _app, client = hooked()
    resp = client.post("/change_hook/fake", headers={"X-Fake": "forbidden"})
    assert resp.status_code == 403
    assert resp.get_data(as_text=True) == "the signature does not match\n"
    with caplog.at_level(logging.ERROR, logger="bbweb.change_hook"):
        resp = client.post("/change_hook/fake", headers={"X-Fake": "crash"})
    assert resp.status_code == 500
    assert resp.get_data(as_text=True) == "Error processing changes.\n"
    assert "KeyError" in caplog.text  # the traceback is logged, not sent
    assert count(m, changes) == 0


def test_unknown_dialect_name_is_not_reflected(hooked):
    _m, _app, client = hooked()
    resp = client.post("/change_hook/" + SCRIPT.replace("/", ""))
    assert resp.status_code == 404
    assert_plain_and_not_reflected(resp, "<script>")
    resp = client.post("/change_hook/nosuch")
    assert resp.status_code == 404 and b"'nosuch'" in resp.data


def test_no_changes_shows_the_dialects_note(hooked):
    _m, _app, client = hooked()
    resp = client.post("/change_hook/fake", headers={"X-Fake": "ping"})
    assert resp.status_code == 200
    assert resp.get_data(as_text=True) == "no changes found: ping received\n"


# -- properties ---------------------------------------------------------------------------------

def test_base_refuses_properties_by_default(hooked):
    m, _app, client = hooked()
    resp = client.post("/change_hook/base", data={"author": "a",
                                                  "properties": json.dumps({"x": 1})})
    assert resp.status_code == 400
    assert b"allow_properties" in resp.data
    assert client.post("/change_hook/base", data={"author": "a"}).status_code == 202
    assert count(m, changes) == 1
    assert count(m, change_properties) == 0


def test_base_allow_properties_true(hooked):
    m, _app, client = hooked(with_base_options("{'allow_properties': True}"))
    resp = client.post("/change_hook/base", data={
        "author": "a", "properties": json.dumps({"ticket": 42, "urgent": True})})
    assert resp.status_code == 202
    with m.db.read() as conn:
        rows = conn.execute(sa.select(change_properties.c.name, change_properties.c.value))
        assert {r.name: json.loads(r.value) for r in rows} == {"ticket": 42, "urgent": True}
    for reserved in ("owner", "owners", "reason", "scheduler", "buildername", "slavename"):
        resp = client.post("/change_hook/base", data={
            "author": "a", "properties": json.dumps({reserved: "mallory@example.org"})})
        assert resp.status_code == 400, reserved
        assert f"'{reserved}' is reserved".encode() in resp.data
    assert count(m, changes) == 1


def test_base_allow_properties_list(hooked):
    m, _app, client = hooked(with_base_options("{'allow_properties': ['ticket']}"))
    ok = client.post("/change_hook/base", data={"author": "a",
                                                "properties": json.dumps({"ticket": 7})})
    assert ok.status_code == 202
    resp = client.post("/change_hook/base", data={
        "author": "a", "properties": json.dumps({"ticket": 7, "deploy_to": "prod"})})
    assert resp.status_code == 400 and b"'deploy_to' is not one of" in resp.data
    resp = client.post("/change_hook/base", data={
        "author": "a", "properties": json.dumps({SCRIPT: 1})})
    assert resp.status_code == 400
    assert_plain_and_not_reflected(resp)
    assert count(m, changes) == 1


def test_a_bad_allow_properties_value_falls_back_to_none(hooked, caplog):
    assert framework.option_problems("base", {"allow_properties": "yes"})
    assert framework.option_problems("base", {"max_body_size": -1})
    assert framework.option_problems("base", {"allow_properties": ["a"],
                                              "max_body_size": 10}) == []
    m, _app, client = hooked(with_base_options("{'allow_properties': 'yes'}"))
    with caplog.at_level(logging.ERROR, logger="bbweb.change_hook"):
        resp = client.post("/change_hook/base", data={"author": "a",
                                                      "properties": json.dumps({"x": 1})})
    assert resp.status_code == 400
    assert "allow_properties must be" in caplog.text
    # and checkconfig names the problem
    from bbweb.cli import main

    assert main(["checkconfig", str(m.basedir)]) == 1


def test_dialect_properties_are_its_own_but_never_reserved(hooked):
    m, _app, client = hooked()
    ok = client.post("/change_hook/fake", headers={"X-Props": json.dumps({"event": "push"})})
    assert ok.status_code == 202  # a forge dialect's documented properties need no option
    resp = client.post("/change_hook/fake", headers={"X-Props": json.dumps({"owner": "x"})})
    assert resp.status_code == 400 and b"'owner' is reserved" in resp.data
    assert count(m, changes) == 1


def test_split_options():
    assert loading.split_options({"secret": "s", "max_body_size": 5}) == (
        {"max_body_size": 5}, {"secret": "s"})
    assert loading.split_options(True) == ({}, True)


# -- deliveries ---------------------------------------------------------------------------------

def deliveries(master) -> list[tuple[str, str, list[int]]]:
    with master.db.read() as conn:
        return [(r.dialect, r.delivery_id, json.loads(r.changeids)) for r in conn.execute(
            sa.select(hook_deliveries).order_by(hook_deliveries.c.id))]


def test_redelivery_is_acknowledged_and_stored_once(hooked, caplog):
    m, app, client = hooked()
    with caplog.at_level(logging.INFO, logger="bbweb.change_hook"):
        first = client.post("/change_hook/fake", headers={"X-Delivery": "d-1"})
    assert first.status_code == 202
    assert "change hook fake: delivery d-1 from 127.0.0.1 accepted, change(s) [1]" \
        in caplog.text
    brs = count(m, buildrequests)
    again = client.post("/change_hook/fake", headers={"X-Delivery": "d-1", "X-Rev": "zzz"})
    assert again.status_code == 200
    assert again.get_data(as_text=True) == "already processed\n"
    assert count(m, changes) == 1 and count(m, buildrequests) == brs
    assert client.post("/change_hook/fake", headers={"X-Delivery": "d-2"}).status_code == 202
    assert client.post("/change_hook/fake").status_code == 202  # no id: always stored
    assert client.post("/change_hook/fake").status_code == 202
    assert count(m, changes) == 4
    assert deliveries(m) == [("fake", "d-1", [1]), ("fake", "d-2", [2])]


def test_same_id_for_another_dialect_is_another_delivery(hooked):
    m, app, client = hooked()
    app.extensions["bbweb"].change_hooks["fake2"] = FakeForge({}, m.config)
    assert client.post("/change_hook/fake", headers={"X-Delivery": "x"}).status_code == 202
    assert client.post("/change_hook/fake2", headers={"X-Delivery": "x"}).status_code == 202
    assert count(m, changes) == 2


def test_a_refused_delivery_is_not_remembered(hooked):
    m, _app, client = hooked()
    headers = {"X-Delivery": "d-9", "X-Fake": "forbidden"}
    assert client.post("/change_hook/fake", headers=headers).status_code == 403
    assert client.post("/change_hook/fake", headers={"X-Delivery": "d-9"}).status_code == 202
    assert count(m, changes) == 1


def test_a_delivery_without_changes_is_remembered_too(hooked):
    m, _app, client = hooked()
    headers = {"X-Delivery": "p-1", "X-Fake": "ping"}
    assert client.post("/change_hook/fake", headers=headers).data.startswith(b"no changes")
    assert client.post("/change_hook/fake", headers=headers).data == b"already processed\n"
    assert deliveries(m) == [("fake", "p-1", [])]


def test_concurrent_redeliveries_store_once(hooked):
    m, app, _client = hooked()
    results: list[int] = []
    barrier = threading.Barrier(8)

    def deliver() -> None:
        client = app.test_client()
        barrier.wait()
        results.append(client.post("/change_hook/fake",
                                   headers={"X-Delivery": "race"}).status_code)

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(results) == [200] * 7 + [202]
    assert count(m, changes) == 1
    assert deliveries(m) == [("fake", "race", [1])]


def test_old_deliveries_are_pruned_and_long_ids_digested(hooked):
    m, _app, client = hooked()
    old = time.time() - RETENTION_SECONDS - 60
    with m.db.write() as conn:
        conn.execute(hook_deliveries.insert().values(dialect="fake", delivery_id="ancient",
                                                     received_at=old, changeids="[]"))
    long_id = "L" * 400
    assert client.post("/change_hook/fake", headers={"X-Delivery": long_id}).status_code \
        == 202
    rows = deliveries(m)
    assert [r[1] for r in rows] == ["sha256:" + hashlib.sha256(
        long_id.encode()).hexdigest()]
    assert client.post("/change_hook/fake", headers={"X-Delivery": long_id}).status_code \
        == 200
    # a pruned id is simply new again
    assert client.post("/change_hook/fake", headers={"X-Delivery": "ancient"}).status_code \
        == 202


def test_unstorable_values_are_400_not_500(hooked):
    m, _app, client = hooked()
    for when in ("nan", "NaN", "inf", "-inf", "1e300"):
        resp = client.post("/change_hook/base", data={"author": "a", "when": when})
        assert resp.status_code == 400, when
        assert b"finite" in resp.data
    assert client.post("/change_hook/base", data={"author": "a\x00b"}).status_code == 400
    resp = client.post("/change_hook/base", data=b'{"author": "\\ud800"}',
                       content_type="application/json")
    assert resp.status_code == 400 and b"unpaired surrogate" in resp.data
    resp = client.post("/change_hook/base", data={"author": "a",
                                                  "files": '["ok", "b\\u0000d"]'})
    assert resp.status_code == 400
    assert count(m, changes) == 0


# -- fuzz ---------------------------------------------------------------------------------------

def test_no_input_makes_base_answer_500(make_master):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    m = make_master(with_base_options("{'allow_properties': True}"))
    app = m.app()
    client = app.test_client()
    fields = st.dictionaries(
        st.sampled_from(["author", "who", "files", "properties", "when", "comments",
                         "revision", "branch", "isdir", "project", "codebase", "src"]),
        st.one_of(st.text(max_size=40), st.sampled_from(
            ["[]", "{}", "[1]", '{"a": [1]}', '["\\u0000"]', "1e999", "nan", "-inf", "1e300",
             '"x"', "null", "a\x00b"])))

    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5),
                                                                    inner, max_size=3),
        max_leaves=8)
    documents = st.dictionaries(
        st.sampled_from(["author", "who", "files", "properties", "when", "comments",
                         "branch", "isdir", "src"]), json_values)

    @settings(max_examples=120, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(form=fields, raw=st.binary(max_size=200), doc=documents,
           ctype=st.sampled_from(["application/json", "application/x-www-form-urlencoded",
                                  "text/plain", "multipart/form-data"]))
    def run(form, raw, doc, ctype):
        resp = client.post("/change_hook/base", data=form)
        assert resp.status_code in (202, 400), (form, resp.data)
        resp = client.post("/change_hook/base", data=raw, content_type=ctype)
        assert resp.status_code in (202, 400), (raw, ctype, resp.data)
        resp = client.post("/change_hook/base", json=doc)
        assert resp.status_code in (202, 400), (doc, resp.data)

    try:
        run()
    finally:
        app.extensions["bbweb"].db.dispose()


# -- change_hook_auth ---------------------------------------------------------------------------

def with_auth(value: str) -> str:
    return DEFAULT_CFG.replace(
        "change_hook_dialects={'base': True}",
        f"change_hook_dialects={{'base': True}}, change_hook_auth={value}")


def test_auth_realm_and_list_of_pairs(hooked):
    m, _app, client = hooked(with_auth("[('ci', 'one'), ('deploy', 'two')]"))
    resp = client.post("/change_hook/base", data={"author": "a"})
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"] == 'Basic realm="Protected area"'
    assert client.post("/change_hook/base", data={"author": "a"},
                       auth=("ci", "two")).status_code == 401
    assert client.post("/change_hook/nosuch", data={"author": "a"}).status_code == 401
    for user, password in (("ci", "one"), ("deploy", "two")):
        assert client.post("/change_hook/base", data={"author": "a"},
                           auth=(user, password)).status_code == 202
    assert count(m, changes) == 2


HTPASSWD = shutil.which("htpasswd")


@pytest.mark.skipif(HTPASSWD is None, reason="apache2-utils' htpasswd is not installed")
@pytest.mark.parametrize("value", ["'hooks.htpasswd'", "'htpasswd:hooks.htpasswd'",
                                   "['memory:x:y', 'htpasswd:hooks.htpasswd']"])
def test_auth_htpasswd_made_by_apache(hooked, value):
    m, _app, client = hooked(with_auth(value))
    path = m.basedir / "hooks.htpasswd"
    users = {"-B": ("bcrypt-user", "b pass"), "-m": ("md5-user", "m:pass"),
             "-s": ("sha-user", "s\u00e9cret")}
    for flag, (user, password) in users.items():
        create = ["-c"] if not path.exists() else []
        subprocess.run([HTPASSWD, "-b", *create, flag, str(path), user, password],
                       check=True, capture_output=True)
    text = path.read_text()
    assert "$2y$" in text and "$apr1$" in text and "{SHA}" in text
    for user, password in users.values():
        assert client.post("/change_hook/base", data={"author": "a"},
                           auth=(user, password)).status_code == 202, user
        assert client.post("/change_hook/base", data={"author": "a"},
                           auth=(user, password + "x")).status_code == 401, user
    assert client.post("/change_hook/base", data={"author": "a"},
                       auth=("nobody", "b pass")).status_code == 401
    # the file is re-read when it changes
    subprocess.run([HTPASSWD, "-D", str(path), "md5-user"], check=True,
                   capture_output=True)
    subprocess.run([HTPASSWD, "-b", "-m", str(path), "late-user", "late"], check=True,
                   capture_output=True)
    st = path.stat()
    os.utime(path, (st.st_atime, st.st_mtime + 5))
    assert client.post("/change_hook/base", data={"author": "a"},
                       auth=("md5-user", "m:pass")).status_code == 401
    assert client.post("/change_hook/base", data={"author": "a"},
                       auth=("late-user", "late")).status_code == 202
    assert count(m, changes) == 4


@pytest.mark.skipif(HTPASSWD is None, reason="apache2-utils' htpasswd is not installed")
def test_auth_htpasswd_refuses_plain_entries_and_the_hash_as_password(hooked):
    """As Apache on Unix: a plain-text entry (htpasswd -p) lets nobody in, and knowing
    the file is not knowing the password (the stored hash is not accepted as one)."""
    m, _app, client = hooked(with_auth("'hooks.htpasswd'"))
    path = m.basedir / "hooks.htpasswd"
    subprocess.run([HTPASSWD, "-b", "-c", "-p", str(path), "plain-user", "pw"], check=True,
                   capture_output=True)
    subprocess.run([HTPASSWD, "-b", "-m", str(path), "md5-user", "pw"], check=True,
                   capture_output=True)
    stored = dict(line.split(":", 1) for line in path.read_text().splitlines())
    assert stored["plain-user"] == "pw"
    assert client.post("/change_hook/base", data={"author": "a"},
                       auth=("plain-user", "pw")).status_code == 401
    assert client.post("/change_hook/base", data={"author": "a"},
                       auth=("md5-user", stored["md5-user"])).status_code == 401
    assert client.post("/change_hook/base", data={"author": "a"},
                       auth=("md5-user", "pw")).status_code == 202


def test_auth_missing_htpasswd_lets_nobody_in(hooked, caplog):
    _m, _app, client = hooked(with_auth("'/nonexistent/hooks.htpasswd'"))
    with caplog.at_level(logging.ERROR, logger="bbweb.change_hook"):
        resp = client.post("/change_hook/base", data={"author": "a"}, auth=("a", "b"))
    assert resp.status_code == 401
    assert "cannot read htpasswd file /nonexistent/hooks.htpasswd" in caplog.text


def test_validate_hook_auth_forms():
    assert validate_hook_auth(("u", "p")) is None
    assert validate_hook_auth([("u", "p"), ("v", "q")]) is None
    assert validate_hook_auth("hooks.htpasswd") is None
    assert validate_hook_auth("/etc/bbweb/hooks.htpasswd") is None
    assert validate_hook_auth(["memory:a:b:c:d", "file:x", "htpasswd:y", ("u", "p")]) is None
    assert "unknown kind" in validate_hook_auth(["unix:"])
    assert "memory:USER:PASS" in validate_hook_auth(["memory:a"])
    assert "needs a path" in validate_hook_auth("htpasswd:")
    assert validate_hook_auth([object()]) is not None
    assert validate_hook_auth([]) is not None
    assert validate_hook_auth(42) is not None
    assert "user name" in validate_hook_auth([("", "p")])
