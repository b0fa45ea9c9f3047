"""Prometheus metrics: the worker's SDK runtime serves Temporal's metrics and Foreman's on one endpoint.

Two research-brief goals run on a worker whose model is a real OpenAI-protocol server on 127.0.0.1 (the real
`call_model`, provider and call cache), with a gated write each approved; the endpoint is then scraped with httpx
and every Foreman metric is checked against what the goals' results and histories say happened.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections import Counter

import httpx
import pytest
from temporalio.client import Client, WorkflowHistory
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

import settings
from contracts.errors import ErrorType
from contracts.goal import GoalRequest, GoalResult, GoalStatus, ModelRouting
from activities import metrics as activity_metrics
from activities.model_call import ModelCalls
from activities.providers import limits
from activities.tools import tool_activities, tool_implementations
from contracts.llm import ChatMessage, ChatRole, ModelRequest, ModelRole, ModelSpec, Provider
from contracts.tools import KEY_FIELD, CallContext, RememberArgs
from core.idempotency import CallSite, idempotency_key
from stores import from_settings
from contracts.tools import ReadFileArgs
from core import metrics
from observability import ObservabilityConfigError, metrics_runtime
from temporal_client import connect
from tests.fakes import ScriptedModel, calls_then_reports
from tests.helpers import completion, fake_activities, run_goal, scheduled_activities, single_step_playbook
from tests.llama_server import CrowdedProvider, Recorded, Reply, ScriptedServer, free_port
from worker import all_activities

SAMPLE = re.compile(r"^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
Sample = tuple[str, dict[str, str], float]


def parse(text: str) -> list[Sample]:
    """The samples of a Prometheus text exposition: (name, labels, value)."""
    samples = []
    for line in text.splitlines():
        if line and not line.startswith("#") and (match := SAMPLE.match(line)):
            samples.append((match[1], dict(LABEL.findall(match[2] or "")), float(match[3])))
    return samples


def total(samples: list[Sample], name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels`."""
    return sum(v for n, got, v in samples if n == name and labels.items() <= got.items())


def reply(request: Recorded) -> Reply:
    """The research-brief's executor: a cited note for the researcher, a one-sentence brief for the drafter."""
    system = request.body["messages"][0]["content"]
    if "You are the researcher" in system:
        return completion("- Durable execution resumes a workflow after a crash [source: durable-execution.md]")
    return completion("Durable execution records every step, so a crashed agent resumes instead of starting over.")


async def scrape(url: str, ready: dict[str, float]) -> list[Sample]:
    """The endpoint's samples once every metric in `ready` has reached its value (workflow metrics follow the
    workflow task that records them)."""
    async with asyncio.timeout(10), httpx.AsyncClient() as http:
        while True:
            samples = parse((await http.get(url)).text)
            if all(total(samples, name) >= value for name, value in ready.items()):
                return samples
            await asyncio.sleep(0.1)


def audit_kinds(results: list[GoalResult]) -> Counter[str]:
    return Counter(e.kind.value for r in results for e in r.audit)


def activity_counts(histories: list[WorkflowHistory]) -> Counter[str]:
    return Counter(name for h in histories for name in scheduled_activities(h))


