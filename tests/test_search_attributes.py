"""Foreman's search attributes and memo on the real dev server: a goal waiting for approval is found by
`ForemanPendingApprovals > 0` (SDK and `temporal workflow list --query`), shows completed with its model calls and
cost once approved, and carries its one-line summary in the memo; one waiting for a resolution shows `escalated`; a worker on a server without the attributes warns
once and runs goals without them, and devserver.py registers them there idempotently."""

from __future__ import annotations

import asyncio
import re
import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecution
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

import devserver
import settings
from activities import search_attributes
from contracts.goal import GoalRequest, GoalResult, GoalStatus
from contracts.llm import ModelRequest, ModelResponse, Provider, TokenUsage
from core.search_attributes import (
    FOREMAN_COST_USD,
    FOREMAN_GOAL,
    FOREMAN_MODEL_CALLS,
    FOREMAN_PENDING_APPROVALS,
    FOREMAN_PLAYBOOK,
    FOREMAN_STATUS,
    MEMO_SUMMARY,
    SEARCH_ATTRIBUTES,
    TYPE_NAMES,
    dev_server_flags,
)
from devserver import find_binary
from testkit.goals import write_playbook
from testkit.models import ScriptedModel, answer
from tests.helpers import (
    DRAFT, decide, escalating_playbook, fake_activities, finish, gated_long_playbook, gated_playbook, goal, pending, resolve, run_cli,
    single_step_playbook, starter, waiting,
)
from worker import build_worker
from workflows.goal import GoalWorkflow
from workflows.visibility import COUNTERS_EVERY

WARNING = "lacks Foreman's search attributes"


async def listed(client: Client, query: str, timeout: float = 20) -> WorkflowExecution:
    """The one execution `query` finds, once visibility shows it (it lags the workflow a little)."""
    async with asyncio.timeout(timeout):
        while True:
            found = [w async for w in client.list_workflows(query)]
            if found:
                assert len(found) == 1, found
                return found[0]
            await asyncio.sleep(0.1)


def upserts(history) -> int:
    return sum(e.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES for e in history.events)


async def test_a_goal_waiting_for_approval_is_found_then_shows_completed(client: Client, task_queue: str, tmp_path: Path, monkeypatch) -> None:
    playbook = gated_playbook(tmp_path, monkeypatch, content="{{steps.a.output}}")  # a drafter step calls the model first
    async with goal(client, task_queue, playbook) as handle:
        (request,) = await pending(handle)
        waiting = await listed(client, f"ForemanPendingApprovals > 0 AND WorkflowId = '{handle.id}'")
        attributes = waiting.typed_search_attributes
        assert attributes.get(FOREMAN_STATUS) == "awaiting_approval" and attributes.get(FOREMAN_PENDING_APPROVALS) == 1
        assert attributes.get(FOREMAN_PLAYBOOK) == "gated" and attributes.get(FOREMAN_GOAL) == "publish it"
        assert attributes.get(FOREMAN_MODEL_CALLS) == 1  # the drafter's call, upserted with the request's status
        # The CLI finds it with the same query (what the README tells an operator to run).
        code, out, err = await run_cli(
            find_binary("temporal"), "workflow", "list", "--address", client.service_client.config.target_host,
            "--query", f"ForemanPendingApprovals > 0 AND ForemanStatus = 'awaiting_approval' AND WorkflowId = '{handle.id}'",
            "--output", "json", address=client.service_client.config.target_host, task_queue=task_queue)
        assert code == 0, err
        assert handle.id in out
        await decide(handle, "alice", request)
        result, history = await finish(handle)

    assert result.status is GoalStatus.COMPLETED, result.error
    done = await listed(client, f"WorkflowId = '{handle.id}' AND ForemanStatus = 'completed' AND ForemanPendingApprovals = 0")
    attributes = done.typed_search_attributes
    assert attributes.get(FOREMAN_MODEL_CALLS) == result.usage.model_calls == 1
    assert attributes.get(FOREMAN_COST_USD) == pytest.approx(result.usage.cost_usd) and result.usage.cost_usd > 0
    memo = await (await handle.describe()).memo()
    assert memo == {MEMO_SUMMARY: "publish it (playbook gated, 2 steps)"}
    # Few extra events: after planning (all six), drafter finished (model calls, cost), request opened, decided
    # (status, pending), goal completed (status); one memo upsert.
    assert upserts(history) <= 5
    assert sum(e.event_type == EventType.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED for e in history.events) == 1
    # Completed goals are not among those waiting.
    assert [w async for w in client.list_workflows(f"ForemanPendingApprovals > 0 AND WorkflowId = '{handle.id}'")] == []


@pytest_asyncio.fixture
async def bare_server() -> AsyncIterator[WorkflowEnvironment]:
    """A second dev server, started without Foreman's search attributes."""
    environment = await WorkflowEnvironment.start_local(
        dev_server_existing_path=find_binary("temporal"), data_converter=pydantic_data_converter,
        dev_server_extra_args=settings.DEV_SERVER_FLAGS, ui=False,
    )
    yield environment
    await environment.shutdown()


