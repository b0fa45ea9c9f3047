"""Start and inspect goals from the command line.

    python starter.py run "GOAL" [--playbook NAME] [--id ID] [--no-wait] [--json] [--executor-provider openai ...]
    python starter.py status ID | result ID [--json] | cancel ID
    python starter.py pending ID [--json]
    python starter.py approve ID REQUEST_ID --as NAME [--comment TEXT] [--action-sha256 HASH] [--key FILE]
    python starter.py deny ID REQUEST_ID --as NAME [--comment TEXT] [--key FILE]
    python starter.py escalations ID [--json]
    python starter.py resolve ID ESCALATION_ID --as NAME --decision accept|retry|abort [--guidance TEXT] [--key FILE]
    python starter.py history ID [--out FILE.json] [--run-id RUN | --all-runs]   # as `temporal workflow show -o json`
    python starter.py replay FILE.json...               # against today's workflow code; exit 1 on any nondeterminism
    python starter.py keygen --as NAME [--force]        # an approver's signing key pair (public key for the policy)
    python starter.py demo [--playbook research-team]   # dev server (if none) + worker + a demo goal
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import NoReturn
from urllib.parse import quote

from pydantic import ValidationError
from temporalio.client import (
    Client,
    RPCTimeoutOrCancelledError,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

import devserver
import approver_keys
import goal_events
import histories
from decisions import DecisionRejected, DecisionUndelivered, NotWaiting, decide, failure_text, resolve
import settings
from contracts.approvals import APPROVE_UPDATE, PENDING_QUERY, ApprovalRequest
from contracts.escalations import ESCALATIONS_QUERY, RESOLVE_UPDATE, Escalation, EscalationDecision
from contracts.goal import GOAL_WORKFLOW, STATUS_QUERY, ArchivePart, GoalProgress, GoalRequest, GoalResult, GoalStatus
from contracts.llm import ModelSpec, Provider
from activities.search_attributes import registered
from playbooks import available_playbooks
from stores import StoreError, from_settings
from observability import ObservabilityConfigError, configure_tracing, flush_tracing
from temporal_client import connect
from workflows.archive import reassemble
from core.hashing import sha256_text
from core.search_attributes import at_start
from core.templating import slugify

DEMO_GOAL = "Explain how durable execution makes AI agents safe to retry"
DEMO_PLAYBOOK = "research-brief"
DEMO_APPROVER = "alice"  # an editor in playbooks/policies/default.json

def fail(message: str, code: int = 2) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)


def ui_link(workflow_id: str) -> str:
    base = settings.ui_url() or devserver.ui_url()
    return f"{base}/namespaces/{quote(settings.temporal_namespace(), safe='')}/workflows/{quote(workflow_id, safe='')}"  # subagent ids hold "/"


def _role_spec(args: argparse.Namespace, role: str) -> ModelSpec:
    provider = getattr(args, f"{role}_provider") or args.provider
    return ModelSpec(
        provider=Provider(provider) if provider else None,
        model=getattr(args, f"{role}_model") or args.model,
        base_url=getattr(args, f"{role}_base_url") or args.base_url,
    )


def build_request(args: argparse.Namespace) -> GoalRequest:
    """The GoalRequest for `run`, or a one-line error (nothing is started)."""
    if args.playbook and args.playbook not in available_playbooks():
        fail(f"unknown playbook {args.playbook!r}; available: {', '.join(available_playbooks())}")
    limits = {
        "max_model_calls": args.max_model_calls,
        "max_tool_calls": args.max_tool_calls,
        "max_total_tokens": args.max_tokens,
        "max_cost_usd": args.max_cost_usd,
    }
    try:
        # One validation of the whole request, so errors name their full path (budget.max_model_calls).
        return GoalRequest.model_validate(
            {
                "goal": args.goal,
                "playbook": args.playbook,
                "budget": {k: v for k, v in limits.items() if v is not None},
                "models": {role: _role_spec(args, role) for role in ("planner", "executor", "verifier")},
            }
        )
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "input"
        fail(f"invalid {where}: {first['msg']}")


async def _client() -> Client:
    try:
        return await connect()
    except Exception as err:  # noqa: BLE001 - any connection failure gets the same one-line answer
        fail(f"cannot reach Temporal at {settings.temporal_address()} ({type(err).__name__}: {err})", code=3)


def _print_progress(progress: GoalProgress, seen: dict[str, str], stream) -> None:
    for step in progress.steps:
        state = f"{step.status.value} (attempt {step.attempt}, turn {step.turn})" if step.attempt else step.status.value
        if seen.get(step.step_id) != state:
            seen[step.step_id] = state
            print(f"  [{progress.phase}] {step.step_id} ({step.role}): {state}", file=stream, flush=True)


def approval_commands(workflow_id: str, request: ApprovalRequest) -> str:
    payload = json.dumps({"request_id": request.request_id, "approver": "NAME", "action_sha256": request.action_sha256})
    return (
        f"    approve: python starter.py approve {workflow_id} {request.request_id} --as NAME\n"
        f"    or:      temporal workflow update execute --workflow-id {workflow_id} --name {APPROVE_UPDATE} --input '{payload}'"
    )


def _describe_request(workflow_id: str, request: ApprovalRequest) -> str:
    roles = request.sequence or request.approver_roles or ["any approver"]
    return (
        f"  approval needed: {request.tool} requested by {request.requested_by} (rule {request.rule}: {request.reason})\n"
        f"    request {request.request_id}; {request.approvals_needed} approval(s) from {roles}"
        f"{' in order' if request.sequence else ''}; expires {request.expires_at.isoformat()}\n"
        f"    action sha256 {request.action_sha256}"
        + (f"; artifact sha256 {request.artifact_sha256}" if request.artifact_sha256 else "")
        + "\n" + _describe_arguments(request.arguments_json) + "\n" + approval_commands(workflow_id, request)
    )


def _describe_escalation(workflow_id: str, escalation: Escalation) -> str:
    decisions = "|".join(d.value for d in escalation.decisions)
    payload = json.dumps({"escalation_id": escalation.escalation_id, "resolver": "NAME", "decision": "accept", "guidance": ""})
    who = f"an approver with role {escalation.resolver_roles}" if escalation.resolver_roles else "any approver"
    return (
        f"  escalated: step {escalation.step_id}: {escalation.reason}\n"
        f"    escalation {escalation.escalation_id}; {who} decides {decisions} by {escalation.expires_at.isoformat()} (then: abort)\n"
        f"    resolve: python starter.py resolve {workflow_id} {escalation.escalation_id} --as NAME --decision {decisions} [--guidance TEXT]\n"
        f"    or:      temporal workflow update execute --workflow-id {workflow_id} --name {RESOLVE_UPDATE} --input '{payload}'"
    )


def _describe_arguments(arguments_json: str) -> str:
    """Every argument a reviewer needs, in full; only long text bodies are shortened (with size and hash)."""
    lines = []
    for name, value in json.loads(arguments_json).items():
        shown = json.dumps(value, ensure_ascii=False)
        if isinstance(value, str) and len(value) > 200:
            digest = sha256_text(value)
            shown = f"{json.dumps(value[:120], ensure_ascii=False)}... ({len(value)} characters, sha256 {digest})"
        lines.append(f"      {name}: {shown}")
    return "    arguments:\n" + "\n".join(lines)


# What a status/pending query can fail with while the goal runs (server or worker unreachable, query refused):
# reported or retried, never swallowed wholesale.
_QUERY_ERRORS = (RPCError, RPCTimeoutOrCancelledError, WorkflowQueryFailedError, WorkflowQueryRejectedError)


async def _auto_approve(handle: WorkflowHandle, request: ApprovalRequest, approver: str, stream) -> bool:
    """Approve `request` as `approver` (the demo); a failure is printed in one line (which request, which
    error). True once the request is settled (approved, or rejected: not repeated); False when the Update
    could not be sent (tried again next round)."""
    print(f"  [demo] approving request {request.request_id} as {approver!r} on your behalf", file=stream, flush=True)
    try:
        await decide(handle, "approve", request.request_id, approver, "approved by the demo on the user's behalf",
                     request.action_sha256)
    except (DecisionRejected, DecisionUndelivered) as err:
        print(f"  [demo] approving request {request.request_id} failed: {failure_text(err.__cause__)}", file=stream, flush=True)
        # A rejection is final (the validator would say the same again); an Update that never arrived is retried.
        return isinstance(err, DecisionRejected)
    return True


async def wait_for_result(handle: WorkflowHandle, quiet: bool, stream=sys.stdout, approve_as: str | None = None) -> GoalResult:
    """Await the result, printing step progress and approval requests meanwhile; `approve_as`
    approves every request on the user's behalf (the demo), once each: a rejected approval is printed
    and not repeated, one that could not be sent is tried again on the next round."""
    waiter = asyncio.ensure_future(handle.result())
    seen: dict[str, str] = {}
    announced: set[str] = set()
    settled: set[str] = set()
    while not waiter.done():
        try:
            if not quiet:
                _print_progress(await handle.query(STATUS_QUERY, result_type=GoalProgress), seen, stream)
            pending = await handle.query(PENDING_QUERY, result_type=list[ApprovalRequest])
            escalations = await handle.query(ESCALATIONS_QUERY, result_type=list[Escalation])
        except _QUERY_ERRORS:
            pending, escalations = [], []  # progress is best effort (the worker may be busy, the run may just have ended)
        for escalation in escalations:
            if escalation.escalation_id not in announced:
                announced.add(escalation.escalation_id)
                print(_describe_escalation(handle.id, escalation), file=stream, flush=True)
        for request in pending:
            if request.request_id not in announced:
                announced.add(request.request_id)
                print(_describe_request(handle.id, request), file=stream, flush=True)
            if approve_as and request.request_id not in settled:
                if await _auto_approve(handle, request, approve_as, stream):
                    settled.add(request.request_id)
        await asyncio.wait([waiter], timeout=0.5)
    return waiter.result()


def reassembled(result: GoalResult) -> GoalResult:
    """A large result whole again from its archived parts in the content store (if this machine reaches it)."""
    if result.archive is None:
        return result
    try:
        content = from_settings().content
        texts = [content.get(part.ref) for part in result.archive.parts]
    except (KeyError, OSError, StoreError) as err:  # StoreError: a bucket or configuration this machine cannot use
        print(f"note: the archived parts of this result are not in this machine's content store ({err}); "
              f"showing the compact result ({result.archive.steps_shown} of {result.archive.steps_total} steps)", file=sys.stderr)
        return result
    for part, text in zip(result.archive.parts, texts, strict=True):
        if sha256_text(text) != part.sha256:
            fail(f"archived part {part.ref} does not match its hash: refusing to show a tampered result", code=1)
    try:
        return reassemble(result, [ArchivePart.model_validate_json(text) for text in texts])
    except ValidationError as err:
        fail(f"archived parts of {result.workflow_id} are not readable by this version: {err.errors()[0]['msg']}", code=1)


def print_result(result: GoalResult, as_json: bool) -> None:
    result = reassembled(result)
    if as_json:
        print(result.model_dump_json(indent=2))
        return
    print(f"\nstatus: {result.status.value}")
    if result.error:
        print(f"error: {result.error}")
    for step in result.steps:
        score = f", score {step.score:.2f}" if step.score is not None else ""
        children = f", subagents {step.child_workflow_ids}" if step.child_workflow_ids else ""
        print(f"  {step.step_id} ({step.role}): {step.status.value}, attempts {step.attempts}, "
              f"{len(step.model_calls)} model calls, {len(step.tool_calls)} tool calls{score}{children}")
        for candidate in step.candidates:
            scored = f"score {candidate.score:.2f} ({candidate.decision.value})" if candidate.score is not None else candidate.error
            print(f"    candidate {candidate.label} ({candidate.role}): {scored}")
        if step.pick_reason:
            print(f"    {step.pick_reason}")
    for escalation in result.escalations:
        outcome = escalation.outcome.value if escalation.outcome else "pending"
        by = f" by {escalation.resolution.resolver}" if escalation.resolution else ""
        print(f"  escalation {escalation.escalation_id} ({escalation.step_id}): {outcome}{by}")
    u = result.usage
    print(f"usage: {u.model_calls} model calls, {u.prompt_tokens}+{u.completion_tokens} tokens, "
          f"{u.tool_calls} tool calls, ${u.cost_usd:.4f}, {u.wall_seconds:.1f} s, "
          f"cache hits {u.cache_hits.model} model / {u.cache_hits.tool} tool")
    if result.continuations:
        runs = ", ".join(f"run {c.run}: {c.history_events} events" for c in result.continuations)
        print(f"continued as new {len(result.continuations)} times ({runs})")
    print(f"\n{result.output}\n")


async def cmd_run(args: argparse.Namespace) -> int:
    request = build_request(args)
    client = await _client()
    workflow_id = args.id or f"goal-{slugify(request.goal, 4)}-{uuid.uuid4().hex[:8]}"
    try:
        handle = await client.start_workflow(
            GOAL_WORKFLOW, request, id=workflow_id, task_queue=settings.task_queue(), result_type=GoalResult,
            # Filterable at once (ForemanStatus=planning), if the namespace has Foreman's search attributes.
            search_attributes=at_start(request.goal, request.playbook, await registered(client)),
        )
    except WorkflowAlreadyStartedError:
        fail(f"a workflow with id {workflow_id!r} is already running")
    except RPCError as err:
        fail(f"cannot start the goal: {err.message}", code=1)
    if args.no_wait:
        print(workflow_id)
        return 0
    info = sys.stderr if args.json else sys.stdout
    print(f"started {workflow_id}\n  {ui_link(workflow_id)}", file=info, flush=True)
    try:
        result = await wait_for_result(handle, quiet=False, stream=info, approve_as=getattr(args, "approve_as", None))
    except WorkflowFailureError as err:
        cause = err.cause
        fail(f"goal {workflow_id} failed: {getattr(cause, 'message', cause)}", code=1)
    except RPCError as err:
        fail(f"lost track of goal {workflow_id}: {err.message} (it keeps running; see: python starter.py result {workflow_id})", code=1)
    print_result(result, args.json)
    print(f"workflow: {workflow_id}\nTemporal UI: {ui_link(workflow_id)}", file=info)
    return 0 if result.status is GoalStatus.COMPLETED else 1


async def cmd_status(args: argparse.Namespace) -> int:
    handle = (await _client()).get_workflow_handle(args.workflow_id)
    try:
        progress = await handle.query(STATUS_QUERY, result_type=GoalProgress)
    except Exception as err:  # noqa: BLE001
        fail(f"cannot query {args.workflow_id}: {err}", code=1)
    print(progress.model_dump_json(indent=2))
    return 0


async def cmd_result(args: argparse.Namespace) -> int:
    handle = (await _client()).get_workflow_handle(args.workflow_id, result_type=GoalResult)
    try:
        result = await handle.result()
    except WorkflowFailureError as err:
        fail(f"goal {args.workflow_id} failed: {getattr(err.cause, 'message', err.cause)}", code=1)
    except RPCError as err:
        fail(f"cannot get the result of {args.workflow_id}: {err.message}", code=1)
    print_result(result, args.json)
    return 0 if result.status is GoalStatus.COMPLETED else 1


async def _list_waiting(args: argparse.Namespace, query: str, result_type: type, describe, nothing: str) -> int:
    """What waits for people in a goal (approval requests or escalations), as text with commands or as JSON."""
    handle = (await _client()).get_workflow_handle(args.workflow_id)
    try:
        items = await handle.query(query, result_type=list[result_type])
    except _QUERY_ERRORS as err:
        fail(f"cannot query {args.workflow_id}: {err}", code=1)
    if args.json:
        print(json.dumps([item.model_dump(mode="json") for item in items], indent=2))
    else:
        print("\n".join(describe(args.workflow_id, item) for item in items) or nothing)
    return 0


async def cmd_pending(args: argparse.Namespace) -> int:
    return await _list_waiting(args, PENDING_QUERY, ApprovalRequest, _describe_request, "no pending approval requests")


async def cmd_decide(args: argparse.Namespace) -> int:
    handle = (await _client()).get_workflow_handle(args.workflow_id)
    try:
        key = _key(args.approver, args.key)
        request = await decide(handle, args.command, args.request_id, args.approver, args.comment or "", args.action_sha256, key)
    except DecisionRejected as err:
        fail(f"{args.command} rejected: {err.reason}", code=1)
    except NotWaiting as err:
        fail(str(err), code=1)
    except Exception as err:  # noqa: BLE001 - e.g. the workflow is not running
        fail(f"cannot {args.command} on {args.workflow_id}: {err}", code=1)
    given = len(request.approvals_given)
    print(f"request {request.request_id}: {request.status.value} ({given} of {request.approvals_needed} approvals)")
    return 0


async def cmd_escalations(args: argparse.Namespace) -> int:
    return await _list_waiting(args, ESCALATIONS_QUERY, Escalation, _describe_escalation, "no open escalations")


async def cmd_resolve(args: argparse.Namespace) -> int:
    handle = (await _client()).get_workflow_handle(args.workflow_id)
    key = _key(args.resolver, args.key)
    try:
        escalation = await resolve(handle, args.escalation_id, args.resolver, args.decision, args.guidance or "", key)
    except DecisionRejected as err:
        fail(f"resolve rejected: {err.reason}", code=1)
    except NotWaiting as err:
        fail(str(err), code=1)
    except DecisionUndelivered as err:
        fail(f"cannot resolve on {args.workflow_id}: {err}", code=1)
    print(f"escalation {escalation.escalation_id}: {args.decision} by {args.resolver}")
    return 0


def _key(name: str, key_file: str | None) -> bytes | None:
    """The signing key for decisions made as `name` (`--key`, else the one `keygen` made, if any)."""
    try:
        return approver_keys.private_key(name, key_file)
    except (OSError, ValueError) as err:
        fail(f"cannot read the signing key for {name!r}: {err}", code=1)


async def cmd_keygen(args: argparse.Namespace) -> int:
    try:
        path, public = approver_keys.keygen(args.approver, args.force)
    except (OSError, ValueError) as err:
        fail(f"cannot make a key for {args.approver!r}: {err}", code=1)
    print(f"private key: {path} (keep it; decisions as {args.approver} are signed with it)")
    print(f"public key:  {public}")
    print(f'policy:      {{"name": "{args.approver}", "roles": [...], "public_key": "{public}"}}')
    return 0


async def cmd_cancel(args: argparse.Namespace) -> int:
    try:
        await (await _client()).get_workflow_handle(args.workflow_id).cancel()
    except RPCError as err:
        fail(f"cannot cancel {args.workflow_id}: {err.message}", code=1)
    print(f"cancellation requested for {args.workflow_id}")
    return 0


async def cmd_events(args: argparse.Namespace) -> int:
    return await goal_events.show_events(await _client(), args.workflow_id, args.json, args.follow)


async def cmd_history(args: argparse.Namespace) -> int:
    if args.all_runs and not args.out:
        fail("--all-runs writes one file per run: give --out FILE.json")
    try:
        runs = await histories.fetch(await _client(), args.workflow_id, args.run_id, args.all_runs)
    except RPCError as err:
        fail(f"cannot fetch the history of {args.workflow_id}: {err.message}", code=1)
    if not args.out:
        print(histories.to_json(runs[0]), end="")
        return 0
    for path, history in zip(histories.run_paths(Path(args.out), len(runs)), runs, strict=True):
        try:
            path.write_text(histories.to_json(history), encoding="utf-8")
        except OSError as err:
            fail(f"cannot write {path}: {err.strerror or err}", code=1)
        print(f"wrote {path} ({len(history.events)} events, run {history.run_id})")
    return 0


async def cmd_replay(args: argparse.Namespace) -> int:
    try:
        replayed = await histories.replay_files([Path(p) for p in args.files])
    except histories.HistoryFileError as err:
        fail(str(err))
    for one in replayed:
        print(one.line())
    return 0 if all(one.ok for one in replayed) else 1


async def cmd_demo(args: argparse.Namespace) -> int:
    started = devserver.ensure(settings.temporal_address())
    print(f"{'started' if started else 'using'} Temporal dev server at {settings.temporal_address()} (Web UI {devserver.ui_url()})")
    log_path = settings.foreman_home() / "worker.log"
    settings.foreman_home().mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        worker = subprocess.Popen([sys.executable, str(settings.PROJECT_ROOT / "worker.py")], stdout=log, stderr=subprocess.STDOUT)
    print(f"started a worker (pid {worker.pid}, log {log_path})")
    try:
        args.goal, args.playbook = args.goal or DEMO_GOAL, args.playbook or DEMO_PLAYBOOK
        args.approve_as = None if args.no_auto_approve else DEMO_APPROVER
        code = await cmd_run(args)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    print("stopped the worker; the dev server keeps running (stop it with: make stop, or python devserver.py stop)")
    return code


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(description="Start and inspect Foreman goals.")
    sub = root.add_subparsers(dest="command", required=True)
    for name in ("run", "demo"):
        p = sub.add_parser(name)
        p.add_argument("goal", nargs="?" if name == "demo" else None)
        p.add_argument("--playbook")
        p.add_argument("--id")
        p.add_argument("--no-wait", action="store_true")
        p.add_argument("--json", action="store_true")
        p.add_argument("--max-model-calls", type=int)
        p.add_argument("--max-tool-calls", type=int)
        p.add_argument("--max-tokens", type=int)
        p.add_argument("--max-cost-usd", type=float)
        p.add_argument("--provider", choices=[v.value for v in Provider], help="model provider for every role")
        p.add_argument("--model", help="model name (or GGUF path for local) for every role")
        p.add_argument("--base-url")
        for role in ("planner", "executor", "verifier"):
            p.add_argument(f"--{role}-provider", choices=[v.value for v in Provider])
            p.add_argument(f"--{role}-model")
            p.add_argument(f"--{role}-base-url")
        if name == "demo":
            p.add_argument("--no-auto-approve", action="store_true", help="leave the publish approval to you")
    for name in ("approve", "deny"):
        p = sub.add_parser(name)
        p.add_argument("workflow_id")
        p.add_argument("request_id")
        p.add_argument("--as", dest="approver", required=True, help="the approver's name (see the policy's approvers)")
        p.add_argument("--comment")
        p.add_argument("--action-sha256", help="refuse unless the request's action has this hash")
        p.add_argument("--key", help="sign with this private key (default: the one `keygen --as NAME` made, if any)")
    p = sub.add_parser("resolve", help="decide an escalated step")
    p.add_argument("workflow_id")
    p.add_argument("escalation_id")
    p.add_argument("--as", dest="resolver", required=True, help="the resolver's name (an approver in the policy)")
    p.add_argument("--decision", required=True, choices=[d.value for d in EscalationDecision])
    p.add_argument("--guidance", help="added to the step's instruction on retry")
    p.add_argument("--key", help="sign with this private key (default: the one `keygen --as NAME` made, if any)")
    p = sub.add_parser("history", help="write a goal's history as `temporal workflow show -o json` does",
                       description="A goal's history as JSON (the same as `temporal workflow show -o json`), for "
                       "`replay` or tests/histories/. A subagent is a workflow of its own: its history is ID/STEP.")
    p.add_argument("workflow_id")
    p.add_argument("--out", help="write to this file (default: print)")
    runs = p.add_mutually_exclusive_group()
    runs.add_argument("--run-id", help="this run (default: the latest)")
    runs.add_argument("--all-runs", action="store_true",
                      help="every run of a goal that continued as new: FILE-run1.json, ... and FILE.json for the latest")
    p = sub.add_parser("replay", help="replay exported histories against today's workflow code",
                       description="Replays each file under the workflow id in it; prints OK or the first "
                       "nondeterminism per file; exit 1 if any fails, 2 if a file is not a history.")
    p.add_argument("files", nargs="+", metavar="FILE.json")
    p = sub.add_parser("events", help="a goal's events (plan, steps, model and tool calls, approvals, verdicts), one per line")
    p.add_argument("workflow_id")
    p.add_argument("--json", action="store_true", help="JSON lines")
    p.add_argument("--follow", action="store_true",
                   help="print new events until the goal ends (exit 0 if it completed, 1 with the reason otherwise)")
    p = sub.add_parser("keygen", help="make an approver's signing key pair")
    p.add_argument("--as", dest="approver", required=True)
    p.add_argument("--force", action="store_true", help="replace an existing key")
    for name in ("status", "result", "cancel", "pending", "escalations"):
        p = sub.add_parser(name)
        p.add_argument("workflow_id")
        if name in ("result", "pending", "escalations"):
            p.add_argument("--json", action="store_true")
    return root


def main() -> None:
    args = parser().parse_args()
    try:
        configure_tracing("foreman-starter")  # the goal's trace starts here (FOREMAN_OTEL_EXPORTER; default: no spans kept)
    except ObservabilityConfigError as err:
        fail(str(err))
    handler = {
        "run": cmd_run, "demo": cmd_demo, "status": cmd_status, "result": cmd_result, "cancel": cmd_cancel,
        "pending": cmd_pending, "approve": cmd_decide, "deny": cmd_decide,
        "escalations": cmd_escalations, "resolve": cmd_resolve, "keygen": cmd_keygen,
        "history": cmd_history, "replay": cmd_replay, "events": cmd_events,
    }
    try:
        code = asyncio.run(handler[args.command](args))
    except SystemExit as exit_:
        if isinstance(exit_.code, str):  # SystemExit("error: ...") from a helper: say it
            print(exit_.code, file=sys.stderr)
        code = exit_.code if isinstance(exit_.code, int) else 1
    except KeyboardInterrupt:
        print("interrupted (the goal, if started, keeps running in Temporal)", file=sys.stderr)
        code = 130
    flush_tracing()
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter teardown: the Temporal client's Rust threads can abort it (SIGABRT, sdk-python#300).
    os._exit(code)


if __name__ == "__main__":
    main()
