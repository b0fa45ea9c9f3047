"""Foreman's custom search attributes and memo: what `GoalWorkflow` shows the server's visibility store (the CLI's
`temporal workflow list --query`, the Web UI's filter). Definitions only, no I/O.

A namespace must have them registered (dev server: `--search-attribute NAME=TYPE`; a cluster:
`temporal operator search-attribute create`); an upsert of an unregistered one would fail the workflow task, so the
workflow upserts only the ones its plan says the namespace has (`Plan.search_attributes`, from the planning worker).
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

FOREMAN_STATUS = SearchAttributeKey.for_keyword("ForemanStatus")
# ForemanStatus while a goal runs (a finished goal's is its GoalStatus value).
PLANNING, EXECUTING, AWAITING_APPROVAL, ESCALATED = "planning", "executing", "awaiting_approval", "escalated"
LIVE_STATUSES = (PLANNING, EXECUTING, AWAITING_APPROVAL, ESCALATED)
FOREMAN_PLAYBOOK = SearchAttributeKey.for_keyword("ForemanPlaybook")
FOREMAN_PENDING_APPROVALS = SearchAttributeKey.for_int("ForemanPendingApprovals")
FOREMAN_MODEL_CALLS = SearchAttributeKey.for_int("ForemanModelCalls")
FOREMAN_COST_USD = SearchAttributeKey.for_float("ForemanCostUsd")
FOREMAN_GOAL = SearchAttributeKey.for_text("ForemanGoal")

SEARCH_ATTRIBUTES: list[SearchAttributeKey] = [
    FOREMAN_STATUS, FOREMAN_PLAYBOOK, FOREMAN_PENDING_APPROVALS, FOREMAN_MODEL_CALLS, FOREMAN_COST_USD, FOREMAN_GOAL,
]
# The type names the CLI and the server use (`--search-attribute NAME=TYPE`, `search-attribute create --type TYPE`).
TYPE_NAMES = {FOREMAN_STATUS.name: "Keyword", FOREMAN_PLAYBOOK.name: "Keyword", FOREMAN_PENDING_APPROVALS.name: "Int",
              FOREMAN_MODEL_CALLS.name: "Int", FOREMAN_COST_USD.name: "Double", FOREMAN_GOAL.name: "Text"}

MEMO_SUMMARY = "summary"  # the memo field with the goal's one-line summary
MAX_GOAL_CHARS = 1_000  # ForemanGoal is a Text attribute: the goal's opening, enough to search by its words
MAX_SUMMARY_CHARS = 200


def dev_server_flags() -> list[str]:
    """`temporal server start-dev` flags that register every Foreman search attribute (idempotent on each start)."""
    return [arg for key in SEARCH_ATTRIBUTES for arg in ("--search-attribute", f"{key.name}={TYPE_NAMES[key.name]}")]


def one_line(text: str, limit: int) -> str:
    """`text` on one line (whitespace collapsed), cut to `limit` characters with an ellipsis."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def summary(goal: str, playbook: str | None, steps: int) -> str:
    """The memo's one-line summary of a goal: what it is, how it is planned, how big."""
    how = f"playbook {playbook}" if playbook else "LLM plan"
    tail = f" ({how}, {steps} step{'s' if steps != 1 else ''})"
    return one_line(goal, MAX_SUMMARY_CHARS - len(tail)) + tail


def at_start(goal: str, playbook: str | None, registered: list[str]) -> TypedSearchAttributes:
    """What a starter sets when it starts a goal (no history event of its own): ForemanStatus=planning, the goal and
    its playbook, those of them `registered` in the namespace; the workflow then upserts only what changes."""
    values: list[SearchAttributePair] = [SearchAttributePair(FOREMAN_STATUS, "planning"),
                                         SearchAttributePair(FOREMAN_GOAL, one_line(goal, MAX_GOAL_CHARS))]
    if playbook:
        values.append(SearchAttributePair(FOREMAN_PLAYBOOK, playbook))
    return TypedSearchAttributes([pair for pair in values if pair.key.name in registered])
