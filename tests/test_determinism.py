"""Workflow code reads no clock, randomness or environment but the workflow's own (`workflow.now()`,
`workflow.random()`, `workflow.uuid4()`, the history).

The sandbox's proxies would refuse such calls in a re-imported module, but every project module the workflow loads
is passed through (`workflows/runner.py`), loaded once outside the sandbox, where they do not reach. So this test
refuses them in the source of each of those modules, statically; restricted builtins (`open`) still fail at run time.
"""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# module -> names whose use (call or attribute) is nondeterministic in workflow code; "*" means any attribute
FORBIDDEN = {
    "datetime": {"now", "utcnow", "today", "fromtimestamp"},
    "date": {"today", "fromtimestamp"},
    "time": {"time", "time_ns", "monotonic", "monotonic_ns", "perf_counter", "perf_counter_ns", "sleep", "localtime", "gmtime"},
    "uuid": {"uuid1", "uuid4"},
    "os": {"urandom", "getenv", "environ", "getpid", "times", "getcwd", "listdir", "stat", "scandir"},
    "sys": {"argv", "flags"},
    "Path": {"cwd", "home"},
    "random": {"*"},
    "secrets": {"*"},
}
# Nothing in these is deterministic workflow material (I/O, threads, the machine, randomness, clocks).
FORBIDDEN_MODULES = {"random", "secrets", "time", "socket", "platform", "threading", "subprocess", "pathlib", "shutil"}


def sandboxed_modules() -> list[str]:
    done = subprocess.run([sys.executable, "scripts/import_graph.py", "--sandbox"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    line = next(line for line in done.stdout.splitlines() if line.startswith("project modules:"))
    return line.removeprefix("project modules:").split()


def offences(source: str) -> list[str]:
    tree = ast.parse(source)
    names: dict[str, str] = {}  # local name -> what it is (`import os as _os`, `from datetime import datetime as dt`)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                names[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else alias.name.split(".")[0]
                if alias.name.split(".")[0] in FORBIDDEN_MODULES:
                    found.append(f"line {node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.module:
            top = node.module.split(".")[0]
            if top in FORBIDDEN_MODULES:
                found.append(f"line {node.lineno}: from {node.module} import ...")
            for alias in node.names:
                names[alias.asname or alias.name] = alias.name
                if top in FORBIDDEN and alias.name in FORBIDDEN[top]:
                    found.append(f"line {node.lineno}: from {node.module} import {alias.name}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            owner = node.value
            kind = (names.get(owner.id, owner.id) if isinstance(owner, ast.Name)
                    else owner.attr if isinstance(owner, ast.Attribute) else None)  # datetime.datetime.now and the like
            forbidden = FORBIDDEN.get(kind or "", set())
            if "*" in forbidden or node.attr in forbidden:
                found.append(f"line {node.lineno}: {kind}.{node.attr}")
    return found


@pytest.mark.parametrize("module", sandboxed_modules())
def test_workflow_code_reads_no_clock_randomness_or_environment(module: str) -> None:
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin, module
    assert offences(Path(spec.origin).read_text()) == [], f"{module} ({spec.origin})"


@pytest.mark.parametrize("source", [
    "from datetime import datetime\nx = datetime.now()",
    "import datetime\nx = datetime.datetime.utcnow()",
    "import time\nx = time.time()",
    "import random\nx = random.random()",
    "from uuid import uuid4",
    "import os\nx = os.environ['A']",
    "import os as _os\nx = _os.environ['A']",
    "from datetime import datetime as dt\nx = dt.now()",
    "import datetime as d\nx = d.datetime.now()",
    "import sys\nx = sys.argv",
    "from pathlib import Path\nx = Path.cwd()",
    "import threading",
])
def test_the_check_finds_each_kind(source: str) -> None:
    assert offences(source)


def test_the_check_passes_what_workflows_use() -> None:
    assert offences("from datetime import datetime, timedelta\nfrom temporalio import workflow\n"
                    "x = workflow.now() + timedelta(seconds=1)\ny = workflow.random().random()\nz = workflow.uuid4()\n") == []
