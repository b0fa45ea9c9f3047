"""Plan rules (`plan_validation`) and the planner's pure parts (`parse_draft`, `draft_schema`,
`plan_from_playbook`), run directly: no Temporal server, no model.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from pydantic import ValidationError
from temporalio.exceptions import ApplicationError

from core.plan_validation import find_cycle, plan_problems
from activities.planner import (
    LLM_PLAN_ROLES, MAX_PLAN_BYTES, default_output_step, draft_schema, parse_draft, plan_from_playbook, plan_goal,
)
from core.tools import TOOLS, tool_effects
from contracts.errors import ErrorType
from contracts.llm import ModelSpec, Provider
from contracts.plan import AgentStep, ExploreStep, Plan, PlanRequest, PlanSource, SubagentStep, ToolInvocation, ToolStep
from contracts.tools import SideEffect
from contracts.verify import NonEmptyCheck, RelevanceCheck
from core.relevance import ungrounded_steps
from playbooks import load_playbook
from temporalio.testing import ActivityEnvironment
from tests.llama_server import Reply, ScriptedServer

EFFECTS = {
    "search_corpus": SideEffect.READ,
    "read_file": SideEffect.READ,
    "write_file": SideEffect.WRITE,
    "drop_table": SideEffect.DESTRUCTIVE,
}


def agent(
    sid: str,
    *deps: str,
    tools: tuple[str, ...] = (),
    instruction: str = "do the thing",
    role: str = "researcher",
    prefetch: tuple[ToolInvocation, ...] = (),
    fallback: str | None = None,
) -> AgentStep:
    return AgentStep(
        id=sid, role=role, depends_on=list(deps), tools=list(tools), instruction=instruction, prefetch=list(prefetch),
        fallback=fallback,
    )


def tool_step(sid: str, tool: str, *deps: str, arguments_json: str = "{}") -> ToolStep:
    return ToolStep(
        id=sid, role="publisher", depends_on=list(deps), invocation=ToolInvocation(tool=tool, arguments_json=arguments_json)
    )


def write_playbook(folder: Path, playbook: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{playbook['name']}.json").write_text(json.dumps(playbook), encoding="utf-8")


def only(problems: list[str], needle: str) -> str:
    """The single problem containing `needle`."""
    matching = [p for p in problems if needle in p]
    assert len(matching) == 1, problems
    return matching[0]


# --- find_cycle -------------------------------------------------------------------------------


def test_find_cycle_none_for_dag_in_any_order() -> None:
    # A diamond, listed in reverse topological order: order of declaration must not matter.
    steps = [agent("d", "b", "c"), agent("c", "a"), agent("b", "a"), agent("a")]
    assert find_cycle(steps) is None


def test_find_cycle_two_cycle() -> None:
    assert find_cycle([agent("a", "b"), agent("b", "a")]) == ["a", "b"]


def test_find_cycle_three_cycle_sorted() -> None:
    assert find_cycle([agent("c", "b"), agent("a", "c"), agent("b", "a")]) == ["a", "b", "c"]


def test_find_cycle_includes_steps_behind_cycle_not_before() -> None:
    steps = [agent("root"), agent("a", "root", "b"), agent("b", "a"), agent("after", "b")]
    assert find_cycle(steps) == ["a", "after", "b"]


def test_find_cycle_ignores_self_dependency() -> None:
    # A self-dependency is its own problem in plan_problems, not a cycle.
    assert find_cycle([agent("a", "a"), agent("b", "a")]) is None


# --- plan_problems ----------------------------------------------------------------------------


def test_valid_plan_has_no_problems() -> None:
    steps = [
        agent("research", tools=("search_corpus",)),
        agent("draft", "research", instruction="Use {{steps.research.output}} for {{goal}}"),
        tool_step(
            "publish",
            "write_file",
            "draft",
            arguments_json='{"path": "b/{{goal_slug}}.md", "content": "{{steps.draft.output}}"}',
        ),
    ]
    assert plan_problems(steps, EFFECTS, output_step="draft", allowed_roles={"researcher", "publisher"}, effects_last=True) == []


def test_duplicate_id() -> None:
    problems = plan_problems([agent("a"), agent("b"), agent("a")], EFFECTS)
    assert "'a'" in only(problems, "used twice")


def test_unknown_dependency() -> None:
    problems = plan_problems([agent("a"), agent("b", "a", "ghost")], EFFECTS)
    assert problems == ["step 'b' depends on unknown step 'ghost'"]


def test_forward_dependency_is_not_unknown() -> None:
    # Dependencies may name steps declared later; only missing ones are unknown.
    assert plan_problems([agent("b", "a"), agent("a")], EFFECTS) == []


def test_self_dependency_reported_once_and_not_as_cycle() -> None:
    problems = plan_problems([agent("a", "a")], EFFECTS)
    assert problems == ["step 'a' depends on itself"]


@pytest.mark.parametrize(
    "steps, members",
    [
        ([agent("a", "b"), agent("b", "a")], "['a', 'b']"),
        ([agent("a", "c"), agent("b", "a"), agent("c", "b")], "['a', 'b', 'c']"),
    ],
    ids=["2-cycle", "3-cycle"],
)
def test_cycles(steps: list[AgentStep], members: str) -> None:
    problems = plan_problems(steps, EFFECTS)
    assert problems == [f"dependencies form a cycle among {members}"]


@pytest.mark.parametrize(
    "step, tool",
    [
        (agent("a", tools=("search_corpus", "teleport")), "teleport"),
        (agent("a", prefetch=(ToolInvocation(tool="oracle"),)), "oracle"),
        (tool_step("a", "launch_rockets"), "launch_rockets"),
    ],
    ids=["tools", "prefetch", "tool-step"],
)
def test_unknown_tool(step: AgentStep | ToolStep, tool: str) -> None:
    assert plan_problems([step], EFFECTS) == [f"step 'a' uses unknown tool {tool!r}"]


@pytest.mark.parametrize(
    "step",
    [
        agent("b", instruction="Summarise {{ steps.a.output }}"),
        agent("b", prefetch=(ToolInvocation(tool="read_file", arguments_json='{"path": "{{steps.a.output}}"}'),)),
        tool_step("b", "write_file", arguments_json='{"path": "x", "content": "{{steps.a.output}}"}'),
    ],
    ids=["instruction", "prefetch", "tool-step"],
)
def test_template_reference_without_dependency(step: AgentStep | ToolStep) -> None:
    problems = plan_problems([agent("a"), step], EFFECTS)
    assert problems == ["step 'b' uses the output of 'a' without depending on it"]
    step.depends_on = ["a"]
    assert plan_problems([agent("a"), step], EFFECTS) == []


def test_template_reference_must_be_a_direct_dependency() -> None:
    steps = [agent("a"), agent("b", "a"), agent("c", "b", instruction="{{steps.a.output}}")]
    assert plan_problems(steps, EFFECTS) == ["step 'c' uses the output of 'a' without depending on it"]


def test_template_reference_to_missing_step() -> None:
    problems = plan_problems([agent("a", instruction="{{steps.ghost.output}}")], EFFECTS)
    assert problems == ["step 'a' uses the output of 'ghost' without depending on it"]


def test_goal_placeholders_need_no_dependency() -> None:
    assert plan_problems([agent("a", instruction="{{goal}} -> {{goal_slug}}")], EFFECTS) == []


def test_roles_outside_allowed() -> None:
    steps = [agent("a", role="researcher"), agent("b", "a", role="wizard")]
    problems = plan_problems(steps, EFFECTS, allowed_roles={"researcher", "drafter"})
    assert problems == ["step 'b': role 'wizard' is not one of ['drafter', 'researcher']"]
    assert plan_problems(steps, EFFECTS) == []  # no restriction without allowed_roles


def test_blank_instruction() -> None:
    assert plan_problems([agent("a", instruction="  \n ")], EFFECTS) == ["step 'a' has an empty instruction"]


@pytest.mark.parametrize(
    "acting",
    [
        agent("act", tools=("write_file",)),
        agent("act", prefetch=(ToolInvocation(tool="write_file"),)),
        agent("act", tools=("drop_table",)),
        tool_step("act", "write_file"),
    ],
    ids=["tools", "prefetch", "destructive", "tool-step"],
)
def test_effects_last(acting: AgentStep | ToolStep) -> None:
    with_dependent = [acting, agent("after", "act")]
    problem = only(plan_problems(with_dependent, EFFECTS, effects_last=True), "actions must come last")
    assert "'act'" in problem and "['after']" in problem
    assert plan_problems(with_dependent, EFFECTS) == []  # only enforced when asked
    assert plan_problems([agent("before"), acting.model_copy(update={"depends_on": ["before"]})], EFFECTS, effects_last=True) == []


def test_effects_last_ignores_reads_and_unknown_tools() -> None:
    steps = [agent("a", tools=("search_corpus", "read_file")), agent("b", "a")]
    assert plan_problems(steps, EFFECTS, effects_last=True) == []
    # An unknown tool is reported as unknown, not also as an action.
    problems = plan_problems([agent("a", tools=("nope",)), agent("b", "a")], EFFECTS, effects_last=True)
    assert problems == ["step 'a' uses unknown tool 'nope'"]


def test_output_step() -> None:
    steps = [agent("a"), agent("b", "a")]
    assert plan_problems(steps, EFFECTS, output_step="b") == []
    assert plan_problems(steps, EFFECTS, output_step="c") == ["output_step 'c' is not a step"]


def test_all_problems_reported_together() -> None:
    steps = [agent("a", "ghost", tools=("nope",)), agent("a", "a", role="wizard")]
    problems = plan_problems(steps, EFFECTS, allowed_roles={"researcher"}, output_step="zzz")
    for needle in ("used twice", "unknown step 'ghost'", "unknown tool 'nope'", "depends on itself", "'wizard'", "output_step"):
        only(problems, needle)


# --- draft_schema ------------------------------------------------------------------------------


def test_draft_schema_shape() -> None:
    schema = draft_schema(3)
    Draft202012Validator.check_schema(schema)
    steps = schema["properties"]["steps"]
    assert (steps["minItems"], steps["maxItems"]) == (1, 3)
    item = steps["items"]
    assert item["properties"]["role"]["enum"] == LLM_PLAN_ROLES
    assert item["properties"]["tools"]["items"]["enum"] == sorted(TOOLS)
    assert set(item["required"]) == {"role", "instruction", "needs", "tools"}
    assert "id" not in item["properties"]  # the planner numbers steps; the model cannot clash ids


def test_draft_schema_accepts_good_and_rejects_bad_drafts() -> None:
    validator = Draft202012Validator(draft_schema(2))
    good = {"role": "researcher", "instruction": "x", "needs": [], "tools": ["search_corpus"]}
    assert validator.is_valid({"steps": [good]})
    assert not validator.is_valid({"steps": [good, good, good]})  # too many
    assert not validator.is_valid({"steps": []})
    assert not validator.is_valid({"steps": [{**good, "tools": ["teleport"]}]})
    assert not validator.is_valid({"steps": [{**good, "role": "wizard"}]})
    assert not validator.is_valid({"steps": [{**good, "needs": [0]}]})
    assert not validator.is_valid({"steps": [{**good, "instruction": "x" * 301}]})


# --- parse_draft ------------------------------------------------------------------------------


def draft(*steps: object) -> str:
    return json.dumps({"steps": list(steps)})


def test_parse_draft_numbers_steps_and_maps_needs() -> None:
    raw = draft(
        {"role": "researcher", "instruction": " find ", "needs": [], "tools": ["search_corpus"]},
        {"role": "analyst", "instruction": "compare", "needs": [1], "tools": ["calculate"]},
        {"role": "drafter", "instruction": "write", "needs": [1, 2], "tools": []},
    )
    steps, problems, notes = parse_draft(raw, 5)
    assert problems == [] and notes == []
    assert [s.id for s in steps] == ["researcher-1", "analyst-2", "drafter-3"]
    assert steps[1].depends_on == ["researcher-1"] and steps[2].depends_on == ["researcher-1", "analyst-2"]
    assert steps[0].instruction == "find" and steps[0].tools == ["search_corpus"]
    assert all(s.checks == [NonEmptyCheck(), RelevanceCheck()] for s in steps)  # relevance by default on LLM steps
    assert plan_problems(steps, tool_effects(), allowed_roles=set(LLM_PLAN_ROLES), effects_last=True) == []


def test_parse_draft_drops_needs_that_are_not_earlier_steps_and_chains() -> None:
    raw = draft(
        {"role": "researcher", "instruction": "a", "needs": [1, 2, 3, 4]},
        {"role": "drafter", "instruction": "b", "needs": [2, 7, True, "1"]},
    )
    steps, problems, notes = parse_draft(raw, 5)
    assert problems == []
    assert steps[0].depends_on == [] and steps[1].depends_on == ["researcher-1"]  # falls back to the step before
    assert notes == [
        "step 1: dropped needs that are not earlier steps: [1, 2, 3, 4]",
        "step 2: dropped needs that are not earlier steps: [2, 7, True, '1']",
    ]


def test_parse_draft_missing_fields_get_defaults() -> None:
    steps, problems, _ = parse_draft(draft({"role": "researcher", "instruction": "x"}, {"role": "drafter"}), 5)
    assert problems == []
    assert [s.id for s in steps] == ["researcher-1", "drafter-2"]
    assert steps[0].depends_on == [] and steps[0].tools == []
    # A blank instruction survives parsing so that plan_problems can name it for repair.
    assert plan_problems(steps, tool_effects()) == ["step 'drafter-2' has an empty instruction"]


@pytest.mark.parametrize(
    "raw, problem",
    [
        ("not json at all", "the reply is not valid JSON"),
        ('{"steps": [', "the reply is not valid JSON"),
        ("{}", "the reply has no non-empty 'steps' list"),
        ('{"steps": []}', "the reply has no non-empty 'steps' list"),
        ('{"steps": {"role": "a"}}', "the reply has no non-empty 'steps' list"),
        ('[{"role": "a"}]', "the reply has no non-empty 'steps' list"),
        ('"steps"', "the reply has no non-empty 'steps' list"),
    ],
)
def test_parse_draft_rejects_bad_replies(raw: str, problem: str) -> None:
    steps, problems, _ = parse_draft(raw, 5)
    assert steps == []
    assert len(problems) == 1 and problems[0].startswith(problem), problems


def test_parse_draft_too_many_steps() -> None:
    item = {"role": "researcher", "instruction": "x"}
    steps, problems, _ = parse_draft(draft(*[item] * 4), 3)
    assert steps == []
    assert problems == ["the plan has 4 steps; at most 3 are allowed"]
    assert parse_draft(draft(*[item] * 3), 3)[1] == []


def test_parse_draft_non_object_items_are_problems_others_kept() -> None:
    good = {"role": "researcher", "instruction": "x"}
    steps, problems, _ = parse_draft(draft(good, "just a string", 7, None), 5)
    assert [s.id for s in steps] == ["researcher-1"]
    assert problems == ["step 2 is not an object", "step 3 is not an object", "step 4 is not an object"]


def test_parse_draft_field_errors_are_problems() -> None:
    steps, problems, _ = parse_draft(draft({"instruction": "x"}, {"role": "r" * 41, "instruction": "x"}), 5)
    assert steps == []
    assert [p.split(":")[0] for p in problems] == ["step 1", "step 2"]


def test_parse_draft_string_instead_of_list() -> None:
    raw = draft(
        {"role": "researcher", "instruction": "x"},
        {"role": "drafter", "instruction": "y", "needs": "1", "tools": "read_file"},
    )
    steps, problems, _ = parse_draft(raw, 5)
    assert problems == ["step 2: needs and tools must be lists"] and len(steps) == 1


# --- plan_from_playbook -----------------------------------------------------------------------


def test_builtin_research_brief_is_valid() -> None:
    plan = plan_from_playbook(PlanRequest(goal="How do retries work?", playbook="research-brief"))
    assert plan.source is PlanSource.PLAYBOOK
    assert plan.playbook == "research-brief"
    assert plan.goal == "How do retries work?"
    assert [s.id for s in plan.steps] == ["research", "draft", "publish"]
    assert plan.output_step == "draft"
    # It would pass even the stricter rules applied to LLM plans (publishing is last).
    assert plan_problems(plan.steps, tool_effects(), output_step=plan.output_step, effects_last=True) == []


def test_unknown_playbook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOREMAN_PLAYBOOKS_DIR", str(tmp_path))
    write_playbook(tmp_path, {"name": "mine", "steps": [{"type": "agent", "id": "a", "role": "r", "instruction": "x"}]})
    with pytest.raises(ApplicationError) as info:
        plan_from_playbook(PlanRequest(goal="g", playbook="no-such-playbook"))
    assert info.value.type == ErrorType.UNKNOWN_PLAYBOOK
    assert info.value.non_retryable
    assert "'no-such-playbook'" in info.value.message
    assert "available: compute, mine, research-brief" in info.value.message


async def test_a_plan_over_the_payload_limit_is_refused_as_invalid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A playbook plan travels as a local activity's marker: one over the server's limit would fail the whole run, so
    the planner refuses it first, typed (the goal then fails at planning, with the reason)."""
    monkeypatch.setenv("FOREMAN_PLAYBOOKS_DIR", str(tmp_path))
    steps = [{"type": "agent", "id": f"s{i}", "role": "analyst", "instruction": "x" * 8_000} for i in range(140)]
    write_playbook(tmp_path, {"name": "huge", "steps": steps})
    with pytest.raises(ApplicationError) as info:
        await ActivityEnvironment().run(plan_goal, PlanRequest(goal="g", playbook="huge"))
    assert info.value.type == ErrorType.PLAN_INVALID and info.value.non_retryable
    assert f"limited to {MAX_PLAN_BYTES} bytes" in info.value.message


