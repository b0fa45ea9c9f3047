"""Helpers shared by the tests (and tests/record_history.py): run a goal on a real server with a given
model, drive its approvals and escalations, inspect and replay its history, run the CLIs and a worker
process, and the set-ups (playbooks, a planner server) that more than one module needs, so no module
imports a test module. The approver and the playbook writer live in `testkit.goals` (shared with bench/)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowHandle, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

import settings
from contracts.approvals import APPROVE_UPDATE, PENDING_QUERY, ApprovalDecision, ApprovalRequest
from contracts.escalations import ESCALATIONS_QUERY, RESOLVE_UPDATE, Escalation, ResolveRequest
from contracts.goal import GoalRequest, GoalResult, ModelRouting
from contracts.llm import ChatMessage, ModelRequest, ModelSpec, Provider
from core.history import local_activity
from tests.fakes import guided
from tests.llama_server import Recorded, Reply, ScriptedServer
from playbooks import load_default_policy
from testkit.goals import approve_everything, approve_pending, write_playbook
from testkit.models import ScriptedModel, answer, call_tool, step_role, tool_messages
from starter import reassembled
from worker import all_activities, build_worker
from workflows.goal import GoalWorkflow
from workflows.runner import workflow_runner

__all__ = [
    "fan_in_playbook",
    "APPROVERS", "CHAIN_APPROVERS", "CHAIN_PRINCIPALS", "CONTENT", "DRAFT", "GOAL", "PRINCIPALS", "SQL_GATE", "TARGET",
    "TEAM_APPROVERS", "TEAM_PRINCIPALS", "TERMS", "VARIANTS", "PlannerServer",
    "accepted_update_ids", "approve_everything", "approve_pending", "assert_each_activity_completed_once", "audit",
    "chain", "completion", "decide", "draft", "escalating_playbook", "explore_playbook", "fake_activities",
    "fallback_playbook", "finish", "gated_playbook", "goal", "models", "pending", "replan_llm_plans",
    "replan_resolver_plans", "replannable_playbook", "replay", "resolve", "run_cli", "run_goal", "scheduled_activities",
    "single_step_playbook", "sql_chain_steps", "sql_step", "start_worker", "kill_workers", "starter", "team_playbooks",
    "update_events", "waiting", "write_playbook",
    "LONG_NOTES", "LONG_TARGET", "gated_long_playbook", "long_goal_reply", "long_playbook",
    "mcp_playbook", "notes_config", "notes_server",
]


def fake_activities(call_model: Callable) -> list:
    """Every real activity (`worker.all_activities`), with `call_model` replaced by the test's."""
    return all_activities(call_model)


async def replay(history: WorkflowHistory) -> None:
    """Replay a history against today's workflow code; raises on any nondeterminism."""
    await Replayer(workflows=[GoalWorkflow], data_converter=pydantic_data_converter, workflow_runner=workflow_runner()).replay_workflow(history)


async def run_goal(
    client: Client, task_queue: str, request: GoalRequest, activities: list, timeout: float = 90,
    approvers: tuple[str, ...] | None = ("bob", "carol"), whole: bool = True,
) -> tuple[GoalResult, WorkflowHistory]:
    """Run one goal on a fresh worker (with `approvers` approving every gated action), then replay it.
    `whole`: a large result comes back reassembled from its archived parts, as `starter.py result` shows it."""
    async with build_worker(client, task_queue, activities=activities):
        handle = await client.start_workflow(
            GoalWorkflow.run, request, id=f"goal-test-{uuid.uuid4().hex[:10]}", task_queue=task_queue
        )
        approving = asyncio.create_task(approve_everything(handle, approvers)) if approvers else None
        try:
            async with asyncio.timeout(timeout):
                result = await handle.result()
        finally:
            if approving:
                approving.cancel()
        history = await handle.fetch_history()
    await replay(history)
    return (reassembled(result) if whole else result), history


