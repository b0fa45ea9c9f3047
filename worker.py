"""Run a Foreman worker: `GoalWorkflow` plus every activity (planner, model calls, verifier, tools); or, with
`--sandbox`, a sandbox-only worker that runs model-written code (`run_python`, the `tests` check) and nothing else.

    python worker.py [--address HOST:PORT] [--namespace NS] [--task-queue Q] [--max-activities N]
    python worker.py --sandbox [--task-queue Q]     # Q defaults to FOREMAN_SANDBOX_TASK_QUEUE
    python worker.py --models [--task-queue Q] [--max-activities N]   # Q defaults to FOREMAN_MODEL_TASK_QUEUE
    python worker.py --metrics-address 0.0.0.0:9464  # Prometheus at /metrics (default FOREMAN_METRICS_ADDRESS; off)

With FOREMAN_SANDBOX_TASK_QUEUE set, the main worker registers no code-running activity: goals send those to the
sandbox workers (their plans name the queue), which can run on separate, locked-down machines. With
FOREMAN_MODEL_TASK_QUEUE set, likewise for `call_model`: model workers poll that queue under the server-enforced
FOREMAN_MODEL_QUEUE_ACTIVITIES_PER_SECOND (README "Rate limits and backpressure").
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
from collections.abc import Callable
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker

import settings
from activities.content_store import ContentActivities
from activities.check_tests import CheckTests
from activities.mcp import McpServers, McpTools
from activities.model_call import ModelCalls
from activities.planner import Planner
from activities.sandbox import Sandbox
from activities.search_attributes import registered
from activities.tools import tool_activities
from activities.tools.idempotency import Idempotency
from activities.verifier import verify_output
from observability import ObservabilityConfigError, configure_tracing, metrics_runtime
from stores import Stores, from_settings
from temporal_client import connect
from workflows.goal import GoalWorkflow
from workflows.runner import workflow_runner


def all_activities(
    call_model: Callable | None = None, stores: Stores | None = None, mcp: McpServers | None = None, *, with_sandbox: bool | None = None,
) -> list:
    """Every activity: planner, `call_model` (or a stand-in under the same activity name), verifier, every
    tool bound to `stores` (default: the stores the settings name, built now), and `call_mcp_tool` with the
    planner bound to `mcp` (default: the servers FOREMAN_MCP_CONFIG names; sessions open on first use). The
    code-running ones only `with_sandbox` (default: unless FOREMAN_SANDBOX_TASK_QUEUE sends them to sandbox workers), and
    no `call_model` of its own when FOREMAN_MODEL_TASK_QUEUE sends model calls to model workers."""
    stores = stores or from_settings()
    mcp = mcp or McpServers.from_settings()
    if with_sandbox is None:
        with_sandbox = settings.sandbox_task_queue() is None
    if call_model is None and settings.model_task_queue() is None:
        call_model = ModelCalls(stores.cache).call_model
    return [
        Planner(mcp).plan_goal, *([call_model] if call_model else []), verify_output,
        *_content_activities(stores), *tool_activities(stores, sandboxed=None if with_sandbox else False),
        McpTools(mcp, stores.content, Idempotency(stores.ledger)).call_mcp_tool,
        *([CheckTests(Sandbox.from_settings(stores.workspace)).run_check_tests] if with_sandbox else []),
    ]


def sandbox_activities(stores: Stores | None = None) -> list:
    """What a sandbox worker runs: the tools that run code, and the `tests` check's runs."""
    stores = stores or from_settings()
    return [*tool_activities(stores, sandboxed=True), CheckTests(Sandbox.from_settings(stores.workspace)).run_check_tests]


def _content_activities(stores: Stores) -> list:
    contents = ContentActivities(stores.content)
    return [contents.archive_content, contents.load_content, contents.extract_output]


def build_worker(
    client: Client,
    task_queue: str | None = None,
    *,
    max_concurrent_activities: int = 8,
    max_concurrent_workflow_tasks: int = 16,
    activities: list | None = None,
    stores: Stores | None = None,
    mcp: McpServers | None = None,
) -> Worker:
    """The worker the CLI runs; tests build theirs here too (optionally with fake activities).
    Without `activities`, every real activity is registered, its tools bound to `stores` and `mcp`."""
    return Worker(
        client,
        task_queue=task_queue or settings.task_queue(),
        workflows=[GoalWorkflow],
        activities=activities if activities is not None else all_activities(stores=stores, mcp=mcp),
        max_concurrent_activities=max_concurrent_activities,
        max_concurrent_workflow_tasks=max_concurrent_workflow_tasks,
        workflow_runner=workflow_runner(),
        # A dead worker's cached workflows move to a live worker after this (SDK default 10 s).
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=3),
    )


