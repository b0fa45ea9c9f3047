"""`plan_goal`: turn a goal into a typed `Plan`.

Two planners behind one contract: a named playbook (deterministic, declarative) or the LLM planner
(output constrained to a JSON schema, then checked by `plan_validation`; problems are fed back for a
bounded number of repair attempts, then the activity fails with a typed, non-retryable PlanInvalid).

MCP tools (`mcp:<server>:<tool>`) are listed from the worker's servers here, and the ones the plan's steps
name go into `Plan.mcp_tools`: that recorded listing is what the workflow validates calls against. With no
MCP server configured, nothing is listed and plans are what they were.
"""

from __future__ import annotations

import json
from enum import StrEnum

from pydantic import ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError

import settings
from core.plan_validation import plan_problems, tools_named
from core.relevance import ungrounded_steps
from activities.mcp import Listing, McpServers
from activities.search_attributes import registered
from activities.providers.base import complete
from contracts.errors import ErrorType
from contracts.llm import ChatMessage, ChatRole, ModelRequest, ModelRole, ModelSpec, TokenUsage
from contracts.mcp import McpToolSpec
from contracts.plan import PLAN_GOAL_ACTIVITY, AgentStep, ExploreStep, ExploreVariant, PlanRevision, PlanStep, SubagentStep, ToolInvocation, ToolStep, Plan, PlanAttempt, PlanRequest, PlanSource, Playbook
from contracts.verify import AcceptanceCheck, NonEmptyCheck, RelevanceCheck
from core.catalogue import ToolCatalogue
from core.tools import TOOLS
from core.untrusted import UNTRUSTED_NOTE, step_output
from playbooks import available_playbooks, load_default_policy, load_playbook

LLM_PLAN_ROLES = ["researcher", "analyst", "coder", "drafter", "reviewer", "publisher"]
MAX_INSTRUCTION_CHARS = 8_000  # AgentStep.instruction's limit
# A role whose work is one tool: its drafted steps get that tool only (a small model names the coder, then picks other
# tools or none; a coder's program can read the workspace itself).
ROLE_TOOLS = {"coder": "run_python"}
MAX_PLAN_BYTES = 1_000_000  # a plan (a result, or a local activity's marker) stays well under the 2 MB payload limit


def draft_schema(max_steps: int, models: list[str] | None = None, tools: list[str] | None = None) -> dict:
    """The JSON schema the LLM planner's output is constrained to (`tools`: the names it may pick; default the built-ins).

    The model never invents ids: steps are numbered in order and `needs` names earlier step numbers,
    so duplicate ids, self-references and cycles cannot be expressed at all.
    """
    return {
        "type": "object",
        "properties": {
            "steps": {
                "type": "array",
                "minItems": 1,
                "maxItems": max_steps,
                "items": {
                    "type": "object",
                    "properties": {
                        "role": {"type": "string", "enum": LLM_PLAN_ROLES},
                        # Bounded lengths keep a small model's plan inside its token budget (no cut-off JSON).
                        "instruction": {"type": "string", "minLength": 1, "maxLength": 300},
                        "needs": {"type": "array", "maxItems": 4, "items": {"type": "integer", "minimum": 1}},
                        "tools": {"type": "array", "maxItems": 3, "items": {"type": "string", "enum": tools or sorted(TOOLS)}},
                        "mode": {"type": "string", "enum": [m.value for m in StepMode]},
                        **({"model": {"type": "string", "enum": models}} if models else {}),
                    },
                    "required": ["role", "instruction", "needs", "tools"],
                },
            }
        },
        "required": ["steps"],
    }


