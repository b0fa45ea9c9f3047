"""Contracts for planning: a `Plan` is a typed step graph.

Steps are a discriminated union: an `agent` step runs the executor's model/tool loop; a
`tool` step is one declared tool call (no model), e.g. a playbook's publish action.
Templates `{{goal}}`, `{{goal_slug}}` and `{{steps.<id>.output}}` are filled in by the workflow.
"""

import json
import re
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from contracts.archive import ContentRef
from contracts.llm import ModelSpec, TokenUsage
from contracts.mcp import McpToolSpec
from contracts.policy import Policy
from contracts.verify import AcceptanceCheck

STEP_ID_PATTERN = r"^[a-z][a-z0-9_-]{0,39}$"
PLAYBOOK_NAME_PATTERN = r"^[a-z][a-z0-9-]{0,63}$"


class StepKind(StrEnum):
    AGENT = "agent"
    TOOL = "tool"
    SUBAGENT = "subagent"
    EXPLORE = "explore"


class ToolInvocation(BaseModel):
    """A declared tool call; `arguments_json` is a JSON object whose strings may hold templates."""

    tool: str
    arguments_json: str = "{}"


class _Step(BaseModel):
    id: str = Field(pattern=STEP_ID_PATTERN)
    role: str = Field(min_length=1, max_length=40)
    depends_on: list[str] = Field(default_factory=list)
    checks: list[AcceptanceCheck] = Field(default_factory=list)
    max_attempts: int = Field(default=2, ge=1, le=10, description="Verifier-driven attempts.")
    fallback: str | None = Field(
        default=None, description="A step that runs only if this one fails; its output then stands in for this step's."
    )
    model: ModelSpec | None = Field(
        default=None, description="This step's model instead of the goal's executor model (a subagent: its executor)."
    )
    cache: bool | None = Field(
        default=None, description="None: cached at temperature 0 only; true: always (opt in); false: never."
    )
    max_model_calls: int | None = Field(default=None, gt=0, le=1_000, description="This step's own limit (the goal's still applies).")
    max_tool_calls: int | None = Field(default=None, gt=0, le=1_000, description="This step's own limit (the goal's still applies).")


class AgentStep(_Step):
    """Executor loop: model calls and tool calls until a final answer or `max_turns`."""

    type: Literal[StepKind.AGENT] = StepKind.AGENT
    instruction: str = Field(min_length=1, max_length=8_000)
    tools: list[str] = Field(default_factory=list, description="Tools the model may call.")
    prefetch: list[ToolInvocation] = Field(
        default_factory=list, description="Tool calls run before the first model turn; results go in the context."
    )
    max_turns: int = Field(default=4, ge=1, le=50)
    full_inputs_tokens: int = Field(
        default=0, ge=0, le=250_000,
        description="Dependency outputs that are marked previews reach the model whole while their estimated tokens "
        "(3 bytes each) fit in this many, and (times the prompts that repeat them) in what is left of the goal's token "
        "budget, up to 256 KB in all; 0: previews only.",
    )
    code_blocks: bool = Field(
        default=False,
        description="With run_python among `tools`, the model runs code by replying with a ```python block (not "
        "as a function tool): it runs as a run_python call (same policy, approvals and sandbox) and its output is "
        "fed back. For models that write code better than they call tools (CodeAct); no kept `outputs` this way.",
    )
    refine_temperature_step: float = Field(
        default=0.3, ge=0.0, le=1.0,
        description="Added to the temperature on each refine attempt, so a rejected answer is not regenerated verbatim.",
    )


class OutputExtraction(BaseModel):
    """Which part of a tool's output becomes the step's output: exactly one of a JSON pointer or a regex."""

    json_pointer: str | None = Field(default=None, pattern=r"^(/[^/]*)*$", description="RFC 6901, e.g. /items/0/id.")
    regex: str | None = Field(default=None, description="Its first group (else the whole match) is the value.")

    @model_validator(mode="after")
    def _exactly_one(self) -> "OutputExtraction":
        if (self.json_pointer is None) == (self.regex is None):
            raise ValueError("set exactly one of json_pointer and regex")
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except re.error as err:
                raise ValueError(f"regex does not compile: {err}") from err
        return self


EXTRACT_OUTPUT_ACTIVITY = "extract_output"  # ExtractRequest -> ExtractedValue


class ExtractRequest(BaseModel):
    """Input of `extract_output`: a tool step's output, inline or by its content-store reference, and what to take."""

    text: str | None = None
    full: ContentRef | None = None
    extract: OutputExtraction


