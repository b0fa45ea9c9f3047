"""Content-addressed store for tool outputs: history keeps a bounded preview, a SHA-256 and a reference.

Files live under `settings.content_store_dir()/<sha256>`; writes are atomic, so concurrent
workers storing the same content are harmless.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import settings
from contracts.tools import ToolResult
from core.hashing import sha256_text

PREVIEW_CHARS = 4_000
REF_PREFIX = "sha256:"


def put(text: str) -> str:
    """Store `text`; return its reference (`sha256:<hex>`)."""
    digest = sha256_text(text)
    folder = settings.content_store_dir()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / digest
    if not target.exists():
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, target)
    return REF_PREFIX + digest


def get(ref: str) -> str:
    """Load stored content by reference; raises KeyError when absent."""
    if not ref.startswith(REF_PREFIX):
        raise KeyError(ref)
    path: Path = settings.content_store_dir() / ref.removeprefix(REF_PREFIX)
    if not path.is_file():
        raise KeyError(ref)
    return path.read_text(encoding="utf-8")


def tool_result(tool: str, text: str, *, ok: bool = True, error_type: str | None = None) -> ToolResult:
    """A `ToolResult` for `text`: inline when small, preview plus content-store reference when large."""
    size = len(text.encode())
    if len(text) <= PREVIEW_CHARS:
        return ToolResult(tool=tool, ok=ok, content=text, content_sha256=sha256_text(text), size_bytes=size, error_type=error_type)
    return ToolResult(
        tool=tool,
        ok=ok,
        content=text[:PREVIEW_CHARS],
        truncated=True,
        content_sha256=sha256_text(text),
        content_ref=put(text),
        size_bytes=size,
        error_type=error_type,
    )
