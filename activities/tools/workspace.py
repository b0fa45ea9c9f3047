"""Workspace file tools: `read_file`, `write_file`, `list_files`, over the `Workspace` store passed in.

Invariants: the store confines every path to the workspace (PathOutsideWorkspace otherwise) and writes
atomically; these activities add the artifact check (a write bound to a content hash carries exactly
that content) and the text the model sees. A retried `write_file` returns what its first attempt wrote
(path, size, hash) instead of writing again (`Idempotency`, by the call's stamped key), so it never overwrites
a later change to the file; should an attempt die between the write and the record, its retry writes the same
content again (an idempotent effect). Blocking store calls run in a thread.
"""

from __future__ import annotations

from activities.content_store import tool_result
from activities.tools.idempotency import Idempotency
from activities.tools.registry import run_store, tool_activity, tool_error
from contracts.errors import ErrorType
from contracts.tools import ListFilesArgs, ReadFileArgs, ToolResult, WriteFileArgs
from core.artifacts import artifact_mismatch
from stores.protocols import ContentStore, FileListing, Workspace

MAX_LISTED = 1_000


def format_listing(listing: FileListing) -> str:
    """A header line, then one `path<TAB>bytes` line per file."""
    if not listing.files:
        return f"no files under {listing.folder}"
    header = f"{len(listing.files)} files under {listing.folder} (path<TAB>bytes)"
    if listing.more:
        header += f", first {MAX_LISTED} shown"
    return "\n".join([header, *(f"{path}\t{size}" for path, size in listing.files)])


class WorkspaceTools:
    """The workspace tools, bound to one workspace and one content store."""

    def __init__(self, workspace: Workspace, content: ContentStore, once: Idempotency) -> None:
        self._workspace = workspace
        self._content = content
        self._once = once

    @tool_activity("read_file")
    async def read_file(self, args: ReadFileArgs) -> ToolResult:
        """Read a UTF-8 text file from the workspace (path relative to the workspace root)."""
        return tool_result(self._content, "read_file", await run_store(self._workspace.read_text, args.path))

    @tool_activity("write_file")
    async def write_file(self, args: WriteFileArgs) -> ToolResult:
        """Write a UTF-8 text file in the workspace, replacing it atomically and creating parent folders."""
        problem = artifact_mismatch(args)
        if problem:  # checked again here: an approval bound to one artifact must never write another
            raise tool_error(ErrorType.ARTIFACT_MISMATCH, problem)
        return await self._once.once("write_file", args.idempotency_key, lambda: self._write(args))

    async def _write(self, args: WriteFileArgs) -> ToolResult:
        written = await run_store(self._workspace.write_text, args.path, args.content)
        text = f"wrote {written.path} ({written.size_bytes} bytes, sha256 {written.sha256})"
        return tool_result(self._content, "write_file", text)

    @tool_activity("list_files")
    async def list_files(self, args: ListFilesArgs) -> ToolResult:
        """List the files (recursively, with sizes in bytes) under a workspace folder."""
        listing = await run_store(self._workspace.list_files, args.path, MAX_LISTED)
        return tool_result(self._content, "list_files", format_listing(listing))
