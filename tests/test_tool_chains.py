"""Deterministic tool chains on the real dev server: a declared extraction passes one field (regex or
JSON pointer) from one tool step to the next; `model_fills` lets one constrained model call fill just
the arguments it names, and what it fills still passes policy and approvals."""

from __future__ import annotations

import json

import pytest
from temporalio.client import Client

from contracts.goal import Budget, GoalRequest, GoalStatus, StepStatus
from contracts.plan import OutputExtraction
from activities import content_store
from core.extraction import ExtractionFailed, extract, json_pointer
from core.hashing import sha256_text
from tests.fakes import ScriptedModel, answer, fills_sql
from tests.helpers import chain, fake_activities, run_goal, sql_chain_steps, sql_step, write_playbook


async def test_a_chain_passes_one_field_and_the_model_fills_one_argument(client: Client, task_queue: str, tmp_path, monkeypatch) -> None:
    steps = sql_chain_steps()
    model = ScriptedModel(fills_sql("SELECT COUNT(*) AS n FROM runs WHERE model = 'gpt-4o-mini'"))
    result, _ = await run_goal(client, task_queue, GoalRequest(goal="How often did we run gpt-4o-mini?", playbook=chain(tmp_path, monkeypatch, steps)),
                               fake_activities(model.activity()))
    assert result.status is GoalStatus.COMPLETED, result.error
    pick, count = result.steps
    assert pick.output == "gpt-4o-mini" and not pick.model_calls  # no model anywhere but the one fill
    assert count.output.isdigit() and int(count.output) > 0 and len(count.model_calls) == 1
    assert json.loads(count.tool_calls[0].arguments_json)["sql"].endswith("WHERE model = 'gpt-4o-mini'")
    assert "gpt-4o-mini" in model.requests[0].messages[-1].content  # the extracted field reached the fill


async def test_what_the_model_fills_still_passes_the_gate(client: Client, task_queue: str, tmp_path, monkeypatch) -> None:
    steps = [sql_step("count", model_fills=["sql"], fill_instruction="Count the runs.")]
    model = ScriptedModel(fills_sql("DELETE FROM runs"))
    result, _ = await run_goal(client, task_queue, GoalRequest(goal="Count runs", playbook=chain(tmp_path, monkeypatch, steps)),
                               fake_activities(model.activity()), approvers=None)
    (step,) = result.steps
    assert step.status is StepStatus.FAILED and "ApprovalDenied" in step.error and "expired" in step.error
    assert result.approvals[0].tool == "sql_query" and "DELETE FROM runs" in result.approvals[0].arguments_json


async def test_an_extraction_that_finds_nothing_fails_the_step(client: Client, task_queue: str, tmp_path, monkeypatch) -> None:
    steps = [sql_step("pick", "SELECT name FROM models", extract={"json_pointer": "/0/name"})]
    result, _ = await run_goal(client, task_queue, GoalRequest(goal="Pick", playbook=chain(tmp_path, monkeypatch, steps)),
                               fake_activities(ScriptedModel(lambda r: answer("unused")).activity()))
    (step,) = result.steps
    assert step.status is StepStatus.FAILED and step.error.startswith("output extraction failed: the output is not JSON")


async def test_a_regex_that_backtracks_for_ever_fails_its_step_and_the_goal_ends(client: Client, task_queue: str, tmp_path,
                                                                                   monkeypatch) -> None:
    """A plan's pattern runs in the activity's own process, stopped past REGEX_SECONDS: in workflow code it would have
    held the workflow task past the deadlock detector, and the goal would have stayed running."""
    monkeypatch.setattr(content_store, "REGEX_SECONDS", 1.0)
    steps = [sql_step("pick", f"SELECT '{'a' * 40}b' AS s", extract={"regex": "(a+)+c"}),
             sql_step("then", "SELECT 1 AS n", extract={"regex": r"\d+"})]
    result, history = await run_goal(client, task_queue, GoalRequest(goal="Pick", playbook=chain(tmp_path, monkeypatch, steps)),
                                     fake_activities(ScriptedModel(lambda r: answer("unused")).activity()), timeout=30)
    pick, then = result.steps
    assert pick.status is StepStatus.FAILED and pick.error == (
        "output extraction failed: /(a+)+c/ ran past 1 s on 52 characters and was stopped"), pick.error
    assert then.status is StepStatus.COMPLETED and then.output == "1"  # an independent step is unaffected
    assert result.status is GoalStatus.FAILED


def test_json_pointer_and_regex_extraction() -> None:
    document = {"items": [{"id": 7, "tags": ["a/b"]}], "a/b": {"~": "tilde"}}
    assert json_pointer(document, "/items/0/id") == 7 and json_pointer(document, "/a~1b/~0") == "tilde"
    assert json_pointer(document, "") == document
    with pytest.raises(ExtractionFailed, match="no '3'"):
        json_pointer(document, "/items/3")
    assert extract(json.dumps(document), OutputExtraction(json_pointer="/items/0")) == '{"id":7,"tags":["a/b"]}'
    assert extract("HTTP 200 application/json from http://x/\n\n{\"v\": \"ok\"}", OutputExtraction(json_pointer="/v")) == "ok"
    assert extract("id=42;", OutputExtraction(regex=r"id=\d+")) == "id=42"
    with pytest.raises(ValueError, match="exactly one"):
        OutputExtraction(json_pointer="/a", regex="a")
    with pytest.raises(ValueError, match="does not compile"):
        OutputExtraction(regex="(")