def test_user_playbook_found_and_searched_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOREMAN_PLAYBOOKS_DIR", str(tmp_path))
    steps = [
        {"type": "agent", "id": "think", "role": "analyst", "instruction": "Think about {{goal}}"},
        {"type": "agent", "id": "say", "role": "drafter", "depends_on": ["think"], "instruction": "{{steps.think.output}}"},
    ]
    write_playbook(tmp_path, {"name": "two-step", "steps": steps})
    plan = plan_from_playbook(PlanRequest(goal="g", playbook="two-step"))
    assert [s.id for s in plan.steps] == ["think", "say"]
    assert plan.output_step == "say"  # defaults to the last step
    # A user playbook with a built-in's name shadows the built-in.
    write_playbook(tmp_path, {"name": "research-brief", "steps": steps[:1]})
    assert [s.id for s in plan_from_playbook(PlanRequest(goal="g", playbook="research-brief")).steps] == ["think"]


def test_invalid_user_playbook_is_plan_invalid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOREMAN_PLAYBOOKS_DIR", str(tmp_path))
    steps = [
        {"type": "agent", "id": "a", "role": "r", "depends_on": ["b"], "instruction": "x"},
        {"type": "agent", "id": "b", "role": "r", "depends_on": ["a"], "instruction": "y", "tools": ["teleport"]},
    ]
    write_playbook(tmp_path, {"name": "loop", "steps": steps})
    with pytest.raises(ApplicationError) as info:
        plan_from_playbook(PlanRequest(goal="g", playbook="loop"))
    assert info.value.type == ErrorType.PLAN_INVALID
    assert info.value.non_retryable
    assert "'loop'" in info.value.message
    assert "cycle among ['a', 'b']" in info.value.message
    assert "unknown tool 'teleport'" in info.value.message


