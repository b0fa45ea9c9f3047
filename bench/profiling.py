"""Section 13: where the worker's time per step goes in section 1's goal (a chained playbook, instant model).

The worker is `worker.build_worker`'s (sandbox on), except that its workflow tasks run on one thread of
our own (`workflow_task_executor`), profiled with cProfile; the event loop thread (activities, the SDK's
Python side of the bridge, and this process's client) has a profiler of its own. Both count each thread's
CPU time (`time.thread_time`), not its waits (for the server, the other thread or the GIL). A warm-up goal runs
before either is enabled. The profiles are grouped by package (tottime: time in the function itself), and
their top entries are written to bench/profile.txt with a `python -X importtime -c "import worker"` summary
(the worker start-up a recovery waits for). cProfile slows what it measures (roughly 1.5 to 2x): read
its shares, not its absolute times; the unprofiled per-step times are section 8's.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from temporalio.client import Client

from bench.bare import like_foreman
from bench.baseline import Comparison, timed_workflow
from bench.report import Report, load, ms
from bench.workloads import instant_model, steps_playbook
from contracts.goal import GoalRequest
from worker import all_activities
from workflows.goal import GoalWorkflow

ROOT = Path(__file__).resolve().parent.parent
PROFILE_PATH = Path(__file__).resolve().parent / "profile.txt"
TOP = 30
# (group, path fragments): the first group whose fragment is in a function's file name takes its time.
GROUPS = (
    ("temporalio workflow sandbox", ("temporalio/worker/workflow_sandbox",)),
    ("temporalio payload conversion and visitor", ("temporalio/converter", "temporalio/bridge/_visitor", "_payload_visitor", "temporalio/contrib/pydantic")),
    ("temporalio workflow instance and worker", ("temporalio/",)),
    ("pydantic", ("pydantic",)),
    ("protobuf", ("google/protobuf",)),
    ("Foreman (workflows/, core/, contracts/, playbooks/)", ("/workflows/", "/core/", "/contracts/", "/playbooks/")),
    ("python stdlib", ("/lib/python3",)),
)


@dataclass
class Profiled:
    steps: int
    goals: int
    workflow_stats: pstats.Stats
    loop_stats: pstats.Stats
    task_run_ms: float  # median workflow task run per step (history) during the profiled goals

    def groups(self, stats: pstats.Stats) -> dict[str, float]:
        """Seconds of tottime per group (built-in functions count as "C built-ins")."""
        out: dict[str, float] = {}
        for (filename, _, name), (_, _, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
            group = "C built-ins" if filename == "~" else next(
                (g for g, parts in GROUPS if any(p in filename for p in parts)), "other (site-packages, bench)")
            out[group] = out.get(group, 0.0) + tottime
        return dict(sorted(out.items(), key=lambda item: -item[1]))

    def per_step_ms(self, stats: pstats.Stats) -> float:
        return stats.total_tt * 1000 / (self.steps * self.goals)  # type: ignore[attr-defined]


async def profile(client: Client, folder: Path, steps: int, goals: int) -> Profiled:
    playbook = steps_playbook(folder, f"bench-chain{steps}", steps, chained=True)
    request = GoalRequest(goal="Benchmark orchestration overhead", playbook=playbook)
    queue = f"bench-profile-{uuid.uuid4().hex[:8]}"
    workflow_profile, loop_profile = cProfile.Profile(time.thread_time), cProfile.Profile(time.thread_time)  # CPU, not waits
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bench-workflow-tasks")
    runs = []
    try:
        async with like_foreman(client, queue, all_activities(instant_model().activity()), workflow_task_executor=executor):
            await timed_workflow(client, GoalWorkflow.run, request, queue, "profile warmup")
            executor.submit(workflow_profile.enable).result()
            loop_profile.enable()
            try:
                for i in range(goals):
                    runs.append((await timed_workflow(client, GoalWorkflow.run, request, queue, f"profile {i}"))[0])
            finally:
                loop_profile.disable()
                executor.submit(workflow_profile.disable).result()
    finally:
        executor.shutdown()
    return Profiled(steps, goals, pstats.Stats(workflow_profile), pstats.Stats(loop_profile),
                    Comparison.phases(runs)["workflow task"])


def _top(stats: pstats.Stats, key: str, count: int) -> str:
    out = io.StringIO()
    stats.stream = out  # type: ignore[attr-defined]
    stats.sort_stats(key).print_stats(count)
    text = out.getvalue()
    return text[text.index("   ncalls"):] if "   ncalls" in text else text


def import_times(count: int = 15) -> str:
    """`python -X importtime -c "import worker"`: the total and the modules with the most cumulative time."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", "import worker"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    rows = []
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "|" in line and "[us]" not in line:
            own, cumulative, module = line.removeprefix("import time:").split("|")
            rows.append((int(cumulative), int(own), module.rstrip()))
    total = next((c for c, _, m in rows if m.strip() == "worker"), 0)
    top = sorted(rows, reverse=True)[:count]  # nested imports are indented under the module that imported them
    lines = [f"import worker: {total / 1000:,.0f} ms cumulative; the modules with the most cumulative import time:"]
    lines += [f"  {c / 1000:8,.1f} ms  (self {o / 1000:6,.1f} ms) {m}" for c, o, m in top]
    return "\n".join(lines)


