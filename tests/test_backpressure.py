"""Backpressure against a real crowded provider: an OpenAI-compatible server on 127.0.0.1 that answers 429 with
Retry-After above N concurrent requests (`CrowdedProvider`), called through the real `openai` adapter.

The worker's limiter (concurrency, requests per minute, the pause after a 429, a long wait handed back to Temporal, the
cap on endpoints) is tested on its own; then bursts of goals on the real dev server with `call_model` on its own task
queue (model workers under the server-enforced `max_task_queue_activities_per_second`); and a goal whose model or
planner calls cannot be served ends at its deadline with a typed reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

import settings
from activities.providers import limits
from activities.providers.base import complete
from activities.providers.limits import limiter
from contracts.errors import ErrorType
from contracts.goal import Budget, GoalRequest, GoalResult, GoalStatus, ModelRouting
from contracts.llm import CALL_MODEL_ACTIVITY, ChatMessage, ChatRole, ModelRequest, ModelRole, ModelSpec, Provider
from contracts.plan import PLAN_GOAL_ACTIVITY
from core.options import MODEL_CALL, MODEL_CALL_PATIENCE
from settings import ResolvedModel
from tests.helpers import completion, replay, single_step_playbook
from tests.llama_server import CrowdedProvider, Reply, ScriptedServer
from worker import all_activities, build_model_worker, build_worker
from workflows.goal import GoalWorkflow


def resolved(base_url: str) -> ResolvedModel:
    return ResolvedModel(
        provider=Provider.OPENAI, model="crowded", base_url=base_url + "/v1", api_key=None, temperature=0.0, max_tokens=16,
        input_usd_per_mtok=0.0, output_usd_per_mtok=0.0, timeout_seconds=30.0,
    )


def ask(text: str) -> ModelRequest:
    return ModelRequest(role=ModelRole.EXECUTOR, messages=[ChatMessage(role=ChatRole.USER, content=text)])


async def burst(model: ResolvedModel, count: int) -> list[BaseException | object]:
    return await asyncio.gather(*(complete(ask(f"call {i}"), model) for i in range(count)), return_exceptions=True)


# --- the worker's limiter -------------------------------------------------------------------------


async def test_concurrency_limit_keeps_a_burst_under_the_providers(monkeypatch: pytest.MonkeyPatch) -> None:
    provider = CrowdedProvider(limit=2, seconds=0.2)
    with ScriptedServer(provider) as server:
        unlimited = await burst(resolved(server.base_url), 8)  # the provider is real: a burst gets 429s
        storm = provider.rejected
        monkeypatch.setenv("FOREMAN_OPENAI_MAX_CONCURRENT", "2")
        before = provider.rejected
        limited = await burst(resolved(server.base_url), 8)
    print(f"\n8 calls at once, provider limit 2: {storm} x 429 without a limit, {provider.rejected - before} with it")
    assert storm > 0 and any(isinstance(r, ApplicationError) and r.type == ErrorType.MODEL_RATE_LIMITED for r in unlimited)
    assert provider.rejected == before and not any(isinstance(r, BaseException) for r in limited)
    assert provider.peak == 2


async def test_requests_per_minute_spreads_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOREMAN_OPENAI_REQUESTS_PER_MINUTE", "240")  # 4 a second, at most a second's worth at once
    provider = CrowdedProvider(limit=100, seconds=0.0)
    with ScriptedServer(provider) as server:
        started = time.monotonic()  # the bucket is built (full: 4 tokens) on the first call
        results = await burst(resolved(server.base_url), 8)
    assert not any(isinstance(r, BaseException) for r in results)
    arrivals = sorted(t - started for times in provider.times.values() for t, _ in times)
    # The 5th call waits for a token a quarter second after the bucket was full, the 6th half a second, ...
    for index in range(4, 8):
        assert arrivals[index] >= (index - 3) * 0.25 - 0.01, arrivals


async def test_a_429_pauses_the_endpoint_for_its_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    limited = Reply(429, {"error": {"message": "slow down"}}, {"Retry-After": "1"})
    provider, calls = CrowdedProvider(limit=100, seconds=0.0), itertools.count()
    with ScriptedServer(lambda request: limited if next(calls) == 0 else provider(request)) as server:  # only the first
        model = resolved(server.base_url)
        started = time.monotonic()
        with pytest.raises(ApplicationError) as caught:
            await complete(ask("first"), model)
        await complete(ask("second"), model)  # this worker waits out the pause the provider asked for
        waited = time.monotonic() - started
    assert caught.value.type == ErrorType.MODEL_RATE_LIMITED and caught.value.next_retry_delay == timedelta(seconds=1)
    assert waited >= 0.95 and limiter(model).rate_limited == 1


async def test_a_long_wait_fails_the_attempt_at_once_timed_to_the_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    """In an activity with attempts to spare, a call the endpoint holds longer than WAIT_IN_PLACE_SECONDS gives its slot
    back: a retryable ModelDeferred at once, `next_retry_delay` the wait. Its last attempt waits in place instead."""
    monkeypatch.setattr(limits, "WAIT_IN_PLACE_SECONDS", 0.5)
    provider = CrowdedProvider(limit=100, seconds=0.0)
    with ScriptedServer(provider) as server:
        model = resolved(server.base_url)
        limiter(model).pause(30)  # as after a 429 asking for 30 s
        env = ActivityEnvironment()
        started = time.monotonic()
        with pytest.raises(ApplicationError) as caught:
            await env.run(complete, ask("held"), model)
        returned = time.monotonic() - started
        deferred = caught.value
        model = resolved(server.base_url + "/last")  # another endpoint, held 1 s, on an activity's last attempt
        limiter(model).pause(1)
        env.info = dataclasses.replace(env.info, attempt=3, retry_policy=RetryPolicy(maximum_attempts=3))
        waited = time.monotonic()
        await env.run(complete, ask("last attempt"), model)
        waited = time.monotonic() - waited
    print(f"\nheld 30 s: the attempt returned in {returned * 1000:.0f} ms; a last attempt held 1 s waited {waited:.2f} s")
    assert deferred.type == ErrorType.MODEL_DEFERRED and not deferred.non_retryable
    assert timedelta(seconds=29) < deferred.next_retry_delay <= timedelta(seconds=30)
    assert returned < 0.2 and provider.served == 1  # only the last attempt reached the provider
    assert waited >= 0.95


async def test_a_slow_request_rate_defers_a_call_for_its_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """6 requests a minute: the first call takes the only token; the next, in an activity, would wait 10 s for one."""
    monkeypatch.setenv("FOREMAN_OPENAI_REQUESTS_PER_MINUTE", "6")
    provider = CrowdedProvider(limit=100, seconds=0.0)
    with ScriptedServer(provider) as server:
        model = resolved(server.base_url)
        await complete(ask("first"), model)
        with pytest.raises(ApplicationError) as caught:
            await ActivityEnvironment().run(complete, ask("second"), model)
    assert caught.value.type == ErrorType.MODEL_DEFERRED
    assert timedelta(seconds=9) < caught.value.next_retry_delay <= timedelta(seconds=10) and provider.served == 1


async def test_a_call_kept_from_a_concurrency_slot_defers_instead_of_holding_its_activity_slot(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """MAX_CONCURRENT=1 and a call in flight for 0.8 s: another, in an activity with attempts to spare, waits
    WAIT_IN_PLACE_SECONDS for the slot, then fails retryable (ModelDeferred) with a jittered `next_retry_delay` of one to
    two thresholds, having sent nothing. Its last attempt waits in place for the slot instead."""
    monkeypatch.setattr(limits, "WAIT_IN_PLACE_SECONDS", 0.3)
    monkeypatch.setenv("FOREMAN_OPENAI_MAX_CONCURRENT", "1")
    provider = CrowdedProvider(limit=100, seconds=0.8)
    with ScriptedServer(provider) as server:
        model = resolved(server.base_url)
        async with asyncio.timeout(10):
            busy = asyncio.create_task(complete(ask("in flight"), model))  # a direct call: never deferred
            while not provider.in_flight:
                await asyncio.sleep(0.01)
            started = time.monotonic()
            with pytest.raises(ApplicationError) as caught:
                await ActivityEnvironment().run(complete, ask("kept out"), model)
            returned = time.monotonic() - started
            served_meanwhile = provider.served
            last = ActivityEnvironment()
            last.info = dataclasses.replace(last.info, attempt=3, retry_policy=RetryPolicy(maximum_attempts=3))
            await last.run(complete, ask("last attempt"), model)
            await busy
    deferred = caught.value
    print(f"\nslot busy: the attempt returned after {returned * 1000:.0f} ms, next attempt in {deferred.next_retry_delay}")
    assert deferred.type == ErrorType.MODEL_DEFERRED and not deferred.non_retryable
    assert timedelta(seconds=0.3) <= deferred.next_retry_delay <= timedelta(seconds=0.6)
    assert 0.3 <= returned < 0.6 and served_meanwhile == 0  # gave up at the threshold, not when the slot freed
    assert provider.served == 2 and provider.peak == 1  # the call in flight and the last attempt, one at a time
    assert "kept out" not in provider.times  # the deferred attempt never reached the provider


async def test_a_deferred_attempt_keeps_no_concurrency_slot_and_spends_no_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """MAX_CONCURRENT=1 and 60 requests a minute (one token, back a second after it is spent). A call deferred for the
    slot gives nothing away: as soon as the call in flight ends, the next activity call goes straight through. A slot
    kept would defer it for concurrency; a token spent, or a place in the queue kept, would defer it for the rate."""
    monkeypatch.setattr(limits, "WAIT_IN_PLACE_SECONDS", 0.2)
    monkeypatch.setenv("FOREMAN_OPENAI_MAX_CONCURRENT", "1")
    monkeypatch.setenv("FOREMAN_OPENAI_REQUESTS_PER_MINUTE", "60")
    provider = CrowdedProvider(limit=100, seconds=1.6)
    with ScriptedServer(provider) as server:
        model = resolved(server.base_url)
        async with asyncio.timeout(10):
            busy = asyncio.create_task(complete(ask("in flight"), model))  # the slot and the token, at 0 s
            await asyncio.sleep(1.1)  # the token is back; the slot is not
            with pytest.raises(ApplicationError) as caught:
                await ActivityEnvironment().run(complete, ask("deferred"), model)
            await busy
            provider.seconds = 0.0
            started = time.monotonic()
            await ActivityEnvironment().run(complete, ask("next"), model)
            took = time.monotonic() - started
    assert caught.value.type == ErrorType.MODEL_DEFERRED and "concurrency slot" in caught.value.message
    assert took < 0.15 and provider.served == 2 and "deferred" not in provider.times


async def test_the_limiters_kept_are_capped() -> None:
    """A stream of request-named endpoints keeps at most MAX_LIMITERS limiters, the least recently used let go first."""
    kept = limiter(resolved("http://kept.example"))
    for number in range(limits.MAX_LIMITERS + 100):
        limiter(resolved(f"http://model-{number}.example"))
        if number % 50 == 0:
            assert limiter(resolved("http://kept.example")) is kept  # in use: never the least recently used
    per_loop = limits._limiters[asyncio.get_running_loop()]
    assert len(per_loop) == limits.MAX_LIMITERS
    assert limiter(resolved("http://kept.example")) is kept
    assert ("openai", "http://model-0.example/v1", settings.provider_limits(Provider.OPENAI)) not in per_loop


async def test_bad_limit_settings_are_a_typed_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOREMAN_OPENAI_MAX_CONCURRENT", "none")
    with pytest.raises(ApplicationError) as caught:
        await complete(ask("hi"), resolved("http://127.0.0.1:9"))
    assert caught.value.type == ErrorType.MODEL_CONFIG and caught.value.non_retryable
    assert "FOREMAN_OPENAI_MAX_CONCURRENT" in caught.value.message


def test_model_call_timeouts_follow_the_goals_deadline() -> None:
    """Attempts are unlimited, time is not: 30 minutes, or what is left of the goal's wall-clock budget."""
    assert MODEL_CALL.retry_policy.maximum_attempts == 0 and MODEL_CALL.schedule_to_close_timeout == MODEL_CALL_PATIENCE
    assert MODEL_CALL.within(None) is MODEL_CALL
    cut = MODEL_CALL.within(timedelta(seconds=12)).kwargs()
    assert cut["schedule_to_close_timeout"] == cut["schedule_to_start_timeout"] == timedelta(seconds=12)
    assert MODEL_CALL.within(timedelta(hours=2)).schedule_to_close_timeout == MODEL_CALL_PATIENCE
    assert MODEL_CALL.within(timedelta(seconds=-3)).schedule_to_close_timeout == timedelta(seconds=1)