async def test_worker_metrics_after_goals_with_model_tool_approval_and_verdict(client: Client, task_queue: str) -> None:
    port = free_port()
    traced = await connect(client.service_client.config.target_host, runtime=metrics_runtime(f"127.0.0.1:{port}"))
    with ScriptedServer(reply) as server:
        spec = ModelSpec(provider=Provider.OPENAI, model="scripted-gpt", base_url=server.base_url,
                         input_usd_per_mtok=1000.0, output_usd_per_mtok=2000.0)
        request = GoalRequest(goal="Explain durable execution", playbook="research-brief", models=ModelRouting(executor=spec))
        first, history1 = await run_goal(traced, task_queue, request, all_activities())
        second, history2 = await run_goal(traced, task_queue, request, all_activities())  # the call cache answers
        provider_calls = len(server.requests)
    results, histories = [first, second], [history1, history2]
    assert [r.status for r in results] == [GoalStatus.COMPLETED] * 2
    assert provider_calls == 2 and first.usage.cost_usd > 0 and second.usage.cache_hits.model == 2, second.usage

    samples = await scrape(f"http://127.0.0.1:{port}/metrics", {metrics.GOALS_FINISHED.name: 2})

    # Goals: started, finished by status and playbook, cost per goal.
    assert total(samples, metrics.GOALS_STARTED.name, subagent="false", workflow_type="GoalWorkflow") == 2
    assert total(samples, metrics.GOALS_FINISHED.name, status="completed", playbook="research-brief") == 2
    cost = {"status": "completed", "playbook": "research-brief"}
    assert total(samples, metrics.GOAL_COST.name + "_count", **cost) == 2
    assert total(samples, metrics.GOAL_COST.name + "_sum", **cost) == pytest.approx(first.usage.cost_usd + second.usage.cost_usd)
    assert total(samples, metrics.GOAL_COST.name + "_bucket", le="0.1", **cost) == 2  # 2 calls x 10+10 tokens: $0.06

    # Model calls that reached the provider (the second goal's were cache hits): latency and tokens.
    model = {"provider": "openai", "model": "scripted-gpt", "role": "executor"}
    assert total(samples, metrics.MODEL_CALLS.name + "_count", outcome="ok", **model) == provider_calls
    assert total(samples, metrics.MODEL_CALLS.name + "_bucket", le="+Inf", **model) == provider_calls
    assert total(samples, metrics.MODEL_TOKENS.name, kind="prompt", **model) == 10 * provider_calls
    assert total(samples, metrics.MODEL_TOKENS.name, kind="completion", **model) == 10 * provider_calls
    assert total(samples, metrics.CACHE_LOOKUPS.name, cache="model", result="miss") == provider_calls
    assert total(samples, metrics.CACHE_LOOKUPS.name, cache="model", result="hit") == sum(r.usage.cache_hits.model for r in results)

    # Tools: every attempt timed, by tool, side effect and outcome; the search the cache answered the second time.
    scheduled = activity_counts(histories)
    assert total(samples, metrics.TOOL_CALLS.name + "_count", tool="search_corpus", side_effect="read") == scheduled["search_corpus"] == 2
    assert total(samples, metrics.TOOL_CALLS.name + "_count", tool="search_corpus", outcome="cached") == 1
    assert total(samples, metrics.TOOL_CALLS.name + "_count", tool="write_file", side_effect="write", outcome="ok") == scheduled["write_file"]
    assert total(samples, metrics.TOOL_ERRORS.name) == 0
    assert total(samples, metrics.CACHE_LOOKUPS.name, cache="tool", tool="search_corpus", result="hit") == 1

    # Approvals: the desk's audit, event by event; verdicts: one per verify_output run, all accepted.
    kinds = audit_kinds(results)
    assert kinds["requested"] == 2 and kinds["approved"] >= 2
    for kind, count in kinds.items():
        assert total(samples, metrics.APPROVAL_EVENTS.name, event=kind, tool="write_file") == count, kind
    assert total(samples, metrics.VERDICTS.name, decision="accept") == scheduled["verify_output"] > 0
    assert total(samples, metrics.VERDICT_SCORES.name + "_count", decision="accept") == scheduled["verify_output"]

    # The SDK's own metrics come from the same endpoint, and no label names a single workflow.
    assert total(samples, "temporal_workflow_completed", workflow_type="GoalWorkflow") >= 2
    ids = {r.workflow_id for r in results}
    assert not [s for s in samples if ids & set(s[1].values())]


async def test_failed_model_calls_and_tool_attempts_are_counted_with_their_error_type() -> None:
    port = free_port()
    runtime = metrics_runtime(f"127.0.0.1:{port}")  # kept: the endpoint lives as long as the runtime
    environment = ActivityEnvironment()
    environment.metric_meter = runtime.metric_meter
    read_file = next(fn for fn in tool_activities() if fn.__name__ == "read_file")
    with pytest.raises(ApplicationError) as missing:
        await environment.run(read_file, ReadFileArgs(path="no/such/file.md"))
    with ScriptedServer(lambda request: Reply(status=500, body={"error": {"message": "boom"}})) as server:
        request = ModelRequest(role=ModelRole.PLANNER, messages=[ChatMessage(role=ChatRole.USER, content="hi")],
                               spec=ModelSpec(provider=Provider.OPENAI, model="flaky", base_url=server.base_url))
        with pytest.raises(ApplicationError):
            await environment.run(ModelCalls(None).call_model, request)

    samples = await scrape(f"http://127.0.0.1:{port}/metrics", {metrics.TOOL_ERRORS.name: 1, metrics.MODEL_CALLS.name + "_count": 1})
    tool = {"tool": "read_file", "side_effect": "read"}
    assert total(samples, metrics.TOOL_ERRORS.name, error_type=missing.value.type, **tool) == 1
    assert total(samples, metrics.TOOL_CALLS.name + "_count", outcome="failed", **tool) == 1
    model = {"provider": "openai", "model": "flaky", "role": "planner"}
    assert total(samples, metrics.MODEL_CALLS.name + "_count", outcome="error", **model) == len(server.requests) == 1
    assert total(samples, metrics.MODEL_TOKENS.name, **model) == 0


