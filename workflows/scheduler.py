"""Step scheduling for one goal (workflow code): ready steps (every dependency completed) run
concurrently up to `max_parallel_steps`, in plan order.

When a step fails for good: its declared `fallback` step runs and its output stands in for the failed
step's; else, in an LLM-planned goal (or when a resolver chose `replan`), new steps stop starting, the
running ones finish, and the planner revises the rest of the plan from what is done (bounded by
`max_plan_revisions`; each revision is a `plan_goal` activity and is kept in the result). Steps the
revision replaces, and the failed step itself, are marked `superseded_by`.

Long goals: once the history passes the request's event count or size (or the server suggests it), new
steps stop starting; when every running step has finished or is parked (waiting for a person, `PARKABLE`
kinds only), `run` returns False and `checkpoint` hands over what the next run needs: finished steps' full
results archived in parts, short outputs inline, long ones by the part that holds them (loaded again only
when a later step needs them).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
from collections.abc import Iterable, Iterator, Mapping
from itertools import islice

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from contracts.archive import ContentRef
    from contracts.continuation import ArchivedOutput, SchedulerState
    from contracts.events import StepFinished, short
    from contracts.goal import ArchivePart, GoalRequest, StepProgress, StepResult, StepStatus
    from contracts.plan import PLAN_GOAL_ACTIVITY, DoneStep, Plan, PlanRequest, PlanRevision, PlanSource, PlanStep
    from core.catalogue import ToolCatalogue
    from core.options import PLANNER
    from core.relevance import instruction_of
    from core.plan_validation import templates_of
    from core.templating import referenced_steps
    from workflows.archive import archive_text, load_text, split_parts
    from workflows.events import EventLog
    from workflows.executor import StepExecutor
    from workflows.failures import BudgetExceeded, StepFailed, failure_message
    from workflows.journal import PARKABLE
    from workflows.ledger import GoalLedger

DONE_OUTPUT_CHARS = 1_000
MAX_WHOLE_OUTPUT_BYTES = 1_000_000  # a whole output pasted into an activity's input stays well under the 2 MB payload limit
BYTES_PER_TOKEN = 3  # an estimate on the safe side (code, JSON, non-Latin text); the model call's usage is what gets charged
MAX_WHOLE_INPUT_BYTES = 256_000  # whole inputs go into every model call's input in the history: keep each well under the limits
INLINE_OUTPUT_CHARS = 256  # longer outputs cross a continue-as-new inside their step's archived result
# Draining starts this far ahead of the limit: each running step still adds events until it ends or parks.
DRAIN_EVENTS_PER_STEP, DRAIN_EVENTS_FIXED = 16, 40
WAITING_FOR_PEOPLE = (StepStatus.AWAITING_APPROVAL, StepStatus.AWAITING_RESOLUTION)


class StepScheduler:
    def __init__(
        self, request: GoalRequest, executor: StepExecutor, ledger: GoalLedger, progress: dict[str, StepProgress],
        catalogue: ToolCatalogue, events: EventLog,
    ) -> None:
        self.request = request
        self.events = events
        self.catalogue = catalogue  # learns each plan's (and revision's) MCP tools
        self.executor = executor
        self.ledger = ledger
        self.progress = progress
        self.plan: Plan | None = None
        self.steps: list[PlanStep] = []
        self.output_step = ""
        self.revisions: list[Plan] = []
        self.revision_errors: list[str] = []
        self.results: dict[str, StepResult] = {}  # finished steps (outcome only for those archived at a continue-as-new)
        self.outputs: dict[str, str] = {}  # a failed step a fallback stood in for has the fallback's output
        self.output_sources: dict[str, str] = {}  # step id -> the step whose output it has (itself, or its fallback)
        self.archived_outputs: dict[str, ArchivedOutput] = {}
        self.full_outputs: dict[str, ContentRef] = {}  # step id -> its whole output, when `outputs` has a marked preview
        self.parts: list[ContentRef] = []
        self.archived: dict[str, int] = {}
        self._loaded: dict[int, dict[str, StepResult]] = {}  # parts already loaded in this run: never twice
        self.triggered: dict[str, str] = {}  # fallback step id -> the failed step it stands in for
        self.replan_after: StepResult | None = None
        self.parked: list[str] = []  # steps to resume first (carried), then the steps parked for the next run

    def start(self, plan: Plan) -> None:
        self.plan, self.steps, self.output_step = plan, list(plan.steps), plan.output_step or plan.steps[-1].id
        self.catalogue.add(plan.mcp_tools)

    def restore(self, state: SchedulerState) -> None:
        """Go on from a previous run's checkpoint."""
        self.plan, self.revisions, self.revision_errors = state.plan, list(state.revisions), list(state.revision_errors)
        self.steps = [s for p in [state.plan, *state.revisions] for s in p.steps]
        self.executor.context.revised_steps.update(s.id for r in state.revisions for s in r.steps)
        for plan in [state.plan, *state.revisions]:
            self.catalogue.add(plan.mcp_tools)
        self.output_step = state.output_step
        self.results = {r.step_id: r for r in state.finished}
        self.outputs = dict(state.outputs)
        self.output_sources = {s: s for s in state.outputs}
        self.archived_outputs = dict(state.archived_outputs)
        self.full_outputs = dict(state.full_outputs)
        self.parts, self.archived = list(state.parts), dict(state.archived)
        self.triggered = dict(state.triggered)
        self.replan_after = self.results.get(state.replan_after) if state.replan_after else None
        self.parked = list(state.parked)

    def _has_output(self, step_id: str) -> bool:
        return step_id in self.outputs or step_id in self.archived_outputs

    async def run(self) -> bool:
        """Run the plan; False when it stopped for a continue-as-new (`parked` names the steps to resume first)."""
        assert self.plan is not None
        plan, results, outputs, triggered = self.plan, self.results, self.outputs, self.triggered
        standby = {s.fallback for s in self.steps if s.fallback}  # fallback steps run only when triggered
        by_id = {s.id: s for s in self.steps}
        running: dict[str, asyncio.Task[StepResult]] = {
            step_id: asyncio.create_task(self._launch(by_id[step_id])) for step_id in self.parked}  # resumed first, in order
        self.parked = []
        draining, finished_here, frontier = False, 0, Frontier()
        while True:
            # Only a run that got something done hands over: a carry near the limits must not make runs that do nothing.
            draining = draining or (finished_here > 0 and self._continue_due(len(running)))
            awaited = {failed for fallback, failed in triggered.items() if fallback not in results}
            passing = [] if self.replan_after is not None or draining else (
                self.steps if self.ledger.exceeded else frontier.walk(self.steps, results, running))  # over budget: all are skipped
            for step in passing:
                if step.id in results or step.id in running or (step.id in standby and step.id not in triggered):
                    continue
                blocked = [d for d in step.depends_on if d in results and not self._has_output(d)
                           and d not in awaited and results[d].status is not StepStatus.COMPLETED]
                if blocked or self.ledger.exceeded:
                    reason = "budget exceeded" if self.ledger.exceeded else f"dependencies did not complete: {blocked}"
                    results[step.id] = StepResult(step_id=step.id, role=step.role, status=StepStatus.SKIPPED, error=reason)
                    self.progress[step.id].status = StepStatus.SKIPPED
                    self.events.emit(StepFinished, step_id=step.id, status=StepStatus.SKIPPED.value, error=short(reason))
                elif all(self._has_output(d) for d in step.depends_on) and len(running) < self.request.max_parallel_steps:
                    running[step.id] = asyncio.create_task(self._launch(step))
                    by_id[step.id] = step
            if not running:
                if draining and self._unfinished(standby):
                    return False
                if self.replan_after is not None and await self._revise(plan, self.replan_after, results):
                    self.replan_after = None
                    standby = {s.fallback for s in self.steps if s.fallback}
                    continue
                break
            if draining:  # wait until every running step has finished or waits for a person
                await self._until_settled(running, by_id)
                if not any(t.done() for t in running.values()):
                    for task in running.values():  # frozen now: a decision arriving later is seen by the next run
                        task.cancel()
                    self.parked = list(running)
                    return False
            else:
                await workflow.wait(list(running.values()), return_when=asyncio.FIRST_COMPLETED)
            for step_id, task in list(running.items()):  # insertion order: deterministic
                if not task.done():
                    continue
                del running[step_id]
                finished_here += 1
                result = results[step_id] = task.result()
                if result.status is StepStatus.COMPLETED:
                    for stands_for in [step_id, *([triggered[step_id]] if step_id in triggered else [])]:
                        outputs[stands_for], self.output_sources[stands_for] = result.output, step_id
                        if result.full_output:
                            self.full_outputs[stands_for] = result.full_output
                    if step_id in triggered:  # a fallback that worked stands in for the step that failed
                        results[triggered[step_id]].superseded_by = step_id
                elif result.status is StepStatus.FAILED:
                    step = by_id[step_id]
                    if step.fallback and step.fallback not in triggered:
                        triggered[step.fallback] = step_id
                    elif self.replan_after is None and self._replannable(plan, result):
                        self.replan_after = result
        return True

    def results_in_order(self) -> list[StepResult]:
        return [self.results[s.id] for s in self.steps if s.id in self.results]

    async def _launch(self, step: PlanStep) -> StepResult:
        try:
            await self._load_outputs(step.depends_on)
            outputs = await self._with_full_outputs(step)
        except (ActivityError, StepFailed) as err:  # its inputs cannot be had: this step fails, the goal goes on
            self.progress[step.id].status = StepStatus.FAILED
            error = f"inputs not loaded: {failure_message(err) if isinstance(err, ActivityError) else err}"
            self.events.emit(StepFinished, step_id=step.id, status=StepStatus.FAILED.value, error=short(error))
            return StepResult(step_id=step.id, role=step.role, status=StepStatus.FAILED, error=error)
        return await self.executor.run(step, outputs)

    async def _with_full_outputs(self, step: PlanStep) -> Mapping[str, str]:
        """The outputs `step` sees: where its templates name a step whose output is a marked preview, the whole
        text (so a pasted output, and its `sha256`, are of the full content); the same for its dependencies while
        they fit in the step's `full_inputs_tokens` and the goal's tokens left; elsewhere the preview."""
        if not self.full_outputs:  # no output is a preview: every step sees them whole already
            return self.outputs
        named = sorted({s for t in templates_of(step) for s in referenced_steps(t) if s in self.full_outputs} | self._whole_inputs(step))
        if not named:
            return self.outputs
        full = dict(self.outputs)
        for step_id in named:
            size = self.full_outputs[step_id].size_bytes
            if size > MAX_WHOLE_OUTPUT_BYTES:
                raise StepFailed(f"the output of {step_id!r} is {size} bytes; templates get whole outputs up to "
                                 f"{MAX_WHOLE_OUTPUT_BYTES} bytes (payload limits)")
            full[step_id] = await load_text(self.full_outputs[step_id], f"{step.id}: full output of {step_id}")
        return full

    def _whole_inputs(self, step: PlanStep) -> set[str]:
        """Previewed dependencies the step's model gets whole, in dependency order: within its token allowance, within
        what is left of the goal's tokens for every prompt that repeats them (each turn of each attempt or candidate;
        checked when the step starts, not reserved: the goal's limit still stops calls), and within MAX_WHOLE_INPUT_BYTES."""
        allowance = getattr(step, "full_inputs_tokens", 0)
        if not allowance:
            return set()
        sends = getattr(step, "max_turns", 1) * step.max_attempts * len(getattr(step, "variants", None) or [None])
        left, room = min(allowance, self.ledger.tokens_left() // sends), MAX_WHOLE_INPUT_BYTES
        whole: set[str] = set()
        for dep in step.depends_on:
            ref = self.full_outputs.get(dep)
            if ref is None:
                continue
            tokens = -(-ref.size_bytes // BYTES_PER_TOKEN)
            if tokens <= left and ref.size_bytes <= room:
                whole.add(dep)
                left, room = left - tokens, room - ref.size_bytes
        return whole

    async def _until_settled(self, running: dict[str, asyncio.Task[StepResult]], by_id: dict[str, PlanStep]) -> None:
        """Every running step has finished or waits for a person, still after the others woken with this one have
        run: a decision that arrived in the same activation may have set a waiting step going again."""
        def settled() -> bool:
            return all(t.done() or self._parkable(by_id[i]) for i, t in running.items())

        while True:
            await workflow.wait_condition(settled)
            await asyncio.sleep(0)  # a bare yield (no timer): steps resumed in this activation run before the check
            if settled():
                return

    def _parkable(self, step: PlanStep) -> bool:
        return step.type in PARKABLE and self.progress[step.id].status in WAITING_FOR_PEOPLE

    def _unfinished(self, standby: set[str]) -> bool:
        return self.replan_after is not None or any(
            s.id not in self.results and (s.id not in standby or s.id in self.triggered) for s in self.steps)

    def _continue_due(self, running: int) -> bool:
        info = workflow.info()
        reserve = DRAIN_EVENTS_FIXED + DRAIN_EVENTS_PER_STEP * running
        return (info.get_current_history_length() + reserve >= self.request.continue_as_new_after_events
                or info.get_current_history_size() >= self.request.continue_as_new_after_bytes
                or info.is_continue_as_new_suggested())

    # --- continue-as-new ---------------------------------------------------------------------------

    async def checkpoint(self) -> SchedulerState:
        """What the next run needs; finished steps not yet archived go to the content store in parts first."""
        assert self.plan is not None
        fresh = [r for r in self.results.values() if r.step_id not in self.archived]
        for part in split_parts(ArchivePart(), fresh) if fresh else []:
            ref = await archive_text(part.model_dump_json(), f"continue-as-new: archive {len(part.steps)} finished steps",
                                     f"continue-as-new: finished steps part {len(self.parts) + 1}")  # named: tools can tell the boundary
            self.parts.append(ref)
            self.archived.update({r.step_id: len(self.parts) - 1 for r in part.steps})
        inline = {s: o for s, o in self.outputs.items() if len(o) <= INLINE_OUTPUT_CHARS}
        for step_id in sorted(self.outputs.keys() - inline.keys()):  # sorted: set order varies between processes
            source = self.output_sources[step_id]
            self.archived_outputs[step_id] = ArchivedOutput(part=self.archived[source], source=source)
        return SchedulerState(
            plan=self.plan, revisions=self.revisions, revision_errors=self.revision_errors, output_step=self.output_step,
            finished=[outcome(r) for r in self.results.values()], parts=self.parts, archived=self.archived,
            outputs=inline, archived_outputs=self.archived_outputs, full_outputs=self.full_outputs, triggered=self.triggered,
            replan_after=self.replan_after.step_id if self.replan_after else None, parked=self.parked,
        )

    async def _load_parts(self, indexes: Iterable[int]) -> dict[str, StepResult]:
        """Full results of the steps in the archived parts named, by step id."""
        loaded: dict[str, StepResult] = {}
        for index in sorted(set(indexes)):
            if index not in self._loaded:
                text = await load_text(self.parts[index], f"load finished steps (part {index + 1})")
                self._loaded[index] = {r.step_id: r for r in ArchivePart.model_validate_json(text).steps}
            loaded |= self._loaded[index]
        return loaded

    async def _load_outputs(self, step_ids: Iterable[str]) -> None:
        """Bring archived outputs the caller needs back inline."""
        wanted = {s: self.archived_outputs[s] for s in step_ids if s not in self.outputs and s in self.archived_outputs}
        if not wanted:
            return
        loaded = await self._load_parts(a.part for a in wanted.values())
        for step_id, where in wanted.items():
            self.outputs[step_id], self.output_sources[step_id] = loaded[where.source].output, where.source

    async def output_of(self, step_id: str) -> str:
        await self._load_outputs([step_id])
        return self.outputs[step_id]

    async def full_results(self) -> list[StepResult]:
        """Every result in plan order, archived ones loaded whole again (with what changed since: `superseded_by`)."""
        loaded = await self._load_parts(self.archived[s] for s in self.results if s in self.archived)
        for step_id, full in loaded.items():
            if step_id in self.results:
                self.results[step_id] = full.model_copy(update={"superseded_by": self.results[step_id].superseded_by})
        return self.results_in_order()
    def can_revise(self) -> bool:
        """A revision of the plan is still possible (within `max_plan_revisions`, budget left)."""
        return len(self.revisions) < self.request.max_plan_revisions and not self.ledger.exceeded

    def _replannable(self, plan: Plan, result: StepResult) -> bool:
        return self.can_revise() and (result.replan_guidance is not None or plan.source is PlanSource.LLM)

    async def _revise(self, plan: Plan, failed: StepResult, results: dict[str, StepResult]) -> bool:
        """Ask the planner for the rest of the plan; False (and the goal goes on as it is) if it cannot."""
        number = len(self.revisions) + 1
        done_steps = [s for s in self.steps
                      if self._has_output(s.id) and results.get(s.id) and results[s.id].status is StepStatus.COMPLETED]
        await self._load_outputs(s.id for s in done_steps)
        done = [DoneStep(step_id=s.id, role=s.role, instruction=instruction_of(s), output=self.outputs[s.id][:DONE_OUTPUT_CHARS])
                for s in done_steps]
        failures = [r for r in results.values() if r.status is StepStatus.FAILED and r.superseded_by is None]
        revision = PlanRevision(
            number=number, done=done, failed_step_id=failed.step_id,
            failure="; ".join(f"{r.step_id}: {r.error or 'failed'}" for r in failures) or failed.error or "failed",
            guidance=failed.replan_guidance or "",
        )
        try:
            self.ledger.check_clock()  # the goal's time is up: no revision (it would only get MINIMUM_TIMEOUT)
            revised = await workflow.execute_activity(
                PLAN_GOAL_ACTIVITY,
                PlanRequest(goal=self.request.goal, spec=self.request.models.planner, revision=revision),
                result_type=Plan,
                summary=f"revise plan ({number}): after {failed.step_id} failed",
                **PLANNER.within(self.ledger.time_left()).kwargs(),  # a revision ends by the goal's deadline too
            )
        except BudgetExceeded:
            return False  # the ledger keeps the reason: the goal ends over budget
        except ActivityError as err:
            self.revision_errors.append(f"revision {number} failed: {failure_message(err)}")
            with contextlib.suppress(BudgetExceeded):  # cut off by the deadline: the ledger keeps why, the goal ends over budget
                self.ledger.cut_off(err)
            return False
        self.ledger.charge_model(revised.usage, revised.cost_usd, calls=revised.model_calls)
        self.revisions.append(revised)
        self.catalogue.add(revised.mcp_tools)
        marker = f"revision {number}"
        self.events.planned(revised, self.request.models.planner)
        for result in results.values():  # every failure still standing (steps that failed in parallel too) is dealt with
            if result.status is StepStatus.FAILED and result.superseded_by is None:
                result.superseded_by = marker
        for step in self.steps:  # what has not run is replaced by the revision
            if step.id not in results:
                results[step.id] = StepResult(step_id=step.id, role=step.role, status=StepStatus.SKIPPED,
                                              error=f"replaced by plan {marker}", superseded_by=marker)
                self.progress[step.id].status = StepStatus.SKIPPED
                self.events.emit(StepFinished, step_id=step.id, status=StepStatus.SKIPPED.value, error=f"replaced by plan {marker}")
        for step in revised.steps:
            self.progress[step.id] = StepProgress.pending(step)
        self.steps += revised.steps
        self.executor.context.revised_steps.update(s.id for s in revised.steps)
        self.output_step = revised.output_step or revised.steps[-1].id
        return True


class Frontier:
    """The steps a scheduling pass looks at, in plan order: unfinished ones with no dependencies or at least one
    finished (a step whose dependencies all still run can neither start nor be skipped; an output is only had from a
    finished step). Kept up as steps and results arrive, so a pass over a long chain looks at one step, not all."""

    def __init__(self) -> None:
        self._order: dict[str, int] = {}  # step id -> its place in the plan (revisions appended)
        self._dependents: dict[str, list[str]] = {}
        self._pool: set[str] = set()
        self._results_seen = 0

    def walk(self, steps: list[PlanStep], results: Mapping[str, StepResult], running: Mapping[str, object]) -> Iterator[PlanStep]:
        """The steps to look at, in plan order; one the caller finishes during the walk (skips) brings its dependents
        into the same walk, wherever they are in the plan, so a skip cascades at once."""
        for index in range(len(self._order), len(steps)):
            step = steps[index]
            self._order[step.id] = index
            for dep in step.depends_on:
                self._dependents.setdefault(dep, []).append(step.id)
            if not step.depends_on or any(d in results for d in step.depends_on):
                self._pool.add(step.id)
        for finished in islice(results, self._results_seen, None):  # dicts keep insertion order: the new results
            self._pool.update(self._dependents.get(finished, ()))
        self._results_seen = len(results)
        queue = sorted(self._order[s] for s in self._pool)
        looked: set[int] = set()
        while queue:
            index = heapq.heappop(queue)
            step = steps[index]
            if index in looked:
                continue
            looked.add(index)
            if step.id in results or step.id in running:
                self._pool.discard(step.id)
                continue
            yield step
            if step.id in results:
                self._pool.discard(step.id)
                for dependent in self._dependents.get(step.id, ()):
                    self._pool.add(dependent)
                    heapq.heappush(queue, self._order[dependent])


def outcome(result: StepResult) -> StepResult:
    """What the scheduler needs of a finished step once its full result is archived."""
    return StepResult(
        step_id=result.step_id, role=result.role, status=result.status, output_sha256=result.output_sha256, score=result.score,
        superseded_by=result.superseded_by, replan_guidance=result.replan_guidance, error=result.error,
    )
