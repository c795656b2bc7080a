"""/change_hook/github with payloads as GitHub sends them (published examples, and the
original post-receive format written for bbweb: tests/data/payloads/SOURCES), on SQLite and
PostgreSQL."""

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

from bbweb.plugins.hooks.github import GitHubHook
from tests.conftest import DEFAULT_CFG
from tests.plugins.hooks import (
    ALLOWED_STATUSES,
    dialect_site,
    fuzz_settings,
    json_strategy,
    mutate,
    nothing_stored,
    paths,
    payload,
    payload_bytes,
    props,
    sign,
    stored,
)

SECRET = "It's a Secret to Everybody"
LEGACY_PUSH = "github/legacy-push-2-commits.bbweb.json"
LEGACY_FIRST = "3f2a9c7e1b0d4e8f6a5c2b1d9e7f0a3c4b6d8e2f"
LEGACY_SECOND = "9b8e7d6c5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d"


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


@pytest.fixture
def make_github(make_master):  # type: ignore[no-untyped-def]
    return dialect_site(make_master, "github")


@pytest.fixture
def gh(make_github):  # type: ignore[no-untyped-def]
    return make_github()


@pytest.fixture
def gh_secret(make_github):  # type: ignore[no-untyped-def]
    return make_github({"secret": SECRET})


def post_json(client, body: bytes, event: str = "push", url: str = "/change_hook/github",
              **headers):  # type: ignore[no-untyped-def]
    headers = {"X-GitHub-Event": event, "X-GitHub-Delivery": str(uuid.uuid4()), **headers}
    return client.post(url, data=body, content_type="application/json", headers=headers)


def post_form(client, body_json: bytes, event: str = "push", url: str = "/change_hook/github",
              **headers):  # type: ignore[no-untyped-def]
    form = urlencode({"payload": body_json.decode()}).encode()
    return client.post(url, data=form, content_type="application/x-www-form-urlencoded",
                       headers={"X-GitHub-Event": event, **headers}), form


# -- push -----------------------------------------------------------------------------------------

def test_form_encoded_push_two_commits(gh):
    """GitHub's original post-receive payload, sent as the form field ``payload=``."""
    master, client = gh
    resp, _ = post_form(client, payload_bytes(LEGACY_PUSH))
    assert resp.status_code == 202, resp.data
    first, second = stored(master)
    assert first.author == "Ada Quill <ada@quarkworks.example>"
    assert first.files == ["src/count.c"]
    assert first.comments == "Teach the frobnicator to count"
    assert first.revision == LEGACY_FIRST
    assert first.revlink == f"http://github.com/quarkworks/frobnicator/commit/{LEGACY_FIRST}"
    assert first.when == epoch("2011-03-07T09:15:42-05:00") == 1299507342.0
    assert first.branch == "master"
    assert first.repository == "http://github.com/quarkworks/frobnicator"
    assert (first.project, first.codebase, first.category, first.src) == ("", "", None, "git")
    assert first.properties == []
    # modified then removed, in that order (not sorted)
    assert second.files == ["src/main.c", "Makefile.old"]
    assert second.revision == LEGACY_SECOND
    assert second.when == epoch("2011-03-07T09:48:03-05:00")


def test_json_push_with_project_and_codebase(gh):
    master, client = gh
    resp = post_json(client, payload_bytes("github/push-1-commit.go-scm.json"),
                     url="/change_hook/github?project=hello&codebase=hw")
    assert resp.status_code == 202, resp.data
    (ch,) = stored(master)
    assert ch.author == ("Codertocat <21031067+Codertocat@users.noreply.github.com>")
    assert ch.files == ["README.md"]
    assert ch.comments == "Update README"
    assert ch.revision == "199eddf46df50de8d02e99bf1c5fdb4101338224"
    assert ch.when == epoch("2018-06-15T13:01:51-07:00")
    assert (ch.branch, ch.project, ch.codebase) == ("master", "hello", "hw")
    assert ch.repository == "https://github.com/Codertocat/Hello-World"
    assert ch.revlink.endswith("/199eddf46df50de8d02e99bf1c5fdb4101338224")


