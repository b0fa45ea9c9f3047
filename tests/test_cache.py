"""The model-call cache: the `call_model` activity against a real local OpenAI-protocol server (what is
cached, what is not), and whole goals on the real dev server (a second identical goal answered from the
cache: fewer provider calls, the same result; none with `cache: false`). The stores themselves, SQLite and
PostgreSQL, are tested in test_sql_stores.py."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from temporalio.client import Client
from temporalio.testing import ActivityEnvironment

from activities.model_call import ModelCalls
from contracts.goal import GoalRequest, GoalStatus, ModelRouting
from contracts.llm import CacheUse, ChatMessage, ChatRole, ModelRequest, ModelRole, ModelSpec, Provider
from stores import from_settings
from stores.cache_sqlite import SqliteCallCache
from tests.helpers import run_goal
from tests.llama_server import Reply, ScriptedServer
from worker import all_activities


def completion(content: str) -> Reply:
    return Reply(body={
        "id": "c", "object": "chat.completion", "model": "served-model",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
    })


ANSWER = "Durable execution records every step, so a crashed agent resumes instead of starting over [source: a.md]."


async def test_what_the_activity_caches(tmp_path: Path) -> None:
    calls = ModelCalls(SqliteCallCache(tmp_path / "cache.sqlite", 60)).call_model
    env = ActivityEnvironment()
    with ScriptedServer(lambda _: completion("hello")) as server:
        def request(temperature: float = 0.0, cache: CacheUse = CacheUse.DETERMINISTIC, text: str = "hi") -> ModelRequest:
            spec = ModelSpec(provider=Provider.OPENAI, model="m", base_url=server.base_url, temperature=temperature)
            return ModelRequest(role=ModelRole.EXECUTOR, spec=spec, messages=[ChatMessage(role=ChatRole.USER, content=text)], cache=cache)

        first = await env.run(calls, request())
        again = await env.run(calls, request())
        assert not first.cached and again.cached and len(server.requests) == 1
        assert again.message.content == "hello" and again.usage.prompt_tokens == 0 and again.cost_usd == 0.0
        await env.run(calls, request(text="something else"))  # another prompt is another key
        assert len(server.requests) == 2
        warm = [await env.run(calls, request(temperature=0.7)) for _ in range(2)]  # sampled: not cached unless opted in
        assert not any(r.cached for r in warm) and len(server.requests) == 4
        opted = [await env.run(calls, request(temperature=0.7, cache=CacheUse.ON)) for _ in range(2)]
        assert [r.cached for r in opted] == [False, True] and len(server.requests) == 5
        off = [await env.run(calls, request(cache=CacheUse.OFF)) for _ in range(2)]
        assert not any(r.cached for r in off) and len(server.requests) == 7


async def test_a_second_identical_goal_is_answered_from_the_cache(client: Client, task_queue: str) -> None:
    with ScriptedServer(lambda _: completion(ANSWER)) as server:
        models = ModelRouting(executor=ModelSpec(provider=Provider.OPENAI, model="m", base_url=server.base_url))
        request = GoalRequest(goal="Explain durable execution for agents", playbook="research-brief", models=models)
        activities = all_activities(stores=from_settings())
        first, _ = await run_goal(client, task_queue, request, activities)
        second, _ = await run_goal(client, task_queue, request, activities)
        uncached, _ = await run_goal(client, task_queue, request.model_copy(update={"cache": False}), activities)
    assert [g.status for g in (first, second, uncached)] == [GoalStatus.COMPLETED] * 3
    assert (first.usage.model_calls, first.usage.cache_hits.model) == (2, 0)
    assert (second.usage.model_calls, second.usage.cache_hits.model) == (0, 2) and second.usage.cost_usd == 0
    assert second.output == first.output and all(c.cached for s in second.steps for c in s.model_calls)
    assert (uncached.usage.model_calls, uncached.usage.cache_hits.model) == (2, 0)
    assert len(server.requests) == 4  # two goals paid, one did not


def test_a_worker_can_run_without_the_cache(monkeypatch) -> None:
    assert isinstance(from_settings().cache, SqliteCallCache)
    monkeypatch.setenv("FOREMAN_CACHE", "off")
    assert from_settings().cache is None


async def test_a_subagents_cache_hits_count_in_its_parent(client: Client, task_queue: str) -> None:
    """research-team twice: the second run's children and its temperature-0 candidate are answered from the cache
    (the other two candidates sample above temperature 0 and did not opt in)."""
    long_answer = ANSWER + " It keeps a history of every step. Retries are safe when tools are idempotent."
    with ScriptedServer(lambda _: completion(long_answer)) as server:
        models = ModelRouting(executor=ModelSpec(provider=Provider.OPENAI, model="m", base_url=server.base_url))
        request = GoalRequest(goal="Explain how durable execution makes AI agents safe to retry", playbook="research-team", models=models)
        activities = all_activities(stores=from_settings())
        first, _ = await run_goal(client, task_queue, request, activities, approvers=("alice",))
        second, _ = await run_goal(client, task_queue, request, activities, approvers=("alice",))
    assert (first.usage.model_calls, first.usage.cache_hits.model) == (6, 0)
    assert (second.usage.model_calls, second.usage.cache_hits.model) == (2, 4)
    assert second.status is GoalStatus.COMPLETED, second.error


async def test_an_entry_from_another_version_is_a_miss(tmp_path: Path) -> None:
    cache = SqliteCallCache(tmp_path / "cache.sqlite", 60)
    with ScriptedServer(lambda _: completion("fresh")) as server:
        spec = ModelSpec(provider=Provider.OPENAI, model="m", base_url=server.base_url)
        request = ModelRequest(role=ModelRole.EXECUTOR, spec=spec, messages=[ChatMessage(role=ChatRole.USER, content="hi")])
        first = await ActivityEnvironment().run(ModelCalls(cache).call_model, request)
        with sqlite3.connect(tmp_path / "cache.sqlite") as connection:
            connection.execute("UPDATE calls SET value = ?", ('{"not": "a response"}',))
        again = await ActivityEnvironment().run(ModelCalls(cache).call_model, request)
    assert not first.cached and not again.cached and again.message.content == "fresh" and len(server.requests) == 2
