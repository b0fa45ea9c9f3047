"""The executor: runs one plan step inside `GoalWorkflow` (workflow code: deterministic, no I/O).

An agent step is a loop of `call_model` activities and one activity per requested tool call,
results fed back, until a final answer or the turn limit; then `verify_output` decides accept,
refine (reasons fed back, bounded attempts) or escalate. Tool arguments are validated here,
before any activity is scheduled; tool outputs are wrapped as untrusted data.
"""

from __future__ import annotations

import hashlib

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from activities.model_call import call_model
    from activities.tools.registry import TOOLS
    from activities.verifier import verify_output
    from contracts.approvals import ApprovalEventKind, ApprovalStatus
    from contracts.errors import ErrorType
    from contracts.goal import (
        Budget,
        GoalRequest,
        ModelCallRecord,
        StepProgress,
        StepResult,
        StepStatus,
        ToolCallRecord,
        UsageTotals,
    )
    from contracts.llm import ChatMessage, ChatRole, ModelRequest, ModelResponse, ModelRole, ToolCallRequest
    from contracts.plan import AgentStep, PlanStep, ToolInvocation, ToolStep
    from contracts.tools import ToolResult
    from contracts.verify import Decision, ModelJudgeCheck, Verdict, VerifyRequest
    from workflows.approvals import ApprovalDesk
    from workflows.options import MODEL_CALL, VERIFIER
    from workflows.policy import action_sha256, canonical_arguments, evaluate
    from workflows.templating import render, render_arguments
    from workflows.untrusted import UNTRUSTED_NOTE, defuse, step_output

class BudgetExceeded(Exception):
    """Raised in workflow code when the next call would break the goal's budget."""


class StepFailed(Exception):
    """A step cannot finish (e.g. its declared tool call failed)."""


class StepEscalated(Exception):
    """A step needs a human (e.g. an approval request expired into escalation)."""


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _failure_message(err: BaseException) -> str:
    cause = err.cause if isinstance(err, ActivityError) else err
    if isinstance(cause, ApplicationError) and cause.type:
        return f"{cause.type}: {cause.message}"
    return str(cause or err)


