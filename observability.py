"""OpenTelemetry setup. Temporal's TracingInterceptor (on every client) emits spans for workflows
and activities; this chooses where they go: `settings.otel_exporter()` (FOREMAN_OTEL_EXPORTER) is
console, or otlp when the opentelemetry-exporter-otlp package is installed, or none (default)."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

import settings


def configure_tracing(service_name: str, exporter_name: str | None = None) -> None:
    """Install the global tracer provider; `exporter_name` defaults to the configured one."""
    exporter_name = (exporter_name or settings.otel_exporter()).lower()
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if exporter_name == "console":
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    elif exporter_name == "otlp":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter  # optional extra

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
