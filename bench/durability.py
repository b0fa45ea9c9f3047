"""Sections 8 to 13 of `bench/run.py`: Foreman against bare Temporal and no durability (8), throughput (9),
replay of a long history (10), recovery after a worker kill (11), memory per parked goal (12) and a profile
(13), at full size or `--quick`. Their figures go into bench/results.json (`bench.results.Results`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from temporalio.client import Client

from bench.baseline import REPLAY_EVENTS, compare, replay_long, report_comparison, report_replay
from bench.processes import memory, recovery, report_memory, report_recovery
from bench.profiling import profile, report_profile, write_profile
from bench.report import GOAL_TIMEOUT_S, Report, section
from bench.results import Results
from bench.throughput import goals_at, report_throughput, throughput

QUICK_SECTIONS = ("8", "9", "10", "11", "12", "13")
DURABILITY_SECTION_TIMEOUT_S = 300  # sections 8 to 13: hundreds of goals in 9 and 12 on a shared machine


@dataclass(frozen=True)
class Sizes:
    """How big sections 8 to 13 run: the full run, or `--quick` (a sanity check of about a minute)."""

    compare_goals: int
    worker_counts: tuple[int, ...]
    concurrencies: tuple[int, ...]
    goals_at: Callable[[int], int]
    replay_events: int
    parked: tuple[int, ...]
    profile_goals: int


FULL = Sizes(15, (1, 2), (1, 10, 50), goals_at, REPLAY_EVENTS, (0, 50, 200), 3)  # 15 of each in 8: a goal's time varies by a third
QUICK = Sizes(2, (1, 2), (1, 10), lambda c: c, 250, (0, 10, 30), 1)


async def durability_sections(client: Client, report: Report, results: Results, names: list[str], sizes: Sizes, steps: int,
                              folder: Path, logs: Path) -> None:
    """Sections 8 to 13 on `client`'s server (bench/run.py starts it with settings.DEV_SERVER_FLAGS, as section 1)."""
    bodies: dict[str, tuple[str, Callable[[], Awaitable[None]]]] = {
        "8": (f"Foreman vs bare Temporal ({steps} sequential no-op activities) vs no durability, interleaved",
              lambda: _then(compare(client, folder, steps, sizes.compare_goals), lambda c: report_comparison(report, results, c))),
        "9": (f"goals per second at concurrency {sizes.concurrencies}, {sizes.worker_counts} worker processes",
              lambda: _then(throughput(client, folder, logs, sizes.worker_counts, sizes.concurrencies, sizes.goals_at),
                            lambda levels: report_throughput(report, results, levels))),
        "10": (f"replay of a ~{sizes.replay_events:,}-event history, Foreman vs bare Temporal",
               lambda: _then(replay_long(client, folder, sizes.replay_events), lambda r: report_replay(report, results, r))),
        "11": ("recovery after a worker SIGKILL (model call in flight)",
               lambda: _then(recovery(client, folder, logs), lambda r: report_recovery(report, results, r))),
        "12": (f"worker memory per parked goal ({sizes.parked})",
               lambda: _then(memory(client, logs, sizes.parked), lambda rows: report_memory(report, results, rows))),
        "13": (f"profile of section 1's goal ({steps} steps, {sizes.profile_goals} goals)",
               lambda: _then(profile(client, folder, steps, sizes.profile_goals),
                             lambda p: report_profile(report, results, p, write_profile(p)))),
    }
    for name in names:
        title, body = bodies[name]
        await section(report, name, title, body, (DURABILITY_SECTION_TIMEOUT_S, GOAL_TIMEOUT_S))


async def _then(measure: Awaitable, show: Callable) -> None:
    show(await measure)