async def test_deferred_model_calls_are_counted_by_provider_and_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    """Real servers on 127.0.0.1 and the real `call_model`: one attempt the worker's limiter hands back to Temporal
    (ModelDeferred) per reason: the endpoint paused by a 429's Retry-After of 30 s, a token 10 s off at 6 requests a
    minute, and the only concurrency slot busy past WAIT_IN_PLACE_SECONDS. Each is counted under its reason; none
    reached a provider, so none is a model call."""
    monkeypatch.setattr(limits, "WAIT_IN_PLACE_SECONDS", 0.2)
    port = free_port()
    runtime = metrics_runtime(f"127.0.0.1:{port}")  # kept: the endpoint lives as long as the runtime
    environment = ActivityEnvironment()
    environment.metric_meter = runtime.metric_meter
    calls = ModelCalls(None)

    def to(server: ScriptedServer) -> ModelRequest:
        spec = ModelSpec(provider=Provider.OPENAI, model="held", base_url=server.base_url)
        return ModelRequest(role=ModelRole.EXECUTOR, messages=[ChatMessage(role=ChatRole.USER, content="hi")], spec=spec)

    async def deferred(server: ScriptedServer) -> None:
        with pytest.raises(ApplicationError) as caught:
            await environment.run(calls.call_model, to(server))
        assert caught.value.type == ErrorType.MODEL_DEFERRED, caught.value

    # Calls made outside an activity (directly) set the scene: they are never deferred, and record nothing.
    limited = Reply(429, {"error": {"message": "slow down"}}, {"Retry-After": "30"})
    async with asyncio.timeout(10):
        with ScriptedServer(lambda request: limited) as paused, ScriptedServer(CrowdedProvider(limit=100)) as rated:
            with pytest.raises(ApplicationError):  # the 429 pauses the endpoint for 30 s
                await calls.call_model(to(paused))
            await deferred(paused)
            monkeypatch.setenv("FOREMAN_OPENAI_REQUESTS_PER_MINUTE", "6")
            await calls.call_model(to(rated))  # the bucket's only token
            await deferred(rated)
        monkeypatch.delenv("FOREMAN_OPENAI_REQUESTS_PER_MINUTE")
        monkeypatch.setenv("FOREMAN_OPENAI_MAX_CONCURRENT", "1")
        with ScriptedServer(CrowdedProvider(limit=100, seconds=0.6)) as crowded:
            busy = asyncio.create_task(calls.call_model(to(crowded)))  # holds the only slot for 0.6 s
            while not crowded.requests:
                await asyncio.sleep(0.01)
            await deferred(crowded)
            await busy
        assert [len(server.requests) for server in (paused, rated, crowded)] == [1, 1, 1]  # the deferred sent nothing
        samples = await scrape(f"http://127.0.0.1:{port}/metrics", {metrics.MODEL_DEFERRALS.name: 3})
    for reason in ("retry_after", "rate", "concurrency"):
        assert total(samples, metrics.MODEL_DEFERRALS.name, provider="openai", reason=reason) == 1, reason
    assert total(samples, metrics.MODEL_DEFERRALS.name) == 3
    assert total(samples, metrics.MODEL_CALLS.name + "_count") == 0  # the direct calls ran outside the activity


def test_metrics_address_errors_and_url(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ObservabilityConfigError, match="FOREMAN_METRICS_ADDRESS, an IP:PORT"):
        metrics_runtime("localhost-9464")
    monkeypatch.delenv("FOREMAN_METRICS_URL", raising=False)
    monkeypatch.delenv("FOREMAN_METRICS_ADDRESS", raising=False)
    assert settings.metrics_address() is None and settings.metrics_url() is None
    monkeypatch.setenv("FOREMAN_METRICS_ADDRESS", "0.0.0.0:9464")
    assert settings.metrics_url() == "http://localhost:9464/metrics"
    monkeypatch.setenv("FOREMAN_METRICS_URL", "https://metrics.example/foreman")
    assert settings.metrics_url() == "https://metrics.example/foreman"


