"""Chaos, the Temporal server (part of `make test`: about 15 s): a dev server on SQLite SIGKILLed and restarted on the same database file while goals
are in flight, once with a model call running, once with an activity waiting on its retry timer, once with goals
waiting for approval (their expiry timers pending). The worker and client in this process ride it out; every goal
completes and passes `tests/invariants.py`."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

import devserver
from contracts.goal import GoalStatus
from temporal_client import connect
from tests.chaos_kit import (
    Faults, activity_in_flight, approval_waiting, approve_when_told, backing_off_model, chaos_playbooks, retry_timer_pending,
    start_goals, wait_for,
)
from tests.crash_worker import slow_call_model
from tests.invariants import check_invariants, outcome, print_table
from worker import all_activities, build_worker

GOALS = 4


def kill_server(pid: int) -> None:
    os.killpg(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


async def test_server_killed_and_restarted_mid_goal(task_queue: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    playbook = chaos_playbooks(tmp_path, monkeypatch)
    address = f"127.0.0.1:{devserver.free_port()}"
    started = time.monotonic()
    pid = devserver.start(address, ui_port=None)
    faults = Faults()
    try:
        client = await connect(address)
        backed_off = asyncio.Event()  # set once the retry-timer kill has landed: the "back off" goals then go on
        async with build_worker(client, task_queue, activities=all_activities(backing_off_model(slow_call_model, backed_off))):
            handles = [*await start_goals(client, task_queue, playbook, GOALS // 2, "server"),
                       *await start_goals(client, task_queue, playbook, GOALS - GOALS // 2, "server-backoff", "Please back off")]
            told = asyncio.Event()
            approver = asyncio.create_task(approve_when_told(handles, told))
            points = [("in an activity", activity_in_flight("call_model")), ("on a retry timer", retry_timer_pending),
                      ("waiting for approval", approval_waiting)]
            try:
                for name, probe in points:
                    if await wait_for(probe, handles, 60):
                        kill_server(pid)
                        faults.landed.append(name)
                        pid = devserver.start(address, ui_port=None)  # the same SQLite file
                    else:
                        faults.missed.append(name)
                    if name == "on a retry timer":
                        backed_off.set()
                told.set()
                async with asyncio.timeout(240):
                    results = [await h.result() for h in handles]
            finally:
                approver.cancel()
        checked = await check_invariants(client, task_queue)
    finally:
        kill_server(pid)
    print_table([("dev server kills", GOALS, str(faults), outcome(checked), time.monotonic() - started)])
    assert [r.status for r in results] == [GoalStatus.COMPLETED] * GOALS, [r.error for r in results]
    assert not faults.missed, faults
    assert checked.gated_calls == GOALS and checked.keys == 2 * GOALS
