"""Workspace file tools: `read_file`, `write_file`, `list_files`.

Invariants: every path is relative to `settings.workspace_dir()` and is resolved (following symlinks)
before use; anything that resolves outside the workspace is refused with PathOutsideWorkspace.
Writes are atomic (temp file in the same folder + `os.replace`), so a retried or concurrent write
leaves either the old or the new content, never a partial file. Blocking I/O runs in a thread.
"""

from __future__ import annotations

import asyncio
import os
import posixpath
import tempfile
from pathlib import Path, PurePosixPath, PureWindowsPath

import settings
from activities.content_store import tool_result
from activities.tools.registry import tool_activity, tool_error
from contracts.errors import ErrorType
from contracts.tools import ListFilesArgs, ReadFileArgs, ToolResult, WriteFileArgs
from core.artifacts import artifact_mismatch
from core.hashing import sha256_bytes

MAX_READ_BYTES = 10_000_000
MAX_LISTED = 1_000
_TEMP_PREFIX = ".tmp-"


def _root() -> Path:
    root = settings.workspace_dir()
    root.mkdir(parents=True, exist_ok=True)
    return root.resolve()


def resolve_in_workspace(path: str) -> tuple[Path, Path]:
    """(workspace root, resolved target) for a model-supplied relative path; raises PathOutsideWorkspace."""
    if "\x00" in path:
        raise tool_error(ErrorType.TOOL_ARGUMENTS_INVALID, "path contains a NUL byte")
    # Reject both POSIX and Windows absolute forms: the model must never name a location by itself.
    if PurePosixPath(path).is_absolute() or PureWindowsPath(path).is_absolute() or PureWindowsPath(path).drive:
        raise tool_error(ErrorType.PATH_OUTSIDE_WORKSPACE, f"absolute paths are not allowed: {path!r}")
    root = _root()
    # resolve() follows symlinks and collapses `..`, so the containment check sees the real target.
    target = (root / path).resolve()
    if not target.is_relative_to(root):
        raise tool_error(ErrorType.PATH_OUTSIDE_WORKSPACE, f"path escapes the workspace: {path!r}")
    return root, target


def _display(root: Path, target: Path) -> str:
    return target.relative_to(root).as_posix() or "."


def _read(path: str) -> str:
    root, target = resolve_in_workspace(path)
    shown = _display(root, target)
    if not target.exists():
        raise tool_error(ErrorType.TOOL_FAILED, f"file not found: {shown}")
    if not target.is_file():
        raise tool_error(ErrorType.TOOL_FAILED, f"not a file: {shown}")
    size = target.stat().st_size
    if size > MAX_READ_BYTES:
        raise tool_error(ErrorType.TOOL_FAILED, f"file too large to read ({size} bytes > {MAX_READ_BYTES}): {shown}")
    try:
        return target.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise tool_error(ErrorType.TOOL_FAILED, f"not UTF-8 text: {shown}") from exc


def _write(path: str, content: str) -> str:
    root, target = resolve_in_workspace(path)
    shown = _display(root, target)
    if target != root / posixpath.normpath(path):
        # Policy gates judge the path as written; a write through a symlink would land elsewhere.
        raise tool_error(ErrorType.PATH_OUTSIDE_WORKSPACE, f"writes do not follow symlinks: {path!r} resolves to {shown}")
    if target == root or target.is_dir():
        raise tool_error(ErrorType.TOOL_FAILED, f"is a folder, not a file: {shown}")
    data = content.encode("utf-8")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        raise tool_error(ErrorType.TOOL_FAILED, f"a parent of {shown} is a file, not a folder") from exc
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=_TEMP_PREFIX)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    digest = sha256_bytes(data)
    return f"wrote {shown} ({len(data)} bytes, sha256 {digest})"


def _list(path: str) -> str:
    root, folder = resolve_in_workspace(path)
    shown = _display(root, folder)
    if not folder.exists():
        raise tool_error(ErrorType.TOOL_FAILED, f"folder not found: {shown}")
    if not folder.is_dir():
        raise tool_error(ErrorType.TOOL_FAILED, f"not a folder: {shown}")
    lines: list[str] = []
    more = False
    # followlinks=False: a symlinked folder is not walked; symlinked files are listed only if they stay inside.
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            if name.startswith(_TEMP_PREFIX):
                continue  # an in-flight atomic write
            entry = Path(dirpath) / name
            real = entry.resolve()
            if not real.is_relative_to(root) or not real.is_file():
                continue
            if len(lines) >= MAX_LISTED:
                more = True
                break
            lines.append(f"{entry.relative_to(root).as_posix()}\t{real.stat().st_size}")
        if more:
            break
    if not lines:
        return f"no files under {shown}"
    header = f"{len(lines)} files under {shown} (path<TAB>bytes)" + (f", first {MAX_LISTED} shown" if more else "")
    return "\n".join([header, *lines])


@tool_activity("read_file")
async def read_file(args: ReadFileArgs) -> ToolResult:
    """Read a UTF-8 text file from the workspace (path relative to the workspace root)."""
    return tool_result("read_file", await asyncio.to_thread(_read, args.path))


@tool_activity("write_file")
async def write_file(args: WriteFileArgs) -> ToolResult:
    """Write a UTF-8 text file in the workspace, replacing it atomically and creating parent folders."""
    problem = artifact_mismatch(args)
    if problem:  # checked again here: an approval bound to one artifact must never write another
        raise tool_error(ErrorType.ARTIFACT_MISMATCH, problem)
    return tool_result("write_file", await asyncio.to_thread(_write, args.path, args.content))


@tool_activity("list_files")
async def list_files(args: ListFilesArgs) -> ToolResult:
    """List the files (recursively, with sizes in bytes) under a workspace folder."""
    return tool_result("list_files", await asyncio.to_thread(_list, args.path))
