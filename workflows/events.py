"""The goal's event log (workflow code): typed events (`contracts/events.py`) emitted by the code that already
knows each fact (scheduler, executor, tool gate, desks, verification, ledger), read by the `events` query.

Deterministic and in memory only: emitting schedules nothing, so no workflow command changes and recorded
histories replay as before (a replay rebuilds the same log). `seq` counts on across continue-as-new (the carry
holds it); a run keeps only its own events, at most `KEEP_EVENTS` of them (the oldest are dropped and counted),
and its page names the earlier runs that hold the rest. Events for work a resumed step replays from its journal
are not emitted twice: the emitters sit where an activity actually ran or a person actually decided.
"""

from __future__ import annotations

from collections import deque
from itertools import islice
from typing import TypeVar

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.events import MAX_REASONS, Event, EventBase, EventsPage, EventsQuery, ModelCalled, PlanMade, VerdictGiven, short
    from contracts.llm import ModelRole, ModelSpec, TokenUsage
    from contracts.plan import Plan
    from contracts.verify import Verdict

KEEP_EVENTS = 5_000  # per run: a 400-step goal emits about 10 a step, and continues as new well before this

E = TypeVar("E", bound=EventBase)


class EventLog:
    def __init__(self, keep: int = KEEP_EVENTS) -> None:
        self._events: deque[Event] = deque(maxlen=keep)
        self.seq = 0  # the last seq emitted (in this goal, earlier runs included)
        self.run_first_seq = 1
        self.dropped = 0
        self.earlier_runs: list[str] = []
        self.closed: str | None = None

    def restore(self, seq: int, earlier_runs: list[str]) -> None:
        """A continued run goes on from the carried counter."""
        self.seq, self.run_first_seq, self.earlier_runs = seq, seq + 1, list(earlier_runs)

    def emit(self, event_type: type[E], /, step_id: str | None = None, **facts: object) -> E:
        self.seq += 1
        event = event_type(seq=self.seq, at=workflow.now(), step_id=step_id, **facts)
        if len(self._events) == self._events.maxlen:
            self.dropped += 1
        self._events.append(event)  # type: ignore[arg-type]  # E is one of the union's members
        return event

    def model_calls(self, step_id: str | None, role: ModelRole, spec: ModelSpec, calls: int, usage: TokenUsage, cost_usd: float) -> None:
        """A planner's or a judge's calls, made inside its activity: one event counting them (none when it made none)."""
        if calls:
            self.emit(ModelCalled, step_id=step_id, role=role.value, provider=spec.provider.value if spec.provider else None,
                      model=spec.model, calls=calls, prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
                      cost_usd=cost_usd)

    def planned(self, plan: Plan, spec: ModelSpec) -> None:
        """A plan or a revision of the rest of it, after the planner's model calls."""
        self.model_calls(None, ModelRole.PLANNER, spec, plan.model_calls, plan.usage, plan.cost_usd)
        self.emit(PlanMade, revision=plan.revision, source=plan.source.value, playbook=plan.playbook, steps=[s.id for s in plan.steps],
                  fallback_reason=short(plan.fallback_reason) if plan.fallback_reason else None)

    def verdict(self, step_id: str, verdict: Verdict) -> None:
        self.emit(VerdictGiven, step_id=step_id, decision=verdict.decision.value, score=verdict.score,
                  reasons=[short(r) for r in verdict.reasons[:MAX_REASONS]])

    def page(self, query: EventsQuery) -> EventsPage:
        """The events after `query.after`, at most `query.limit`; seqs in a run are contiguous, so this is a slice."""
        oldest = self._events[0].seq if self._events else self.seq + 1
        start = max(0, query.after + 1 - oldest)
        events = list(islice(self._events, start, start + query.limit))
        next_after = events[-1].seq if events else max(query.after, min(self.seq, oldest - 1))
        return EventsPage(
            events=events, next_after=next_after, last_seq=self.seq, more=next_after < self.seq,
            run_first_seq=self.run_first_seq, oldest_held_seq=oldest, dropped=self.dropped,
            earlier_runs=self.earlier_runs, closed=self.closed,
        )