def test_malformed_user_playbook_is_plan_invalid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOREMAN_PLAYBOOKS_DIR", str(tmp_path))
    (tmp_path / "broken.json").write_text('{"name": "broken", "steps": [{"type": "agent", "id": "Bad Id"}]}')
    with pytest.raises(ApplicationError) as info:
        plan_from_playbook(PlanRequest(goal="g", playbook="broken"))
    assert info.value.type == ErrorType.PLAN_INVALID
    assert info.value.non_retryable


def test_playbook_name_cannot_escape_playbook_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOREMAN_PLAYBOOKS_DIR", str(tmp_path / "playbooks"))
    (tmp_path / "playbooks").mkdir()
    write_playbook(tmp_path / "elsewhere", {"name": "evil", "steps": [{"type": "agent", "id": "a", "role": "r", "instruction": "x"}]})
    with pytest.raises(ValidationError):  # the contract refuses a name that is a path
        PlanRequest(goal="g", playbook="../elsewhere/evil")
    assert load_playbook("../elsewhere/evil") is None  # and so does the loader


@pytest.mark.parametrize("arguments, reason", [("{not json", "not JSON"), ("[1]", "not a JSON object"), ('"x"', "not a JSON object")])
def test_declared_arguments_must_be_a_json_object(arguments: str, reason: str) -> None:
    step = ToolStep(id="t", role="publisher", invocation=ToolInvocation(tool="write_file", arguments_json=arguments))
    (problem,) = plan_problems([step], tool_effects())
    assert problem.startswith("step 't': arguments for 'write_file' are ") and reason in problem


