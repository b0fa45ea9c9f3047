"""How the worker's sandbox runs Foreman's workflows: the default restrictions, with the `workflows` package passed
through like every module it imports.

The sandbox re-imports a workflow's own module for every workflow run, so a goal paid for compiling and executing
workflows/goal.py (its class, its handlers' type hints) at its first task: about 4.5 ms per goal start (bench section
8; a parked goal's memory moved less, 0.28 to 0.25 MB, section 12). The rest of `workflows`, `contracts` and `core`
already came in through `workflow.unsafe.imports_passed_through()`.

A passed-through module is loaded once, outside the sandbox, so the sandbox's proxies for restricted modules (the
wall clock, the random module) do not reach its code; restricted builtins (file access) still fail. What the proxies
no longer catch, tests/test_determinism.py refuses statically for every project module the workflow loads.
"""

from __future__ import annotations

from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

PASSED_THROUGH = ("workflows",)


def workflow_runner(*also: str) -> SandboxedWorkflowRunner:
    """The runner for workers and replayers of `GoalWorkflow` (the same for both, so a replay runs what a worker ran);
    `also`: more packages passed through alike (the bench's bare workflow, so both sides are loaded the same way)."""
    return SandboxedWorkflowRunner(restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSED_THROUGH, *also))
