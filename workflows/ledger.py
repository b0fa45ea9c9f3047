"""Usage totals and budget checks for one goal, shared by all of its steps (workflow code).

A subagent's budget is carved out of what is left (used plus already carved) and held until the
child ends; then the child's real usage joins the goal's. So concurrent steps and children together
can never spend more than the goal's budget.
"""

from __future__ import annotations

import math
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, RetryState

with workflow.unsafe.imports_passed_through():
    from contracts.continuation import LedgerState
    from contracts.events import BudgetDimension, BudgetWarning
    from contracts.goal import Budget, UsageTotals
    from contracts.llm import TokenUsage
    from workflows.events import EventLog
    from workflows.failures import BudgetExceeded

WARN_AT = (0.8, 1.0)  # a `budget_warning` event when usage first reaches these shares of a limit


class GoalLedger:
    """Calls are reserved before they are awaited, so concurrent steps cannot overrun a limit together."""

    def __init__(self, budget: Budget, events: EventLog) -> None:
        self.budget = budget
        self.events = events  # budget warnings go here
        self._warned: set[tuple[BudgetDimension, float]] = set()
        self.started = workflow.now()  # the goal's clock starts with the workflow (replay gives the same time)
        self.usage = UsageTotals()
        self.carved = UsageTotals()  # held for running subagents; counted as spent until they settle
        self.exceeded: str | None = None

    def state(self) -> LedgerState:
        """For continue-as-new: no subagent is running then, so nothing is carved."""
        return LedgerState(usage=self.usage, started=self.started, exceeded=self.exceeded,
                           warned=sorted(f"{d.value}@{t}" for d, t in self._warned))

    def restore(self, state: LedgerState) -> None:
        self.usage, self.started, self.exceeded = state.usage, state.started, state.exceeded
        # What the earlier runs told of (a threshold crossed since, e.g. wall time, is still told here).
        self._warned = {(BudgetDimension(d), float(t)) for d, t in (w.split("@") for w in state.warned)}

    def _levels(self) -> list[tuple[BudgetDimension, float, float]]:
        """(dimension, used, limit) for every limit the goal has (a cost or time limit of 0 is none)."""
        used, budget = self.usage, self.budget
        levels = [
            (BudgetDimension.MODEL_CALLS, used.model_calls, budget.max_model_calls),
            (BudgetDimension.TOOL_CALLS, used.tool_calls, budget.max_tool_calls),
            (BudgetDimension.TOKENS, used.total_tokens, budget.max_total_tokens),
        ]
        if budget.max_cost_usd:
            levels.append((BudgetDimension.COST_USD, round(used.cost_usd, 6), budget.max_cost_usd))
        if budget.max_wall_seconds:  # the clock is read only when there is a limit to read it against
            levels.append((BudgetDimension.WALL_SECONDS, round((workflow.now() - self.started).total_seconds(), 3), budget.max_wall_seconds))
        return levels

    def _crossed(self) -> list[tuple[BudgetDimension, float, float, float]]:
        """(dimension, threshold, used, limit) for every share of a limit usage has reached."""
        return [(d, t, used, limit) for d, used, limit in self._levels() if limit > 0 for t in WARN_AT if used >= t * limit]

    def _warn(self) -> None:
        """Tell of every share of a limit usage has reached since the last look (once each)."""
        for dimension, threshold, used, limit in self._crossed():
            if (dimension, threshold) not in self._warned:
                self._warned.add((dimension, threshold))
                self.events.emit(BudgetWarning, dimension=dimension, threshold=threshold, used=used, limit=limit)

    def charge_model(self, usage: TokenUsage, cost_usd: float, calls: int = 1) -> None:
        """Count model usage (a planner's, an executor's, a judge's) and tell of the limits it nears."""
        self.usage.add_model(usage, cost_usd, calls=calls)
        self._warn()

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

    def check_clock(self) -> None:
        """BudgetExceeded if the goal's time is up (also after a call that timed out on the deadline: that is the reason)."""
        if self.exceeded:
            raise BudgetExceeded(self.exceeded)
        if self.budget.max_wall_seconds and (workflow.now() - self.started).total_seconds() >= self.budget.max_wall_seconds:
            self._stop(f"wall-clock budget of {self.budget.max_wall_seconds:g} s used up")

    def cut_off(self, err: ActivityError) -> None:
        """After a model or verifier call failed: BudgetExceeded when the goal's deadline is why. Either the time is up,
        or the server gave up retrying because the next attempt would land after the call's deadline-cut timeout (a
        429's long Retry-After), before the deadline itself."""
        self.check_clock()
        if self.budget.max_wall_seconds and err.retry_state == RetryState.TIMEOUT:
            self._stop(f"wall-clock budget of {self.budget.max_wall_seconds:g} s would be passed by the call's next attempt")

    def time_left(self) -> timedelta | None:
        """What is left of the goal's wall-clock budget (None: it has none): a call's timeouts never outlast it."""
        if not self.budget.max_wall_seconds:
            return None
        return self.started + timedelta(seconds=self.budget.max_wall_seconds) - workflow.now()

    def tokens_left(self) -> int:
        """Tokens the goal may still use (what its subagents hold counts as used)."""
        return max(0, self.budget.max_total_tokens - self._committed().total_tokens)

    def before_model_call(self) -> None:
        self.check_clock()
        committed = self._committed()
        if committed.model_calls >= self.budget.max_model_calls:
            self._stop(f"model call budget of {self.budget.max_model_calls} used up")
        if committed.total_tokens >= self.budget.max_total_tokens:
            self._stop(f"token budget of {self.budget.max_total_tokens} used up")
        if committed.cost_usd >= self.budget.max_cost_usd > 0:
            self._stop(f"cost budget of ${self.budget.max_cost_usd:.4f} used up")
        self.usage.model_calls += 1
        self._warn()

    def before_tool_call(self) -> None:
        self.check_clock()
        if self._committed().tool_calls >= self.budget.max_tool_calls:
            self._stop(f"tool call budget of {self.budget.max_tool_calls} used up")
        self.usage.tool_calls += 1
        self._warn()

    def carve(self, share: float) -> Budget:
        """A child's budget: `share` of what is left in every dimension (at least one call of each), held
        until `settle`. BudgetExceeded when nothing is left to give."""
        self.check_clock()
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
        self._warn()


def whole_carve(carved: Budget) -> UsageTotals:
    """A child whose usage is unknown (it failed without a result) is charged everything it was given."""
    return UsageTotals(
        model_calls=carved.max_model_calls, tool_calls=carved.max_tool_calls,
        prompt_tokens=carved.max_total_tokens, cost_usd=carved.max_cost_usd,
    )
