"""``bench/views.py`` on a small replicated history (SQLite and PostgreSQL): every page it
measures answers 200, the comparison and the plans print, and the RESULT line carries a
figure per page, so the script cannot rot between the runs that use it."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.bench.test_bulk_history import ARGS, BENCH, bulk_history


def _load_views() -> Any:
    spec = importlib.util.spec_from_file_location("bench_views", BENCH / "views.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


views = _load_views()


def test_every_page_measured_compared_and_explained(tmp_path: Path, db_url: str,
                                                    capsys: pytest.CaptureFixture[str]
                                                    ) -> None:
    master, _plan = bulk_history.run(["--basedir", str(tmp_path / "big"), "--db-url", db_url]
                                     + ARGS)
    master.db.dispose()
    small, _plan = bulk_history.run(["--basedir", str(tmp_path / "small"), "--builders", "3",
                                     "--builds", "10", "--template-builds", "10"])
    small.db.dispose()
    capsys.readouterr()
    assert views.main(["--basedir", str(tmp_path / "big"), "--compare", str(tmp_path / "small"),
                       "--repeat", "2", "--warmup", "1", "--explain"]) == 0
    out = capsys.readouterr().out
    figures = json.loads(out.strip().splitlines()[-1].removeprefix("RESULT "))
    pages = [t.strip("/").split("?")[0].replace("{builder}", "B").replace("{", "")
             .replace("}", "").replace("/", "_") for t in views.VIEWS]
    missing = [p for p in pages if f"view_{p}_ms" not in figures]
    assert not missing, f"pages not measured: {missing}\n{out}"
    assert figures["view_builders_B_builds_last_queries"] > 0
    assert figures["view_builders_B_cpu_ms"] > 0
    # the newest build of a 50-build builder and one half-way back
    assert "/builders/builder-00/builds/49 " in out and "/builders/builder-00/builds/25 " in out
    assert "/json/builders/builder-00/builds?select=-1..-20" in out
    assert "big / small" in out and "HTTP" not in out and "not available" not in out
    plan_word = "Index Scan" if db_url.startswith("postgresql") else "SEARCH"
    assert plan_word in out
