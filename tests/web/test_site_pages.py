"""The site around the pages: layout, welcome, about, 404, public_html, template overrides."""

from __future__ import annotations

import re
import time

import jinja2
import pytest

from bbweb.web import decorations, timefmt
from tests.conftest import DEFAULT_CFG


def text_of(resp) -> str:
    return resp.get_data(as_text=True)


def test_welcome_page_in_the_layout(client):
    resp = client.get("/")
    assert resp.status_code == 200 and resp.content_type == "text/html; charset=utf-8"
    html = text_of(resp)
    assert "<title>Buildbot</title>" in html
    assert 'Welcome to the Buildbot for the <a href="http://example.org/project">' \
           "Test Project</a> project!" in html
    assert '<link rel="stylesheet" href="./default.css">' in html
    # feeds are advertised only once their views are mounted
    assert ('<link rel="alternate" type="application/rss+xml"' in html) == (
        "feeds.rss" in client.application.view_functions)
    assert re.search(r"Page built: <time>\w{3} \d\d \w{3} \d{4} \d\d:\d\d:\d\d</time> "
                     r"\(\w+\)", html)


def test_about_lists_versions_and_database(client, master):
    html = text_of(client.get("/about"))
    assert "<title>About this Buildbot</title>" in html
    for name in ("bbweb", "Python", "Flask", "SQLAlchemy", "Jinja2", "Database"):
        assert f'<th scope="row">{name}</th>' in html
    engine = "SQLite" if master.db_url.startswith("sqlite") else "PostgreSQL"
    assert re.search(engine + r" \d+\.\d+", html)


def test_unknown_page_is_a_404_in_the_layout(client):
    resp = client.get("/no/such/page")
    assert resp.status_code == 404
    html = text_of(resp)
    assert "<title>Not Found</title>" in html and 'class="footer"' in html
    # links from a 404 at depth 3 still reach the root
    assert '<a href="../../" class="home">' in html


def test_alert_message_is_escaped(client):
    html = text_of(client.get("/about?alert_msg=%3Cscript%3Ealert(1)%3C/script%3E"))
    assert '<div class="alert" role="alert">&lt;script&gt;alert(1)&lt;/script&gt;</div>' in html
    assert "<script>" not in html


def test_reload_argument_is_a_meta_refresh_of_at_least_15s(client):
    assert '<meta http-equiv="refresh" content="15">' in text_of(client.get("/?reload=3"))
    assert '<meta http-equiv="refresh" content="60">' in text_of(client.get("/?reload=60"))
    assert "refresh" not in text_of(client.get("/?reload=soon"))


def test_builtin_static_files(client):
    css = client.get("/default.css")
    assert css.status_code == 200 and css.content_type.startswith("text/css")
    assert b".success" in css.data
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.data[:4] == b"\x00\x00\x01\x00"
    robots = text_of(client.get("/robots.txt"))
    assert "Disallow: /builders" in robots and "Disallow: /json" in robots


def test_public_html_overrides_and_adds_files(master, client):
    public = master.basedir / "public_html"
    (public / "docs").mkdir(parents=True)
    (public / "default.css").write_text("body { color: hotpink; }")
    (public / "docs" / "<b>notes<i>.txt").write_text("hello")
    assert client.get("/default.css").data == b"body { color: hotpink; }"
    listing = text_of(client.get("/docs/"))
    assert "Directory listing for /docs/" in listing
    assert "&lt;b&gt;notes&lt;i&gt;.txt" in listing and "<b>notes" not in listing
    assert client.get("/docs/%3Cb%3Enotes%3Ci%3E.txt").data == b"hello"
    # nothing outside public_html, however the path is spelled
    assert client.get("/../master.cfg").status_code == 404
    assert client.get("/docs/..%2F..%2Fmaster.cfg").status_code == 404


def test_dynamic_pages_win_over_public_html(master, client):
    public = master.basedir / "public_html"
    public.mkdir(exist_ok=True)
    (public / "about").write_text("static about")
    assert "About this Buildbot" in text_of(client.get("/about"))


def test_basedir_templates_override_builtins(make_master):
    m = make_master()
    (m.basedir / "templates").mkdir()
    (m.basedir / "templates" / "root.html").write_text(
        '{% extends "layout.html" %}{% block content %}<h1>Our own front page</h1>'
        "{% endblock %}")
    app = m.app()
    html = text_of(app.test_client().get("/"))
    assert "<h1>Our own front page</h1>" in html and 'class="footer"' in html
    app.extensions["bbweb"].db.dispose()


def test_jinja_loaders_come_after_basedir_templates(make_master):
    cfg = DEFAULT_CFG.replace(
        "c['status'] = [WebStatus(",
        "import jinja2\nc['status'] = [WebStatus(jinja_loaders=[jinja2.DictLoader({"
        "'about.html': '{% extends \"layout.html\" %}{% block content %}from a loader"
        "{% endblock %}', 'root.html': 'loader root'})], ")
    m = make_master(cfg)
    (m.basedir / "templates").mkdir()
    (m.basedir / "templates" / "root.html").write_text("basedir root")
    app = m.app()
    c = app.test_client()
    assert "from a loader" in text_of(c.get("/about"))
    assert text_of(c.get("/")) == "basedir root"
    app.extensions["bbweb"].db.dispose()


