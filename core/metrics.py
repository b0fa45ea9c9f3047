"""Foreman's Prometheus metrics: names, help texts and histogram buckets, in one place.

Recorded through the Temporal SDK's metric meters (`workflows/metrics.py` in workflow code, replay-safe;
`activities/metrics.py` in activities), so they leave the worker on the SDK runtime's own scrape endpoint
beside Temporal's metrics (`observability.metrics_runtime`), which also takes the bucket boundaries below.

Invariant: every label is drawn from a bounded set (statuses, playbooks, tools, providers and models the
worker is configured with, roles, event kinds); never a workflow id, request id, argument or free text.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    name: str
    help: str
    buckets: tuple[float, ...] = ()  # histograms only: upper bounds (Prometheus `le`)


LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

# Workflow side (labels: namespace, task_queue, workflow_type from the SDK, plus those named).
GOALS_STARTED = Metric("foreman_goals_started", "Goals started (not counting continue-as-new); labels playbook, subagent.")
GOALS_FINISHED = Metric("foreman_goals_finished", "Goals finished; labels status (completed, failed, escalated, "
                        "budget_exceeded), playbook, subagent.")
GOAL_COST = Metric("foreman_goal_cost_usd", "Cost of a finished goal in USD (model calls, its subagents included); "
                   "labels status, playbook, subagent.", (0.0, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0))
APPROVAL_EVENTS = Metric("foreman_approval_events", "Approval desk events; labels event (requested, approved, denied, "
                         "expired, escalated, refused, policy_denied, executed), tool.")

# Activity side (labels: namespace, task_queue, activity_type from the SDK, plus those named).
MODEL_CALLS = Metric("foreman_model_call_seconds", "Latency of model calls that reached a provider; labels provider, "
                     "model, role, outcome (ok, error).", LATENCY_BUCKETS)
MODEL_TOKENS = Metric("foreman_model_tokens", "Tokens of model calls; labels provider, model, role, kind (prompt, completion).")
MODEL_DEFERRALS = Metric("foreman_model_deferrals", "Model call attempts the worker's limiter failed as ModelDeferred "
                         "rather than wait in an activity slot; labels provider, reason (rate, retry_after, concurrency).")
TOOL_CALLS = Metric("foreman_tool_call_seconds", "Latency of tool activity attempts; labels tool, side_effect, outcome "
                    "(ok, error: the tool reported a failure, failed: the attempt raised, cached).", LATENCY_BUCKETS)
TOOL_ERRORS = Metric("foreman_tool_errors", "Tool attempts that failed or reported a failure; labels tool, side_effect, error_type.")
CACHE_LOOKUPS = Metric("foreman_cache_lookups", "Call-cache lookups; labels cache (model, tool), result (hit, miss), "
                       "and tool for tool lookups.")
VERDICTS = Metric("foreman_verdicts", "Verifier verdicts; label decision (accept, refine, escalate).")
VERDICT_SCORES = Metric("foreman_verdict_score", "Verifier scores (0..1); label decision.",
                        (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0))

ALL = (GOALS_STARTED, GOALS_FINISHED, GOAL_COST, APPROVAL_EVENTS, MODEL_CALLS, MODEL_TOKENS, MODEL_DEFERRALS, TOOL_CALLS,
       TOOL_ERRORS, CACHE_LOOKUPS, VERDICTS, VERDICT_SCORES)


def bucket_overrides() -> dict[str, list[float]]:
    """Histogram boundaries for the SDK runtime's Prometheus exporter, by metric name."""
    return {m.name: list(m.buckets) for m in ALL if m.buckets}

