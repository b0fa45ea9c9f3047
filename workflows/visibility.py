"""What a goal shows the server's visibility store as it moves: Foreman's search attributes and a memo.

Upserts are workflow commands (one history event each), so they happen only at coarse moments and only when a value
changed: when the plan arrives, when an approval request opens or is decided, when an escalation opens or is resolved,
and when the goal ends; never per model call. The counters (model calls, cost) go with any upsert, and on their own at
most COUNTERS_EVERY after a step finished (one timer, only while a finished step is unreported): an upsert per step
was a tenth of a fast goal's time (bench section 8), and a counter seconds behind finds the same goals. Only the
attributes the plan says the namespace has are upserted (an unregistered one would fail the workflow task), and those
set at start (the server accepted them, so they are registered). The current values are read from
`workflow.info().typed_search_attributes` (the start event's, which the server carries over at continue-as-new, plus
this run's upserts), so a new run upserts only what differs; the memo is handed on explicitly (the server does not).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeKey

with workflow.unsafe.imports_passed_through():
    from contracts.plan import Plan
    from core.search_attributes import (
        AWAITING_APPROVAL,
        ESCALATED,
        EXECUTING,
        FOREMAN_COST_USD,
        FOREMAN_GOAL,
        FOREMAN_MODEL_CALLS,
        FOREMAN_PENDING_APPROVALS,
        FOREMAN_PLAYBOOK,
        FOREMAN_STATUS,
        MAX_GOAL_CHARS,
        MEMO_SUMMARY,
        PLANNING,
        SEARCH_ATTRIBUTES,
        one_line,
        summary,
    )
    from workflows.approval_router import ApprovalRouter
    from workflows.ledger import GoalLedger

COUNTERS_EVERY = timedelta(seconds=10)  # the counters are at most this much older than the last finished step


class Visibility:
    """Upserts a goal's search attributes on change, at the moments `follow` watches, and its memo once planned."""

    def __init__(self, goal: str, ledger: GoalLedger, approvals: ApprovalRouter, finished_steps: Callable[[], int]) -> None:
        self._goal = goal
        self._ledger = ledger
        self._approvals = approvals
        self._finished_steps = finished_steps
        # Set at start (a starter that knew the namespace has them, e.g. ForemanStatus=planning): registered, then.
        started = workflow.info().typed_search_attributes
        self._names = {key.name for key in SEARCH_ATTRIBUTES if started.get(key) is not None}
        self._playbook: str | None = None
        self._upserted_at: datetime | None = None  # workflow time of the last upsert of this run
        self._counted_steps = 0  # finished steps at that upsert

    def planned(self, plan: Plan) -> None:
        """The plan says which attributes the namespace has; the memo gets the goal's one-line summary (if it differs)."""
        self._names |= set(plan.search_attributes)
        self._playbook = plan.playbook
        line = summary(self._goal, plan.playbook, len(plan.steps))
        if workflow.memo_value(MEMO_SUMMARY, default=None, type_hint=str) != line:
            workflow.upsert_memo({MEMO_SUMMARY: line})

    def memo(self) -> dict[str, str]:
        """The memo as upserted, for the next run (continue-as-new does not carry an upserted memo by itself)."""
        line = workflow.memo_value(MEMO_SUMMARY, default=None, type_hint=str)
        return {MEMO_SUMMARY: line} if line is not None else {}

    def status(self, phase: str) -> str:
        """The live ForemanStatus: a person is awaited first, then the phase."""
        if self._approvals.pending():
            return AWAITING_APPROVAL
        if self._approvals.open_escalations():
            return ESCALATED
        return PLANNING if phase == PLANNING else EXECUTING

    def _moment(self, phase: str) -> tuple[str, int]:
        """What moves the attributes at once: the status and open requests."""
        return self.status(phase), len(self._approvals.pending())

    def _unreported(self) -> bool:
        """A step finished since the last upsert (its model calls and cost are not in the counters yet)."""
        return self._finished_steps() != self._counted_steps

    async def follow(self, phase: Callable[[], str]) -> None:
        """Runs while the goal executes: upsert when a moment changed, and report finished steps' counters at most
        COUNTERS_EVERY after the last upsert (one timer per window, started only when a finished step waits)."""
        seen = None
        while True:
            await workflow.wait_condition(lambda: self._moment(phase()) != seen or self._unreported())
            if self._moment(phase()) == seen and self._upserted_at is not None:
                left = COUNTERS_EVERY - (workflow.now() - self._upserted_at)
                if left > timedelta(0):
                    with contextlib.suppress(asyncio.TimeoutError):  # due: the counters go up now
                        await workflow.wait_condition(lambda: self._moment(phase()) != seen, timeout=left,
                                                      timeout_summary="search attributes: counters due")
            seen = self._moment(phase())
            self.upsert(seen[0])

    def upsert(self, status: str) -> None:
        """Upsert, in one command, the registered attributes whose value changed."""
        usage = self._ledger.usage
        wanted: list[tuple[SearchAttributeKey[Any], Any]] = [
            (FOREMAN_STATUS, status),
            (FOREMAN_PLAYBOOK, self._playbook),
            (FOREMAN_PENDING_APPROVALS, len(self._approvals.pending())),
            (FOREMAN_MODEL_CALLS, usage.model_calls),
            (FOREMAN_COST_USD, round(usage.cost_usd, 6)),
            (FOREMAN_GOAL, one_line(self._goal, MAX_GOAL_CHARS)),
        ]
        current = workflow.info().typed_search_attributes
        updates = [key.value_set(value) for key, value in wanted
                   if key.name in self._names and value is not None and current.get(key) != value]
        if updates:
            workflow.upsert_search_attributes(updates)
        self._upserted_at, self._counted_steps = workflow.now(), self._finished_steps()
