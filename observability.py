"""Traces and metrics leave the process here.

Traces: Temporal's TracingInterceptor (on every client) emits spans for the start, the workflow and every
activity, linked in one trace; this chooses where they go: `settings.otel_exporter()` is `console`, `otlp` or
`none` (default). OTLP uses the standard exporter packages (`pip install 'foreman[otlp]'`), over
`http/protobuf` (default) or `grpc` (`OTEL_EXPORTER_OTLP_PROTOCOL`); the exporters read the other
`OTEL_EXPORTER_OTLP_*` variables (endpoint, headers, timeout, certificates) themselves.

Metrics: the Temporal SDK runtime serves Prometheus at FOREMAN_METRICS_ADDRESS: its own metrics and Foreman's
(`core/metrics.py`), recorded through the SDK's metric meters. No exporter of our own.
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

import settings
from core.metrics import bucket_overrides

EXPORTERS = ("console", "otlp", "none")
OTLP_PROTOCOLS = ("http/protobuf", "grpc")


class ObservabilityConfigError(ValueError):
    """A tracing or metrics setting that cannot work: named, with what would."""


def otlp_span_exporter(protocol: str | None = None) -> SpanExporter:
    """The standard OTLP span exporter for `protocol` (default: the configured one); a clear error without the extra."""
    protocol = protocol or settings.otlp_protocol()
    try:
        if protocol == "http/protobuf":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

            return HttpExporter()
        if protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

            return GrpcExporter()
    except ImportError as err:
        raise ObservabilityConfigError(
            f"OTLP traces over {protocol} need the otlp extra: pip install 'foreman[otlp]' ({err})"
        ) from err
    raise ObservabilityConfigError(f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r} is not supported: use one of {OTLP_PROTOCOLS}")


def tracer_provider(service_name: str, exporter_name: str | None = None) -> TracerProvider:
    """A tracer provider sending spans to `exporter_name`, one exporter or a comma list (default: the configured ones),
    named by OTEL_SERVICE_NAME when set, else `service_name`."""
    names = [n.strip() for n in (exporter_name or settings.otel_exporter()).lower().split(",") if n.strip()] or ["none"]
    for name in names:
        if name not in EXPORTERS:
            raise ObservabilityConfigError(f"traces exporter {name!r} is not one of {EXPORTERS} (FOREMAN_OTEL_EXPORTER)")
    provider = TracerProvider(resource=Resource.create({"service.name": settings.otel_service_name(service_name)}))
    for name in dict.fromkeys(names):  # each once, in the order given; `none` adds nothing
        if name == "console":
            provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        elif name == "otlp":
            provider.add_span_processor(BatchSpanProcessor(otlp_span_exporter()))
    return provider


def configure_tracing(service_name: str, exporter_name: str | None = None) -> None:
    """Install the global tracer provider (the clients' TracingInterceptor uses it); spans still batched are
    flushed when the process exits."""
    trace.set_tracer_provider(tracer_provider(service_name, exporter_name))


def flush_tracing() -> None:
    """Send the spans still batched now: for a process that ends with `os._exit` (the starter), which skips the
    exit hooks that would."""
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.shutdown()


def metrics_runtime(bind_address: str) -> Runtime:
    """A Temporal SDK runtime serving Prometheus on `bind_address` (`IP:PORT`, e.g. `0.0.0.0:9464`) at /metrics: the
    SDK's metrics and Foreman's. Give it to the client the worker uses (`temporal_client.connect(runtime=...)`)."""
    config = PrometheusConfig(bind_address=bind_address, durations_as_seconds=True, histogram_bucket_overrides=bucket_overrides())
    try:
        return Runtime(telemetry=TelemetryConfig(metrics=config))
    except ValueError as err:
        raise ObservabilityConfigError(f"cannot serve metrics on {bind_address!r} (FOREMAN_METRICS_ADDRESS, an IP:PORT "
                                       f"such as 0.0.0.0:9464): {err}") from err
