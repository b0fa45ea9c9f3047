"""Metrics and span attributes from activities: model calls, tool calls, cache lookups, verdicts.

Recorded on `activity.metric_meter()` (the SDK runtime's meter, so they are scraped with Temporal's own metrics;
the SDK adds namespace, task_queue and activity_type); outside an activity (a direct call in a test or the bench)
nothing is recorded. The same facts go on the activity's OpenTelemetry span (`foreman.*` attribute names).
Names, help and buckets: `core/metrics.py`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from enum import StrEnum
from pathlib import PurePath

from opentelemetry import trace
from temporalio import activity
from temporalio.common import MetricMeter
from temporalio.exceptions import ApplicationError

from contracts.llm import ModelRole, Provider, TokenUsage
from contracts.tools import ToolResult
from contracts.verify import Verdict
from core import metrics


def _meter() -> MetricMeter:
    return activity.metric_meter() if activity.in_activity() else MetricMeter.noop


MAX_MODEL_LABELS = 32  # per worker process: a request may name any model, and each label is a series forever
OTHER_MODEL = "other"
_model_labels: set[tuple[str, str]] = set()


def model_label(provider: Provider, model: str) -> str:
    """The model as a metric label: a local model is a file path on the worker, so its file name (a path is neither
    stable nor short); past MAX_MODEL_LABELS distinct models in this process, OTHER_MODEL."""
    name = PurePath(model).name if provider is Provider.LOCAL else model
    if (provider.value, name) in _model_labels:
        return name
    if len(_model_labels) < MAX_MODEL_LABELS:
        _model_labels.add((provider.value, name))
        return name
    return OTHER_MODEL


def model_call(provider: Provider, model: str, role: ModelRole, seconds: float, usage: TokenUsage | None) -> None:
    """One call that reached a provider; `usage` is None when it failed."""
    labels = {"provider": provider.value, "model": model_label(provider, model), "role": role.value}
    meter = _meter()
    histogram = meter.create_histogram_float(metrics.MODEL_CALLS.name, metrics.MODEL_CALLS.help, "s")
    histogram.record(seconds, labels | {"outcome": "ok" if usage is not None else "error"})
    if usage is not None:
        tokens = meter.create_counter(metrics.MODEL_TOKENS.name, metrics.MODEL_TOKENS.help, "tokens")
        tokens.add(usage.prompt_tokens, labels | {"kind": "prompt"})
        tokens.add(usage.completion_tokens, labels | {"kind": "completion"})


class DeferralReason(StrEnum):
    """What held a model call the limiter deferred (`activities.providers.limits`): a fixed set, so a bounded label."""

    RATE = "rate"  # the endpoint's requests per minute
    RETRY_AFTER = "retry_after"  # a 429's pause
    CONCURRENCY = "concurrency"  # every MAX_CONCURRENT slot stayed busy


def model_deferral(provider: Provider, reason: DeferralReason) -> None:
    """One attempt failed as ModelDeferred instead of waiting (labels: two enums, so no cap is needed)."""
    counter = _meter().create_counter(metrics.MODEL_DEFERRALS.name, metrics.MODEL_DEFERRALS.help)
    counter.add(1, {"provider": provider.value, "reason": reason.value})


def cache_lookup(cache: str, hit: bool, tool: str | None = None) -> None:
    """A call-cache lookup (`cache`: model or tool)."""
    labels = {"cache": cache, "result": "hit" if hit else "miss"} | ({"tool": tool} if tool else {})
    _meter().create_counter(metrics.CACHE_LOOKUPS.name, metrics.CACHE_LOOKUPS.help).add(1, labels)


_answered_from_ledger: ContextVar[bool] = ContextVar("foreman_answered_from_ledger", default=False)


def answered_from_ledger() -> None:
    """This attempt returned the result an earlier attempt recorded (its effect was not done again): counted as
    `deduplicated`, not `ok`."""
    _answered_from_ledger.set(True)


async def measured_tool(tool: str, side_effect: Callable[[], str], run: Callable[[], Awaitable[ToolResult]]) -> ToolResult:
    """Run one tool attempt, timed; its outcome goes to the metrics and to the span (tool name, side-effect class,
    outcome, error type). `side_effect` is asked after the run (an MCP tool's is known once its server listed it)."""
    started = time.monotonic()
    _answered_from_ledger.set(False)
    try:
        result = await run()
    except BaseException as err:
        outcome = "failed"
        error_type = err.type if isinstance(err, ApplicationError) and err.type else type(err).__name__
        raise
    else:
        outcome = ("cached" if result.cached else "deduplicated" if result.ok and _answered_from_ledger.get()
                   else "ok" if result.ok else "error")
        error_type = None if result.ok else result.error_type or "error"
        return result
    finally:
        effect = side_effect()
        labels = {"tool": tool, "side_effect": effect}
        meter = _meter()
        histogram = meter.create_histogram_float(metrics.TOOL_CALLS.name, metrics.TOOL_CALLS.help, "s")
        histogram.record(time.monotonic() - started, labels | {"outcome": outcome})
        if error_type is not None:
            meter.create_counter(metrics.TOOL_ERRORS.name, metrics.TOOL_ERRORS.help).add(1, labels | {"error_type": error_type})
        trace.get_current_span().set_attributes({
            "foreman.tool.name": tool, "foreman.tool.side_effect": effect, "foreman.tool.outcome": outcome,
            **({"foreman.tool.error_type": error_type} if error_type else {}),
        })


def verdict(result: Verdict) -> None:
    """The verifier's decision and score, as metrics and on the span."""
    labels = {"decision": result.decision.value}
    meter = _meter()
    meter.create_counter(metrics.VERDICTS.name, metrics.VERDICTS.help).add(1, labels)
    meter.create_histogram_float(metrics.VERDICT_SCORES.name, metrics.VERDICT_SCORES.help).record(result.score, labels)
    trace.get_current_span().set_attributes({
        "foreman.verdict.decision": result.decision.value, "foreman.verdict.score": result.score,
        "foreman.verdict.checks": len(result.results), "foreman.verdict.failed_checks": len(result.reasons),
    })
