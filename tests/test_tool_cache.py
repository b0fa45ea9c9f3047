"""The read-only tool cache: the key (tool name and canonical arguments, the stamped flag left out,
versioned), `ToolCache` on the real SQLite `CallCache` (what is stored, what is a miss), and whole goals on
the real dev server with a scripted model (a second identical goal answered from the cache: fewer calls
that reach the network and the corpus index, the same outputs, `usage.cache_hits.tool`; nothing with the
goal's or the step's `cache: false`; a write never; the model's own `cache` flag overwritten)."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import time
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import ActivityEnvironment

import settings
from activities.tools import tool_implementations
from activities.tools.cache import ToolCache, tool_cache_key
from contracts.goal import GoalRequest, GoalResult, GoalStatus
from contracts.llm import ModelRequest
from contracts.tools import HttpFetchArgs, SearchCorpusArgs, ToolResult
from core.policy import action_sha256
from core.tools import TOOLS
from stores import Stores, from_settings
from stores.cache_sqlite import SqliteCallCache
from stores.protocols import CorpusIndex, CorpusSearch
from tests.llama_server import Reply, ScriptedServer
from testkit.goals import write_playbook
from testkit.models import ScriptedModel, answer, call_tool, tool_messages
from tests.fakes import researcher_answers
from tests.helpers import APPROVERS, fake_activities, run_goal, team_playbooks
from worker import all_activities

PAGE = b"Durable execution keeps a history of every step."


def page(_) -> Reply:
    return Reply(body=PAGE)


# --- the key ---------------------------------------------------------------------------------------


def test_the_key_is_the_tool_and_its_canonical_arguments_without_the_stamped_flag() -> None:
    url = "http://127.0.0.1/a"
    key = tool_cache_key("http_fetch", HttpFetchArgs(url=url))
    assert key.startswith("tool:v1:") and len(key) == len("tool:v1:") + 64  # beside the model calls' `model:` keys
    same = [HttpFetchArgs.model_validate_json(json.dumps(a)) for a in (
        {"url": url, "method": "GET"}, {"method": "GET", "url": url, "max_bytes": 200_000}, {"url": url, "cache": True},
    )]
    assert {tool_cache_key("http_fetch", a) for a in same} == {key}  # defaults, key order and the flag do not matter
    assert tool_cache_key("http_fetch", HttpFetchArgs(url=url, method="HEAD")) != key
    assert tool_cache_key("http_fetch", HttpFetchArgs(url=url + "b")) != key
    assert tool_cache_key("search_corpus", SearchCorpusArgs(query=url)) != tool_cache_key("search_corpus", SearchCorpusArgs(query=url + "b"))
    # An approval binds to the action, not to whether the worker may answer it from its cache.
    assert action_sha256("http_fetch", HttpFetchArgs(url=url, cache=True)) == action_sha256("http_fetch", HttpFetchArgs(url=url))


def test_the_catalogue_caches_only_reads_that_no_step_changes() -> None:
    assert {name for name, spec in TOOLS.items() if spec.cacheable} == {"http_fetch", "search_corpus"}
    assert all(spec.cache_why for spec in TOOLS.values())  # every tool says why it is or is not cached


# --- ToolCache on the SQLite store ----------------------------------------------------------------


def result(text: str, ok: bool = True) -> ToolResult:
    return ToolResult(tool="search_corpus", ok=ok, content=text, content_sha256="0" * 64)


async def test_what_the_tool_cache_stores_and_what_is_a_miss(tmp_path: Path) -> None:
    store = SqliteCallCache(tmp_path / "cache.sqlite", 60)
    runs: list[str] = []

    async def answer_with(cache: ToolCache, args: SearchCorpusArgs, ok: bool = True) -> ToolResult:
        async def run() -> ToolResult:
            runs.append(args.query)
            return result(f"hits for {args.query}", ok)
        return await ActivityEnvironment().run(cache.answer, "search_corpus", args, run)

    cache = ToolCache(store)
    allowed = SearchCorpusArgs(query="retries", cache=True)
    first, again = await answer_with(cache, allowed), await answer_with(cache, allowed)
    assert (first.cached, again.cached, again.content, len(runs)) == (False, True, "hits for retries", 1)
    unstamped = [await answer_with(cache, allowed.model_copy(update={"cache": False})) for _ in range(2)]
    assert not any(r.cached for r in unstamped) and len(runs) == 3  # the workflow did not allow it: never looked up
    failed = [await answer_with(cache, SearchCorpusArgs(query="broken", cache=True), ok=False) for _ in range(2)]
    assert not any(r.cached for r in failed) and len(runs) == 5  # only successful results are stored
    assert not (await answer_with(ToolCache(None), allowed)).cached and len(runs) == 6  # FOREMAN_CACHE=off
    with sqlite3.connect(tmp_path / "cache.sqlite") as connection:
        assert connection.execute("SELECT count(*) FROM calls WHERE key LIKE 'tool:v1:%'").fetchone() == (1,)
        connection.execute("UPDATE calls SET value = ?", ('{"not": "a result"}',))
    assert not (await answer_with(cache, allowed)).cached and len(runs) == 7  # an entry that does not decode
    with sqlite3.connect(tmp_path / "cache.sqlite") as connection:  # older than the tool's cache_for (an hour)
        connection.execute("UPDATE calls SET value = json_set(value, '$.stored_at', ?)", (time.time() - 3601,))
    assert not (await answer_with(cache, allowed)).cached and len(runs) == 8
    (tmp_path / "not-a-dir").write_text("x")
    unusable = ToolCache(SqliteCallCache(tmp_path / "not-a-dir" / "cache.sqlite", 60))
    assert [(await answer_with(unusable, allowed)).cached for _ in range(2)] == [False, False] and len(runs) == 10


async def test_a_host_this_worker_may_not_reach_is_refused_even_when_cached(monkeypatch) -> None:
    http_fetch = tool_implementations(from_settings())["http_fetch"]
    monkeypatch.setenv("FOREMAN_HTTP_PRIVATE_HOSTS", "127.0.0.1")
    with ScriptedServer(page) as server:
        args = HttpFetchArgs(url=f"{server.base_url}/page", cache=True)
        assert not (await ActivityEnvironment().run(http_fetch, args)).cached
        assert (await ActivityEnvironment().run(http_fetch, args)).cached and len(server.requests) == 1
        monkeypatch.setenv("FOREMAN_HTTP_ALLOWED_HOSTS", "example.com")
        with pytest.raises(Exception, match="not in FOREMAN_HTTP_ALLOWED_HOSTS"):
            await ActivityEnvironment().run(http_fetch, args)
        monkeypatch.delenv("FOREMAN_HTTP_ALLOWED_HOSTS")
        monkeypatch.delenv("FOREMAN_HTTP_PRIVATE_HOSTS")  # a worker that may not reach private addresses
        with pytest.raises(Exception, match=r"\(loopback\): http_fetch reaches public addresses only"):
            await ActivityEnvironment().run(http_fetch, args)
        assert len(server.requests) == 1


# --- whole goals on the dev server ----------------------------------------------------------------


@dataclasses.dataclass
class CountedCorpus:
    """The real corpus index, counting the searches that reach it."""

    inner: CorpusIndex
    searches: int = 0

    def search(self, query: str, limit: int) -> CorpusSearch:
        self.searches += 1
        return self.inner.search(query, limit)


NOTES = "drafts/notes.md"
POLICY = {
    "principals": [
        {"role": "researcher", "tools": ["http_fetch", "search_corpus"], "side_effects": ["read"], "hosts": ["127.0.0.1"]},
        {"role": "drafter", "tools": ["write_file"], "side_effects": ["read", "write"]},
    ],
    "approvers": APPROVERS,
}


def reads_playbook(folder: Path, base_url: str, name: str = "reads", cache: bool | None = None) -> str:
    """Two declared reads (a page, a corpus search), an agent that fetches a second page itself, and a write."""
    switch = {} if cache is None else {"cache": cache}
    steps = [
        {"type": "tool", "id": "page", "role": "researcher", **switch,
         "invocation": {"tool": "http_fetch", "arguments_json": json.dumps({"url": f"{base_url}/page"})}},
        {"type": "tool", "id": "search", "role": "researcher", **switch,
         "invocation": {"tool": "search_corpus", "arguments_json": json.dumps({"query": "durable execution", "limit": 2})}},
        {"type": "agent", "id": "read", "role": "researcher", "instruction": "Read the notes page.", "tools": ["http_fetch"],
         "max_turns": 2, **switch},
        {"type": "tool", "id": "save", "role": "drafter", "depends_on": ["page", "search", "read"],
         "invocation": {"tool": "write_file", "arguments_json": json.dumps({"path": NOTES, "content": "page {{steps.page.sha256}}"})}},
    ]
    return write_playbook(folder, {"name": name, "steps": steps, "output_step": "read", "policy": POLICY})


def fetches_notes(base_url: str, sent_flag: bool):
    """The `read` step's model: fetch the notes page, sending its own `cache` flag (which must not count), then
    answer with what it read."""
    def respond(request: ModelRequest):
        if not tool_messages(request):
            return call_tool("http_fetch", {"url": f"{base_url}/notes", "cache": sent_flag})
        return answer(tool_messages(request)[-1].content)
    return respond


class Reads:
    """Goals of the reads playbooks on one worker set-up: a page server and a corpus index that count."""

    def __init__(self, client: Client, task_queue: str, server: ScriptedServer, sent_flag: bool) -> None:
        self.client, self.task_queue, self.server = client, task_queue, server
        stores = from_settings()
        self.corpus = CountedCorpus(stores.corpus)
        model = ScriptedModel(fetches_notes(server.base_url, sent_flag))
        self.activities = all_activities(model.activity(), stores=dataclasses.replace(stores, corpus=self.corpus))

    async def run(self, playbook: str, cache: bool = True) -> GoalResult:
        request = GoalRequest(goal="What is durable execution?", playbook=playbook, cache=cache)
        result, _ = await run_goal(self.client, self.task_queue, request, self.activities)
        assert result.status is GoalStatus.COMPLETED, result.error
        return result

    @property
    def reached(self) -> tuple[int, int]:
        """(requests that reached the page server, searches that reached the corpus index)."""
        return len(self.server.requests), self.corpus.searches


def cached_calls(result: GoalResult) -> dict[str, list[bool]]:
    return {step.step_id: [call.cached for call in step.tool_calls] for step in result.steps}


async def test_a_second_identical_goal_reads_from_the_tool_cache(client: Client, task_queue: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("FOREMAN_PLAYBOOKS_DIR", str(tmp_path / "playbooks"))
    monkeypatch.setenv("FOREMAN_HTTP_PRIVATE_HOSTS", "127.0.0.1")  # the page server is local
    with ScriptedServer(page) as server:
        playbook = reads_playbook(tmp_path / "playbooks", server.base_url)
        reads = Reads(client, task_queue, server, sent_flag=False)  # the model asks for no cache: not its decision
        first = await reads.run(playbook)
        assert reads.reached == (2, 1)
        written = settings.workspace_dir() / NOTES
        written.unlink()
        second = await reads.run(playbook)
    assert reads.reached == (2, 1)  # nothing more reached the network or the index
    assert written.exists()  # the write ran again: a side effect is never answered from the cache
    assert cached_calls(first) == {"page": [False], "search": [False], "read": [False], "save": [False]}
    assert cached_calls(second) == {"page": [True], "search": [True], "read": [True], "save": [False]}
    assert (first.usage.cache_hits.tool, second.usage.cache_hits.tool) == (0, 3)
    assert first.usage.tool_calls == second.usage.tool_calls == 4  # a hit is still a tool call (budget)
    assert second.output == first.output and [s.output for s in second.steps] == [s.output for s in first.steps]


async def test_no_tool_cache_when_the_goal_or_the_step_says_no(client: Client, task_queue: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("FOREMAN_PLAYBOOKS_DIR", str(tmp_path / "playbooks"))
    monkeypatch.setenv("FOREMAN_HTTP_PRIVATE_HOSTS", "127.0.0.1")  # the page server is local
    with ScriptedServer(page) as server:
        playbook = reads_playbook(tmp_path / "playbooks", server.base_url)
        uncached = reads_playbook(tmp_path / "playbooks", server.base_url, name="reads-uncached", cache=False)
        reads = Reads(client, task_queue, server, sent_flag=True)  # the model asks for the cache: not its decision
        await reads.run(playbook)  # every entry is there now
        off_for_goal = await reads.run(playbook, cache=False)
        assert reads.reached == (4, 2)
        off_for_steps = await reads.run(uncached)
        assert reads.reached == (6, 3)
    for result in (off_for_goal, off_for_steps):
        assert result.usage.cache_hits.tool == 0 and not any(c for calls in cached_calls(result).values() for c in calls)
    # What the model sent stays in the record (visible in the audit); what ran was stamped.
    assert json.loads(off_for_steps.steps[2].tool_calls[0].arguments_json)["cache"] is True


async def test_a_goals_cache_switch_holds_in_its_subagents(client: Client, task_queue: str, tmp_path: Path, monkeypatch) -> None:
    name = team_playbooks(tmp_path, monkeypatch)
    request = GoalRequest(goal="durable execution", playbook=name, cache=False)
    result, _ = await run_goal(client, task_queue, request, fake_activities(ScriptedModel(researcher_answers).activity()))
    assert result.status is GoalStatus.COMPLETED, result.error
    started = (await client.get_workflow_handle(f"{result.workflow_id}/r1").fetch_history()).events[0]
    child = pydantic_data_converter.payload_converter.from_payload(
        started.workflow_execution_started_event_attributes.input.payloads[0], GoalRequest
    )
    assert child.cache is False