class ExtractedValue(BaseModel):
    """Output of `extract_output`: the field, as the step's output."""

    value: str


class ToolStep(_Step):
    """One declared tool call; its output is the tool's output (or the part `extract` names).

    With `model_fills`, one model call (constrained to a JSON schema of just those arguments) fills
    them from `fill_instruction` and the steps this one depends on; nothing else in a chain of tool
    steps involves a model. Filled arguments pass the same validation, policy and approvals."""

    type: Literal[StepKind.TOOL] = StepKind.TOOL
    invocation: ToolInvocation
    max_attempts: int = Field(default=1, ge=1, le=10)
    extract: OutputExtraction | None = None
    model_fills: list[str] = Field(default_factory=list, max_length=10, description="Argument names the model fills.")
    fill_instruction: str = Field(default="", max_length=4_000, description="What the model should fill them with.")


class SubagentStep(_Step):
    """Delegates a sub-goal to a child `GoalWorkflow` (id `<parent>/<step>`): its own plan, history, a
    budget carved out of what the parent has left, and the step role's policy scope, never wider."""

    type: Literal[StepKind.SUBAGENT] = StepKind.SUBAGENT
    goal: str = Field(min_length=1, max_length=8_000, description="The sub-goal; templates allowed.")
    playbook: str | None = Field(default=None, pattern=PLAYBOOK_NAME_PATTERN, description="None: the LLM planner.")
    budget_share: float = Field(default=0.25, gt=0.0, le=1.0, description="Share of the parent's remaining budget.")
    task_queue: str | None = Field(default=None, description="Run the child on another task queue (its own workers).")
    max_attempts: int = Field(default=1, ge=1, le=10)


class ExploreVariant(BaseModel):
    """One way to attempt an `explore` step; unset fields keep the step's own."""

    label: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,19}$")
    instruction: str | None = Field(default=None, min_length=1, max_length=8_000, description="Replaces the step's instruction.")
    role: str | None = Field(default=None, min_length=1, max_length=40)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    model: ModelSpec | None = Field(default=None, description="Replaces the executor's model for this candidate.")


class ExploreStep(_Step):
    """Parallel exploration: every variant runs as its own agent loop at the same time, each output is
    scored by the step's checks, and the best is kept (ties: the earlier variant)."""

    type: Literal[StepKind.EXPLORE] = StepKind.EXPLORE
    instruction: str = Field(min_length=1, max_length=8_000)
    tools: list[str] = Field(default_factory=list)
    max_turns: int = Field(default=4, ge=1, le=50)
    code_blocks: bool = Field(default=False, description="As an agent step's: run_python as ```python blocks.")
    full_inputs_tokens: int = Field(default=0, ge=0, le=250_000, description="As an agent step's: whole inputs within this many tokens.")
    variants: list[ExploreVariant] = Field(min_length=2, max_length=8)
    max_attempts: int = Field(default=1, ge=1, le=1, description="Exploration is the retry: one round.")

    @field_validator("variants")
    @classmethod
    def _labels_are_unique(cls, variants: list[ExploreVariant]) -> list[ExploreVariant]:
        labels = [v.label for v in variants]
        if len(set(labels)) != len(labels):
            raise ValueError(f"variant labels must be unique: {labels}")
        return variants


PlanStep = Annotated[AgentStep | ToolStep | SubagentStep | ExploreStep, Field(discriminator="type")]


class PlanSource(StrEnum):
    PLAYBOOK = "playbook"
    LLM = "llm"


class PlanAttempt(BaseModel):
    """One LLM planner attempt, kept for audit: what it produced and why it was rejected."""

    raw_output: str
    problems: list[str] = Field(default_factory=list)
    normalised: list[str] = Field(default_factory=list, description="Mechanical fixes applied (e.g. dropped bad `needs`).")


