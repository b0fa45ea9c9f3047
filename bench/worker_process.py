"""A worker process for the benchmarks that need more than one process, or one to kill: Foreman's worker
(`worker.build_worker`, every real activity but `call_model`, which is scripted) on one task queue and the
bare baseline (`bench.bare`) on another, in one process. Prints "ready" once both poll.

    python -m bench.worker_process ADDRESS FOREMAN_QUEUE BARE_QUEUE [--model instant|slow]

`instant` answers at once (`bench.workloads.instant_model`); `slow` answers the same after SLOW_MODEL_SECONDS,
heartbeating, so a goal can be caught with a model call in flight. The client has the pydantic converter and
no tracing interceptor, like the in-process workers of sections 1 and 8.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from temporalio import activity  # noqa: E402
from temporalio.client import Client  # noqa: E402
from temporalio.contrib.pydantic import pydantic_data_converter  # noqa: E402

from bench.bare import bare_worker  # noqa: E402
from bench.workloads import instant_model  # noqa: E402
from contracts.llm import ModelRequest, ModelResponse  # noqa: E402
from worker import all_activities, build_worker, settle_heap  # noqa: E402

SLOW_MODEL_SECONDS = 1.0
HEARTBEAT_EVERY_S = 0.2


def slow_model(seconds: float = SLOW_MODEL_SECONDS):
    """`instant_model`'s answers after `seconds`, heartbeating meanwhile (as a streaming provider call would)."""
    instant = instant_model().activity()

    @activity.defn(name="call_model")
    async def call_model(request: ModelRequest) -> ModelResponse:
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            activity.heartbeat()
            await asyncio.sleep(HEARTBEAT_EVERY_S)
        return await instant(request)

    return call_model


async def main() -> None:
    parser = argparse.ArgumentParser(description="A benchmark worker process (Foreman and bare Temporal).")
    parser.add_argument("address")
    parser.add_argument("foreman_queue")
    parser.add_argument("bare_queue")
    parser.add_argument("--model", choices=["instant", "slow"], default="instant")
    args = parser.parse_args()
    client = await Client.connect(args.address, data_converter=pydantic_data_converter)
    model = instant_model().activity() if args.model == "instant" else slow_model()
    settle_heap()  # as worker.py does before it polls
    async with build_worker(client, args.foreman_queue, activities=all_activities(model)), bare_worker(client, args.bare_queue):
        print("ready", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
