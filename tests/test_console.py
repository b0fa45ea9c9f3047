"""The web console on the real dev server, in a real browser (headless Chromium via Playwright) and over HTTP:
log in, find the waiting goal in the inbox with its action hash and diff, approve it as the logged-in user, watch
the goal complete; strangers, missing CSRF tokens and anonymous requests are refused; what a goal refuses is shown
on the page; signed approvals and escalations go through the same `decisions` code as `starter.py`."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from playwright.async_api import TimeoutError as PlaywrightTimeout
from playwright.async_api import async_playwright
from temporalio.client import Client

import settings
from console.app import create_app, server as console_server
from console.goal_view import PlanCache, goal_view
from console.views import MAX_SHOWN_CHARS
from console.goals import FilterError, GoalFilters
from console.login_limits import LoginLimiter
from console.sessions import RevokedSessions, SessionStoreError, revoked_sessions_path
from console.users import ConsoleUser, UsersFileError, add_user, authenticate, hash_password, load, password_matches
from contracts.escalations import Escalation
from contracts.goal import GoalStatus
from core.signatures import new_private_key_pem, public_key_of
from stores import from_settings
from tests.fakes import ScriptedModel, answer
from tests.helpers import DRAFT, TARGET, decide, escalating_playbook, fake_activities, finish, gated_playbook, goal, pending, waiting
from worker import build_worker
from workflows.goal import GoalWorkflow

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = settings.PROJECT_ROOT / "build" / "screenshots"
PASSWORD = "correct horse battery"
OLD_CONTENT = "Old words.\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@asynccontextmanager
async def console(client: Client, users: Path) -> AsyncIterator[str]:
    """The console app on uvicorn in this event loop (the test's Temporal client), on a free port; its base URL."""
    app = create_app(client=client, users_path=users, secret="test-secret", stores=from_settings())
    port = free_port()
    server = console_server(app, "127.0.0.1", port, log_level="warning")
    serving = asyncio.create_task(server.serve())
    async with asyncio.timeout(10):
        while not server.started:
            await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving


def users_file(tmp_path: Path, **keys: str | None) -> Path:
    """A users file with each named user (password PASSWORD; a key path when given)."""
    path = tmp_path / "users.json"
    for name, key in keys.items():
        add_user(path, name, PASSWORD, key)
    return path


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


async def logged_in(http: httpx.AsyncClient, name: str, password: str = PASSWORD) -> httpx.Response:
    token = csrf_of((await http.get("/login")).text)
    return await http.post("/login", data={"name": name, "password": password, "csrf": token})


async def inbox_showing(http: httpx.AsyncClient, marker: str) -> str:
    """The inbox page once it shows `marker` (the visibility store follows the goal's upserts closely, not at once)."""
    while marker not in (html := (await http.get("/inbox")).text):
        await asyncio.sleep(0.2)
    return html


# --- in the browser --------------------------------------------------------------------------------


async def test_approve_in_the_browser_and_watch_the_goal_complete(client: Client, task_queue: str, tmp_path: Path, monkeypatch,
                                                                  foreman_home: Path) -> None:
    playbook = gated_playbook(tmp_path, monkeypatch, content="{{steps.a.output}}")  # a drafter step, then the gated write
    target = foreman_home / "workspace" / TARGET
    target.parent.mkdir(parents=True)
    target.write_text(OLD_CONTENT)  # the inbox shows the write as a diff against this
    users = users_file(tmp_path, alice=None)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    async with goal(client, task_queue, playbook, timeout=50) as handle, console(client, users) as base, async_playwright() as p:
        (request,) = await pending(handle)
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 900})
            page = await context.new_page()
            # No page without login: the inbox sends a stranger to the login form.
            await page.goto(f"{base}/inbox")
            assert page.url.startswith(f"{base}/login")
            for name, password in (("mallory", PASSWORD), ("alice", "not her password")):
                await page.fill("input[name=name]", name)
                await page.fill("input[name=password]", password)
                await page.click("button[type=submit]")
                assert await page.text_content("#login-error") == "unknown user or wrong password"
                assert await page.query_selector("#user") is None
            await page.fill("input[name=name]", "alice")
            await page.fill("input[name=password]", PASSWORD)
            await page.click("button[type=submit]")
            assert page.url == f"{base}/inbox" and await page.text_content("#user") == "alice"

            card = f"#request-{request.request_id}"
            async with asyncio.timeout(15):
                while await page.query_selector(card) is None:
                    await page.reload()
            text = await page.text_content(card)
            assert request.action_sha256 in text and "publisher" in text and "publish" in text and "0 of 1" in text
            assert await page.text_content(f"{card} .action-sha256") == request.action_sha256
            assert json.loads(await page.text_content(f"{card} pre.arguments")) == json.loads(request.arguments_json)
            assert [await s.text_content() for s in await page.query_selector_all(f"{card} .diff .del")] == ["-Old words."]
            assert [await s.text_content() for s in await page.query_selector_all(f"{card} .diff .add")] == [f"+{DRAFT}"]
            assert re.search(r"\d+m \d+s left", text)
            await page.screenshot(path=str(SCREENSHOTS / "inbox.png"), full_page=True)

            # The goal's page, open while the goal waits: it follows the goal live (no reload) until it completes.
            goal_page = await context.new_page()
            await goal_page.goto(f"{base}/goal?id={handle.id}")
            assert await goal_page.text_content("#goal-status") == "executing"
            assert "awaiting_approval" in await goal_page.text_content("#step-publish")
            assert await goal_page.query_selector("svg.plan .node.awaiting_approval") is not None

            await page.fill(f"{card} input[name=comment]", "looks right")
            await page.click(f"{card} button.approve")
            assert f"approved request {request.request_id} as alice: now approved (1 of 1 approvals)" in await page.text_content(".flash.ok")

            status = "(document.getElementById('goal-status') || {}).textContent"
            try:
                await goal_page.wait_for_function(f"{status} === 'completed'", timeout=15_000)
            except PlaywrightTimeout:
                raise AssertionError(f"the goal page never showed completed: {await goal_page.text_content('body')}") from None
            body = await goal_page.text_content("main")
            assert "alice" in body and "looks right" in body and "write_file" in body
            assert len(await goal_page.query_selector_all("svg.plan .node.completed")) == 2
            assert len(await goal_page.query_selector_all("svg.plan line")) == 1  # a -> publish
            kinds = [await c.text_content() for c in await goal_page.query_selector_all("table.events td:nth-child(3)")]
            assert kinds[0] == "plan_made" and kinds[-1] == "goal_finished"  # the goal's events, live to its end
            assert kinds.index("approval_requested") < kinds.index("approval_decided") < kinds.index("goal_finished")
            await goal_page.screenshot(path=str(SCREENSHOTS / "goal.png"), full_page=True)
        finally:
            await browser.close()
        result, _ = await finish(handle)
    assert result.status is GoalStatus.COMPLETED, result.error
    (given,) = result.approvals[0].approvals_given
    assert (given.approver, given.comment) == ("alice", "looks right")
    assert target.read_text() == DRAFT
    assert (SCREENSHOTS / "inbox.png").stat().st_size > 10_000 and (SCREENSHOTS / "goal.png").stat().st_size > 10_000


