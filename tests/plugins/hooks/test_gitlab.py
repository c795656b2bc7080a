"""/change_hook/gitlab with GitLab's own payloads, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

try:
    from hypothesis import given
    from hypothesis import strategies as st
except ImportError:  # the fuzz tests skip
    st = None

from bbweb.plugins.hooks.gitlab import GitLabHook
from tests.plugins.hooks import (
    ALLOWED_STATUSES,
    dialect_site,
    fuzz_settings,
    hook_cfg,
    json_strategy,
    mutate,
    nothing_stored,
    paths,
    stored,
)

TOKEN = "gl-webhook-token"

# Real GitLab webhook bodies, verbatim from drone/go-scm's test data
# (scm/driver/gitlab/testdata/webhooks/): push.json at commit
# b50d1eac47246a33a563eaed299b2d058a6deeb2; branch_delete.json and tag_create.json at
# commit e5894acbec12b4ba420e73abc564e95030ea1ee8 (whitespace-only lines emptied).
PUSH = r"""{
  "object_kind": "push",
  "event_name": "push",
  "before": "0000000000000000000000000000000000000000",
  "after": "2adc9465c4edfc33834e173fe89436a7cb899a1d",
  "ref": "refs/heads/master",
  "checkout_sha": "2adc9465c4edfc33834e173fe89436a7cb899a1d",
  "message": null,
  "user_id": 51764,
  "user_name": "Sid Sijbrandij",
  "user_username": "sytses",
  "user_email": "noreply@gitlab.com",
  "user_avatar": "https://secure.gravatar.com/avatar/8c58a0be77ee441bb8f8595b7f1b4e87?s=80&d=identicon",
  "project_id": 4861503,
  "project": {
    "id": 4861503,
    "name": "hello-world",
    "description": "",
    "web_url": "https://gitlab.com/gitlab-org/hello-world",
    "avatar_url": null,
    "git_ssh_url": "git@gitlab.com:gitlab-org/hello-world.git",
    "git_http_url": "https://gitlab.com/gitlab-org/hello-world.git",
    "namespace": "sytses",
    "visibility_level": 0,
    "path_with_namespace": "gitlab-org/hello-world",
    "default_branch": "master",
    "ci_config_path": null,
    "homepage": "https://gitlab.com/gitlab-org/hello-world",
    "url": "git@gitlab.com:gitlab-org/hello-world.git",
    "ssh_url": "git@gitlab.com:gitlab-org/hello-world.git",
    "http_url": "https://gitlab.com/gitlab-org/hello-world.git"
  },
  "commits": [
    {
      "id": "2adc9465c4edfc33834e173fe89436a7cb899a1d",
      "message": "added readme\n",
      "timestamp": "2017-12-10T08:26:38-08:00",
      "url": "https://gitlab.com/gitlab-org/hello-world/commit/2adc9465c4edfc33834e173fe89436a7cb899a1d",
      "author": {
        "name": "Sid Sijbrandij",
        "email": "noreply@gitlab.com"
      },
      "added": [
        "README.md"
      ],
      "modified": [

      ],
      "removed": [

      ]
    }
  ],
  "total_commits_count": 1,
  "repository": {
    "name": "hello-world",
    "url": "git@gitlab.com:gitlab-org/hello-world.git",
    "description": "",
    "homepage": "https://gitlab.com/gitlab-org/hello-world",
    "git_http_url": "https://gitlab.com/gitlab-org/hello-world.git",
    "git_ssh_url": "git@gitlab.com:gitlab-org/hello-world.git",
    "visibility_level": 0
  }
}
"""  # noqa: E501

BRANCH_DELETE = r"""{
  "object_kind": "push",
  "event_name": "push",
  "before": "c4c79227ed610f1151f05bbc5be33b4f340d39c8",
  "after": "0000000000000000000000000000000000000000",
  "ref": "refs\/heads\/feature",
  "checkout_sha": null,
  "message": null,
  "user_id": 51764,
  "user_name": "Sid Sijbrandij",
  "user_username": "sytses",
  "user_email": "noreply@gitlab.com",
  "user_avatar": "https:\/\/secure.gravatar.com\/avatar\/8c58a0be77ee441bb8f8595b7f1b4e87?s=80&d=identicon",
  "project_id": 4861503,
  "project": {
    "id": 4861503,
    "name": "hello-world",
    "description": "",
    "web_url": "https:\/\/gitlab.com\/gitlab-org\/hello-world",
    "avatar_url": null,
    "git_ssh_url": "git@gitlab.com:gitlab-org\/hello-world.git",
    "git_http_url": "https:\/\/gitlab.com\/gitlab-org\/hello-world.git",
    "namespace": "gitlab-org",
    "visibility_level": 0,
    "path_with_namespace": "gitlab-org\/hello-world",
    "default_branch": "master",
    "ci_config_path": null,
    "homepage": "https:\/\/gitlab.com\/gitlab-org\/hello-world",
    "url": "git@gitlab.com:gitlab-org\/hello-world.git",
    "ssh_url": "git@gitlab.com:gitlab-org\/hello-world.git",
    "http_url": "https:\/\/gitlab.com\/gitlab-org\/hello-world.git"
  },
  "commits": [

  ],
  "total_commits_count": 0,
  "repository": {
    "name": "hello-world",
    "url": "git@gitlab.com:gitlab-org\/hello-world.git",
    "description": "",
    "homepage": "https:\/\/gitlab.com\/gitlab-org\/hello-world",
    "git_http_url": "https:\/\/gitlab.com\/gitlab-org\/hello-world.git",
    "git_ssh_url": "git@gitlab.com:gitlab-org\/hello-world.git",
    "visibility_level": 0
  }
}
"""  # noqa: E501

TAG_CREATE = r"""{
  "object_kind": "tag_push",
  "event_name": "tag_push",
  "before": "0000000000000000000000000000000000000000",
  "after": "2adc9465c4edfc33834e173fe89436a7cb899a1d",
  "ref": "refs\/tags\/v1.0.0",
  "checkout_sha": "2adc9465c4edfc33834e173fe89436a7cb899a1d",
  "message": null,
  "user_id": 51764,
  "user_name": "Sid Sijbrandij",
  "user_username": "sytses",
  "user_email": "noreply@gitlab.com",
  "user_avatar": "https:\/\/secure.gravatar.com\/avatar\/8c58a0be77ee441bb8f8595b7f1b4e87?s=80&d=identicon",
  "project_id": 4861503,
  "project": {
    "id": 4861503,
    "name": "hello-world",
    "description": "",
    "web_url": "https:\/\/gitlab.com\/gitlab-org\/hello-world",
    "avatar_url": null,
    "git_ssh_url": "git@gitlab.com:gitlab-org\/hello-world.git",
    "git_http_url": "https:\/\/gitlab.com\/gitlab-org\/hello-world.git",
    "namespace": "sytses",
    "visibility_level": 0,
    "path_with_namespace": "gitlab-org\/hello-world",
    "default_branch": "master",
    "ci_config_path": null,
    "homepage": "https:\/\/gitlab.com\/gitlab-org\/hello-world",
    "url": "git@gitlab.com:gitlab-org\/hello-world.git",
    "ssh_url": "git@gitlab.com:gitlab-org\/hello-world.git",
    "http_url": "https:\/\/gitlab.com\/gitlab-org\/hello-world.git"
  },
  "commits": [
    {
      "id": "2adc9465c4edfc33834e173fe89436a7cb899a1d",
      "message": "added readme\n",
      "timestamp": "2017-12-10T08:26:38-08:00",
      "url": "https:\/\/gitlab.com\/gitlab-org\/hello-world\/commit\/2adc9465c4edfc33834e173fe89436a7cb899a1d",
      "author": {
        "name": "Sid Sijbrandij",
        "email": "noreply@gitlab.com"
      },
      "added": [
        "README.md"
      ],
      "modified": [

      ],
      "removed": [

      ]
    }
  ],
  "total_commits_count": 1,
  "repository": {
    "name": "hello-world",
    "url": "git@gitlab.com:gitlab-org\/hello-world.git",
    "description": "",
    "homepage": "https:\/\/gitlab.com\/gitlab-org\/hello-world",
    "git_http_url": "https:\/\/gitlab.com\/gitlab-org\/hello-world.git",
    "git_ssh_url": "git@gitlab.com:gitlab-org\/hello-world.git",
    "visibility_level": 0
  }
}
"""  # noqa: E501


@pytest.fixture
def make_gitlab(make_master):  # type: ignore[no-untyped-def]
    return dialect_site(make_master, "gitlab")


@pytest.fixture
def gl(make_gitlab):  # type: ignore[no-untyped-def]
    return make_gitlab()


@pytest.fixture
def gl_secret(make_gitlab):  # type: ignore[no-untyped-def]
    return make_gitlab({"secret": TOKEN})


def post(client, body, event="Push Hook", url="/change_hook/gitlab",
         **headers):  # type: ignore[no-untyped-def]
    if isinstance(body, str):
        body = body.encode()
    if event is not None:
        headers["X-Gitlab-Event"] = event
    return client.post(url, data=body, content_type="application/json", headers=headers)


def test_push(gl):
    master, client = gl
    resp = post(client, PUSH, url="/change_hook/gitlab?project=hello&codebase=hw")
    assert resp.status_code == 202, resp.data
    (ch,) = stored(master)
    assert ch.author == "Sid Sijbrandij <noreply@gitlab.com>"
    assert ch.files == ["README.md"]
    assert ch.comments == "added readme\n"
    assert ch.revision == "2adc9465c4edfc33834e173fe89436a7cb899a1d"
    assert ch.when == datetime.fromisoformat("2017-12-10T08:26:38-08:00").timestamp()
    assert ch.branch == "master"
    assert ch.repository == "git@gitlab.com:gitlab-org/hello-world.git"
    assert ch.revlink == ("https://gitlab.com/gitlab-org/hello-world/commit/"
                          "2adc9465c4edfc33834e173fe89436a7cb899a1d")
    assert (ch.project, ch.codebase, ch.src, ch.category) == ("hello", "hw", "git", None)
    assert ch.properties == []


def test_push_without_event_header(gl):
    """0.8 read the body only; a sender without the header still works."""
    master, client = gl
    assert post(client, PUSH, event=None).status_code == 202
    assert stored(master)[0].project == ""


def test_several_commits_and_distinct(gl):
    master, client = gl
    data = json.loads(PUSH)
    second = dict(data["commits"][0], id="b" * 40, message="second", added=[],
                  modified=["README.md"], removed=["old.txt"])
    skipped = dict(second, id="c" * 40, distinct=False)
    data["commits"] += [second, skipped]
    assert post(client, json.dumps(data)).status_code == 202
    first, last = stored(master)
    assert [first.revision, last.revision] == ["2adc9465c4edfc33834e173fe89436a7cb899a1d",
                                               "b" * 40]
    assert last.files == ["README.md", "old.txt"]


@pytest.mark.parametrize("body,event", [
    (BRANCH_DELETE, "Push Hook"),
    (TAG_CREATE, "Tag Push Hook"),
    (TAG_CREATE, None),                 # object_kind tag_push
    (TAG_CREATE, "Push Hook"),          # refs/tags/ is not a branch either way
    (PUSH, "Merge Request Hook"),
    (PUSH, "Pipeline Hook"),
])
def test_no_bogus_changes(gl, body, event):
    master, client = gl
    assert post(client, body, event=event).status_code == 200
    assert nothing_stored(master)


def test_system_hook_push(gl):
    master, client = gl
    assert post(client, PUSH, event="System Hook").status_code == 202
    assert len(stored(master)) == 1


def test_token(gl_secret):
    master, client = gl_secret
    assert post(client, PUSH, **{"X-Gitlab-Token": TOKEN}).status_code == 202
    assert len(stored(master)) == 1


@pytest.mark.parametrize("headers", [{}, {"X-Gitlab-Token": "wrong"},
                                     {"X-Gitlab-Token": TOKEN + " "},
                                     {"X-Gitlab-Token": TOKEN[:-1]},
                                     {"X-Gitlab-Token": "ÿ"}])
def test_missing_or_wrong_token_is_403(gl_secret, headers):
    master, client = gl_secret
    resp = post(client, PUSH, **headers)
    assert resp.status_code == 403
    assert nothing_stored(master)


@pytest.mark.parametrize("body", [
    "{oops", "[]", "null", "",
    json.dumps({"ref": "refs/heads/x", "commits": []}),              # no repository
    json.dumps({"ref": "refs/heads/x", "repository": {"url": 3}, "commits": []}),
    json.dumps({"ref": "refs/heads/x", "repository": {"url": "u"}, "commits": {}}),
    json.dumps({"ref": "refs/heads/x", "repository": {"url": "u"},
                "commits": [{"id": "1", "author": {"name": "a"}, "timestamp": "soon"}]}),
])
def test_malformed_is_400(gl, body):
    master, client = gl
    resp = post(client, body)
    assert resp.status_code == 400, resp.data
    assert nothing_stored(master)


def test_disabled_is_404(make_master):
    m = make_master(hook_cfg({"base": True}))
    assert post(m.app().test_client(), PUSH).status_code == 404


def test_delivery_id_is_the_idempotency_key(master):
    from flask import Flask, request

    hook = GitLabHook({}, master.config)
    with Flask(__name__).test_request_context(
            headers={"Idempotency-Key": "908a6d9e-45fd-46c8-97e6-c4f350f219dd"}):
        assert hook.delivery_id(request) == "908a6d9e-45fd-46c8-97e6-c4f350f219dd"


if st is None:
    def test_fuzz_needs_hypothesis():
        pytest.skip("hypothesis is not installed (pip install hypothesis)")
else:
    FUZZ = fuzz_settings()
    EVENTS = st.sampled_from(["Push Hook", "Tag Push Hook", "System Hook", None])

    @FUZZ
    @given(data=json_strategy(), event=EVENTS)
    def test_fuzz_random_json_never_500(gl, data, event):
        _master, client = gl
        resp = post(client, json.dumps(data), event=event)
        assert resp.status_code in ALLOWED_STATUSES, resp.data

    @FUZZ
    @given(body=st.binary(max_size=300), event=EVENTS)
    def test_fuzz_random_bytes_never_500(gl, body, event):
        _master, client = gl
        assert post(client, body, event=event).status_code in ALLOWED_STATUSES

    @FUZZ
    @given(st.data())
    def test_fuzz_real_payload_one_field_wrong(gl, data):
        _master, client = gl
        base = json.loads(PUSH)
        bad = mutate(base, data.draw(st.sampled_from(paths(base))),
                     data.draw(json_strategy()))
        assert post(client, json.dumps(bad)).status_code in ALLOWED_STATUSES
