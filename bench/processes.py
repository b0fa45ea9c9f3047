"""Benchmarks on worker processes (`bench.worker_process`): recovery after a worker is SIGKILLed
(section 11) and worker memory per parked goal (section 12); `worker_processes` also serves section 9.

Recovery: a 3-step chained goal on a slow, heartbeating scripted model; once its first model call is in
flight the worker is SIGKILLed and a new worker process started. Temporal notices the lost call when its
heartbeat times out (`core.options.MODEL_CALL`), retries it after the retry policy's first interval, and
the new worker runs it: times are from the kill to the new worker's readiness, to the next completed
activity (its history event time) and to the goal's result.

Memory: a worker's RSS (/proc/PID/status VmRSS) with 0, then N, then M goals parked, each waiting for
the research-brief publish approval (cached on the worker, as running goals are); the bare baseline parks
`BareStepsWorkflow`s on a signal in a process of their own.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from temporalio.api.enums.v1 import EventType, PendingActivityState
from temporalio.client import Client, WorkflowHandle

from bench.bare import BareRequest, BareStepsWorkflow
from bench.report import Report
from bench.workloads import steps_playbook
from contracts.approvals import PENDING_QUERY, ApprovalRequest
from contracts.goal import GoalRequest, GoalResult, GoalStatus
from core.options import MODEL_CALL
from testkit.goals import approve_everything
from workflows.goal import GoalWorkflow

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT_S = 60
PARK_GOAL = "Explain how durable execution makes AI agents safe to retry"
PARK_BARE_STEPS = 5


@dataclass
class Workers:
    """Worker processes serving one Foreman queue and one bare queue."""

    address: str
    model: str
    log_folder: Path
    foreman_queue: str = field(default_factory=lambda: f"bench-foreman-{uuid.uuid4().hex[:8]}")
    bare_queue: str = field(default_factory=lambda: f"bench-bare-{uuid.uuid4().hex[:8]}")
    processes: list[subprocess.Popen] = field(default_factory=list)

    async def start(self) -> subprocess.Popen:
        """One more worker process on the same queues, once it polls."""
        self.log_folder.mkdir(parents=True, exist_ok=True)
        log = self.log_folder / f"worker-{len(self.processes)}-{uuid.uuid4().hex[:6]}.log"
        with log.open("w") as stderr:
            process = subprocess.Popen(
                [sys.executable, "-m", "bench.worker_process", self.address, self.foreman_queue, self.bare_queue, "--model", self.model],
                cwd=ROOT, stdout=subprocess.PIPE, stderr=stderr, env={**os.environ},
            )
        self.processes.append(process)
        assert process.stdout is not None
        async with asyncio.timeout(READY_TIMEOUT_S):
            line = await asyncio.to_thread(process.stdout.readline)
        if line.strip() != b"ready":
            raise RuntimeError(f"the worker process did not start (see {log})")
        return process

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait()


@asynccontextmanager
async def worker_processes(client: Client, count: int, log_folder: Path, model: str = "instant") -> AsyncIterator[Workers]:
    """`count` worker processes on fresh queues; every one is killed on exit."""
    workers = Workers(client.service_client.config.target_host, model, log_folder)
    try:
        await asyncio.gather(*(workers.start() for _ in range(count)))
        yield workers
    finally:
        workers.stop()


def _event_s(event) -> float:
    return event.event_time.seconds + event.event_time.nanos / 1e9


async def _in_flight(handle: WorkflowHandle, activity_type: str) -> bool:
    pending = (await handle.describe()).raw_description.pending_activities
    return any(a.activity_type.name == activity_type and a.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED for a in pending)


@dataclass
class Recovery:
    ready_s: float  # kill -> new worker process polling
    next_activity_s: float  # kill -> next ACTIVITY_TASK_COMPLETED (event time)
    completed_s: float  # kill -> the goal's result at the client
    retry_started_s: float  # kill -> the retried call's start (event time)
    attempt: int
    status: str


async def recovery(client: Client, folder: Path, log_folder: Path) -> Recovery:
    playbook = steps_playbook(folder, "bench-chain3", 3, chained=True)
    async with worker_processes(client, 1, log_folder, model="slow") as workers:
        handle = await client.start_workflow(
            GoalWorkflow.run, GoalRequest(goal="Benchmark recovery", playbook=playbook),
            id=f"bench-recovery-{uuid.uuid4().hex[:8]}", task_queue=workers.foreman_queue,
        )
        async with asyncio.timeout(60):
            while not await _in_flight(handle, "call_model"):
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # the model call is now mid-way
        killed = time.time()
        workers.processes[0].send_signal(signal.SIGKILL)
        workers.processes[0].wait()
        await workers.start()
        ready = time.time() - killed
        async with asyncio.timeout(120):
            next_activity = None
            while next_activity is None:
                history = await handle.fetch_history()
                done = [_event_s(e) for e in history.events
                        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED and _event_s(e) > killed]
                next_activity = min(done) - killed if done else None
                await asyncio.sleep(0.05)
            result = await handle.result()
            completed = time.time() - killed
        history = await handle.fetch_history()
    retried = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
               and e.activity_task_started_event_attributes.attempt > 1]
    return Recovery(ready, next_activity, completed, _event_s(retried[0]) - killed if retried else float("nan"),
                    retried[0].activity_task_started_event_attributes.attempt if retried else 1, result.status.value)


def report_recovery(report: Report, results, r: Recovery) -> None:
    heartbeat = MODEL_CALL.heartbeat_timeout.total_seconds() if MODEL_CALL.heartbeat_timeout else float("nan")
    first_retry = MODEL_CALL.retry_policy.initial_interval.total_seconds()
    target = heartbeat + 1
    report.add("11", "kill -> new worker process ready (python start, imports, connect)", f"{r.ready_s:.2f} s")
    report.add("11", f"kill -> retried call_model started (attempt {r.attempt})", f"{r.retry_started_s:.2f} s",
               f"{heartbeat:g} s heartbeat timeout + {first_retry:g} s first retry interval")
    report.add("11", "kill -> next completed activity", f"{r.next_activity_s:.2f} s",
               f"{target:g} s target (heartbeat timeout + 1 s)", f"{r.next_activity_s / target:.2f}x the target")
    report.add("11", f"kill -> goal result ({r.status})", f"{r.completed_s:.2f} s")
    results.put("recovery_s", {"worker_ready": round(r.ready_s, 3), "retry_started": round(r.retry_started_s, 3),
                               "next_completed_activity": round(r.next_activity_s, 3), "goal_completed": round(r.completed_s, 3),
                               "heartbeat_timeout": heartbeat, "retry_initial_interval": first_retry, "status": r.status})


def rss_mb(process: subprocess.Popen) -> float:
    for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc (Linux only)")


async def _park_foreman(client: Client, queue: str, count: int) -> list[WorkflowHandle]:
    request = GoalRequest(goal=PARK_GOAL, playbook="research-brief")
    handles = await asyncio.gather(*(client.start_workflow(
        GoalWorkflow.run, request, id=f"bench-parked-{uuid.uuid4().hex[:10]}", task_queue=queue) for _ in range(count)))
    for handle in handles:  # parked: its publish approval is pending
        while not await handle.query(PENDING_QUERY, result_type=list[ApprovalRequest]):
            await asyncio.sleep(0.1)
    return list(handles)


async def _park_bare(client: Client, queue: str, count: int) -> list[WorkflowHandle]:
    handles = await asyncio.gather(*(client.start_workflow(
        BareStepsWorkflow.run, BareRequest(steps=PARK_BARE_STEPS, park=True), id=f"bench-parked-bare-{uuid.uuid4().hex[:10]}",
        task_queue=queue) for _ in range(count)))
    for handle in handles:  # parked: all its activities completed
        while not await handle.query(BareStepsWorkflow.parked):
            await asyncio.sleep(0.1)
    return list(handles)


async def _warm_foreman(client: Client, queue: str) -> None:
    """One research-brief goal to its end (approved at once), so every code path is imported before RSS 0."""
    handle = await client.start_workflow(GoalWorkflow.run, GoalRequest(goal=PARK_GOAL, playbook="research-brief"),
                                         id=f"bench-warm-{uuid.uuid4().hex[:8]}", task_queue=queue)
    approver = asyncio.create_task(approve_everything(handle, ("bob", "carol")))
    try:
        result: GoalResult = await handle.result()
    finally:
        approver.cancel()
    if result.status is not GoalStatus.COMPLETED:
        raise RuntimeError(f"the warm-up goal ended {result.status.value}: {result.error}")


async def memory(client: Client, log_folder: Path, counts: tuple[int, ...]) -> dict[str, list[tuple[int, float]]]:
    """{"foreman"|"bare_temporal": [(parked goals, RSS MB)]}, each in a fresh worker process."""
    out: dict[str, list[tuple[int, float]]] = {}
    for kind in ("bare_temporal", "foreman"):
        async with worker_processes(client, 1, log_folder) as workers:
            process = workers.processes[0]
            if kind == "foreman":
                await _warm_foreman(client, workers.foreman_queue)
            else:
                await client.execute_workflow(BareStepsWorkflow.run, BareRequest(steps=PARK_BARE_STEPS), id=f"bench-warm-{uuid.uuid4().hex[:8]}",
                                              task_queue=workers.bare_queue)
            parked, rows = 0, []
            for count in counts:
                if count > parked:
                    if kind == "foreman":
                        await _park_foreman(client, workers.foreman_queue, count - parked)
                    else:
                        await _park_bare(client, workers.bare_queue, count - parked)
                    parked = count
                await asyncio.sleep(1.0)  # let the worker settle (caches, freed buffers)
                rows.append((count, rss_mb(process)))
            out[kind] = rows
    return out


def report_memory(report: Report, results, rows: dict[str, list[tuple[int, float]]]) -> None:
    per_goal: dict[str, dict[str, float]] = {}
    for kind, label in (("foreman", "Foreman, research-brief waiting for approval"), ("bare_temporal", "bare Temporal, parked on a signal")):
        base = rows[kind][0][1]
        per_goal[kind] = {}
        for count, rss in rows[kind]:
            per = (rss - base) / count if count else 0.0
            per_goal[kind][str(count)] = round(per, 4)
            report.add("12", f"worker RSS, {label}, {count} parked", f"{rss:,.1f} MB",
                       f"{per * 1024:,.0f} KB per goal over 0" if count else "")
    top = max(c for c, _ in rows["foreman"])
    f, b = per_goal["foreman"][str(top)], per_goal["bare_temporal"][str(top)]
    report.add("12", f"MB per parked goal at {top}", f"{f:.3f} MB", f"{b:.3f} MB bare Temporal", f"{f / b:.1f}x" if b > 0 else "")
    results.put("memory", {"rss_mb": {k: [[c, round(v, 1)] for c, v in r] for k, r in rows.items()}, "mb_per_goal": per_goal})