async def test_a_50_kb_output_passes_whole_through_a_chain_and_is_written_with_a_matching_hash(
    client: Client, task_queue: str, tmp_path, monkeypatch, foreman_home,
) -> None:
    """Past the 4,000-character preview: a template that names the step gets the whole text (its `sha256` too, so the
    write's artifact check holds); an extraction reads past the preview; an agent that only depends on it sees a
    marked preview."""
    monkeypatch.setenv("FOREMAN_PLAYBOOKS_DIR", str(tmp_path / "playbooks"))
    big = "".join(f"line {i:05d}: durable execution keeps every step\n" for i in range(1_100))  # about 50 KB
    (foreman_home / "workspace" / "notes").mkdir(parents=True)
    (foreman_home / "workspace" / "notes" / "big.md").write_text(big)
    (foreman_home / "workspace" / "notes" / "big.json").write_text(json.dumps({"filler": big, "answer": "found it"}))
    steps = [
        {"type": "tool", "id": "read", "role": "drafter", "invocation": {"tool": "read_file", "arguments_json": '{"path": "notes/big.md"}'}},
        {"type": "tool", "id": "copy", "role": "drafter", "depends_on": ["read"], "invocation": {"tool": "write_file", "arguments_json": json.dumps(
            {"path": "drafts/copy.md", "content": "{{steps.read.output}}", "expected_sha256": "{{steps.read.sha256}}"})}},
        {"type": "tool", "id": "pick", "role": "drafter", "extract": {"json_pointer": "/answer"},
         "invocation": {"tool": "read_file", "arguments_json": '{"path": "notes/big.json"}'}},
        {"type": "agent", "id": "sum", "role": "drafter", "depends_on": ["read", "copy", "pick"], "instruction": "Sum it up."},
    ]
    principals = [{"role": "drafter", "tools": ["read_file", "write_file"], "side_effects": ["read", "write"], "paths": ["notes/*", "drafts/*"]}]
    name = write_playbook(tmp_path / "playbooks", {"name": "big-chain", "steps": steps, "policy": {"principals": principals}})
    model = ScriptedModel(lambda r: answer("summed"))
    result, history = await run_goal(client, task_queue, GoalRequest(goal="Copy the notes", playbook=name), fake_activities(model.activity()))
    assert result.status is GoalStatus.COMPLETED, result.error
    read, copy, pick, _ = result.steps
    assert (foreman_home / "workspace" / "drafts" / "copy.md").read_text() == big  # whole, not the preview
    assert read.output_sha256 == sha256_text(big) and read.full_output and read.full_output.size_bytes == len(big.encode())
    assert read.output.startswith(big[:4_000]) and "[preview: the first 4000 characters" in read.output
    assert copy.tool_calls[0].ok and pick.output == "found it"  # the artifact check passed; the field past the preview found
    context = model.requests[0].messages[-1].content
    assert "[preview: the first 4000 characters" in context and big[-200:] not in context  # the agent saw the marked preview


@pytest.mark.parametrize(
    "allowance, goal_tokens, whole",
    [(20_000, 400_000, True), (5_000, 400_000, False), (20_000, 10_000, False), (20_000, 100_000, False)],
    ids=["fits", "over-the-step-allowance", "over-the-goal-budget", "every-prompt-over-the-goal-budget"],
)
async def test_an_agent_gets_a_long_input_whole_only_within_its_token_allowance(
    client: Client, task_queue: str, tmp_path, monkeypatch, foreman_home, allowance: int, goal_tokens: int, whole: bool,
) -> None:
    """A 50 KB dependency output (about 16,700 estimated tokens) reaches the model whole when the step asks for it
    (`full_inputs_tokens`) and it fits both there and in what is left of the goal's tokens for each prompt that repeats
    it (4 turns x 2 attempts: 100,000 tokens left is not enough); otherwise the marked preview."""
    monkeypatch.setenv("FOREMAN_PLAYBOOKS_DIR", str(tmp_path / "playbooks"))
    big = "".join(f"line {i:05d}: durable execution keeps every step\n" for i in range(1_100))
    (foreman_home / "workspace" / "notes").mkdir(parents=True)
    (foreman_home / "workspace" / "notes" / "big.md").write_text(big)
    steps = [
        {"type": "tool", "id": "read", "role": "drafter", "invocation": {"tool": "read_file", "arguments_json": '{"path": "notes/big.md"}'}},
        {"type": "agent", "id": "sum", "role": "drafter", "depends_on": ["read"], "instruction": "Sum it up.", "full_inputs_tokens": allowance},
    ]
    principals = [{"role": "drafter", "tools": ["read_file"], "side_effects": ["read"], "paths": ["notes/*"]}]
    name = write_playbook(tmp_path / "playbooks", {"name": "long-input", "steps": steps, "policy": {"principals": principals}})
    model = ScriptedModel(lambda r: answer("summed"))
    request = GoalRequest(goal="Sum up the notes", playbook=name, budget=Budget(max_total_tokens=goal_tokens))
    result, _ = await run_goal(client, task_queue, request, fake_activities(model.activity()))
    assert result.status is GoalStatus.COMPLETED, result.error
    context = model.requests[0].messages[-1].content
    assert (big[-200:] in context) is whole
    assert ("[preview: the first 4000 characters" in context) is not whole