def test_worker_refuses_a_bad_metrics_address_before_connecting() -> None:
    done = subprocess.run([sys.executable, "worker.py", "--metrics-address", "nowhere", "--address", "127.0.0.1:1"],
                          cwd=settings.PROJECT_ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "cannot serve metrics on 'nowhere'" in done.stderr, done.stderr


def test_request_named_models_are_labelled_up_to_a_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """A request may name any model: past MAX_MODEL_LABELS of them in one worker, the label is `other`, so the
    series stay bounded; a model already labelled keeps its label."""
    monkeypatch.setattr(activity_metrics, "_model_labels", set())
    labels = [activity_metrics.model_label(Provider.OPENAI, f"model-{i}") for i in range(activity_metrics.MAX_MODEL_LABELS + 5)]
    assert labels[:activity_metrics.MAX_MODEL_LABELS] == [f"model-{i}" for i in range(activity_metrics.MAX_MODEL_LABELS)]
    assert set(labels[activity_metrics.MAX_MODEL_LABELS:]) == {activity_metrics.OTHER_MODEL}
    assert activity_metrics.model_label(Provider.OPENAI, "model-3") == "model-3"
    assert activity_metrics.model_label(Provider.LOCAL, "/models/new.gguf") == activity_metrics.OTHER_MODEL


async def test_a_policy_denial_is_counted_under_the_tool_it_denied(client: Client, task_queue: str, tmp_path, monkeypatch) -> None:
    """A denial has no approval request; its event is still labelled with the tool (it was `none`)."""
    port = free_port()
    traced = await connect(client.service_client.config.target_host, runtime=metrics_runtime(f"127.0.0.1:{port}"))
    playbook = single_step_playbook(tmp_path, monkeypatch, role="stranger")  # no principal grants it calculate
    model = ScriptedModel(calls_then_reports("calculate", {"expression": "6*7"}))
    result, _ = await run_goal(traced, task_queue, GoalRequest(goal="What is 6*7?", playbook=playbook), fake_activities(model.activity()))
    assert result.steps[0].tool_calls[0].error.startswith("PolicyDenied"), result.steps[0].tool_calls
    samples = await scrape(f"http://127.0.0.1:{port}/metrics", {metrics.APPROVAL_EVENTS.name: 1})
    assert total(samples, metrics.APPROVAL_EVENTS.name, event="policy_denied", tool="calculate") == 1
    assert total(samples, metrics.APPROVAL_EVENTS.name, tool="none") == 0


async def test_a_retry_answered_from_the_ledger_is_counted_as_deduplicated(tmp_path, monkeypatch) -> None:
    """The second attempt of a `remember` returns the first attempt's recorded result without writing again: its
    outcome is `deduplicated`, not `ok`, so a dashboard shows how often retries were absorbed."""
    monkeypatch.setenv("FOREMAN_HOME", str(tmp_path))
    port = free_port()
    runtime = metrics_runtime(f"127.0.0.1:{port}")
    environment = ActivityEnvironment()
    environment.metric_meter = runtime.metric_meter
    remember = tool_implementations(from_settings())["remember"]
    context = CallContext(workflow_id="goal-1", step_id="note", role="drafter", saw_untrusted=False)
    args = RememberArgs(text="Retries are absorbed by the ledger.", topic="retries", context=context)
    site = CallSite(namespace="default", workflow_id="goal-1", first_run_id="run-1", step_id="note", call_index=0)
    args = args.model_copy(update={KEY_FIELD: idempotency_key(site, "remember", args)})
    first, retried = await environment.run(remember, args), await environment.run(remember, args)
    assert first == retried and first.ok
    samples = await scrape(f"http://127.0.0.1:{port}/metrics", {metrics.TOOL_CALLS.name + "_count": 2})
    tool = {"tool": "remember", "side_effect": "write"}
    assert total(samples, metrics.TOOL_CALLS.name + "_count", outcome="ok", **tool) == 1
    assert total(samples, metrics.TOOL_CALLS.name + "_count", outcome="deduplicated", **tool) == 1