def _planner_messages(request: PlanRequest, models: list[str], mcp_tools: list[McpToolSpec] | None = None) -> list[ChatMessage]:
    offered = [*TOOLS.values(), *(mcp_tools or [])]
    tool_lines = "\n".join(f"- {t.name} ({t.side_effect.value}): {t.description}" for t in offered)
    system = (
        "You are the planner of an agent system. " + (UNTRUSTED_NOTE + " " if request.revision else "") +
        "Split the user's goal into 1 to "
        f"{request.max_steps} steps, in order. Each step has: role (one of {', '.join(LLM_PLAN_ROLES)}), "
        "instruction (what the step must produce), needs (numbers of earlier steps whose output it uses; "
        "step 1 needs nothing), tools (only the tools it needs), and optionally mode: agent (default: do it), "
        "subagent (a sub-question big enough to plan and research on its own), explore (try it three ways "
        "and keep the best) or tool (one call of the one tool in tools, no reasoning: a step of a tool chain). "
        "A coder computes things by writing and running Python (tool run_python) and reports the result. "
        "Steps that write files come last.\n"
        + (f"Each step may name its model: one of {', '.join(models)} (pick the larger only where a step needs "
           "careful reasoning; it costs more).\n" if models else "")
        +
        f"Tools:\n{tool_lines}\nReply with the plan as JSON only."
    )
    return [ChatMessage(role=ChatRole.SYSTEM, content=system), ChatMessage(role=ChatRole.USER, content=_planner_task(request))]


def _planner_task(request: PlanRequest) -> str:
    """The goal; for a revision also what is done (outputs as untrusted data), what failed and a human's guidance."""
    revision = request.revision
    if revision is None:
        return f"Goal: {request.goal}"
    # Instructions, outputs and failure reasons were written by models and tools: data, never instructions here.
    done = "\n".join(step_output(d.step_id, f"({d.role}) {d.instruction}\n{d.output}") for d in revision.done)
    guidance = f"\nGuidance from the human who reviewed it: {revision.guidance}" if revision.guidance else ""
    return (
        f"Goal: {request.goal}\nDone so far (their outputs are available to the new steps):\n{done or '- nothing'}\n"
        f"Step {revision.failed_step_id} failed:\n{step_output('failure', revision.failure)}{guidance}\n"
        "Plan only the remaining steps, in a different way than the one that failed."
    )


def as_revision(steps: list[PlanStep], revision: PlanRevision) -> list[PlanStep]:
    """Revised steps get ids of their own (`v<n>-...`); the first ones build on every step already done."""
    prefix = f"v{revision.number}-"
    done = [d.step_id for d in revision.done]
    return [
        step.model_copy(update={
            "id": prefix + step.id,
            "depends_on": [prefix + d for d in step.depends_on] if step.depends_on else done,
        })
        for step in steps
    ]


def _step_id(role: object, number: int) -> str:
    role_part = "".join(ch for ch in str(role).lower() if ch.isalpha())[:20] or "step"
    return f"{role_part}-{number}"


