"""This worker's side of backpressure: per-endpoint limits on model calls, so a burst queues here, not at the provider.

Each provider endpoint (provider, base_url) gets one `EndpointLimiter` per worker process (per event loop): at most
`max_concurrent` calls in flight, at most `requests_per_minute` started (a token bucket refilled continuously, holding
at most a second's worth, so calls are spread out rather than sent in a burst), and a pause for everyone after a 429
until the time its Retry-After named. Limits come from `settings.provider_limits` (FOREMAN_<PROVIDER>_MAX_CONCURRENT,
FOREMAN_<PROVIDER>_REQUESTS_PER_MINUTE); the 429 pause applies whether or not limits are set.

The queue-wide limit is Temporal's, not ours: the model task queue's `max_task_queue_activities_per_second`, which the
server enforces across every worker (`worker.py --models`). A short wait (at most `WAIT_IN_PLACE_SECONDS`) happens here,
heartbeating, so a queued call is not taken for a dead one. A longer one (a long Retry-After, a slow request rate) would
hold an activity slot and run down its start-to-close: the call fails at once instead, retryable (`ModelDeferred`), with
`next_retry_delay` the wait, so Temporal starts the next attempt when the turn is due and the slot serves other calls
meanwhile. A call waiting for a concurrency slot cannot know its wait in advance: it waits up to `WAIT_IN_PLACE_SECONDS`
for one, then fails the same way with a jittered guess (see `_take_slot`). Only inside an activity with an attempt to
spare: a direct call, or an activity's last attempt, waits here. The workflow's timeouts (schedule-to-close from the
goal's deadline) bound the whole wait either way. A deferred attempt holds nothing: it takes a request token only once
it has a concurrency slot and its turn, and gives the slot back as it fails. Each deferral is counted
(`foreman_model_deferrals`, by provider and reason: rate, retry_after, concurrency).

Limiters are kept per endpoint, and a request may name its model and base URL: at most `MAX_LIMITERS` per event loop,
the least recently used let go first (a call already holding one keeps it).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import weakref
from collections import OrderedDict
from collections.abc import AsyncIterator
from datetime import timedelta

from temporalio import activity
from temporalio.exceptions import ApplicationError

import settings
from activities import metrics
from activities.metrics import DeferralReason
from activities.providers._http import heartbeating
from contracts.errors import ErrorType
from contracts.llm import Provider
from settings import ProviderLimits, ResolvedModel

# Longer waits for a turn give the activity slot back (a retryable failure timed to the turn); shorter ones cost less here.
WAIT_IN_PLACE_SECONDS = 5.0
# Endpoints remembered per event loop: request-named models and URLs must not grow a worker's memory without bound.
MAX_LIMITERS = 256


class EndpointLimiter:
    """Concurrency, request rate and 429 pauses for one endpoint, shared by the calls of one worker process."""

    def __init__(self, limits: ProviderLimits, provider: Provider) -> None:
        self.limits = limits
        self.provider = provider  # the deferral metric's label
        self._slots = asyncio.Semaphore(limits.max_concurrent) if limits.max_concurrent else None
        self._rate = limits.requests_per_minute / 60 if limits.requests_per_minute else None  # tokens per second
        self._capacity = max(1.0, self._rate) if self._rate else 0.0
        self._tokens = self._capacity
        self._refilled = time.monotonic()
        self._paused_until = 0.0  # monotonic; a 429's Retry-After
        self._turns = asyncio.Lock()  # FIFO: callers get their turn in the order they asked
        self._queued = 0  # callers waiting for (or in) their turn: each takes a token before a newcomer
        self.rate_limited = 0  # 429s seen from this endpoint

    def pause(self, seconds: float) -> None:
        """Hold every call to this endpoint for `seconds` (never shortens a pause already set)."""
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    def _wait(self, now: float, ahead: int = 0) -> tuple[float, DeferralReason]:
        """Seconds until a call with `ahead` calls queued before it may start (0: now), and what holds it longest."""
        wait, reason = self._paused_until - now, DeferralReason.RETRY_AFTER
        if self._rate:
            self._tokens = min(self._capacity, self._tokens + (now - self._refilled) * self._rate)
            self._refilled = now
            if self._tokens < 1 + ahead and (for_token := (1 + ahead - self._tokens) / self._rate) > wait:
                wait, reason = for_token, DeferralReason.RATE
        return max(0.0, wait), reason

    def _defer_if_long(self, wait: float, reason: DeferralReason, deferrable: bool) -> None:
        """Fail the attempt, retryable and timed to the turn, when its wait is longer than is worth an activity slot."""
        if deferrable and wait > WAIT_IN_PLACE_SECONDS:
            held_by = "a 429's Retry-After" if reason is DeferralReason.RETRY_AFTER else "the request rate"
            raise self._deferred(f"this worker holds calls to the endpoint for {wait:.1f} s more ({held_by}): "
                                 "retried then", reason, wait)

    def _deferred(self, message: str, reason: DeferralReason, delay: float) -> ApplicationError:
        """The ModelDeferred failure of an attempt, counted (`foreman_model_deferrals`)."""
        metrics.model_deferral(self.provider, reason)
        return ApplicationError(message, type=ErrorType.MODEL_DEFERRED, next_retry_delay=timedelta(seconds=delay))

    async def _turn(self, deferrable: bool) -> None:
        self._queued += 1
        try:
            async with self._turns:
                while True:
                    wait, reason = self._wait(time.monotonic())
                    if wait <= 0:
                        break
                    self._defer_if_long(wait, reason, deferrable)  # a 429 while this call queued may have made it long
                    await asyncio.sleep(wait)
                if self._rate:
                    self._tokens -= 1
        finally:
            self._queued -= 1

    async def _take_slot(self, slots: asyncio.Semaphore, deferrable: bool) -> None:
        """Acquire a concurrency slot; a deferrable call waits at most WAIT_IN_PLACE_SECONDS for one."""
        if not deferrable:
            await slots.acquire()
            return
        try:
            async with asyncio.timeout(WAIT_IN_PLACE_SECONDS):
                await slots.acquire()  # a slot handed over as the timeout fires is released again by acquire itself
        except TimeoutError:
            # The calls in flight have outlasted one threshold, so another is a fair guess; jittered so the calls
            # deferred together do not come back together.
            delay = WAIT_IN_PLACE_SECONDS * random.uniform(1.0, 2.0)
            raise self._deferred(f"every concurrency slot of this worker for the endpoint stayed busy for "
                                 f"{WAIT_IN_PLACE_SECONDS:g} s: retried in {delay:.1f} s", DeferralReason.CONCURRENCY,
                                 delay) from None

    @contextlib.asynccontextmanager
    async def slot(self, label: str) -> AsyncIterator[None]:
        """Wait for a turn (heartbeating as `label`; a long wait fails the attempt, see the module), run the call, and
        pause the endpoint if it answered 429."""
        deferrable = _may_defer()
        self._defer_if_long(*self._wait(time.monotonic(), self._queued), deferrable)  # before taking a concurrency slot
        async with contextlib.AsyncExitStack() as stack:
            async with heartbeating(f"queued for {label}"):
                if self._slots is not None:
                    await self._take_slot(self._slots, deferrable)
                    stack.callback(self._slots.release)  # no await since the acquire: nothing can come between
                await self._turn(deferrable)
            try:
                yield
            except ApplicationError as err:
                if err.type == ErrorType.MODEL_RATE_LIMITED:
                    self.rate_limited += 1
                    if err.next_retry_delay:
                        self.pause(err.next_retry_delay.total_seconds())
                raise


def _may_defer() -> bool:
    """A long wait may fail the call: inside a (non-local) activity that has an attempt to spare (no retry policy: the
    server's default, unlimited). Elsewhere nothing would retry it, and a last attempt would turn a wait into a failure."""
    if not activity.in_activity():
        return False
    info = activity.info()
    attempts = info.retry_policy.maximum_attempts if info.retry_policy else 0
    return not info.is_local and (attempts == 0 or info.attempt < attempts)


_Key = tuple[str, str, ProviderLimits]
_limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, OrderedDict[_Key, EndpointLimiter]] = weakref.WeakKeyDictionary()


def limiter(model: ResolvedModel) -> EndpointLimiter:
    """The limiter of `model`'s endpoint in this process (its event loop), built on first use with today's settings."""
    limits = settings.provider_limits(model.provider)
    key = (model.provider.value, (model.base_url or model.model).rstrip("/"), limits)
    per_loop = _limiters.setdefault(asyncio.get_running_loop(), OrderedDict())
    if key in per_loop:
        per_loop.move_to_end(key)
    else:
        per_loop[key] = EndpointLimiter(limits, model.provider)
        if len(per_loop) > MAX_LIMITERS:
            per_loop.popitem(last=False)  # the least recently used endpoint: its state (a pause) starts afresh if it returns
    return per_loop[key]
