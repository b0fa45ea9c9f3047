"""Side-effecting tools done once per call, however often Temporal runs its activity (the `IdempotencyLedger`
passed in): a retried attempt (the worker crashed after the effect but before reporting, or the attempt timed
out) returns the first attempt's recorded result instead of doing the effect again.

The key is the one the workflow stamped into the call's arguments (`core.idempotency`: the goal, the step, the
call's index in the step and the action), so every attempt of the call, on any worker and in any run of a
continue-as-new chain, records under the same key; no activity computes one. A built-in tool called without a
key while a ledger is configured fails at once (non-retryable), like a memory tool called without its context.

Invariants: an unreadable ledger fails the attempt with a retryable `ToolTransient` before any effect (never
read as "not done"); a result is recorded only after the effect succeeded, and an effect that failed is not
recorded (its retry runs it again). Limits, as the protocol says: an attempt that dies between its effect and
the record, or two attempts that overlap before either records, may repeat the effect (a tool whose effect is
idempotent itself, or a server that deduplicates by the key, closes that gap); a record that cannot be written
after the effect is logged and the result still returned, since failing the attempt would make its retry
repeat the effect for certain.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from pydantic import ValidationError
from temporalio import activity

from activities.metrics import answered_from_ledger
from activities.tools.registry import run_store, tool_error
from contracts.errors import ErrorType
from contracts.tools import ToolResult
from stores.protocols import IdempotencyLedger, StoreError


class Idempotency:
    """The side-effecting tools' view of the worker's ledger (None: effects run unguarded, as in hand-built test stores)."""

    def __init__(self, ledger: IdempotencyLedger | None) -> None:
        self.ledger = ledger

    async def once(self, tool: str, key: str | None, effect: Callable[[], Awaitable[ToolResult]]) -> ToolResult:
        """The result recorded under `key` (the call's stamped key) by an earlier attempt; else `effect()`'s,
        recorded (first writer wins)."""
        if self.ledger is None:
            return await effect()
        if key is None:
            raise tool_error(ErrorType.TOOL_ARGUMENTS_INVALID, f"{tool} changes something: it needs the idempotency key the workflow stamps")
        recorded = await run_store(self.ledger.get, key)  # unreadable: a retryable failure, and nothing done
        if recorded is not None:
            activity.logger.info("%s was done by an earlier attempt of this call (%s): its recorded result returned", tool, key)
            answered_from_ledger()
            return _decoded(recorded, key)
        result = await effect()
        try:
            recorded = await asyncio.to_thread(self.ledger.put, key, result.model_dump_json())
        except StoreError as err:
            activity.logger.warning("%s done but not recorded (%s): a retry of this call would do it again", tool, err)
            return result
        return _decoded(recorded, key)


def _decoded(recorded: str, key: str) -> ToolResult:
    try:
        return ToolResult.model_validate_json(recorded)
    except ValidationError as err:
        # The effect is done and what it returned is lost: doing it again is exactly what the ledger prevents.
        raise tool_error(ErrorType.TOOL_FAILED, f"the recorded result of {key} is unreadable; the effect is not repeated") from err
