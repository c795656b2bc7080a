"""``bench/json_builds.py`` keeps working and keeps its last line: a small run (real
gunicorn, a history made through the engine) prints the query table, the live figures of
the four URLs and ends with ``RESULT {...}`` holding each of them. Nothing about time is
asserted."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "json_builds.py"


def test_small_run_ends_with_its_figures(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--sizes", "21", "--requests", "30", "--repeat", "1",
         "--concurrency", "1,2", "--web-workers", "1", "--basedir", str(tmp_path / "json")],
        capture_output=True, text=True, timeout=600)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert re.search(r"^/json/builders/builder-00/builds\?select=-1\S* +\d+ ", out, re.M), out
    for name in ("select20", "builders", "slaves", "build"):
        for c in (1, 2):
            assert re.search(rf"^  {name} +c={c}: 30 requests, +[\d.]+ req/s, median +[\d.]+ "
                             rf"ms, p95 +[\d.]+ ms, server CPU +[\d.]+ ms/request, errors 0$",
                             out, re.M), (name, c, out)
    last = out.rstrip("\n").splitlines()[-1]
    assert last.startswith("RESULT {"), last
    result = json.loads(last[len("RESULT "):])
    assert result["client"] in ("ab", "python") and result["builds_per_builder"] == 21
    for name in ("select20", "builders", "slaves", "build"):
        for c in (1, 2):
            for figure in ("rps", "median_ms", "server_cpu_ms"):
                value = result[f"json_{name}_c{c}_{figure}"]
                assert isinstance(value, int | float) and value >= 0, (name, c, figure)
    assert 0 < result["json_select20_queries"] <= 11  # BEGIN included (SQLite)
