"""``bbweb create-master``: a basedir a newcomer can start at once; and what
``bbweb upgrade-master`` brings up to date in it besides the database."""

from __future__ import annotations

import hashlib
import secrets
from pathlib import Path

from bbweb.web.static_files import BUILTIN, seed_public_html

TEMPLATES = Path(__file__).parent / "config"

# sha256 of every version bbweb has shipped of the files create-master copies into
# public_html (``git log -p -- bbweb/static/``). A copy still equal to one of them was never
# edited, so upgrade-master replaces it with the current version; a changed file in
# bbweb/static needs its new digest added here (tests/test_scaffold.py checks).
SHIPPED: dict[str, frozenset[str]] = {
    "default.css": frozenset({
        "b7edb5bd9b8958d3c9fa895f979f649d96fd0bf2903c65c0ac34907ea3109ee7",
        "029dae6a730e64cd0f455a25d9fad275bcfc44d8777a11a3fc624552fc0cd97d",
        "7eb902bcca55976bf4245b58e993034ce16ba1e59f2e5f9b612cd554b7332d68",
        "9392c38e9c3473a247bcab9c33709082659ffdac5324974ddd1b8b65be130046",
    }),
    "favicon.ico": frozenset({
        "45d009393140c0d7273bf383ce1de70d92ccb50f1278435a632404bbac7e8db7",
    }),
    "robots.txt": frozenset({
        "17d75f7d69b223cd731cbcf8648b61e8f98cc7563809cc5c13d31aa33e6a71ad",
    }),
}


def create_master(basedir: Path, port: int = 8010, force: bool = False) -> list[Path]:
    """Write ``master.cfg`` (a working builder on a local worker) and ``plugins.toml``.

    Existing files are kept unless ``force``; the worker password is random per master.
    """
    basedir.mkdir(parents=True, exist_ok=True)
    files = {
        basedir / "master.cfg": (TEMPLATES / "master.cfg.tmpl").read_text()
        .replace("@PORT@", str(port)).replace("@PASSWORD@", secrets.token_urlsafe(18)),
        basedir / "plugins.toml": (TEMPLATES / "plugins.toml.tmpl").read_text(),
    }
    existing = [p for p in files if p.exists()]
    if existing and not force:
        raise FileExistsError(f"{existing[0]} already exists (use --force to overwrite)")
    for path, text in files.items():
        path.write_text(text)
    (basedir / "master.cfg").chmod(0o600)  # it holds worker passwords
    return list(files) + seed_public_html(basedir)


def refresh_public_html(basedir: Path, public_html: str = "public_html"
                        ) -> tuple[list[Path], list[Path]]:
    """Bring public_html's copies of bbweb's stylesheet, favicon and robots.txt up to date.

    Files in public_html are served before the built-in ones, so a master created by an
    older version would keep its old stylesheet for ever. A copy equal to a version bbweb
    shipped (:data:`SHIPPED`) is replaced by the current one; one that matches none was
    edited here and is kept. Returns (refreshed, kept); a missing file stays missing (the
    built-in one is served)."""

    refreshed: list[Path] = []
    kept: list[Path] = []
    target = basedir / public_html
    for name, shipped in SHIPPED.items():
        path = target / name
        if not path.is_file():
            continue
        current = (BUILTIN / name).read_bytes()
        data = path.read_bytes()
        if data == current:
            continue
        if hashlib.sha256(data).hexdigest() in shipped:
            path.write_bytes(current)
            refreshed.append(path)
        else:
            kept.append(path)
    return refreshed, kept
