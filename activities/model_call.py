"""`call_model`: one model call, routed to the provider configured for the request's role.

Provenance (provider, model), token usage and cost come back in the `ModelResponse`, so every
prompt and response is in workflow history; the same facts go on the activity's OpenTelemetry span
(GenAI semantic-convention attribute names).
"""

from __future__ import annotations

from opentelemetry import trace
from temporalio import activity

import settings
from activities.providers.base import get_provider
from contracts.llm import CALL_MODEL_ACTIVITY, ModelRequest, ModelResponse


@activity.defn(name=CALL_MODEL_ACTIVITY)
async def call_model(request: ModelRequest) -> ModelResponse:
    """Send one chat request to the model that serves this role."""
    model = settings.resolve_model(request.role, request.spec)
    response = await get_provider(model.provider).complete(request, model)
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
        }
    )
    return response