def activity_label(scheduled: HistoryEvent) -> str:
    """What names a scheduled activity in the UI: its summary, or (model calls) its activity id."""
    if scheduled.user_metadata.HasField("summary"):
        return json.loads(scheduled.user_metadata.summary.data)
    return scheduled.activity_task_scheduled_event_attributes.activity_id


def activity_labels(history: WorkflowHistory) -> list[str]:
    """`activity_label` of every scheduled activity, in order."""
    return [activity_label(e) for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED]


def scheduled_activities(history: WorkflowHistory) -> list[str]:
    """Activity type names in the order they were scheduled, local activities (recorded as markers) included."""
    names = []
    for e in history.events:
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            names.append(e.activity_task_scheduled_event_attributes.activity_type.name)
        elif (local := local_activity(e)) is not None:
            names.append(local[0])
    return names


def assert_each_activity_completed_once(history: WorkflowHistory) -> list[str]:
    """Every scheduled activity completed exactly once (nothing that finished ran again); returns the
    scheduled activity ids."""
    scheduled = [e.event_id for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED]
    completed = Counter(
        e.activity_task_completed_event_attributes.scheduled_event_id
        for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
    )
    assert sorted(completed) == scheduled and set(completed.values()) == {1}, (scheduled, completed)
    return scheduled


# --- playbooks -----------------------------------------------------------------------------------


def single_step_playbook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **step) -> str:
    """`one-step`: one analyst agent step with `calculate` (override any field with `step`)."""
    monkeypatch.setenv("FOREMAN_PLAYBOOKS_DIR", str(tmp_path / "playbooks"))
    base = {"type": "agent", "id": "solve", "role": "analyst", "instruction": "Solve it.", "tools": ["calculate"]}
    return write_playbook(tmp_path / "playbooks", {"name": "one-step", "steps": [{**base, **step}]})


# --- approvals: a playbook whose publisher writes TARGET behind its own gate -----------------------

TARGET = "published/x.md"
CONTENT = "Approved words."
DRAFT = "A draft written by the drafter step."
APPROVERS = [
    {"name": "alice", "roles": ["editor"]},
    {"name": "bob", "roles": ["editor", "release-manager"]},
    {"name": "carol", "roles": ["release-manager"]},
]
PRINCIPALS = [
    {"role": "publisher", "tools": ["write_file"], "side_effects": ["read", "write"]},
    {"role": "drafter", "tools": [], "side_effects": ["read"]},
]
BOUND = "bound"  # `decide`: send the request's own action hash


def gated_playbook(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, content: str = CONTENT, expected_sha256: str | None = None,
    approvers: list[dict] = APPROVERS, also_write: str | None = None, escalations: dict | None = None, **rule: object,
) -> str:
    """A playbook whose publisher writes TARGET (after a drafter step if `content` uses its output;
    beside an independent second write to `also_write`), with its own policy: one gate rule on
    writes outside drafts/, editors by default."""
    monkeypatch.setenv("FOREMAN_PLAYBOOKS_DIR", str(tmp_path / "playbooks"))
    gate = {"name": "publish", "when": [{"type": "path_outside", "prefixes": ["drafts/"]}],
            "approver_roles": ["editor"], "reason": "published files are visible to others", **rule}
    arguments = {"path": TARGET, "content": content} | ({"expected_sha256": expected_sha256} if expected_sha256 else {})
    steps = [{"type": "agent", "id": "a", "role": "drafter", "instruction": "Draft it."}] if "{{steps.a." in content else []
    steps.append({"type": "tool", "id": "publish", "role": "publisher", "depends_on": [s["id"] for s in steps],
                  "invocation": {"tool": "write_file", "arguments_json": json.dumps(arguments)}})
    if also_write:
        steps.append({"type": "tool", "id": "publish2", "role": "publisher", "invocation": {
            "tool": "write_file", "arguments_json": json.dumps({"path": also_write, "content": CONTENT})}})
    policy = {"principals": PRINCIPALS, "approvers": approvers, "gates": [gate]}
    policy |= {"escalations": escalations} if escalations else {}
    return write_playbook(tmp_path / "playbooks", {"name": "gated", "steps": steps, "policy": policy})