# --- grounding: a plan must address the goal ---------------------------------------------------

OFF_TOPIC = "Write a function that takes a list of integers and returns the sum of the squares"
RETRIES_GOAL = "Compare retries and idempotency for tool calls"


def test_the_off_topic_plan_is_ungrounded() -> None:
    (problem,) = ungrounded_steps(RETRIES_GOAL, [agent("a", instruction=OFF_TOPIC)])
    assert problem.startswith("step 'a' does not address the goal") and "idemp" in problem


def test_steps_trace_to_the_goal_directly_or_through_what_they_use() -> None:
    steps = [agent("research", instruction="Find how retries interact with idempotency keys"),
             agent("review", "research", instruction="Review the findings about keys for gaps")]
    assert ungrounded_steps(RETRIES_GOAL, steps) == []
    assert len(ungrounded_steps(RETRIES_GOAL, [*steps, agent("poem", "review", instruction="Write a poem about autumn")])) == 1
    assert ungrounded_steps("?!", [agent("a", instruction=OFF_TOPIC)]) == []  # nothing to check against


def draft_reply(instruction: str) -> Reply:
    return draft_reply_text(json.dumps({"steps": [{"role": "analyst", "instruction": instruction, "needs": [], "tools": []}]}))


async def plan_against(replies: list[str]) -> tuple[Plan, list]:
    script = iter(replies)
    with ScriptedServer(lambda _: draft_reply(next(script))) as server:
        spec = ModelSpec(provider=Provider.OPENAI, model="planner", base_url=server.base_url)
        plan = await ActivityEnvironment().run(plan_goal, PlanRequest(goal=RETRIES_GOAL, spec=spec))
        return plan, server.requests


