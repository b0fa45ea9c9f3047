"""A small workflow around `workflows.events.EventLog` for tests/test_events.py: a log that keeps only a few events,
filled by a signal, paged by a query, so dropping and paging are seen through a real server. Its own module (nothing
else imported) so the workflow sandbox can import it."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.events import EVENTS_QUERY, EventsPage, EventsQuery, StepStarted
    from workflows.events import EventLog

KEEP = 3


@workflow.defn(name="EventLogProbe")
class EventLogProbe:
    def __init__(self) -> None:
        self.log = EventLog(keep=KEEP)
        self.done = False

    @workflow.run
    async def run(self, carried_seq: int) -> int:
        self.log.restore(carried_seq, ["earlier-run"])
        await workflow.wait_condition(lambda: self.done)
        return self.log.seq

    @workflow.signal
    def emit(self, count: int) -> None:
        for n in range(count):
            self.log.emit(StepStarted, step_id=f"s{n}", kind="agent", role="tester")

    @workflow.signal
    def finish(self) -> None:
        self.done = True

    @workflow.query(name=EVENTS_QUERY)
    def events(self, query: EventsQuery) -> EventsPage:
        return self.log.page(query)
