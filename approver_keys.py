"""Approver keys on a person's machine (client side): `starter.py keygen --as NAME` makes an Ed25519 key pair,
and decisions made with `--as NAME` are signed with it, so a goal whose policy lists NAME's public key accepts
decisions in NAME's name only with that signature (`core/signatures.py` says what is signed).

Keys live in FOREMAN_KEYS_DIR (default ~/.config/foreman/keys): `NAME` (PKCS#8 PEM, mode 0600) and `NAME.pub`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import settings
from contracts.policy import DecisionSignature
from core.signatures import decision_message, new_private_key_pem, public_key_of, sign


def key_path(name: str) -> Path:
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"{name!r} cannot name a key file")
    return settings.keys_dir() / name


def keygen(name: str, force: bool = False) -> tuple[Path, str]:
    """Write NAME's new key pair; returns the private key's path and the public key (for the policy)."""
    path = key_path(name)
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists (use --force to replace it; decisions signed with it will no longer verify)")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    pem = new_private_key_pem()
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # never readable by others, even briefly
    os.fchmod(descriptor, 0o600)  # a replaced (--force) file keeps no older, looser mode
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)
    public = public_key_of(pem)
    path.with_name(path.name + ".pub").write_text(public + "\n")  # alice.smith -> alice.smith.pub, never alice.pub
    return path, public


def private_key(name: str, key_file: str | None = None) -> bytes | None:
    """NAME's private key: `key_file` if given (it must exist), else the default file if there is one."""
    if key_file:
        return Path(key_file).read_bytes()
    path = key_path(name)
    return path.read_bytes() if path.exists() else None


def signed(pem: bytes, workflow_id: str, subject: str, action_sha256: str, decision: str, approver: str, note: str = "") -> DecisionSignature:
    """A signature of this decision and its comment or guidance (`note`), dated now."""
    at = int(time.time())
    message = decision_message(workflow_id, subject, action_sha256, decision, approver, at, note)
    return DecisionSignature(signed_at=at, signature=sign(pem, message))