def build_sandbox_worker(client: Client, task_queue: str, *, max_concurrent_activities: int = 2, stores: Stores | None = None) -> Worker:
    """A worker that only runs sandboxed code: no workflow, no model, no other tool."""
    return Worker(client, task_queue=task_queue, activities=sandbox_activities(stores), max_concurrent_activities=max_concurrent_activities)


def build_model_worker(
    client: Client, task_queue: str, *, max_concurrent_activities: int = 4, activities_per_second: float | None = None,
    stores: Stores | None = None, activities: list | None = None,
) -> Worker:
    """A worker that only makes model calls (`call_model`, or a stand-in under that name), on the model queue: at most
    `max_concurrent_activities` here, and `activities_per_second` started across every worker of the queue (enforced
    by the server; default: FOREMAN_MODEL_QUEUE_ACTIVITIES_PER_SECOND)."""
    rate = activities_per_second if activities_per_second is not None else settings.model_queue_activities_per_second()
    return Worker(
        client, task_queue=task_queue, activities=activities or [ModelCalls((stores or from_settings()).cache).call_model],
        max_concurrent_activities=max_concurrent_activities, max_task_queue_activities_per_second=rate,
    )


def settle_heap() -> None:
    """Collect what start-up left behind, then freeze the rest out of the collector's sight. Imported modules, schemas
    and clients live as long as the process; a full collection walked them all (about 150,000 objects) and paused
    every activation for about 60 ms, once in every ten or so 20-step goals (bench section 8)."""
    gc.collect()
    gc.freeze()


async def main() -> None:
    parser = argparse.ArgumentParser(description="Run a Foreman worker.")
    parser.add_argument("--address", default=settings.temporal_address())
    parser.add_argument("--namespace", default=settings.temporal_namespace())
    parser.add_argument("--task-queue", default=settings.task_queue())
    parser.add_argument("--max-activities", type=int, default=8, help="concurrent activities (model calls, tools)")
    parser.add_argument("--max-workflow-tasks", type=int, default=16)
    parser.add_argument("--sandbox", action="store_true", help="run only sandboxed code (queue: FOREMAN_SANDBOX_TASK_QUEUE)")
    parser.add_argument("--models", action="store_true", help="run only model calls (queue: FOREMAN_MODEL_TASK_QUEUE)")
    parser.add_argument("--metrics-address", default=settings.metrics_address(),
                        help="serve Prometheus metrics at IP:PORT/metrics, e.g. 0.0.0.0:9464 (default FOREMAN_METRICS_ADDRESS; off)")
    args = parser.parse_args()
    if args.sandbox and args.models:
        parser.error("--sandbox and --models are separate workers")
    for flag, queue, variable in ((args.sandbox, settings.sandbox_task_queue, "FOREMAN_SANDBOX_TASK_QUEUE"),
                                  (args.models, settings.model_task_queue, "FOREMAN_MODEL_TASK_QUEUE")):
        # That queue unless --task-queue names another: such a worker never polls the goals' queue by default.
        if flag:
            args.task_queue = queue() if args.task_queue == settings.task_queue() else args.task_queue
            if not args.task_queue:
                parser.error(f"{'--sandbox' if args.sandbox else '--models'} needs {variable} (or --task-queue)")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        configure_tracing("foreman-worker")
        runtime = metrics_runtime(args.metrics_address) if args.metrics_address else None
    except ObservabilityConfigError as err:
        parser.error(str(err))
    stores = from_settings()  # built once, before connecting: a misconfigured store stops the worker at once
    mcp = McpServers.from_settings()  # the same for a malformed FOREMAN_MCP_CONFIG; servers start on first use
    client = await connect(args.address, args.namespace, runtime=runtime)
    if args.sandbox:
        Sandbox.from_settings(stores.workspace).check()  # a sandbox worker without bwrap stops at once, never runs code bare
        worker = build_sandbox_worker(client, args.task_queue, max_concurrent_activities=args.max_activities, stores=stores)
    elif args.models:
        worker = build_model_worker(client, args.task_queue, max_concurrent_activities=args.max_activities, stores=stores)
    else:
        await registered(client, args.namespace)  # asked now: a namespace without them is warned about at start, once
        worker = build_worker(
            client,
            args.task_queue,
            max_concurrent_activities=args.max_activities,
            max_concurrent_workflow_tasks=args.max_workflow_tasks,
            stores=stores,  # every tool activity of this worker shares them
            mcp=mcp,
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    logging.getLogger("foreman").info("worker polling %s on %s (%s)", args.task_queue, args.address, args.namespace)
    if args.metrics_address:
        logging.getLogger("foreman").info("Prometheus metrics on http://%s/metrics", args.metrics_address)
    settle_heap()
    try:
        async with worker:
            await stop.wait()
    finally:
        await mcp.close()  # stdio servers the worker started end with it


if __name__ == "__main__":
    asyncio.run(main())