class Plan(BaseModel):
    """Output of the `plan_goal` activity."""

    goal: str
    source: PlanSource
    revision: int = Field(default=0, description="0 for the first plan; n for the n-th revision of the rest of it.")
    playbook: str | None = None
    steps: list[PlanStep] = Field(min_length=1)
    output_step: str | None = Field(default=None, description="Step whose output is the goal's output.")
    policy: Policy = Field(default_factory=Policy, description="From the playbook or the default policy file; never from a model.")
    mcp_tools: list[McpToolSpec] = Field(
        default_factory=list, description="The MCP tools the steps name, as the worker listed them: what the workflow validates against."
    )
    attempts: list[PlanAttempt] = Field(default_factory=list)
    fallback_reason: str | None = Field(
        default=None, description="Set when the planner's model produced no valid plan: `steps` is then the one-step fallback."
    )
    usage: TokenUsage = Field(default_factory=TokenUsage)
    model_calls: int = 0
    cost_usd: float = 0.0
    sandbox_task_queue: str | None = Field(
        default=None, description="Where sandboxed code runs (the planning worker's FOREMAN_SANDBOX_TASK_QUEUE); None: the goal's own queue.",
    )
    model_task_queue: str | None = Field(
        default=None, description="Where `call_model` runs (the planning worker's FOREMAN_MODEL_TASK_QUEUE); None: the goal's own queue.",
    )
    search_attributes: list[str] = Field(
        default_factory=list, description="Foreman's search attributes the namespace has (the planning worker asked): the only ones the goal upserts.",
    )


PLAN_GOAL_ACTIVITY = "plan_goal"  # PlanRequest -> Plan


class DoneStep(BaseModel):
    """A finished step the planner builds on when it revises a plan."""

    step_id: str
    role: str
    instruction: str
    output: str = Field(description="The step's output (the first 1,000 characters).")


class PlanRevision(BaseModel):
    """Asks the planner to revise the rest of a plan: what is done, what failed and why, a human's guidance."""

    number: int = Field(ge=1)
    done: list[DoneStep] = Field(default_factory=list)
    failed_step_id: str
    failure: str
    guidance: str = ""


class PlanRequest(BaseModel):
    """Input of the `plan_goal` activity."""

    goal: str
    playbook: str | None = Field(default=None, pattern=PLAYBOOK_NAME_PATTERN)
    spec: ModelSpec = Field(default_factory=ModelSpec)
    max_steps: int = Field(default=5, ge=1, le=20)
    max_repair_attempts: int = Field(default=2, ge=0, le=5)
    revision: PlanRevision | None = Field(default=None, description="Set to revise the rest of a goal's plan (LLM planner).")


class PlaybookRecall(BaseModel):
    """Long-term memory a playbook recalls before its steps run: one `recall` tool step (`id`, as `role`: policy
    applies to it like any tool call), first, whose output (entries wrapped as untrusted where they were written
    after untrusted content, each with its provenance) the consuming steps get as context."""

    id: str = Field(default="recall", pattern=STEP_ID_PATTERN)
    role: str = Field(min_length=1, max_length=40, description="Whose memories: recall is scoped per role (and namespace).")
    query: str = Field(default="{{goal}}", min_length=1, max_length=1_000, description="What to look for; templates allowed.")
    limit: int = Field(default=5, gt=0, le=20)
    for_steps: list[str] = Field(default_factory=list, description="Steps that get the memories; empty: every step of `role`.")


class Playbook(BaseModel):
    """A named, declarative step graph (JSON files under `playbooks/`)."""

    name: str = Field(pattern=PLAYBOOK_NAME_PATTERN)
    description: str = ""
    steps: list[PlanStep] = Field(min_length=1)
    output_step: str | None = None
    policy: Policy | None = Field(default=None, description="None: the default policy (playbooks/policies/default.json).")
    recall: PlaybookRecall | None = Field(default=None, description="Memories recalled first, for the steps that use them.")

    @model_validator(mode="after")
    def _recall_fits(self) -> "Playbook":
        if self.recall is None:
            return self
        ids = {s.id for s in self.steps}
        if self.recall.id in ids:
            raise ValueError(f"recall.id {self.recall.id!r} is also a step id")
        unknown = sorted(set(self.recall.for_steps) - ids)
        if unknown:
            raise ValueError(f"recall.for_steps names no such steps: {unknown}")
        return self

    def planned_steps(self) -> list[PlanStep]:
        """The steps to run: with `recall`, its tool step first and the consuming steps depending on it."""
        if self.recall is None:
            return list(self.steps)
        recall = self.recall
        arguments = json.dumps({"query": recall.query, "limit": recall.limit})
        first = ToolStep(id=recall.id, role=recall.role, invocation=ToolInvocation(tool="recall", arguments_json=arguments))
        consumers = set(recall.for_steps) or {s.id for s in self.steps if s.role == recall.role}
        return [first] + [s.model_copy(update={"depends_on": [recall.id, *s.depends_on]}) if s.id in consumers else s
                          for s in self.steps]
