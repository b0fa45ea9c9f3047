"""A goal's result stays bounded whatever its number of steps: a 400-step goal on the real dev server
returns a compact result (under 256 KB) whose full steps, plan and audit are archived in the content
store, and `starter.py result` reassembles the whole. It is long enough to continue as new on the way."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import Client

from contracts.goal import GoalRequest, GoalResult, GoalStatus
from tests.fakes import ScriptedModel, answer
from tests.helpers import fake_activities, run_cli, run_goal, starter, write_playbook

STEPS = 400
OUTPUT = "Durable execution keeps a history of every step. " * 20  # about 1 KB per step


async def test_a_400_step_goal_has_a_bounded_result_that_reassembles(client: Client, task_queue: str, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOREMAN_PLAYBOOKS_DIR", str(tmp_path / "playbooks"))
    steps = [{"type": "agent", "id": f"s{i:03d}", "role": "researcher", "instruction": f"Note fact {i}.", "max_turns": 1,
              "checks": [{"type": "non_empty"}]} for i in range(STEPS)]
    name = write_playbook(tmp_path / "playbooks", {"name": "wide", "steps": steps})
    request = GoalRequest(goal="Many small steps", playbook=name, max_parallel_steps=32)
    request.budget.max_model_calls = 1_000
    result, history = await run_goal(client, task_queue, request, fake_activities(ScriptedModel(lambda r: answer(OUTPUT)).activity()),
                                     timeout=240, whole=False)
    assert result.status is GoalStatus.COMPLETED, result.error
    size = len(result.model_dump_json())
    assert size < 256_000 and result.archive is not None, size
    assert result.archive.steps_total == STEPS and len(result.steps) == result.archive.steps_shown < STEPS
    assert result.plan is None and all(len(s.output) <= 301 for s in result.steps)
    assert len(result.archive.parts) >= 2 and all(p.size_bytes <= 300_000 for p in result.archive.parts)
    # Past 2,000 history events the goal continued as new; no run's history came near that many events.
    assert result.continuations and all(c.history_events <= 2_000 for c in result.continuations)

    address = client.service_client.config.target_host
    code, out, err = await run_cli(*starter("result", result.workflow_id, "--json"), address=address, task_queue=task_queue, timeout=60)
    assert code == 0, err
    whole = GoalResult.model_validate_json(out)
    assert whole.archive is None and len(whole.steps) == STEPS and whole.plan is not None and len(whole.plan.steps) == STEPS
    assert all(s.output == OUTPUT.strip() and s.verdicts for s in whole.steps)  # answers are stripped
    print(json.dumps({"events_per_run": [c.history_events for c in result.continuations] + [len(history.events)],
                      "carried_bytes": [c.carried_bytes for c in result.continuations],
                      "compact_result_bytes": size, "full_result_bytes": len(out)}))


def test_long_approval_arguments_are_archived_not_carried() -> None:
    """A gated write of a large file must not keep the compact result large: its arguments go by hash."""
    from datetime import UTC, datetime

    from contracts.approvals import ApprovalRequest
    from workflows.archive import _parts, compact_approval

    big = json.dumps({"path": "briefs/x.md", "content": "é" * 300_000})
    request = ApprovalRequest(request_id="r", step_id="s", tool="write_file", arguments_json=big, action_sha256="0" * 64,
                              requested_by="publisher", rule="g", reason="r", created_at=datetime.now(UTC),
                              expires_at=datetime.now(UTC), approvals_needed=1)
    compact = compact_approval(request)
    assert len(compact.arguments_json) < 200 and "archived_arguments_sha256" in compact.arguments_json
    (part,) = _parts(GoalResult(workflow_id="w", goal="g", status=GoalStatus.COMPLETED, approvals=[request]))
    assert part.approvals == [request]  # the full request is in the archive