def test_form_project_field_counts_like_a_query_argument(gh):
    master, client = gh
    body = payload_bytes("github/push-1-commit.go-scm.json")
    form = urlencode({"payload": body.decode(), "project": "viaform"}).encode()
    resp = client.post("/change_hook/github", data=form,
                       content_type="application/x-www-form-urlencoded",
                       headers={"X-GitHub-Event": "push"})
    assert resp.status_code == 202
    assert stored(master)[0].project == "viaform"


def test_new_branch_push_with_zulu_timestamp(gh):
    master, client = gh
    resp = post_json(client, payload_bytes("github/push-new-branch.octokit.json"))
    assert resp.status_code == 202
    (ch,) = stored(master)
    assert ch.when == epoch("2019-05-15T15:19:25+00:00")
    assert ch.branch == "master"


def test_no_event_header_means_push(gh):
    """GitHub's old post-receive hooks (what 0.8 served) sent no X-GitHub-Event."""
    master, client = gh
    form = urlencode({"payload": payload_bytes(LEGACY_PUSH).decode()})
    resp = client.post("/change_hook/github", data=form,
                       content_type="application/x-www-form-urlencoded")
    assert resp.status_code == 202
    assert len(stored(master)) == 2


def test_commits_marked_not_distinct_are_skipped(gh):
    master, client = gh
    data = payload(LEGACY_PUSH)
    data["commits"][0]["distinct"] = False  # already in another branch: built there
    resp = post_json(client, json.dumps(data).encode())
    assert resp.status_code == 202
    (ch,) = stored(master)
    assert ch.revision == LEGACY_SECOND


def test_all_commits_not_distinct_is_no_change(gh):
    master, client = gh
    data = payload(LEGACY_PUSH)
    for commit in data["commits"]:
        commit["distinct"] = False
    resp = post_json(client, json.dumps(data).encode())
    assert resp.status_code == 200
    assert nothing_stored(master)


@pytest.mark.parametrize("name", [
    "github/push-tag-2-commits.bbweb.json",            # a tag carrying commits
    "github/push-tag-create.bbweb.json",               # created, head_commit, no commits
    "github/push-tag-create.go-scm.json",
    "github/push-tag-delete.go-scm.json",
    "github/push-tag-delete.octokit.json",
    "github/push-branch-delete.go-scm.json",           # deletion: never a change
    "github/push-branch-create.go-scm.json",           # new branch, no new commits
    "github/legacy-push-nonbranch-ref.bbweb.json",     # refs/notes/review
    "github/legacy-push-no-commits.bbweb.json",
])
def test_pushes_that_are_no_change(gh, name):
    master, client = gh
    resp = post_json(client, payload_bytes(name))
    assert resp.status_code == 200, resp.data
    assert nothing_stored(master)


def test_deleted_flag_wins_even_with_commits(gh):
    master, client = gh
    data = payload("github/push-1-commit.go-scm.json")
    data["deleted"] = True
    assert post_json(client, json.dumps(data).encode()).status_code == 200
    assert nothing_stored(master)


def test_slashes_in_branch_names_are_kept(gh):
    master, client = gh
    data = payload("github/push-1-commit.go-scm.json")
    data["ref"] = "refs/heads/feature/x"
    assert post_json(client, json.dumps(data).encode()).status_code == 202
    assert stored(master)[0].branch == "feature/x"


# -- other events ---------------------------------------------------------------------------------

@pytest.mark.parametrize("event,name", [
    ("ping", "github/ping.octokit.json"),
    ("create", "github/create-event-tag.octokit.json"),
    ("delete", "github/delete-event-tag.octokit.json"),
    ("delete", "github/delete-event-branch.go-scm.json"),
    ("issues", "github/ping.octokit.json"),
])
def test_other_events_are_answered_200_and_store_nothing(gh, event, name, caplog):
    master, client = gh
    caplog.set_level("INFO", logger="bbweb.change_hook.github")
    resp = post_json(client, payload_bytes(name), event=event)
    assert resp.status_code == 200, resp.data
    assert nothing_stored(master)
    if event == "ping":
        assert "ping" in caplog.text