async def test_an_off_topic_plan_is_sent_back_for_repair() -> None:
    plan, requests = await plan_against([OFF_TOPIC, "Compare retries with idempotency for tool calls, with examples"])
    assert [bool(a.problems) for a in plan.attempts] == [True, False] and plan.fallback_reason is None
    assert "does not address the goal" in plan.attempts[0].problems[0]
    assert "does not address the goal" in requests[1].body["messages"][-1]["content"]  # the repair prompt says why
    assert [c.type.value for c in plan.steps[0].checks] == ["non_empty", "relevance"]


async def test_a_plan_that_never_addresses_the_goal_falls_back_to_answering_it() -> None:
    plan, requests = await plan_against([OFF_TOPIC] * 3)
    assert len(requests) == 3 and plan.source is PlanSource.LLM
    assert plan.fallback_reason and "does not address the goal" in plan.fallback_reason
    (step,) = plan.steps
    assert step.role == "analyst" and not step.tools and RETRIES_GOAL in step.instruction
    assert ungrounded_steps(RETRIES_GOAL, plan.steps) == []


def test_explore_steps_need_checks_and_distinct_labels() -> None:
    variants = [{"label": "a"}, {"label": "b", "instruction": "Use {{steps.ghost.output}}"}]
    step = ExploreStep(id="pick", role="drafter", instruction="Draft it.", variants=variants)
    problems = plan_problems([step], EFFECTS)
    assert "step 'pick' explores without checks: nothing would score its candidates" in problems
    assert "step 'pick' uses the output of 'ghost' without depending on it" in problems
    with pytest.raises(ValidationError, match="variant labels must be unique"):
        ExploreStep(id="pick", role="drafter", instruction="x", variants=[{"label": "a"}, {"label": "a"}])
    with pytest.raises(ValidationError):
        ExploreStep(id="pick", role="drafter", instruction="x", variants=[{"label": "a"}])  # one is not exploring


