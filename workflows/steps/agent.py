"""Agent steps (workflow code): a loop of `call_model` activities and one activity per requested tool
call, results fed back, until a final answer or the turn limit; then verification decides accept,
refine (reasons fed back, bounded attempts, slightly hotter sampling) or escalate.

Tool outputs and other steps' outputs reach the model wrapped as untrusted data.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.goal import StepResult, StepStatus
    from contracts.llm import (
        ChatMessage,
        ChatRole,
        ModelResponse,
        ModelSpec,
        ToolCallRequest,
        ToolSchema,
    )
    from contracts.plan import AgentStep
    from contracts.tools import ToolResult
    from core.code_blocks import CODE_BLOCK_HINT, CODE_QUOTED_NOTE, CODE_RAN_NOTE, CODE_REFUSED_NOTE, python_block, quoted
    from core.mcp import wire_name
    from core.untrusted import UNTRUSTED_NOTE, defuse
    from workflows.model_calls import cache_use, call_model
    from workflows.steps.base import StepContext, declared_call, material_and_task, within_step_limits


RUN_PYTHON = "run_python"


def runs_code_blocks(step: AgentStep) -> bool:
    """A ```python block in this step's replies runs as a run_python call (the step may use the tool)."""
    return step.code_blocks and RUN_PYTHON in step.tools


class AgentStepRunner:
    def __init__(self, context: StepContext) -> None:
        self.context = context

    async def run(self, step: AgentStep, outputs: Mapping[str, str], result: StepResult) -> None:
        progress = self.context.progress[step.id]
        messages = await self.opening(step, outputs, result)
        for attempt in range(1, step.max_attempts + 1):
            result.attempts = progress.attempt = attempt
            progress.status = StepStatus.RUNNING
            answer = await self.turns(step, messages, result)
            result.output = answer
            if await self.context.verification.accepted(step, answer, result):
                return
            if result.status is StepStatus.ESCALATED:
                return
            reasons = "\n- ".join(result.verdicts[-1].reasons)
            messages.append(
                ChatMessage(role=ChatRole.USER, content=f"Your answer was not accepted:\n- {reasons}\nWrite an improved final answer.")
            )
        result.status = StepStatus.FAILED
        result.error = f"verification failed after {step.max_attempts} attempts: " + "; ".join(result.verdicts[-1].reasons)

    async def opening(self, step: AgentStep, outputs: Mapping[str, str], result: StepResult) -> list[ChatMessage]:
        """The system prompt and the step's context (running its prefetch tool calls)."""
        return [
            ChatMessage(role=ChatRole.SYSTEM, content=self._system_prompt(step)),
            ChatMessage(role=ChatRole.USER, content=await self._step_context(step, outputs, result)),
        ]

    def _system_prompt(self, step: AgentStep) -> str:
        # The names the model is offered: an MCP tool's has no colons (providers refuse them).
        names = [wire_name(t) for t in step.tools if not (runs_code_blocks(step) and t == RUN_PYTHON)]
        tools = f" You may call these tools: {', '.join(names)}." if names else ""
        if runs_code_blocks(step):
            tools += " " + CODE_BLOCK_HINT
        return (
            f"You are the {step.role} in a team working toward a goal. Do only your own step.{tools} "
            f"{UNTRUSTED_NOTE} When you are done, reply with your final answer only."
        )

    async def _step_context(self, step: AgentStep, outputs: Mapping[str, str], result: StepResult) -> str:
        """Material first (dependency outputs, prefetched tool results), then the goal and the task:
        models of every size follow a task best when it comes last."""
        goal = self.context.request.goal
        parts, task = material_and_task(step.depends_on, step.instruction, goal, outputs)
        for index, invocation in enumerate(step.prefetch):
            call = declared_call(f"{step.id}-prefetch-{index}", invocation, goal, outputs)
            text = await self._tool_message_text(step, call, result, allowed={invocation.tool})
            parts.append(f"Results of {invocation.tool}:\n{text}")
        parts.append(f"Goal: {goal}\n{task}")
        return "\n\n".join(parts)

    async def turns(
        self, step: AgentStep, messages: list[ChatMessage], result: StepResult, spec: ModelSpec | None = None, label: str = ""
    ) -> str:
        """Model turns and tool calls until a final answer (`spec`: another model or temperature; `label`
        names an explore candidate in activity summaries)."""
        progress = self.context.progress[step.id]
        offered = [t for t in step.tools if t != RUN_PYTHON] if runs_code_blocks(step) else step.tools  # code comes as blocks
        schemas = [tool.schema() for tool in self.context.catalogue.offered(offered)]
        printed: dict[str, str] = {}  # program -> its stdout, for the code blocks of this loop that ran and exited 0
        for turn in range(step.max_turns):
            result.turns += 1
            progress.turn = result.turns
            progress.sync(result)
            last_turn = turn == step.max_turns - 1
            # The last turn offers no tools, so the loop always ends with an answer.
            response = await self._call_model(step, messages, [] if last_turn else schemas, result, spec, label)
            reply = response.message
            if last_turn and reply.tool_calls:
                # No tools were offered on this turn: calls the model asks for anyway are not run.
                reply = reply.model_copy(update={"tool_calls": []})
            messages.append(reply)
            if not reply.tool_calls:
                code = python_block(reply.content) if runs_code_blocks(step) else None
                if code in printed:
                    # The same program again adds nothing: what it printed is the answer (small models repeat code).
                    return printed[code]
                if code is None or last_turn:
                    return reply.content.strip()
                if quoted(code, messages[:-1]):
                    # Code copied from material (a fetched page, another step's output) is data, never the model's action.
                    messages.append(ChatMessage(role=ChatRole.USER, content=CODE_QUOTED_NOTE))
                    continue
                # The block is the model's action: one run_python call under the same gate, then its observation.
                call = ToolCallRequest(id=f"{step.id}-code-{result.turns}", name=RUN_PYTHON, arguments_json=json.dumps({"code": code}))
                text, output = await self._tool_call(step, call, result, allowed=set(step.tools))
                if output is not None and output.ok and output.sandbox is not None and output.sandbox.stdout.strip():
                    printed[code] = output.sandbox.stdout.strip()
                ran = result.tool_calls[-1].ran
                observation = f"Your code ran:\n{text}\n{CODE_RAN_NOTE}" if ran else f"Your code was not run:\n{text}\n{CODE_REFUSED_NOTE}"
                messages.append(ChatMessage(role=ChatRole.USER, content=observation))
                continue
            for call in reply.tool_calls:
                text = await self._tool_message_text(step, call, result, allowed=set(step.tools))
                messages.append(ChatMessage(role=ChatRole.TOOL, content=text, tool_call_id=call.id, name=call.name))
        return ""

    async def _call_model(
        self, step: AgentStep, messages: list[ChatMessage], tools: list[ToolSchema], result: StepResult,
        spec: ModelSpec | None, label: str,
    ) -> ModelResponse:
        within_step_limits(step, result, "model")
        spec = spec or step.model or self.context.request.models.executor
        if result.attempts > 1 and step.refine_temperature_step:
            bumped = min(2.0, spec.temperature + step.refine_temperature_step * (result.attempts - 1))
            spec = spec.model_copy(update={"temperature": bumped})
        again = f" (attempt {result.attempts})" if result.attempts > 1 else ""
        activity_id = f"{step.id}{'/' + label if label else ''}: model turn {result.turns}{again}"
        cache = cache_use(self.context.request, step)
        return await call_model(self.context.ledger, spec, messages, result, activity_id, tools=tools, cache=cache, journal=self.context.journal,
                                events=self.context.events, route=self.context.model_route)

    async def _tool_message_text(self, step: AgentStep, call: ToolCallRequest, result: StepResult, allowed: set[str]) -> str:
        return (await self._tool_call(step, call, result, allowed))[0]

    async def _tool_call(
        self, step: AgentStep, call: ToolCallRequest, result: StepResult, allowed: set[str]
    ) -> tuple[str, ToolResult | None]:
        """(the tool's output as the model sees it: untrusted, forged tags defused, or a typed error; the result)."""
        within_step_limits(step, result, "tool")
        saw_untrusted = bool(step.depends_on or result.tool_calls)  # other agents' output, or tool output
        record, output = await self.context.tools.call(step, call, allowed, saw_untrusted)
        result.tool_calls.append(record)
        if output is None:
            # A refusal is the gate's own words; a failed run's error may quote the tool or a server: data, marked so.
            marked = " untrusted=\"true\"" if record.ran else ""
            return f"<tool_error tool=\"{call.name}\"{marked}>{defuse(record.error or '')}</tool_error>", None
        note = f" truncated=\"true\" full_ref=\"{output.content_ref}\"" if output.truncated else ""
        return (
            f"<tool_output tool=\"{call.name}\" sha256=\"{output.content_sha256[:16]}\" untrusted=\"true\"{note}>\n"
            f"{defuse(output.content)}\n</tool_output>"
        ), output
