"""`http_fetch`: GET or HEAD one http(s) URL and return the body as text; or POST, PUT, PATCH or DELETE one (with an
optional body) and return the response the same way.

Invariants: the client makes no retries of its own (Temporal owns retries); redirects are reported,
not followed, so each hop is a new tool call the workflow's policy checks (the role's hosts) and this
tool checks again; every request is checked against the scheme and worker host allow-list; the host is
resolved once and every address checked (`pinning`: public addresses only, unless the host is named in
FOREMAN_HTTP_PRIVATE_HOSTS), and the connection goes to that checked address; no proxy, netrc or CA
bundle from the environment is used; the body is read as a stream and never more than `max_bytes` is
held; 4xx is final, 5xx/timeouts/connection errors are transient. Both host lists are read per call,
before the call cache is asked; large bodies go to the content store passed in. A method other than GET
and HEAD (the default policy's `http-not-get` rule asks an editor to approve it, bound to the exact URL, method and
body) changes something at the server: it is never answered from the cache, it is sent once per
call however often Temporal retries it (`Idempotency`, under the key the workflow stamped), and it carries
that key as `Idempotency-Key`, for servers that deduplicate by it themselves (which also covers a worker
that dies between sending and recording).
"""

from __future__ import annotations

import asyncio
import ssl
from datetime import UTC, datetime

import httpx
from temporalio.exceptions import ApplicationError

import settings
from activities.content_store import tool_result
from activities.tools.cache import ToolCache
from activities.tools.idempotency import Idempotency
from activities.tools.pinning import Pin, PinnedTransport, Resolver, SystemResolver, pin_host
from activities.tools.registry import tool_activity, tool_error
from contracts.errors import ErrorType
from contracts.tools import HttpFetchArgs, ToolResult
from core.hosts import host_matches
from core.retry_after import parse_retry_after
from stores.protocols import ContentStore

_ALLOWED_SCHEMES = ("http", "https")
# Per-phase limits, plus an overall deadline that stays well inside TOOL_READ's 60 s start_to_close,
# so a slow-drip server surfaces as a retryable timeout rather than an activity timeout.
_TIMEOUT = httpx.Timeout(20.0, connect=10.0)
_DEADLINE_SECONDS = 45.0
# Client errors that do clear up on their own.
_RETRYABLE_4XX = {408, 425, 429}
_SHOWN_HEAD_HEADERS = ("content-type", "content-length", "last-modified", "etag", "location")


def _check_url(url: httpx.URL) -> None:
    if url.scheme not in _ALLOWED_SCHEMES:
        raise tool_error(ErrorType.TOOL_ARGUMENTS_INVALID, f"only http and https URLs are allowed, not {url.scheme!r}")
    if not url.host:
        raise tool_error(ErrorType.TOOL_ARGUMENTS_INVALID, f"URL has no host: {url}")
    allowed = settings.http_allowed_hosts()
    if allowed is not None and not host_matches(url.host, allowed):
        raise tool_error(ErrorType.TOOL_NOT_ALLOWED, f"host {url.host!r} is not in FOREMAN_HTTP_ALLOWED_HOSTS")


def _status_error(response: httpx.Response) -> ApplicationError:
    status = response.status_code
    message = f"HTTP {status} {response.reason_phrase} from {response.url}"
    if status in _RETRYABLE_4XX or status >= 500:
        delay = parse_retry_after(response.headers, datetime.now(UTC))
        return ApplicationError(
            message, status, type=ErrorType.TOOL_TRANSIENT.value, non_retryable=False, next_retry_delay=delay
        )
    return ApplicationError(message, status, type=ErrorType.TOOL_FAILED.value, non_retryable=True)


def _decode(body: bytes, encoding: str | None) -> str:
    try:
        return body.decode(encoding or "utf-8", errors="replace")
    except LookupError:  # unknown charset label in Content-Type
        return body.decode("utf-8", errors="replace")


def _certificate_rejected(exc: BaseException) -> bool:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


