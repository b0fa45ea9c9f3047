"""`call_model`: one model call, routed to the provider configured for the request's role.

Provenance (provider, model), token usage and cost come back in the `ModelResponse`, so every
prompt and response is in workflow history.
"""

from __future__ import annotations

from temporalio import activity

import settings
from activities.providers.base import get_provider
from contracts.llm import ModelRequest, ModelResponse


@activity.defn(name="call_model")
async def call_model(request: ModelRequest) -> ModelResponse:
    """Send one chat request to the model that serves this role."""
    model = settings.resolve_model(request.role, request.spec)
    activity.logger.debug("call_model role=%s provider=%s model=%s", request.role, model.provider, model.model)
    return await get_provider(model.provider).complete(request, model)