# --- over HTTP ---------------------------------------------------------------------------------------


async def test_nothing_without_login_and_no_post_without_the_csrf_token(client: Client, tmp_path: Path, foreman_home: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOREMAN_METRICS_ADDRESS", "0.0.0.0:9464")  # the workers' metrics: the console links to them
    users = users_file(tmp_path, alice=None)
    async with console(client, users) as base, httpx.AsyncClient(base_url=base) as http:
        for path in ("/", "/goals", "/inbox", "/goal?id=x", f"/content/{'a' * 64}"):
            response = await http.get(path)
            assert response.status_code == 303 and response.headers["location"].startswith("/login?next="), path
        assert (await http.post("/inbox/approval", data={"goal_id": "x"})).status_code == 403
        assert (await http.get("/static/console.css")).status_code == 200
        assert (await logged_in(http, "alice", "wrong")).status_code == 401
        # A login form needs the token too: a cross-site form cannot log anyone in.
        assert (await http.post("/login", data={"name": "alice", "password": PASSWORD})).status_code == 403
        for elsewhere in ("//evil.example/", "/\\evil.example/", "https://evil.example/"):
            assert (await http.post(f"/login?next={elsewhere}", data={"csrf": csrf_of((await http.get("/login")).text),
                    "name": "alice", "password": PASSWORD})).headers["location"] == "/", elsewhere
        assert (await http.post("/logout", data={"csrf": csrf_of((await http.get("/goals")).text)})).status_code == 303
        assert (await logged_in(http, "alice")).status_code == 303
        page = await http.get("/goals")
        assert page.status_code == 200 and ">alice<" in page.text
        assert 'href="http://localhost:9464/metrics" id="metrics-link"' in page.text
        decision = {"goal_id": "x", "request_id": "r", "verdict": "approve", "approver": "bob"}
        for data in (decision, {**decision, "csrf": "forged"}):
            refused = await http.post("/inbox/approval", data=data)
            assert refused.status_code == 403 and "CSRF" in refused.text
        # With the token, the request reaches the goal (there is none), and the answer is a message, not a 500.
        token = csrf_of(page.text)
        sent = await http.post("/inbox/approval", data={**decision, "csrf": token}, follow_redirects=True)
        assert sent.status_code == 200 and "approve on x not taken" in sent.text
        assert "names no action SHA-256" in sent.text  # an approval never goes out unbound to an action
        assert (await http.get("/goals?status=nonsense")).status_code == 400
        assert (await http.get("/goal?id=no-such-goal")).status_code == 404
        assert (await http.get("/content/not-a-hash")).status_code == 400
        # Large contents by hash: what the content store holds is shown (escaped), anything else is a clear 404.
        ref = from_settings().content.put("<b>a large output</b>\n" * 100)
        shown = await http.get(f"/content/{ref.removeprefix('sha256:')}")
        assert shown.status_code == 200 and "&lt;b&gt;a large output&lt;/b&gt;" in shown.text and "<b>a large" not in shown.text
        big = "x" * (MAX_SHOWN_CHARS + 5)
        page = await http.get(f"/content/{from_settings().content.put(big).removeprefix('sha256:')}")
        assert page.status_code == 200 and "x" * MAX_SHOWN_CHARS in page.text and big not in page.text and "?raw=1" in page.text
        raw = await http.get(f"/content/{from_settings().content.put(big).removeprefix('sha256:')}?raw=1")
        assert raw.text == big and raw.headers["content-type"].startswith("text/plain") and "attachment" in raw.headers["content-disposition"]
        assert raw.headers["x-content-type-options"] == "nosniff"
        missing = await http.get(f"/content/{'0' * 64}")
        assert missing.status_code == 404 and "not in this machine&#39;s content store" in missing.text
        assert (await http.post("/logout", data={"csrf": token})).status_code == 303
        assert (await http.get("/inbox")).status_code == 303


async def test_a_signed_approval_and_refusals_shown_on_the_page(client: Client, task_queue: str, tmp_path: Path, monkeypatch) -> None:
    """Under `require_signatures`, alice's console decision is signed with her key; bob has none, mallory can log in
    but is no approver: the goal's refusals are shown in the inbox and nothing runs until alice approves."""
    alice_key = new_private_key_pem()
    key_file = tmp_path / "alice.pem"
    key_file.write_bytes(alice_key)
    approvers = [{"name": "alice", "roles": ["editor"], "public_key": public_key_of(alice_key)},
                 {"name": "bob", "roles": ["editor"]}]
    name = gated_playbook(tmp_path, monkeypatch, approvers=approvers)
    book_path = tmp_path / "playbooks" / f"{name}.json"
    book = json.loads(book_path.read_text())
    book["policy"]["require_signatures"] = True
    book_path.write_text(json.dumps(book))
    users = users_file(tmp_path, alice=str(key_file), bob=None, mallory=None)
    async with goal(client, task_queue, name, timeout=45) as handle, console(client, users) as base:
        (request,) = await pending(handle)
        expected = {"bob": "&#39;bob&#39; has no public key and this goal&#39;s policy requires signed decisions",
                    "mallory": "&#39;mallory&#39; is not an approver", "alice": "approved request"}
        for user, words in expected.items():
            async with httpx.AsyncClient(base_url=base) as http:
                await logged_in(http, user)
                html = await inbox_showing(http, request.action_sha256)
                form = {"csrf": csrf_of(html), "goal_id": handle.id, "request_id": request.request_id,
                        "action_sha256": request.action_sha256, "verdict": "approve", "comment": f"from {user}",
                        "approver": "alice"}  # ignored: the decision is the logged-in user's
                shown = await http.post("/inbox/approval", data=form, follow_redirects=True)
                assert shown.status_code == 200 and words in shown.text, (user, shown.text[:3000])
        result, _ = await finish(handle)
    assert result.status is GoalStatus.COMPLETED
    (given,) = result.approvals[0].approvals_given
    assert (given.approver, given.comment) == ("alice", "from alice")


async def test_resolve_an_escalation_from_the_inbox(client: Client, task_queue: str, tmp_path: Path, monkeypatch) -> None:
    name = escalating_playbook(tmp_path, monkeypatch)
    users = users_file(tmp_path, bob=None)
    model = ScriptedModel(lambda request: answer("An answer without the word."))
    async with build_worker(client, task_queue, activities=fake_activities(model.activity())):
        handle = await client.start_workflow(GoalWorkflow.run, {"goal": "Explain it", "playbook": name},
                                             id=f"console-esc-{task_queue}", task_queue=task_queue)
        async with asyncio.timeout(40), console(client, users) as base, httpx.AsyncClient(base_url=base) as http:
            (escalation,) = await waiting(handle)
            await logged_in(http, "bob")
            html = await inbox_showing(http, escalation.escalation_id)
            assert "escalated by the verifier" in html and all(f'value="{d}"' in html for d in ("accept", "retry", "replan", "abort"))
            form = {"csrf": csrf_of(html), "goal_id": handle.id, "escalation_id": escalation.escalation_id, "decision": "accept"}
            shown = await http.post("/inbox/escalation", data=form, follow_redirects=True)
            assert f"escalation {escalation.escalation_id}: accept by bob" in shown.text
            result = await handle.result()
            page = await http.get(f"/goal?id={handle.id}")
            assert 'id="goal-status" class="status completed">completed<' in page.text and "accept by bob" in page.text
            assert "<td>escalate</td>" in page.text  # the step's verdict, with its score and reasons
    assert result.status is GoalStatus.COMPLETED
    (resolved,) = [Escalation.model_validate(e.model_dump()) for e in result.escalations]
    assert resolved.resolution.resolver == "bob"


async def test_the_goals_page_filters_by_search_attributes(client: Client, task_queue: str, tmp_path: Path, monkeypatch) -> None:
    playbook = gated_playbook(tmp_path, monkeypatch)
    users = users_file(tmp_path, alice=None)
    async with goal(client, task_queue, playbook) as handle, console(client, users) as base, httpx.AsyncClient(base_url=base) as http:
        await pending(handle)
        await logged_in(http, "alice")
        waiting_page = f"/goals?waiting=1&playbook={playbook}&status=awaiting_approval&text=publish"
        while handle.id not in (html := (await http.get(waiting_page)).text):
            await asyncio.sleep(0.2)
        assert "ForemanPendingApprovals &gt; 0" in html and settings.temporal_namespace() in html  # the query and the UI link
        row = f'href="/goal?id={handle.id}"'
        assert row in html and row not in (await http.get("/goals?status=completed&text=" + handle.id)).text
        assert row not in (await http.get(f"/goals?waiting=1&text={handle.id}&min_cost=5")).text
        await handle.cancel()



async def test_a_password_check_leaves_the_event_loop_free(client: Client, tmp_path: Path) -> None:
    """The console serves on this test's event loop, so a loop held by scrypt shows as one long gap between ticks."""
    salt = os.urandom(16)
    digest = hashlib.scrypt(PASSWORD.encode(), salt=salt, n=2**14, r=8, p=16, dklen=32)  # p=16: a check of ~0.5 s
    stored = "$".join(["scrypt", "16384", "8", "16", base64.b64encode(salt).decode(), base64.b64encode(digest).decode()])
    users = tmp_path / "users.json"
    users.write_text(json.dumps({"users": [{"name": "alice", "password": stored}]}))
    loop = asyncio.get_running_loop()
    gaps: list[float] = []

    async def tick() -> None:
        last = loop.time()
        while True:
            await asyncio.sleep(0.005)
            gaps.append(loop.time() - last)
            last = loop.time()

    async with console(client, users) as base, httpx.AsyncClient(base_url=base) as http:
        token = csrf_of((await http.get("/login")).text)
        ticker = asyncio.create_task(tick())
        started = loop.time()
        response = await http.post("/login", data={"name": "alice", "password": PASSWORD, "csrf": token})
        took = loop.time() - started
        ticker.cancel()
    assert response.status_code == 303
    assert max(gaps) < took / 3, (max(gaps), took)


async def test_failed_logins_are_limited_per_name_and_per_address(client: Client, tmp_path: Path) -> None:
    """5 failures in 5 minutes for a name (from any address) or from an address (for any name), then 429 with
    Retry-After, the right password included; other names and addresses go on. Addresses are real: the client binds
    127.0.0.x."""
    users = users_file(tmp_path, alice=None, bob=None)
    async with console(client, users) as base:

        def coming_from(host: str) -> httpx.AsyncClient:
            return httpx.AsyncClient(base_url=base, transport=httpx.AsyncHTTPTransport(local_address=host))

        for host, tries in (("127.0.0.2", 3), ("127.0.0.3", 2)):  # alice's password guessed from two addresses
            async with coming_from(host) as http:
                for _ in range(tries):
                    assert (await logged_in(http, "alice", "wrong")).status_code == 401
        async with coming_from("127.0.0.4") as http:
            refused = await logged_in(http, "alice")
            assert refused.status_code == 429 and 290 <= int(refused.headers["retry-after"]) <= 300
            assert "too many failed logins: try again in" in refused.text
            assert (await logged_in(http, "bob")).status_code == 303
        async with coming_from("127.0.0.2") as http:
            assert (await logged_in(http, "bob")).status_code == 303  # 3 failures from here: under the limit

        async with coming_from("127.0.0.5") as http:  # one address guessing names
            for name in ("carol", "dave", "erin", "frank", "bob"):
                assert (await logged_in(http, name, "wrong")).status_code == 401
            assert (await logged_in(http, "bob")).status_code == 429  # bob's name has 1 failure, the address 5
        async with coming_from("127.0.0.6") as http:
            assert (await logged_in(http, "bob")).status_code == 303


async def test_a_logout_ends_every_copy_of_the_session_even_after_a_restart(client: Client, tmp_path: Path) -> None:
    users = users_file(tmp_path, alice=None)
    async with console(client, users) as base, httpx.AsyncClient(base_url=base) as http:
        await logged_in(http, "alice")
        cookie = {"cookie": f"foreman_console={http.cookies['foreman_console']}"}  # a copy: another tab, or a thief's
        async with httpx.AsyncClient(base_url=base, headers=cookie) as copy:
            assert (await copy.get("/goals")).status_code == 200
            assert (await http.post("/logout", data={"csrf": csrf_of((await http.get("/goals")).text)})).status_code == 303
            assert (await copy.get("/goals")).status_code == 303
    async with (console(client, users) as base, httpx.AsyncClient(base_url=base, headers=cookie) as copy,
                httpx.AsyncClient(base_url=base) as http):
        assert (await copy.get("/goals")).status_code == 303  # same secret, same users file: the logout holds
        await logged_in(http, "alice")
        assert (await http.get("/goals")).status_code == 200  # a new login is a new session
    assert revoked_sessions_path(users).stat().st_mode & 0o777 == 0o600


async def test_a_new_password_ends_the_sessions_made_with_the_old_one(client: Client, tmp_path: Path) -> None:
    users = users_file(tmp_path, alice=None, bob=None)
    async with (console(client, users) as base, httpx.AsyncClient(base_url=base) as laptop,
                httpx.AsyncClient(base_url=base) as phone, httpx.AsyncClient(base_url=base) as bob):
        for http, name in ((laptop, "alice"), (phone, "alice"), (bob, "bob")):
            assert (await logged_in(http, name)).status_code == 303
        add_user(users, "alice", "a new password")  # what `python -m console adduser alice` does
        for http in (laptop, phone):
            assert (await http.get("/goals")).status_code == 303
        assert (await bob.get("/goals")).status_code == 200
        assert (await logged_in(laptop, "alice", "a new password")).status_code == 303
        assert (await laptop.get("/goals")).status_code == 200


async def test_the_cookie_is_secure_over_https_as_a_trusted_proxy_says(client: Client, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Behind a trusted proxy, X-Forwarded-Proto: https marks the cookie Secure and X-Forwarded-For is the address the
    login limits count; from anyone else both headers are ignored. HttpOnly and SameSite=Strict always."""
    users = users_file(tmp_path, alice=None, bob=None)

    def flags(response: httpx.Response) -> set[str]:
        return {flag.strip().lower() for flag in response.headers["set-cookie"].split(";")[1:]}

    def via_proxy(base: str, client_address: str) -> httpx.AsyncClient:
        """A browser behind an https proxy: it sends a Secure cookie back (httpx's jar keeps one off http), and the proxy
        passes it on over http with X-Forwarded-Proto and X-Forwarded-For."""
        cookie: dict[str, str] = {}

        async def keep(response: httpx.Response) -> None:
            if set_cookie := response.headers.get("set-cookie"):
                cookie["cookie"] = set_cookie.split(";")[0]

        async def send_back(request: httpx.Request) -> None:
            request.headers.update(cookie)

        return httpx.AsyncClient(base_url=base, headers={"x-forwarded-proto": "https", "x-forwarded-for": client_address},
                                 event_hooks={"request": [send_back], "response": [keep]})

    async with console(client, users) as base, via_proxy(base, "203.0.113.7") as http:
        cookie = flags(await logged_in(http, "alice"))
        assert {"httponly", "samesite=strict"} <= cookie and "secure" not in cookie
        for name in ("carol", "dave", "erin", "frank", "gina"):  # counted against 127.0.0.1, not the forwarded address
            assert (await logged_in(http, name, "wrong")).status_code == 401
        async with via_proxy(base, "203.0.113.8") as other:
            assert (await logged_in(other, "bob")).status_code == 429
    monkeypatch.setenv("FOREMAN_CONSOLE_TRUSTED_PROXIES", "127.0.0.1")
    async with console(client, users) as base:
        async with via_proxy(base, "203.0.113.7") as http:
            assert {"secure", "httponly", "samesite=strict"} <= flags(await logged_in(http, "alice"))
            logged_out = await http.post("/logout", data={"csrf": csrf_of((await http.get("/goals")).text)})
            assert "secure" in flags(logged_out)  # the cookie's deletion too
            for name in ("carol", "dave", "erin", "frank", "gina"):
                assert (await logged_in(http, name, "wrong")).status_code == 401
            assert (await logged_in(http, "bob")).status_code == 429
        async with via_proxy(base, "203.0.113.8") as http:  # another client behind the same proxy is not held up
            assert (await logged_in(http, "bob")).status_code == 303

# --- users and filters --------------------------------------------------------------------------------


def test_passwords_are_stored_as_salted_scrypt_hashes(tmp_path: Path) -> None:
    stored = hash_password(PASSWORD)
    assert stored.startswith("scrypt$") and PASSWORD not in stored and stored != hash_password(PASSWORD)
    assert password_matches(PASSWORD, stored) and not password_matches(PASSWORD + "!", stored)
    assert not password_matches(PASSWORD, "plain-text") and not password_matches(PASSWORD, "md5$x$y$z$a$b")
    users = {"alice": ConsoleUser(name="alice", password=stored)}
    assert authenticate(users, "alice", PASSWORD).name == "alice"
    assert authenticate(users, "alice", "wrong") is None and authenticate(users, "mallory", PASSWORD) is None


def test_adduser_writes_a_hash_and_toml_files_are_read(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    run = subprocess.run([sys.executable, "-m", "console", "adduser", "alice", "--password-stdin"], input=PASSWORD + "\n",
                         capture_output=True, text=True, cwd=settings.PROJECT_ROOT, timeout=60,
                         env={**__import__("os").environ, "FOREMAN_CONSOLE_USERS": str(path)})
    assert run.returncode == 0, run.stderr
    assert PASSWORD not in path.read_text() and password_matches(PASSWORD, load(path)["alice"].password)
    assert path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(UsersFileError, match="at least 8"):
        add_user(path, "bob", "short")
    toml = tmp_path / "users.toml"
    toml.write_text(f'[[users]]\nname = "carol"\npassword = "{hash_password(PASSWORD)}"\nkey = "/keys/carol"\n')
    assert load(toml)["carol"].key == "/keys/carol"
    with pytest.raises(UsersFileError, match="TOML"):
        add_user(toml, "dave", PASSWORD)
    (tmp_path / "bad.json").write_text('{"users": [{"name": "x"}]}')
    with pytest.raises(UsersFileError, match="cannot read the console users"):
        load(tmp_path / "bad.json")


def test_filters_become_a_query_from_checked_values_only() -> None:
    query = GoalFilters.parse({"status": "escalated", "playbook": "research-brief", "waiting": "1", "min_cost": "0.5"}).query()
    assert query == ("WorkflowType = 'GoalWorkflow' AND ForemanStatus = 'escalated' AND ForemanPlaybook = 'research-brief' "
                     "AND ForemanPendingApprovals > 0 AND ForemanCostUsd >= 0.5")
    for bad in ({"status": "x' OR 1=1"}, {"playbook": "a' OR 'b"}, {"min_cost": "1; drop"}, {"min_cost": "-1"}):
        with pytest.raises(FilterError):
            GoalFilters.parse(bad)


def test_the_login_limiter_forgets_after_its_window_and_stays_bounded() -> None:
    now = [1000.0]
    limits = LoginLimiter(failures=2, window_seconds=60, max_keys=4, clock=lambda: now[0])
    limits.charge("alice", "10.0.0.1")
    limits.charge("alice", "10.0.0.1")
    assert limits.retry_after("alice", "10.0.0.9") == 60 and limits.retry_after("bob", "10.0.0.1") == 60
    now[0] += 59.5
    assert limits.retry_after("alice", "10.0.0.9") == 1
    now[0] += 0.5
    assert limits.retry_after("alice", "10.0.0.1") is None
    limits.charge("bob", "10.0.0.2")  # a right password: counted while checked, then taken back
    limits.refund("bob", "10.0.0.2")
    limits.charge("bob", "10.0.0.2")
    assert limits.retry_after("bob", "10.0.0.2") is None
    limits.charge("carol", "10.0.0.3")
    limits.charge("carol", "10.0.0.3")  # six keys tried: the two least recent (alice's) are forgotten
    assert len(limits) == 4 and limits.retry_after("carol", "10.0.0.3") == 60


def test_a_revocation_is_kept_until_its_session_would_have_expired(tmp_path: Path) -> None:
    path = tmp_path / "users.revoked-sessions.json"
    now = [1000.0]
    revoked = RevokedSessions(path, max_age_seconds=60, clock=lambda: now[0])
    revoked.revoke("first")
    now[0] += 59
    assert "first" in RevokedSessions(path, max_age_seconds=60, clock=lambda: now[0])  # read back from the file
    now[0] += 1
    assert "first" not in revoked
    revoked.revoke("second")  # the file drops what no longer needs revoking: it holds one max age of logouts
    assert json.loads(path.read_text()) == {"revoked": {"second": 1120.0}}
    path.write_text("{not json")
    with pytest.raises(SessionStoreError, match="cannot read the console's revoked sessions"):
        RevokedSessions(path, max_age_seconds=60)


async def test_a_running_goals_page_reads_its_history_again_only_when_its_plan_changes(
    client: Client, task_queue: str, tmp_path: Path, monkeypatch,
) -> None:
    """Polling the page of a goal that waits: new history events (here, a signal nobody handles) do not make it read
    the whole history again; only steps a revision adds would."""
    name = gated_playbook(tmp_path, monkeypatch)
    cache = PlanCache()
    async with goal(client, task_queue, name, timeout=45) as handle:
        (request,) = await pending(handle)
        first = await goal_view(client, handle.id, cache)
        before = (await handle.describe()).history_length
        await handle.signal("nobody-listens", "x")
        async with asyncio.timeout(10):
            while (await handle.describe()).history_length == before:
                await asyncio.sleep(0.05)
        again = await goal_view(client, handle.id, cache)
        assert [s.step_id for s in again.steps] == [s.step_id for s in first.steps] and first.steps
        assert cache.history_reads == 1
        await decide(handle, "alice", request)
        result, _ = await finish(handle)
    assert result.status is GoalStatus.COMPLETED
