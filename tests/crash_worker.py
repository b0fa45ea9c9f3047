"""A worker process for the crash tests: the real worker wiring (`build_worker`) with a slow scripted
model, so a test can SIGKILL it while a model call is in flight; with `--hold-after-record MARKER`, every
side-effecting tool call stops right after its effect is done and recorded in the idempotency ledger
(its key appended to MARKER) and never reports back, so a test can SIGKILL it there; with `--slow-verify`, every
`verify_output` heartbeats for VERIFY_SECONDS before it checks, so a kill can land during verification too; with
`--slow-archive`, every `archive_content` waits ARCHIVE_SECONDS before it stores, so a kill can land while a goal
archives its finished steps at a continue-as-new boundary.

    python -m tests.crash_worker ADDRESS TASK_QUEUE [--hold-after-record MARKER] [--slow-verify] [--slow-archive]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import threading
from pathlib import Path

from temporalio import activity

from activities.verifier import verify_output
from contracts.archive import ARCHIVE_CONTENT_ACTIVITY, ContentRef, ContentText
from contracts.llm import ModelRequest, ModelResponse, Provider, TokenUsage
from contracts.verify import VERIFY_OUTPUT_ACTIVITY, Verdict, VerifyRequest
from stores import IdempotencyLedger, from_settings
from temporal_client import connect
from tests.fakes import answer, step_role
from worker import all_activities, build_worker

MODEL_SECONDS = 1.5
VERIFY_SECONDS = 1.5
ARCHIVE_SECONDS = 1.5


@activity.defn(name="call_model")
async def slow_call_model(request: ModelRequest) -> ModelResponse:
    for _ in range(int(MODEL_SECONDS / 0.25)):
        activity.heartbeat()
        await asyncio.sleep(0.25)
    text = "- Durable execution resumes after a crash [source: durable-execution.md]"
    if step_role(request) != "researcher":
        text = "Durable execution records each step, so a crashed agent resumes where it stopped."
    return ModelResponse(message=answer(text), provider=Provider.OPENAI, model="slow-scripted", usage=TokenUsage(prompt_tokens=10, completion_tokens=10))


@activity.defn(name=VERIFY_OUTPUT_ACTIVITY)
async def slow_verify_output(request: VerifyRequest) -> Verdict:
    for _ in range(int(VERIFY_SECONDS / 0.25)):
        activity.heartbeat()
        await asyncio.sleep(0.25)
    return await verify_output(request)


def activity_name(fn) -> str:
    return getattr(fn, "__temporal_activity_definition").name


def slow_archive(archive):
    """`archive` (the worker's real `archive_content`), after ARCHIVE_SECONDS."""

    @activity.defn(name=ARCHIVE_CONTENT_ACTIVITY)
    async def archive_content(content: ContentText) -> ContentRef:
        await asyncio.sleep(ARCHIVE_SECONDS)
        return await archive(content)

    return archive_content


class HoldingLedger:
    """The worker's real ledger; after each record is written, the key goes to `marker` and the call hangs (it runs
    in a thread of the activity, which then never completes) until the process is killed."""

    def __init__(self, ledger: IdempotencyLedger, marker: Path) -> None:
        self._ledger = ledger
        self._marker = marker
        self._lock = threading.Lock()

    def get(self, key: str) -> str | None:
        return self._ledger.get(key)

    def put(self, key: str, result: str) -> str:
        self._ledger.put(key, result)
        with self._lock, self._marker.open("a", encoding="utf-8") as marker:
            marker.write(key + "\n")
        threading.Event().wait()  # the effect is done and recorded; the activity never reports it
        raise AssertionError("unreachable")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("address")
    parser.add_argument("task_queue")
    parser.add_argument("--hold-after-record", type=Path, default=None, metavar="MARKER")
    parser.add_argument("--slow-verify", action="store_true")
    parser.add_argument("--slow-archive", action="store_true")
    args = parser.parse_args()
    stores = from_settings()
    if args.hold_after_record is not None and stores.ledger is not None:
        stores = dataclasses.replace(stores, ledger=HoldingLedger(stores.ledger, args.hold_after_record))
    client = await connect(args.address)
    activities = all_activities(slow_call_model, stores)
    if args.slow_verify:
        activities = [slow_verify_output if a is verify_output else a for a in activities]
    if args.slow_archive:
        activities = [slow_archive(a) if activity_name(a) == ARCHIVE_CONTENT_ACTIVITY else a for a in activities]
    async with build_worker(client, args.task_queue, activities=activities):
        print("ready", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
