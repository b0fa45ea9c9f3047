"""`call_model`: one model call, routed to the provider configured for the request's role.

Provenance (provider, model), token usage and cost come back in the `ModelResponse`, so every
prompt and response is in workflow history; the same facts go on the activity's OpenTelemetry span
(GenAI semantic-convention attribute names).

A request the cache may answer (`CacheUse`: at temperature 0 by default, always when the step opted in)
is looked up by a content key (provider, model, server, parameters, messages, tool schemas, output
schema) in the worker's `CallCache` first; a hit costs nothing and is marked `cached`. Replay never
needs the cache: results are in the history.
"""

from __future__ import annotations

import asyncio
import json

from opentelemetry import trace
from pydantic import ValidationError
from temporalio import activity

import settings
from activities import metrics
from activities.providers.base import complete
from contracts.llm import CALL_MODEL_ACTIVITY, CacheUse, ModelRequest, ModelResponse, TokenUsage
from core.hashing import sha256_text
from stores.protocols import CallCache


def cache_key(request: ModelRequest, model: settings.ResolvedModel) -> str:
    """The content key of a call: everything that shapes the answer, nothing secret (no API key)."""
    identity = {
        "provider": model.provider.value, "model": model.model, "base_url": model.base_url,
        "temperature": model.temperature, "max_tokens": model.max_tokens,
        "messages": [m.model_dump(mode="json") for m in request.messages],
        "tools": [t.model_dump(mode="json") for t in request.tools],
        "response_schema_json": request.response_schema_json,
    }
    return "model:" + sha256_text(json.dumps(identity, sort_keys=True, separators=(",", ":"), ensure_ascii=False))


def cacheable(request: ModelRequest, model: settings.ResolvedModel) -> bool:
    return request.cache is CacheUse.ON or (request.cache is CacheUse.DETERMINISTIC and model.temperature == 0)


class ModelCalls:
    """The `call_model` activity, with the worker's call cache (None: every call goes to the provider)."""

    def __init__(self, cache: CallCache | None) -> None:
        self.cache = cache

    async def _lookup(self, key: str | None) -> ModelResponse | None:
        """The cached response, or None: no key, no entry, or an entry written by another version (a miss)."""
        if key is None or self.cache is None or (text := await asyncio.to_thread(self.cache.get, key)) is None:
            return None
        try:
            return ModelResponse.model_validate_json(text)
        except ValidationError:
            activity.logger.warning("call cache entry %s is not a ModelResponse of this version: ignored", key[:24])
            return None

    @activity.defn(name=CALL_MODEL_ACTIVITY)
    async def call_model(self, request: ModelRequest) -> ModelResponse:
        """Send one chat request to the model that serves this role (or answer it from the cache)."""
        model = settings.resolve_model(request.role, request.spec)
        key = cache_key(request, model) if self.cache is not None and cacheable(request, model) else None
        hit = await self._lookup(key)
        if key is not None:
            metrics.cache_lookup("model", hit is not None)
        if hit is not None:
            response = hit.model_copy(update={"cached": True, "usage": TokenUsage(), "cost_usd": 0.0, "latency_ms": 0.0})
        else:
            response = await complete(request, model)
            if key is not None:
                await asyncio.to_thread(self.cache.put, key, response.model_dump_json())
        trace.get_current_span().set_attributes(
            {
                "gen_ai.system": response.provider.value,
                "gen_ai.request.model": model.model,
                "gen_ai.response.model": response.model,
                "gen_ai.response.finish_reasons": [response.finish_reason],
                "gen_ai.usage.input_tokens": response.usage.prompt_tokens,
                "gen_ai.usage.output_tokens": response.usage.completion_tokens,
                "foreman.role": request.role.value,
                "foreman.cost_usd": response.cost_usd,
                "foreman.cache_hit": response.cached,
            }
        )
        return response