async def run_one(client: Client, task_queue: str, playbook: str) -> tuple[str, object]:
    handle = await client.start_workflow(GoalWorkflow.run, GoalRequest(goal="note it", playbook=playbook),
                                         id=f"bare-{uuid.uuid4().hex[:10]}", task_queue=task_queue)
    result, history = await finish(handle)
    assert result.status is GoalStatus.COMPLETED, result.error
    return handle.id, history


async def test_without_the_attributes_a_worker_warns_once_and_goals_run(
    bare_server: WorkflowEnvironment, task_queue: str, tmp_path: Path, monkeypatch, caplog: pytest.LogCaptureFixture,
) -> None:
    client = bare_server.client
    search_attributes.forget()
    playbook = single_step_playbook(tmp_path, monkeypatch)
    model = ScriptedModel(lambda request: answer(DRAFT))
    with caplog.at_level(logging.WARNING, logger="foreman.search_attributes"):
        async with build_worker(client, task_queue, activities=fake_activities(model.activity())):
            async with asyncio.timeout(60):
                histories = [(await run_one(client, task_queue, playbook))[1] for _ in range(2)]
    warnings = [r for r in caplog.records if WARNING in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in caplog.records]
    assert "temporal operator search-attribute create" in warnings[0].getMessage()
    assert all(upserts(h) == 0 for h in histories)  # nothing upserted, nothing failed; the memo needs no registration
    assert all(sum(e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED for e in h.events) == 0 for h in histories)

    # devserver.py registers them on a server it finds, only those missing: idempotent.
    address = client.service_client.config.target_host
    assert sorted(await asyncio.to_thread(devserver.register_search_attributes, address, "default")) == sorted(
        ["ForemanStatus", "ForemanPlaybook", "ForemanPendingApprovals", "ForemanModelCalls", "ForemanCostUsd", "ForemanGoal"])
    assert await asyncio.to_thread(devserver.register_search_attributes, address, "default") == []
    search_attributes.forget()  # a restarted worker asks again
    async with build_worker(client, task_queue, activities=fake_activities(model.activity())):
        async with asyncio.timeout(60):
            workflow_id, history = await run_one(client, task_queue, playbook)
    assert upserts(history) >= 1
    found = await listed(client, f"WorkflowId = '{workflow_id}' AND ForemanStatus = 'completed'")
    assert found.typed_search_attributes.get(FOREMAN_MODEL_CALLS) == 1


async def test_the_attributes_and_memo_carry_across_continue_as_new(client: Client, task_queue: str, tmp_path: Path, monkeypatch) -> None:
    from tests.test_continue_as_new import respond, run_long  # noqa: PLC0415 - that module's goal, reused

    result, histories = await run_long(client, task_queue, gated_long_playbook(tmp_path, monkeypatch), 120, ScriptedModel(respond))
    assert result.status is GoalStatus.COMPLETED and len(histories) >= 3, result.error
    fields = [sorted(e.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields)
              for h in histories for e in h.events if e.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES]
    # Set once, in the first run: continue-as-new carries the attributes and the memo to the next run (it upserts only changes).
    assert sum("ForemanGoal" in f for f in fields) == 1
    assert sum(e.event_type == EventType.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED for h in histories for e in h.events) == 1
    workflow_id = result.workflow_id
    done = await listed(client, f"WorkflowId = '{workflow_id}' AND ForemanStatus = 'completed' AND ExecutionStatus = 'Completed'")
    assert done.typed_search_attributes.get(FOREMAN_MODEL_CALLS) == result.usage.model_calls
    assert done.typed_search_attributes.get(FOREMAN_GOAL) == "Publish a notice and note facts"
    assert (await done.memo())[MEMO_SUMMARY].startswith("Publish a notice and note facts (playbook ")


async def test_a_goal_started_by_the_starter_shows_planning_until_a_worker_plans_it(
    client: Client, task_queue: str, tmp_path: Path, monkeypatch,
) -> None:
    playbook = single_step_playbook(tmp_path, monkeypatch)
    address = client.service_client.config.target_host
    workflow_id = f"planning-{uuid.uuid4().hex[:8]}"
    code, out, err = await run_cli(*starter("run", "Sum the numbers", "--playbook", playbook, "--id", workflow_id, "--no-wait"),
                                   address=address, task_queue=task_queue)
    assert code == 0, err
    # No worker polls yet: the attributes the starter set (no history event of their own) find it.
    found = await listed(client, f"ForemanStatus = 'planning' AND ForemanPlaybook = '{playbook}' AND WorkflowId = '{workflow_id}'")
    assert found.typed_search_attributes.get(FOREMAN_GOAL) == "Sum the numbers"
    model = ScriptedModel(lambda request: answer(DRAFT))
    async with build_worker(client, task_queue, activities=fake_activities(model.activity())):
        result, history = await finish(client.get_workflow_handle(workflow_id, result_type=GoalResult))
    assert result.status is GoalStatus.COMPLETED, result.error
    fields = [set(e.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields)
              for e in history.events if e.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES]
    assert not any({"ForemanGoal", "ForemanPlaybook"} & f for f in fields)  # set at start, never upserted again
    done = await listed(client, f"ForemanStatus = 'completed' AND WorkflowId = '{workflow_id}'")
    assert done.typed_search_attributes.get(FOREMAN_MODEL_CALLS) == result.usage.model_calls >= 1