# --- bursts of goals on the dev server ------------------------------------------------------------


def crowded_models(monkeypatch: pytest.MonkeyPatch, server: ScriptedServer, model_queue: str) -> None:
    monkeypatch.setenv("FOREMAN_MODEL_PROVIDER", "openai")
    monkeypatch.setenv("FOREMAN_MODEL_BASE_URL", server.base_url + "/v1")
    monkeypatch.setenv("FOREMAN_MODEL_NAME", "crowded")
    monkeypatch.setenv("FOREMAN_MODEL_TASK_QUEUE", model_queue)


async def run_burst(client: Client, task_queue: str, playbook: str, goals: int, request: dict | None = None) -> list[GoalResult]:
    handles: list[WorkflowHandle] = await asyncio.gather(*(
        client.start_workflow(
            GoalWorkflow.run, GoalRequest(goal=f"Burst goal {i}", playbook=playbook, cache=False, **(request or {})),
            id=f"burst-{uuid.uuid4().hex[:10]}", task_queue=task_queue,
        )
        for i in range(goals)
    ))
    async with asyncio.timeout(90):
        results = await asyncio.gather(*(h.result() for h in handles))
    for handle in handles[:3]:  # a few histories replay (each goal's shape is the same)
        await replay(await handle.fetch_history())
    return results


