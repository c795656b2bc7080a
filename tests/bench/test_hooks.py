"""``bench/change_hook.py`` and ``bench/github_hook.py`` keep working with both clients:
a short run stores every change it sent, and its ``RESULT`` line carries the figures
(changes/s and the server's CPU per change). Nothing about time is asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def run(script: str, *args: str) -> dict:
    proc = subprocess.run([sys.executable, str(BENCH / script), "--requests", "20", *args],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("RESULT "), proc.stdout
    return json.loads(last[len("RESULT "):])


@pytest.mark.parametrize("client", ["raw", "requests"])
def test_base_hook_bench(client: str) -> None:
    result = run("change_hook.py", "--client", client)
    assert result["base_hook_stored"] == 1
    assert result["base_hook_errors_c1"] == result["base_hook_errors_c8"] == 0
    assert result["base_hook_changes_s_c8"] > 0 and result["base_hook_server_cpu_ms_c8"] > 0


def test_github_hook_bench() -> None:
    result = run("github_hook.py")
    assert result["github_hook_stored"] == 1
    assert result["github_hook_errors_c1"] == result["github_hook_errors_c8"] == 0
    assert result["github_hook_server_cpu_ms_c8"] > 0
