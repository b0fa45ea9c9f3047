"""The console's pages and actions. Every decision is made as the logged-in user (never a form field) through
`decisions` (the code `starter.py` uses), signed with the user's key when they have one; what the goal refuses is
shown on the page (a flash message), never as an error page.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Iterable

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from temporalio.client import WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

import decisions
import settings
from console.auth import current_user, csrf_token, log_in, log_out
from console.goal_view import goal_view
from console.goals import STATUSES, FilterError, GoalFilters, list_goals
from console.inbox import collect
from console.users import ConsoleUser, authenticate
from contracts.escalations import EscalationDecision
from stores import Stores, StoreError, from_settings

_DIGEST = re.compile(r"[0-9a-f]{64}")
MAX_SHOWN_CHARS = 200_000  # a page of several MB stalls the browser; the whole text is a download away
PAST = {"approve": "approved", "deny": "denied"}


SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def stores_of(request: Request) -> Stores:
    if request.app.state.stores is None:
        request.app.state.stores = from_settings()
    return request.app.state.stores


def render(request: Request, template: str, status_code: int = 200, **context) -> HTMLResponse:
    """A page with its frame: the user, the CSRF token for its forms, messages left by the last action."""
    frame = {"request": request, "user": current_user(request.scope), "csrf": csrf_token(request.session),
             "flash": request.session.pop("flash", []), "path": request.url.path, "metrics_url": settings.metrics_url()}
    html = request.app.state.templates.get_template(template).render(**frame, **context)
    return HTMLResponse(html, status_code=status_code)


def flash(request: Request, kind: str, text: str) -> None:
    request.session.setdefault("flash", []).append({"kind": kind, "text": text})


def back_to(request: Request, fallback: str) -> RedirectResponse:
    """After an action: back to the page it came from (a local path only), else `fallback`."""
    target = request.query_params.get("next", "")
    local = target.startswith("/") and not target.startswith("//") and "\\" not in target  # never another host
    return RedirectResponse(target if local else fallback, status_code=303)


async def login(request: Request) -> Response:
    if request.method == "GET":
        return render(request, "login.html", next=request.query_params.get("next", ""))
    form = await request.form()
    name, password = str(form.get("name", "")), str(form.get("password", ""))
    limits, address = request.app.state.login_limits, request.client.host if request.client else ""
    if (wait := limits.retry_after(name, address)) is not None:
        refused = render(request, "login.html", status_code=429, error=f"too many failed logins: try again in {wait} s",
                         name=name, next=request.query_params.get("next", ""))
        refused.headers["Retry-After"] = str(wait)
        return refused
    limits.charge(name, address)
    # scrypt holds a core for ~60 ms and hashlib releases the GIL: in a thread, other requests go on meanwhile.
    user = await asyncio.to_thread(authenticate, request.app.state.users.users(), name, password)
    if user is None:
        return render(request, "login.html", status_code=401, error="unknown user or wrong password", name=name,
                      next=request.query_params.get("next", ""))
    limits.refund(name, address)
    log_in(request.session, user)
    return back_to(request, "/")


async def logout(request: Request) -> Response:
    log_out(request.session, request.app.state.revoked_sessions)
    return RedirectResponse("/login", status_code=303)


async def goals(request: Request) -> Response:
    try:
        filters = GoalFilters.parse(dict(request.query_params))
    except FilterError as err:
        return render(request, "goals.html", status_code=400, rows=[], filters=GoalFilters(), statuses=STATUSES, error=str(err))
    rows = await list_goals(request.app.state.client, filters)
    return render(request, "goals.html", rows=rows, filters=filters, statuses=STATUSES, query=filters.query())


async def _goal_page(request: Request, template: str) -> Response:
    workflow_id = request.query_params.get("id", "")
    try:
        view = await goal_view(request.app.state.client, workflow_id, request.app.state.plans)
    except RPCError as err:
        if err.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT):
            return render(request, "error.html", status_code=404, message=f"no goal {workflow_id!r} in this namespace")
        raise
    return render(request, template, view=view)


async def goal(request: Request) -> Response:
    return await _goal_page(request, "goal.html")


async def goal_live(request: Request) -> Response:
    """The live part of a goal page, polled by the page while the goal runs."""
    return await _goal_page(request, "_goal_live.html")


async def inbox(request: Request) -> Response:
    workspace = stores_of(request).workspace
    return render(request, "inbox.html", inbox=await collect(request.app.state.client, workspace))


def _signing_key(user: ConsoleUser) -> bytes | None:
    try:
        return user.signing_key()
    except (OSError, ValueError) as err:
        raise decisions.DecisionError(f"cannot read your signing key: {err}") from err


async def _decided(request: Request, decision: str, allowed: Iterable[str], take: Callable[[WorkflowHandle, ConsoleUser, FormData], Awaitable[str]]) -> Response:
    """One decision from a form, as the logged-in user: what the goal said (done, or refused and why) is left as a
    message for the inbox, never an error page."""
    form = await request.form()
    goal_id = str(form.get("goal_id", ""))
    try:
        if decision not in allowed:
            raise decisions.DecisionError(f"unknown decision {decision!r}")
        done = await take(request.app.state.client.get_workflow_handle(goal_id), current_user(request.scope), form)
    except decisions.DecisionRejected as err:
        flash(request, "error", f"{decision} refused by {goal_id}: {err.reason}")
    except decisions.DecisionError as err:
        flash(request, "error", f"{decision} on {goal_id} not taken: {err}")
    else:
        flash(request, "ok", done)
    return back_to(request, "/inbox")


async def decide_approval(request: Request) -> Response:
    verdict = str((await request.form()).get("verdict", ""))

    async def take(handle: WorkflowHandle, user: ConsoleUser, form: FormData) -> str:
        request_id = str(form.get("request_id", ""))
        # Bound to the action the page showed: a changed action is refused by the goal, not approved blindly; a form
        # without one is refused here (an unbound approval would approve whatever the request now is).
        action = str(form.get("action_sha256", ""))
        if not SHA256_HEX.fullmatch(action):
            raise decisions.DecisionError("the form names no action SHA-256: nothing is decided without the action it binds")
        decided = await decisions.decide(handle, verdict, request_id, user.name, str(form.get("comment", "")), action,
                                         _signing_key(user))
        return (f"{PAST[verdict]} request {request_id} as {user.name}: now {decided.status.value} "
                f"({len(decided.approvals_given)} of {decided.approvals_needed} approvals)")

    return await _decided(request, verdict, decisions.VERDICTS, take)


async def resolve_escalation(request: Request) -> Response:
    decision = str((await request.form()).get("decision", ""))

    async def take(handle: WorkflowHandle, user: ConsoleUser, form: FormData) -> str:
        escalation_id = str(form.get("escalation_id", ""))
        await decisions.resolve(handle, escalation_id, user.name, decision, str(form.get("comment", ""))[:4_000], _signing_key(user))
        return f"escalation {escalation_id}: {decision} by {user.name}"

    return await _decided(request, decision, {d.value for d in EscalationDecision}, take)


async def content(request: Request) -> Response:
    """A content-store entry: its first MAX_SHOWN_CHARS on the page, the whole of it as plain text with `?raw=1`."""
    digest = request.path_params["digest"].removeprefix("sha256:")
    if not _DIGEST.fullmatch(digest):
        return render(request, "error.html", status_code=400, message="a content hash is 64 lowercase hex digits")
    try:
        text = await asyncio.to_thread(stores_of(request).content.get, f"sha256:{digest}")  # a file or S3 read: off the loop
    except KeyError:
        return render(request, "error.html", status_code=404,
                      message=f"sha256:{digest} is not in this machine's content store (only large outputs are kept there)")
    except StoreError as err:
        return render(request, "error.html", status_code=502, message=f"the content store cannot be read: {err}")
    if request.query_params.get("raw") == "1":  # never rendered as a page: plain text, offered as a download
        return Response(text, media_type="text/plain; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="sha256-{digest[:16]}.txt"',
                                 "X-Content-Type-Options": "nosniff"})  # model-written text: never sniffed into HTML
    return render(request, "content.html", digest=digest, text=text[:MAX_SHOWN_CHARS], total=len(text))


async def temporal_unreachable(request: Request, err: RPCError) -> Response:
    """A Temporal call that failed, said in one line; a namespace without Foreman's search attributes is named as such."""
    if "search attribute" in err.message:
        message = (f"this namespace does not have Foreman's search attributes ({err.message}): register them as the "
                   "README's 'Search attributes' section says, then restart the workers")
    else:
        message = f"Temporal did not answer ({err.status.name if err.status else 'error'}): {err.message}"
    return render(request, "error.html", status_code=502, message=message)
