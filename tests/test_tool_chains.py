"""Deterministic tool chains on the real dev server: a declared extraction passes one field (regex or
JSON pointer) from one tool step to the next; `model_fills` lets one constrained model call fill just
the arguments it names, and what it fills still passes policy and approvals."""

from __future__ import annotations

import json

import pytest
from temporalio.client import Client

from contracts.goal import GoalRequest, GoalStatus, StepStatus
from contracts.plan import OutputExtraction
from core.extraction import ExtractionFailed, extract, json_pointer
from tests.fakes import ScriptedModel, answer, fills_sql
from tests.helpers import chain, fake_activities, run_goal, sql_chain_steps, sql_step


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
