"""Contract validation: what a goal request accepts, how the discriminated unions parse from JSON,
and that tool argument models refuse fields they do not declare.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError

from activities.tools import TOOLS
from contracts.goal import MAX_GOAL_BYTES, Budget, GoalRequest
from contracts.plan import AgentStep, Plan, Playbook, ToolStep
from contracts.tools import (
    CacheableArgs,
    CalculateArgs,
    HttpFetchArgs,
    KeyedArgs,
    ListFilesArgs,
    ReadFileArgs,
    RecallArgs,
    RunPythonArgs,
    RememberArgs,
    SearchCorpusArgs,
    SqlQueryArgs,
    ToolArgs,
    WriteFileArgs,
)
from contracts.verify import (
    AcceptanceCheck,
    CitationsCheck,
    JsonSchemaCheck,
    LengthCheck,
    ModelJudgeCheck,
    NonEmptyCheck,
    RegexCheck,
    RequiredTermsCheck,
)
from playbooks import BUILTIN_DIR

# --- GoalRequest -----------------------------------------------------------------------------


def test_minimal_goal_request_gets_defaults() -> None:
    request = GoalRequest.model_validate_json('{"goal": "x"}')
    assert request.goal == "x"
    assert request.playbook is None
    assert request.success_criteria == []
    assert request.budget == Budget()
    assert request.max_parallel_steps == 4
    assert request.models.planner.provider is None and request.models.executor.model is None


@pytest.mark.parametrize("goal", ["", " ", "\n\t  \r\n"])
def test_blank_goal_rejected(goal: str) -> None:
    with pytest.raises(ValidationError, match="goal is empty"):
        GoalRequest(goal=goal)


def test_missing_goal_rejected() -> None:
    with pytest.raises(ValidationError):
        GoalRequest.model_validate_json("{}")


@pytest.mark.parametrize(
    "char",
    ["é", "€", "😀"],  # 2, 3 and 4 bytes in UTF-8
)
def test_goal_limit_counts_bytes_not_characters(char: str) -> None:
    width = len(char.encode())
    fits = char * (MAX_GOAL_BYTES // width)
    assert GoalRequest(goal=fits).goal == fits
    too_long = fits + char
    assert len(too_long) <= MAX_GOAL_BYTES  # under the limit in characters...
    with pytest.raises(ValidationError, match=f"the limit is {MAX_GOAL_BYTES}"):
        GoalRequest(goal=too_long)  # ...but not in bytes


def test_goal_limit_is_32_kib() -> None:
    assert MAX_GOAL_BYTES == 32 * 1024
    GoalRequest(goal="a" * 32 * 1024)
    with pytest.raises(ValidationError):
        GoalRequest(goal="a" * (32 * 1024 - 1) + "é")  # 32,768 characters, 32,769 bytes
    with pytest.raises(ValidationError):
        GoalRequest.model_validate_json(json.dumps({"goal": "a" * (32 * 1024 + 1)}))


@pytest.mark.parametrize("field", ["max_model_calls", "max_tool_calls", "max_total_tokens"])
@pytest.mark.parametrize("value", [0, -1])
def test_budget_counts_must_be_positive(field: str, value: int) -> None:
    with pytest.raises(ValidationError, match=field):
        GoalRequest.model_validate_json(json.dumps({"goal": "x", "budget": {field: value}}))


def test_budget_cost() -> None:
    with pytest.raises(ValidationError, match="max_cost_usd"):
        Budget(max_cost_usd=-0.01)
    # Zero is allowed on purpose: the executor reads it as "no cost cap" (`cost >= max_cost_usd > 0`).
    assert Budget(max_cost_usd=0).max_cost_usd == 0


def test_budget_partial_override_keeps_other_defaults() -> None:
    request = GoalRequest.model_validate_json('{"goal": "x", "budget": {"max_model_calls": 3}}')
    assert request.budget.max_model_calls == 3
    assert request.budget.max_tool_calls == Budget().max_tool_calls


@pytest.mark.parametrize("value", [0, 33])
def test_max_parallel_steps_bounds(value: int) -> None:
    with pytest.raises(ValidationError, match="max_parallel_steps"):
        GoalRequest(goal="x", max_parallel_steps=value)


# --- AcceptanceCheck -------------------------------------------------------------------------

CHECKS = TypeAdapter(AcceptanceCheck)


@pytest.mark.parametrize(
    "data, model",
    [
        ({"type": "non_empty"}, NonEmptyCheck),
        ({"type": "length", "min_chars": 10, "max_chars": 20}, LengthCheck),
        ({"type": "json_schema", "json_schema": '{"type": "object"}'}, JsonSchemaCheck),
        ({"type": "required_terms", "terms": ["a"], "case_sensitive": True}, RequiredTermsCheck),
        ({"type": "citations", "min_count": 2, "known_sources": ["a.md"]}, CitationsCheck),
        ({"type": "regex", "pattern": "x", "must_match": False}, RegexCheck),
        ({"type": "model_judge", "criteria": "is it good", "on_fail": "escalate"}, ModelJudgeCheck),
    ],
)
def test_acceptance_check_parses_by_type(data: dict, model: type[BaseModel]) -> None:
    check = CHECKS.validate_json(json.dumps(data))
    assert type(check) is model
    assert check.model_dump(mode="json", exclude_defaults=True) == {k: v for k, v in data.items() if k != "type"}
    assert CHECKS.validate_json(CHECKS.dump_json(check)) == check  # round-trips


def test_acceptance_check_defaults() -> None:
    check = CHECKS.validate_python({"type": "citations"})
    assert check.on_fail == "refine" and check.min_count == 1 and check.known_sources == []


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"type": "spellcheck"},
        {"terms": ["a"]},  # no type: the union does not guess
        {"type": "regex"},  # missing its own required field
        {"type": "required_terms", "terms": []},
        {"type": "length", "min_chars": -1},
        {"type": "length", "max_chars": 0},
        {"type": "citations", "min_count": 0},
        {"type": "non_empty", "on_fail": "ignore"},
    ],
)
def test_acceptance_check_rejects(data: dict) -> None:
    with pytest.raises(ValidationError):
        CHECKS.validate_json(json.dumps(data))


def test_success_criteria_parse_in_goal_request() -> None:
    request = GoalRequest.model_validate_json(
        json.dumps({"goal": "x", "success_criteria": [{"type": "non_empty"}, {"type": "regex", "pattern": "^#"}]})
    )
    assert [type(c) for c in request.success_criteria] == [NonEmptyCheck, RegexCheck]


# --- Plan steps ------------------------------------------------------------------------------

AGENT = {"type": "agent", "id": "research", "role": "researcher", "instruction": "find", "tools": ["search_corpus"]}
TOOL = {
    "type": "tool",
    "id": "publish",
    "role": "publisher",
    "depends_on": ["research"],
    "invocation": {"tool": "write_file", "arguments_json": '{"path": "a.md", "content": "{{steps.research.output}}"}'},
    "checks": [{"type": "non_empty"}],
}


def test_plan_parses_steps_by_type() -> None:
    plan = Plan.model_validate_json(json.dumps({"goal": "g", "source": "playbook", "steps": [AGENT, TOOL]}))
    agent, tool = plan.steps
    assert isinstance(agent, AgentStep) and agent.tools == ["search_corpus"] and agent.max_attempts == 2
    assert isinstance(tool, ToolStep) and tool.invocation.tool == "write_file" and tool.max_attempts == 1
    assert type(tool.checks[0]) is NonEmptyCheck
    assert Plan.model_validate_json(plan.model_dump_json()) == plan


@pytest.mark.parametrize(
    "step",
    [
        {**AGENT, "type": "human"},
        {k: v for k, v in AGENT.items() if k != "type"},
        {**AGENT, "type": "tool"},  # a tool step needs an invocation
        {**TOOL, "type": "agent"},  # an agent step needs an instruction
        {**AGENT, "id": "Research"},
        {**AGENT, "id": "1st"},
        {**AGENT, "id": "a" * 41},
        {**AGENT, "role": ""},
        {**AGENT, "instruction": ""},
        {**AGENT, "max_turns": 0},
    ],
)
def test_plan_rejects_bad_steps(step: dict) -> None:
    with pytest.raises(ValidationError):
        Plan.model_validate_json(json.dumps({"goal": "g", "source": "llm", "steps": [step]}))


def test_plan_needs_a_step() -> None:
    with pytest.raises(ValidationError):
        Plan.model_validate_json('{"goal": "g", "source": "llm", "steps": []}')


@pytest.mark.parametrize("path", sorted(BUILTIN_DIR.glob("*.json")), ids=lambda p: p.stem)
def test_builtin_playbook_files_parse(path: Path) -> None:
    playbook = Playbook.model_validate_json(path.read_text(encoding="utf-8"))
    assert playbook.name == path.stem


# --- Tool arguments --------------------------------------------------------------------------

MINIMAL_ARGS: dict[type[ToolArgs], dict] = {
    HttpFetchArgs: {"url": "https://example.com"},
    ReadFileArgs: {"path": "a.md"},
    WriteFileArgs: {"path": "a.md", "content": "x"},
    ListFilesArgs: {},
    SqlQueryArgs: {"sql": "select 1"},
    CalculateArgs: {"expression": "1+1"},
    SearchCorpusArgs: {"query": "retries"},
    RememberArgs: {"text": "retries need idempotency keys"},
    RecallArgs: {"query": "retries"},
    RunPythonArgs: {"code": "print(1)"},
}


def test_the_model_never_sees_the_call_context() -> None:
    """Memory tools take a call context the workflow stamps; it is not in the schema the model is shown."""
    for model in (RememberArgs, RecallArgs):
        assert "context" in model.model_fields and "context" not in model.model_json_schema()["properties"]


def test_the_model_never_sees_the_cache_flag() -> None:
    """Cacheable tools take a cache flag the workflow stamps; it is not in the schema the model is shown."""
    for model in (HttpFetchArgs, SearchCorpusArgs):
        assert "cache" in model.model_fields and "cache" not in model.model_json_schema()["properties"]


def test_the_model_never_sees_the_idempotency_key() -> None:
    """Tools that change something take an idempotency key the workflow stamps; it is not in the schema the model is shown."""
    for model in (HttpFetchArgs, WriteFileArgs, RememberArgs, RunPythonArgs):
        assert "idempotency_key" in model.model_fields and "idempotency_key" not in model.model_json_schema()["properties"]


def test_every_tool_args_model_is_covered() -> None:
    bases = {CacheableArgs, KeyedArgs}
    concrete = set(ToolArgs.__subclasses__()) | set(CacheableArgs.__subclasses__()) | set(KeyedArgs.__subclasses__())
    assert concrete - bases == set(MINIMAL_ARGS)
    assert {t.args_model for t in TOOLS.values()} <= set(MINIMAL_ARGS)


@pytest.mark.parametrize("model", list(MINIMAL_ARGS), ids=lambda m: m.__name__)
def test_tool_args_forbid_extra_fields(model: type[ToolArgs]) -> None:
    args = MINIMAL_ARGS[model]
    model.model_validate_json(json.dumps(args))
    with pytest.raises(ValidationError) as info:
        model.model_validate_json(json.dumps({**args, "unexpected": 1}))
    assert [e["type"] for e in info.value.errors()] == ["extra_forbidden"]
    # The schema the model is shown says so too.
    assert model.model_json_schema()["additionalProperties"] is False


def test_a_request_never_sends_the_worker_key_to_a_server_it_names(monkeypatch: pytest.MonkeyPatch) -> None:
    from contracts.llm import ModelRole, ModelSpec, Provider
    from settings import resolve_model

    monkeypatch.setenv("OPENAI_API_KEY", "sk-worker-secret")
    monkeypatch.setenv("FOREMAN_MODEL_BASE_URL", "https://models.internal/v1")
    configured = resolve_model(ModelRole.EXECUTOR, ModelSpec(provider=Provider.OPENAI))
    assert configured.base_url == "https://models.internal/v1" and configured.api_key == "sk-worker-secret"
    same = resolve_model(ModelRole.EXECUTOR, ModelSpec(provider=Provider.OPENAI, base_url="https://models.internal/v1/"))
    assert same.api_key == "sk-worker-secret"
    elsewhere = resolve_model(ModelRole.EXECUTOR, ModelSpec(provider=Provider.OPENAI, base_url="https://attacker.example/v1"))
    assert elsewhere.base_url == "https://attacker.example/v1" and elsewhere.api_key is None


def test_a_request_can_only_pick_local_models_from_allowed_folders(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    from temporalio.exceptions import ApplicationError

    from contracts.llm import ModelRole, ModelSpec, Provider
    from settings import default_local_model_path, resolve_model

    default = default_local_model_path()
    assert default is not None
    by_name = resolve_model(ModelRole.EXECUTOR, ModelSpec(provider=Provider.LOCAL, model=default.name))
    assert by_name.model == str(default.resolve())
    for outside in ("/etc/passwd", "../../../../etc/passwd", str(tmp_path / "x.gguf")):
        with pytest.raises(ApplicationError) as refused:
            resolve_model(ModelRole.EXECUTOR, ModelSpec(provider=Provider.LOCAL, model=outside))
        assert refused.value.type == "ModelConfigError" and refused.value.non_retryable
    (tmp_path / "mine.gguf").write_bytes(b"GGUF")
    monkeypatch.setenv("FOREMAN_LOCAL_MODELS_DIR", str(tmp_path))
    assert resolve_model(ModelRole.EXECUTOR, ModelSpec(provider=Provider.LOCAL, model="mine.gguf")).model == str((tmp_path / "mine.gguf").resolve())


def test_a_playbook_recall_is_a_first_tool_step_its_consumers_depend_on() -> None:
    steps = [{"type": "agent", "id": "a", "role": "drafter", "instruction": "x"},
             {"type": "agent", "id": "b", "role": "researcher", "instruction": "y", "depends_on": ["a"]}]
    book = Playbook.model_validate({"name": "p", "steps": steps, "recall": {"role": "drafter", "limit": 3}})
    planned = book.planned_steps()
    assert [s.id for s in planned] == ["recall", "a", "b"] and planned[0].invocation.tool == "recall"
    assert json.loads(planned[0].invocation.arguments_json) == {"query": "{{goal}}", "limit": 3}
    assert planned[1].depends_on == ["recall"] and planned[2].depends_on == ["a"]  # only the drafter's steps by default
    chosen = Playbook.model_validate({"name": "p", "steps": steps, "recall": {"role": "drafter", "for_steps": ["b"]}})
    assert chosen.planned_steps()[2].depends_on == ["recall", "a"]
    for bad, message in (({"role": "drafter", "id": "a"}, "also a step id"), ({"role": "drafter", "for_steps": ["zz"]}, "no such steps")):
        with pytest.raises(ValidationError, match=message):
            Playbook.model_validate({"name": "p", "steps": steps, "recall": bad})