def test_create_master_seeds_public_html(tmp_path):
    from bbweb.scaffold import create_master

    create_master(tmp_path / "m", port=8999)
    public = tmp_path / "m" / "public_html"
    assert sorted(p.name for p in public.iterdir()) == ["default.css", "favicon.ico",
                                                         "robots.txt"]


# -- the filters templates use ------------------------------------------------------------

def test_revlink_forms():
    url = decorations.revision_url
    assert url("abc", "r", "http://x/rev/%s", None) == "http://x/rev/abc"
    assert url("a b", "r", "http://x/%s", None) == "http://x/a%20b"
    assert url("abc", "r1", {"r1": "http://one/%s"}, None) == "http://one/abc"
    assert url("abc", "r2", {"r1": "http://one/%s"}, None) is None
    assert url("abc", "r", None, lambda rev, repo: f"http://g/{repo}/{rev}") == "http://g/r/abc"
    assert url("abc", "git@github.com:o/proj.git", None, None) == \
        "https://github.com/o/proj/commit/abc"
    assert url("abc", "https://github.com/o/proj", None, None) == \
        "https://github.com/o/proj/commit/abc"
    assert url("abc", "svn://elsewhere", None, None) is None
    assert url("abc", "r", lambda rev, repo: 1 / 0, None) is None  # a broken rule: no link


def test_revision_markup_escapes_and_shortens():
    rev = "0123456789abcdef0123456789abcdef01234567"
    short = str(decorations.shortrev_markup(rev, "http://x/" + rev))
    assert ">0123456789ab...</a>" in short and f'title="Revision {rev}"' in short
    assert str(decorations.shortrev_markup("<i>", None)) == "&lt;i&gt;"
    assert str(decorations.revlink_markup("r1", 'http://x/"><script>')) == \
        '<span class="revision" title="Revision r1"><a href="http://x/&#34;&gt;&lt;script&gt;' \
        '">r1</a></span>'
    assert "javascript" not in str(decorations.revlink_markup("r1", "javascript:alert(1)"))


def test_changecommentlink_forms():
    rule = (r"#(\d+)", r"http://bugs/\1", r"Ticket \g<0>")
    out = str(decorations.comment_markup("fix #12 & <b>#3</b>", rule))
    assert out == ('fix <a href="http://bugs/12" title="Ticket #12">#12</a> &amp; &lt;b&gt;'
                   '<a href="http://bugs/3" title="Ticket #3">#3</a>&lt;/b&gt;')
    assert str(decorations.comment_markup("#1", {"p": rule}, "other")) == "#1"
    assert 'href="http://bugs/1"' in str(decorations.comment_markup("#1", {"p": rule}, "p"))
    assert str(decorations.comment_markup("<x>", lambda markup, project: markup + "!")) == \
        "&lt;x&gt;!"


def test_email_and_user_filters():
    assert str(decorations.email_markup("a@b")) == \
        'a<span style="display:none">ohnoyoudont</span>@b'
    user = str(decorations.user_markup("Ann <ann@example.org>"))
    assert user.startswith('<span class="user">Ann <span class="email">&lt;ann')
    assert str(decorations.user_markup("<script>")) == "&lt;script&gt;"


@pytest.mark.parametrize("seconds, text", [
    (5, "5 secs"), (61, "1 mins, 1 secs"), (3601, "1 hrs, 0 mins, 1 secs"),
    (7322, "2 hrs, 2 mins, 2 secs"), (None, "")])
def test_durations(seconds, text):
    assert timefmt.duration(seconds) == text


def test_ages():
    now = time.time()
    assert timefmt.age(now - 1, now) == "1 second ago"
    assert timefmt.age(now - 600, now) == "about 10 minutes ago"
    assert timefmt.age(now - 3 * 3600, now) == "about 3 hours ago"
    assert timefmt.age(now - 86400 * 3, now) == "about 3 days ago"
    assert timefmt.age(now - 86400 * 30, now) == "about 4 weeks ago"
    assert timefmt.age(now - 86400 * 90, now) == "a long time ago"


def test_template_environment_is_autoescaping(app):
    assert app.jinja_env.autoescape("layout.html") is True
    assert isinstance(app.jinja_loader, jinja2.ChoiceLoader)


def test_header_links_every_mounted_view(client):
    html = text_of(client.get("/about"))
    nav = html.split('<nav class="views">')[1].split("</nav>")[0]
    for label, path in (("Builders", "builders"), ("Recent Builds", "one_line_per_build"),
                        ("Buildslaves", "buildslaves"), ("Changesources", "changes"),
                        ("JSON API", "json/help"), ("About", "about")):
        marked = ' class="current" aria-current="page"' if path == "about" else ""
        assert f'<a href="./{path}"{marked}>{label}</a>' in nav
        assert client.get("/" + path).status_code == 200
