"""/change_hook/bitbucket with payloads as Bitbucket sends them (the POST service, written
for bbweb in its documented format, and published Bitbucket Cloud webhook examples), on
SQLite and PostgreSQL."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from urllib.parse import urlencode

import pytest

try:
    from hypothesis import given
    from hypothesis import strategies as st
except ImportError:  # the fuzz tests skip
    st = None

from bbweb.plugins.hooks.bitbucket import BitbucketHook
from tests.plugins.hooks import (
    ALLOWED_STATUSES,
    dialect_site,
    fuzz_settings,
    hook_cfg,
    json_strategy,
    mutate,
    nothing_stored,
    paths,
    payload,
    payload_bytes,
    sign,
    stored,
)

SECRET = "bb-secret"
HASH = "b7c41e09d2f35a6817c4e0b9a2d3f6e1c8b7a605"
CLOUD_HASH = "141977fedf5cf35aa290ac87d4b5177ac4cd9de1"


@pytest.fixture
def make_bitbucket(make_master):  # type: ignore[no-untyped-def]
    return dialect_site(make_master, "bitbucket")


@pytest.fixture
def bb(make_bitbucket):  # type: ignore[no-untyped-def]
    return make_bitbucket()


@pytest.fixture
def bb_secret(make_bitbucket):  # type: ignore[no-untyped-def]
    return make_bitbucket({"secret": SECRET})


def form_body(name_or_bytes, **extra) -> bytes:  # type: ignore[no-untyped-def]
    raw = (payload_bytes(name_or_bytes) if isinstance(name_or_bytes, str)
           else name_or_bytes)
    return urlencode({"payload": raw.decode(), **extra}).encode()


def post_form(client, body: bytes, url="/change_hook/bitbucket",
              **headers):  # type: ignore[no-untyped-def]
    return client.post(url, data=body, content_type="application/x-www-form-urlencoded",
                       headers=headers)


def post_cloud(client, body: bytes, event="repo:push", url="/change_hook/bitbucket",
               **headers):  # type: ignore[no-untyped-def]
    headers = {"X-Event-Key": event, "X-Request-UUID": str(uuid.uuid4()),
               "X-Hook-UUID": "{bc771cbf-829e-4c4b-b71f-a0eb3ac2b860}", **headers}
    return client.post(url, data=body, content_type="application/json", headers=headers)


# -- the POST service (0.8) ---------------------------------------------------------------------

@pytest.mark.parametrize("scm,branch", [("git", "master"), ("hg", "default")])
def test_post_service(bb, scm, branch):
    master, client = bb
    resp = post_form(client, form_body(f"bitbucket/post-{scm}.bbweb.json"))
    assert resp.status_code == 202, resp.data
    (ch,) = stored(master)
    assert ch.author == "Nina Okafor <nina@tidepool.example>"
    assert ch.files == ["tidepool/parse.py"]
    assert ch.comments == "Parse tide tables with leap seconds"
    assert ch.revision == HASH
    assert ch.when == datetime.fromisoformat("2013-08-21 14:04:11+00:00").timestamp()
    assert ch.branch == branch
    assert ch.repository == "https://bitbucket.org/nina/tidepool/"
    assert ch.revlink == f"https://bitbucket.org/nina/tidepool/commits/{HASH}"
    assert ch.src == scm
    assert ch.project == ""


def test_post_service_project_is_a_string(bb):
    """0.8.9 stored the whole value list of ?project= (a bug); bbweb the first value."""
    master, client = bb
    resp = post_form(client, form_body("bitbucket/post-git.bbweb.json"),
                     url="/change_hook/bitbucket?project=projx")
    assert resp.status_code == 202
    assert stored(master)[0].project == "projx"


def test_post_service_null_branch(bb):
    master, client = bb
    data = payload("bitbucket/post-hg.bbweb.json")
    data["commits"][0]["branch"] = None
    assert post_form(client, form_body(json.dumps(data).encode())).status_code == 202
    assert stored(master)[0].branch is None


@pytest.mark.parametrize("name", ["bitbucket/post-git-no-commits.bbweb.json",
                                  "bitbucket/post-hg-no-commits.bbweb.json"])
def test_post_service_without_commits(bb, name):
    master, client = bb
    resp = post_form(client, form_body(name))
    assert resp.status_code == 200
    assert b"no changes found" in resp.data
    assert nothing_stored(master)


# -- Bitbucket Cloud ------------------------------------------------------------------------------

def test_cloud_push(bb):
    master, client = bb
    resp = post_cloud(client, payload_bytes("bitbucket/cloud-push.go-scm.json"),
                      url="/change_hook/bitbucket?project=foo&codebase=cb")
    assert resp.status_code == 202, resp.data
    (ch,) = stored(master)
    assert ch.author == "Brad Rydzewski <brad.rydzewski@gmail.com>"
    assert ch.revision == CLOUD_HASH
    assert ch.branch == "master"
    assert ch.comments == "Update README\n"
    assert ch.when == datetime.fromisoformat("2018-07-02T20:26:56+00:00").timestamp()
    assert ch.revlink == f"https://bitbucket.org/brydzewski/foo/commits/{CLOUD_HASH}"
    assert ch.repository == "https://bitbucket.org/brydzewski/foo"
    assert (ch.src, ch.project, ch.codebase, ch.files) == ("git", "foo", "cb", [])


def test_cloud_push_commits_oldest_first(bb):
    master, client = bb
    data = payload("bitbucket/cloud-push.go-scm.json")
    commits = data["push"]["changes"][0]["commits"]
    newer = json.loads(json.dumps(commits[0]))
    newer["hash"] = "f" * 40
    commits.insert(0, newer)  # Bitbucket lists the newest first
    assert post_cloud(client, json.dumps(data).encode()).status_code == 202
    assert [c.revision for c in stored(master)] == [CLOUD_HASH, "f" * 40]


@pytest.mark.parametrize("name", ["bitbucket/cloud-push-branch-delete.go-scm.json",
                                  "bitbucket/cloud-push-tag-create.go-scm.json"])
def test_cloud_deletions_and_tags_are_no_change(bb, name):
    master, client = bb
    assert post_cloud(client, payload_bytes(name)).status_code == 200
    assert nothing_stored(master)


def test_cloud_other_events_are_ignored(bb):
    master, client = bb
    resp = post_cloud(client, payload_bytes("bitbucket/cloud-push.go-scm.json"),
                      event="pullrequest:created")
    assert resp.status_code == 200
    assert nothing_stored(master)


def test_cloud_redelivery_is_stored_once(bb):
    master, client = bb
    body = payload_bytes("bitbucket/cloud-push.go-scm.json")
    request_id = {"X-Request-UUID": "{5a2b1c3d-0000-4000-8000-000000000001}"}
    assert post_cloud(client, body, **request_id).status_code == 202
    assert post_cloud(client, body, **request_id).status_code == 200
    # a different delivery of the same webhook (same X-Hook-UUID) is a new push
    assert post_cloud(client, body).status_code == 202
    assert len(stored(master)) == 2


# -- secret ---------------------------------------------------------------------------------------

def test_signed_cloud_push(bb_secret):
    master, client = bb_secret
    body = payload_bytes("bitbucket/cloud-push.go-scm.json")
    resp = post_cloud(client, body, **{"X-Hub-Signature": "sha256=" + sign(SECRET, body,
                                                                             "sha256")})
    assert resp.status_code == 202, resp.data
    assert len(stored(master)) == 1


def test_signed_post_service(bb_secret):
    master, client = bb_secret
    body = form_body("bitbucket/post-git.bbweb.json")
    resp = post_form(client, body, **{"X-Hub-Signature": "sha256=" + sign(SECRET, body,
                                                                            "sha256")})
    assert resp.status_code == 202
    assert len(stored(master)) == 1


@pytest.mark.parametrize("signature", [None, "sha256=" + "0" * 64, "sha1=abc", "garbage",
                                       "sha256="])
def test_bad_signature_is_403(bb_secret, signature):
    master, client = bb_secret
    headers = {} if signature is None else {"X-Hub-Signature": signature}
    assert post_cloud(client, payload_bytes("bitbucket/cloud-push.go-scm.json"),
                      **headers).status_code == 403
    assert post_form(client, form_body("bitbucket/post-git.bbweb.json"),
                     **headers).status_code == 403
    assert nothing_stored(master)


# -- errors -------------------------------------------------------------------------------------

@pytest.mark.parametrize("body", [
    "{nope", "[]",
    json.dumps({"canon_url": "https://bitbucket.org", "commits": []}),   # no repository
    json.dumps({"canon_url": "https://bitbucket.org", "repository": {"absolute_url": "/a/"},
                "commits": [{"raw_node": "1", "author": "a", "files": ["x"]}]}),
    json.dumps({"canon_url": "https://bitbucket.org", "repository": {"absolute_url": "/a/"},
                "commits": [{"raw_node": "1", "author": "a", "utctimestamp": "later"}]}),
    json.dumps({"canon_url": 1, "repository": {"absolute_url": "/a/"}, "commits": []}),
])
def test_malformed_post_is_400(bb, body):
    master, client = bb
    resp = post_form(client, form_body(body.encode()))
    assert resp.status_code == 400, resp.data
    assert nothing_stored(master)


def test_form_without_payload_is_400(bb):
    _master, client = bb
    assert post_form(client, b"x=1").status_code == 400


@pytest.mark.parametrize("body", [
    "{nope", "{}",
    json.dumps({"push": {"changes": "x"}, "repository": {}}),
    json.dumps({"push": {"changes": [{"new": {"type": "branch", "name": "m"},
                                      "commits": [{"hash": "1"}]}]}, "repository": {}}),
])
def test_malformed_cloud_is_400(bb, body):
    master, client = bb
    assert post_cloud(client, body.encode()).status_code == 400
    assert nothing_stored(master)


def test_disabled_is_404(make_master):
    m = make_master(hook_cfg({"base": True}))
    client = m.app().test_client()
    assert post_form(client, form_body("bitbucket/post-git.bbweb.json")
                     ).status_code == 404


def test_delivery_id(master):
    from flask import Flask, request

    hook = BitbucketHook({}, master.config)
    app = Flask(__name__)
    with app.test_request_context(headers={"X-Request-UUID": "{a-b-c}",
                                           "X-Hook-UUID": "{hook}"}):
        assert hook.delivery_id(request) == "{a-b-c}"
    with app.test_request_context(headers={"X-Request-Id": "1-2-3"}):
        assert hook.delivery_id(request) == "1-2-3"
    # the webhook's own id is the same for every delivery: never a delivery id
    with app.test_request_context(headers={"X-Hook-UUID": "{hook}"}):
        assert hook.delivery_id(request) is None


if st is None:
    def test_fuzz_needs_hypothesis():
        pytest.skip("hypothesis is not installed (pip install hypothesis)")
else:
    FUZZ = fuzz_settings()
    REAL = [payload("bitbucket/post-git.bbweb.json"),
            payload("bitbucket/cloud-push.go-scm.json")]

    @FUZZ
    @given(data=json_strategy(), cloud=st.booleans())
    def test_fuzz_random_json_never_500(bb, data, cloud):
        _master, client = bb
        body = json.dumps(data).encode()
        resp = post_cloud(client, body) if cloud else post_form(client, form_body(body))
        assert resp.status_code in ALLOWED_STATUSES, resp.data

    @FUZZ
    @given(body=st.binary(max_size=300), event=st.sampled_from(["repo:push", ""]),
           ctype=st.sampled_from(["application/json", "application/x-www-form-urlencoded",
                                  "text/plain"]))
    def test_fuzz_random_bytes_never_500(bb, body, event, ctype):
        _master, client = bb
        resp = client.post("/change_hook/bitbucket", data=body, content_type=ctype,
                           headers={"X-Event-Key": event} if event else {})
        assert resp.status_code in ALLOWED_STATUSES, resp.data

    @FUZZ
    @given(st.data())
    def test_fuzz_real_payloads_one_field_wrong(bb, data):
        _master, client = bb
        base = data.draw(st.sampled_from(REAL))
        bad = json.dumps(mutate(base, data.draw(st.sampled_from(paths(base))),
                                data.draw(json_strategy()))).encode()
        resp = post_cloud(client, bad) if "push" in base else post_form(client,
                                                                         form_body(bad))
        assert resp.status_code in ALLOWED_STATUSES, resp.data