def parse_draft(raw: str, max_steps: int, catalogue: dict[str, ModelSpec] | None = None) -> tuple[list[PlanStep], list[str], list[str]]:
    """(steps, problems, normalisations) from the model's JSON; ids are assigned here.

    `needs` that do not name an earlier step are dropped (noted, not fatal); a later step that is left
    needing nothing follows the step before it, so the plan stays a chain unless the model says otherwise.
    """
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as err:
        return [], [f"the reply is not valid JSON ({err.msg})"], []
    raw_steps = data.get("steps") if isinstance(data, dict) else None
    if not isinstance(raw_steps, list) or not raw_steps:
        return [], ["the reply has no non-empty 'steps' list"], []
    if len(raw_steps) > max_steps:
        return [], [f"the plan has {len(raw_steps)} steps; at most {max_steps} are allowed"], []
    ids = [_step_id(item.get("role") if isinstance(item, dict) else None, n) for n, item in enumerate(raw_steps, 1)]
    steps: list[PlanStep] = []
    problems: list[str] = []
    notes: list[str] = []
    for number, item in enumerate(raw_steps, 1):
        if not isinstance(item, dict):
            problems.append(f"step {number} is not an object")
            continue
        needs, tools = item.get("needs") or [], item.get("tools") or []
        if not isinstance(needs, list) or not isinstance(tools, list):
            problems.append(f"step {number}: needs and tools must be lists")
            continue
        valid = sorted({n for n in needs if isinstance(n, int) and not isinstance(n, bool) and 1 <= n < number})
        if len(valid) != len(needs):
            notes.append(f"step {number}: dropped needs that are not earlier steps: {[n for n in needs if n not in valid]}")
        if not valid and number > 1:
            valid = [number - 1]
        defining = ROLE_TOOLS.get(str(item.get("role")))
        if defining and tools != [defining] and item.get("mode") in (None, StepMode.AGENT, StepMode.EXPLORE):
            notes.append(f"step {number}: a {item.get('role')} step uses {defining} only (not {tools})")
            tools = [defining]
        try:
            steps.append(
                drafted_step(
                    item.get("mode"),
                    id=ids[number - 1],
                    role=str(item.get("role", "")),
                    instruction=str(item.get("instruction", "")).strip() or " ",
                    depends_on=[ids[n - 1] for n in valid],
                    tools=[str(t) for t in tools],
                    model=(catalogue or {}).get(str(item.get("model"))),
                )
            )
        except ValidationError as err:
            problems.append(f"step {number}: {err.errors()[0]['msg']}")
    return steps, problems, notes


def default_output_step(steps: list[PlanStep]) -> str:
    """The last step that runs in the normal course (a fallback step runs only when another fails)."""
    fallbacks = {s.fallback for s in steps if s.fallback}
    return next(s.id for s in reversed(steps) if s.id not in fallbacks)


def requested_playbook(request: PlanRequest) -> Playbook:
    """The playbook the request names; a typed, non-retryable error when it is unknown or malformed."""
    assert request.playbook is not None
    try:
        playbook = load_playbook(request.playbook)
    except ValidationError as err:
        raise ApplicationError(
            f"playbook {request.playbook!r} is malformed: {err.errors()[0]['loc']}: {err.errors()[0]['msg']}",
            type=ErrorType.PLAN_INVALID.value,
            non_retryable=True,
        ) from err
    except ValueError as err:  # a `tests` check's script that cannot be read
        raise ApplicationError(str(err), type=ErrorType.PLAN_INVALID.value, non_retryable=True) from err
    if playbook is None:
        raise ApplicationError(
            f"unknown playbook {request.playbook!r}; available: {', '.join(available_playbooks())}",
            type=ErrorType.UNKNOWN_PLAYBOOK.value,
            non_retryable=True,
        )
    return playbook


def plan_from_playbook(request: PlanRequest, playbook: Playbook | None = None, mcp: Listing | None = None) -> Plan:
    """The playbook's plan; `mcp`: the MCP tools its steps name, as listed (an unlisted one is a problem)."""
    playbook = playbook or requested_playbook(request)
    mcp = mcp or Listing()
    steps = playbook.planned_steps()
    problems = mcp.problems + plan_problems(steps, ToolCatalogue(mcp.specs).effects(), output_step=playbook.output_step)
    if problems:
        raise ApplicationError(
            f"playbook {playbook.name!r} is invalid: " + "; ".join(problems),
            type=ErrorType.PLAN_INVALID.value,
            non_retryable=True,
        )
    return Plan(
        goal=request.goal,
        source=PlanSource.PLAYBOOK,
        playbook=playbook.name,
        steps=steps,
        output_step=playbook.output_step or default_output_step(steps),
        policy=playbook.policy or load_default_policy(),
        mcp_tools=mcp.specs,
    )


