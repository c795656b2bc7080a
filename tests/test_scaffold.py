"""``bbweb upgrade-master`` brings a master's public_html copies of bbweb's stylesheet,
favicon and robots.txt up to date when they are unedited copies of an older version, and
leaves edited ones alone, saying so. ``bbweb`` commands on a basedir that
``bbweb create-master`` made."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from bbweb import scaffold
from bbweb.cli import main
from bbweb.scaffold import SHIPPED
from bbweb.web.static_files import BUILTIN

REPO = Path(__file__).resolve().parents[1]


def git(*args: str) -> bytes:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, check=True,
                          timeout=60).stdout


def committed_versions(name: str) -> list[bytes]:
    """Every committed version of bbweb/static/NAME, oldest first, when this checkout has
    its whole history (a shallow clone or an exported tree has not: then none)."""
    try:
        if git("rev-parse", "--is-shallow-repository").strip() != b"false":
            return []
        commits = git("log", "--reverse", "--format=%H", "--",
                      f"bbweb/static/{name}").split()
        return [git("show", f"{c.decode()}:bbweb/static/{name}") for c in commits]
    except (OSError, subprocess.CalledProcessError):
        return []


def bbweb(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(list(args)) == 0, capsys.readouterr()
    return capsys.readouterr().out


def test_upgrade_master_refreshes_unedited_copies_and_keeps_edited_ones(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    basedir = tmp_path / "master"
    bbweb(capsys, "create-master", str(basedir))
    public = basedir / "public_html"
    current_css = (BUILTIN / "default.css").read_bytes()
    assert (public / "default.css").read_bytes() == current_css
    # a master created by an older bbweb: its stylesheet as shipped then
    oldest = current_css.replace(b"}", b"} ", 1)
    monkeypatch.setitem(SHIPPED, "default.css",
                        SHIPPED["default.css"] | {hashlib.sha256(oldest).hexdigest()})
    assert scaffold.SHIPPED is SHIPPED
    (public / "default.css").write_bytes(oldest)
    # and robots.txt edited by its admin
    edited = (BUILTIN / "robots.txt").read_bytes() + b"Disallow: /private/\n"
    (public / "robots.txt").write_bytes(edited)

    out = bbweb(capsys, "upgrade-master", str(basedir)).splitlines()
    assert f"refreshed {public / 'default.css'} (an unedited copy of an older bbweb's)" in out
    assert f"left as edited here, not refreshed: {public / 'robots.txt'} (bbweb's current " \
           f"ones are in {BUILTIN})" in out
    assert not [line for line in out if "favicon" in line]  # already current: not a word
    assert (public / "default.css").read_bytes() == current_css
    assert (public / "robots.txt").read_bytes() == edited

    again = bbweb(capsys, "upgrade-master", str(basedir))
    assert "refreshed /" not in again and "left as edited here" in again


def test_every_version_bbweb_shipped_is_known():
    """A changed stylesheet (or favicon, robots.txt) must have its digest listed, or masters
    made with it would never be refreshed: the current files always, and every committed
    version where the checkout has its history."""
    for name, digests in SHIPPED.items():
        versions = committed_versions(name) + [(BUILTIN / name).read_bytes()]
        missing = {hashlib.sha256(v).hexdigest() for v in versions} - digests
        assert not missing, f"add to bbweb.scaffold.SHIPPED[{name!r}]: {sorted(missing)}"