@asynccontextmanager
async def goal(client: Client, task_queue: str, playbook: str, timeout: float = 30) -> AsyncIterator[WorkflowHandle]:
    """A started goal on an in-process worker; the whole body is bounded by `timeout`."""
    model = ScriptedModel(lambda request: answer(DRAFT))
    async with build_worker(client, task_queue, activities=fake_activities(model.activity())):
        handle = await client.start_workflow(
            GoalWorkflow.run, GoalRequest(goal="publish it", playbook=playbook),
            id=f"approval-{uuid.uuid4().hex[:10]}", task_queue=task_queue,
        )
        async with asyncio.timeout(timeout):
            yield handle


async def pending(handle: WorkflowHandle, count: int = 1) -> list[ApprovalRequest]:
    """The open requests, once there are at least `count`."""
    while len(requests := await handle.query(PENDING_QUERY, result_type=list[ApprovalRequest])) < count:
        await asyncio.sleep(0.05)
    return requests


async def finish(handle: WorkflowHandle) -> tuple[GoalResult, WorkflowHistory]:
    """The goal's result and its history, replayed against today's code."""
    result = await handle.result()
    history = await handle.fetch_history()
    await replay(history)
    return result, history


async def decide(handle: WorkflowHandle, approver: str, request: ApprovalRequest | str, *, update: str = APPROVE_UPDATE,
                 sha: str | None = BOUND, id: str | None = None) -> ApprovalRequest:
    """One Update; by default bound to the request's own action hash."""
    if isinstance(request, str):  # an id the workflow may not know
        request_id, sha = request, None if sha == BOUND else sha
    else:
        request_id, sha = request.request_id, request.action_sha256 if sha == BOUND else sha
    decision = ApprovalDecision(request_id=request_id, approver=approver, action_sha256=sha)
    return await handle.execute_update(update, decision, id=id, result_type=ApprovalRequest)


def update_events(history: WorkflowHistory) -> dict[str, int]:
    """Counts of every update event kind in the history (rejected updates must leave none)."""
    names = [EventType.Name(e.event_type) for e in history.events]
    return {n.removeprefix("EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_"): names.count(n) for n in set(names) if "_UPDATE_" in n}


def accepted_update_ids(history: WorkflowHistory) -> list[str]:
    return [
        e.workflow_execution_update_accepted_event_attributes.accepted_request.meta.update_id
        for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
    ]


def audit(result: GoalResult) -> list[tuple[str, str | None]]:
    return [(e.kind.value, e.actor) for e in result.audit]


# --- escalations: one drafter step that escalates at once unless its output mentions "durable" -----

ESCALATION_APPROVERS = [{"name": "alice", "roles": ["editor"]}, {"name": "bob", "roles": ["lead"]}]


def escalating_playbook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, escalations: dict | None = None) -> str:
    """One drafter step whose output must mention 'durable', else it escalates at once (no refine)."""
    monkeypatch.setenv("FOREMAN_PLAYBOOKS_DIR", str(tmp_path / "playbooks"))
    step = {"type": "agent", "id": "draft", "role": "drafter", "instruction": "Explain durable execution.",
            "max_attempts": 1, "checks": [{"type": "required_terms", "terms": ["durable"], "on_fail": "escalate"}]}
    policy = {"principals": [{"role": "drafter", "tools": []}], "approvers": ESCALATION_APPROVERS,
              "escalations": {"resolver_roles": ["lead"], **(escalations or {})}}
    return write_playbook(tmp_path / "playbooks", {"name": "escalating", "steps": [step], "policy": policy})


async def waiting(handle: WorkflowHandle, count: int = 1) -> list[Escalation]:
    """The escalations waiting for a human, once there are at least `count`."""
    while len(open_ := await handle.query(ESCALATIONS_QUERY, result_type=list[Escalation])) < count:
        await asyncio.sleep(0.05)
    return open_


