"""SHA-256 as lowercase hex: the one content hash Foreman uses (artifacts, actions, content store)."""

from __future__ import annotations

import hashlib


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_text(text: str) -> str:
    """The hash of `text` encoded as UTF-8."""
    return sha256_bytes(text.encode("utf-8"))
