"""Section 8: Foreman against bare Temporal and against no durability at all, in one run.

- Foreman: section 1's goal (a playbook of `steps` chained agent steps, the instant scripted model), on an
  in-process worker built by `worker.build_worker`;
- bare Temporal: `bench.bare.BareStepsWorkflow` with the same number of sequential no-op activities, on
  the same dev server, client and worker options;
- the no-durability floor: the same `steps` requests (the ones Foreman's last goal sent) through the same
  scripted model function in a plain asyncio loop.

Bare and Foreman goals alternate (the order flips every round), so a load drift on the shared machine hits
both. No approver polls the goal while it runs (section 1's does): nothing but the goal runs on the worker.
`overhead_vs_bare_temporal` is Foreman's median wall time per step over bare Temporal's.

Section 10 replays a history of about REPLAY_EVENTS events of each (a long chained goal; a bare workflow
with enough no-op activities for as many events) with `temporalio.worker.Replayer`, in ms per event.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from temporalio.client import Client, WorkflowHistory

from bench.bare import BareRequest, BareStepsWorkflow, bare_worker
from bench.report import GOAL_TIMEOUT_S, Report, ms
from bench.workloads import instant_model, median, replay_ms, step_phases_ms, steps_playbook
from contracts.goal import Budget, GoalRequest, GoalStatus
from contracts.llm import ModelRequest
from worker import all_activities, build_worker
from workflows.goal import GoalWorkflow

FLOOR_REPEATS = 50
REPLAY_EVENTS = 1_000
# Events per sequential step: activity scheduled, started, completed and workflow task scheduled, started,
# completed (a Foreman goal upserts its counters at most every 10 s, so not per step here).
BARE_EVENTS_PER_STEP, FOREMAN_EVENTS_PER_STEP = 6, 6
REPLAY_REPEATS = 3


@dataclass
class Timed:
    """One workflow run: wall time from the start request to its result, and its history."""

    label: str
    wall_ms: float
    history: WorkflowHistory


async def timed_workflow(client: Client, run, arg, task_queue: str, label: str) -> tuple[Timed, object]:
    """Start a workflow and wait for its result (at most GOAL_TIMEOUT_S), nothing else on the way; returns the
    timing and the result."""
    async with asyncio.timeout(GOAL_TIMEOUT_S):
        started = time.perf_counter()
        handle = await client.start_workflow(
            run, arg, id=f"bench-{re.sub(r'[^a-z0-9]+', '-', label.lower())}-{uuid.uuid4().hex[:8]}", task_queue=task_queue
        )
        result = await handle.result()
        wall_ms = (time.perf_counter() - started) * 1000
    return Timed(label, wall_ms, await handle.fetch_history()), result


@dataclass
class Comparison:
    steps: int
    foreman: list[Timed]
    bare: list[Timed]
    floor_ms: list[float]  # per goal-equivalent loop of `steps` model calls

    def per_step(self, runs: list[Timed]) -> float:
        return median([r.wall_ms / self.steps for r in runs])

    @property
    def overhead(self) -> float:
        return self.per_step(self.foreman) / self.per_step(self.bare)

    @staticmethod
    def span_ms(run: Timed) -> float:
        """The run as the server recorded it: its first event to its last (no client start or result delivery)."""
        events = run.history.events
        return (events[-1].event_time.ToDatetime() - events[0].event_time.ToDatetime()).total_seconds() * 1000

    @staticmethod
    def phases(runs: list[Timed]) -> dict[str, float]:
        """Median ms per step of each phase (dispatch, workflow task, activity) over `runs`."""
        each = [step_phases_ms(r.history) for r in runs]
        return {phase: median([v for p in each for v in p[phase]]) for phase in ("dispatch", "workflow task", "activity")}


async def floor_ms(call_model, requests: list[ModelRequest], repeats: int = FLOOR_REPEATS) -> list[float]:
    """The same model calls in a plain asyncio loop, one after another: ms per loop of all `requests`."""
    loops = []
    for _ in range(repeats):
        started = time.perf_counter()
        for request in requests:
            await call_model(request)
        loops.append((time.perf_counter() - started) * 1000)
    return loops


async def compare(client: Client, folder: Path, steps: int, goals: int) -> Comparison:
    """One warm-up of each, then `goals` of each, alternating bare and Foreman."""
    playbook = steps_playbook(folder, f"bench-chain{steps}", steps, chained=True)
    model = instant_model()
    foreman_queue, bare_queue = f"bench-foreman-{uuid.uuid4().hex[:8]}", f"bench-bare-{uuid.uuid4().hex[:8]}"
    request = GoalRequest(goal="Benchmark orchestration overhead", playbook=playbook)
    bare_request = BareRequest(steps=steps)
    comparison = Comparison(steps, [], [], [])

    async def foreman(label: str) -> Timed:
        timed, result = await timed_workflow(client, GoalWorkflow.run, request, foreman_queue, label)
        if result.status is not GoalStatus.COMPLETED:
            raise RuntimeError(f"the Foreman goal ended {result.status.value}: {result.error}")
        return timed

    async def bare(label: str) -> Timed:
        return (await timed_workflow(client, BareStepsWorkflow.run, bare_request, bare_queue, label))[0]

    async with build_worker(client, foreman_queue, activities=all_activities(model.activity())), bare_worker(client, bare_queue):
        await bare("bare warmup")
        await foreman("foreman warmup")
        for i in range(goals):
            order = (bare, foreman) if i % 2 == 0 else (foreman, bare)
            for kind in order:
                run = await kind(f"{kind.__name__} {i}")
                (comparison.bare if kind is bare else comparison.foreman).append(run)
    comparison.floor_ms = await floor_ms(model.activity(), model.requests[-steps:])
    return comparison


def report_comparison(report: Report, results, c: Comparison) -> None:
    """Print section 8 and put its figures into `results` (a `bench.results.Results`)."""
    foreman, bare = c.per_step(c.foreman), c.per_step(c.bare)
    floor = median(c.floor_ms) / c.steps
    n = len(c.foreman)
    report.add("8", f"Foreman goal wall / step ({c.steps} chained steps, median of {n}, interleaved with bare)",
               ms(foreman), ms(bare) + " bare Temporal", f"overhead_vs_bare_temporal {c.overhead:.2f}x")
    report.add("8", f"goal wall, {c.steps} steps (median)", ms(median([r.wall_ms for r in c.foreman])),
               ms(median([r.wall_ms for r in c.bare])) + " bare Temporal")
    spans = median([c.span_ms(r) for r in c.foreman]), median([c.span_ms(r) for r in c.bare])
    report.add("8", "goal in its history, first event to last (median)", ms(spans[0]), ms(spans[1]) + " bare Temporal",
               f"{spans[0] / spans[1]:.2f}x")
    report.add("8", f"no-durability floor: the same {c.steps} model calls in an asyncio loop (median of {len(c.floor_ms)})",
               f"{floor * 1000:,.1f} µs/step", ms(foreman) + " Foreman", f"{foreman / floor:,.0f}x")
    tuned, base = Comparison.phases(c.foreman), Comparison.phases(c.bare)
    for phase, label in (("dispatch", "workflow task wait (server)"), ("workflow task", "workflow task run (worker)"),
                         ("activity", "activity (scheduled -> completed)")):
        report.add("8", f"per step: {label} (median)", ms(tuned[phase]), ms(base[phase]) + " bare Temporal",
                   f"{tuned[phase] / base[phase]:.1f}x" if base[phase] else "")
    results.put("overhead_vs_bare_temporal", round(c.overhead, 3))
    results.put("steps", c.steps)
    results.put("goals_each", n)
    results.put("foreman_ms_per_step", round(foreman, 3))
    results.put("bare_temporal_ms_per_step", round(bare, 3))
    results.put("no_durability_floor_ms_per_step", round(floor, 5))
    results.put("history_span_ms", {"foreman": round(spans[0], 1), "bare_temporal": round(spans[1], 1),
                                     "ratio": round(spans[0] / spans[1], 3)})
    results.put("foreman_goal_ms", [round(r.wall_ms, 1) for r in c.foreman])
    results.put("bare_temporal_goal_ms", [round(r.wall_ms, 1) for r in c.bare])
    results.put("phases_ms_per_step", {"foreman": {k: round(v, 3) for k, v in tuned.items()},
                                       "bare_temporal": {k: round(v, 3) for k, v in base.items()}})


def steps_for(events: int, per_step: int) -> int:
    """Sequential steps that make a history of about `events` events."""
    return max(1, round(events / per_step))


async def replay_long(client: Client, folder: Path, events: int = REPLAY_EVENTS, repeats: int = REPLAY_REPEATS) -> dict[str, tuple[int, float]]:
    """{"foreman"|"bare_temporal": (history events, median replay ms)} for one long history of each."""
    steps, bare_steps = steps_for(events, FOREMAN_EVENTS_PER_STEP), steps_for(events, BARE_EVENTS_PER_STEP)
    playbook = steps_playbook(folder, f"bench-chain{steps}", steps, chained=True)
    request = GoalRequest(goal="Benchmark replay", playbook=playbook, budget=Budget(max_model_calls=steps + 10))
    foreman_queue, bare_queue = f"bench-foreman-{uuid.uuid4().hex[:8]}", f"bench-bare-{uuid.uuid4().hex[:8]}"
    async with build_worker(client, foreman_queue, activities=all_activities(instant_model().activity())), bare_worker(client, bare_queue):
        foreman, result = await timed_workflow(client, GoalWorkflow.run, request, foreman_queue, f"replay chain{steps}")
        if result.status is not GoalStatus.COMPLETED:
            raise RuntimeError(f"the Foreman goal ended {result.status.value}: {result.error}")
        bare, _ = await timed_workflow(client, BareStepsWorkflow.run, BareRequest(steps=bare_steps), bare_queue, f"replay bare{bare_steps}")
    return {
        "foreman": (await replay_ms([foreman.history], repeats))[0],
        "bare_temporal": (await replay_ms([bare.history], repeats, workflows=(BareStepsWorkflow,)))[0],
    }


def report_replay(report: Report, results, replays: dict[str, tuple[int, float]]) -> None:
    (f_events, f_ms), (b_events, b_ms) = replays["foreman"], replays["bare_temporal"]
    f_per, b_per = f_ms / f_events, b_ms / b_events
    report.add("10", f"replay ms/event, Foreman chained goal ({f_events} events, median)", f"{f_per:.3f} ms/event ({ms(f_ms)})",
               f"{b_per:.3f} ms/event bare Temporal ({b_events} events, {ms(b_ms)})", f"{f_per / b_per:.1f}x")
    results.put("replay_ms_per_event", {
        "foreman": {"events": f_events, "ms": round(f_ms, 1), "ms_per_event": round(f_per, 4)},
        "bare_temporal": {"events": b_events, "ms": round(b_ms, 1), "ms_per_event": round(b_per, 4)},
    })