async def resolve(handle: WorkflowHandle, escalation: Escalation, resolver: str, decision: str, guidance: str = "") -> Escalation:
    """One `resolve` Update."""
    return await handle.execute_update(
        RESOLVE_UPDATE,
        ResolveRequest(escalation_id=escalation.escalation_id, resolver=resolver, decision=decision, guidance=guidance),
        result_type=Escalation,
    )


# --- subagents: `team` delegates to two `sub` children (tests/test_subagents.py) -------------------

# tests/test_subagents.py's APPROVERS and PRINCIPALS (renamed: the approvals' above).
TEAM_APPROVERS = [{"name": "alice", "roles": ["editor"]}]
TEAM_PRINCIPALS = [
    {"role": "lead", "tools": ["read_file"], "side_effects": ["read"]},
    {"role": "researcher", "tools": ["read_file", "write_file"], "side_effects": ["read", "write"]},
]


def team_playbooks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, child_playbook: str = "sub",
                   share: float = 0.5, child_gate: bool = False) -> str:
    """`team`: two subagent steps (lead role) in parallel, then a merge step; `sub`: one researcher step.
    With `child_gate`, the lead may write too and every write in a child waits for an editor."""
    folder = tmp_path / "playbooks"
    monkeypatch.setenv("FOREMAN_PLAYBOOKS_DIR", str(folder))
    principals = TEAM_PRINCIPALS
    gates = []
    if child_gate:
        principals = [{**p, "tools": ["read_file", "write_file"], "side_effects": ["read", "write"]} for p in TEAM_PRINCIPALS]
        gates = [{"name": "any-write", "when": [{"type": "tool", "tools": ["write_file"]}], "approver_roles": ["editor"]}]
    write_playbook(folder, {"name": "sub", "steps": [
        {"type": "agent", "id": "dig", "role": "researcher", "instruction": "Research {{goal}}", "tools": ["write_file"],
         "max_turns": 3},
    ], "policy": {"principals": principals, "approvers": TEAM_APPROVERS, "gates": gates}})
    steps = [
        {"type": "subagent", "id": "r1", "role": "lead", "goal": "durable execution, angle one", "playbook": child_playbook,
         "budget_share": share},
        {"type": "subagent", "id": "r2", "role": "lead", "goal": "durable execution, angle two", "playbook": child_playbook,
         "budget_share": share},
        {"type": "agent", "id": "merge", "role": "lead", "depends_on": ["r1", "r2"],
         "instruction": "Merge {{steps.r1.output}} / {{steps.r2.output}}"},
    ]
    return write_playbook(folder, {"name": "team", "steps": steps, "output_step": "merge",
                                   "policy": {"principals": principals, "approvers": TEAM_APPROVERS}})


# --- explore: one step, three variants, each scored on three terms (tests/test_explore.py) ---------

TERMS = ["durable", "resume", "history"]
VARIANTS = [{"label": "brief", "instruction": "Explain it. Be brief."},
            {"label": "thorough", "instruction": "Explain it. Be thorough.", "temperature": 0.7},
            {"label": "balanced", "instruction": "Explain it. Be balanced."}]


def explore_playbook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variants: list[dict]) -> str:
    monkeypatch.setenv("FOREMAN_PLAYBOOKS_DIR", str(tmp_path / "playbooks"))
    checks = [{"type": "required_terms", "terms": [term]} for term in TERMS]
    step = {"type": "explore", "id": "draft", "role": "drafter", "instruction": "Explain durable execution.",
            "variants": variants, "checks": checks, "max_turns": 1}
    return write_playbook(tmp_path / "playbooks", {"name": "explore", "steps": [step]})


# --- re-planning: the planner and judge as a real local OpenAI-protocol server (tests/test_replanning.py)

GOAL = "Compare retries and idempotency for tool calls"


def completion(content: str) -> Reply:
    return Reply(body={
        "id": "c", "object": "chat.completion", "model": "planner-test",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
    })


def draft(*steps: tuple[str, str]) -> str:
    return json.dumps({"steps": [{"role": role, "instruction": text, "needs": [], "tools": []} for role, text in steps]})


