"""The benchmark cannot silently rot: the quick bare-vs-Foreman section (bench/run.py --quick --only 8) runs
once, on its own dev server, and writes its figures. Only their presence is checked, never their values:
benchmarks are numbers printed and recorded, not timed assertions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import settings


def test_quick_bare_vs_foreman_section_writes_its_figures(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, "bench/run.py", "--quick", "--only", "8", "--results", str(results)],
        cwd=settings.PROJECT_ROOT, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "SKIPPED" not in done.stdout, done.stdout[-2000:]
    figures = json.loads(results.read_text())
    assert figures["sections"] == ["8"] and figures["quick"] is True
    for key in ("overhead_vs_bare_temporal", "foreman_ms_per_step", "bare_temporal_ms_per_step", "no_durability_floor_ms_per_step"):
        assert isinstance(figures[key], float) and figures[key] > 0, key
    assert len(figures["foreman_goal_ms"]) == len(figures["bare_temporal_goal_ms"]) == figures["goals_each"] > 0
    assert set(figures["phases_ms_per_step"]) == {"foreman", "bare_temporal"}
    assert figures["history_span_ms"]["ratio"] > 0 and figures["history_span_ms"]["foreman"] > 0
    assert figures["machine"]["cores"] and len(figures["machine"]["load_average_before"]) == 3
    assert figures["machine"]["load_average_after"] and figures["versions"]["temporalio"]
    assert "overhead_vs_bare_temporal" in done.stdout
