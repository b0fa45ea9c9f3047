"""Where a goal's routed activities run (workflow code): the task queues its plan names, which the planning worker
stamped from its configuration (sandboxed code: FOREMAN_SANDBOX_TASK_QUEUE; model calls: FOREMAN_MODEL_TASK_QUEUE); so
routing comes from history, never from the workflow reading env."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Route:
    """Set once the plan is known (or restored after continue-as-new); None: the goal's own task queue."""

    task_queue: str | None = None

    def options(self) -> dict[str, str]:
        """Extra `execute_activity` options for an activity sent this way."""
        return {"task_queue": self.task_queue} if self.task_queue else {}


SandboxRoute = Route  # activities that run code (tool gate, `tests` checks)
