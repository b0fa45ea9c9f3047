"""The session cookie, and the sessions it cannot end alone: the ids of sessions logged out, until they would expire.

The cookie is Starlette's signed session cookie, always HttpOnly and SameSite=Strict, and Secure when the request came
over https (its own TLS, or a trusted proxy's X-Forwarded-Proto: `app.create_app`).

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
from typing import Literal
from pathlib import Path

from pydantic import BaseModel, ValidationError
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

logger = logging.getLogger(__name__)


class SessionStoreError(Exception):
    """The revoked-sessions file cannot be read (unreadable or malformed)."""


class RevokedSessionsFile(BaseModel):
    """Revoked session ids, each with the time (Unix seconds) after which it needs no revoking."""

    revoked: dict[str, float]


class SessionCookie:
    """Starlette's session middleware, with the Secure flag on the cookies of requests that came over https."""

    def __init__(self, app: ASGIApp, secret_key: str, session_cookie: str, max_age: int,
                 same_site: Literal["lax", "strict", "none"]) -> None:
        # One secret and cookie name, so each reads the other's cookies; only the flag on the cookies they set differs.
        options = dict(secret_key=secret_key, session_cookie=session_cookie, max_age=max_age, same_site=same_site)
        self.plain = SessionMiddleware(app, https_only=False, **options)
        self.secure = SessionMiddleware(app, https_only=True, **options)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        session = self.secure if scope.get("scheme") in ("https", "wss") else self.plain
        await session(scope, receive, send)


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
            detail = err.errors()[0]["msg"] if isinstance(err, ValidationError) else err  # one line, as users.load says it
            raise SessionStoreError(f"cannot read the console's revoked sessions in {self.path}: {detail}") from err

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