async def _fetch(args: HttpFetchArgs, url: httpx.URL, pin: Pin, verify: ssl.SSLContext | bool, headers: dict[str, str]) -> str:
    # trust_env=False: no proxy, .netrc or SSL_CERT_FILE from the environment decides where this goes.
    transport = PinnedTransport(pin, httpx.AsyncHTTPTransport(retries=0, verify=verify, trust_env=False))
    async with httpx.AsyncClient(
        transport=transport,
        timeout=_TIMEOUT,
        # Redirects are reported, not followed: the next hop is a new tool call, checked by policy
        # (the role's hosts) in the workflow and by this tool like the first one.
        follow_redirects=False,
        trust_env=False,
    ) as client:
        content = None
        if args.body is not None:
            content, headers = args.body.encode("utf-8"), {**headers, "Content-Type": args.content_type}
        async with client.stream(args.method, url, headers=headers, content=content) as response:
            if response.status_code >= 400:
                raise _status_error(response)
            if response.is_redirect:
                target = response.url.join(response.headers["location"])
                return f"HTTP {response.status_code} redirect from {response.url} to {target}\n\nCall http_fetch on that URL to follow it."
            content_type = response.headers.get("content-type", "unknown")
            status_line = f"HTTP {response.status_code} {content_type} from {response.url}"
            if args.method == "HEAD":
                headers = [f"{h}: {response.headers[h]}" for h in _SHOWN_HEAD_HEADERS if h in response.headers]
                return "\n".join([status_line, *headers])
            chunks: list[bytes] = []
            received = 0
            cut = False
            async for chunk in response.aiter_bytes():
                room = args.max_bytes - received
                if len(chunk) > room:
                    # Stop reading: the rest of the body is never downloaded.
                    chunks.append(chunk[:room])
                    received += room
                    cut = True
                    break
                chunks.append(chunk)
                received += len(chunk)
            body = b"".join(chunks)
            if b"\x00" in body[:1024]:
                return f"{status_line}\n\n[binary content, {received} bytes not shown]"
            note = f" (body truncated at max_bytes={args.max_bytes})" if cut else ""
            return f"{status_line}{note}\n\n{_decode(body, response.encoding)}"


class HttpTools:
    """`http_fetch`, bound to one content store (for large bodies), the worker's tool cache and its ledger;
    `resolver` (default: the system's) answers every host lookup, `verify` the CAs trusted for HTTPS (default: certifi's)."""

    def __init__(
        self, content: ContentStore, cache: ToolCache, once: Idempotency | None = None, resolver: Resolver | None = None,
        verify: ssl.SSLContext | None = None,
    ) -> None:
        self._content = content
        self._cache = cache
        self._once = once or Idempotency(None)
        self._resolver = resolver or SystemResolver()
        self._verify: ssl.SSLContext | bool = verify or True

    @tool_activity("http_fetch")
    async def http_fetch(self, args: HttpFetchArgs) -> ToolResult:
        """Send one request to an http(s) URL and return the status line and the response body as text."""
        try:
            url = httpx.URL(args.url)
        except httpx.InvalidURL as exc:
            raise tool_error(ErrorType.TOOL_ARGUMENTS_INVALID, f"invalid URL: {exc}") from exc
        # Both checks before the cache: a host or address this worker may not reach is refused even if another cached it.
        _check_url(url)
        pin = await pin_host(url, self._resolver, settings.http_private_hosts())
        if args.has_effect():  # not GET or HEAD: never cached, recorded under the call's key, which the server is sent too
            headers = {"Idempotency-Key": args.idempotency_key} if args.idempotency_key else {}
            return await self._once.once("http_fetch", args.idempotency_key, lambda: self._run(args, url, pin, headers))
        return await self._cache.answer("http_fetch", args, lambda: self._run(args, url, pin))

    async def _run(self, args: HttpFetchArgs, url: httpx.URL, pin: Pin, headers: dict[str, str] | None = None) -> ToolResult:
        try:
            async with asyncio.timeout(_DEADLINE_SECONDS):
                text = await _fetch(args, url, pin, self._verify, headers or {})
        except ApplicationError:
            raise
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise tool_error(ErrorType.TOOL_TRANSIENT, f"timed out fetching {url}", retryable=True) from exc
        except httpx.UnsupportedProtocol as exc:
            raise tool_error(ErrorType.TOOL_ARGUMENTS_INVALID, f"unsupported protocol: {exc}") from exc
        except httpx.TransportError as exc:
            if _certificate_rejected(exc):  # the same certificate comes back on every attempt
                raise tool_error(ErrorType.TOOL_FAILED, f"TLS certificate of {url.host!r} rejected: {exc}") from exc
            # Connection refused/reset, protocol hiccups: worth another attempt.
            raise tool_error(ErrorType.TOOL_TRANSIENT, f"network error fetching {url}: {exc!r}", retryable=True) from exc
        return tool_result(self._content, "http_fetch", text)
