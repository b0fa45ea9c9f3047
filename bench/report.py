"""The printed report of `bench/run.py`: rows of (section, measure, value, baseline, ratio), printed as
they come and as one table at the end, and the number formats every section shares."""

from __future__ import annotations

import asyncio
import os
import time
import traceback
from collections.abc import Awaitable, Callable

SECTION_TIMEOUT_S = 150
GOAL_TIMEOUT_S = 60


class Report:
    """Rows of (section, measure, value, baseline, ratio); printed as they come and as one table at the end."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str, str, str]] = []
        self.skipped: list[str] = []

    def add(self, section: str, measure: str, value: str, baseline: str = "", ratio: str = "") -> None:
        self.rows.append((section, measure, value, baseline, ratio))
        notes = "; ".join(part for part in (f"baseline {baseline}" if baseline else "", ratio) if part)
        extra = f"   ({notes})" if notes else ""
        print(f"  {measure}: {value}{extra}", flush=True)

    def skip(self, section: str, reason: str) -> None:
        self.skipped.append(f"{section}: {reason}")
        print(f"  SKIPPED {section}: {reason}", flush=True)

    def table(self) -> str:
        lines = ["| # | measure | value | baseline | ratio |", "|---|---|---|---|---|"]
        lines += [f"| {' | '.join(row)} |" for row in sorted(self.rows, key=lambda row: int(row[0]))]
        return "\n".join(lines + [f"\nskipped: {s}" for s in self.skipped])


def load() -> str:
    """The 1-minute load average: other processes on a 2-core machine move every number here."""
    return f"load average {os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "load average n/a"


def ms(value: float) -> str:
    return f"{value:,.1f} ms"


async def section(report: Report, name: str, title: str, body: Callable[[], Awaitable[None]],
                  limits: tuple[float, float] = (SECTION_TIMEOUT_S, GOAL_TIMEOUT_S)) -> None:
    """Run one section within its time limit (`limits`: a section, a goal); a failure skips only it."""
    print(f"\n[{name}] {title}", flush=True)
    started = time.perf_counter()
    try:
        async with asyncio.timeout(limits[0]):
            await body()
    except TimeoutError:
        report.skip(name, f"timed out (limits: {limits[1]:.0f} s a goal, {limits[0]:.0f} s a section); see the load average")
    except Exception as exc:  # one broken section must not hide the others' numbers
        report.skip(name, f"{type(exc).__name__}: {exc}")
        traceback.print_exc(limit=3)
    print(f"  ({time.perf_counter() - started:.1f} s)", flush=True)
