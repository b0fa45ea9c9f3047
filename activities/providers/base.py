"""The provider contract: turn a `ModelRequest` into a `ModelResponse` for one resolved model.

Providers make exactly one attempt: Temporal's retry policy owns retries, so failures are raised
as `ApplicationError` with a typed `type` (see `http_errors`). Activities call them through `complete`, which
waits for this worker's turn at the endpoint first (`limits`).
"""

from __future__ import annotations

import time
from typing import Protocol

from activities import metrics
from activities.providers.limits import limiter
from contracts.llm import ModelRequest, ModelResponse, Provider
from settings import ResolvedModel


class ModelProvider(Protocol):
    async def complete(self, request: ModelRequest, model: ResolvedModel) -> ModelResponse:
        """One model call; raises ApplicationError (typed) on failure."""
        ...


def get_provider(provider: Provider) -> ModelProvider:
    """The adapter for a provider; imported lazily so a worker without llama-cpp can still serve HTTP models."""
    if provider is Provider.LOCAL:
        from activities.providers.local import LocalProvider

        return LocalProvider.shared()
    if provider is Provider.OPENAI:
        from activities.providers.openai import OpenAIProvider

        return OpenAIProvider()
    if provider is Provider.ANTHROPIC:
        from activities.providers.anthropic import AnthropicProvider

        return AnthropicProvider()
    raise ValueError(f"unknown provider {provider!r}")


async def complete(request: ModelRequest, model: ResolvedModel) -> ModelResponse:
    """One model call within this worker's limits for the model's endpoint, timed and counted
    (`activities.metrics.model_call`; the time waited for a turn is not the call's): every activity that calls a model
    (call_model, the LLM planner, the verifier's judge) goes through here."""
    async with limiter(model).slot(model.provider.value):
        started = time.monotonic()
        response = None
        try:
            response = await get_provider(model.provider).complete(request, model)
            return response
        finally:
            usage = response.usage if response is not None else None
            metrics.model_call(model.provider, model.model, request.role, time.monotonic() - started, usage)
