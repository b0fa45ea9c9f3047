"""The people around a goal, for tests and benchmarks: a playbook author (`write_playbook` into a
FOREMAN_PLAYBOOKS_DIR folder) and an approver who approves whatever is pending, by Update.

Never used by the worker or the starter: real approvals come from people via `starter.py approve`,
the `temporal` CLI or any client.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from temporalio.client import WorkflowHandle, WorkflowQueryFailedError, WorkflowUpdateFailedError
from temporalio.service import RPCError

from contracts.approvals import APPROVE_UPDATE, PENDING_QUERY, ApprovalDecision, ApprovalRequest


def write_playbook(folder: Path, playbook: dict) -> str:
    """Write `playbook` as `<folder>/<name>.json`; returns its name."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{playbook['name']}.json").write_text(json.dumps(playbook))
    return playbook["name"]


async def approve_pending(handle: WorkflowHandle, approvers: tuple[str, ...]) -> int:
    """Approve every open request, each with as many distinct approvers as it needs (in order)."""
    requests = await handle.query(PENDING_QUERY, result_type=list[ApprovalRequest])
    for request in requests:
        for name in approvers[len(request.approvals_given) : request.approvals_needed]:
            await handle.execute_update(
                APPROVE_UPDATE,
                ApprovalDecision(request_id=request.request_id, approver=name, action_sha256=request.action_sha256),
                result_type=ApprovalRequest,
            )
    return len(requests)


async def approve_everything(handle: WorkflowHandle, approvers: tuple[str, ...]) -> None:
    """A human who keeps approving whatever is asked (until cancelled)."""
    while True:
        try:
            await approve_pending(handle, approvers)
        except (RPCError, WorkflowUpdateFailedError, WorkflowQueryFailedError):
            pass  # e.g. the worker died mid-update, or another approval landed first: look again
        await asyncio.sleep(0.05)
