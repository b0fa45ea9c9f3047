"""Exactly-once side effects on the real dev server: the workflow stamps each call's idempotency key (goal, first
run, step, call index, action) and the tools record their effects under it.

- A worker SIGKILLed after a write's effect is done and recorded, before the activity reports it: a new worker
  retries the activity, which finds the record; one effect (one memory entry; the file keeps a later change),
  one ledger row per key.
- A step parked at a continue-as-new keeps counting its calls: the gated write it makes in a later run carries the
  key of its index in the step, built from the goal's first run id, not the run that sent it.
- Two identical calls at two indexes of one step are two effects under two keys.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import uuid
from contextlib import closing
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory

import settings
from contracts.goal import STATUS_QUERY, GoalProgress, GoalRequest, GoalResult, GoalStatus
from contracts.llm import ModelRequest
from contracts.tools import RememberArgs, WriteFileArgs
from core.idempotency import CallSite, idempotency_key
from core.tools import TOOLS
from tests.fakes import ScriptedModel, answer, call_tool, step_role, tool_messages
from tests.helpers import (
    assert_each_activity_completed_once, decide, fake_activities, kill_workers, long_playbook, pending, replay, run_goal, start_worker,
    write_playbook,
)
from worker import build_worker
from workflows.goal import GoalWorkflow

NOTE = "Exactly once: the ledger answers a retried write."


def ledger_rows() -> dict[str, int]:
    """Key -> rows under it, in the worker's SQLite ledger."""
    with closing(sqlite3.connect(settings.idempotency_path())) as db:
        return dict(db.execute("SELECT key, COUNT(*) FROM ledger GROUP BY key").fetchall())


def memory_entries(text: str) -> int:
    with closing(sqlite3.connect(settings.memory_path())) as db:
        (count,) = db.execute("SELECT COUNT(*) FROM memories WHERE text = ?", (text,)).fetchone()
    return count


def scheduled_inputs(history: WorkflowHistory, activity: str) -> list[dict]:
    """The input of every `activity` scheduled in `history`, decoded."""
    return [
        json.loads(e.activity_task_scheduled_event_attributes.input.payloads[0].data)
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED and e.activity_task_scheduled_event_attributes.activity_type.name == activity
    ]


def started_attempts(history: WorkflowHistory) -> dict[str, list[int]]:
    """Activity type -> the attempt number of each start."""
    types = {e.event_id: e.activity_task_scheduled_event_attributes.activity_type.name
             for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED}
    attempts: dict[str, list[int]] = {}
    for e in history.events:
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            started = e.activity_task_started_event_attributes
            attempts.setdefault(types[started.scheduled_event_id], []).append(started.attempt)
    return attempts


async def test_a_write_killed_after_its_effect_is_done_once_by_the_next_worker(
    client: Client, task_queue: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, foreman_home: Path,
) -> None:
    monkeypatch.setenv("FOREMAN_PLAYBOOKS_DIR", str(tmp_path / "playbooks"))
    steps = [
        {"type": "tool", "id": "note", "role": "drafter",
         "invocation": {"tool": "remember", "arguments_json": json.dumps({"text": NOTE, "topic": "once"})}},
        {"type": "tool", "id": "draft", "role": "drafter",
         "invocation": {"tool": "write_file", "arguments_json": json.dumps({"path": "drafts/once.md", "content": "first words"})}},
    ]
    write_playbook(tmp_path / "playbooks", {"name": "once", "steps": steps, "output_step": "draft"})
    marker = tmp_path / "held.txt"
    address = client.service_client.config.target_host
    first = start_worker(address, task_queue, "--hold-after-record", str(marker))
    second = None
    try:
        handle = await client.start_workflow(
            GoalWorkflow.run, GoalRequest(goal="Note and draft, once", playbook="once", max_parallel_steps=2),
            id=f"once-{uuid.uuid4().hex[:8]}", task_queue=task_queue,
        )
        async with asyncio.timeout(60):  # both effects done and recorded, neither activity reported
            while not marker.exists() or len(marker.read_text().split()) < 2:
                await asyncio.sleep(0.05)
        held = set(marker.read_text().split())
        draft = foreman_home / "workspace" / "drafts" / "once.md"
        assert draft.read_text() == "first words" and memory_entries(NOTE) == 1
        draft.write_text("changed after the write")  # a second write would put "first words" back
        first.send_signal(signal.SIGKILL)
        first.wait()

        second = start_worker(address, task_queue)
        async with asyncio.timeout(150):  # the retries wait out TOOL_WRITE's start-to-close timeout (60 s)
            result: GoalResult = await handle.result()
    finally:
        kill_workers(first, second)

    assert result.status is GoalStatus.COMPLETED, result.error
    calls = {s.step_id: s.tool_calls[0] for s in result.steps}
    assert {c.idempotency_key for c in calls.values()} == held
    assert calls["note"].ok and calls["draft"].ok
    # One effect: one memory entry, and the retried write did not write again (the later change stands).
    assert memory_entries(NOTE) == 1
    assert draft.read_text() == "changed after the write"
    # One ledger row per key, and no other row.
    assert ledger_rows() == {key: 1 for key in held}
    history = await handle.fetch_history()
    attempts = started_attempts(history)
    assert attempts["remember"] == attempts["write_file"] == [2]  # only the last start of each is in the history: the retry
    assert_each_activity_completed_once(history)
    await replay(history)


