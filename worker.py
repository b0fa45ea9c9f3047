"""Run a Foreman worker: `GoalWorkflow` plus every activity (planner, model calls, verifier, tools).

    python worker.py [--address HOST:PORT] [--namespace NS] [--task-queue Q] [--max-activities N]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from collections.abc import Callable
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker

import settings
from activities.content_store import ContentActivities
from activities.mcp import McpServers, McpTools
from activities.model_call import ModelCalls
from activities.planner import Planner
from activities.tools import tool_activities
from activities.verifier import verify_output
from observability import configure_tracing
from stores import Stores, from_settings
from temporal_client import connect
from workflows.goal import GoalWorkflow


def all_activities(call_model: Callable | None = None, stores: Stores | None = None, mcp: McpServers | None = None) -> list:
    """Every activity: planner, `call_model` (or a stand-in under the same activity name), verifier, every
    tool bound to `stores` (default: the stores the settings name, built now), and `call_mcp_tool` with the
    planner bound to `mcp` (default: the servers FOREMAN_MCP_CONFIG names; sessions open on first use)."""
    stores = stores or from_settings()
    mcp = mcp or McpServers.from_settings()
    return [
        Planner(mcp).plan_goal, call_model or ModelCalls(stores.cache).call_model, verify_output,
        *_content_activities(stores), *tool_activities(stores), McpTools(mcp, stores.content).call_mcp_tool,
    ]


def _content_activities(stores: Stores) -> list:
    contents = ContentActivities(stores.content)
    return [contents.archive_content, contents.load_content]


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
        # A dead worker's cached workflows move to a live worker after this (SDK default 10 s).
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=3),
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description="Run a Foreman worker.")
    parser.add_argument("--address", default=settings.temporal_address())
    parser.add_argument("--namespace", default=settings.temporal_namespace())
    parser.add_argument("--task-queue", default=settings.task_queue())
    parser.add_argument("--max-activities", type=int, default=8, help="concurrent activities (model calls, tools)")
    parser.add_argument("--max-workflow-tasks", type=int, default=16)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    configure_tracing("foreman-worker")
    stores = from_settings()  # built once, before connecting: a misconfigured store stops the worker at once
    mcp = McpServers.from_settings()  # the same for a malformed FOREMAN_MCP_CONFIG; servers start on first use
    client = await connect(args.address, args.namespace)
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
    try:
        async with worker:
            await stop.wait()
    finally:
        await mcp.close()  # stdio servers the worker started end with it


if __name__ == "__main__":
    asyncio.run(main())
