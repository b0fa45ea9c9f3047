"""Named playbooks: declarative step graphs (JSON) for the deterministic planner.

Built-ins live beside this file; users add their own folder with FOREMAN_PLAYBOOKS_DIR (searched first).
A playbook may carry its own policy; otherwise `policies/default.json` applies.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from contracts.plan import PLAYBOOK_NAME_PATTERN, Playbook
from contracts.policy import Policy

BUILTIN_DIR = Path(__file__).resolve().parent


def _folders() -> list[Path]:
    extra = os.environ.get("FOREMAN_PLAYBOOKS_DIR")
    return ([Path(extra)] if extra else []) + [BUILTIN_DIR]


def available_playbooks() -> list[str]:
    names: set[str] = set()
    for folder in _folders():
        names.update(p.stem for p in folder.glob("*.json"))
    return sorted(names)


def load_playbook(name: str) -> Playbook | None:
    """The named playbook, validated (pydantic ValidationError if malformed); None when no folder has it."""
    if not re.fullmatch(PLAYBOOK_NAME_PATTERN, name):
        return None  # a name is never a path
    for folder in _folders():
        path = folder / f"{name}.json"
        if path.is_file():
            return Playbook.model_validate_json(path.read_text(encoding="utf-8"))
    return None


def load_default_policy() -> Policy:
    """The policy for plans whose playbook declares none (FOREMAN_POLICY_FILE overrides the built-in)."""
    path = Path(os.environ.get("FOREMAN_POLICY_FILE") or BUILTIN_DIR / "policies" / "default.json")
    return Policy.model_validate_json(path.read_text(encoding="utf-8"))
