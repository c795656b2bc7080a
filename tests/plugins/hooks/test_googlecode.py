"""/change_hook/googlecode with a post-commit body and HMAC as Google Code sent them (the
documented format, data written for bbweb), on SQLite and PostgreSQL."""

from __future__ import annotations

import json

import pytest

try:
    from hypothesis import given
    from hypothesis import strategies as st
except ImportError:  # the fuzz tests skip
    st = None

from bbweb.plugins.hooks.googlecode import GoogleCodeHook
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

BODY = "googlecode/post-commit-hg.bbweb.json"
HEADERS = "googlecode/post-commit-hg.headers.bbweb.json"
HEADER = "Google-Code-Project-Hosting-Hook-Hmac"
REVISION = "d41c7be0953a26f8e1b4c07a9d25e63f18b0c9a4"
SECRET = "q7Rm-4vLx9WeP2aZ"  # the secret_key in HEADERS' _hook_config


@pytest.fixture
def make_googlecode(make_master):  # type: ignore[no-untyped-def]
    return dialect_site(make_master, "googlecode")


@pytest.fixture
def gc(make_googlecode):  # type: ignore[no-untyped-def]
    """Configured as the delivery in HEADERS expects (its secret_key and branch)."""
    return make_googlecode(payload(HEADERS)["_hook_config"])


@pytest.fixture
def gc_open(make_googlecode):  # type: ignore[no-untyped-def]
    """No secret_key: anything that parses is processed."""
    return make_googlecode(True)


def post(client, body: bytes, **headers):  # type: ignore[no-untyped-def]
    return client.post("/change_hook/googlecode", data=body,
                       content_type="application/json; charset=UTF-8", headers=headers)


def test_signed_delivery_is_accepted(gc):
    """The body and header exactly as Google Code sends them (HMAC-MD5 of the raw body)."""
    master, client = gc
    recorded = payload(HEADERS)
    body = payload_bytes(BODY)
    assert recorded["_hook_config"]["secret_key"] == SECRET
    assert recorded[HEADER] == sign(SECRET, body, "md5")
    assert int(recorded["Content-Length"]) == len(body)
    resp = post(client, body, **{HEADER: recorded[HEADER]})
    assert resp.status_code == 202, resp.data
    (ch,) = stored(master)
    assert ch.author == "Tomas Varga <tomas@lumen-sim.example>"  # \u003C...\u003E decoded
    assert ch.files == ["/src/grid.c"]
    assert ch.comments == "Light the grid's edge cells too"
    assert ch.revision == REVISION
    assert ch.when == 1330512345.0
    assert ch.branch == "test"  # the configured branch
    assert ch.revlink == f"http://lumen-sim.googlecode.com/hg-history/{REVISION}/"
    assert ch.repository == "https://code.google.com/p/lumen-sim/"
    assert ch.project == "lumen-sim"
    assert ch.src == "Google Code"


def test_header_is_case_insensitive_and_hex_case_too(gc):
    master, client = gc
    body = payload_bytes(BODY)
    digest = sign(SECRET, body, "md5").upper()
    assert post(client, body, **{HEADER.lower(): digest}).status_code == 202
    assert len(stored(master)) == 1


@pytest.mark.parametrize("value", [None, "", "0" * 32, "truncated", "not hex at all", "ÿÿ"])
def test_missing_or_wrong_hmac_is_403(gc, value):
    master, client = gc
    if value == "truncated":  # the right digest less its last hex digit
        value = payload(HEADERS)[HEADER][:-1]
    headers = {} if value is None else {HEADER: value}
    assert post(client, payload_bytes(BODY), **headers).status_code == 403
    assert nothing_stored(master)


def test_hmac_covers_the_exact_body(gc):
    master, client = gc
    recorded = payload(HEADERS)
    body = payload_bytes(BODY) + b"\n"  # same JSON, one more byte
    assert post(client, body, **{HEADER: recorded[HEADER]}).status_code == 403
    assert nothing_stored(master)


def test_default_branch_and_no_key(make_googlecode):
    """Without secret_key any request is accepted (as in 0.8, with a logged warning), and
    no header is needed; the branch defaults to 'default'."""
    master, client = make_googlecode(True)
    assert post(client, payload_bytes(BODY)).status_code == 202
    assert stored(master)[0].branch == "default"


def test_revision_branch_and_file_union(make_googlecode):
    master, client = make_googlecode({"branch": "trunk"})
    data = payload(BODY)
    rev = data["revisions"][0]
    rev.update(added=["a", "b"], modified=["b", "c"], removed=["a"], branch="feature")
    svn = dict(rev, revision=42)
    del svn["branch"]
    data["revisions"].append(svn)
    assert post(client, json.dumps(data).encode()).status_code == 202
    first, second = stored(master)
    assert first.files == ["a", "b", "c"]
    assert first.branch == "feature"
    assert (second.revision, second.branch) == ("42", "trunk")


@pytest.mark.parametrize("body", [
    b"{not json", b"[]", b"",
    json.dumps({"revisions": "x"}).encode(),
    json.dumps({"revisions": [{"author": "a", "revision": "1", "timestamp": "noon"}]}).encode(),
    json.dumps({"revisions": [{"author": "a", "revision": "1", "timestamp": 1e300}]}).encode(),
    json.dumps({"revisions": [{"author": "a", "revision": "1", "added": [1]}]}).encode(),
    json.dumps({"revisions": [{"revision": "1"}]}).encode(),
    json.dumps({"revisions": [{"author": "a"}]}).encode(),
])
def test_malformed_is_400(make_googlecode, body):
    master, client = make_googlecode(True)
    assert post(client, body).status_code == 400
    assert nothing_stored(master)


def test_disabled_is_404(make_master):
    m = make_master(hook_cfg({"base": True}))
    assert post(m.app().test_client(), payload_bytes(BODY)).status_code == 404


def test_options_checked(master):
    with pytest.raises(ValueError, match="secret"):
        GoogleCodeHook({"secret": "x"}, master.config)  # the option is secret_key
    with pytest.raises(TypeError):
        GoogleCodeHook({"branch": 3}, master.config)


if st is None:
    def test_fuzz_needs_hypothesis():
        pytest.skip("hypothesis is not installed (pip install hypothesis)")
else:
    FUZZ = fuzz_settings()

    @FUZZ
    @given(data=json_strategy())
    def test_fuzz_random_json_never_500(gc_open, data):
        _master, client = gc_open
        resp = post(client, json.dumps(data).encode())
        assert resp.status_code in ALLOWED_STATUSES, resp.data

    @FUZZ
    @given(body=st.binary(max_size=300))
    def test_fuzz_random_bytes_never_500(gc, body):
        _master, client = gc
        digest = sign(SECRET, body, "md5")
        assert post(client, body, **{HEADER: digest}).status_code in ALLOWED_STATUSES

    @FUZZ
    @given(st.data())
    def test_fuzz_real_payload_one_field_wrong(gc, data):
        _master, client = gc
        base = payload(BODY)
        body = json.dumps(mutate(base, data.draw(st.sampled_from(paths(base))),
                                 data.draw(json_strategy()))).encode()
        digest = sign(SECRET, body, "md5")
        assert post(client, body, **{HEADER: digest}).status_code in ALLOWED_STATUSES
