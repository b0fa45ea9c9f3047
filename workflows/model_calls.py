"""One `call_model` activity for a step (workflow code): reserved against the budget before it is
awaited, recorded in the step's result with provenance and usage. A call the worker's cache answered is
not a model call: its reservation is released and it counts as a cache hit.

Backpressure: the call goes to the plan's model task queue (`Route`), and its timeouts end by the goal's deadline
(`Budget.max_wall_seconds`), queueing included; a call cut off by that deadline ends the goal as over budget."""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from contracts.continuation import EntryKind, JournalEntry
    from contracts.events import ModelCalled
    from contracts.goal import GoalRequest, ModelCallRecord, StepResult
    from contracts.llm import CALL_MODEL_ACTIVITY, CacheUse, ChatMessage, ModelRequest, ModelResponse, ModelRole, ModelSpec, ToolSchema
    from contracts.plan import PlanStep
    from core.options import MODEL_CALL
    from workflows.events import EventLog
    from workflows.journal import Journal
    from workflows.ledger import GoalLedger
    from workflows.routing import Route


def cache_use(request: GoalRequest, step: PlanStep) -> CacheUse:
    """Off for the goal or the step wins; a step's opt-in caches above temperature 0 too."""
    if not request.cache or step.cache is False:
        return CacheUse.OFF
    return CacheUse.ON if step.cache else CacheUse.DETERMINISTIC


async def call_model(
    ledger: GoalLedger, spec: ModelSpec, messages: list[ChatMessage], result: StepResult, activity_id: str,
    tools: list[ToolSchema] | None = None, response_schema_json: str | None = None, cache: CacheUse = CacheUse.DETERMINISTIC,
    journal: Journal | None = None, events: EventLog | None = None, route: Route | None = None,
) -> ModelResponse:
    """`activity_id` names the call in the history and the UI ("STEP: model turn N"): unique among the run's open
    activities, since a step makes one call at a time. It is not a summary: a summary is a payload the SDK resolves
    through the sandbox four times per call, a quarter of a replay's time (bench section 10).
    `journal`: a resumed step's completed call is answered from it (already charged in the carried ledger, and
    already told as an event by the run that made it)."""
    replayed = journal.replayed(result.step_id, EntryKind.MODEL) if journal else None
    response = replayed.response if replayed and replayed.response else await _execute(
        ledger, spec, messages, activity_id, tools, response_schema_json, cache, route or Route())
    if journal and not replayed:
        journal.record(result.step_id, JournalEntry(kind=EntryKind.MODEL, response=response))
    if events and not replayed:
        events.emit(
            ModelCalled, step_id=result.step_id, role=ModelRole.EXECUTOR.value, provider=response.provider.value,
            model=response.model, prompt_tokens=response.usage.prompt_tokens, completion_tokens=response.usage.completion_tokens,
            cost_usd=response.cost_usd, latency_ms=response.latency_ms or None, cached=response.cached,
        )
    result.model_calls.append(
        ModelCallRecord(
            provider=response.provider.value,
            model=response.model,
            prompt_tokens=response.usage.prompt_tokens,
            completion_tokens=response.usage.completion_tokens,
            cost_usd=response.cost_usd,
            finish_reason=response.finish_reason,
            cached=response.cached,
        )
    )
    return response


async def _execute(
    ledger: GoalLedger, spec: ModelSpec, messages: list[ChatMessage], activity_id: str, tools: list[ToolSchema] | None,
    response_schema_json: str | None, cache: CacheUse, route: Route,
) -> ModelResponse:
    ledger.before_model_call()
    try:
        response = await workflow.execute_activity(
            CALL_MODEL_ACTIVITY,
            ModelRequest(
                role=ModelRole.EXECUTOR, spec=spec, messages=list(messages), tools=tools or [],
                response_schema_json=response_schema_json, cache=cache,
            ),
            result_type=ModelResponse,
            activity_id=activity_id,
            **route.options(),
            **MODEL_CALL.within(ledger.time_left()).kwargs(),
        )
    except ActivityError as err:
        ledger.cut_off(err)  # cut off by the goal's deadline (queued or retrying): that is why, and the goal ends
        raise
    ledger.charge_model(response.usage, response.cost_usd, calls=0)  # the call was reserved
    if response.cached:  # answered from the cache: no provider call was made, so none is counted
        ledger.usage.model_calls -= 1
        ledger.usage.cache_hits.model += 1
    return response
