"""Signed decisions: an approver's Ed25519 signature over exactly what they decided, so an approver's name is
no longer a claim anyone with Update access can make.

The signed message is canonical JSON of `["foreman-decision-v2", workflow_id, subject, action_sha256, decision,
approver, signed_at, note_sha256]` (no spaces, ASCII): `subject` is the approval request or escalation id,
`action_sha256` the request's action hash (an escalation's output hash, or ""), `decision` "approve", "deny" or the
resolution, `signed_at` Unix seconds, `note_sha256` the SHA-256 of the decision's comment (a resolution's guidance,
which a retried step is given as a person's trusted words), so nobody can swap the words under a signature. Public keys are the raw 32 bytes, base64; private keys are PKCS#8 PEM, so
`openssl genpkey -algorithm ed25519` and `openssl pkeyutl -sign -rawin` make and use the same keys.

Pure functions (verification is deterministic), shared by the workflow's checks and by clients that sign.
"""

from __future__ import annotations

import base64
import binascii
import json

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from core.hashing import sha256_text

VERSION = "foreman-decision-v2"


def decision_message(
    workflow_id: str, subject: str, action_sha256: str, decision: str, approver: str, signed_at: int, note: str = "",
) -> bytes:
    fields = [VERSION, workflow_id, subject, action_sha256, decision, approver, signed_at, sha256_text(note)]
    return json.dumps(fields, separators=(",", ":")).encode()


def new_private_key_pem() -> bytes:
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def public_key_of(private_key_pem: bytes) -> str:
    """The base64 public key a policy lists for the holder of this private key."""
    key = serialization.load_pem_private_key(private_key_pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("not an Ed25519 private key")
    return base64.b64encode(key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()


def sign(private_key_pem: bytes, message: bytes) -> str:
    key = serialization.load_pem_private_key(private_key_pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("not an Ed25519 private key")
    return base64.b64encode(key.sign(message)).decode()


def verify(public_key: str, message: bytes, signature: str) -> bool:
    """True only for a well-formed signature of `message` by the holder of `public_key`."""
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key, validate=True))
        key.verify(base64.b64decode(signature, validate=True), message)
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True
