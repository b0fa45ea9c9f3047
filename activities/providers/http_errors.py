"""Map HTTP model-provider failures to typed, retry-aware `ApplicationError`s.

One mapping shared by every HTTP provider, so Temporal's retry policy sees the same `ErrorType`
for the same failure whatever the vendor: rate limits and outages are retryable (honouring the
server's Retry-After), request/auth/config errors are not. Messages carry a short excerpt of the
error body with anything key-like redacted: they end up in workflow history.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime

import httpx
from temporalio.exceptions import ApplicationError

from contracts.errors import ErrorType
from core.retry_after import parse_retry_after

_EXCERPT_CHARS = 300
# Key-shaped tokens (OpenAI/Anthropic keys, bearer tokens) some servers echo back in 401 bodies.
_SECRET_PATTERNS = [
    (re.compile(r"\b(sk|pk|rk)-[A-Za-z0-9_\-*]{6,}"), r"\1-***"),
    (re.compile(r"(?i)\b(bearer|x-api-key:?)\s+\S+"), r"\1 ***"),
]


def _status_kind(status: int) -> tuple[ErrorType, bool]:
    """(error type, retryable) for an HTTP status."""
    if status == 429:
        return ErrorType.MODEL_RATE_LIMITED, True
    # 408/409 are transient by the providers' own docs; 529 is Anthropic's "overloaded".
    if status >= 500 or status in (408, 409, 529):
        return ErrorType.MODEL_UNAVAILABLE, True
    if status in (401, 403):
        return ErrorType.MODEL_AUTH, False
    if status == 404:
        return ErrorType.MODEL_NOT_FOUND, False
    # 400, 413, 422 and anything else the client got wrong: resending the same request cannot help.
    return ErrorType.MODEL_BAD_REQUEST, False


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Remove the given secrets and anything key-shaped from `text`."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def body_excerpt(response: httpx.Response, secrets: Iterable[str | None] = ()) -> str:
    """A short, redacted summary of an error body: the vendor's error type/message when it is JSON."""
    try:
        text = response.text
    except (httpx.ResponseNotRead, UnicodeDecodeError):
        return ""
    summary = text
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict):
        # OpenAI/Anthropic: {"error": {"type", "message"}}; FastAPI (llama_cpp.server): {"detail": ...}.
        err = body.get("error", body)
        if isinstance(err, dict):
            parts = [str(err[k]) for k in ("type", "code", "message") if err.get(k)]
            if "detail" in err:
                parts.append(json.dumps(err["detail"])[:_EXCERPT_CHARS])
            summary = ": ".join(parts) or text
        elif isinstance(err, str):
            summary = err
    summary = " ".join(redact(summary, secrets).split())
    return summary[:_EXCERPT_CHARS] + ("…" if len(summary) > _EXCERPT_CHARS else "")


def error_from_response(
    response: httpx.Response, *, provider: str, secrets: Iterable[str | None] = ()
) -> ApplicationError:
    """The typed error for a non-2xx response; callers `raise` it."""
    error_type, retryable = _status_kind(response.status_code)
    delay = parse_retry_after(response.headers, datetime.now(UTC)) if retryable else None
    excerpt = body_excerpt(response, secrets)
    message = f"{provider} returned HTTP {response.status_code}"
    if excerpt:
        message += f": {excerpt}"
    return ApplicationError(message, type=error_type, non_retryable=not retryable, next_retry_delay=delay)


def error_from_transport(exc: Exception, *, provider: str, url: str) -> ApplicationError:
    """The typed error for a request that never got a response (timeout, refused, bad URL)."""
    if isinstance(exc, httpx.TimeoutException):
        return ApplicationError(
            f"{provider} timed out ({type(exc).__name__}) calling {url}", type=ErrorType.MODEL_UNAVAILABLE
        )
    if isinstance(exc, (httpx.UnsupportedProtocol, httpx.InvalidURL)):
        # A malformed base_url will never start working: fail fast instead of retrying for hours.
        return ApplicationError(
            f"{provider} base_url is not a usable URL ({url}): {exc}", type=ErrorType.MODEL_CONFIG, non_retryable=True
        )
    return ApplicationError(
        f"{provider} unreachable ({type(exc).__name__}) calling {url}: {redact(str(exc))[:_EXCERPT_CHARS]}",
        type=ErrorType.MODEL_UNAVAILABLE,
    )


def output_invalid(provider: str, detail: str) -> ApplicationError:
    """A 2xx reply we cannot interpret (not JSON, missing fields)."""
    return ApplicationError(
        f"{provider} returned an unusable response: {detail[:_EXCERPT_CHARS]}",
        type=ErrorType.MODEL_OUTPUT_INVALID,
        non_retryable=True,
    )