@contextlib.contextmanager
def model_worker_process(address: str, model_queue: str, log: Path, max_activities: int) -> Iterator[None]:
    """`worker.py --models` in its own process (its own limiter), with this test's environment, once it polls."""
    with log.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "worker.py", "--models", "--address", address, "--max-activities", str(max_activities)],
            cwd=settings.PROJECT_ROOT, stdout=sink, stderr=subprocess.STDOUT, env={**os.environ},
        )
    try:
        deadline = time.monotonic() + 30
        while "worker polling" not in log.read_text():
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield
    finally:
        process.terminate()
        process.wait(timeout=10)


async def test_fifty_goals_queue_instead_of_storming(
    client: Client, task_queue: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """50 goals at once against a provider that allows 4 concurrent requests: two model workers (this process and
    another, each with 4 activity slots and FOREMAN_OPENAI_MAX_CONCURRENT=2: the provider's 4 shared out) poll the model
    queue, which starts at most 40 calls a second across both. All goals complete; the provider sees no storm."""
    provider = CrowdedProvider(limit=4, seconds=0.05, retry_after=1.0)
    model_queue = f"{task_queue}-models"
    playbook = single_step_playbook(tmp_path, monkeypatch, tools=[])
    with ScriptedServer(provider) as server:
        crowded_models(monkeypatch, server, model_queue)
        monkeypatch.setenv("FOREMAN_OPENAI_MAX_CONCURRENT", "2")
        address = client.service_client.config.target_host
        with model_worker_process(address, model_queue, tmp_path / "model-worker.log", max_activities=4):
            main = build_worker(client, task_queue, activities=all_activities())  # no call_model here: the model queue has it
            models = build_model_worker(client, model_queue, max_concurrent_activities=4, activities_per_second=40)
            started = time.monotonic()
            async with main, models:
                results = await run_burst(client, task_queue, playbook, 50)
            elapsed = time.monotonic() - started
        history = await client.get_workflow_handle(results[0].workflow_id).fetch_history()
    print(f"\n50 goals: {elapsed:.1f} s, provider saw {provider.served + provider.rejected} requests, "
          f"{provider.rejected} x 429, peak {provider.peak} concurrent")
    assert [r.status for r in results] == [GoalStatus.COMPLETED] * 50, [r.error for r in results if r.error]
    assert provider.served == 50 and provider.rejected <= 3 and provider.peak <= 4
    [scheduled] = [e.activity_task_scheduled_event_attributes for e in history.events
                   if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
                   and e.activity_task_scheduled_event_attributes.activity_type.name == CALL_MODEL_ACTIVITY]
    assert scheduled.task_queue.name == model_queue  # routed from the plan, i.e. from history
    assert scheduled.schedule_to_close_timeout.ToTimedelta() == MODEL_CALL_PATIENCE  # no deadline: the default patience


async def test_a_429_storm_spends_time_not_attempts(
    client: Client, task_queue: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without a per-worker limit, 8 activity slots against a provider allowing 2: many 429s, yet every goal completes,
    each retry no sooner than the Retry-After asked."""
    provider = CrowdedProvider(limit=2, seconds=0.1, retry_after=0.5)
    model_queue = f"{task_queue}-models"
    playbook = single_step_playbook(tmp_path, monkeypatch, tools=[])
    with ScriptedServer(provider) as server:
        crowded_models(monkeypatch, server, model_queue)
        async with build_worker(client, task_queue, activities=all_activities()), \
                build_model_worker(client, model_queue, max_concurrent_activities=8):
            results = await run_burst(client, task_queue, playbook, 16)
    print(f"\n16 goals, no limit: {provider.rejected} x 429 for {provider.served} answers")
    assert [r.status for r in results] == [GoalStatus.COMPLETED] * 16, [r.error for r in results if r.error]
    assert provider.rejected > 0 and provider.served == 16
    for times in provider.times.values():
        for (at, status), (then, _) in zip(times, times[1:]):
            assert status == 429 and then - at >= 0.5 - 0.02, times  # only a 429 is followed by another attempt


async def test_a_model_call_queued_past_the_deadline_ends_the_goal(
    client: Client, task_queue: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No model worker polls the model queue: the call waits there until the goal's wall-clock budget is spent, then the
    goal ends as over budget with the reason (not after the 30 minutes a call may otherwise take)."""
    playbook = single_step_playbook(tmp_path, monkeypatch, tools=[])
    monkeypatch.setenv("FOREMAN_MODEL_TASK_QUEUE", f"{task_queue}-nobody")
    started = time.monotonic()
    async with build_worker(client, task_queue, activities=all_activities()):
        [result] = await run_burst(client, task_queue, playbook, 1, {"budget": Budget(max_wall_seconds=2)})
    elapsed = time.monotonic() - started
    assert result.status is GoalStatus.BUDGET_EXCEEDED and result.error == "wall-clock budget of 2 s used up"
    assert result.steps[0].error == "BudgetExceeded: wall-clock budget of 2 s used up"
    assert 2 <= elapsed < 15
    history = await client.get_workflow_handle(result.workflow_id).fetch_history()
    assert any(e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT for e in history.events)


async def test_a_retry_that_would_land_past_the_deadline_ends_the_goal(
    client: Client, task_queue: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A provider asks for 30 s before the next attempt; the goal has 5 s: the server gives the call up at once (its
    next attempt would pass the deadline-cut timeout), and the goal ends over budget, not with a failed step."""
    provider = CrowdedProvider(limit=0, retry_after=30.0)  # every request is turned away
    model_queue = f"{task_queue}-models"
    playbook = single_step_playbook(tmp_path, monkeypatch, tools=[])
    with ScriptedServer(provider) as server:
        crowded_models(monkeypatch, server, model_queue)
        started = time.monotonic()
        async with build_worker(client, task_queue, activities=all_activities()), build_model_worker(client, model_queue):
            [result] = await run_burst(client, task_queue, playbook, 1, {"budget": Budget(max_wall_seconds=5)})
        elapsed = time.monotonic() - started
    assert result.status is GoalStatus.BUDGET_EXCEEDED, (result.status, result.error)
    assert result.error == "wall-clock budget of 5 s would be passed by the call's next attempt"
    assert provider.rejected == 1 and elapsed < 5  # one 429, and no waiting out the 30 s


async def test_a_held_call_is_retried_when_its_turn_comes_not_slept_in_a_slot(
    client: Client, task_queue: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A 429 asks for 3 s. Another goal's call arriving meanwhile does not sleep in its activity slot: the attempt fails
    at once (ModelDeferred, `next_retry_delay` the rest of the pause) and Temporal starts the next attempt when the pause
    is over, as the history shows; its first attempt never reached the provider."""
    monkeypatch.setattr(limits, "WAIT_IN_PLACE_SECONDS", 1.0)  # the real bound (5 s) would need a longer pause
    limited = Reply(429, {"error": {"message": "slow down", "type": "requests"}}, {"Retry-After": "3"})
    provider, calls = CrowdedProvider(limit=100, seconds=0.0), itertools.count()
    model_queue = f"{task_queue}-models"
    playbook = single_step_playbook(tmp_path, monkeypatch, tools=[])
    with ScriptedServer(lambda request: limited if next(calls) == 0 else provider(request)) as server:
        crowded_models(monkeypatch, server, model_queue)
        async with build_worker(client, task_queue, activities=all_activities()), \
                build_model_worker(client, model_queue, max_concurrent_activities=1):

            async def start(name: str) -> WorkflowHandle:
                return await client.start_workflow(
                    GoalWorkflow.run, GoalRequest(goal=name, playbook=playbook, cache=False),
                    id=f"held-{uuid.uuid4().hex[:10]}", task_queue=task_queue)

            async with asyncio.timeout(30):
                first = await start("First goal")
                while not server.requests:  # its call got the 429: the endpoint is paused for 3 s
                    await asyncio.sleep(0.02)
                paused_at = time.monotonic()
                second = await start("Second goal")
                while True:  # the second goal's call is back in Temporal's hands, waiting for its next attempt
                    calls_pending = list((await second.describe()).raw_description.pending_activities)
                    if calls_pending and calls_pending[0].attempt == 2:
                        break
                    await asyncio.sleep(0.02)
                handed_back = time.monotonic() - paused_at
                assert calls_pending[0].state == PendingActivityState.PENDING_ACTIVITY_STATE_SCHEDULED
                results = [await first.result(), await second.result()]
        history = await second.fetch_history()
    assert [r.status for r in results] == [GoalStatus.COMPLETED] * 2, [r.error for r in results]
    assert handed_back < 1.0  # the attempt returned at once, not after the pause (or the 1 s it may wait in place)
    assert len(server.requests) == 3  # the 429, then each goal's call once: the deferred attempt sent nothing
    scheduled = next(e for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
                     and e.activity_task_scheduled_event_attributes.activity_type.name == CALL_MODEL_ACTIVITY)
    started = next(e for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
                   and e.activity_task_started_event_attributes.scheduled_event_id == scheduled.event_id)
    attributes = started.activity_task_started_event_attributes
    deferred = attributes.last_failure.application_failure_info
    delay = deferred.next_retry_delay.ToTimedelta().total_seconds()
    spacing = (started.event_time.ToDatetime() - scheduled.event_time.ToDatetime()).total_seconds()
    print(f"\nheld call: handed back after {handed_back:.2f} s; next attempt asked for in {delay:.2f} s, "
          f"started {spacing:.2f} s after it was scheduled")
    assert attributes.attempt == 2 and deferred.type == ErrorType.MODEL_DEFERRED
    assert 1.0 < delay <= 3.0 and spacing >= delay - 0.05  # spaced as asked: the rest of the provider's pause
    await replay(history)


@pytest.mark.parametrize("reply", [
    Reply(body=completion("{}").body, delay_seconds=8.0),  # answers long after the deadline
    Reply(429, {"error": {"message": "slow down", "type": "requests"}}, {"Retry-After": "30"}),  # asks for 30 s
], ids=["slow", "rate-limited"])
async def test_a_planner_call_cut_off_by_the_deadline_ends_the_goal(client: Client, task_queue: str, reply: Reply) -> None:
    """An LLM-planned goal with 2 s to live and a planner server that cannot answer in time: the planner call ends at
    the deadline (or at once, when its next attempt would pass it) and the goal ends over budget with the reason;
    nothing is left running."""
    with ScriptedServer(lambda request: reply) as server:
        spec = ModelSpec(provider=Provider.OPENAI, model="planner", base_url=server.base_url, max_tokens=256)
        request = GoalRequest(goal="Compare retries and idempotency for tool calls", models=ModelRouting(planner=spec),
                              budget=Budget(max_wall_seconds=2), cache=False)
        started = time.monotonic()
        async with build_worker(client, task_queue, activities=all_activities()):
            handle = await client.start_workflow(GoalWorkflow.run, request, id=f"plan-cut-{uuid.uuid4().hex[:10]}",
                                                 task_queue=task_queue)
            async with asyncio.timeout(15):
                result = await handle.result()
            elapsed = time.monotonic() - started
            description = await handle.describe()
        history = await handle.fetch_history()
    print(f"\nplanner {reply.status}: {result.status.value} after {elapsed:.1f} s: {result.error}")
    assert result.status is GoalStatus.BUDGET_EXCEEDED and result.plan is None
    assert result.error in ("wall-clock budget of 2 s used up", "wall-clock budget of 2 s would be passed by the call's next attempt")
    assert elapsed < 6 and len(server.requests) == 1  # no attempt after the deadline
    assert description.status is WorkflowExecutionStatus.COMPLETED
    assert not description.raw_description.pending_activities
    [scheduled] = [e.activity_task_scheduled_event_attributes for e in history.events
                   if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED]
    assert scheduled.activity_type.name == PLAN_GOAL_ACTIVITY
    assert scheduled.schedule_to_close_timeout.ToTimedelta() <= timedelta(seconds=2)
    await replay(history)
