"""OTLP traces through the standard exporters (the `otlp` extra), over http/protobuf and grpc, to an in-process
receiver: `starter.py run` (its own process) starts a goal that an in-process worker runs, and one trace holds the
starter's span, the workflow's and every activity's, with the tool and verifier attributes."""

from __future__ import annotations

import asyncio
import sys
import uuid

import pytest
from temporalio.client import Client
from temporalio.contrib.opentelemetry import TracingInterceptor

import settings
from contracts.goal import GoalResult, GoalStatus
from observability import ObservabilityConfigError, tracer_provider
from testkit.goals import approve_everything
from tests.fakes import ScriptedModel, demo_responder
from tests.helpers import fake_activities, replay, run_cli, scheduled_activities, starter
from tests.otlp_receiver import GrpcReceiver, HttpReceiver, ReceivedSpan
from worker import build_worker

RECEIVERS = {"http/protobuf": HttpReceiver, "grpc": GrpcReceiver}


async def spans_named(receiver: HttpReceiver | GrpcReceiver, name: str) -> list[ReceivedSpan]:
    async with asyncio.timeout(10):
        while not (found := receiver.named(name)):
            await asyncio.sleep(0.05)
    return found


def only(spans: list[ReceivedSpan], name: str) -> ReceivedSpan:
    named = [s for s in spans if s.name == name]
    assert len(named) == 1, (name, named)
    return named[0]


@pytest.mark.parametrize("protocol", sorted(RECEIVERS))
async def test_one_trace_from_the_starter_through_the_workflow_to_every_activity(
    client: Client, task_queue: str, monkeypatch: pytest.MonkeyPatch, protocol: str,
) -> None:
    with RECEIVERS[protocol]() as receiver:
        # Standard variables only; the worker's provider and the starter's process read the same ones.
        monkeypatch.setenv("FOREMAN_OTEL_EXPORTER", "otlp")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
        provider = tracer_provider("foreman-worker")
        traced = Client(**{**client.config(), "interceptors": [TracingInterceptor(tracer=provider.get_tracer("foreman"))]})
        workflow_id = f"otlp-{uuid.uuid4().hex[:10]}"
        async with build_worker(traced, task_queue, activities=fake_activities(ScriptedModel(demo_responder).activity())):
            code, out, err = await run_cli(
                *starter("run", "Explain durable execution", "--playbook", "research-brief", "--id", workflow_id, "--no-wait"),
                address=client.service_client.config.target_host, task_queue=task_queue,
            )
            assert code == 0, err
            handle = client.get_workflow_handle(workflow_id, result_type=GoalResult)
            approving = asyncio.create_task(approve_everything(handle, ("bob", "carol")))  # a person's own trace
            async with asyncio.timeout(60):
                result = await handle.result()
            approving.cancel()
        provider.force_flush()
        start = (await spans_named(receiver, "StartWorkflow:GoalWorkflow"))[0]
        history = await handle.fetch_history()
        activities = scheduled_activities(history)
        for name in set(activities):
            await spans_named(receiver, f"RunActivity:{name}")
        provider.shutdown()
        spans = [s for s in receiver.spans if s.trace_id == start.trace_id]

    assert result.status is GoalStatus.COMPLETED
    await replay(history)
    assert start.service == "foreman-starter" and start.parent_span_id == ""
    run = only(spans, "RunWorkflow:GoalWorkflow")
    assert run.service == "foreman-worker" and run.parent_span_id == start.span_id
    # Every activity the goal ran is a span of this one trace, from the worker.
    ran = [s for s in spans if s.name.startswith("RunActivity:")]
    assert sorted(s.name.removeprefix("RunActivity:") for s in ran) == sorted(activities)
    assert {s.service for s in ran} == {"foreman-worker"}
    assert {"plan_goal", "call_model", "search_corpus", "verify_output", "write_file"} <= set(activities)

    # Tool spans: name, side-effect class, outcome; verifier spans: decision and score.
    write, search = only(spans, "RunActivity:write_file"), only(spans, "RunActivity:search_corpus")
    assert {k: v for k, v in write.attributes.items() if k.startswith("foreman.tool.")} == {
        "foreman.tool.name": "write_file", "foreman.tool.side_effect": "write", "foreman.tool.outcome": "ok"}
    assert (search.attributes["foreman.tool.name"], search.attributes["foreman.tool.side_effect"]) == ("search_corpus", "read")
    verdicts = [s.attributes for s in spans if s.name == "RunActivity:verify_output"]
    assert len(verdicts) == activities.count("verify_output")
    assert {(v["foreman.verdict.decision"], v["foreman.verdict.score"]) for v in verdicts} == {
        ("accept", step.score) for step in result.steps if step.score is not None}


def test_otlp_without_the_extra_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # An import that fails, as it does where the extra is not installed.
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.grpc.trace_exporter", None)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc")
    with pytest.raises(ObservabilityConfigError, match=r"pip install 'foreman\[otlp\]'"):
        tracer_provider("foreman-worker", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json")
    with pytest.raises(ObservabilityConfigError, match="'http/json' is not supported"):
        tracer_provider("foreman-worker", "otlp")
    with pytest.raises(ObservabilityConfigError, match="'zipkin' is not one of"):
        tracer_provider("foreman-worker", "zipkin")


def test_settings_follow_the_standard_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FOREMAN_OTEL_EXPORTER", "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"):
        monkeypatch.delenv(name, raising=False)
    assert (settings.otel_exporter(), settings.otlp_protocol()) == ("none", "http/protobuf")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    assert (settings.otel_exporter(), settings.otlp_protocol()) == ("otlp", "grpc")
    monkeypatch.setenv("FOREMAN_OTEL_EXPORTER", "console")  # Foreman's own wins
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf")  # the traces-specific one wins
    assert (settings.otel_exporter(), settings.otlp_protocol()) == ("console", "http/protobuf")


def test_the_standard_service_name_and_exporter_lists_are_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    assert tracer_provider("foreman-worker", "none").resource.attributes["service.name"] == "foreman-worker"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "billing-agents")  # the operator's name wins over the process's role
    assert tracer_provider("foreman-worker", "none").resource.attributes["service.name"] == "billing-agents"
    processors = tracer_provider("foreman-worker", "console, otlp")._active_span_processor._span_processors
    assert [type(p.span_exporter).__name__ for p in processors] == ["ConsoleSpanExporter", "OTLPSpanExporter"]
    assert tracer_provider("foreman-worker", "none,console")._active_span_processor._span_processors
    with pytest.raises(ObservabilityConfigError, match="'zipkin' is not one of"):
        tracer_provider("foreman-worker", "console,zipkin")


async def test_the_starter_refuses_an_unknown_exporter(client: Client, task_queue: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOREMAN_OTEL_EXPORTER", "zipkin")
    code, _, err = await run_cli(*starter("status", "no-such-goal"), address=client.service_client.config.target_host,
                                 task_queue=task_queue)
    assert code == 2 and "traces exporter 'zipkin' is not one of" in err, err
