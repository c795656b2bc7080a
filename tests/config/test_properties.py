"""Renderables produce the same commands Buildbot's documentation promises."""

from __future__ import annotations

import pytest

from bbweb.config import ConfigErrors, Interpolate, Property, WithProperties
from bbweb.mastercfg.properties import RenderContext, render

CTX = RenderContext({"branch": "main", "empty": "", "n": 3, "zero": 0},
                    {"": {"revision": "abc", "branch": "main"},
                     "lib": {"revision": "def"}})


@pytest.mark.parametrize("fmt, expected", [
    ("%(prop:branch)s", "main"),
    ("%(prop:nope)s", ""),
    ("%(prop:nope:-fallback)s", "fallback"),
    ("%(prop:empty:-fallback)s", ""),
    ("%(prop:empty:~fallback)s", "fallback"),
    ("%(prop:branch:+set)s|%(prop:nope:+set)s", "set|"),
    ("%(prop:branch:?|yes|no)s %(prop:nope:?|yes|no)s", "yes no"),
    ("%(prop:empty:#?|yes|no)s", "no"),
    ("%(src::revision)s/%(src:lib:revision)s", "abc/def"),
    ("%(src:other:revision:-none)s", "none"),
    ("%(kw:greeting)s", "hi"),
    ("n=%(prop:n)s", "n=3"),
])
def test_interpolate(fmt, expected):
    assert Interpolate(fmt, greeting="hi").render(CTX) == expected


def test_interpolate_positional():
    assert Interpolate("x-%(prop:branch)s").render(CTX) == "x-main"
    assert Interpolate("%(prop:branch)s-%s", Property("n")).render(CTX) == "main-3"


def test_interpolate_bad_selector_is_config_error():
    with pytest.raises(ConfigErrors, match="unknown selector"):
        Interpolate("%(bogus:x)s")


def test_withproperties():
    assert WithProperties("%s/%s", "branch", "nope").render(CTX) == "main/"
    assert WithProperties("%(branch)s-%(nope:-dflt)s").render(CTX) == "main-dflt"
    assert WithProperties("%(x)s", x=lambda props: props["n"] * 2).render(CTX) == "6"
    with pytest.raises(KeyError):
        WithProperties("%(nope)s").render(CTX)


def test_property_defaults():
    assert Property("zero", default=7).render(CTX) == 7  # defaultWhenFalse
    assert Property("zero", default=7, defaultWhenFalse=False).render(CTX) == 0
    assert Property("nope").render(CTX) is None


def test_render_nested():
    value = ["make", Interpolate("B=%(prop:branch)s"), {"k": Property("n")}]
    assert render(value, CTX) == ["make", "B=main", {"k": 3}]