def publish_twice(request: ModelRequest):
    """The publisher writes a draft (not gated), then the published file (gated), then reports; notes are short."""
    if step_role(request) == "publisher":
        done = len(tool_messages(request))
        if done == 0:
            return call_tool("write_file", {"path": "drafts/notice.md", "content": "Draft."})
        if done == 1:
            return call_tool("write_file", {"path": "published/notice.md", "content": "Notice."}, call_id="call-2")
        return answer("Published the notice.")
    return answer("Noted: " + request.messages[-1].content.rsplit("\n", 1)[-1])


async def test_a_parked_step_keeps_its_call_index_and_key_across_continue_as_new(
    client: Client, task_queue: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, foreman_home: Path,
) -> None:
    publish = {"type": "agent", "id": "publish", "role": "publisher", "instruction": "Publish the notice.", "tools": ["write_file"],
               "max_turns": 4, "checks": [{"type": "non_empty"}]}
    playbook = long_playbook(tmp_path, monkeypatch, publish, {
        "principals": [{"role": "publisher", "tools": ["write_file"], "side_effects": ["read", "write"]}],
        "approvers": [{"name": "alice", "roles": ["editor"]}],
        "gates": [{"name": "publish", "when": [{"type": "path_outside", "prefixes": ["drafts/"]}], "approver_roles": ["editor"],
                   "reason": "published files are visible to others", "expires_after_seconds": 600}],
    })
    request = GoalRequest(goal="Publish a notice and note facts", playbook=playbook, max_parallel_steps=2, continue_as_new_after_events=120)
    async with build_worker(client, task_queue, activities=fake_activities(ScriptedModel(publish_twice).activity())):
        handle = await client.start_workflow(GoalWorkflow.run, request, id=f"keys-{uuid.uuid4().hex[:10]}", task_queue=task_queue)
        async with asyncio.timeout(120):
            (waiting,) = await pending(handle)
            while not (await handle.query(STATUS_QUERY, result_type=GoalProgress)).continuations:
                await asyncio.sleep(0.05)  # the publish step waits for alice across a boundary
            await decide(handle, "alice", waiting)
            result = await handle.result()
        runs = [c.run_id for c in result.continuations] + [(await handle.describe()).run_id]
        histories = [await client.get_workflow_handle(handle.id, run_id=run).fetch_history() for run in runs]

    assert result.status is GoalStatus.COMPLETED, result.error
    assert any("publish" in c.parked_steps for c in result.continuations)
    # Each write was sent once, in the run that made it; the gated one in a later run than the first.
    sent = [(number, args) for number, h in enumerate(histories) for args in scheduled_inputs(h, "write_file")]
    assert [args["path"] for _, args in sent] == ["drafts/notice.md", "published/notice.md"] and sent[1][0] > 0
    # Their keys: call 0 and call 1 of the step, in the goal's first run, wherever they were sent from.
    site = CallSite(namespace=client.namespace, workflow_id=handle.id, first_run_id=runs[0], step_id="publish", call_index=0)
    expected = [idempotency_key(CallSite(**{**site.__dict__, "call_index": i}), "write_file", WriteFileArgs.model_validate(args))
                for i, (_, args) in enumerate(sent)]
    assert [args["idempotency_key"] for _, args in sent] == expected
    publish_step = next(s for s in result.steps if s.step_id == "publish")
    assert [c.idempotency_key for c in publish_step.tool_calls] == expected
    assert ledger_rows() == {key: 1 for key in expected}
    for history in histories:
        await replay(history)


async def test_two_identical_calls_in_one_step_are_two_effects_under_two_keys(
    client: Client, task_queue: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, foreman_home: Path,
) -> None:
    monkeypatch.setenv("FOREMAN_PLAYBOOKS_DIR", str(tmp_path / "playbooks"))
    note = {"type": "agent", "id": "note", "role": "drafter", "instruction": "Keep what you learned, twice.", "tools": ["remember", "recall"],
            "max_turns": 4}
    write_playbook(tmp_path / "playbooks", {"name": "twice", "steps": [note]})

    def respond(request: ModelRequest):
        done = len(tool_messages(request))
        if done == 1:  # a read between the two writes: it takes an index too, and gets no key
            return call_tool("recall", {"query": "exactly once"}, call_id=f"call-{done}")
        if done < 3:
            return call_tool("remember", {"text": NOTE, "topic": "once"}, call_id=f"call-{done}")
        return answer("noted twice")

    result, history = await run_goal(client, task_queue, GoalRequest(goal="Remember twice", playbook="twice"),
                                     fake_activities(ScriptedModel(respond).activity()))
    assert result.status is GoalStatus.COMPLETED, result.error
    calls = result.steps[0].tool_calls
    assert [c.tool for c in calls] == ["remember", "recall", "remember"] and all(c.ok for c in calls)
    assert calls[1].idempotency_key is None and TOOLS["recall"].keyed is False
    sent = scheduled_inputs(history, "remember")
    first_run = history.events[0].workflow_execution_started_event_attributes.first_execution_run_id
    site = CallSite(namespace=client.namespace, workflow_id=history.workflow_id, first_run_id=first_run, step_id="note", call_index=0)
    expected = [idempotency_key(CallSite(**{**site.__dict__, "call_index": i}), "remember", RememberArgs.model_validate(args))
                for i, args in zip((0, 2), sent, strict=True)]
    assert [c.idempotency_key for c in (calls[0], calls[2])] == [a["idempotency_key"] for a in sent] == expected
    assert expected[0] != expected[1] and memory_entries(NOTE) == 2
    assert ledger_rows() == {key: 1 for key in expected}