def test_signed_ping_is_accepted_and_unsigned_refused(gh_secret):
    master, client = gh_secret
    body = payload_bytes("github/ping.octokit.json")
    resp = post_json(client, body, event="ping",
                     **{"X-Hub-Signature-256": "sha256=" + sign(SECRET, body, "sha256")})
    assert resp.status_code == 200
    assert post_json(client, body, event="ping").status_code == 403


# -- pull requests --------------------------------------------------------------------------------

# octokit/webhooks payload-examples/api.github.com/pull_request/opened.payload.json (commit
# 0ec20b74bfc1939b2cab49ead31452f3be5db69a), cut down to the fields GitHub always sends
# that a dialect could read; the values are unchanged.
PR_REPO = {
    "id": 186853002, "name": "Hello-World", "full_name": "Codertocat/Hello-World",
    "private": False, "owner": {"login": "Codertocat", "id": 21031067, "type": "User"},
    "html_url": "https://github.com/Codertocat/Hello-World",
    "url": "https://api.github.com/repos/Codertocat/Hello-World",
    "git_url": "git://github.com/Codertocat/Hello-World.git",
    "ssh_url": "git@github.com:Codertocat/Hello-World.git",
    "clone_url": "https://github.com/Codertocat/Hello-World.git",
    "default_branch": "master",
}
PR_USER = {"login": "Codertocat", "id": 21031067, "type": "User", "site_admin": False,
           "html_url": "https://github.com/Codertocat"}
PR_OPENED = {
    "action": "opened",
    "number": 2,
    "pull_request": {
        "url": "https://api.github.com/repos/Codertocat/Hello-World/pulls/2",
        "id": 279147437,
        "html_url": "https://github.com/Codertocat/Hello-World/pull/2",
        "number": 2, "state": "open", "locked": False,
        "title": "Update the README with new information.",
        "user": PR_USER,
        "body": "This is a pretty simple change that we need to pull into master.",
        "created_at": "2019-05-15T15:20:33Z", "updated_at": "2019-05-15T15:20:33Z",
        "closed_at": None, "merged_at": None, "merge_commit_sha": None,
        "head": {"label": "Codertocat:changes", "ref": "changes",
                 "sha": "ec26c3e57ca3a959ca5aad62de7213c562f8c821", "user": PR_USER,
                 "repo": PR_REPO},
        "base": {"label": "Codertocat:master", "ref": "master",
                 "sha": "f95f852bd8fca8fcc58a9a2d6c842781e32a215e", "user": PR_USER,
                 "repo": PR_REPO},
        "draft": False, "merged": False, "commits": 1, "additions": 1, "deletions": 1,
        "changed_files": 1,
    },
    "repository": PR_REPO,
    "sender": PR_USER,
}


def pr_payload(action: str = "opened", **pr_changes) -> bytes:  # type: ignore[no-untyped-def]
    data = json.loads(json.dumps(PR_OPENED))
    data["action"] = action
    data["pull_request"].update(pr_changes)
    return json.dumps(data).encode()


@pytest.mark.parametrize("action", ["opened", "synchronize", "reopened"])
def test_pull_request_is_a_change_on_its_head(gh, action):
    master, client = gh
    resp = post_json(client, pr_payload(action), event="pull_request",
                     url="/change_hook/github?project=hw")
    assert resp.status_code == 202, resp.data
    (ch,) = stored(master)
    assert ch.revision == "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
    assert ch.branch == "changes"
    assert ch.author == "Codertocat"
    assert ch.comments == ("Update the README with new information.\n\n"
                           "This is a pretty simple change that we need to pull into master.")
    assert ch.category == "pull_request"
    assert ch.revlink == "https://github.com/Codertocat/Hello-World/pull/2"
    assert ch.repository == "https://github.com/Codertocat/Hello-World"
    assert ch.when == epoch("2019-05-15T15:20:33+00:00")
    assert ch.project == "hw"
    assert props(ch) == {"github.pr_number": 2, "github.base_ref": "master"}
    assert ch.files == []