def write_profile(p: Profiled, path: Path = PROFILE_PATH) -> Path:
    sections = [
        f"Profile of section 1's goal ({p.steps} chained agent steps, instant scripted model), {p.goals} goals after a warm-up;"
        f" {load()}.",
        "cProfile slows what it measures: read shares, not absolute times.",
        f"Workflow task run per step (history, median, profiled): {p.task_run_ms:.1f} ms",
    ]
    for title, stats in (("workflow task thread", p.workflow_stats), ("event loop thread (activities, SDK bridge, bench client)", p.loop_stats)):
        total = stats.total_tt  # type: ignore[attr-defined]
        groups = "\n".join(f"  {s / total:6.1%}  {s * 1000 / (p.steps * p.goals):6.2f} ms/step  {g}" for g, s in p.groups(stats).items())
        sections += [f"\n=== {title}: {p.per_step_ms(stats):.2f} ms of CPU per step under the profiler; by group (tottime) ===\n{groups}",
                     f"\n--- {title}: top {TOP} by cumulative time ---\n{_top(stats, 'cumulative', TOP)}",
                     f"\n--- {title}: top {TOP} by own time (tottime) ---\n{_top(stats, 'tottime', TOP)}"]
    sections.append("\n=== worker start-up ===\n" + import_times())
    path.write_text("\n".join(sections) + "\n")
    return path


def report_profile(report: Report, results, p: Profiled, path: Path) -> None:
    report.add("13", "workflow task run per step while profiled (history, median)", ms(p.task_run_ms))
    summary: dict[str, dict] = {}
    for title, key, stats in (("workflow task thread", "workflow_thread", p.workflow_stats), ("event loop thread", "loop_thread", p.loop_stats)):
        total = stats.total_tt  # type: ignore[attr-defined]
        groups = p.groups(stats)
        report.add("13", f"{title}: CPU per step under cProfile", ms(p.per_step_ms(stats)),
                   "", "; ".join(f"{g} {s / total:.0%}" for g, s in list(groups.items())[:5]))
        summary[key] = {"ms_per_step_profiled": round(p.per_step_ms(stats), 3),
                        "share_by_group": {g: round(s / total, 4) for g, s in groups.items()}}
    top = sorted(p.workflow_stats.stats.items(), key=lambda item: -item[1][3])[:10]  # type: ignore[attr-defined]
    summary["workflow_thread"]["top_cumulative"] = [
        {"function": f"{Path(f).name}:{line}({name})", "cumulative_ms_per_step": round(cum * 1000 / (p.steps * p.goals), 3)}
        for (f, line, name), (_, _, _, cum, _) in top]
    report.add("13", "profile written", str(path), "", "top entries: see the file")
    results.put("profile", {"steps": p.steps, "goals": p.goals, "task_run_ms_per_step": round(p.task_run_ms, 3), **summary})
