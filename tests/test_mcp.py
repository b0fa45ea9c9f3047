"""MCP tools: a small stdio MCP server written for the tests (`tests/mcp_notes_server.py`), started by the
worker from a FOREMAN_MCP_CONFIG-style file; its tools listed at planning, validated and policed in the
workflow, called as `call_mcp_tool` activities. Unit tests for the pure rules and the worker side first,
then goals on the real dev server with a scripted model (each history replayed)."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.client import Client, WorkflowHistory
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

import settings
from activities.mcp import McpConfig, McpServers, McpServerConfig, McpTools, load_config, side_effect_of
from activities.planner import Planner, draft_schema
from activities.tools.idempotency import Idempotency
from contracts.approvals import ApprovalStatus
from contracts.goal import GoalRequest, GoalResult, GoalStatus
from contracts.mcp import McpCall, McpToolSpec, SideEffectSource
from contracts.plan import PlanRequest
from contracts.policy import Policy
from contracts.tools import SideEffect
from core.catalogue import ToolCatalogue
from core.mcp import McpTool, granted, wire_name
from core.policy import action_sha256, evaluate
from core.tools import ArgumentsInvalid
from playbooks import load_default_policy
from stores import from_settings
from stores.content_files import FileContentStore
from stores.idempotency_sqlite import SqliteIdempotencyLedger
from tests.fakes import ScriptedModel, answer, calls_then_reports, tool_messages
from tests.helpers import (
    PlannerServer,
    activity_labels,
    audit,
    decide,
    finish,
    mcp_playbook,
    models,
    notes_config,
    pending,
    run_goal,
    scheduled_activities,
    write_playbook,
)
from worker import all_activities, build_worker
from workflows.goal import GoalWorkflow

NOTE = "Retries repeat a failed call; idempotency makes the repeat harmless."
LOOKUP_SCHEMA = {"type": "object", "properties": {"topic": {"type": "string"}}, "required": ["topic"]}


@pytest.fixture
def mcp_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return notes_config(tmp_path, monkeypatch, timeout_seconds=2)


@pytest.fixture
def notes_dir(mcp_config: Path) -> Path:
    return mcp_config.parent / "notes"


@pytest_asyncio.fixture
async def servers(mcp_config: Path) -> AsyncIterator[McpServers]:
    mcp = McpServers.from_settings()
    yield mcp
    await mcp.close()


def posted(notes_dir: Path) -> list[dict]:
    log = notes_dir / "posted.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


# --- pure rules: names, grants, argument validation, policy ---------------------------------------


def lookup_tool(schema: dict | None = None, side_effect: SideEffect = SideEffect.READ) -> McpTool:
    return McpTool(McpToolSpec(server="notes", tool="lookup", input_schema_json=json.dumps(schema or LOOKUP_SCHEMA),
                               side_effect=side_effect))


def test_names_the_model_sees_and_grants_by_server() -> None:
    assert wire_name("mcp:notes:lookup") == "mcp__notes__lookup"
    assert wire_name("mcp:my-srv:files.read/v2") == "mcp__my-srv__files_read_v2"
    assert wire_name("calculate") == "calculate"
    assert granted("mcp:notes:lookup", ["mcp:notes:*"]) and granted("mcp:notes:lookup", ["mcp:notes:lookup"])
    assert not granted("mcp:notes:lookup", ["mcp:other:*"]) and not granted("calculate", ["mcp:notes:*"])
    catalogue = ToolCatalogue([lookup_tool().spec])
    assert catalogue.canonical("mcp__notes__lookup") == "mcp:notes:lookup"
    assert catalogue.get("mcp__notes__lookup") == catalogue.get("mcp:notes:lookup") == lookup_tool()
    assert catalogue.get("mcp:notes:nothing") is None and catalogue.get("calculate") is not None


def test_arguments_validate_against_the_schema_and_become_canonical() -> None:
    tool = lookup_tool({**LOOKUP_SCHEMA, "properties": {"topic": {"type": "string"}, "limit": {"type": "integer"}}})
    call = tool.parse('{"topic": "retries", "limit": 2}')
    assert call == McpCall(server="notes", tool="lookup", arguments_json='{"limit":2,"topic":"retries"}')
    # The action hash binds to the canonical arguments: key order and spacing make no other action.
    assert action_sha256(tool.name, call) == action_sha256(tool.name, tool.parse('{"limit":2, "topic":"retries"}'))
    for bad, says in [('{"topic": 3}', "topic: 3 is not of type 'string'"), ("{}", "'topic' is a required property"),
                      ("[1]", "must be a JSON object"), ("{nope", "not JSON")]:
        with pytest.raises(ArgumentsInvalid, match=says):
            tool.parse(bad)


def test_a_schema_that_refers_elsewhere_is_refused_not_fetched() -> None:
    tool = lookup_tool({"type": "object", "properties": {"topic": {"$ref": "http://127.0.0.1:9/schema.json"}}})
    with pytest.raises(ArgumentsInvalid, match="cannot be used"):
        tool.parse('{"topic": "x"}')


def test_default_policy_gates_mcp_writes_and_grants_are_per_tool_or_server() -> None:
    default = load_default_policy()
    policy = Policy(principals=[{"role": "r", "tools": ["mcp:notes:lookup"], "side_effects": ["read", "write"]},
                                {"role": "w", "tools": ["mcp:notes:*"], "side_effects": ["read", "write", "destructive"]}],
                    gates=default.gates, approvers=default.approvers)
    call = McpCall(server="notes", tool="x")
    assert evaluate(policy, "r", "mcp:notes:lookup", SideEffect.READ, call).outcome == "allow"
    assert evaluate(policy, "r", "mcp:notes:post_note", SideEffect.WRITE, call).reason == "role 'r' may not use tool 'mcp:notes:post_note'"
    assert evaluate(policy, "w", "mcp:notes:post_note", SideEffect.WRITE, call).rule.name == "mcp-writes"
    assert evaluate(policy, "w", "mcp:notes:delete_notes", SideEffect.DESTRUCTIVE, call).rule.name == "destructive"
    assert evaluate(policy, "w", "mcp:notes:lookup", SideEffect.READ, call).outcome == "allow"


# --- the worker side: config, side-effect classes, listing and calling ----------------------------


def test_config_file_errors_are_typed(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    for config, says in [({"mcpServers": {"x": {"command": "a", "url": "http://h"}}}, "exactly one of command"),
                         ({"mcpServers": {"bad name": {"command": "a"}}}, "server names"),
                         ({"servers": {}}, "servers: Extra inputs")]:
        path.write_text(json.dumps(config))
        with pytest.raises(ApplicationError, match=says) as info:
            load_config(path)
        assert info.value.type == "McpConfigError" and info.value.non_retryable
    with pytest.raises(ApplicationError, match="cannot read"):
        load_config(tmp_path / "missing.json")
    assert load_config(None) == McpConfig()


def test_side_effect_is_the_operators_then_the_servers_hints_then_write() -> None:
    from mcp.types import Tool, ToolAnnotations

    def tool(name: str, **hints: bool) -> Tool:
        return Tool(name=name, input_schema={"type": "object"}, annotations=ToolAnnotations(**hints) if hints else None)

    plain = McpServerConfig(command="x")
    assert side_effect_of(plain, tool("a", read_only_hint=True)) == (SideEffect.READ, SideEffectSource.ANNOTATIONS)
    assert side_effect_of(plain, tool("a", destructive_hint=True)) == (SideEffect.DESTRUCTIVE, SideEffectSource.ANNOTATIONS)
    assert side_effect_of(plain, tool("a")) == (SideEffect.WRITE, SideEffectSource.DEFAULT)
    declared = McpServerConfig(command="x", side_effect="read", tools={"b": {"side_effect": "destructive"}})
    assert side_effect_of(declared, tool("a")) == (SideEffect.READ, SideEffectSource.CONFIG)
    assert side_effect_of(declared, tool("b", read_only_hint=True)) == (SideEffect.DESTRUCTIVE, SideEffectSource.CONFIG)
    distrust = McpServerConfig(command="x", trust_annotations=False)
    assert side_effect_of(distrust, tool("a", read_only_hint=True)) == (SideEffect.WRITE, SideEffectSource.DEFAULT)


async def test_listing_gives_schemas_and_side_effects(servers: McpServers) -> None:
    names = ["mcp:notes:lookup", "mcp:notes:post_note", "mcp:notes:delete_notes", "mcp:notes:nothing", "mcp:other:x", "calculate"]
    listing = await servers.specs(names)
    by_name = {s.name: s for s in listing.specs}
    assert sorted(by_name) == ["mcp:notes:delete_notes", "mcp:notes:lookup", "mcp:notes:post_note"]
    assert (by_name["mcp:notes:lookup"].side_effect, by_name["mcp:notes:lookup"].side_effect_source) == ("read", "annotations")
    assert (by_name["mcp:notes:post_note"].side_effect, by_name["mcp:notes:post_note"].side_effect_source) == ("write", "default")
    assert by_name["mcp:notes:delete_notes"].side_effect == "destructive"
    assert json.loads(by_name["mcp:notes:lookup"].input_schema_json)["required"] == ["topic"]
    assert by_name["mcp:notes:lookup"].description == "Look up the note kept on a topic."
    assert listing.problems == ["MCP server 'notes' has no usable tool 'nothing'",
                                "MCP server 'other' is not configured on this worker (FOREMAN_MCP_CONFIG)"]
    assert len(await servers.every_spec()) == 7


async def call(servers: McpServers, tmp_path: Path, tool: str, arguments: dict, server: str = "notes"):
    activity = McpTools(servers, FileContentStore(tmp_path / "content")).call_mcp_tool
    return await ActivityEnvironment().run(activity, McpCall(server=server, tool=tool, arguments_json=json.dumps(arguments)))


async def test_a_keyed_call_is_done_once_and_sends_its_key(servers: McpServers, tmp_path: Path, notes_dir: Path) -> None:
    ledger = SqliteIdempotencyLedger(tmp_path / "idempotency.sqlite", 3600)
    activity = McpTools(servers, FileContentStore(tmp_path / "content"), Idempotency(ledger)).call_mcp_tool
    key = "idem:v2:mcp:notes:post_note:" + "0" * 64
    keyed = McpCall(server="notes", tool="post_note", arguments_json='{"text":"once","topic":"t"}', idempotency_key=key)
    first = await ActivityEnvironment().run(activity, keyed)
    retried = await ActivityEnvironment().run(activity, keyed)  # another attempt of the same call
    assert retried == first and posted(notes_dir) == [{"topic": "t", "text": "once", "key": key}]
    assert ledger.get(key) is not None
    read = McpCall(server="notes", tool="lookup", arguments_json='{"topic":"retries"}')  # no key: a read, not recorded
    assert (await ActivityEnvironment().run(activity, read)).content == NOTE


async def failure(servers: McpServers, tmp_path: Path, tool: str, arguments: dict, server: str = "notes") -> ApplicationError:
    with pytest.raises(ApplicationError) as info:
        await call(servers, tmp_path, tool, arguments, server)
    return info.value


async def test_calls_give_text_and_typed_errors(servers: McpServers, tmp_path: Path, notes_dir: Path) -> None:
    result = await call(servers, tmp_path, "lookup", {"topic": "retries"})
    assert (result.tool, result.ok, result.content) == ("mcp:notes:lookup", True, NOTE)
    big = await call(servers, tmp_path, "dump", {"lines": 2_000})  # over the preview: the full text goes to the content store
    assert big.truncated and FileContentStore(tmp_path / "content").get(big.content_ref).endswith("line 01999")
    assert (await call(servers, tmp_path, "post_note", {"topic": "t", "text": "hello"})).content == "posted a note on 't'"
    assert posted(notes_dir) == [{"topic": "t", "text": "hello"}]
    cases = [("other", "lookup", {}, "McpServerMissing", True), ("notes", "nothing", {}, "McpToolMissing", True),
             ("notes", "broken", {"reason": "no"}, "McpToolError", True), ("notes", "slow", {"seconds": 4}, "McpTimeout", False)]
    for server, tool, arguments, error_type, non_retryable in cases:
        err = await failure(servers, tmp_path, tool, arguments, server)
        assert (err.type, err.non_retryable) == (error_type, non_retryable), err
    # The session survives a timed-out call: the next call is answered.
    assert (await call(servers, tmp_path, "lookup", {"topic": "retries"})).content == NOTE


async def test_a_server_that_died_is_started_again(servers: McpServers, tmp_path: Path) -> None:
    assert (await call(servers, tmp_path, "lookup", {"topic": "retries"})).content == NOTE
    err = await failure(servers, tmp_path, "crash", {})  # the process exits mid-call
    assert (err.type, err.non_retryable) == ("McpUnavailable", False)  # a read's retry policy tries again
    assert (await call(servers, tmp_path, "lookup", {"topic": "retries"})).content == NOTE


async def test_an_unreachable_server_is_a_retryable_typed_failure(tmp_path: Path) -> None:
    mcp = McpServers(McpConfig(mcpServers={"gone": McpServerConfig(command=str(tmp_path / "no-such-program"))}))
    try:
        err = await failure(mcp, tmp_path, "lookup", {}, "gone")
        assert err.type == "McpUnavailable" and not err.non_retryable
        assert await mcp.every_spec() == []  # the LLM planner plans without it
    finally:
        await mcp.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_a_streamable_http_server_by_url(tmp_path: Path, notes_dir: Path) -> None:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "tests.mcp_notes_server", "streamable-http", str(port)],
                               cwd=settings.PROJECT_ROOT, env={"NOTES_DIR": str(notes_dir), "PATH": "/usr/bin:/bin"},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    mcp = McpServers(McpConfig(mcpServers={"web": McpServerConfig(url=f"http://127.0.0.1:{port}/mcp", side_effect="read")}))
    try:
        async with asyncio.timeout(30):
            while True:  # until the server listens
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    await asyncio.sleep(0.1)
        listing = await mcp.specs(["mcp:web:post_note"])
        assert [(s.name, s.side_effect, s.side_effect_source) for s in listing.specs] == [("mcp:web:post_note", "read", "config")]
        assert (await call(mcp, tmp_path, "lookup", {"topic": "retries"}, "web")).content == NOTE
    finally:
        await mcp.close()
        process.terminate()
        process.wait(timeout=10)


async def test_the_llm_planner_offers_configured_mcp_tools_and_records_the_ones_it_picks(servers: McpServers) -> None:
    plan = {"steps": [{"role": "researcher", "instruction": "Look up the notes on retries", "needs": [], "tools": ["mcp:notes:lookup"]}]}
    server = PlannerServer(json.dumps(plan))
    with server:
        planned = await ActivityEnvironment().run(
            Planner(servers).plan_goal, PlanRequest(goal="Explain retries from the notes", spec=models(server).planner))
    assert [s.name for s in planned.mcp_tools] == ["mcp:notes:lookup"] and planned.steps[0].tools == ["mcp:notes:lookup"]
    asked = server.requests[0].body
    enum = asked["response_format"]["json_schema"]["schema"]["properties"]["steps"]["items"]["properties"]["tools"]["items"]["enum"]
    assert {"mcp:notes:lookup", "mcp:notes:post_note", "calculate"} <= set(enum)
    assert "- mcp:notes:post_note (write): Post a note on a topic (others see it)." in asked["messages"][0]["content"]
    # Without MCP servers the planner offers the built-ins only, as before.
    assert not any(t.startswith("mcp:") for t in draft_schema(3)["properties"]["steps"]["items"]["properties"]["tools"]["items"]["enum"])


# --- goals on the dev server ----------------------------------------------------------------------


async def run_notes(client: Client, task_queue: str, servers: McpServers, playbook: str, model: ScriptedModel) -> tuple[GoalResult, WorkflowHistory]:
    request = GoalRequest(goal="Explain retries from the notes", playbook=playbook)
    return await run_goal(client, task_queue, request, all_activities(model.activity(), mcp=servers), approvers=None)


async def test_a_goal_calls_an_mcp_tool_and_reads_its_output(client: Client, task_queue: str, servers: McpServers, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    playbook = mcp_playbook(tmp_path, monkeypatch, "researcher", ["mcp:notes:lookup"])
    model = ScriptedModel(calls_then_reports("mcp__notes__lookup", {"topic": "retries"}))
    result, history = await run_notes(client, task_queue, servers, playbook, model)
    assert result.status is GoalStatus.COMPLETED, result.error
    assert NOTE in result.output
    assert [(s.name, s.side_effect, s.side_effect_source) for s in result.plan.mcp_tools] == [("mcp:notes:lookup", "read", "annotations")]
    offered = model.requests[0].tools
    assert [t.name for t in offered] == ["mcp__notes__lookup"] and json.loads(offered[0].parameters_json)["required"] == ["topic"]
    assert "You may call these tools: mcp__notes__lookup." in model.requests[0].messages[0].content
    shown = tool_messages(model.requests[1])[0].content  # the output reaches the model as untrusted data, under the name it called
    assert shown.startswith('<tool_output tool="mcp__notes__lookup"') and 'untrusted="true"' in shown and NOTE in shown
    record = result.steps[0].tool_calls[0]
    assert (record.tool, record.ok, record.arguments_json) == ("mcp:notes:lookup", True, '{"topic": "retries"}')
    assert scheduled_activities(history) == ["plan_goal", "call_model", "call_mcp_tool", "call_model"]
    assert activity_labels(history)[1] == "work: mcp:notes:lookup"  # [0] is the first model call: the plan is a local activity


async def test_a_role_not_granted_the_tool_is_denied(client: Client, task_queue: str, servers: McpServers, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    playbook = mcp_playbook(tmp_path, monkeypatch, "stranger", ["mcp:notes:lookup"])
    model = ScriptedModel(calls_then_reports("mcp__notes__lookup", {"topic": "retries"}))
    result, history = await run_notes(client, task_queue, servers, playbook, model)
    record = result.steps[0].tool_calls[0]
    assert (record.tool, record.ok) == ("mcp:notes:lookup", False)
    assert record.error == "PolicyDenied: role 'stranger' may not use tool 'mcp:notes:lookup'"
    assert ("policy_denied", "stranger") in audit(result) and result.audit[0].tool == "mcp:notes:lookup"
    assert "call_mcp_tool" not in scheduled_activities(history)


async def test_arguments_off_the_schema_are_refused_before_anything_is_scheduled(
    client: Client, task_queue: str, servers: McpServers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    playbook = mcp_playbook(tmp_path, monkeypatch, "researcher", ["mcp:notes:lookup"])
    model = ScriptedModel(calls_then_reports("mcp__notes__lookup", {"topic": 3}, {"subject": "retries"}))
    result, history = await run_notes(client, task_queue, servers, playbook, model)
    errors = [c.error for c in result.steps[0].tool_calls]
    assert errors == ["ToolArgumentsInvalid: topic: 3 is not of type 'string'",
                      "ToolArgumentsInvalid: (root): 'topic' is a required property"]
    assert "call_mcp_tool" not in scheduled_activities(history)
    assert "ToolArgumentsInvalid" in tool_messages(model.requests[1])[0].content  # the model is told, and may try again


async def test_an_undeclared_mcp_write_waits_for_approval_and_runs_once(
    client: Client, task_queue: str, servers: McpServers, tmp_path: Path, notes_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    playbook = mcp_playbook(tmp_path, monkeypatch, "publisher", ["mcp:notes:post_note"])
    model = ScriptedModel(calls_then_reports("mcp__notes__post_note", {"text": "Retries need idempotency.", "topic": "retries"}))
    async with build_worker(client, task_queue, activities=all_activities(model.activity(), mcp=servers)):
        handle = await client.start_workflow(GoalWorkflow.run, GoalRequest(goal="Post the note on retries", playbook=playbook),
                                             id=f"mcp-{uuid.uuid4().hex[:10]}", task_queue=task_queue)
        async with asyncio.timeout(60):
            [request] = await pending(handle)
            canonical = '{"text":"Retries need idempotency.","topic":"retries"}'
            assert (request.tool, request.arguments_json, request.requested_by) == ("mcp:notes:post_note", canonical, "publisher")
            assert request.action_sha256 == action_sha256("mcp:notes:post_note", McpCall(server="notes", tool="post_note",
                                                                                           arguments_json=canonical))
            assert posted(notes_dir) == []  # nothing ran while it waits
            approved = await decide(handle, "alice", request)
            assert approved.status is ApprovalStatus.APPROVED
            result, history = await finish(handle)
    assert result.status is GoalStatus.COMPLETED, result.error
    # Sent once, with the key the workflow stamped in the request's `_meta`; recorded under it in the ledger.
    (record,) = result.steps[0].tool_calls
    assert record.idempotency_key and record.idempotency_key.startswith("idem:v2:mcp:notes:post_note:")
    assert posted(notes_dir) == [{"topic": "retries", "text": "Retries need idempotency.", "key": record.idempotency_key}]
    assert from_settings().ledger.get(record.idempotency_key) is not None
    assert scheduled_activities(history).count("call_mcp_tool") == 1
    assert [kind for kind, _ in audit(result)] == ["requested", "approved", "executed"]
    assert result.approvals[0].rule == "mcp-writes"


async def test_a_tool_step_calls_an_mcp_tool_with_arguments_a_model_fills(
    client: Client, task_queue: str, servers: McpServers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FOREMAN_PLAYBOOKS_DIR", str(tmp_path / "playbooks"))
    step = {"type": "tool", "id": "look", "role": "researcher", "invocation": {"tool": "mcp:notes:lookup"},
            "model_fills": ["topic"], "fill_instruction": "The topic is retries."}
    policy = {"principals": [{"role": "researcher", "tools": ["mcp:notes:*"], "side_effects": ["read"]}]}
    playbook = write_playbook(tmp_path / "playbooks", {"name": "chain", "steps": [step], "policy": policy})
    model = ScriptedModel(lambda request: answer(json.dumps({"topic": "retries"})))
    result, history = await run_notes(client, task_queue, servers, playbook, model)
    assert result.status is GoalStatus.COMPLETED and result.output == NOTE, result.error
    filled = json.loads(model.requests[0].response_schema_json)  # built from the listed schema
    assert filled["required"] == ["topic"] and filled["properties"]["topic"]["type"] == "string"
    assert scheduled_activities(history) == ["plan_goal", "call_model", "call_mcp_tool"]


async def test_a_playbook_naming_an_unlisted_mcp_tool_is_invalid(servers: McpServers, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    playbook = mcp_playbook(tmp_path, monkeypatch, "researcher", ["mcp:notes:nothing", "mcp:elsewhere:x"])
    with pytest.raises(ApplicationError, match="'elsewhere' is not configured on this worker .*; MCP server 'notes' has no usable tool 'nothing'") as info:
        await ActivityEnvironment().run(Planner(servers).plan_goal, PlanRequest(goal="g", playbook=playbook))
    assert info.value.type == "PlanInvalid"
