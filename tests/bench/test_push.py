"""``bench/push.py`` keeps working: a short run prints each figure and ends with a
``RESULT`` line whose counts match the builds made. Nothing about time is asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "push.py"


def test_short_push_run() -> None:
    proc = subprocess.run([sys.executable, str(BENCH), "--builds", "4"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("RESULT ")
    result = json.loads(last[len("RESULT "):])
    # a build: request, buildset, state, started, 2 x (step started, finished), finished,
    # state
    assert result["builds"] == 4
    for run in ("chunk200", "chunk1", "json_signed"):
        assert result[run]["packets"] == 40, result
    assert result["chunk1"]["requests"] == 40 and result["chunk200"]["requests"] == 1
