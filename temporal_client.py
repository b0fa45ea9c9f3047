"""One way to connect to Temporal, shared by worker, starter and tests: pydantic data converter
and OpenTelemetry tracing on every client; a worker serving metrics passes its runtime
(`observability.metrics_runtime`)."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import Runtime

import settings


async def connect(address: str | None = None, namespace: str | None = None, *, runtime: Runtime | None = None) -> Client:
    return await Client.connect(
        address or settings.temporal_address(),
        namespace=namespace or settings.temporal_namespace(),
        data_converter=pydantic_data_converter,
        interceptors=[TracingInterceptor()],
        runtime=runtime,
    )
