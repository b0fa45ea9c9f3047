"""The console's Starlette app: routes, templates and the shared state (Temporal client, users, stores).

`create_app` takes everything it uses (a connected client or none: it connects on start-up with
`temporal_client.connect`; the users file, next to which logouts are kept; the cookie secret; the stores), so tests
build one over their own dev server and users file. Pages are server-rendered Jinja2 (autoescaped); no front-end
build step, nothing loaded from elsewhere.
"""

from __future__ import annotations

import secrets
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from pathlib import Path

import uvicorn
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from temporalio.client import Client
from temporalio.service import RPCError
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

import settings
from console import views
from console.auth import Guard, UserDirectory
from console.goal_view import PlanCache
from console.login_limits import LoginLimiter
from console.sessions import RevokedSessions, SessionCookie, revoked_sessions_path
from stores import Stores
from temporal_client import connect
from starter import ui_link

HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "foreman_console"
SESSION_HOURS = 12


def countdown(until: datetime) -> str:
    """'4m 10s left' or 'expired', for a deadline (the page's script keeps it ticking)."""
    seconds = int((until - datetime.now(timezone.utc)).total_seconds())
    if seconds <= 0:
        return "expired"
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return (f"{hours}h " if hours else "") + (f"{minutes}m " if hours or minutes else "") + f"{seconds}s left"


def templates() -> Environment:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True, default_for_string=True))
    env.globals.update(ui_link=ui_link, countdown=countdown)
    return env


def create_app(client: Client | None = None, users_path: Path | None = None, secret: str | None = None,
               stores: Stores | None = None) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette):
        if app.state.client is None:
            app.state.client = await connect()
        yield

    users_path = users_path or settings.console_users_path()
    directory = UserDirectory(users_path)
    directory.users()  # a malformed users file stops the start, not the first login
    revoked = RevokedSessions(revoked_sessions_path(users_path), SESSION_HOURS * 3600)
    routes = [
        Route("/", views.goals, methods=["GET"]),
        Route("/login", views.login, methods=["GET", "POST"]),
        Route("/logout", views.logout, methods=["POST"]),
        Route("/goals", views.goals, methods=["GET"]),
        Route("/goal", views.goal, methods=["GET"]),
        Route("/goal/live", views.goal_live, methods=["GET"]),
        Route("/inbox", views.inbox, methods=["GET"]),
        Route("/inbox/approval", views.decide_approval, methods=["POST"]),
        Route("/inbox/escalation", views.resolve_escalation, methods=["POST"]),
        Route("/content/{digest}", views.content, methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
    ]
    proxies = settings.console_trusted_proxies()
    middleware = [
        # Only a trusted proxy's X-Forwarded-Proto/For say https and who the client is (the cookie, the login limits).
        *([Middleware(ProxyHeadersMiddleware, trusted_hosts=proxies)] if proxies else []),
        Middleware(SessionCookie, secret_key=secret or settings.console_secret() or secrets.token_urlsafe(32),
                   session_cookie=SESSION_COOKIE, max_age=SESSION_HOURS * 3600, same_site="strict"),
        Middleware(Guard, directory=directory, revoked=revoked),
    ]
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan,
                    exception_handlers={RPCError: views.temporal_unreachable})
    app.state.client = client
    app.state.users = directory
    app.state.stores = stores
    app.state.plans = PlanCache()
    app.state.login_limits = LoginLimiter()
    app.state.revoked_sessions = revoked
    app.state.templates = templates()
    return app


def server(app: Starlette, host: str, port: int, log_level: str = "info") -> uvicorn.Server:
    """uvicorn serving the console as `python -m console` does (the tests too)."""
    # uvicorn's own proxy_headers would believe 127.0.0.1 unasked: the console's trusted proxies decide instead.
    return uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level=log_level, lifespan="on", proxy_headers=False))
