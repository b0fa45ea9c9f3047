"""Dependencies point one way (contracts -> core -> workflows | activities -> wiring), and the
workflow sandbox never imports a tool's implementation or an I/O library."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_script(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "scripts/import_graph.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_no_import_goes_against_the_layering() -> None:
    out = run_script("--modules")
    assert "edges against the layering: 0" in out
    assert "activities -> workflows" not in out and "workflows -> activities" not in out


def test_the_workflow_module_pulls_in_no_activity_and_no_io_library() -> None:
    out = run_script("--sandbox")
    project = next(line for line in out.splitlines() if line.startswith("project modules:"))
    assert " activities" not in project and " settings" not in project and " playbooks" not in project, project
    assert "I/O libraries: none" in out, out