class PlannerServer(ScriptedServer):
    """Plans from a list (the first plan, then each revision); as the judge, finds everything on topic."""

    def __init__(self, *plans: str) -> None:
        self.plans = list(plans)
        super().__init__(self.reply)

    def reply(self, request: Recorded) -> Reply:
        if "addresses_instruction" in json.dumps(request.body.get("response_format")):
            return completion(json.dumps({"addresses_instruction": True, "score": 0.9, "reason": "on topic"}))
        return completion(self.plans.pop(0))

    @property
    def planner_prompts(self) -> list[str]:
        return [r.body["messages"][-1]["content"] for r in self.requests if "steps" in json.dumps(r.body.get("response_format"))]


def models(server: PlannerServer) -> ModelRouting:
    spec = ModelSpec(provider=Provider.OPENAI, model="test", base_url=server.base_url, max_tokens=256)
    return ModelRouting(planner=spec, verifier=spec)


def replan_llm_plans() -> tuple[str, str]:
    """The first plan (a researcher, then a drafter that `fakes.executor` makes fail for good) and the
    revision that rewrites the drafter from the research."""
    return (
        draft(("researcher", "Research retries and idempotency for tool calls"),
              ("drafter", "Draft a comparison of retries and idempotency")),
        draft(("drafter", "Write the comparison of retries and idempotency from the research")),
    )


def replan_resolver_plans() -> tuple[str]:
    """The plan a resolver's `replan` asks for on `replannable_playbook`: one analyst step."""
    return (draft(("analyst", "Explain why idempotency makes retries of tool calls harmless")),)


def replannable_playbook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """`replannable`: one drafter step that escalates unless it says 'harmless'; the policy has an analyst
    too, for the revised plan, and bob resolves (lead)."""
    monkeypatch.setenv("FOREMAN_PLAYBOOKS_DIR", str(tmp_path / "playbooks"))
    step = {"type": "agent", "id": "draft", "role": "drafter", "instruction": "Explain retries and idempotency.",
            "max_attempts": 1, "checks": [{"type": "required_terms", "terms": ["harmless"], "on_fail": "escalate"}]}
    policy = {"principals": [{"role": "drafter", "tools": []}, {"role": "analyst", "tools": []}],
              "approvers": [{"name": "bob", "roles": ["lead"]}]}
    return write_playbook(tmp_path / "playbooks", {"name": "replannable", "steps": [step], "policy": policy})


def fallback_playbook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """`with-fallback`: reading missing notes fails, the `recall` step stands in for it, and the brief
    uses what stood in."""
    monkeypatch.setenv("FOREMAN_PLAYBOOKS_DIR", str(tmp_path / "playbooks"))
    steps = [
        {"type": "tool", "id": "notes", "role": "analyst", "fallback": "recall",
         "invocation": {"tool": "read_file", "arguments_json": "{\"path\": \"missing/notes.md\"}"}},
        {"type": "agent", "id": "recall", "role": "analyst", "instruction": "Write notes on retries from what you know."},
        {"type": "agent", "id": "brief", "role": "drafter", "depends_on": ["notes"],
         "instruction": "Brief from {{steps.notes.output}}"},
    ]
    policy = {"principals": [{"role": "analyst", "tools": ["read_file"]}, {"role": "drafter", "tools": []}]}
    return write_playbook(tmp_path / "playbooks", {"name": "with-fallback", "steps": steps, "policy": policy})


# --- tool chains: analyst tool steps on the demo SQL database (tests/test_tool_chains.py) ----------

# tests/test_tool_chains.py's PRINCIPALS and APPROVERS (renamed: the approvals' above).
CHAIN_PRINCIPALS = [{"role": "analyst", "tools": ["sql_query", "read_file", "write_file"], "side_effects": ["read", "write"]}]
CHAIN_APPROVERS = [{"name": "alice", "roles": ["editor"]}]
SQL_GATE = {"name": "sql", "when": [{"type": "sql_not_select"}], "approver_roles": ["editor"], "expires_after_seconds": 2}