def test_pull_request_from_a_fork_names_the_fork(gh):
    master, client = gh
    data = json.loads(pr_payload())
    data["pull_request"]["head"]["repo"] = dict(
        PR_REPO, html_url="https://github.com/forker/Hello-World")
    assert post_json(client, json.dumps(data).encode(),
                     event="pull_request").status_code == 202
    assert stored(master)[0].repository == "https://github.com/forker/Hello-World"


def test_pull_request_with_null_body(gh):
    master, client = gh
    assert post_json(client, pr_payload(body=None), event="pull_request").status_code == 202
    assert stored(master)[0].comments == "Update the README with new information."


@pytest.mark.parametrize("action", ["closed", "labeled", "edited", "assigned"])
def test_other_pull_request_actions_are_ignored(gh, action):
    master, client = gh
    assert post_json(client, pr_payload(action), event="pull_request").status_code == 200
    assert nothing_stored(master)


def test_pull_request_as_form(gh):
    master, client = gh
    resp, _ = post_form(client, pr_payload("synchronize"), event="pull_request")
    assert resp.status_code == 202
    assert stored(master)[0].branch == "changes"


# -- signatures -----------------------------------------------------------------------------------

def test_sha256_signature_accepted(gh_secret):
    master, client = gh_secret
    body = payload_bytes("github/push-1-commit.go-scm.json")
    resp = post_json(client, body,
                     **{"X-Hub-Signature-256": "sha256=" + sign(SECRET, body, "sha256")})
    assert resp.status_code == 202, resp.data
    assert len(stored(master)) == 1


def test_sha1_signature_accepted_when_no_sha256(gh_secret):
    master, client = gh_secret
    body = payload_bytes("github/push-1-commit.go-scm.json")
    resp = post_json(client, body, **{"X-Hub-Signature": "sha1=" + sign(SECRET, body, "sha1")})
    assert resp.status_code == 202
    assert len(stored(master)) == 1


def test_signed_form_body(gh_secret):
    """The signature covers the url-encoded body exactly as sent."""
    master, client = gh_secret
    form = urlencode({"payload": payload_bytes(LEGACY_PUSH).decode()}).encode()
    resp = client.post("/change_hook/github", data=form,
                       content_type="application/x-www-form-urlencoded",
                       headers={"X-GitHub-Event": "push",
                                "X-Hub-Signature-256": "sha256=" + sign(SECRET, form,
                                                                        "sha256")})
    assert resp.status_code == 202
    assert len(stored(master)) == 2


def _bad_signatures(body: bytes) -> list[dict[str, str]]:
    good256 = sign(SECRET, body, "sha256")
    return [
        {},                                                             # unsigned
        {"X-Hub-Signature-256": "sha256=" + sign("wrong", body, "sha256")},
        {"X-Hub-Signature-256": "sha256=" + sign(SECRET, body + b" ", "sha256")},
        {"X-Hub-Signature-256": good256},                               # no algorithm prefix
        {"X-Hub-Signature-256": "sha1=" + sign(SECRET, body, "sha1")},  # wrong algorithm
        {"X-Hub-Signature-256": "sha256=" + good256[:-2]},              # truncated
        {"X-Hub-Signature-256": "sha256=ÿÿ"},                           # not hex, not ASCII
        {"X-Hub-Signature": "sha1=" + sign("wrong", body, "sha1")},
        # a bad SHA-256 is not rescued by a good SHA-1
        {"X-Hub-Signature-256": "sha256=" + sign("wrong", body, "sha256"),
         "X-Hub-Signature": "sha1=" + sign(SECRET, body, "sha1")},
    ]


@pytest.mark.parametrize("case", range(len(_bad_signatures(b""))))
def test_bad_or_missing_signature_is_403_and_nothing_stored(gh_secret, case):
    master, client = gh_secret
    body = payload_bytes("github/push-1-commit.go-scm.json")
    headers = _bad_signatures(body)[case]
    resp = post_json(client, body, **headers)
    assert resp.status_code == 403, resp.data
    assert b"Codertocat" not in resp.data
    assert nothing_stored(master)


