"""The goal's metrics, from workflow code (names and buckets in `core/metrics.py`).

`workflow.metric_meter()` is replay-safe: nothing is recorded while a worker replays history, so a goal resumed
on another worker is not counted twice. Recording adds no command and no event: histories are unchanged.
Labels stay bounded: the playbook is the one the plan came from (an unknown name fails planning, so it never
becomes a label), never a workflow id.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.plan import Plan
    from core import metrics

LLM_PLANNED = "llm"  # the playbook label of a goal the LLM planner planned
NOT_PLANNED = "none"  # ... and of one that never got a plan


def _subagent() -> str:
    return "true" if workflow.info().parent is not None else "false"


def goal_started() -> None:
    """A new goal (not a continue-as-new run of one)."""
    counter = workflow.metric_meter().create_counter(metrics.GOALS_STARTED.name, metrics.GOALS_STARTED.help)
    counter.add(1, {"subagent": _subagent()})


def goal_finished(status: str, plan: Plan | None, cost_usd: float) -> None:
    """The goal's last status and what it cost in all (its earlier runs and subagents included)."""
    playbook = NOT_PLANNED if plan is None else plan.playbook or LLM_PLANNED
    labels = {"status": status, "playbook": playbook, "subagent": _subagent()}
    meter = workflow.metric_meter()
    meter.create_counter(metrics.GOALS_FINISHED.name, metrics.GOALS_FINISHED.help).add(1, labels)
    meter.create_histogram_float(metrics.GOAL_COST.name, metrics.GOAL_COST.help, "USD").record(cost_usd, labels)


def approval_event(event: str, tool: str | None) -> None:
    """One event of the approval desk's audit (requested, approved, denied, expired, ...)."""
    counter = workflow.metric_meter().create_counter(metrics.APPROVAL_EVENTS.name, metrics.APPROVAL_EVENTS.help)
    counter.add(1, {"event": event, "tool": tool or "none"})
