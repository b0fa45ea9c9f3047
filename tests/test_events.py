"""The `events` query and `starter.py events` (real dev server, scripted models): a goal's typed events in order
with contiguous seqs, paging, approvals as they happen, seqs counting on across continue-as-new, and `--follow`
streaming a live goal from a separate process until it ends; a run keeps a bounded tail and says what it dropped."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from pathlib import Path

import pytest
from pydantic import TypeAdapter
from temporalio.client import Client, WorkflowHandle, WorkflowQueryFailedError
from temporalio.worker import Worker

import settings
from contracts.approvals import DENY_UPDATE
from contracts.events import EVENTS_QUERY, MAX_PAGE, Event, EventKind, EventsPage, EventsQuery
from contracts.goal import STATUS_QUERY, Budget, GoalProgress, GoalRequest, GoalStatus
from devserver import find_binary
from goal_events import line
from tests.event_log_workflow import KEEP, EventLogProbe
from tests.fakes import ScriptedModel, answer, call_tool, demo_responder, guided, researcher_answers, tool_messages
from tests.helpers import (
    approve_everything, decide, escalating_playbook, fake_activities, finish, gated_long_playbook, gated_playbook, goal,
    long_goal_reply, pending, replay, resolve, run_cli, single_step_playbook, starter, team_playbooks, waiting,
)
from worker import build_worker
from workflows.goal import GoalWorkflow

EVENT = TypeAdapter(Event)


async def page(handle: WorkflowHandle, after: int = 0, limit: int = MAX_PAGE) -> EventsPage:
    return await handle.query(EVENTS_QUERY, EventsQuery(after=after, limit=limit), result_type=EventsPage)


async def events_of(handle: WorkflowHandle, limit: int = MAX_PAGE) -> list[Event]:
    """Every event the run holds, page by page."""
    events: list[Event] = []
    while True:
        got = await page(handle, events[-1].seq if events else 0, limit)
        events += got.events
        if not got.more:
            return events


def kinds(events: list[Event]) -> list[tuple[str, str | None]]:
    return [(e.type.value, e.step_id) for e in events]


def address(client: Client) -> str:
    return client.service_client.config.target_host


async def test_a_research_goal_tells_its_events_in_order(client: Client, task_queue: str, foreman_home: Path) -> None:
    request = GoalRequest(goal="Explain durable execution for agents", playbook="research-brief")
    async with build_worker(client, task_queue, activities=fake_activities(ScriptedModel(demo_responder).activity())):
        handle = await client.start_workflow(GoalWorkflow.run, request, id=f"events-{uuid.uuid4().hex[:10]}", task_queue=task_queue)
        approving = asyncio.create_task(approve_everything(handle, ("bob",)))
        async with asyncio.timeout(60):
            result = await handle.result()
        approving.cancel()
        events = await events_of(handle)
        paged = await events_of(handle, limit=4)
        middle, last = await page(handle, after=3, limit=4), await page(handle, after=len(events))
        code, out, err = await run_cli(*starter("events", handle.id, "--json"), address=address(client), task_queue=task_queue)
        human_code, human, _ = await run_cli(*starter("events", handle.id), address=address(client), task_queue=task_queue)
        temporal = (find_binary("temporal") or "temporal", "workflow", "query", "--address", address(client), "--workflow-id", handle.id, "--type", "events",
                    "-o", "json")
        raw_code, raw, raw_err = await run_cli(*temporal, "--input", '{"after": 17}', address=address(client), task_queue=task_queue)
        bare_code, bare, _ = await run_cli(*temporal, address=address(client), task_queue=task_queue)
        with pytest.raises(WorkflowQueryFailedError, match="limit"):
            await handle.query(EVENTS_QUERY, {"after": 0, "limit": MAX_PAGE + 1}, result_type=EventsPage)
    await replay(await handle.fetch_history())

    assert result.status is GoalStatus.COMPLETED, result.error
    assert kinds(events) == [
        ("plan_made", None),
        ("step_started", "research"), ("policy_decision", "research"), ("tool_call", "research"), ("model_call", "research"),
        ("verdict", "research"), ("step_finished", "research"),
        ("step_started", "draft"), ("model_call", "draft"), ("verdict", "draft"), ("step_finished", "draft"),
        ("step_started", "publish"), ("policy_decision", "publish"), ("approval_requested", "publish"),
        ("approval_decided", "publish"), ("tool_call", "publish"), ("verdict", "publish"), ("step_finished", "publish"),
        ("goal_finished", None),
    ]
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert all(a.at <= b.at for a, b in zip(events, events[1:]))
    by_kind = {e.type: [x for x in events if x.type is e.type] for e in events}
    (plan,) = by_kind[EventKind.PLAN_MADE]
    assert plan.playbook == "research-brief" and plan.source == "playbook" and plan.steps == ["research", "draft", "publish"]
    search, write = by_kind[EventKind.TOOL_CALL]
    assert (search.tool, search.side_effect, search.outcome) == ("search_corpus", "read", "ok")
    assert (write.tool, write.side_effect, write.outcome) == ("write_file", "write", "ok")
    assert write.output_sha256 == result.steps[2].tool_calls[0].content_sha256
    assert [(p.tool, p.outcome, p.rule) for p in by_kind[EventKind.POLICY_DECISION]] == [
        ("search_corpus", "allow", None), ("write_file", "gate", "write-outside-drafts")]
    (asked,), (decided,) = by_kind[EventKind.APPROVAL_REQUESTED], by_kind[EventKind.APPROVAL_DECIDED]
    (approval,) = result.approvals
    assert asked.request_id == decided.request_id == approval.request_id and asked.action_sha256 == approval.action_sha256
    assert (decided.approver, decided.decision, decided.status) == ("bob", "approve", "approved")
    calls = by_kind[EventKind.MODEL_CALL]
    assert [(c.role, c.provider, c.model) for c in calls] == [("executor", "openai", "scripted")] * 2
    assert sum(c.prompt_tokens + c.completion_tokens for c in calls) == result.usage.prompt_tokens + result.usage.completion_tokens
    assert [(v.decision, v.score) for v in by_kind[EventKind.VERDICT]] == [("accept", 1.0)] * 3
    assert [(s.status, s.attempts) for s in by_kind[EventKind.STEP_FINISHED]] == [("completed", 1)] * 3
    assert by_kind[EventKind.STEP_FINISHED][1].output_sha256 == result.steps[1].output_sha256
    finished = events[-1]
    assert (finished.status, finished.model_calls, finished.tool_calls) == ("completed", 2, 2)

    # Paging: any page size gives the same events; a page says where the next starts and whether more are held.
    assert paged == events
    assert [e.seq for e in middle.events] == [4, 5, 6, 7] and middle.next_after == 7 and middle.more
    assert last.events == [] and not last.more and last.next_after == last.last_seq == len(events)
    assert last.closed == "completed" and last.run_first_seq == 1 and last.earlier_runs == [] and last.dropped == 0

    # The CLI: JSON lines of the same events; the human form one line each (time, seq, kind, step, facts).
    assert code == 0, err
    assert [EVENT.validate_json(x) for x in out.splitlines()] == events
    assert human_code == 0 and human.splitlines() == [line(e) for e in events]
    assert "approval_requested" in human and "[publish]" in human and "write_file (write) ok" in human
    # Any Temporal client: the raw CLI, with an input or without one (the first page).
    assert raw_code == 0, raw_err
    assert [e["seq"] for e in json.loads(raw)["queryResult"][0]["events"]] == [18, 19]
    assert bare_code == 0 and len(json.loads(bare)["queryResult"][0]["events"]) == len(events)


async def test_budget_warnings_at_80_and_100_percent(client: Client, task_queue: str, tmp_path: Path, monkeypatch) -> None:
    def respond(request):
        return answer("42") if tool_messages(request) else call_tool("calculate", {"expression": "6 * 7"})

    playbook = single_step_playbook(tmp_path, monkeypatch)
    request = GoalRequest(goal="what is 6*7", playbook=playbook, budget=Budget(max_model_calls=2, max_tool_calls=4))
    async with build_worker(client, task_queue, activities=fake_activities(ScriptedModel(respond).activity())):
        handle = await client.start_workflow(GoalWorkflow.run, request, id=f"events-b-{uuid.uuid4().hex[:8]}", task_queue=task_queue)
        async with asyncio.timeout(60):
            result = await handle.result()
        events = await events_of(handle)
    assert result.status is GoalStatus.COMPLETED, result.error
    warnings = [(e.dimension.value, e.threshold, e.used, e.limit) for e in events if e.type is EventKind.BUDGET_WARNING]
    assert warnings == [("model_calls", 0.8, 2, 2), ("model_calls", 1.0, 2, 2)]  # the tool budget: 1 of 4, no warning
    second_call = [i for i, e in enumerate(events) if e.type is EventKind.MODEL_CALL][1]
    assert events[second_call - 2].type is events[second_call - 1].type is EventKind.BUDGET_WARNING  # reserved before the call


async def read_until(stream: asyncio.StreamReader, kind: EventKind, seen: list[str]) -> None:
    while kind.value not in (got := (await stream.readline()).decode()):
        assert got, f"the stream ended before {kind.value}: {seen}"
        seen.append(got)
    seen.append(got)


async def follow(client: Client, task_queue: str, workflow_id: str) -> asyncio.subprocess.Process:
    env = {**os.environ, "TEMPORAL_ADDRESS": address(client), "FOREMAN_TASK_QUEUE": task_queue}
    return await asyncio.create_subprocess_exec(
        sys.executable, "starter.py", "events", workflow_id, "--follow", cwd=settings.PROJECT_ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )


async def test_follow_prints_the_request_then_the_rest_after_approval(
    client: Client, task_queue: str, tmp_path: Path, monkeypatch, foreman_home: Path,
) -> None:
    playbook = gated_playbook(tmp_path, monkeypatch)
    async with goal(client, task_queue, playbook, timeout=60) as handle:
        watcher = await follow(client, task_queue, handle.id)
        assert watcher.stdout is not None and watcher.stderr is not None
        seen: list[str] = []
        await read_until(watcher.stdout, EventKind.APPROVAL_REQUESTED, seen)
        (request,) = await pending(handle)
        waiting = await page(handle)
        assert waiting.closed is None and waiting.events[-1].type is EventKind.APPROVAL_REQUESTED
        assert request.request_id in seen[-1] and not any("approval_decided" in s for s in seen)
        await decide(handle, "alice", request)
        rest, err = await watcher.communicate()
        result, _ = await finish(handle)
    assert watcher.returncode == 0, err.decode()
    assert result.status is GoalStatus.COMPLETED
    after = rest.decode().splitlines()
    assert [x.split()[2] for x in after] == ["approval_decided", "tool_call", "step_finished", "goal_finished"]
    assert "approve by alice" in after[0] and "write_file (write) ok" in after[1] and "completed" in after[-1]
    seqs = [int(x.split()[1].lstrip("#")) for x in seen + after]
    assert seqs == list(range(1, len(seqs) + 1))


async def test_follow_ends_non_zero_with_the_reason_when_the_goal_failed(
    client: Client, task_queue: str, tmp_path: Path, monkeypatch, foreman_home: Path,
) -> None:
    playbook = gated_playbook(tmp_path, monkeypatch)
    async with goal(client, task_queue, playbook, timeout=60) as handle:
        (request,) = await pending(handle)
        await decide(handle, "alice", request, update=DENY_UPDATE)
        result, _ = await finish(handle)
        code, out, err = await run_cli(*starter("events", handle.id, "--follow"), address=address(client), task_queue=task_queue)
        events = await events_of(handle)
        unknown = await run_cli(*starter("events", "no-such-goal"), address=address(client), task_queue=task_queue)
    assert unknown[0] == 1 and "cannot find goal no-such-goal" in unknown[2], unknown
    assert result.status is GoalStatus.FAILED
    assert code == 1 and "ended failed" in err and "ApprovalDenied" in err, err
    assert len(out.splitlines()) == len(events)
    decided = next(e for e in events if e.type is EventKind.APPROVAL_DECIDED)
    refused = next(e for e in events if e.type is EventKind.TOOL_CALL)
    assert (decided.decision, decided.status) == ("deny", "denied") and refused.outcome == "refused"
    assert events[-1].type is EventKind.GOAL_FINISHED and events[-1].status == "failed"


async def test_seqs_count_on_across_continue_as_new_and_follow_crosses_the_runs(
    client: Client, task_queue: str, tmp_path: Path, monkeypatch, foreman_home: Path,
) -> None:
    playbook = gated_long_playbook(tmp_path, monkeypatch, notes=8)
    request = GoalRequest(goal="Publish a notice and note facts", playbook=playbook, max_parallel_steps=2,
                          continue_as_new_after_events=100)
    async with build_worker(client, task_queue, activities=fake_activities(ScriptedModel(long_goal_reply).activity())):
        handle = await client.start_workflow(GoalWorkflow.run, request, id=f"events-long-{uuid.uuid4().hex[:8]}", task_queue=task_queue)
        watcher = await follow(client, task_queue, handle.id)
        async with asyncio.timeout(120):
            (asked,) = await pending(handle)
            while not (await handle.query(STATUS_QUERY, result_type=GoalProgress)).continuations:
                await asyncio.sleep(0.05)
            await decide(handle, "alice", asked)
            result = await handle.result()
            followed, err = await watcher.communicate()
        runs = [c.run_id for c in result.continuations] + [(await handle.describe()).run_id]
        pages = [await page(client.get_workflow_handle(handle.id, run_id=run)) for run in runs]
        per_run = [await events_of(client.get_workflow_handle(handle.id, run_id=run)) for run in runs]
        code, out, _ = await run_cli(*starter("events", handle.id, "--json"), address=address(client), task_queue=task_queue)

    assert result.status is GoalStatus.COMPLETED, result.error
    assert len(runs) >= 2, result.continuations
    everything = [e for events in per_run for e in events]
    assert [e.seq for e in everything] == list(range(1, len(everything) + 1))  # one count across the runs
    for number, (events, got) in enumerate(zip(per_run, pages)):
        assert got.earlier_runs == runs[:number] and got.run_first_seq == events[0].seq
        if number < len(runs) - 1:
            assert events[-1].type is EventKind.CONTINUED_AS_NEW and events[-1].run_id == runs[number]
            assert got.closed == "continued_as_new"
    assert pages[-1].closed == "completed" and everything[-1].type is EventKind.GOAL_FINISHED
    # The parked step is told once: asked once, decided once, written once; it resumed in a later run.
    counted = [e.type for e in everything]
    assert counted.count(EventKind.APPROVAL_REQUESTED) == counted.count(EventKind.APPROVAL_DECIDED) == 1
    assert [e.tool for e in everything if e.type is EventKind.TOOL_CALL] == ["write_file"]
    assert any(e.type is EventKind.STEP_STARTED and e.step_id == "publish" and e.resumed for e in everything)
    assert counted.count(EventKind.STEP_FINISHED) == len(result.steps)
    assert counted.count(EventKind.MODEL_CALL) == result.usage.model_calls
    # The CLI shows the whole goal (earlier runs by run id); --follow streamed the same, run after run, and ended 0.
    assert code == 0 and [EVENT.validate_json(x) for x in out.splitlines()] == everything
    assert watcher.returncode == 0, err.decode()
    assert [int(x.split()[1].lstrip("#")) for x in followed.decode().splitlines()] == [e.seq for e in everything]


async def test_a_run_keeps_its_last_events_and_says_what_it_dropped(client: Client, task_queue: str) -> None:
    async with Worker(client, task_queue=task_queue, workflows=[EventLogProbe]):
        handle = await client.start_workflow(EventLogProbe.run, 10, id=f"events-probe-{uuid.uuid4().hex[:8]}", task_queue=task_queue)
        async with asyncio.timeout(30):
            empty = await page(handle)
            await handle.signal(EventLogProbe.emit, 5)
            held, tail = await page(handle), await page(handle, after=14)
            await handle.signal(EventLogProbe.finish)
            assert await handle.result() == 15
            closed_run = await page(handle, after=12, limit=1)
    # A continued run counts on from the carried seq; nothing yet: an empty page that points past the earlier runs.
    assert empty.events == [] and empty.next_after == 10 and empty.last_seq == 10 and not empty.more
    assert empty.run_first_seq == 11 and empty.earlier_runs == ["earlier-run"]
    # Five emitted, three kept: the oldest two (11, 12) were dropped, and the page says so.
    assert [e.seq for e in held.events] == [13, 14, 15] and held.dropped == 2 and held.oldest_held_seq == 13 == 15 - KEEP + 1
    assert held.run_first_seq == 11 and held.next_after == 15 and not held.more
    assert tail.events == [held.events[-1]] and not tail.more
    assert [e.seq for e in closed_run.events] == [13] and closed_run.more and closed_run.next_after == 13


async def test_an_escalation_is_told_when_opened_and_when_resolved(client: Client, task_queue: str, tmp_path: Path, monkeypatch) -> None:
    playbook = escalating_playbook(tmp_path, monkeypatch)
    async with build_worker(client, task_queue, activities=fake_activities(ScriptedModel(guided).activity())):
        handle = await client.start_workflow(GoalWorkflow.run, GoalRequest(goal="Explain it", playbook=playbook),
                                             id=f"events-esc-{uuid.uuid4().hex[:8]}", task_queue=task_queue)
        async with asyncio.timeout(60):
            (escalation,) = await waiting(handle)
            await resolve(handle, escalation, "bob", "retry", guidance="Say durable.")
            result = await handle.result()
        events = await events_of(handle)
    assert result.status is GoalStatus.COMPLETED, result.error
    assert [e.type.value for e in events if e.step_id == "draft"] == [
        "step_started", "model_call", "verdict", "escalation_opened", "escalation_resolved", "model_call", "verdict", "step_finished"]
    opened, resolved = (e for e in events if e.type in (EventKind.ESCALATION_OPENED, EventKind.ESCALATION_RESOLVED))
    assert opened.escalation_id == resolved.escalation_id == escalation.escalation_id and "retry" in opened.decisions
    assert (resolved.decision, resolved.resolver) == ("retry", "bob")
    verdicts = [(e.decision, e.score) for e in events if e.type is EventKind.VERDICT]
    assert verdicts == [("escalate", 0.0), ("accept", 1.0)] and "durable" in next(e for e in events if e.type is EventKind.VERDICT).reasons[0]


async def test_a_subagent_step_names_its_child_whose_events_are_its_own(client: Client, task_queue: str, tmp_path: Path, monkeypatch) -> None:
    playbook = team_playbooks(tmp_path, monkeypatch)
    async with build_worker(client, task_queue, activities=fake_activities(ScriptedModel(researcher_answers).activity())):
        handle = await client.start_workflow(GoalWorkflow.run, GoalRequest(goal="Explain durable execution", playbook=playbook),
                                             id=f"events-team-{uuid.uuid4().hex[:8]}", task_queue=task_queue)
        async with asyncio.timeout(60):
            result = await handle.result()
        events = await events_of(handle)
        child = await events_of(client.get_workflow_handle(f"{handle.id}/r1"))
    assert result.status is GoalStatus.COMPLETED, result.error
    assert sorted((e.step_id, e.child_workflow_id) for e in events if e.type is EventKind.SUBAGENT) == [
        ("r1", f"{handle.id}/r1"), ("r2", f"{handle.id}/r2")]
    # The parent shows each child as one step (the merge's model call is the parent's only one); the child tells its own.
    assert [(e.type.value, e.step_id) for e in events if e.type is EventKind.MODEL_CALL] == [("model_call", "merge")]
    assert [e.type.value for e in child] == [
        "plan_made", "step_started", "model_call", "step_finished", "goal_finished"]
    assert [e.seq for e in child] == list(range(1, len(child) + 1))