def chain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, steps: list[dict]) -> str:
    monkeypatch.setenv("FOREMAN_PLAYBOOKS_DIR", str(tmp_path / "playbooks"))
    policy = {"principals": CHAIN_PRINCIPALS, "approvers": CHAIN_APPROVERS, "gates": [SQL_GATE]}
    return write_playbook(tmp_path / "playbooks", {"name": "chain", "steps": steps, "policy": policy})


def sql_step(step_id: str, sql: str | None = None, **extra: object) -> dict:
    arguments = {"sql": sql} if sql else {}
    invocation = {"tool": "sql_query", "arguments_json": json.dumps(arguments)}
    return {"type": "tool", "id": step_id, "role": "analyst", "invocation": invocation, **extra}


def sql_chain_steps() -> list[dict]:
    """`pick` extracts a model name by regex from one query; `count`'s SQL is filled by one model call
    that sees it, and its count is extracted too."""
    return [
        sql_step("pick", "SELECT name, provider FROM models ORDER BY name", extract={"regex": r"^(\S+) \| openai$"}),
        sql_step("count", depends_on=["pick"], model_fills=["sql"],
                 fill_instruction="Write one SELECT that counts the runs of model {{steps.pick.output}}.",
                 extract={"regex": r"^(\d+)$"}),
    ]


# --- processes: the CLIs and a worker in a process of its own --------------------------------------