def test_every_set_up_path_registers_the_same_attributes() -> None:
    """docker-compose's one-shot and the dev server flags name what core/search_attributes.py defines."""
    script = (settings.PROJECT_ROOT / "deploy" / "temporal-namespace.sh").read_text()
    pairs = re.findall(r"(Foreman\w+)=(\w+)", script)
    assert dict(pairs) == TYPE_NAMES and len(pairs) == len(SEARCH_ATTRIBUTES)
    assert dev_server_flags()[1::2] == [f"{name}={kind}" for name, kind in pairs]


async def test_a_goal_waiting_for_a_resolution_shows_escalated(client: Client, task_queue: str, tmp_path: Path, monkeypatch) -> None:
    model = ScriptedModel(lambda request: answer("Something else entirely."))  # fails the step's check: it escalates
    async with build_worker(client, task_queue, activities=fake_activities(model.activity())):
        handle = await client.start_workflow(
            GoalWorkflow.run, GoalRequest(goal="Explain durable execution", playbook=escalating_playbook(tmp_path, monkeypatch)),
            id=f"escalated-{uuid.uuid4().hex[:10]}", task_queue=task_queue)
        async with asyncio.timeout(30):
            (escalation,) = await waiting(handle)
            await listed(client, f"ForemanStatus = 'escalated' AND ForemanPendingApprovals = 0 AND WorkflowId = '{handle.id}'")
            await resolve(handle, escalation, "bob", "accept")
            result, _ = await finish(handle)
    assert result.status is GoalStatus.COMPLETED, result.error
    await listed(client, f"ForemanStatus = 'completed' AND WorkflowId = '{handle.id}'")


async def test_a_finished_steps_counters_show_within_ten_seconds_while_the_next_step_runs(
    client: Client, task_queue: str, tmp_path: Path, monkeypatch,
) -> None:
    """The counters are not upserted per step: a quick step's model call shows in ForemanModelCalls at most
    COUNTERS_EVERY later (one timer), while the next step's call is still running, not when the goal ends."""
    monkeypatch.setenv("FOREMAN_PLAYBOOKS_DIR", str(tmp_path / "playbooks"))
    agent = {"type": "agent", "role": "analyst", "max_turns": 1}
    playbook = write_playbook(tmp_path / "playbooks", {"name": "quick-then-slow", "steps": [
        {**agent, "id": "quick", "instruction": "Answer at once."},
        {**agent, "id": "slow", "instruction": "Take your time.", "depends_on": ["quick"]}]})
    slow_started = asyncio.Event()

    @activity.defn(name="call_model")
    async def call_model(request: ModelRequest) -> ModelResponse:
        if "Take your time." in request.messages[-1].content:
            slow_started.set()
            for _ in range(int((COUNTERS_EVERY.total_seconds() + 3) / 0.5)):  # past the window, heartbeating
                activity.heartbeat()
                await asyncio.sleep(0.5)
        return ModelResponse(message=answer("done"), finish_reason="stop", usage=TokenUsage(prompt_tokens=5, completion_tokens=1),
                             provider=Provider.OPENAI, model="scripted", cost_usd=0.001)

    async with build_worker(client, task_queue, activities=fake_activities(call_model)):
        handle = await client.start_workflow(GoalWorkflow.run, GoalRequest(goal="quick then slow", playbook=playbook),
                                             id=f"counters-{uuid.uuid4().hex[:8]}", task_queue=task_queue)
        async with asyncio.timeout(60):
            await slow_started.wait()
            running = await listed(client, f"WorkflowId = '{handle.id}' AND ForemanModelCalls = 1 AND ExecutionStatus = 'Running'",
                                   timeout=COUNTERS_EVERY.total_seconds() + 2.5)
            assert running.typed_search_attributes.get(FOREMAN_STATUS) == "executing"
            result, history = await finish(handle)
    assert result.status is GoalStatus.COMPLETED, result.error
    timers = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED]
    assert len(timers) == 1 and pydantic_data_converter.payload_converter.from_payload(timers[0].user_metadata.summary, str) == (
        "search attributes: counters due")
    assert sum(e.event_type == EventType.EVENT_TYPE_TIMER_FIRED for e in history.events) == 1
    done = await listed(client, f"WorkflowId = '{handle.id}' AND ForemanStatus = 'completed'")
    assert done.typed_search_attributes.get(FOREMAN_MODEL_CALLS) == result.usage.model_calls == 2
