"""Side-effecting tools done once per activity, however often Temporal retries it (the `IdempotencyLedger`
passed in): a retried attempt (the worker crashed after the effect but before reporting, or the attempt
timed out) returns the first attempt's recorded result instead of doing the effect again.

The key is the activity's identity, which every retry of it shares: namespace, workflow id, workflow run
id (activity ids restart at 1 in each run, so a continue-as-new run or another goal reusing the workflow
id must not match the runs before it), activity id (and the run id of a standalone activity), plus the
tool's name and the SHA-256 of its canonical action (`core.policy.action_sha256`, what an approval binds
to), so an activity id reused with other arguments cannot collide. `idempotency_key` builds it, here only.

Invariants: an unreadable ledger fails the attempt with a retryable `ToolTransient` before any effect
(never read as "not done"); a result is recorded only after the effect succeeded, and an effect that
failed is not recorded (its retry runs it again). Limits, as the protocol says: an attempt that dies
between its effect and the record, or two attempts that overlap before either records, may repeat the
effect; a record that cannot be written after the effect is logged and the result still returned, since
failing the attempt would make its retry repeat the effect for certain.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

from pydantic import ValidationError
from temporalio import activity

from activities.tools.registry import run_store, tool_error
from contracts.errors import ErrorType
from contracts.tools import ToolArgs, ToolResult
from core.hashing import sha256_text
from core.policy import action_sha256
from stores.protocols import IdempotencyLedger, StoreError

KEY_VERSION = "v1"  # bump if what the key covers changes (older records then simply stop matching)


def idempotency_key(tool: str, args: ToolArgs) -> str:
    """`idem:v1:<tool>:<sha256 of the activity's identity and the action>`, the same for every attempt of one activity."""
    info = activity.info()
    identity = [info.namespace, info.workflow_id, info.workflow_run_id, info.activity_id, info.activity_run_id,
                tool, action_sha256(tool, args)]
    return f"idem:{KEY_VERSION}:{tool}:" + sha256_text(json.dumps(identity, separators=(",", ":"), ensure_ascii=False))


class Idempotency:
    """The side-effecting tools' view of the worker's ledger (None: effects run unguarded, as in hand-built test stores)."""

    def __init__(self, ledger: IdempotencyLedger | None) -> None:
        self.ledger = ledger

    async def once(self, tool: str, args: ToolArgs, effect: Callable[[], Awaitable[ToolResult]]) -> ToolResult:
        """The result an earlier attempt of this activity recorded; else `effect()`'s, recorded (first writer wins)."""
        if self.ledger is None:
            return await effect()
        key = idempotency_key(tool, args)
        recorded = await run_store(self.ledger.get, key)  # unreadable: a retryable failure, and nothing done
        if recorded is not None:
            activity.logger.info("%s was done by an earlier attempt of this activity (%s): its recorded result returned", tool, key)
            return _decoded(recorded, key)
        result = await effect()
        try:
            recorded = await asyncio.to_thread(self.ledger.put, key, result.model_dump_json())
        except StoreError as err:
            activity.logger.warning("%s done but not recorded (%s): a retry of this activity would do it again", tool, err)
            return result
        return _decoded(recorded, key)


def _decoded(recorded: str, key: str) -> ToolResult:
    try:
        return ToolResult.model_validate_json(recorded)
    except ValidationError as err:
        # The effect is done and what it returned is lost: doing it again is exactly what the ledger prevents.
        raise tool_error(ErrorType.TOOL_FAILED, f"the recorded result of {key} is unreadable; the effect is not repeated") from err
