"""The bare Temporal baseline: a workflow of N sequential no-op activities and nothing else (no pydantic
contracts, no policy, no bookkeeping), run on the same server, client and worker options as Foreman's goals.

`bare_worker` copies `worker.build_worker`'s options, so the two differ only in the workflow they run.
With `park`, the workflow then waits for a `release` signal: a parked workflow for the memory section.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker

NOOP_ACTIVITY = "bench_noop"


@dataclass
class BareRequest:
    steps: int
    park: bool = False


@activity.defn(name=NOOP_ACTIVITY)
async def noop(step: int) -> int:
    return step


@workflow.defn(name="BareStepsWorkflow")
class BareStepsWorkflow:
    """`steps` no-op activities, one after another; then, when parked, a wait for `release`."""

    def __init__(self) -> None:
        self._released = False
        self._parked = False

    @workflow.run
    async def run(self, request: BareRequest) -> int:
        for step in range(request.steps):
            await workflow.execute_activity(NOOP_ACTIVITY, step, start_to_close_timeout=timedelta(seconds=30))
        if request.park:
            self._parked = True
            await workflow.wait_condition(lambda: self._released)
        return request.steps

    @workflow.signal
    def release(self) -> None:
        self._released = True

    @workflow.query
    def parked(self) -> bool:
        return self._parked


def like_foreman(client: Client, task_queue: str, activities: list, **overrides) -> Worker:
    """A worker with `worker.build_worker`'s options (read from a template worker that is never run, on a
    queue of its own: a worker claims its queue when it is created), on `task_queue`, with `overrides`."""
    from worker import build_worker  # the project's worker wiring, imported where it is used (not in the sandbox)

    template = build_worker(client, f"{task_queue}-template", activities=activities).config()
    return Worker(**{**template, "task_queue": task_queue, **overrides})


def bare_worker(client: Client, task_queue: str) -> Worker:
    """The bare workflow and its no-op activity, with `worker.build_worker`'s options; its module is passed through
    the sandbox as Foreman's `workflows` package is (not re-imported for every run)."""
    from workflows.runner import workflow_runner  # noqa: PLC0415 - as build_worker, imported where it is used

    return like_foreman(client, task_queue, [noop], workflows=[BareStepsWorkflow], workflow_runner=workflow_runner(__name__))