def test_signature_checked_before_parsing(gh_secret):
    """Garbage without a valid signature is a 403, not a 400: nothing is parsed first."""
    _master, client = gh_secret
    assert post_json(client, b"{not json").status_code == 403


def test_without_secret_signatures_are_not_required(gh):
    master, client = gh
    body = payload_bytes("github/push-1-commit.go-scm.json")
    assert post_json(client, body, **{"X-Hub-Signature-256": "sha256=00"}).status_code == 202


# -- errors ---------------------------------------------------------------------------------------

MARKER = "<script>alert('payload-echo')</script>"


@pytest.mark.parametrize("body", [
    b"{not json " + MARKER.encode(),
    json.dumps([MARKER]).encode(),
    json.dumps({"ref": MARKER}).encode().replace(b'"ref"', b'"rfe"'),   # no ref
    json.dumps({"ref": "refs/heads/x", "repository": {"url": "u"},
                "commits": MARKER}).encode(),
    json.dumps({"ref": "refs/heads/x", "repository": {"url": "u"},
                "commits": [{"id": "1", "author": {"name": "a"},
                             "timestamp": MARKER}]}).encode(),
    json.dumps({"ref": "refs/heads/x", "repository": {"url": "u"},
                "commits": [{"id": "1", "author": MARKER}]}).encode(),
    json.dumps({"ref": "refs/heads/x", "repository": {"url": "u"},
                "commits": [{"id": "1", "author": {"name": "a"},
                             "added": [MARKER, 3]}]}).encode(),
    json.dumps({"ref": "refs/heads/x", "repository": {"url": "u"},
                "commits": [{"id": "1", "author": {"name": MARKER + "\x00"}}]}).encode(),
    json.dumps({"ref": "refs/heads/x", "repository": MARKER, "commits": []}).encode(),
    b"",
])
def test_malformed_push_is_400_without_echo(gh, body):
    master, client = gh
    resp = post_json(client, body)
    assert resp.status_code == 400, resp.data
    assert b"payload-echo" not in resp.data
    assert len(resp.data) < 200
    assert nothing_stored(master)


def test_form_without_payload_field_is_400(gh):
    _master, client = gh
    resp = client.post("/change_hook/github", data={"something": "else"},
                       headers={"X-GitHub-Event": "push"})
    assert resp.status_code == 400
    assert b"payload" in resp.data


def test_malformed_pull_request_is_400(gh):
    master, client = gh
    data = json.loads(pr_payload())
    data["pull_request"]["head"] = {"ref": "x"}
    assert post_json(client, json.dumps(data).encode(),
                     event="pull_request").status_code == 400
    data["pull_request"] = "nope"
    assert post_json(client, json.dumps(data).encode(),
                     event="pull_request").status_code == 400
    assert nothing_stored(master)


def test_disabled_dialect_is_404(make_master):
    m = make_master(DEFAULT_CFG)  # base only
    client = m.app().test_client()
    resp = post_json(client, payload_bytes("github/push-1-commit.go-scm.json"))
    assert resp.status_code == 404
    assert nothing_stored(m)


# -- plugin object --------------------------------------------------------------------------------

def test_delivery_id(master):
    from flask import Flask

    hook = GitHubHook({}, master.config)
    app = Flask(__name__)
    with app.test_request_context(headers={"X-GitHub-Delivery":
                                           "72d3162e-cc78-11e3-81ab-4c9367dc0958"}):
        from flask import request
        assert hook.delivery_id(request) == "72d3162e-cc78-11e3-81ab-4c9367dc0958"
    with app.test_request_context():
        from flask import request
        assert hook.delivery_id(request) is None
    with app.test_request_context(headers={"X-GitHub-Delivery": "x" * 500}):
        from flask import request
        assert hook.delivery_id(request) is None


def test_redelivery_is_stored_once(gh):
    master, client = gh
    body = payload_bytes(LEGACY_PUSH)
    delivery = {"X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958"}
    assert post_json(client, body, **delivery).status_code == 202
    assert post_json(client, body, **delivery).status_code == 200
    assert len(stored(master)) == 2


