"""The Example Forge dialect on its own: requests in, ChangeInput out (no master needed).

Run with ``pytest tests`` from the package directory once it is installed.
"""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from bbweb_hook_example import ExampleForgeHook
from flask import Flask

PUSH = {
    "ref": "refs/heads/main",
    "deleted": False,
    "pusher": "alice",
    "repository": {"name": "widget", "clone_url": "https://forge.example/acme/widget.git",
                   "web_url": "https://forge.example/acme/widget"},
    "commits": [
        {"sha": "9fceb02d0ae598e95dc970b74767f19372d61af8",
         "author": {"name": "Alice", "email": "alice@example.org"},
         "message": "Fix the frobnicator", "timestamp": 1700000000,
         "files": {"added": ["a.c"], "modified": ["b.c"], "removed": ["c.c"]}},
        {"sha": "de8251ff97ee194a289832576287d6f8ad74e3d0",
         "author": {"name": "Bob"}, "message": "Docs", "timestamp": 1700000060,
         "files": {"modified": ["README"]}},
    ],
}

app = Flask(__name__)


def changes(hook, payload, event="push", headers=None, raw=None):
    body = raw if raw is not None else json.dumps(payload).encode()
    with app.test_request_context("/change_hook/example", method="POST", data=body,
                                  content_type="application/json",
                                  headers={"X-Forge-Event": event, **(headers or {})}):
        from flask import request

        return hook.get_changes(request), hook.delivery_id(request)


def test_push_gives_one_change_per_commit():
    got, delivery = changes(ExampleForgeHook({}, None), PUSH,
                            headers={"X-Forge-Delivery": "d-1"})
    assert delivery == "d-1"
    assert [c.revision for c in got] == [c["sha"] for c in PUSH["commits"]]
    first = got[0]
    assert first.author == "Alice <alice@example.org>"
    assert first.files == ["a.c", "b.c", "c.c"]
    assert first.branch == "main" and first.project == "widget"
    assert first.repository == "https://forge.example/acme/widget.git"
    assert first.revlink == ("https://forge.example/acme/widget/commit/"
                             "9fceb02d0ae598e95dc970b74767f19372d61af8")
    assert first.when == 1700000000.0 and first.src == "git"
    assert first.properties == {"forge_pusher": "alice"}
    assert got[1].author == "Bob"


def test_tags_deletions_and_pings_give_nothing():
    hook = ExampleForgeHook({}, None)
    assert changes(hook, dict(PUSH, ref="refs/tags/v1"))[0] == []
    assert changes(hook, dict(PUSH, deleted=True))[0] == []
    assert changes(hook, {}, event="ping")[0] == []


def test_malformed_requests_are_value_errors_without_the_body():
    hook = ExampleForgeHook({}, None)
    with pytest.raises(ValueError) as err:
        changes(hook, None, raw=b"{not json <script>")
    assert "<script>" not in str(err.value)
    with pytest.raises(ValueError):
        changes(hook, dict(PUSH, commits="many"))
    with pytest.raises(ValueError):
        changes(hook, PUSH, event="fork")


def test_secret_requires_a_valid_signature():
    hook = ExampleForgeHook({"secret": "s3cret"}, None)
    body = json.dumps(PUSH).encode()
    good = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert len(changes(hook, None, raw=body, headers={"X-Forge-Signature": good})[0]) == 2
    with pytest.raises(PermissionError):
        changes(hook, None, raw=body)
    with pytest.raises(PermissionError):
        changes(hook, None, raw=body + b" ", headers={"X-Forge-Signature": good})


def test_options_are_checked():
    with pytest.raises(ValueError):
        ExampleForgeHook({"secret": 42}, None)
    assert ExampleForgeHook({"project": "p"}, None).project == "p"