async def plan_with_model(request: PlanRequest, mcp_tools: list[McpToolSpec] | None = None) -> Plan:
    """`mcp_tools`: MCP tools the planner's model may give steps (beside the built-ins)."""
    mcp_tools = mcp_tools or []
    model = settings.resolve_model(ModelRole.PLANNER, request.spec)
    catalogue = settings.model_catalogue()
    offered = sorted(TOOLS) + [s.name for s in mcp_tools] if mcp_tools else None
    schema_json = json.dumps(draft_schema(request.max_steps, sorted(catalogue), offered))
    messages = _planner_messages(request, sorted(catalogue), mcp_tools)
    attempts: list[PlanAttempt] = []
    usage = TokenUsage()
    cost = 0.0
    for _ in range(request.max_repair_attempts + 1):
        response = await complete(
            ModelRequest(role=ModelRole.PLANNER, spec=request.spec, messages=messages, response_schema_json=schema_json),
            model,
        )
        usage.prompt_tokens += response.usage.prompt_tokens
        usage.completion_tokens += response.usage.completion_tokens
        cost += response.cost_usd
        raw = response.message.content
        steps, problems, notes = parse_draft(raw, request.max_steps, catalogue)
        if steps and not problems:
            problems = plan_problems(
                steps, ToolCatalogue(mcp_tools).effects(), allowed_roles=set(LLM_PLAN_ROLES), effects_last=True
            ) or ungrounded_steps(request.goal, steps)
        attempts.append(PlanAttempt(raw_output=raw, problems=problems, normalised=notes))
        if not problems:
            named = set(tools_named(steps))
            return llm_plan(request, steps, attempts, usage, cost, mcp_tools=[s for s in mcp_tools if s.name in named])
        activity.logger.info("plan attempt %d rejected: %s", len(attempts), problems)
        messages = messages + [
            ChatMessage(role=ChatRole.ASSISTANT, content=raw),
            ChatMessage(
                role=ChatRole.USER,
                content="That plan has problems:\n- " + "\n- ".join(problems) + "\nReply with a corrected plan as JSON only.",
            ),
        ]
    # A small model may never produce a valid plan: answer the goal in one step rather than fail it, and say so.
    reason = f"no valid plan in {len(attempts)} attempts; last problems: " + "; ".join(attempts[-1].problems)
    activity.logger.warning("planner falls back to a one-step plan: %s", reason)
    return llm_plan(request, fallback_steps(request.goal), attempts, usage, cost, fallback_reason=reason)


def llm_plan(
    request: PlanRequest, steps: list[PlanStep], attempts: list[PlanAttempt], usage: TokenUsage, cost: float,
    fallback_reason: str | None = None, mcp_tools: list[McpToolSpec] | None = None,
) -> Plan:
    """An LLM-made plan (or its fallback) under the default policy, with every attempt kept for audit.
    (A revision's policy is never used: the goal keeps the policy it started with.)"""
    if request.revision is not None:
        steps = as_revision(steps, request.revision)
    return Plan(
        goal=request.goal, source=PlanSource.LLM, revision=request.revision.number if request.revision else 0,
        steps=steps, output_step=steps[-1].id, policy=load_default_policy(), attempts=attempts,
        fallback_reason=fallback_reason, usage=usage, model_calls=len(attempts), cost_usd=cost, mcp_tools=mcp_tools or [],
    )


class StepMode(StrEnum):
    """How a drafted step runs (the planner model picks; agent by default)."""

    AGENT = "agent"
    SUBAGENT = "subagent"
    EXPLORE = "explore"
    TOOL = "tool"


# An explored step tries three temperatures; the step's checks score them.
EXPLORE_VARIANTS = [ExploreVariant(label="steady", temperature=0.0), ExploreVariant(label="varied", temperature=0.7),
                    ExploreVariant(label="bold", temperature=1.2)]


