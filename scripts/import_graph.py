"""The project's import graph between layers, read from source with `ast` (nothing is imported).

    python scripts/import_graph.py            # edges between layers, then any edge against the layering
    python scripts/import_graph.py --modules  # module-level edges that cross layers
    python scripts/import_graph.py --sandbox  # what importing the workflow module pulls in (as the sandbox does)

Layers, lowest first: contracts -> core -> (workflows | activities, stores, playbooks, settings) -> wiring.
Workflows and activities never import each other; workflow code reaches activities by name only.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SKIP = {".venv", ".git", "tests", "bench", "scripts", "testkit", ".foreman", "demo"}
# Each layer may import only the layers listed for it.
ALLOWED: dict[str, set[str]] = {
    "contracts": {"contracts"},
    "core": {"contracts", "core"},
    "workflows": {"contracts", "core", "workflows"},
    "settings": {"contracts", "core", "settings"},
    "stores": {"contracts", "core", "stores", "settings"},
    "playbooks": {"contracts", "core", "playbooks", "settings"},
    "activities": {"contracts", "core", "activities", "stores", "playbooks", "settings"},
}
WIRING = {"worker", "starter", "histories", "goal_events", "approver_keys", "devserver", "temporal_client", "observability"}


def layer_of(module: str) -> str:
    top = module.split(".", 1)[0]
    return "wiring" if top in WIRING else top


def project_modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(ROOT.rglob("*.py")):
        relative = path.relative_to(ROOT)
        if relative.parts[0] in SKIP:
            continue
        parts = list(relative.with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports_of(path: Path, module: str, known: set[str]) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    tops = {m.split(".", 1)[0] for m in known}
    return {n for n in names if n.split(".", 1)[0] in tops and (n in known or n.rpartition(".")[0] in known)}


SANDBOX_PROBE = """
import sys
import pydantic, temporalio.workflow, temporalio.client  # the SDK and pydantic are there anyway
before = set(sys.modules)
import workflows.goal
loaded = sorted(set(sys.modules) - before)
tops = {m.split('.', 1)[0] for m in loaded}
print('modules loaded by importing workflows.goal:', len(loaded))
print('project modules:', ' '.join(m for m in loaded if m.split('.', 1)[0] in PROJECT))
print('I/O libraries:', ' '.join(sorted(tops & IO_LIBRARIES)) or 'none')
"""


def sandbox_report() -> None:
    """Import the workflow module in a fresh interpreter and list what came with it."""
    import subprocess

    project = sorted({m.split(".", 1)[0] for m in project_modules()})
    io = ["httpx", "sqlite3", "llama_cpp", "socket", "ssl", "subprocess", "httpcore", "anyio", "psycopg", "boto3", "botocore"]
    code = f"PROJECT = {set(project)!r}\nIO_LIBRARIES = {set(io)!r}\n" + SANDBOX_PROBE
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def main() -> int:
    if "--sandbox" in sys.argv:
        sandbox_report()
    modules = project_modules()
    known = set(modules)
    layer_edges: dict[tuple[str, str], set[str]] = defaultdict(set)
    for module, path in modules.items():
        for target in imports_of(path, module, known):
            target_module = target if target in known else target.rpartition(".")[0]
            a, b = layer_of(module), layer_of(target_module)
            if a != b:
                layer_edges[(a, b)].add(f"{module} -> {target_module}")
    print("layer edges (importer -> imported: module count)")
    for (a, b), edges in sorted(layer_edges.items()):
        print(f"  {a:>10} -> {b:<10} {len(edges)}")
    if "--modules" in sys.argv:
        for (a, b), edges in sorted(layer_edges.items()):
            for edge in sorted(edges):
                print(f"    {edge}")
    violations = sorted(
        edge for (a, b), edges in layer_edges.items() if a in ALLOWED and b not in ALLOWED[a] for edge in edges
    )
    print(f"edges against the layering: {len(violations)}")
    for edge in violations:
        print(f"  {edge}")
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
