"""Who is asking, and whether a form came from the console: session login and CSRF, for every request.

`Guard` is one ASGI middleware inside Starlette's `SessionMiddleware` (a signed cookie, itsdangerous): without a
logged-in user, a page redirects to /login and anything else is refused (only /login and /static are open); every
POST must carry the session's CSRF token as the form field `csrf` (compared in constant time) or it is refused with
403 before any handler runs. The user is re-read from the users file on each request, so removing a user logs them out.
A session also ends when its id was revoked (logged out: `console.sessions`) or its user's password changed since the
login (the session holds a fingerprint of the password hash it was made with).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from pathlib import Path
from urllib.parse import parse_qs, quote

from starlette.responses import PlainTextResponse, RedirectResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from console.sessions import RevokedSessions
from console.users import ConsoleUser, load

OPEN_PATHS = ("/login",)
OPEN_PREFIXES = ("/static/",)
CSRF_FIELD = "csrf"
USER = "user"
SESSION_ID = "sid"
PASSWORD_FINGERPRINT = "password_fingerprint"
MAX_FORM_BYTES = 64 * 1024


class UserDirectory:
    """The users file, read again whenever it changes on disk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._users: dict[str, ConsoleUser] = {}

    def users(self) -> dict[str, ConsoleUser]:
        try:
            stat = self.path.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
        except FileNotFoundError:
            stamp = None
        if stamp != self._stamp:
            self._users, self._stamp = load(self.path), stamp
        return self._users

    def get(self, name: str | None) -> ConsoleUser | None:
        return self.users().get(name) if name else None


def csrf_token(session: dict) -> str:
    """The session's CSRF token (made on first use)."""
    if CSRF_FIELD not in session:
        session[CSRF_FIELD] = secrets.token_urlsafe(32)
    return session[CSRF_FIELD]


def password_fingerprint(user: ConsoleUser) -> str:
    """A digest of the user's password hash: a new password (always a new salt) gives a new one."""
    # The cookie is signed, not encrypted: it may carry a digest of the hash, never the hash and its salt.
    return hashlib.sha256(user.password.encode()).hexdigest()


def log_in(session: dict, user: ConsoleUser) -> None:
    session.clear()  # nothing from before the login survives, the CSRF token included
    session[USER] = user.name
    session[SESSION_ID] = secrets.token_urlsafe(32)
    session[PASSWORD_FINGERPRINT] = password_fingerprint(user)
    csrf_token(session)


def log_out(session: dict, revoked: RevokedSessions) -> None:
    if session_id := session.get(SESSION_ID):
        revoked.revoke(session_id)
    session.clear()


def current_user(scope: Scope) -> ConsoleUser | None:
    return scope.get("console_user")


class Guard:
    def __init__(self, app: ASGIApp, directory: UserDirectory, revoked: RevokedSessions) -> None:
        self.app = app
        self.directory = directory
        self.revoked = revoked

    def logged_in_user(self, session: dict) -> ConsoleUser | None:
        """The session's user while the session holds: not logged out, and made with the user's current password."""
        user = self.directory.get(session.get(USER))
        session_id = session.get(SESSION_ID)
        if user is None or not session_id or session_id in self.revoked:
            return None
        return user if session.get(PASSWORD_FINGERPRINT) == password_fingerprint(user) else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        session = scope["session"]
        path = scope["path"]
        user = self.logged_in_user(session)
        if user is None and session.get(USER):
            session.clear()  # removed from the file, logged out elsewhere, or a new password since
        scope["console_user"] = user
        is_open = path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)
        if user is None and not is_open:
            if scope["method"] in ("GET", "HEAD"):
                target = path + (f"?{scope['query_string'].decode()}" if scope["query_string"] else "")
                await RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)(scope, receive, send)
            else:
                await PlainTextResponse("log in first", status_code=403)(scope, receive, send)
            return
        if scope["method"] == "POST":
            body = await _read_body(receive)
            if body is None:
                await PlainTextResponse("form too large", status_code=413)(scope, receive, send)
                return
            sent = parse_qs(body.decode("latin-1")).get(CSRF_FIELD, [""])[0]
            expected = session.get(CSRF_FIELD, "")
            if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
                await PlainTextResponse("missing or wrong CSRF token: reload the page and try again", status_code=403)(scope, receive, send)
                return
            receive = _replay(body, receive)
        await self.app(scope, receive, send)


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, original: Receive) -> Receive:
    """The body read for the check, once; then the connection's own messages (a disconnect, when it comes)."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await original()

    return receive
