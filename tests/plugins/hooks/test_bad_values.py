"""Text that cannot be stored or shown (lone surrogates, NUL) and values nested too deeply
are refused where they enter — through every dialect, in form and JSON bodies, through a
third-party dialect the framework knows nothing about, and through the force form — with
a 4xx naming the field, and nothing is stored. On SQLite and PostgreSQL."""

from __future__ import annotations

import copy
import json
from typing import Any
from urllib.parse import urlencode

import pytest

from bbweb.engine.changes import ChangeInput
from bbweb.values.validation import MAX_DOCUMENT_DEPTH, MAX_ENTRY_DEPTH, MAX_PROPERTY_BYTES
from tests.actions.conftest import OPEN_CFG, flashes, post
from tests.plugins.hooks import hook_cfg, nothing_stored, payload, row_counts
from tests.plugins.hooks.test_gitlab import PUSH as GITLAB_PUSH

SURROGATE = "lone \ud800 surrogate"
NUL = "a\x00b"
# What the tester sent: deep enough that Python's JSON decoder or the pages run out of
# stack depending on where they are called from.
VERY_DEEP = 980


def nested(levels: int) -> Any:
    value: Any = "bottom"
    for _ in range(levels):
        value = [value]
    return value


def nested_text(levels: int) -> str:
    """The JSON text of ``levels`` nested lists (json.dumps would itself run out of
    stack for the very deep ones)."""
    return "[" * levels + '"bottom"' + "]" * levels


class ThirdParty:
    """A dialect from another package: properties straight from its JSON body, no checks
    of its own (the framework must apply them)."""

    src = "thirdparty"
    request_properties = False  # its own fixed properties: allow_properties does not apply

    def __init__(self, options: Any, config: Any) -> None:
        self.options = options

    def get_changes(self, request: Any) -> list[ChangeInput]:
        data = json.loads(request.get_data())  # may raise RecursionError itself
        return [ChangeInput(author="tp <tp@example.org>", comments=data.get("comments", ""),
                            revision="abc", properties=data.get("properties", {}))]


@pytest.fixture
def site(make_master):  # type: ignore[no-untyped-def]
    """Every built-in dialect (no secrets) plus a third-party one; base takes any
    property."""
    m = make_master(hook_cfg({"base": {"allow_properties": True}, "github": True,
                              "gitlab": True, "bitbucket": True, "googlecode": True}))
    app = m.app()
    app.extensions["bbweb"].change_hooks["thirdparty"] = ThirdParty({}, m.config)
    yield m, app.test_client()
    app.extensions["bbweb"].db.dispose()


def refused(resp: Any, *words: str) -> str:
    """The answer is a 400 text/plain line containing ``words``."""
    text = resp.get_data(as_text=True)
    assert resp.status_code == 400, (resp.status_code, text)
    assert resp.mimetype == "text/plain" and text.endswith("\n") and text.count("\n") == 1
    for word in words:
        assert word in text, (word, text)
    return text


# -- base: form fields and a JSON body -----------------------------------------------------------

def base_form(client: Any, properties_json: str, **fields: str) -> Any:
    data = {"author": "dev <dev@example.org>", "comments": "c", "properties": properties_json}
    data.update(fields)
    return client.post("/change_hook/base", data=data)


def base_json(client: Any, body_text: str) -> Any:
    return client.post("/change_hook/base", data=body_text.encode(),
                       content_type="application/json")


def test_base_form_surrogate_nul_and_depth_are_refused(site):
    m, client = site
    refused(base_form(client, json.dumps({"ticket": SURROGATE})), "property 'ticket'",
            "unpaired surrogate")
    refused(base_form(client, json.dumps({"ticket": {"k": [NUL]}})), "property 'ticket'",
            "NUL")
    refused(base_form(client, json.dumps({"ticket": 1}), comments=NUL), "'comments'", "NUL")
    refused(base_form(client, json.dumps({"deep": nested(MAX_ENTRY_DEPTH + 1)})), "property 'deep'",
            f"nested more than {MAX_ENTRY_DEPTH} levels")
    refused(base_form(client, '{"deep": ' + nested_text(VERY_DEEP) + "}"), "'properties'",
            "nested")
    refused(base_form(client, '{"deep": ' + nested_text(20000) + "}"), "nested too deeply")
    refused(base_form(client, json.dumps({"big": "x" * (MAX_PROPERTY_BYTES + 1)})),
            "property 'big'", "larger than")
    # a surrogate in a property *name* that is not an identifier: named neutrally
    text = refused(base_form(client, json.dumps({"\ud800": 1})), "property name", "surrogate")
    assert "\ufffd" not in text
    assert nothing_stored(m)
    # the same property at the largest allowed depth is fine
    resp = base_form(client, json.dumps({"deep": nested(MAX_ENTRY_DEPTH)}))
    assert resp.status_code == 202, resp.get_data(as_text=True)


