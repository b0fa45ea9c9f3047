"""OpenTelemetry: the clients we build carry Temporal's tracing interceptor, so a goal yields spans
for the workflow and for every activity, linked in one trace."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.client import Client
from temporalio.contrib.opentelemetry import TracingInterceptor

from contracts.goal import GoalRequest, GoalStatus
from temporal_client import connect
from tests.fakes import ScriptedModel, demo_responder
from tests.helpers import fake_activities, run_goal


async def test_connect_installs_tracing(client: Client) -> None:
    ours = await connect(client.service_client.config.target_host)
    assert any(isinstance(i, TracingInterceptor) for i in ours.config()["interceptors"])
    assert type(ours.data_converter.payload_converter).__name__ == type(client.data_converter.payload_converter).__name__


async def test_a_goal_is_one_trace_with_a_span_per_activity(client: Client, task_queue: str) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    traced = Client(**{**client.config(), "interceptors": [TracingInterceptor(tracer=provider.get_tracer("test"))]})

    request = GoalRequest(goal="Explain durable execution", playbook="research-brief")
    result, _ = await run_goal(traced, task_queue, request, fake_activities(ScriptedModel(demo_responder).activity()))
    assert result.status is GoalStatus.COMPLETED

    spans = exporter.get_finished_spans()
    names = [s.name for s in spans]
    assert "StartWorkflow:GoalWorkflow" in names and "RunWorkflow:GoalWorkflow" in names
    for activity_name in ("plan_goal", "call_model", "search_corpus", "verify_output", "write_file"):
        assert f"RunActivity:{activity_name}" in names, activity_name
    # The workflow and every activity it ran share one trace (approvals sent by a person start their own).
    run_trace = next(s for s in spans if s.name == "RunWorkflow:GoalWorkflow").context.trace_id
    assert all(s.context.trace_id == run_trace for s in spans if s.name.startswith(("RunActivity:", "StartActivity:")))
