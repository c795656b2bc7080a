"""``bbweb create-master``: a basedir a newcomer can start at once."""

from __future__ import annotations

import secrets
from pathlib import Path

from bbweb.web.static_files import seed_public_html

TEMPLATES = Path(__file__).parent / "config"


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
