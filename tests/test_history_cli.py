"""`starter.py history` and `starter.py replay` (real dev server, scripted model): an exported history is the
JSON of `temporal workflow show -o json` and replays OK against today's code; against a deliberately changed
workflow it is NONDETERMINISTIC at the event where the change departs from it; every recorded history in
tests/histories/ replays OK through the command; a file that is not a history is a one-line error."""

from __future__ import annotations

import argparse
import json
import uuid
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory

import histories
import starter as cli
from contracts.goal import GoalRequest, GoalStatus
from core.history import local_activity
from devserver import find_binary
from tests.changed_workflow import ChangedGoalWorkflow
from tests.fakes import ScriptedModel, answer
from tests.helpers import fake_activities, long_goal_reply, long_playbook, run_cli, single_step_playbook, starter
from worker import build_worker
from workflows.goal import GoalWorkflow

RECORDED = sorted((Path(__file__).resolve().parent / "histories").glob("*.json"))


async def short_goal(client: Client, task_queue: str, request: GoalRequest, respond) -> str:
    """Run `request` to its end on an in-process worker; its workflow id."""
    workflow_id = f"history-cli-{uuid.uuid4().hex[:8]}"
    async with build_worker(client, task_queue, activities=fake_activities(ScriptedModel(respond).activity())):
        result = await client.execute_workflow(GoalWorkflow.run, request, id=workflow_id, task_queue=task_queue)
    assert result.status is GoalStatus.COMPLETED, result.error
    return workflow_id


def events_of(text: str) -> list[dict]:
    return WorkflowHistory.from_json("any", text).to_json_dict()["events"]


async def test_a_fresh_history_replays_and_a_changed_workflow_does_not(
    client: Client, task_queue: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    address = client.service_client.config.target_host
    playbook = single_step_playbook(tmp_path, monkeypatch)
    workflow_id = await short_goal(client, task_queue, GoalRequest(goal="What is 6*7?", playbook=playbook), lambda r: answer("42"))
    out = tmp_path / "goal.json"

    code, stdout, err = await run_cli(*starter("history", workflow_id, "--out", str(out)), address=address, task_queue=task_queue)
    history = WorkflowHistory.from_json(workflow_id, out.read_text())
    assert code == 0 and stdout == f"wrote {out} ({len(history.events)} events, run {history.run_id})\n", err
    # The same JSON as the temporal CLI's: the same keys and values, event by event.
    code, shown, err = await run_cli(find_binary("temporal"), "workflow", "show", "--address", address, "-w", workflow_id,
                                     "-o", "json", address=address, task_queue=task_queue)
    assert code == 0, err
    assert json.loads(out.read_text()) == json.loads(shown)
    assert events_of(out.read_text()) == events_of(shown)

    code, stdout, err = await run_cli(*starter("replay", str(out)), address=address, task_queue=task_queue)
    assert (code, stdout, err) == (0, f"OK  {out} ({len(history.events)} events)\n", "")

    # Today's code changed: it schedules an activity where the history planned in a local activity (event 5).
    (replayed,) = await histories.replay_files([out], [ChangedGoalWorkflow])
    planned = history.events[replayed.event_id - 1]
    assert local_activity(planned)[0] == "plan_goal" and replayed.event_id == 5  # a playbook's plan is a local activity
    assert replayed.nondeterministic and replayed.line() == (
        f"NONDETERMINISTIC {out}: event 5: [TMPRL1100] Nondeterminism error: Missing associated machine for LocalActivity(1)")

    # The same file, edited to say another activity was scheduled there: the command exits 1 and says where.
    edited = tmp_path / "edited.json"
    raw = json.loads(out.read_text())
    scheduled = [e for e in raw["events"] if e["eventType"] == "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED"]
    scheduled[-1]["activityTaskScheduledEventAttributes"]["activityType"]["name"] = "not_what_the_code_does"
    edited.write_text(json.dumps(raw))
    code, stdout, err = await run_cli(*starter("replay", str(out), str(edited)), address=address, task_queue=task_queue)
    assert code == 1 and err == "", err
    ok, bad = stdout.splitlines()
    assert ok == f"OK  {out} ({len(history.events)} events)"
    assert bad.startswith(f"NONDETERMINISTIC {edited}: event {scheduled[-1]['eventId']}: [TMPRL1100] Nondeterminism error: ")
    assert "'not_what_the_code_does'" in bad


async def test_all_runs_of_a_goal_that_continued_as_new(
    client: Client, task_queue: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    address = client.service_client.config.target_host
    first = {"type": "agent", "id": "first", "role": "researcher", "instruction": "Note the first fact.", "max_turns": 1}
    playbook = long_playbook(tmp_path, monkeypatch, first, {"principals": []}, notes=8)
    request = GoalRequest(goal="Note facts", playbook=playbook, max_parallel_steps=2, continue_as_new_after_events=50)
    workflow_id = await short_goal(client, task_queue, request, long_goal_reply)
    out = tmp_path / "long.json"

    code, stdout, err = await run_cli(*starter("history", workflow_id, "--all-runs", "--out", str(out)), address=address, task_queue=task_queue)
    assert code == 0, err
    written = [Path(line.split()[1]) for line in stdout.splitlines()]
    assert len(written) >= 2 and written[-1] == out
    assert written[:-1] == [tmp_path / f"long-run{n}.json" for n in range(1, len(written))]
    runs = [histories.load(path) for path in written]
    assert all(h.workflow_id == workflow_id for h in runs)
    ended = [h.events[-1].event_type for h in runs]
    assert ended[:-1] == [EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW] * (len(runs) - 1)
    assert ended[-1] == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED
    # One run by id: the first one.
    code, stdout, err = await run_cli(*starter("history", workflow_id, "--run-id", runs[0].run_id), address=address, task_queue=task_queue)
    assert code == 0 and events_of(stdout) == events_of(written[0].read_text()), err

    code, stdout, err = await run_cli(*starter("replay", *map(str, written)), address=address, task_queue=task_queue)
    assert code == 0 and [line.split()[0] for line in stdout.splitlines()] == ["OK"] * len(written), stdout + err


async def test_every_recorded_history_replays_through_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    code = await cli.cmd_replay(argparse.Namespace(files=[str(p) for p in RECORDED]))
    lines = capsys.readouterr().out.splitlines()
    assert code == 0 and len(lines) == len(RECORDED) and all(line.startswith("OK  ") for line in lines), lines


@pytest.mark.parametrize("content, message", [
    ("not json", "is not a workflow history: Expecting value: line 1 column 1 (char 0)"),
    ('{"events": []}', "is not a workflow history: no WorkflowExecutionStarted event with a workflowId first"),
])
async def test_a_file_that_is_not_a_history_is_a_one_line_error(tmp_path: Path, task_queue: str, content: str, message: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    code, out, err = await run_cli(*starter("replay", str(RECORDED[0]), str(bad)), address="127.0.0.1:1", task_queue=task_queue)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith(f"error: {bad} {message}")


async def test_history_of_an_unknown_goal_is_a_one_line_error(client: Client, task_queue: str) -> None:
    code, out, err = await run_cli(*starter("history", "no-such-goal"), address=client.service_client.config.target_host,
                                   task_queue=task_queue)
    assert code == 1 and out == "" and err.startswith("error: cannot fetch the history of no-such-goal: ") and err.count("\n") == 1
