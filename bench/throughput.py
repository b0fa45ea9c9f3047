"""Section 9: goals per second at several concurrencies, on one and on two worker processes.

A closed loop keeps `concurrency` goals in flight until `total` have finished; Foreman's goal is a short
chained playbook (`THROUGHPUT_STEPS` agent steps, instant scripted model), the bare baseline the same number
of no-op activities, on the same worker processes (`bench.worker_process`, both queues in each process). Bare
and Foreman alternate per concurrency level; each worker set gets one warm-up round of both first.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from temporalio.client import Client

from bench.bare import BareRequest, BareStepsWorkflow
from bench.processes import worker_processes
from bench.report import Report, ms
from bench.workloads import median, steps_playbook
from contracts.goal import GoalRequest, GoalStatus
from workflows.goal import GoalWorkflow

THROUGHPUT_STEPS = 5


def goals_at(concurrency: int) -> int:
    """Goals per measurement: twice the concurrency, at least 10 (so a level is not one wave)."""
    return max(2 * concurrency, 10)


@dataclass
class Level:
    workers: int
    concurrency: int
    kind: str  # "foreman" | "bare_temporal"
    goals: int
    seconds: float
    latencies_ms: list[float]
    failed: int

    @property
    def goals_per_s(self) -> float:
        return self.goals / self.seconds


async def closed_loop(client: Client, run, arg, queue: str, concurrency: int, total: int) -> tuple[float, list[float], int]:
    """(seconds, per-goal latencies, goals not completed) for `total` goals, `concurrency` at a time."""
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    failed = 0

    async def one() -> None:
        nonlocal failed
        async with gate:
            started = time.perf_counter()
            result = await client.execute_workflow(run, arg, id=f"bench-tput-{uuid.uuid4().hex[:10]}", task_queue=queue)
            latencies.append((time.perf_counter() - started) * 1000)
            failed += getattr(result, "status", GoalStatus.COMPLETED) is not GoalStatus.COMPLETED

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(total)))
    return time.perf_counter() - started, latencies, failed


async def throughput(client: Client, folder: Path, log_folder: Path, worker_counts: tuple[int, ...],
                     concurrencies: tuple[int, ...], goals=goals_at) -> list[Level]:
    playbook = steps_playbook(folder, f"bench-chain{THROUGHPUT_STEPS}", THROUGHPUT_STEPS, chained=True)
    foreman = (GoalWorkflow.run, GoalRequest(goal="Benchmark throughput", playbook=playbook))
    bare = (BareStepsWorkflow.run, BareRequest(steps=THROUGHPUT_STEPS))
    levels: list[Level] = []
    for count in worker_counts:
        async with worker_processes(client, count, log_folder) as workers:
            queues = {"foreman": (foreman, workers.foreman_queue), "bare_temporal": (bare, workers.bare_queue)}
            for (run, arg), queue in queues.values():  # warm-up: every process runs both kinds once
                await closed_loop(client, run, arg, queue, 2 * count, 2 * count)
            for i, concurrency in enumerate(concurrencies):
                for kind in (("bare_temporal", "foreman") if i % 2 == 0 else ("foreman", "bare_temporal")):
                    (run, arg), queue = queues[kind]
                    total = goals(concurrency)
                    seconds, latencies, failed = await closed_loop(client, run, arg, queue, concurrency, total)
                    levels.append(Level(count, concurrency, kind, total, seconds, latencies, failed))
    return levels


def report_throughput(report: Report, results, levels: list[Level]) -> None:
    table: dict[str, dict[str, dict[str, float]]] = {}
    for level in (lv for lv in levels if lv.kind == "foreman"):
        bare = next(b for b in levels if b.kind == "bare_temporal" and (b.workers, b.concurrency) == (level.workers, level.concurrency))
        ratio = level.goals_per_s / bare.goals_per_s
        failed = f", {level.failed} not completed" if level.failed else ""
        report.add("9", f"goals/s, {THROUGHPUT_STEPS}-step goals, concurrency {level.concurrency}, {level.workers} worker process(es)"
                        f" ({level.goals} goals)",
                   f"{level.goals_per_s:,.2f} (latency median {ms(median(level.latencies_ms))}, max {ms(max(level.latencies_ms))}{failed})",
                   f"{bare.goals_per_s:,.2f} bare Temporal (latency median {ms(median(bare.latencies_ms))}, max {ms(max(bare.latencies_ms))})",
                   f"{ratio:.0%} of bare")
        table.setdefault(f"{level.workers}_workers", {})[str(level.concurrency)] = {
            "foreman_goals_per_s": round(level.goals_per_s, 3), "bare_temporal_goals_per_s": round(bare.goals_per_s, 3),
            "ratio": round(ratio, 3), "goals": level.goals, "foreman_failed": level.failed,
            "foreman_latency_ms": {"median": round(median(level.latencies_ms), 1), "max": round(max(level.latencies_ms), 1)},
            "bare_temporal_latency_ms": {"median": round(median(bare.latencies_ms), 1), "max": round(max(bare.latencies_ms), 1)},
        }
    results.put("throughput", {"steps_per_goal": THROUGHPUT_STEPS, "by_workers": table})
