"""Artifact binding: an action that names an artifact's SHA-256 (`expected_sha256`) may only carry
that exact content. Checked by the workflow before anyone is asked to approve, and again by the tool."""

from __future__ import annotations

from contracts.tools import ToolArgs
from core.hashing import sha256_text


def artifact_mismatch(args: ToolArgs) -> str | None:
    """Why `args` do not match the artifact they name, or None (also when they name none)."""
    expected = getattr(args, "expected_sha256", None)
    content = getattr(args, "content", None)
    if expected is None or not isinstance(content, str):
        return None
    actual = sha256_text(content)
    return None if actual == expected else f"content sha256 {actual} is not the expected artifact {expected}"