async def run_cli(*args: str, address: str, task_queue: str, timeout: float = 60) -> tuple[int, str, str]:
    """Run a command (e.g. `starter(...)` or the `temporal` CLI) against `address`; (exit code, stdout, stderr)."""
    env = {**os.environ, "TEMPORAL_ADDRESS": address, "FOREMAN_TASK_QUEUE": task_queue}
    process = await asyncio.create_subprocess_exec(
        *args, cwd=settings.PROJECT_ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(timeout):
        out, err = await process.communicate()
    return process.returncode, out.decode(), err.decode()


def starter(*args: str) -> tuple[str, ...]:
    return (sys.executable, "starter.py", *args)


def start_worker(address: str, task_queue: str, *options: str) -> subprocess.Popen:
    """`tests/crash_worker.py` (the real worker wiring, a slow scripted model; `options` as it takes them) in its own
    process, once ready."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.crash_worker", address, task_queue, *options],
        cwd=settings.PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env={**os.environ},
    )
    assert process.stdout is not None and process.stdout.readline().strip() == b"ready"
    return process


def kill_workers(*processes: subprocess.Popen | None) -> None:
    """SIGKILL every worker process still running (the ones a test started), and reap it."""
    for process in processes:
        if process and process.poll() is None:
            process.kill()
            process.wait()


def fan_in_playbook(folder: Path) -> str:
    """Two independent steps (researcher, analyst), then a drafter that joins them; written into `folder`."""
    steps = [
        {"type": "agent", "id": "left", "role": "researcher", "instruction": "L"},
        {"type": "agent", "id": "right", "role": "analyst", "instruction": "R"},
        {"type": "agent", "id": "join", "role": "drafter", "instruction": "J", "depends_on": ["left", "right"]},
    ]
    return write_playbook(folder, {"name": "fan-in", "steps": steps})


# --- long goals: continue as new (tests/test_continue_as_new.py, the `continue-as-new` recipe) ----

LONG_NOTES = 30
LONG_TARGET = "published/long.md"


def long_playbook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, first: dict, policy: dict, notes: int = LONG_NOTES) -> str:
    """`first` (a step that will wait for a person), beside `notes` independent note steps, then a summary of them."""
    monkeypatch.setenv("FOREMAN_PLAYBOOKS_DIR", str(tmp_path / "playbooks"))
    steps = [first] + [{"type": "agent", "id": f"n{i:02d}", "role": "researcher", "instruction": f"Note fact {i}.", "max_turns": 1,
                        "checks": [{"type": "non_empty"}]} for i in range(notes)]
    steps.append({"type": "agent", "id": "sum", "role": "researcher", "instruction": "Sum up.", "max_turns": 1,
                  "depends_on": [first["id"], "n00", f"n{notes - 1:02d}"]})
    policy["principals"].append({"role": "researcher", "tools": [], "side_effects": ["read"]})
    return write_playbook(tmp_path / "playbooks", {"name": "long", "steps": steps, "policy": policy, "output_step": "sum"})


def gated_long_playbook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, notes: int = LONG_NOTES) -> str:
    """The first step, `publish`, is a publisher agent whose write of LONG_TARGET is gated (editors approve)."""
    publish = {"type": "agent", "id": "publish", "role": "publisher", "instruction": "Publish the notice.", "tools": ["write_file"],
               "max_turns": 3, "checks": [{"type": "non_empty"}]}
    return long_playbook(tmp_path, monkeypatch, publish, {
        "principals": [{"role": "publisher", "tools": ["write_file"], "side_effects": ["read", "write"]}],
        "approvers": APPROVERS,
        "gates": [{"name": "publish", "when": [{"type": "path_outside", "prefixes": ["drafts/"]}], "approver_roles": ["editor"],
                   "reason": "published files are visible to others", "expires_after_seconds": 600}],
    }, notes)


def long_goal_reply(request: ModelRequest) -> ChatMessage:
    """The scripted model of a long goal: the publisher writes LONG_TARGET, then reports; a drafter is `guided`;
    a note is long (over INLINE_OUTPUT_CHARS: it crosses a continue-as-new in its archived part)."""
    if step_role(request) == "publisher":
        if not tool_messages(request):
            return call_tool("write_file", {"path": LONG_TARGET, "content": "Notice: approved words."})
        return answer("Published the notice.")
    if step_role(request) == "drafter":
        return guided(request)
    task = request.messages[-1].content.rsplit("\n", 1)[-1]
    return answer(f"Noted: {task} " + "Long enough to be archived by reference. " * 30)


# --- MCP tools: the notes server of tests/mcp_notes_server.py and a playbook using it (tests/test_mcp.py) -


def notes_server(notes_dir: Path, **extra: object) -> dict:
    """The stdio notes server as a FOREMAN_MCP_CONFIG entry (the worker starts it with this interpreter)."""
    return {"command": sys.executable, "args": ["-m", "tests.mcp_notes_server"], "cwd": str(settings.PROJECT_ROOT),
            "env": {"NOTES_DIR": str(notes_dir)}, **extra}


def notes_config(folder: Path, monkeypatch: pytest.MonkeyPatch, **extra: object) -> Path:
    """FOREMAN_MCP_CONFIG naming the notes server `notes` (its notes under `folder`/notes); returns the file."""
    (folder / "notes").mkdir(parents=True, exist_ok=True)
    path = folder / "mcp.json"
    path.write_text(json.dumps({"mcpServers": {"notes": notes_server(folder / "notes", **extra)}}))
    monkeypatch.setenv("FOREMAN_MCP_CONFIG", str(path))
    return path


def mcp_playbook(folder: Path, monkeypatch: pytest.MonkeyPatch, role: str, tools: list[str]) -> str:
    """`notes`: one agent step as `role` with `tools`; the default policy's gates and approvers, MCP grants per role
    (researcher: lookup; publisher: the whole notes server; stranger: none)."""
    monkeypatch.setenv("FOREMAN_PLAYBOOKS_DIR", str(folder / "playbooks"))
    default = load_default_policy()
    policy = {
        "principals": [{"role": "researcher", "tools": ["mcp:notes:lookup"], "side_effects": ["read"]},
                       {"role": "publisher", "tools": ["mcp:notes:*"], "side_effects": ["read", "write"]},
                       {"role": "stranger", "tools": ["calculate"], "side_effects": ["read", "write"]}],
        "approvers": [a.model_dump(mode="json") for a in default.approvers],
        "gates": [g.model_dump(mode="json") for g in default.gates],
    }
    step = {"type": "agent", "id": "work", "role": role, "instruction": "Work with the notes on retries.", "tools": tools,
            "max_turns": 3}
    return write_playbook(folder / "playbooks", {"name": "notes", "steps": [step], "policy": policy})
