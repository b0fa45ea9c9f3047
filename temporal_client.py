"""One way to connect to Temporal, shared by worker, starter and tests: pydantic data converter
and OpenTelemetry tracing on every client."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.contrib.pydantic import pydantic_data_converter

import settings


async def connect(address: str | None = None, namespace: str | None = None) -> Client:
    return await Client.connect(
        address or settings.temporal_address(),
        namespace=namespace or settings.temporal_namespace(),
        data_converter=pydantic_data_converter,
        interceptors=[TracingInterceptor()],
    )
