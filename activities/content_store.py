"""How large content stays out of history: a tool's output inline when small, else a bounded preview plus the
SHA-256 and the content-store reference of the full text (`ToolResult`).

Invariants: the full text goes to the `ContentStore` the caller passes in (the worker's, built once
from settings); this module opens nothing itself. `content_sha256` is always the hash of the full text.
"""

from __future__ import annotations

import asyncio
import json
import sys

from temporalio import activity
from temporalio.exceptions import ApplicationError

from contracts.archive import ARCHIVE_CONTENT_ACTIVITY, LOAD_CONTENT_ACTIVITY, ContentRef, ContentText
from contracts.errors import ErrorType
from contracts.plan import EXTRACT_OUTPUT_ACTIVITY, ExtractedValue, ExtractRequest
from contracts.tools import ToolResult
from core.extraction import REGEX_PROGRAM, ExtractionFailed, extract
from core.hashing import sha256_text
from stores.protocols import ContentStore

PREVIEW_CHARS = 4_000
REGEX_SECONDS = 5.0  # a declared pattern that runs longer is stopped: it is backtracking, not reading


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


class ContentActivities:
    """`archive_content` / `load_content`: parts of a large goal result (or a long goal's carried state) into
    and out of the content store passed in."""

    def __init__(self, content: ContentStore) -> None:
        self._content = content

    @activity.defn(name=ARCHIVE_CONTENT_ACTIVITY)
    async def archive_content(self, part: ContentText) -> ContentRef:
        """Store `part.text`; the same text always gets the same reference, so a retry stores nothing twice."""
        ref = await asyncio.to_thread(self._content.put, part.text)
        return ContentRef(ref=ref, sha256=sha256_text(part.text), size_bytes=len(part.text.encode()))

    @activity.defn(name=LOAD_CONTENT_ACTIVITY)
    async def load_content(self, ref: ContentRef) -> ContentText:
        """The text stored under `ref`, refused (never retried) when it is missing or not what the hash says."""
        return ContentText(text=await self.checked_text(ref))

    async def checked_text(self, ref: ContentRef) -> str:
        try:
            text = await asyncio.to_thread(self._content.get, ref.ref)
        except KeyError:
            raise ApplicationError(f"content {ref.ref} is not in this worker's content store", type=ErrorType.CONTENT_MISSING.value,
                                   non_retryable=True) from None
        if sha256_text(text) != ref.sha256:
            raise ApplicationError(f"content {ref.ref} does not match its hash", type=ErrorType.CONTENT_MISSING.value, non_retryable=True)
        return text

    @activity.defn(name=EXTRACT_OUTPUT_ACTIVITY)
    async def extract_output(self, request: ExtractRequest) -> ExtractedValue:
        """A tool step's declared field, from its whole output (read here: the history holds only the value). A regex
        runs in a process of its own, killed after REGEX_SECONDS: a plan's pattern may backtrack for ever."""
        text = await self.checked_text(request.full) if request.full is not None else request.text or ""
        try:
            if request.extract.regex is None:
                return ExtractedValue(value=extract(text, request.extract))
            value = await _regex_value(request.extract.regex, text)
        except ExtractionFailed as err:
            raise ApplicationError(str(err), type=ErrorType.EXTRACTION_FAILED.value, non_retryable=True) from None
        return ExtractedValue(value=value)


async def _regex_value(pattern: str, text: str) -> str:
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-I", "-S", "-c", REGEX_PROGRAM,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(child.communicate(json.dumps({"pattern": pattern, "text": text}).encode()), REGEX_SECONDS)
    except TimeoutError:
        child.kill()
        await child.wait()
        raise ExtractionFailed(f"/{pattern}/ ran past {REGEX_SECONDS:g} s on {len(text)} characters and was stopped") from None
    if child.returncode != 0:
        raise ExtractionFailed(f"/{pattern}/ failed: {err.decode(errors='replace').strip().splitlines()[-1:]}")
    value = json.loads(out)
    if value is None:
        raise ExtractionFailed(f"/{pattern}/ does not match the output")
    return value
