"""What every step runner gets and is (workflow code): the goal's shared services in one
`StepContext`, the `StepRunner` contract, and the rendering of a playbook's declared tool calls."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.goal import GoalRequest, StepProgress, StepResult
    from contracts.llm import ToolCallRequest
    from contracts.plan import PlanStep, ToolInvocation
    from core.catalogue import ToolCatalogue
    from core.templating import referenced_outputs, render, render_arguments
    from core.untrusted import step_output
    from workflows.approval_router import ApprovalRouter
    from workflows.approvals import ApprovalDesk
    from workflows.events import EventLog
    from workflows.failures import StepFailed
    from workflows.journal import Journal
    from workflows.ledger import GoalLedger
    from workflows.routing import Route
    from workflows.tool_gate import ToolCaller
    from workflows.verification import Verification


@dataclass(frozen=True)
class StepContext:
    """The goal's services, shared by every step: request, budget, live progress, policy, tools, verification."""

    request: GoalRequest
    ledger: GoalLedger
    progress: dict[str, StepProgress]
    approvals: ApprovalDesk  # holds the goal's policy once planned
    router: ApprovalRouter  # subagents' approvals, listed and decided through this goal
    tools: ToolCaller
    verification: Verification
    journal: Journal  # what running steps completed, for resuming a parked one after continue-as-new
    catalogue: ToolCatalogue  # built-ins plus the MCP tools the goal's plans recorded
    events: EventLog  # what happened, in order, for the `events` query
    model_route: Route = field(default_factory=Route)  # the task queue of `call_model` (the plan's model queue)
    revised_steps: set[str] = field(default_factory=set)  # steps a revised plan added: a model wrote them after reading outputs


class StepRunner(Protocol):
    """Runs one kind of step; fills `result` (status, output, records) or raises BudgetExceeded,
    StepFailed or StepEscalated. Any other exception is a bug: it fails the workflow task."""

    async def run(self, step: PlanStep, outputs: Mapping[str, str], result: StepResult) -> None: ...


def material_and_task(depends_on: list[str], instruction: str, goal: str, outputs: Mapping[str, str]) -> tuple[list[str], str]:
    """What a model reads of a step: each dependency's output (model-written, so data: wrapped and defused like tool
    output) and the rendered instruction; an output the instruction pastes is wrapped there, and not given twice."""
    pasted = referenced_outputs(instruction)
    material = [f"Output of step '{dep}':\n{step_output(dep, outputs[dep])}" for dep in depends_on if dep not in pasted]
    return material, render(instruction, goal, outputs, paste=step_output)


def declared_call(call_id: str, invocation: ToolInvocation, goal: str, outputs: Mapping[str, str]) -> ToolCallRequest:
    """A playbook's declared tool call with its templates filled; a plan whose arguments do not render
    fails the step (plan validation should have caught it), never the workflow task."""
    try:
        arguments_json = render_arguments(invocation.arguments_json, goal, outputs)
    except (ValueError, KeyError) as err:
        raise StepFailed(f"invalid declared tool arguments: {err!r}") from err
    return ToolCallRequest(id=call_id, name=invocation.tool, arguments_json=arguments_json)


def within_step_limits(step: PlanStep, result: StepResult, kind: str) -> None:
    """A step's own call limits (the goal's budget applies too); reaching one fails the step, not the goal."""
    used, limit = (len(result.model_calls), step.max_model_calls) if kind == "model" else (len(result.tool_calls), step.max_tool_calls)
    if limit is not None and used >= limit:
        raise StepFailed(f"StepLimit: step {step.id!r} used its {limit} {kind} calls")