def test_subagent_steps_are_validated_like_the_rest() -> None:
    step = SubagentStep(id="sub", role="researcher", goal="Check the artifact {{steps.a.sha256}}", playbook="research-brief")
    assert plan_problems([agent("a"), step], EFFECTS) == ["step 'sub' uses the output of 'a' without depending on it"]
    assert plan_problems([agent("a"), step.model_copy(update={"depends_on": ["a"]})], EFFECTS) == []
    # Another step's output text would become the child's instruction: refused.
    pasted = step.model_copy(update={"goal": "Look into {{steps.a.output}}", "depends_on": ["a"]})
    (problem,) = plan_problems([agent("a"), pasted], EFFECTS)
    assert problem.startswith("step 'sub': a subagent's goal cannot include other steps' output")


def test_model_fills_name_undeclared_arguments_of_the_tool_and_say_what_to_fill() -> None:
    step = ToolStep(id="q", role="analyst", invocation=ToolInvocation(tool="sql_query", arguments_json='{"sql": "SELECT 1"}'),
                    model_fills=["sql", "nonsense"])
    assert plan_problems([step], tool_effects()) == [
        "step 'q': 'sql_query' has no argument 'nonsense' to fill",
        "step 'q': argument 'sql' is both declared and filled by the model",
        "step 'q': model_fills needs a fill_instruction saying what to fill in",
    ]
    fine = step.model_copy(update={"model_fills": ["sql"], "fill_instruction": "Count {{steps.a.output}}",
                                   "invocation": ToolInvocation(tool="sql_query")})
    assert plan_problems([agent("a"), fine], tool_effects()) == ["step 'q' uses the output of 'a' without depending on it"]


