"""``bbweb upgrade-master`` brings a master's public_html copies of bbweb's stylesheet,
favicon and robots.txt up to date when they are unedited copies of an older version, and
leaves edited ones alone, saying so. Real ``bbweb`` commands on a basedir that
``bbweb create-master`` made; older versions come from this repository's git history."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

from bbweb.scaffold import SHIPPED
from bbweb.web.static_files import BUILTIN

REPO = Path(__file__).resolve().parents[1]


def bbweb(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "bbweb.cli", *args], capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def git(*args: str) -> bytes:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, check=True,
                          timeout=60).stdout


def shipped_versions(name: str) -> list[bytes]:
    """Every version of bbweb/static/NAME committed, oldest first."""
    commits = git("log", "--reverse", "--format=%H", "--", f"bbweb/static/{name}").split()
    assert commits, f"no history of bbweb/static/{name} (a shallow clone?)"
    return [git("show", f"{c.decode()}:bbweb/static/{name}") for c in commits]


def test_upgrade_master_refreshes_unedited_copies_and_keeps_edited_ones(tmp_path: Path):
    basedir = tmp_path / "master"
    bbweb("create-master", str(basedir))
    public = basedir / "public_html"
    current_css = (BUILTIN / "default.css").read_bytes()
    assert (public / "default.css").read_bytes() == current_css
    # a master created by the first bbweb: its stylesheet as shipped then
    oldest = shipped_versions("default.css")[0]
    assert oldest != current_css
    (public / "default.css").write_bytes(oldest)
    # and robots.txt edited by its admin
    edited = (BUILTIN / "robots.txt").read_bytes() + b"Disallow: /private/\n"
    (public / "robots.txt").write_bytes(edited)

    out = bbweb("upgrade-master", str(basedir)).stdout.splitlines()
    assert f"refreshed {public / 'default.css'} (an unedited copy of an older bbweb's)" in out
    assert f"left as edited here, not refreshed: {public / 'robots.txt'} (bbweb's current " \
           f"ones are in {BUILTIN})" in out
    assert not [line for line in out if "favicon" in line]  # already current: not a word
    assert (public / "default.css").read_bytes() == current_css
    assert (public / "robots.txt").read_bytes() == edited

    again = bbweb("upgrade-master", str(basedir)).stdout
    assert "refreshed /" not in again and "left as edited here" in again


def test_every_version_bbweb_shipped_is_known():
    """A changed stylesheet (or favicon, robots.txt) must have its digest listed, or masters
    made with it would never be refreshed."""
    for name, digests in SHIPPED.items():
        versions = shipped_versions(name) + [(BUILTIN / name).read_bytes()]
        missing = {hashlib.sha256(v).hexdigest() for v in versions} - digests
        assert not missing, f"add to bbweb.scaffold.SHIPPED[{name!r}]: {sorted(missing)}"
