"""`ContentStore` on the local filesystem: each text is a file named by its SHA-256 under one folder.

Invariants: the folder is created on first write, not when the store is built; writes go to a temp
file in the same folder and are renamed into place, so concurrent workers storing the same content
are harmless and a reader never sees a partial file; a reference is `sha256:<64 hex>` and nothing else
is accepted as one, so a reference can never name a path outside the folder.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from core.hashing import sha256_text

REF_PREFIX = "sha256:"
_DIGEST = re.compile(r"[0-9a-f]{64}")


def digest_of(ref: str) -> str:
    """The SHA-256 hex digest `ref` names; KeyError unless it is exactly `sha256:<64 lowercase hex>`."""
    digest = ref.removeprefix(REF_PREFIX)
    # Only a well-formed digest names content: "sha256:../x" must not reach the filesystem or a bucket key.
    if not ref.startswith(REF_PREFIX) or not _DIGEST.fullmatch(digest):
        raise KeyError(ref)
    return digest


class FileContentStore:
    """Content-addressed text files under `root`."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def put(self, text: str) -> str:
        digest = sha256_text(text)
        self.root.mkdir(parents=True, exist_ok=True)
        target = self.root / digest
        if not target.exists():
            fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-")
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.replace(tmp, target)
        return REF_PREFIX + digest

    def get(self, ref: str) -> str:
        path = self.root / digest_of(ref)
        if not path.is_file():
            raise KeyError(ref)
        return path.read_text(encoding="utf-8")
