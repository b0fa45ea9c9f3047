"""How a tool's output reaches history: small outputs inline, large ones as a bounded preview plus the
SHA-256 and the content-store reference of the full text (`ToolResult`).

Invariants: the full text goes to the `ContentStore` the caller passes in (the worker's, built once
from settings); this module opens nothing itself. `content_sha256` is always the hash of the full text.
"""

from __future__ import annotations

from contracts.tools import ToolResult
from core.hashing import sha256_text
from stores.protocols import ContentStore

PREVIEW_CHARS = 4_000


def tool_result(content: ContentStore, tool: str, text: str, *, ok: bool = True, error_type: str | None = None) -> ToolResult:
    """A `ToolResult` for `text`: inline when small, preview plus a reference into `content` when large."""
    size = len(text.encode())
    if len(text) <= PREVIEW_CHARS:
        return ToolResult(tool=tool, ok=ok, content=text, content_sha256=sha256_text(text), size_bytes=size, error_type=error_type)
    return ToolResult(
        tool=tool,
        ok=ok,
        content=text[:PREVIEW_CHARS],
        truncated=True,
        content_sha256=sha256_text(text),
        content_ref=content.put(text),
        size_bytes=size,
        error_type=error_type,
    )