def drafted_step(
    mode: object, *, id: str, role: str, instruction: str, depends_on: list[str], tools: list[str], model: ModelSpec | None = None
) -> PlanStep:
    """The typed step for one drafted item; an unknown mode (the schema allows no other), or a tool step that
    does not name exactly one known tool, is an agent step."""
    if mode == StepMode.SUBAGENT:
        # The sub-goal is planned by the child's own planner; its budget share and scope come from this goal.
        return SubagentStep(id=id, role=role, goal=instruction, depends_on=depends_on, checks=llm_step_checks(), model=model)
    if mode == StepMode.TOOL and len(tools) == 1 and tools[0] in TOOLS:
        # A chain link: the tool's required arguments are filled by one constrained model call from the instruction.
        fields = TOOLS[tools[0]].args_model.model_fields
        fills = [name for name, field in fields.items() if field.is_required()] or list(fields)[:1]
        return ToolStep(id=id, role=role, depends_on=depends_on, invocation=ToolInvocation(tool=tools[0]),
                        model_fills=fills, fill_instruction=instruction, checks=[NonEmptyCheck()], model=model)
    if mode == StepMode.EXPLORE:
        return ExploreStep(id=id, role=role, instruction=instruction, depends_on=depends_on, tools=tools,
                           variants=EXPLORE_VARIANTS, checks=llm_step_checks(), model=model, code_blocks=True)
    # A drafted step runs code as ```python blocks: any model writes those, few call run_python reliably.
    return AgentStep(id=id, role=role, instruction=instruction, depends_on=depends_on, tools=tools, checks=llm_step_checks(),
                     model=model, code_blocks=True)


def llm_step_checks() -> list[AcceptanceCheck]:
    """Every LLM-planned step must produce something that addresses its instruction and the goal."""
    return [NonEmptyCheck(), RelevanceCheck()]


def fallback_steps(goal: str) -> list[AgentStep]:
    """The plan when planning fails: one analyst answers the goal directly (no tools, nothing to gate)."""
    instruction = f"Answer this goal directly and completely: {goal}"[:MAX_INSTRUCTION_CHARS]
    return [AgentStep(id="analyst-1", role="analyst", instruction=instruction, checks=llm_step_checks())]


class Planner:
    """`plan_goal`, bound to the worker's MCP servers (whose tools playbooks may name and the LLM planner may offer)."""

    def __init__(self, mcp: McpServers | None = None) -> None:
        self._mcp = mcp

    @activity.defn(name=PLAN_GOAL_ACTIVITY)
    async def plan_goal(self, request: PlanRequest) -> Plan:
        """Plan a goal from its playbook, or with the planner model when no playbook is named."""
        if request.playbook and request.revision is None:
            playbook = requested_playbook(request)
            named = tools_named(playbook.planned_steps())
            listing = await self._mcp.specs(named) if self._mcp is not None else Listing()
            plan = plan_from_playbook(request, playbook, listing)
        else:
            plan = await plan_with_model(request, await self._mcp.every_spec() if self._mcp is not None else [])
        # Stamped here, in the activity's result: the workflow routes code to the sandbox workers and model calls to the model
        # workers from its history, never from env; and upserts only the search attributes this answer names (the workflow
        # cannot ask the server itself).
        plan = plan.model_copy(update={
            "sandbox_task_queue": settings.sandbox_task_queue(), "model_task_queue": settings.model_task_queue(),
            "search_attributes": await _search_attributes(),
        })
        size = len(plan.model_dump_json())
        if size > MAX_PLAN_BYTES:  # a marker or result over the server's limit would fail the whole run, not planning
            raise ApplicationError(f"the plan is {size} bytes; plans are limited to {MAX_PLAN_BYTES} bytes (payload limits)",
                                   type=ErrorType.PLAN_INVALID.value, non_retryable=True)
        return plan


async def _search_attributes() -> list[str]:
    """Foreman's search attributes registered in the goal's namespace (none outside a worker, e.g. ActivityEnvironment)."""
    try:
        client = activity.client()
    except RuntimeError:
        return []
    return await registered(client, activity.info().namespace)


plan_goal = Planner().plan_goal  # without MCP servers: for tests and tools that plan outside a worker
