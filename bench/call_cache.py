"""The call cache on the embedded model: a playbook's goal run twice with the cache off, then twice on a
fresh, empty cache file (the first run cold, the second warm), through the real `call_model` activity
(`ModelCalls(cache)` on SmolLM2 in process, as `make demo` runs it) and the real tools.

Each playbook gets its own cache files under the bench's FOREMAN_HOME: one for the cache-off worker
(its goals ask `cache=False`; the file should stay empty) and a fresh one for the cold and warm runs.
The same goal text is used for every run. Gated actions are approved at once, as the demo does.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.embedded import local_model
from bench.workloads import Run, timed_goal
from contracts.goal import GoalRequest
from stores import from_settings
from worker import all_activities, build_worker

DEMO_APPROVERS = ("alice",)  # starter.DEMO_APPROVER: an editor in playbooks/policies/default.json
MODES = ("cache off #1", "cache off #2", "cache on, cold", "cache on, warm")


@dataclass
class CacheRun:
    """One goal of the cache benchmark, with what its cache file held after it."""

    playbook: str
    mode: str
    run: Run
    cache_file: Path
    entries: tuple[int, int]  # (model, tool) rows in the worker's cache file after this goal


def cache_entries(path: Path) -> tuple[int, int]:
    """(model, tool) entries in a `SqliteCallCache` file; (0, 0) when it was never written."""
    if not path.exists():
        return 0, 0
    with sqlite3.connect(path) as connection:
        rows = connection.execute(
            "SELECT SUM(key LIKE 'model:%'), SUM(key LIKE 'tool:%') FROM calls"
        ).fetchone()
    return int(rows[0] or 0), int(rows[1] or 0)


async def load_embedded_model() -> str:
    """Load the executor's default local model once (so no goal's wall time includes the load); its file name.
    Raises RuntimeError when the embedded model cannot run here."""
    provider, model = local_model()
    await asyncio.to_thread(provider._model, Path(model.model).expanduser())  # the provider's load-once path
    return Path(model.model).name


async def _goals(client, cache_file: Path, playbook: str, requests: list[tuple[str, GoalRequest]],
                 timeout: float, on_run: Callable[[CacheRun], None]) -> list[CacheRun]:
    """Run `requests` one after another on one worker whose stores (call cache included) are built with
    FOREMAN_CACHE_PATH=`cache_file`: the real `call_model` (`ModelCalls(stores.cache)`) and tools."""
    previous = os.environ.get("FOREMAN_CACHE_PATH")
    os.environ["FOREMAN_CACHE_PATH"] = str(cache_file)
    try:
        stores = from_settings()  # settings are read now: this worker's cache is `cache_file`
    finally:
        if previous is None:
            os.environ.pop("FOREMAN_CACHE_PATH", None)
        else:
            os.environ["FOREMAN_CACHE_PATH"] = previous
    if stores.cache is None:
        raise RuntimeError("the call cache is off on this machine (FOREMAN_CACHE=off)")
    out = []
    queue = f"bench-cache-{uuid.uuid4().hex[:10]}"
    async with build_worker(client, queue, activities=all_activities(stores=stores)):
        for mode, request in requests:
            run = await timed_goal(client, queue, request, f"{playbook} {mode}", timeout, approvers=DEMO_APPROVERS)
            out.append(CacheRun(playbook, mode, run, cache_file, cache_entries(cache_file)))
            on_run(out[-1])  # reported at once: a later goal that times out must not hide this one
    return out


async def cache_runs(client, folder: Path, playbook: str, goal: str, timeout: float,
                     on_run: Callable[[CacheRun], None]) -> list[CacheRun]:
    """Two goals with the cache off, then a cold and a warm goal on a fresh cache file; same goal text."""
    folder.mkdir(parents=True, exist_ok=True)
    off, on = (GoalRequest(goal=goal, playbook=playbook, cache=flag) for flag in (False, True))
    runs = await _goals(client, folder / f"{playbook}-off.sqlite", playbook, [(MODES[0], off), (MODES[1], off)], timeout, on_run)
    fresh = folder / f"{playbook}-on.sqlite"
    fresh.unlink(missing_ok=True)
    runs += await _goals(client, fresh, playbook, [(MODES[2], on), (MODES[3], on)], timeout, on_run)
    return runs
