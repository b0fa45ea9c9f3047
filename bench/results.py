"""`bench/results.json`: the figures of one run, with the machine, date, load and versions they came from.

Sections put their figures in with `Results.put`; `write` adds the load average at the end. Numbers from
different runs are never compared: the machine is shared, so only ratios within one run mean much.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path

from devserver import find_binary

RESULTS_PATH = Path(__file__).resolve().parent / "results.json"


def load_average() -> list[float] | None:
    return [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None


def _output(command: list[str], cwd: Path | None = None) -> str | None:
    try:
        return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def versions() -> dict[str, str | None]:
    cli = find_binary("temporal")
    root = Path(__file__).resolve().parent.parent
    return {
        "python": platform.python_version(),
        "temporalio": importlib.metadata.version("temporalio"),
        "pydantic": importlib.metadata.version("pydantic"),
        "temporal_cli": _output([cli, "--version"]) if cli else None,
        "foreman_commit": _output(["git", "rev-parse", "--short", "HEAD"], cwd=root),
    }


class Results:
    """The JSON document of one run, filled section by section."""

    def __init__(self, sections: list[str], quick: bool) -> None:
        self.data: dict = {
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "quick": quick,
            "sections": sections,
            "machine": {"cores": os.cpu_count(), "platform": platform.platform(), "load_average_before": load_average()},
            "versions": versions(),
        }

    def put(self, key: str, value) -> None:
        self.data[key] = value

    def write(self, path: Path) -> Path:
        self.data["machine"]["load_average_after"] = load_average()
        path.write_text(json.dumps(self.data, indent=2) + "\n")
        return path
