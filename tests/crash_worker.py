"""A worker process for the crash test: the real worker wiring (`build_worker`) with a slow scripted
model, so the test can SIGKILL it while a model call is in flight.

    python -m tests.crash_worker ADDRESS TASK_QUEUE
"""

from __future__ import annotations

import asyncio
import sys

from temporalio import activity

from contracts.llm import ModelRequest, ModelResponse, Provider, TokenUsage
from temporal_client import connect
from tests.fakes import answer, step_role
from tests.helpers import fake_activities
from worker import build_worker

MODEL_SECONDS = 1.5


@activity.defn(name="call_model")
async def slow_call_model(request: ModelRequest) -> ModelResponse:
    for _ in range(int(MODEL_SECONDS / 0.25)):
        activity.heartbeat()
        await asyncio.sleep(0.25)
    text = "- Durable execution resumes after a crash [source: durable-execution.md]"
    if step_role(request) != "researcher":
        text = "Durable execution records each step, so a crashed agent resumes where it stopped."
    return ModelResponse(message=answer(text), provider=Provider.OPENAI, model="slow-scripted", usage=TokenUsage(prompt_tokens=10, completion_tokens=10))


async def main(address: str, task_queue: str) -> None:
    client = await connect(address)
    async with build_worker(client, task_queue, activities=fake_activities(slow_call_model)):
        print("ready", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
