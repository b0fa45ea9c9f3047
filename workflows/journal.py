"""Step journals (workflow code): what each running step has completed (model calls, verifications, tool
calls, escalations opened), so a step parked at a continue-as-new while it waited for a person can be run
again in the next run from its journal: every completed call is answered from it in order (no activity, no
budget charge, no audit event twice) until the step reaches the wait it was parked at.

Invariants: only steps of a kind that runs sequentially are parked (`PARKABLE`); a journal entry of the wrong
kind at replay means the step's code is not deterministic, a bug that fails the workflow task.
"""

from __future__ import annotations

from collections import deque
from datetime import datetime

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.continuation import EntryKind, JournalEntry, StepJournal
    from contracts.plan import StepKind
    from workflows.failures import WorkflowCodeError

# Agent and tool steps call one thing at a time; explore candidates run concurrently and subagents are child
# workflows (a child cannot outlive its parent's run), so those finish before the goal continues as new.
PARKABLE = {StepKind.AGENT, StepKind.TOOL}


class Journal:
    def __init__(self) -> None:
        self.live: dict[str, StepJournal] = {}
        self._replay: dict[str, deque[JournalEntry]] = {}
        self._carried: dict[str, StepJournal] = {}

    def restore(self, carried: list[StepJournal]) -> None:
        """The journals of the steps parked at the last continue-as-new, to replay as they resume."""
        self._replay = {j.step_id: deque(j.entries) for j in carried}
        self._carried = {j.step_id: j for j in carried}

    def resuming(self, step_id: str) -> bool:
        """The step was parked at the last continue-as-new and resumes now."""
        return step_id in self._carried

    def begin(self, step_id: str, kind: StepKind) -> datetime:
        """Start journalling a step that can be parked (nothing else is ever replayed, so nothing else is kept);
        its start time (the original one for a resumed step)."""
        carried = self._carried.get(step_id)
        started = carried.started_at if carried else workflow.now()
        if kind in PARKABLE:
            self.live[step_id] = StepJournal(step_id=step_id, started_at=started)
        return started

    def end(self, step_id: str) -> None:
        self.live.pop(step_id, None)
        self._replay.pop(step_id, None)
        self._carried.pop(step_id, None)

    def replayed(self, step_id: str, kind: EntryKind) -> JournalEntry | None:
        """The next completed entry of a resumed step (also kept in its live journal), or None: run it for real."""
        queue = self._replay.get(step_id)
        if not queue:
            return None
        entry = queue.popleft()
        if entry.kind is not kind:
            raise WorkflowCodeError(f"step {step_id!r} resumed differently: journal has {entry.kind.value}, the step asked for {kind.value}")
        self.live[step_id].entries.append(entry)
        return entry

    def record(self, step_id: str, entry: JournalEntry) -> None:
        if step_id in self.live:  # goal-level verification is not a step: nothing to journal
            self.live[step_id].entries.append(entry)

    def awaited_request(self, step_id: str) -> str | None:
        """The approval request a resumed step was waiting on, once its completed entries are all replayed."""
        carried = self._carried.get(step_id)
        if carried is None or self._replay.get(step_id):
            return None
        request_id, carried.awaiting_request_id = carried.awaiting_request_id, None
        return request_id

    def awaiting(self, step_id: str, request_id: str | None) -> None:
        if step_id in self.live:
            self.live[step_id].awaiting_request_id = request_id

    def parked(self, step_ids: list[str]) -> list[StepJournal]:
        return [self.live[s] for s in step_ids]
