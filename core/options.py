"""Every timeout and retry policy, per activity kind, in one place.

Temporal owns retries: provider and tool clients make no retries of their own.
"""

from dataclasses import dataclass, replace
from datetime import timedelta

from temporalio.common import RetryPolicy

from contracts.errors import NON_RETRYABLE_ERROR_TYPES


@dataclass(frozen=True)
class ActivityConfig:
    """Options passed to `workflow.execute_activity` for one kind of activity."""

    start_to_close_timeout: timedelta
    retry_policy: RetryPolicy
    heartbeat_timeout: timedelta | None = None
    schedule_to_close_timeout: timedelta | None = None
    schedule_to_start_timeout: timedelta | None = None

    def with_overrides(
        self, *, start_to_close_timeout: timedelta | None = None, maximum_attempts: int | None = None
    ) -> "ActivityConfig":
        retry = self.retry_policy
        if maximum_attempts is not None:
            retry = replace(retry, maximum_attempts=maximum_attempts)
        return replace(self, start_to_close_timeout=start_to_close_timeout or self.start_to_close_timeout, retry_policy=retry)

    def within(self, time_left: timedelta | None) -> "ActivityConfig":
        """Cut to a deadline `time_left` away (None: none): the call, its retries and its time queued end by then."""
        if time_left is None:
            return self
        left = max(time_left, MINIMUM_TIMEOUT)
        whole = min(self.schedule_to_close_timeout or left, left)
        return replace(self, schedule_to_close_timeout=whole, schedule_to_start_timeout=whole)

    def kwargs(self) -> dict:
        options: dict = {"start_to_close_timeout": self.start_to_close_timeout, "retry_policy": self.retry_policy}
        if self.heartbeat_timeout is not None:
            options["heartbeat_timeout"] = self.heartbeat_timeout
        if self.schedule_to_close_timeout is not None:
            options["schedule_to_close_timeout"] = self.schedule_to_close_timeout
        if self.schedule_to_start_timeout is not None:
            options["schedule_to_start_timeout"] = self.schedule_to_start_timeout
        return options


# Temporal rejects a zero timeout; a deadline already passed still gets this long (the ledger stops the goal first).
MINIMUM_TIMEOUT = timedelta(seconds=1)


def _retry(initial: float, maximum: float, attempts: int) -> RetryPolicy:
    return RetryPolicy(
        initial_interval=timedelta(seconds=initial),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=maximum),
        maximum_attempts=attempts,
        non_retryable_error_types=list(NON_RETRYABLE_ERROR_TYPES),
    )


# Model calls: slow and rate-limited; heartbeats let a dead worker's call be retried within seconds. Retried until
# MODEL_CALL_PATIENCE (or the goal's deadline, `within`) rather than a number of attempts: a 429 storm or a provider
# outage spends time, each retry spaced as the provider's Retry-After asks, never a goal's attempts; errors retrying
# cannot fix are non-retryable and fail at once.
MODEL_CALL_PATIENCE = timedelta(minutes=30)
MODEL_CALL = ActivityConfig(
    start_to_close_timeout=timedelta(minutes=5),
    heartbeat_timeout=timedelta(seconds=10),
    retry_policy=_retry(1.0, 60.0, 0),  # 0: no limit on attempts (bounded by schedule_to_close)
    schedule_to_close_timeout=MODEL_CALL_PATIENCE,
)
# Planning may make several model calls (repair attempts) inside one activity.
PLANNER = ActivityConfig(
    start_to_close_timeout=timedelta(minutes=10),
    heartbeat_timeout=timedelta(seconds=10),
    retry_policy=_retry(1.0, 60.0, 4),
)
# A named playbook is planned from files on the worker, with no model: quick, so it runs as a local activity (no round
# trip through the server, which cost a fast goal about one step's time: bench section 8). LLM planning stays above.
PLAYBOOK_PLANNER = ActivityConfig(start_to_close_timeout=timedelta(seconds=60), retry_policy=_retry(0.5, 10.0, 4))
VERIFIER = ActivityConfig(
    start_to_close_timeout=timedelta(minutes=5),
    heartbeat_timeout=timedelta(seconds=10),
    retry_policy=_retry(1.0, 30.0, 4),
)
# Reads are idempotent: retry freely.
TOOL_READ = ActivityConfig(start_to_close_timeout=timedelta(seconds=60), retry_policy=_retry(0.5, 20.0, 5))
# Writes are idempotent by construction (atomic replace) but still retried less eagerly.
TOOL_WRITE = ActivityConfig(start_to_close_timeout=timedelta(seconds=60), retry_policy=_retry(1.0, 20.0, 3))
# Destructive tools never retry on their own: a second attempt must be a new, visible decision.
TOOL_DESTRUCTIVE = ActivityConfig(start_to_close_timeout=timedelta(seconds=120), retry_policy=_retry(1.0, 1.0, 1))
# An MCP tool that writes is not known to be idempotent: one attempt; a timeout is reported, never repeated blindly.
TOOL_MCP_WRITE = ActivityConfig(start_to_close_timeout=timedelta(seconds=60), retry_policy=_retry(1.0, 1.0, 1))
# Archiving a large result's parts: idempotent by content hash, retried like a write.
ARCHIVE = ActivityConfig(start_to_close_timeout=timedelta(seconds=60), retry_policy=_retry(1.0, 20.0, 5))
# A declared field out of a tool's output: a store read and at most a few seconds of regex (stopped past that).
EXTRACT = ActivityConfig(start_to_close_timeout=timedelta(seconds=30), retry_policy=_retry(0.5, 5.0, 3))
# Sandboxed code: a call's own timeout is its wall-clock limit plus this margin (start-up, copying the workspace);
# one retry, for a lost worker only: a run stopped by a limit or a missing sandbox is non-retryable.
SANDBOX_MARGIN = timedelta(seconds=30)
SANDBOX = ActivityConfig(start_to_close_timeout=timedelta(seconds=60) + SANDBOX_MARGIN, retry_policy=_retry(1.0, 5.0, 2))
