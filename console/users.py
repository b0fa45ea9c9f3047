"""The console's users: who may log in, with which password, and which signing key their decisions carry.

The file (FOREMAN_CONSOLE_USERS, JSON or TOML) lists `users`, each with a `name`, a `password` hash
(`scrypt$<n>$<r>$<p>$<salt>$<hash>`, base64; `python -m console adduser NAME` writes one) and optionally `key`,
the path of the user's Ed25519 private key (default: `approver_keys.key_path(name)`, if that file exists).
No password is ever stored or compared in clear; hashes are compared in constant time.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import os
import tomllib
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

import approver_keys

SCHEME = "scrypt"
N, R, P = 2**14, 8, 1  # 16 MiB of memory per check: slow for a guesser, quick enough for a login
MIN_PASSWORD_CHARS = 8


class UsersFileError(Exception):
    """The users file cannot be read or written (missing, malformed, a hash in an unknown format)."""


class ConsoleUser(BaseModel):
    """One person who may log in; decisions they make in the console are made in this name."""

    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]*$")
    password: str = Field(description="scrypt$n$r$p$salt$hash (base64), never the password itself.")
    key: str | None = Field(default=None, description="Path of the user's Ed25519 private key (PKCS#8 PEM).")

    def signing_key(self) -> bytes | None:
        """The private key this user's decisions are signed with: `key` (must exist), else the default file if any."""
        return approver_keys.private_key(self.name, self.key)


class UsersFile(BaseModel):
    users: list[ConsoleUser] = Field(default_factory=list)


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=N, r=R, p=P, dklen=32)
    encode = lambda raw: base64.b64encode(raw).decode()  # noqa: E731
    return f"{SCHEME}${N}${R}${P}${encode(salt)}${encode(digest)}"


def password_matches(password: str, stored: str) -> bool:
    """Whether `password` hashes to `stored`; a hash in another format never matches."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != SCHEME:
            return False
        expected = base64.b64decode(digest, validate=True)
        actual = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt, validate=True), n=int(n), r=int(r), p=int(p),
                                dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def load(path: Path) -> dict[str, ConsoleUser]:
    """The users in `path` by name (JSON or TOML by suffix); a missing file is no users."""
    if not path.exists():
        return {}
    try:
        raw = path.read_bytes()
        data = tomllib.loads(raw.decode()) if path.suffix == ".toml" else json.loads(raw)
        users = UsersFile.model_validate(data).users
    except (OSError, UnicodeDecodeError, ValueError) as err:  # json, toml and pydantic errors are ValueErrors
        detail = err.errors()[0]["msg"] if isinstance(err, ValidationError) else err
        raise UsersFileError(f"cannot read the console users in {path}: {detail}") from err
    names = [u.name for u in users]
    if len(set(names)) != len(names):
        raise UsersFileError(f"{path} lists a user twice")
    return {u.name: u for u in users}


def authenticate(users: dict[str, ConsoleUser], name: str, password: str) -> ConsoleUser | None:
    """The user when `password` is theirs; None otherwise (an unknown name costs the same hash as a known one)."""
    user = users.get(name)
    stored = user.password if user else _decoy()
    return user if password_matches(password, stored) and user is not None else None


def add_user(path: Path, name: str, password: str, key: str | None = None) -> ConsoleUser:
    """Add NAME (or replace NAME's password and key) in the JSON users file at `path`."""
    if path.suffix == ".toml":
        raise UsersFileError(f"{path} is TOML, which this command does not write: add the user by hand "
                             f"(password = {hash_password(password)!r})")
    if len(password) < MIN_PASSWORD_CHARS:
        raise UsersFileError(f"the password must have at least {MIN_PASSWORD_CHARS} characters")
    users = load(path)
    try:
        user = ConsoleUser(name=name, password=hash_password(password), key=key)
    except ValidationError as err:
        raise UsersFileError(f"invalid user: {err.errors()[0]['msg']}") from err
    users[name] = user
    path.parent.mkdir(parents=True, exist_ok=True)
    text = UsersFile(users=list(users.values())).model_dump_json(indent=2, exclude_none=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # hashes are still worth guarding
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text + "\n")
    return user


@functools.cache
def _decoy() -> str:
    return hash_password("not a password anyone has", salt=b"\0" * 16)
