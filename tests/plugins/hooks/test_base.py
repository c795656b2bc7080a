"""/change_hook/base with the form fields a post-commit script or ``bbweb sendchange``
sends (``files`` and ``properties`` JSON-encoded), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.plugins.hooks import dialect_site, nothing_stored, payload, props, stored

FIELDS = "base/form-fields.bbweb.json"


@pytest.fixture
def make_base(make_master):  # type: ignore[no-untyped-def]
    return dialect_site(make_master, "base")


def test_form_fields_become_one_change(make_base):
    master, client = make_base({"allow_properties": True})
    resp = client.post("/change_hook/base", data=payload(FIELDS))
    assert resp.status_code == 202, resp.data
    (ch,) = stored(master)
    assert ch.author == "Priya Raman <priya@importer.example>"
    assert ch.comments == "Speed up the nightly import"
    assert ch.revision == "4711"
    assert ch.branch == "release-3"
    assert ch.category == "perf"
    assert ch.repository == "svn://svn.importer.example/importer"
    assert ch.project == "importer"
    assert ch.revlink == "https://svn.importer.example/viewvc?view=revision&revision=4711"
    assert ch.when == datetime(2010, 1, 1, tzinfo=UTC).timestamp()
    assert ch.files == ["import/reader.py", "import/writer.py"]
    assert props(ch) == {"ticket": "IMP-88", "reviewed": "yes"}


def test_same_fields_as_a_query_string(make_base):
    """0.8 read ``request.args``: the fields may come in the URL of a POST too."""
    master, client = make_base({"allow_properties": True})
    resp = client.post("/change_hook/base", query_string=payload(FIELDS))
    assert resp.status_code == 202, resp.data
    (ch,) = stored(master)
    assert (ch.author, ch.revision, ch.files) == (
        "Priya Raman <priya@importer.example>", "4711", ["import/reader.py", "import/writer.py"])


def test_properties_refused_unless_allowed(make_base):
    master, client = make_base()
    resp = client.post("/change_hook/base", data=payload(FIELDS))
    assert resp.status_code == 400
    assert b"allow_properties" in resp.data
    assert nothing_stored(master)
    fields = {k: v for k, v in payload(FIELDS).items() if k != "properties"}
    assert client.post("/change_hook/base", data=fields).status_code == 202
    (ch,) = stored(master)
    assert ch.properties == []
