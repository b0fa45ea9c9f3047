"""Usage totals and budget checks for one goal, shared by all of its steps (workflow code)."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.goal import Budget, UsageTotals
    from workflows.failures import BudgetExceeded


class GoalLedger:
    """Calls are reserved before they are awaited, so concurrent steps cannot overrun a limit together."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.usage = UsageTotals()
        self.exceeded: str | None = None

    def _stop(self, reason: str) -> None:
        self.exceeded = reason
        raise BudgetExceeded(reason)

    def before_model_call(self) -> None:
        if self.exceeded:
            raise BudgetExceeded(self.exceeded)
        if self.usage.model_calls >= self.budget.max_model_calls:
            self._stop(f"model call budget of {self.budget.max_model_calls} used up")
        if self.usage.total_tokens >= self.budget.max_total_tokens:
            self._stop(f"token budget of {self.budget.max_total_tokens} used up")
        if self.usage.cost_usd >= self.budget.max_cost_usd > 0:
            self._stop(f"cost budget of ${self.budget.max_cost_usd:.4f} used up")
        self.usage.model_calls += 1

    def before_tool_call(self) -> None:
        if self.exceeded:
            raise BudgetExceeded(self.exceeded)
        if self.usage.tool_calls >= self.budget.max_tool_calls:
            self._stop(f"tool call budget of {self.budget.max_tool_calls} used up")
        self.usage.tool_calls += 1
