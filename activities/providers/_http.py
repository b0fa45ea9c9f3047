"""Shared plumbing for model providers: activity heartbeats while waiting, one JSON POST, schema parsing.

`heartbeating()` keeps a long model call alive under a short `heartbeat_timeout` (and lets
Temporal deliver cancellation); it is a no-op outside an activity so providers stay usable from
plain code and tests. `post_json()` makes exactly one attempt (no client retries: Temporal owns
them) and turns every failure into a typed `ApplicationError` via `http_errors`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.providers.http_errors import error_from_response, error_from_transport, output_invalid
from contracts.errors import ErrorType

# Beat well inside the shortest heartbeat_timeout we configure (10 s); the SDK throttles anyway.
DEFAULT_HEARTBEAT_INTERVAL = 3.0


def _interval() -> float:
    timeout = activity.info().heartbeat_timeout
    if timeout:
        return max(0.1, min(DEFAULT_HEARTBEAT_INTERVAL, timeout.total_seconds() / 3))
    return DEFAULT_HEARTBEAT_INTERVAL


@contextlib.asynccontextmanager
async def heartbeating(detail: str | None = None) -> AsyncIterator[None]:
    """Heartbeat from a background task for as long as the block runs (only inside an activity)."""
    if not activity.in_activity():
        yield
        return
    interval = _interval()

    async def beat() -> None:
        while True:
            if detail is None:
                activity.heartbeat()
            else:
                activity.heartbeat(detail)
            await asyncio.sleep(interval)

    # create_task copies the context, so the activity context is visible inside `beat`.
    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def post_json(
    url: str,
    payload: Mapping[str, Any],
    *,
    headers: Mapping[str, str],
    timeout_seconds: float,
    provider: str,
    secrets: Iterable[str | None] = (),
) -> dict[str, Any]:
    """POST `payload` once and return the JSON object reply; raise a typed ApplicationError otherwise."""
    # A client per call: no connection state shared across event loops or activities, and the
    # TCP/TLS setup is noise next to a model call's latency.
    async with heartbeating(f"waiting on {provider}"):
        try:
            async with httpx.AsyncClient(
                timeout=httpx.Timeout(timeout_seconds),
                transport=httpx.AsyncHTTPTransport(retries=0),
                follow_redirects=False,
            ) as client:
                response = await client.post(url, json=payload, headers=dict(headers))
        except (httpx.TransportError, httpx.InvalidURL) as exc:
            raise error_from_transport(exc, provider=provider, url=url) from exc
    if response.status_code >= 300:
        raise error_from_response(response, provider=provider, secrets=secrets)
    try:
        body = response.json()
    except ValueError as exc:
        raise output_invalid(provider, f"body is not JSON: {response.text[:120]!r}") from exc
    if not isinstance(body, dict):
        raise output_invalid(provider, f"expected a JSON object, got {type(body).__name__}")
    return body


def load_json_object(text: str, what: str) -> dict[str, Any]:
    """Parse a JSON-schema string from a request; a bad one is our bug, so it is not retryable."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ApplicationError(
            f"{what} is not valid JSON: {exc}", type=ErrorType.MODEL_BAD_REQUEST, non_retryable=True
        ) from exc
    if not isinstance(value, dict):
        raise ApplicationError(
            f"{what} must be a JSON object, got {type(value).__name__}",
            type=ErrorType.MODEL_BAD_REQUEST,
            non_retryable=True,
        )
    return value
