"""`Workspace` on the local filesystem: one folder the workspace tools may read and write.

Invariants: every path is relative to the root and is resolved (following symlinks) before use;
anything that resolves outside the root is refused with PathOutsideWorkspace, and writes additionally
refuse to go through a symlink (policy judges the path as written). Writes are atomic (temp file in
the same folder + fsync + `os.replace`), so a retried or concurrent write leaves either the old or the
new content, never a partial file. The root is created on first use, not when the store is built.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import stat
import tempfile
from pathlib import Path, PurePosixPath, PureWindowsPath

from contracts.errors import ErrorType
from core.hashing import sha256_bytes
from stores.protocols import FileListing, StoreError, WrittenFile

MAX_READ_BYTES = 10_000_000
TEMP_PREFIX = ".tmp-"


class LocalWorkspace:
    """Workspace files under `root`."""

    def __init__(self, root: Path, *, max_read_bytes: int = MAX_READ_BYTES) -> None:
        self.root = Path(root)
        self.max_read_bytes = max_read_bytes

    def _real_root(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        return self.root.resolve()

    def _locate(self, path: str) -> tuple[Path, Path]:
        """(real root, resolved target) for a model-supplied relative path."""
        if "\x00" in path:
            raise StoreError(ErrorType.TOOL_ARGUMENTS_INVALID, "path contains a NUL byte")
        # Reject both POSIX and Windows absolute forms: the model must never name a location by itself.
        if PurePosixPath(path).is_absolute() or PureWindowsPath(path).is_absolute() or PureWindowsPath(path).drive:
            raise StoreError(ErrorType.PATH_OUTSIDE_WORKSPACE, f"absolute paths are not allowed: {path!r}")
        root = self._real_root()
        # resolve() follows symlinks and collapses `..`, so the containment check sees the real target.
        target = (root / path).resolve()
        if not target.is_relative_to(root):
            raise StoreError(ErrorType.PATH_OUTSIDE_WORKSPACE, f"path escapes the workspace: {path!r}")
        return root, target

    @staticmethod
    def _display(root: Path, target: Path) -> str:
        return target.relative_to(root).as_posix() or "."

    def resolve(self, path: str) -> str:
        root, target = self._locate(path)
        return self._display(root, target)

    def read_text(self, path: str) -> str:
        root, target = self._locate(path)
        shown = self._display(root, target)
        if not target.exists():
            raise StoreError(ErrorType.TOOL_FAILED, f"file not found: {shown}")
        if not target.is_file():
            raise StoreError(ErrorType.TOOL_FAILED, f"not a file: {shown}")
        size = target.stat().st_size
        if size > self.max_read_bytes:
            raise StoreError(ErrorType.TOOL_FAILED, f"file too large to read ({size} bytes > {self.max_read_bytes}): {shown}")
        try:
            return target.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise StoreError(ErrorType.TOOL_FAILED, f"not UTF-8 text: {shown}") from exc

    def write_text(self, path: str, content: str) -> WrittenFile:
        root, target = self._locate(path)
        shown = self._display(root, target)
        if target != root / posixpath.normpath(path):
            # Policy gates judge the path as written; a write through a symlink would land elsewhere.
            raise StoreError(ErrorType.PATH_OUTSIDE_WORKSPACE, f"writes do not follow symlinks: {path!r} resolves to {shown}")
        if target == root or target.is_dir():
            raise StoreError(ErrorType.TOOL_FAILED, f"is a folder, not a file: {shown}")
        data = content.encode("utf-8")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as exc:
            raise StoreError(ErrorType.TOOL_FAILED, f"a parent of {shown} is a file, not a folder") from exc
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=TEMP_PREFIX)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return WrittenFile(path=shown, size_bytes=len(data), sha256=sha256_bytes(data))

    def list_files(self, path: str, limit: int) -> FileListing:
        root, folder = self._locate(path)
        shown = self._display(root, folder)
        if not folder.exists():
            raise StoreError(ErrorType.TOOL_FAILED, f"folder not found: {shown}")
        if not folder.is_dir():
            raise StoreError(ErrorType.TOOL_FAILED, f"not a folder: {shown}")
        files: list[tuple[str, int]] = []
        # followlinks=False: a symlinked folder is not walked; symlinked files are listed only if they stay inside.
        for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
            dirnames.sort()
            for name in sorted(filenames):
                if name.startswith(TEMP_PREFIX):
                    continue  # an in-flight atomic write
                entry = Path(dirpath) / name
                real = entry.resolve()
                if not real.is_relative_to(root) or not real.is_file():
                    continue
                if len(files) >= limit:
                    return FileListing(folder=shown, files=files, more=True)
                files.append((entry.relative_to(root).as_posix(), real.stat().st_size))
        return FileListing(folder=shown, files=files)

    def export(self, dest: str, max_bytes: int) -> int:
        root, target = self._real_root(), Path(dest)
        copied = 0
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            here = Path(dirpath)
            out = target / here.relative_to(root)
            out.mkdir(exist_ok=True)
            for name in sorted(dirnames + filenames):
                source = here / name
                info = source.lstat()
                if stat.S_ISLNK(info.st_mode):
                    # Recreated, never followed: inside the sandbox it resolves against the sandbox's own view.
                    os.symlink(os.readlink(source), out / name)
                elif stat.S_ISREG(info.st_mode) and not name.startswith(TEMP_PREFIX):
                    copied += info.st_size
                    if copied > max_bytes:
                        raise StoreError(ErrorType.TOOL_FAILED, f"the workspace is over {max_bytes} bytes: too large to copy into the sandbox")
                    _copy_no_follow(source, out / name)
        return copied


def _copy_no_follow(source: Path, dest: Path) -> None:
    """Copy one regular file; O_NOFOLLOW: a file swapped for a symlink meanwhile is refused, not read through."""
    fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as reader, open(dest, "xb") as writer:
        shutil.copyfileobj(reader, writer)
