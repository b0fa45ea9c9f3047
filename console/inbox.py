"""The approval inbox's data: every pending approval request and open escalation across running goals.

Goals come from the visibility store (`ForemanPendingApprovals > 0`, or ForemanStatus escalated); what waits in
each comes from its own `pending` and `escalations` queries, so the inbox shows exactly what the goal would accept
a decision for. A write_file request gets a diff against the workspace's current file (the whole new content when
the file does not exist here).
"""

from __future__ import annotations

import asyncio
import difflib
import json
from dataclasses import dataclass, field
from datetime import timedelta

from pydantic import ValidationError
from temporalio.client import Client, RPCTimeoutOrCancelledError, WorkflowQueryFailedError, WorkflowQueryRejectedError
from temporalio.service import RPCError

from console.goals import GoalRow, waiting_goals
from contracts.approvals import PENDING_QUERY, ApprovalRequest
from contracts.escalations import ESCALATIONS_QUERY, Escalation
from contracts.tools import WriteFileArgs
from core.policy import shows_its_action
from stores import StoreError, Workspace

QUERY_ERRORS = (RPCError, RPCTimeoutOrCancelledError, WorkflowQueryFailedError, WorkflowQueryRejectedError)
MAX_DIFF_LINES = 2_000
MAX_DIFF_BYTES = 200_000  # past this a diff could take seconds of CPU (difflib): the new content is shown instead
QUERY_TIMEOUT = timedelta(seconds=3)  # a goal whose worker is down must not hold the page


@dataclass
class FileChange:
    """What a write_file would do to the workspace: a unified diff, or the whole content of a new file."""

    path: str
    new_file: bool
    diff: list[str] = field(default_factory=list)
    content: str = ""
    note: str = ""


@dataclass
class ApprovalItem:
    goal: GoalRow
    request: ApprovalRequest
    arguments: str  # the canonical arguments, pretty-printed in full
    change: FileChange | None = None
    forged: bool = False  # its tool and arguments do not hash to its action: shown, never decided here


@dataclass
class EscalationItem:
    goal: GoalRow
    escalation: Escalation


@dataclass
class Inbox:
    approvals: list[ApprovalItem] = field(default_factory=list)
    escalations: list[EscalationItem] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # goals that could not be asked (worker down...)


def pretty_arguments(arguments_json: str) -> str:
    try:
        return json.dumps(json.loads(arguments_json), indent=2, sort_keys=True, ensure_ascii=False)
    except ValueError:
        return arguments_json


def file_change(request: ApprovalRequest, workspace: Workspace | None) -> FileChange | None:
    """For a write_file request: the diff against the workspace's current content, or the whole new content."""
    if request.tool != "write_file":
        return None
    try:
        args = WriteFileArgs.model_validate_json(request.arguments_json)
    except ValidationError:
        return None
    if workspace is None:
        return FileChange(path=args.path, new_file=True, content=args.content, note="no workspace on this machine")
    try:
        current = workspace.read_text(args.path)
    except StoreError as err:  # not there (a new file), outside the workspace, not text...
        return FileChange(path=args.path, new_file=True, content=args.content, note=str(err))
    if max(len(current), len(args.content)) > MAX_DIFF_BYTES:  # difflib is quadratic at worst: a huge write is shown whole
        return FileChange(path=args.path, new_file=True, content=args.content,
                          note=f"no diff: over {MAX_DIFF_BYTES} bytes; the whole new content is shown")
    diff = list(difflib.unified_diff(current.splitlines(), args.content.splitlines(), f"a/{args.path}", f"b/{args.path}", lineterm=""))
    note = f"diff cut at {MAX_DIFF_LINES} of {len(diff)} lines" if len(diff) > MAX_DIFF_LINES else ""
    return FileChange(path=args.path, new_file=False, diff=diff[:MAX_DIFF_LINES], note=note or ("no change" if not diff else ""))


async def _waiting_in(client: Client, goal: GoalRow) -> tuple[list[ApprovalRequest], list[Escalation]] | str:
    """What waits in one goal, or why it could not be asked (no worker answers within QUERY_TIMEOUT...)."""
    handle = client.get_workflow_handle(goal.workflow_id)
    try:
        return (await handle.query(PENDING_QUERY, result_type=list[ApprovalRequest], rpc_timeout=QUERY_TIMEOUT),
                await handle.query(ESCALATIONS_QUERY, result_type=list[Escalation], rpc_timeout=QUERY_TIMEOUT))
    except QUERY_ERRORS as err:
        return f"{goal.workflow_id}: cannot ask the goal what waits ({type(err).__name__}: {err}); is its worker running?"


async def collect(client: Client, workspace: Workspace | None) -> Inbox:
    """The inbox; goals are asked at once, so one without a worker costs QUERY_TIMEOUT, not a wait per goal."""
    inbox = Inbox()
    goals = await waiting_goals(client)
    for goal, waiting in zip(goals, await asyncio.gather(*(_waiting_in(client, g) for g in goals)), strict=True):
        if isinstance(waiting, str):
            inbox.problems.append(waiting)
            continue
        requests, escalations = waiting
        for r in requests:
            forged = not shows_its_action(r.tool, r.arguments_json, r.action_sha256)
            change = None if forged else await asyncio.to_thread(file_change, r, workspace)  # reads and diffs off the loop
            inbox.approvals.append(ApprovalItem(goal, r, pretty_arguments(r.arguments_json), change, forged))
        inbox.escalations += [EscalationItem(goal, e) for e in escalations if e.status.value == "pending"]
    inbox.approvals.sort(key=lambda item: item.request.expires_at)
    inbox.escalations.sort(key=lambda item: item.escalation.expires_at)
    return inbox
