"""Where a goal's sandboxed activities run (workflow code): the task queue its plan names, which the planning
worker stamped from its configuration; so routing comes from history, never from the workflow reading env."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SandboxRoute:
    """Set once the plan is known (or restored after continue-as-new); None: the goal's own task queue."""

    task_queue: str | None = None

    def options(self) -> dict[str, str]:
        """Extra `execute_activity` options for an activity that runs code."""
        return {"task_queue": self.task_queue} if self.task_queue else {}