def test_the_planner_model_can_delegate_and_explore() -> None:
    raw = json.dumps({"steps": [
        {"role": "researcher", "instruction": "Research retries in depth", "needs": [], "tools": [], "mode": "subagent"},
        {"role": "drafter", "instruction": "Draft a comparison of retries and idempotency", "needs": [1], "tools": [], "mode": "explore"},
        {"role": "reviewer", "instruction": "Review the comparison", "needs": [2], "tools": []},
    ]})
    steps, problems, _ = parse_draft(raw, 5)
    assert problems == [] and [type(s).__name__ for s in steps] == ["SubagentStep", "ExploreStep", "AgentStep"]
    assert steps[0].goal == "Research retries in depth" and [v.label for v in steps[1].variants] == ["steady", "varied", "bold"]
    assert all(s.checks == [NonEmptyCheck(), RelevanceCheck()] for s in steps)
    assert plan_problems(steps, tool_effects(), allowed_roles=set(LLM_PLAN_ROLES), effects_last=True) == []
    assert draft_schema(5)["properties"]["steps"]["items"]["properties"]["mode"]["enum"] == ["agent", "subagent", "explore", "tool"]


def test_fallbacks_name_another_step_that_nobody_depends_on() -> None:
    primary = agent("primary", fallback="backup")
    steps = [primary, agent("backup"), agent("after", "primary")]
    assert plan_problems(steps, EFFECTS) == []
    assert plan_problems([agent("a", fallback="a")], EFFECTS) == ["step 'a': fallback 'a' is not another step of the plan"]
    assert plan_problems([agent("a", fallback="ghost")], EFFECTS) == ["step 'a': fallback 'ghost' is not another step of the plan"]
    (problem,) = plan_problems([primary, agent("backup"), agent("after", "backup")], EFFECTS)
    assert problem.startswith("step 'after' depends on fallback steps ['backup']")


