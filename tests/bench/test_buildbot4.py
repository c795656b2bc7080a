"""``bench/buildbot4/`` keeps working against a real Buildbot 4: the history lands in
Buildbot's own tables in the shape its REST API serves, and a row's script ends with the
``RESULT`` keys ``bench/perf.py`` shows. Buildbot is never a bbweb dependency, so these
run only where one is installed in a virtualenv of its own (``$BBWEB_BUILDBOT4_VENV``, or
``bench/buildbot4/install.py``'s default place); nothing about time is asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH / "buildbot4"))
sys.path.insert(0, str(BENCH))

import bb4  # noqa: E402
import perf  # noqa: E402

VENV = Path(os.environ.get("BBWEB_BUILDBOT4_VENV", "/tmp/bbweb-perf/buildbot4-venv"))
needs_buildbot = pytest.mark.skipif(
    bb4.Venv(VENV).version() is None,
    reason=f"no Buildbot 4 in {VENV} (bench/buildbot4/install.py --venv DIR; "
           "BBWEB_BUILDBOT4_VENV=DIR)")


@needs_buildbot
def test_history_is_served_by_buildbot_and_measured(tmp_path: Path) -> None:
    venv = bb4.Venv(VENV)
    history = bb4.ensure_history(venv, tmp_path / "history", builders=4, changes=60)
    with bb4.Master(venv, history, bb4.history_layout(history)) as master:
        master.start(workers=False)
        for name in bb4.builder_names(4):
            builds = master.get(f"/api/v2/builders/{master.builder_ids[name]}/builds",
                                order="-number", limit=20)["builds"]
            # 60 changes x 2 builders each over 4 builders: 30 builds per builder
            assert [b["number"] for b in builds] == list(range(30, 10, -1))
            assert all(b["complete"] for b in builds)
            assert {b["results"] for b in builds} == {0, 2}  # every tenth build fails
        build = builds[0]
        steps = master.get(f"/api/v2/builds/{build['buildid']}/steps")["steps"]
        assert [s["name"] for s in steps] == list(bb4.STEPS)
        log = master.get(f"/api/v2/steps/{steps[3]['stepid']}/logs")["logs"][0]
        raw = requests.get(f"{master.url}/api/v2/logs/{log['logid']}/raw", timeout=30)
        assert "test: 3 tests failed" in raw.text  # build 30 failed its test step
        changes = master.get("/api/v2/changes", order="-changeid", limit=1)["changes"]
        assert changes[0]["changeid"] == 60
        assert sorted(changes[0]["files"]) == ["README.md", "src/file7.c"]

    proc = subprocess.run([sys.executable, str(BENCH / "buildbot4" / "rest_builds.py"),
                           "--venv", str(VENV), "--history", str(history), "--requests", "20",
                           "--client", "python"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("RESULT ")
    figures = json.loads(last[len("RESULT "):])
    assert figures["json_select20_c1_rps"] > 0 and figures["json_select20_c8_rps"] > 0
    assert "json_select20_c1_errors" not in figures


def test_ratio_in_words() -> None:
    # bbweb 122 ms against Buildbot's 362 ms is faster; 269 MiB against 83 is the memory
    assert perf.in_words(122, 362, "time") == "0.34 (2.97× faster)"
    assert perf.in_words(108, 183, "rate") == "0.59 (1.69× slower)"
    assert perf.in_words(2219, 178, "rate") == "12.5 (12.5× faster)"
    assert perf.in_words(7.3, 2117, "time") == "0.0034 (290× faster)"
    assert perf.in_words(269, 83, "memory") == "3.24 (3.2× the memory)"


def test_saved_run_is_shown_and_rows_buildbot_cannot_answer_say_so(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``perf.py --show`` prints a saved run's table without running anything; a row whose
    Buildbot job measures other things (Buildbot 4 has no 0.8 ``/json/builders``) says it
    was not measured there instead of listing that job's figures."""
    json_figures = {"json_select20_c1_rps": 745.0, "json_select20_c8_rps": 1328.0,
                    "json_builders_c8_rps": 2063.0, "json_slaves_c8_rps": 2028.0,
                    "json_build_c8_rps": 2010.0}
    saved = {"when": "2026-12-04 10:42 UTC",
             "machine": {"cpu": "Some CPU", "cores": 2, "memory_mib": 1024, "system": "Linux",
                         "python": "3.11", "sqlite": "3.40", "load_before": 0.0,
                         "load_after": 0.1, "buildbot4": "4.3.0"},
             "results": {"json_builds": json_figures},
             "buildbot4_results": {"json_builds": {"json_select20_c1_rps": 169.0,
                                                   "json_select20_c8_rps": 224.0}}}
    path = tmp_path / "last.json"
    path.write_text(json.dumps(saved))
    assert perf.main(["--show", str(path), "--cache", str(tmp_path / "cache")]) == 0
    out = capsys.readouterr().out
    assert not (tmp_path / "cache").exists()  # nothing was run
    rows = {line.split(" | ")[0].lstrip("| "): line for line in out.splitlines()
            if line.startswith("| ")}
    last20 = next(v for k, v in rows.items() if k.startswith("last 20 builds"))
    assert "169 / 224 req/s" in last20 and "4.41 (4.41× faster)" in last20
    reads = rows["`/json/builders`, `/json/slaves`, `/json/builders/B/builds/-1`, c=8"]
    assert "2,063 / 2,028 / 2,010 req/s" in reads
    assert "not measured on Buildbot" in reads and "json_select20" not in reads
    assert "not run" in rows["idle, all master processes (RSS / PSS)"]
