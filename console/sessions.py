"""Sessions a signed cookie alone cannot end: the ids of sessions logged out, until those sessions would have expired.

A login's session carries a random id (`auth.log_in`); logging out revokes it here, so a copy of the cookie (another
tab, a stolen one) stops working too. Revocations are kept next to the users file (`<users>.revoked-sessions.json`,
mode 0600), so a restart keeps them as it keeps the users. Each is dropped once the session it revoked would have
expired anyway: the cookie's timestamp is renewed by every response, so no copy outlives the logout by more than
the session's max age. The file thus holds at most the logouts of one max age. A file that cannot be written is
logged and the revocation still holds in memory until the console stops.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, ValidationError

logger = logging.getLogger(__name__)


class SessionStoreError(Exception):
    """The revoked-sessions file cannot be read (unreadable or malformed)."""


class RevokedSessionsFile(BaseModel):
    """Revoked session ids, each with the time (Unix seconds) after which it needs no revoking."""

    revoked: dict[str, float]


def revoked_sessions_path(users_path: Path) -> Path:
    return users_path.with_name(f"{users_path.stem}.revoked-sessions.json")


class RevokedSessions:
    """Session ids logged out, kept in a file until their sessions would have expired."""

    def __init__(self, path: Path, max_age_seconds: float, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.max_age_seconds = max_age_seconds
        self._clock = clock  # wall clock, not monotonic: the times outlive the process
        self._until = self._unexpired(self._load())

    def __contains__(self, session_id: str) -> bool:
        until = self._until.get(session_id)
        return until is not None and until > self._clock()

    def __len__(self) -> int:
        return len(self._until)

    def revoke(self, session_id: str) -> None:
        self._until = self._unexpired(self._until)
        self._until[session_id] = self._clock() + self.max_age_seconds
        try:
            self._save()
        except OSError as err:
            logger.warning("cannot keep the console's logouts in %s (%s): they hold until the console stops", self.path, err)

    def _unexpired(self, until: dict[str, float]) -> dict[str, float]:
        now = self._clock()
        return {session_id: when for session_id, when in until.items() if when > now}

    def _load(self) -> dict[str, float]:
        try:
            return RevokedSessionsFile.model_validate_json(self.path.read_bytes()).revoked
        except FileNotFoundError:
            return {}
        except (OSError, ValidationError) as err:
            raise SessionStoreError(f"cannot read the console's revoked sessions in {self.path}: {err}") from err

    def _save(self) -> None:
        text = RevokedSessionsFile(revoked=self._until).model_dump_json()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".revoked-")  # mode 0600
        try:
            with os.fdopen(descriptor, "w") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())  # a logout that a crash forgets would bring the session back
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
