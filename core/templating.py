"""Template filling for declared tool arguments and instructions, done in workflow code (pure, deterministic).

Placeholders: `{{goal}}`, `{{goal_slug}}`, `{{steps.<id>.output}}` and `{{steps.<id>.sha256}}` (the
output's content hash, for actions bound to an exact artifact). Values are substituted into the
parsed JSON strings, never into raw JSON text, so step outputs cannot break or inject JSON structure.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping

from core.hashing import sha256_text

_PLACEHOLDER = re.compile(r"\{\{\s*(goal|goal_slug|steps\.([a-z][a-z0-9_-]*)\.(output|sha256))\s*\}\}")


MAX_SLUG_CHARS = 60


def slugify(text: str, max_words: int = 6) -> str:
    """A short, path-safe slug; text with no ASCII words gets a stable hash so goals do not collide."""
    words = re.findall(r"[a-z0-9]+", text.lower())[:max_words]
    slug = "-".join(words)[:MAX_SLUG_CHARS].strip("-")
    if slug:
        return slug
    return f"goal-{sha256_text(text)[:10]}" if text.strip() else "goal"


def render(template: str, goal: str, outputs: Mapping[str, str], paste: Callable[[str, str], str] | None = None) -> str:
    """Fill placeholders; an unknown step id raises KeyError (a plan bug, caught by validation). `paste(step_id, text)`
    gives the form an output takes where its text is pasted (a prompt marks it untrusted); a hash is of the text itself."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(1) == "goal":
            return goal
        if match.group(1) == "goal_slug":
            return slugify(goal)
        output = outputs[match.group(2)]
        if match.group(3) == "sha256":
            return sha256_text(output)
        return paste(match.group(2), output) if paste else output

    return _PLACEHOLDER.sub(substitute, template)


def referenced_steps(template: str) -> set[str]:
    return {m.group(2) for m in _PLACEHOLDER.finditer(template) if m.group(2)}


def referenced_outputs(template: str) -> set[str]:
    """Steps whose output text (not just its hash) the template pastes in."""
    return {m.group(2) for m in _PLACEHOLDER.finditer(template) if m.group(2) and m.group(3) == "output"}


def render_arguments(arguments_json: str, goal: str, outputs: Mapping[str, str]) -> str:
    """Parse a JSON object, fill placeholders inside its string values, return canonical JSON."""

    def walk(value: object) -> object:
        if isinstance(value, str):
            return render(value, goal, outputs)
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        return value

    parsed = json.loads(arguments_json)
    if not isinstance(parsed, dict):
        raise ValueError("tool arguments must be a JSON object")
    return json.dumps(walk(parsed), sort_keys=True, ensure_ascii=False)
