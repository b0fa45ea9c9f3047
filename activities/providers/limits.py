"""This worker's side of backpressure: per-endpoint limits on model calls, so a burst queues here, not at the provider.

Each provider endpoint (provider, base_url) gets one `EndpointLimiter` per worker process (per event loop): at most
`max_concurrent` calls in flight, at most `requests_per_minute` started (a token bucket refilled continuously, holding
at most a second's worth, so calls are spread out rather than sent in a burst), and a pause for everyone after a 429
until the time its Retry-After named. Limits come from `settings.provider_limits` (FOREMAN_<PROVIDER>_MAX_CONCURRENT,
FOREMAN_<PROVIDER>_REQUESTS_PER_MINUTE); the 429 pause applies whether or not limits are set.

The queue-wide limit is Temporal's, not ours: the model task queue's `max_task_queue_activities_per_second`, which the
server enforces across every worker (`worker.py --models`). Waiting here heartbeats, so a queued call is not taken for
a dead one; the workflow's timeouts (schedule-to-close from the goal's deadline) still bound the whole wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections.abc import AsyncIterator

from temporalio.exceptions import ApplicationError

import settings
from activities.providers._http import heartbeating
from contracts.errors import ErrorType
from settings import ProviderLimits, ResolvedModel


class EndpointLimiter:
    """Concurrency, request rate and 429 pauses for one endpoint, shared by the calls of one worker process."""

    def __init__(self, limits: ProviderLimits) -> None:
        self.limits = limits
        self._slots = asyncio.Semaphore(limits.max_concurrent) if limits.max_concurrent else None
        self._rate = limits.requests_per_minute / 60 if limits.requests_per_minute else None  # tokens per second
        self._capacity = max(1.0, self._rate) if self._rate else 0.0
        self._tokens = self._capacity
        self._refilled = time.monotonic()
        self._paused_until = 0.0  # monotonic; a 429's Retry-After
        self._turns = asyncio.Lock()  # FIFO: callers get their turn in the order they asked
        self.rate_limited = 0  # 429s seen from this endpoint

    def pause(self, seconds: float) -> None:
        """Hold every call to this endpoint for `seconds` (never shortens a pause already set)."""
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    def _wait(self, now: float) -> float:
        """Seconds until the next call may start (0: now)."""
        wait = self._paused_until - now
        if self._rate:
            self._tokens = min(self._capacity, self._tokens + (now - self._refilled) * self._rate)
            self._refilled = now
            if self._tokens < 1:
                wait = max(wait, (1 - self._tokens) / self._rate)
        return max(0.0, wait)

    async def _turn(self) -> None:
        async with self._turns:
            while (wait := self._wait(time.monotonic())) > 0:
                await asyncio.sleep(wait)
            if self._rate:
                self._tokens -= 1

    @contextlib.asynccontextmanager
    async def slot(self, label: str) -> AsyncIterator[None]:
        """Wait for a turn (heartbeating as `label`), run the call, and pause the endpoint if it answered 429."""
        async with contextlib.AsyncExitStack() as stack:
            async with heartbeating(f"queued for {label}"):
                if self._slots is not None:
                    await stack.enter_async_context(self._slots)
                await self._turn()
            try:
                yield
            except ApplicationError as err:
                if err.type == ErrorType.MODEL_RATE_LIMITED:
                    self.rate_limited += 1
                    if err.next_retry_delay:
                        self.pause(err.next_retry_delay.total_seconds())
                raise


_Key = tuple[str, str, ProviderLimits]
_limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[_Key, EndpointLimiter]] = weakref.WeakKeyDictionary()


def limiter(model: ResolvedModel) -> EndpointLimiter:
    """The limiter of `model`'s endpoint in this process (its event loop), built on first use with today's settings."""
    limits = settings.provider_limits(model.provider)
    key = (model.provider.value, (model.base_url or model.model).rstrip("/"), limits)
    per_loop = _limiters.setdefault(asyncio.get_running_loop(), {})
    if key not in per_loop:
        per_loop[key] = EndpointLimiter(limits)
    return per_loop[key]