class GoalLedger:
    """Usage totals and budget checks for one goal, shared by all of its steps."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.usage = UsageTotals()
        self.exceeded: str | None = None

    def _stop(self, reason: str) -> None:
        self.exceeded = reason
        raise BudgetExceeded(reason)

    def before_model_call(self) -> None:
        if self.exceeded:
            raise BudgetExceeded(self.exceeded)
        if self.usage.model_calls >= self.budget.max_model_calls:
            self._stop(f"model call budget of {self.budget.max_model_calls} used up")
        if self.usage.total_tokens >= self.budget.max_total_tokens:
            self._stop(f"token budget of {self.budget.max_total_tokens} used up")
        if self.usage.cost_usd >= self.budget.max_cost_usd > 0:
            self._stop(f"cost budget of ${self.budget.max_cost_usd:.4f} used up")
        # Counted now, before the call is awaited, so concurrent steps cannot overrun the limit together.
        self.usage.model_calls += 1

    def before_tool_call(self) -> None:
        if self.exceeded:
            raise BudgetExceeded(self.exceeded)
        if self.usage.tool_calls >= self.budget.max_tool_calls:
            self._stop(f"tool call budget of {self.budget.max_tool_calls} used up")


class StepExecutor:
    """Runs steps for one goal; records progress for the `status` query."""

    def __init__(
        self, request: GoalRequest, ledger: GoalLedger, progress: dict[str, StepProgress], desk: ApprovalDesk
    ) -> None:
        self.request = request
        self.ledger = ledger
        self.progress = progress
        self.desk = desk

    async def run(self, step: PlanStep, outputs: dict[str, str]) -> StepResult:
        result = StepResult(step_id=step.id, role=step.role, status=StepStatus.RUNNING, started_at=workflow.now())
        progress = self.progress[step.id]
        progress.status = StepStatus.RUNNING
        try:
            if isinstance(step, ToolStep):
                await self._run_tool_step(step, outputs, result, progress)
            else:
                await self._run_agent_step(step, outputs, result, progress)
        except BudgetExceeded as err:
            result.status, result.error = StepStatus.FAILED, f"BudgetExceeded: {err}"
        except StepFailed as err:
            result.status, result.error = StepStatus.FAILED, str(err)
        except StepEscalated as err:
            result.status, result.error = StepStatus.ESCALATED, str(err)
        except ActivityError as err:
            # A model call or verification that failed for good ends this step; the goal still reports.
            result.status, result.error = StepStatus.FAILED, _failure_message(err)
        except (ValueError, KeyError) as err:
            # Declared tool arguments that do not render (a playbook bug): fail the step, not the workflow task.
            result.status, result.error = StepStatus.FAILED, f"invalid declared tool arguments: {err!r}"
        result.finished_at = workflow.now()
        if result.status is StepStatus.COMPLETED:
            result.output_sha256 = _sha256(result.output)
        progress.status = result.status
        return result

    # --- agent steps -------------------------------------------------------------------------

    async def _run_agent_step(self, step: AgentStep, outputs: dict[str, str], result: StepResult, progress: StepProgress) -> None:
        messages = [
            ChatMessage(role=ChatRole.SYSTEM, content=self._system_prompt(step)),
            ChatMessage(role=ChatRole.USER, content=await self._step_context(step, outputs, result)),
        ]
        for attempt in range(1, step.max_attempts + 1):
            result.attempts = progress.attempt = attempt
            progress.status = StepStatus.RUNNING
            answer = await self._agent_turns(step, messages, result, progress)
            result.output = answer
            if await self._accepted(step, answer, result, progress):
                return
            if result.status is StepStatus.ESCALATED:
                return
            reasons = "\n- ".join(result.verdicts[-1].reasons)
            messages.append(
                ChatMessage(role=ChatRole.USER, content=f"Your answer was not accepted:\n- {reasons}\nWrite an improved final answer.")
            )
        result.status = StepStatus.FAILED
        result.error = f"verification failed after {step.max_attempts} attempts: " + "; ".join(result.verdicts[-1].reasons)

    def _system_prompt(self, step: AgentStep) -> str:
        tools = f" You may call these tools: {', '.join(step.tools)}." if step.tools else ""
        return (
            f"You are the {step.role} in a team working toward a goal. Do only your own step.{tools} "
            f"{UNTRUSTED_NOTE} When you are done, reply with your final answer only."
        )

    async def _step_context(self, step: AgentStep, outputs: dict[str, str], result: StepResult) -> str:
        """Material first (dependency outputs, prefetched tool results), then the goal and the task:
        models of every size follow a task best when it comes last."""
        # Another agent's output is model-written, so it is data too: wrapped and defused like tool output.
        parts = [f"Output of step '{dep}':\n{step_output(dep, outputs[dep])}" for dep in step.depends_on]
        for index, invocation in enumerate(step.prefetch):
            call = ToolCallRequest(
                id=f"{step.id}-prefetch-{index}",
                name=invocation.tool,
                arguments_json=render_arguments(invocation.arguments_json, self.request.goal, outputs),
            )
            text = await self._tool_message_text(step, call, result, allowed={invocation.tool})
            parts.append(f"Results of {invocation.tool}:\n{text}")
        parts.append(f"Goal: {self.request.goal}\n{render(step.instruction, self.request.goal, outputs)}")
        return "\n\n".join(parts)

    async def _agent_turns(self, step: AgentStep, messages: list[ChatMessage], result: StepResult, progress: StepProgress) -> str:
        schemas = [TOOLS[name].schema() for name in step.tools if name in TOOLS]
        for turn in range(step.max_turns):
            result.turns += 1
            progress.turn = result.turns
            last_turn = turn == step.max_turns - 1
            # The last turn offers no tools, so the loop always ends with an answer.
            response = await self._call_model(step, messages, [] if last_turn else schemas, result)
            reply = response.message
            if last_turn and reply.tool_calls:
                # No tools were offered on this turn: calls the model asks for anyway are not run.
                reply = reply.model_copy(update={"tool_calls": []})
            messages.append(reply)
            if not reply.tool_calls:
                return reply.content.strip()
            for call in reply.tool_calls:
                text = await self._tool_message_text(step, call, result, allowed=set(step.tools))
                messages.append(ChatMessage(role=ChatRole.TOOL, content=text, tool_call_id=call.id, name=call.name))
        return ""

    async def _call_model(self, step: AgentStep, messages: list[ChatMessage], tools: list, result: StepResult) -> ModelResponse:
        self.ledger.before_model_call()
        spec = self.request.models.executor
        if result.attempts > 1 and step.refine_temperature_step:
            bumped = min(2.0, spec.temperature + step.refine_temperature_step * (result.attempts - 1))
            spec = spec.model_copy(update={"temperature": bumped})
        response = await workflow.execute_activity(
            call_model,
            ModelRequest(role=ModelRole.EXECUTOR, spec=spec, messages=list(messages), tools=tools),
            summary=f"{step.id}: model turn {result.turns}",
            **MODEL_CALL.kwargs(),
        )
        self.ledger.usage.add_model(response.usage, response.cost_usd, calls=0)  # the call was reserved
        result.model_calls.append(
            ModelCallRecord(
                provider=response.provider.value,
                model=response.model,
                prompt_tokens=response.usage.prompt_tokens,
                completion_tokens=response.usage.completion_tokens,
                cost_usd=response.cost_usd,
                finish_reason=response.finish_reason,
            )
        )
        return response

    # --- tools ---------------------------------------------------------------------------------

    async def _execute_tool(self, step: PlanStep, call: ToolCallRequest, allowed: set[str]) -> tuple[ToolCallRecord, ToolResult | None]:
        """Validate, check policy (and wait for approval if gated), then run one tool call as its own
        activity. Rejections and denials never schedule anything."""
        record = ToolCallRecord(call_id=call.id, tool=call.name, arguments_json=call.arguments_json, ok=False)
        definition = TOOLS.get(call.name)
        if definition is None or call.name not in allowed:
            record.error = f"ToolNotAllowed: tool {call.name!r} is not available to this step (allowed: {sorted(allowed)})"
            return record, None
        try:
            args = definition.args_model.model_validate_json(call.arguments_json or "{}")
        except ValidationError as err:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}" for e in err.errors())
            record.error = f"ToolArgumentsInvalid: {problems}"
            return record, None
        problem = args.precheck()
        if problem:
            record.error = f"{ErrorType.ARTIFACT_MISMATCH.value}: {problem}"
            return record, None
        decision = evaluate(self.desk.policy, step.role, definition.name, definition.side_effect, args)
        if decision.outcome == "deny":
            self.desk.record(ApprovalEventKind.POLICY_DENIED, step_id=step.id, tool=call.name, actor=step.role, detail=decision.reason)
            record.error = f"{ErrorType.POLICY_DENIED.value}: {decision.reason}"
            return record, None
        approval = None
        if decision.outcome == "gate" and decision.rule is not None:
            approval = self.desk.open_request(
                step_id=step.id, tool=definition.name, arguments_json=canonical_arguments(args),
                action_sha256=action_sha256(definition.name, args), artifact_sha256=getattr(args, "expected_sha256", None),
                requested_by=step.role, rule=decision.rule, reason=decision.reason,
            )
            record.approval_request_id = approval.request_id
            self.progress[step.id].status = StepStatus.AWAITING_APPROVAL
            status = await self.desk.wait(approval)
            self.progress[step.id].status = StepStatus.RUNNING
            if status is ApprovalStatus.ESCALATED:
                raise StepEscalated(f"approval request {approval.request_id} for {call.name} expired and was escalated")
            if status is not ApprovalStatus.APPROVED:
                record.error = f"{ErrorType.APPROVAL_DENIED.value}: request {approval.request_id} was {status.value}"
                return record, None
        self.ledger.before_tool_call()
        self.ledger.usage.tool_calls += 1
        try:
            output = await workflow.execute_activity(
                definition.name,
                args,
                result_type=ToolResult,
                summary=f"{step.id}: {definition.name}",
                **definition.config.kwargs(),
            )
        except ActivityError as err:
            record.error = _failure_message(err)
            return record, None
        if approval is not None:
            self.desk.record(ApprovalEventKind.EXECUTED, request_id=approval.request_id, step_id=step.id, tool=call.name,
                             detail=f"action {approval.action_sha256}")
        record.ok, record.content_sha256, record.content_ref = output.ok, output.content_sha256, output.content_ref
        return record, output

    async def _tool_message_text(self, step: PlanStep, call: ToolCallRequest, result: StepResult, allowed: set[str]) -> str:
        record, output = await self._execute_tool(step, call, allowed)
        result.tool_calls.append(record)
        if output is None:
            return f"<tool_error tool=\"{call.name}\">{defuse(record.error or '')}</tool_error>"
        note = f" truncated=\"true\" full_ref=\"{output.content_ref}\"" if output.truncated else ""
        return (
            f"<tool_output tool=\"{call.name}\" sha256=\"{output.content_sha256[:16]}\" untrusted=\"true\"{note}>\n"
            f"{defuse(output.content)}\n</tool_output>"
        )

    async def _run_tool_step(self, step: ToolStep, outputs: dict[str, str], result: StepResult, progress: StepProgress) -> None:
        invocation: ToolInvocation = step.invocation
        call = ToolCallRequest(
            id=f"{step.id}-call",
            name=invocation.tool,
            arguments_json=render_arguments(invocation.arguments_json, self.request.goal, outputs),
        )
        for attempt in range(1, step.max_attempts + 1):
            result.attempts = progress.attempt = attempt
            record, output = await self._execute_tool(step, call, allowed={invocation.tool})
            result.tool_calls.append(record)
            if output is None:
                raise StepFailed(record.error or "tool call failed")
            result.output = output.content
            if await self._accepted(step, output.content, result, progress) or result.status is StepStatus.ESCALATED:
                return
        result.status = StepStatus.FAILED
        result.error = "verification failed: " + "; ".join(result.verdicts[-1].reasons)

    # --- verification --------------------------------------------------------------------------

    async def verify(self, step_id: str, instruction: str, output: str, checks: list, summary: str) -> Verdict:
        judged = any(isinstance(check, ModelJudgeCheck) for check in checks)
        if judged:
            self.ledger.before_model_call()  # a model-judged check is a model call: it obeys the budget
        verdict = await workflow.execute_activity(
            verify_output,
            VerifyRequest(
                step_id=step_id, goal=self.request.goal, instruction=instruction, output=output,
                checks=checks, judge=self.request.models.verifier,
            ),
            summary=summary,
            **VERIFIER.kwargs(),
        )
        if verdict.model_calls or judged:
            self.ledger.usage.add_model(verdict.usage, verdict.cost_usd, calls=verdict.model_calls - int(judged))
        return verdict

    async def _accepted(self, step: PlanStep, output: str, result: StepResult, progress: StepProgress) -> bool:
        """Verify the output; sets the step's status when accepted or escalated."""
        if not step.checks:
            result.status = StepStatus.COMPLETED
            return True
        progress.status = StepStatus.VERIFYING
        instruction = step.instruction if isinstance(step, AgentStep) else f"call {step.invocation.tool}"
        verdict = await self.verify(step.id, instruction, output, step.checks, f"{step.id}: verify attempt {result.attempts}")
        result.verdicts.append(verdict)
        if verdict.decision is Decision.ACCEPT:
            result.status = StepStatus.COMPLETED
            return True
        if verdict.decision is Decision.ESCALATE:
            result.status = StepStatus.ESCALATED
            result.error = "escalated by the verifier: " + "; ".join(verdict.reasons)
        return False
