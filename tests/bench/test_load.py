"""``bench/load.py`` keeps working: a few seconds of its load (real gunicorn, daemon and
workers) on SQLite and PostgreSQL print every figure, with no 5xx and every change stored
and built. Nothing about time is asserted."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "load.py"


def test_short_load_run(tmp_path: Path, db_url: str) -> None:
    basedir = tmp_path / "load"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--duration", "3", "--hook-rate", "10",
         "--page-readers", "1", "--web-workers", "1", "--drain", "120",
         "--db-url", db_url, "--basedir", str(basedir)],
        capture_output=True, text=True, timeout=400)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert re.search(r"^  hooks +30 +p50 +[\d.]+ ms +p99 +[\d.]+ ms", out, re.M), out
    assert re.search(r"^  pages \(all\) +\d+ +p50 +[\d.]+ ms +p99 +[\d.]+ ms", out, re.M), out
    for page in ("waterfall", "json/slaves", "rss", "png"):
        assert re.search(rf"^  {re.escape(page)} +\d+ +p50", out, re.M), (page, out)
    assert "5xx answers: 0 seen by the client, 0 in http.log" in out
    assert "'database is locked' in the logs: 0" in out
    assert "changes: 30 accepted (202), 0 of them not stored, 0 stored but not built" in out
    assert "all changes stored: yes" in out and "all changes built: yes" in out
    # the processes it started are gone, and their logs were kept in --basedir
    assert (basedir / "http.log").is_file() and (basedir / "web.log").is_file()
    assert not [cmd for cmd in _command_lines() if str(basedir) in cmd]


def _command_lines() -> list[str]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                out.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(
                    errors="replace"))
            except OSError:  # gone meanwhile
                continue
    return out
