"""Usage totals and budget checks for one goal, shared by all of its steps (workflow code).

A subagent's budget is carved out of what is left (used plus already carved) and held until the
child ends; then the child's real usage joins the goal's. So concurrent steps and children together
can never spend more than the goal's budget.
"""

from __future__ import annotations

import math

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.continuation import LedgerState
    from contracts.goal import Budget, UsageTotals
    from workflows.failures import BudgetExceeded


class GoalLedger:
    """Calls are reserved before they are awaited, so concurrent steps cannot overrun a limit together."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.started = workflow.now()  # the goal's clock starts with the workflow (replay gives the same time)
        self.usage = UsageTotals()
        self.carved = UsageTotals()  # held for running subagents; counted as spent until they settle
        self.exceeded: str | None = None

    def state(self) -> LedgerState:
        """For continue-as-new: no subagent is running then, so nothing is carved."""
        return LedgerState(usage=self.usage, started=self.started, exceeded=self.exceeded)

    def restore(self, state: LedgerState) -> None:
        self.usage, self.started, self.exceeded = state.usage, state.started, state.exceeded

    def _stop(self, reason: str) -> None:
        self.exceeded = reason
        raise BudgetExceeded(reason)

    def _committed(self) -> UsageTotals:
        used, held = self.usage, self.carved
        return UsageTotals(
            model_calls=used.model_calls + held.model_calls,
            tool_calls=used.tool_calls + held.tool_calls,
            prompt_tokens=used.prompt_tokens + held.prompt_tokens,
            completion_tokens=used.completion_tokens + held.completion_tokens,
            cost_usd=used.cost_usd + held.cost_usd,
        )

    def _check_clock(self) -> None:
        if self.exceeded:
            raise BudgetExceeded(self.exceeded)
        if self.budget.max_wall_seconds and (workflow.now() - self.started).total_seconds() >= self.budget.max_wall_seconds:
            self._stop(f"wall-clock budget of {self.budget.max_wall_seconds:g} s used up")

    def tokens_left(self) -> int:
        """Tokens the goal may still use (what its subagents hold counts as used)."""
        return max(0, self.budget.max_total_tokens - self._committed().total_tokens)

    def before_model_call(self) -> None:
        self._check_clock()
        committed = self._committed()
        if committed.model_calls >= self.budget.max_model_calls:
            self._stop(f"model call budget of {self.budget.max_model_calls} used up")
        if committed.total_tokens >= self.budget.max_total_tokens:
            self._stop(f"token budget of {self.budget.max_total_tokens} used up")
        if committed.cost_usd >= self.budget.max_cost_usd > 0:
            self._stop(f"cost budget of ${self.budget.max_cost_usd:.4f} used up")
        self.usage.model_calls += 1

    def before_tool_call(self) -> None:
        self._check_clock()
        if self._committed().tool_calls >= self.budget.max_tool_calls:
            self._stop(f"tool call budget of {self.budget.max_tool_calls} used up")
        self.usage.tool_calls += 1

    def carve(self, share: float) -> Budget:
        """A child's budget: `share` of what is left in every dimension (at least one call of each), held
        until `settle`. BudgetExceeded when nothing is left to give."""
        self._check_clock()
        committed, budget = self._committed(), self.budget
        left_calls = budget.max_model_calls - committed.model_calls
        left_tools = budget.max_tool_calls - committed.tool_calls
        left_tokens = budget.max_total_tokens - committed.total_tokens
        if left_calls < 1 or left_tools < 1 or left_tokens < 1 or committed.cost_usd >= budget.max_cost_usd > 0:
            self._stop("no budget left for a subagent")
        child = Budget(
            max_model_calls=max(1, math.floor(left_calls * share)),
            max_tool_calls=max(1, math.floor(left_tools * share)),
            max_total_tokens=max(1, math.floor(left_tokens * share)),
            max_cost_usd=0.0 if budget.max_cost_usd == 0 else (budget.max_cost_usd - committed.cost_usd) * share,  # 0: uncapped
            # A child may use the parent's remaining time, not a share of it: it runs while the parent waits.
            max_wall_seconds=0.0 if not budget.max_wall_seconds
            else max(0.001, budget.max_wall_seconds - (workflow.now() - self.started).total_seconds()),
        )
        self.carved.model_calls += child.max_model_calls
        self.carved.tool_calls += child.max_tool_calls
        self.carved.prompt_tokens += child.max_total_tokens
        self.carved.cost_usd += child.max_cost_usd
        return child

    def settle(self, carved: Budget, spent: UsageTotals) -> None:
        """Release a child's hold and count what it really spent (its whole carve, if unknown)."""
        self.carved.model_calls -= carved.max_model_calls
        self.carved.tool_calls -= carved.max_tool_calls
        self.carved.prompt_tokens -= carved.max_total_tokens
        self.carved.cost_usd -= carved.max_cost_usd
        self.usage.model_calls += spent.model_calls
        self.usage.tool_calls += spent.tool_calls
        self.usage.prompt_tokens += spent.prompt_tokens
        self.usage.completion_tokens += spent.completion_tokens
        self.usage.cost_usd += spent.cost_usd
        self.usage.cache_hits.model += spent.cache_hits.model
        self.usage.cache_hits.tool += spent.cache_hits.tool


def whole_carve(carved: Budget) -> UsageTotals:
    """A child whose usage is unknown (it failed without a result) is charged everything it was given."""
    return UsageTotals(
        model_calls=carved.max_model_calls, tool_calls=carved.max_tool_calls,
        prompt_tokens=carved.max_total_tokens, cost_usd=carved.max_cost_usd,
    )