def test_unknown_option_is_an_error(master):
    with pytest.raises(ValueError, match="secrt"):
        GitHubHook({"secrt": "x"}, master.config)
    with pytest.raises(TypeError):
        GitHubHook({"secret": 42}, master.config)
    GitHubHook({"secret": "s", "max_body_size": 10, "strict": True}, master.config)


def test_codebase_option(make_github):
    master, client = make_github({"codebase": "main-cb"})
    body = payload_bytes("github/push-1-commit.go-scm.json")
    assert post_json(client, body).status_code == 202
    assert post_json(client, body, url="/change_hook/github?codebase=q").status_code == 202
    assert [c.codebase for c in stored(master)] == ["main-cb", "q"]


def test_plugins_toml_reference_entries_are_installed():
    """The commented reference entries in plugins.toml name installed dialects, and each
    one's example options are accepted by it (``poller`` is tolerated while its module is
    not there yet)."""
    import re
    import tomllib
    from importlib.metadata import entry_points

    from tests.plugins.hooks import REPO

    text = (REPO / "plugins.toml").read_text()
    section = re.split(r"^\[change_hooks\]$", text, flags=re.M)[1].split("\n[", 1)[0]
    entries = dict(re.findall(r"^# (\w+) = (\{.*\})$", section, flags=re.M))
    assert {"github", "gitlab", "bitbucket", "googlecode", "poller"} <= set(entries)
    found = {ep.name: ep for ep in entry_points(group="bbweb.change_hooks")}
    for name, options in entries.items():
        assert name in found, f"{name} is not a bbweb.change_hooks entry point"
        try:
            cls = found[name].load()
        except ModuleNotFoundError:
            assert name == "poller", f"{name} does not import"
            continue
        if name != "poller":
            cls(tomllib.loads(f"x = {options}")["x"], None)


# -- fuzz -----------------------------------------------------------------------------------------

if st is None:
    def test_fuzz_needs_hypothesis():
        pytest.skip("hypothesis is not installed (pip install hypothesis)")
else:
    FUZZ = fuzz_settings()
    EVENTS = st.sampled_from(["push", "pull_request", "ping", "", "release"])
    REAL = [payload(LEGACY_PUSH),
            payload("github/push-1-commit.go-scm.json"), json.loads(pr_payload())]

    @FUZZ
    @given(data=json_strategy(), event=EVENTS, form=st.booleans())
    def test_fuzz_random_json_never_500(gh, data, event, form):
        _master, client = gh
        body = json.dumps(data).encode()
        if form:
            resp, _ = post_form(client, body, event=event)
        else:
            resp = post_json(client, body, event=event)
        assert resp.status_code in ALLOWED_STATUSES, resp.data

    @FUZZ
    @given(body=st.binary(max_size=300), event=EVENTS,
           ctype=st.sampled_from(["application/json", "application/x-www-form-urlencoded",
                                  "text/plain", "multipart/form-data"]))
    def test_fuzz_random_bytes_never_500(gh, body, event, ctype):
        _master, client = gh
        resp = client.post("/change_hook/github", data=body, content_type=ctype,
                           headers={"X-GitHub-Event": event})
        assert resp.status_code in ALLOWED_STATUSES, resp.data

    @FUZZ
    @given(st.data())
    def test_fuzz_real_payloads_one_field_wrong(gh, data):
        _master, client = gh
        base = data.draw(st.sampled_from(REAL))
        path = data.draw(st.sampled_from(paths(base)))
        bad = mutate(base, path, data.draw(json_strategy()))
        event = "pull_request" if "pull_request" in base else "push"
        resp = post_json(client, json.dumps(bad).encode(), event=event)
        assert resp.status_code in ALLOWED_STATUSES, resp.data

    LATIN1 = st.characters(min_codepoint=0x20, max_codepoint=0xFF,
                           blacklist_categories=("Cc",))

    @FUZZ
    @given(body=st.binary(max_size=200), sig=st.text(LATIN1, max_size=80))
    def test_fuzz_signed_hook_refuses_forgeries(gh_secret, body, sig):
        master, client = gh_secret
        resp = post_json(client, body, **{"X-Hub-Signature-256": sig})
        assert resp.status_code == 403
        assert nothing_stored(master)
