"""Named playbooks: declarative step graphs (JSON) for the deterministic planner.

Built-ins live beside this file; users add their own folder (`settings.playbooks_dir()`,
FOREMAN_PLAYBOOKS_DIR), searched first. A playbook may carry its own policy; otherwise
`policies/default.json` applies (`settings.policy_file()`, FOREMAN_POLICY_FILE, replaces it).
Each function takes its folders or file as a parameter and falls back to settings when it is not
given, so configuration is read in `settings.py` only, at call time.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import settings
from contracts.plan import PLAYBOOK_NAME_PATTERN, Playbook
from contracts.policy import Policy
from contracts.verify import TestsCheck

BUILTIN_DIR = Path(__file__).resolve().parent
DEFAULT_POLICY_FILE = BUILTIN_DIR / "policies" / "default.json"


def playbook_folders(extra: Path | None = None) -> list[Path]:
    """Folders searched for playbooks, first match wins: `extra` (default: the configured one), then built-ins."""
    extra = extra if extra is not None else settings.playbooks_dir()
    return ([extra] if extra else []) + [BUILTIN_DIR]


def available_playbooks(folders: Sequence[Path] | None = None) -> list[str]:
    names: set[str] = set()
    for folder in folders if folders is not None else playbook_folders():
        names.update(p.stem for p in folder.glob("*.json"))
    return sorted(names)


def load_playbook(name: str, folders: Sequence[Path] | None = None) -> Playbook | None:
    """The named playbook, validated (pydantic ValidationError if malformed); None when no folder has it."""
    if not re.fullmatch(PLAYBOOK_NAME_PATTERN, name):
        return None  # a name is never a path
    for folder in folders if folders is not None else playbook_folders():
        path = folder / f"{name}.json"
        if path.is_file():
            return with_check_scripts(Playbook.model_validate_json(path.read_text(encoding="utf-8")), folder)
    return None


def with_check_scripts(playbook: Playbook, folder: Path) -> Playbook:
    """The playbook with each `tests` check's `script` (a file under `folder`) read into its `code`, so the test
    code travels in the plan to whichever worker runs it. A script outside the folder or missing is a ValueError."""
    root = folder.resolve()

    def read(check: TestsCheck) -> TestsCheck:
        if check.code is not None or check.script is None:
            return check
        path = (root / check.script).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            raise ValueError(f"playbook {playbook.name!r}: check script {check.script!r} is not a file under {folder}")
        return check.model_copy(update={"code": path.read_text(encoding="utf-8")})

    steps = [s.model_copy(update={"checks": [read(c) if isinstance(c, TestsCheck) else c for c in s.checks]}) for s in playbook.steps]
    return playbook.model_copy(update={"steps": steps})


def load_default_policy(path: Path | None = None) -> Policy:
    """The policy for plans whose playbook declares none: `path`, else the configured file, else the built-in."""
    path = path or settings.policy_file() or DEFAULT_POLICY_FILE
    return Policy.model_validate_json(path.read_text(encoding="utf-8"))
