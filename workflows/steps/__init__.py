"""Step runners, one module per step kind, chosen by a typed map from `StepKind` (workflow code)."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.plan import StepKind
    from workflows.steps.agent import AgentStepRunner
    from workflows.steps.base import StepContext, StepRunner, declared_call
    from workflows.steps.explore import ExploreStepRunner
    from workflows.steps.subagent import SubagentStepRunner
    from workflows.steps.tool import ToolStepRunner

__all__ = ["StepContext", "StepRunner", "declared_call", "step_runners"]


def step_runners(context: StepContext) -> dict[StepKind, StepRunner]:
    """The runner for every step kind; a plan can hold no kind that is missing here."""
    agent = AgentStepRunner(context)
    return {
        StepKind.AGENT: agent,
        StepKind.EXPLORE: ExploreStepRunner(context, agent),
        StepKind.TOOL: ToolStepRunner(context),
        StepKind.SUBAGENT: SubagentStepRunner(context),
    }
