"""One `call_model` activity for a step (workflow code): reserved against the budget before it is
awaited, recorded in the step's result with provenance and usage."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.goal import ModelCallRecord, StepResult
    from contracts.llm import CALL_MODEL_ACTIVITY, ChatMessage, ModelRequest, ModelResponse, ModelRole, ModelSpec, ToolSchema
    from core.options import MODEL_CALL
    from workflows.ledger import GoalLedger


async def call_model(
    ledger: GoalLedger, spec: ModelSpec, messages: list[ChatMessage], result: StepResult, summary: str,
    tools: list[ToolSchema] | None = None, response_schema_json: str | None = None,
) -> ModelResponse:
    ledger.before_model_call()
    response = await workflow.execute_activity(
        CALL_MODEL_ACTIVITY,
        ModelRequest(
            role=ModelRole.EXECUTOR, spec=spec, messages=list(messages), tools=tools or [],
            response_schema_json=response_schema_json,
        ),
        result_type=ModelResponse,
        summary=summary,
        **MODEL_CALL.kwargs(),
    )
    ledger.usage.add_model(response.usage, response.cost_usd, calls=0)  # the call was reserved
    result.model_calls.append(
        ModelCallRecord(
            provider=response.provider.value,
            model=response.model,
            prompt_tokens=response.usage.prompt_tokens,
            completion_tokens=response.usage.completion_tokens,
            cost_usd=response.cost_usd,
            finish_reason=response.finish_reason,
        )
    )
    return response