def test_the_planner_model_can_chain_tools() -> None:
    raw = json.dumps({"steps": [
        {"role": "analyst", "instruction": "Query how many runs of tool calls were retried", "needs": [], "tools": ["sql_query"], "mode": "tool"},
        {"role": "drafter", "instruction": "Explain what the retry count says about idempotency", "needs": [1], "tools": []},
        {"role": "analyst", "instruction": "Two tools cannot be one tool step about retries", "needs": [], "tools": ["sql_query", "calculate"], "mode": "tool"},
    ]})
    steps, problems, _ = parse_draft(raw, 5)
    chain, explain, not_a_tool_step = steps
    assert problems == [] and isinstance(chain, ToolStep) and chain.invocation.tool == "sql_query"
    assert chain.model_fills == ["sql"] and chain.fill_instruction.startswith("Query how many runs")
    assert type(not_a_tool_step).__name__ == "AgentStep"
    assert plan_problems(steps, tool_effects(), allowed_roles=set(LLM_PLAN_ROLES), effects_last=True) == []
    assert ungrounded_steps("How often are tool calls retried, and what does that say about idempotency?", steps) == []


def test_a_fallback_step_is_never_the_output_step() -> None:
    steps = [agent("draft", fallback="plain"), agent("plain")]
    assert default_output_step(steps) == "draft"
    assert plan_problems(steps, EFFECTS, output_step="plain") == [
        "output_step 'plain' is a fallback step, which runs only when another step fails"]


async def test_the_planner_picks_a_model_per_step_from_the_catalogue(monkeypatch: pytest.MonkeyPatch) -> None:
    catalogue = {"small": {"provider": "local"}, "large": {"provider": "openai", "model": "large-model", "base_url": "http://127.0.0.1:9/v1"}}
    monkeypatch.setenv("FOREMAN_MODEL_CATALOGUE", json.dumps(catalogue))
    plan_json = json.dumps({"steps": [
        {"role": "researcher", "instruction": "Research retries and idempotency for tool calls", "needs": [], "tools": [], "model": "small"},
        {"role": "drafter", "instruction": "Compare retries and idempotency carefully", "needs": [1], "tools": [], "model": "large"},
    ]})
    with ScriptedServer(lambda _: draft_reply_text(plan_json)) as server:
        spec = ModelSpec(provider=Provider.OPENAI, model="planner", base_url=server.base_url)
        plan = await ActivityEnvironment().run(plan_goal, PlanRequest(goal=RETRIES_GOAL, spec=spec))
        schema = json.loads(json.dumps(server.requests[0].body["response_format"]))
    assert "large" in json.dumps(schema) and "Each step may name its model: one of large, small" in server.requests[0].body["messages"][0]["content"]
    small, large = plan.steps
    assert small.model.provider.value == "local" and (large.model.provider.value, large.model.model) == ("openai", "large-model")
    monkeypatch.setenv("FOREMAN_MODEL_CATALOGUE", "[not an object")
    with pytest.raises(ApplicationError) as bad:
        await ActivityEnvironment().run(plan_goal, PlanRequest(goal=RETRIES_GOAL, spec=spec))
    assert bad.value.type == "ModelConfigError" and bad.value.non_retryable


def draft_reply_text(content: str) -> Reply:
    return Reply(body={
        "id": "p", "object": "chat.completion", "model": "planner-test",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
    })


def test_a_drafted_coder_step_runs_python_as_code_blocks_only() -> None:
    raw = draft(
        {"role": "coder", "instruction": "compute it", "needs": [], "tools": ["sql_query", "list_files"]},
        {"role": "coder", "instruction": "again", "needs": [1], "tools": ["run_python"]},
        {"role": "coder", "instruction": "fill", "needs": [2], "tools": ["calculate"], "mode": "tool"},
        {"role": "analyst", "instruction": "explain", "needs": [3], "tools": ["run_python"]},
    )
    steps, problems, notes = parse_draft(raw, 5)
    assert problems == []
    assert [s.tools for s in steps if isinstance(s, AgentStep)] == [["run_python"], ["run_python"], ["run_python"]]
    assert all(s.code_blocks for s in steps if isinstance(s, AgentStep))  # every drafted step may act with code blocks
    assert isinstance(steps[2], ToolStep) and steps[2].invocation.tool == "calculate"  # a chain link keeps its one tool
    assert notes == ["step 1: a coder step uses run_python only (not ['sql_query', 'list_files'])"]
