"""`starter.py events ID [--json] [--follow]`: a goal's typed events (the `events` query), one per line.

Without `--follow`: every event the goal's runs still hold, oldest first (earlier runs of a goal that continued as
new are queried by run id: a closed run answers queries while a worker runs). With `--follow`: then polls the
current run for new events until it closes, follows a continue-as-new into the next run, and ends with the goal:
exit 0 when it completed; 1, with the reason on stderr, when it ended otherwise (failed, escalated, budget
exceeded, cancelled, terminated, timed out).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from datetime import timedelta

from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
)
from temporalio.service import RPCError, RPCStatusCode

from contracts.events import EVENTS_QUERY, MAX_PAGE, Event, EventsPage, EventsQuery, GoalFinished
from contracts.goal import GoalStatus

POLL_SECONDS = 0.5
QUERY_RPC_TIMEOUT = timedelta(seconds=10)
QUERY_PATIENCE_SECONDS = 15.0  # a run whose first workflow task has not completed yet cannot answer a query


class EventsError(Exception):
    """Why the events cannot be shown (one line)."""


def line(event: Event, as_json: bool = False) -> str:
    """One event as a JSON line, or as `time  #seq  kind  [step]  facts`."""
    if as_json:
        return event.model_dump_json()
    step = f"[{event.step_id}]" if event.step_id else "-"
    return f"{event.at:%H:%M:%S}.{event.at.microsecond // 1000:03d}  #{event.seq:<5} {event.type.value:<19} {step:<14} {event.facts()}"


class EventReader:
    """Reads a goal's events run by run and hands each new one to `out`, never one twice."""

    def __init__(self, client: Client, workflow_id: str, out: Callable[[Event], None]) -> None:
        self.client = client
        self.workflow_id = workflow_id
        self.out = out
        self.after = 0  # the last seq handed out
        self.finished: GoalFinished | None = None

    async def page(self, run_id: str | None, after: int) -> EventsPage:
        """One page; a run that cannot answer yet (just started, or its worker is away for a moment) is asked again."""
        handle = self.client.get_workflow_handle(self.workflow_id, run_id=run_id)
        deadline = asyncio.get_running_loop().time() + QUERY_PATIENCE_SECONDS
        while True:
            try:
                return await handle.query(EVENTS_QUERY, EventsQuery(after=after, limit=MAX_PAGE), result_type=EventsPage,
                                          rpc_timeout=QUERY_RPC_TIMEOUT)
            except (WorkflowQueryFailedError, WorkflowQueryRejectedError) as err:
                raise EventsError(f"cannot query the events of {self.workflow_id}: {err}") from err
            except RPCError as err:
                if err.status is RPCStatusCode.NOT_FOUND or asyncio.get_running_loop().time() > deadline:
                    raise EventsError(f"cannot query the events of {self.workflow_id} (run {run_id or 'latest'}): {err.message}") from err
            await asyncio.sleep(POLL_SECONDS)

    async def drain(self, run_id: str) -> EventsPage:
        """Hand out every event the run holds after the last one handed out; the last page read."""
        while True:
            page = await self.page(run_id, self.after)
            if page.events and page.events[0].seq > self.after + 1 and page.events[0].seq > page.run_first_seq:
                print(f"(events #{self.after + 1} to #{page.events[0].seq - 1} were dropped from the run's memory)", file=sys.stderr)
            for event in page.events:
                if event.seq > self.after:
                    self.after = event.seq
                    self.finished = event if isinstance(event, GoalFinished) else self.finished
                    self.out(event)
            if not page.more:
                return page

    async def latest_run(self) -> str:
        try:
            return (await self.client.get_workflow_handle(self.workflow_id).describe()).run_id
        except RPCError as err:
            raise EventsError(f"cannot find goal {self.workflow_id}: {err.message}") from err

    async def status(self, run_id: str) -> WorkflowExecutionStatus | None:
        try:
            return (await self.client.get_workflow_handle(self.workflow_id, run_id=run_id).describe()).status
        except RPCError as err:
            raise EventsError(f"cannot describe goal {self.workflow_id}: {err.message}") from err

    async def next_run(self, run_id: str) -> str:
        """The run a closed run continued as: the first after it among the latest run's earlier runs, or the latest."""
        latest = await self.latest_run()
        later = (await self.page(latest, self.after)).earlier_runs
        following = later[later.index(run_id) + 1:] if run_id in later else []
        return following[0] if following else latest

    async def ending(self, run_id: str, status: WorkflowExecutionStatus | None) -> tuple[int, str]:
        """(exit code, reason) for a goal whose last run closed with `status`."""
        if status is WorkflowExecutionStatus.COMPLETED:
            if self.finished is not None and self.finished.status == GoalStatus.COMPLETED.value:
                return 0, ""
            if self.finished is not None:
                return 1, f"goal {self.workflow_id} ended {self.finished.status}: {self.finished.error or 'no reason given'}"
            return 1, f"goal {self.workflow_id} completed without a goal_finished event"
        name = status.name.lower() if status else "unknown"
        if status is WorkflowExecutionStatus.FAILED:
            try:
                await self.client.get_workflow_handle(self.workflow_id, run_id=run_id).result()
            except WorkflowFailureError as err:
                return 1, f"goal {self.workflow_id} failed: {getattr(err.cause, 'message', err.cause)}"
        return 1, f"goal {self.workflow_id} ended {name}"

    async def show(self, follow: bool, poll: float = POLL_SECONDS) -> tuple[int, str]:
        """Every event the goal's runs hold; with `follow`, new ones until the goal closes. (exit code, reason)."""
        run_id = await self.latest_run()
        for earlier in (await self.page(run_id, 0)).earlier_runs:
            await self.drain(earlier)
        while True:
            await self.drain(run_id)
            if not follow:
                return 0, ""
            status = await self.status(run_id)
            if status is WorkflowExecutionStatus.RUNNING:
                await asyncio.sleep(poll)
                continue
            await self.drain(run_id)  # what the run told before it closed
            if status is WorkflowExecutionStatus.CONTINUED_AS_NEW:
                run_id = await self.next_run(run_id)
                continue
            return await self.ending(run_id, status)


async def show_events(client: Client, workflow_id: str, as_json: bool, follow: bool) -> int:
    """Print the events (stdout, flushed per line so a pipe sees them live); the reason for a non-zero exit on stderr."""
    reader = EventReader(client, workflow_id, lambda event: print(line(event, as_json), flush=True))
    try:
        code, reason = await reader.show(follow)
    except EventsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if reason:
        print(reason, file=sys.stderr)
    return code