def test_base_json_body_surrogate_and_depth_are_refused(site):
    m, client = site
    body = {"author": "dev <dev@example.org>", "comments": "c"}
    refused(base_json(client, json.dumps({**body, "properties": {"p": SURROGATE}})),
            "property 'p'", "unpaired surrogate")
    refused(base_json(client, json.dumps({**body, "author": SURROGATE})), "'author'")
    too_deep = {"p": nested(MAX_ENTRY_DEPTH + 1)}
    refused(base_json(client, json.dumps({**body, "properties": too_deep})),
            "property 'p'", "nested")
    deep_body = json.dumps(body)[:-1] + ', "properties": {"p": ' + nested_text(VERY_DEEP) + "}}"
    refused(base_json(client, deep_body), "nested")
    refused(base_json(client, nested_text(MAX_DOCUMENT_DEPTH + 1)), "nested more than")
    assert nothing_stored(m)


# -- the forge dialects --------------------------------------------------------------------------

def poison(value: Any, key: str, bad: str) -> Any:
    """A copy of ``value`` with every string under ``key`` (anywhere) replaced by ``bad``."""
    if isinstance(value, dict):
        return {k: (bad if k == key and isinstance(v, str) else poison(v, key, bad))
                for k, v in value.items()}
    if isinstance(value, list):
        return [poison(v, key, bad) for v in value]
    return value


def deepen(document: dict[str, Any], levels: int) -> str:
    """The document's JSON with an extra (ignored) field nested ``levels`` deep."""
    text = json.dumps(document)
    return text[:-1] + ', "x_extra": ' + nested_text(levels) + "}"


def github_json(client: Any, text: str) -> Any:
    return client.post("/change_hook/github", data=text.encode(),
                       content_type="application/json", headers={"X-GitHub-Event": "push"})


def github_form(client: Any, text: str) -> Any:
    return client.post("/change_hook/github", data=urlencode({"payload": text}).encode(),
                       content_type="application/x-www-form-urlencoded",
                       headers={"X-GitHub-Event": "push"})


def gitlab(client: Any, text: str) -> Any:
    return client.post("/change_hook/gitlab", data=text.encode(),
                       content_type="application/json", headers={"X-Gitlab-Event": "Push Hook"})


def bitbucket_form(client: Any, text: str) -> Any:
    return client.post("/change_hook/bitbucket", data=urlencode({"payload": text}).encode(),
                       content_type="application/x-www-form-urlencoded")


def bitbucket_cloud(client: Any, text: str) -> Any:
    return client.post("/change_hook/bitbucket", data=text.encode(),
                       content_type="application/json", headers={"X-Event-Key": "repo:push"})


def googlecode(client: Any, text: str) -> Any:
    return client.post("/change_hook/googlecode", data=text.encode(),
                       content_type="application/json; charset=UTF-8")


FORGES = {
    "github-json": (github_json, lambda: payload("github/legacy-push-2-commits.bbweb.json")),
    "github-form": (github_form, lambda: payload("github/legacy-push-2-commits.bbweb.json")),
    "gitlab": (gitlab, lambda: json.loads(GITLAB_PUSH)),
    "bitbucket-form": (bitbucket_form, lambda: payload("bitbucket/post-git.bbweb.json")),
    "bitbucket-cloud": (bitbucket_cloud, lambda: payload("bitbucket/cloud-push.go-scm.json")),
    "googlecode": (googlecode,
                   lambda: payload("googlecode/post-commit-hg.bbweb.json")),
}


@pytest.mark.parametrize("forge", sorted(FORGES))
def test_forge_dialects_refuse_bad_text_and_deep_payloads(site, forge):
    m, client = site
    send, make = FORGES[forge]
    good = make()
    for bad, word in ((SURROGATE, "unpaired surrogate"), (NUL, "NUL")):
        refused(send(client, json.dumps(poison(copy.deepcopy(good), "message", bad))),
                "'comments'", word)
    refused(send(client, deepen(good, MAX_DOCUMENT_DEPTH + 1)), "nested more than")
    refused(send(client, deepen(good, VERY_DEEP)), "nested")
    refused(send(client, deepen(good, 20000)), "nested too deeply")
    assert nothing_stored(m)
    # the untouched payload is accepted (so the refusals above were for the bad values)
    resp = send(client, json.dumps(good))
    assert resp.status_code == 202, resp.get_data(as_text=True)
    assert resp.mimetype == "text/plain"


def test_third_party_dialect_gets_the_same_rules(site):
    m, client = site

    def send(body: str) -> Any:
        return client.post("/change_hook/thirdparty", data=body.encode(),
                           content_type="application/json")

    refused(send(json.dumps({"properties": {"p": SURROGATE}})), "property 'p'", "surrogate")
    refused(send(json.dumps({"properties": {"p": "x\x00"}})), "property 'p'", "NUL")
    refused(send(json.dumps({"comments": SURROGATE})), "'comments'")
    refused(send(json.dumps({"properties": {"p": nested(MAX_ENTRY_DEPTH + 1)}})), "nested more")
    # its own json.loads runs out of stack: a 400 from the framework, not a 500
    refused(send('{"properties": {"p": ' + nested_text(20000) + "}}"), "nested too deeply")
    assert nothing_stored(m)
    resp = send(json.dumps({"properties": {"p": nested(3)}}))
    assert resp.status_code == 202


# -- the force form -----------------------------------------------------------------------------

def force(client, data: dict[str, str], path: str = "/builders/runtests/force"):  # type: ignore[no-untyped-def]
    return post(client, path, {"forcescheduler": "force", "reason": "r", **data},
                "/builders/runtests")


def refused_force(master, client, resp, named: str) -> None:  # type: ignore[no-untyped-def]
    assert resp.status_code == 400, (resp.status_code, resp.get_data(as_text=True))
    assert resp.mimetype == "text/plain"
    text = resp.get_data(as_text=True)
    assert text.startswith("Nothing forced: ") and named in text, text
    assert "\x00" not in text
    assert row_counts(master)["buildsets"] == 0
    assert flashes(client, "/builders/runtests") == ""  # no "Nothing forced" left behind


@pytest.mark.parametrize("data,named", [
    ({"reason": "a NUL \x00 here"}, "the form field 'reason' has a NUL character"),
    # refused as unstorable before the branch pattern could echo it back to the page
    ({"branch": "main\x00"}, "the form field 'branch' has a NUL character"),
    ({"property1_name": "p", "property1_value": "v\x00"},
     "the form field 'property1_value' has a NUL character"),
])
def test_force_form_refuses_unstorable_values_with_400(make_master, data, named):
    """A value no database stores is refused as the change hooks refuse it: 400 naming the
    field (never the value), nothing scheduled. (A form field carries text only, at most
    the form's own length limit, and a form's percent-escapes never decode to a lone
    surrogate: NUL is what can arrive.)"""
    master = make_master(OPEN_CFG)
    client = master.app().test_client()
    refused_force(master, client, force(client, data), named)


def test_force_all_refuses_unstorable_values_with_400(make_master):
    master = make_master(OPEN_CFG)
    client = master.app().test_client()
    resp = force(client, {"reason": "r\x00"}, "/builders/_all/forceall")
    refused_force(master, client, resp, "the form field 'reason' has a NUL character")


def test_force_form_rule_errors_still_go_back_to_the_page(make_master):
    """A value the database could store but the form's rules refuse is corrected on the
    page: 303 back with the message, as before."""
    master = make_master(OPEN_CFG)
    client = master.app().test_client()
    resp = force(client, {"branch": "has space"})
    assert resp.status_code == 303
    shown = flashes(client, "/builders/runtests")
    assert "Nothing forced" in shown and "bad branch 'has space'" in shown, shown
    assert row_counts(master)["buildsets"] == 0
    # and a good form forces
    assert force(client, {"branch": "main"}).status_code == 303
    assert row_counts(master)["buildsets"] == 1


def test_engine_refuses_for_pollers_and_scripts(master):
    """Pollers and scripts store through ``add_change``: the same rules, a ChangeError
    naming the field, nothing stored."""
    from bbweb.engine.changes import ChangeError, add_change

    for change, named in (
            (ChangeInput(author="a", comments=SURROGATE), "'comments'"),
            (ChangeInput(author="a", files=["ok", "b\x00d"]), "'files'"),
            (ChangeInput(author="a", properties={"p": nested(MAX_ENTRY_DEPTH + 1)}),
             "property 'p'"),
            (ChangeInput(author="a", when=float("nan")), "'when'")):
        with pytest.raises(ChangeError, match=named), master.db.write() as conn:
            add_change(conn, master.config, change)
    assert nothing_stored(master)
