"""GoalWorkflow on the real dev server with a scripted model: the demo playbook, the agent loop,
tool-argument validation, verification with refine, budgets, concurrency, bad input."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError

from contracts.goal import Budget, GoalProgress, GoalRequest, GoalStatus, StepStatus
from contracts.llm import ChatMessage, ModelRequest, ModelResponse, Provider
from contracts.verify import RequiredTermsCheck
from tests.fakes import ScriptedModel, answer, call_tool, demo_responder, step_role, tool_messages
from tests.helpers import fake_activities, fan_in_playbook, run_goal, scheduled_activities, single_step_playbook, write_playbook
from worker import build_worker
from workflows.goal import GoalWorkflow


async def test_demo_playbook_runs_every_role_as_activities(client: Client, task_queue: str, foreman_home: Path) -> None:
    model = ScriptedModel(demo_responder)
    request = GoalRequest(goal="Explain durable execution for agents", playbook="research-brief")
    result, history = await run_goal(client, task_queue, request, fake_activities(model.activity()))

    assert result.status is GoalStatus.COMPLETED, result.error
    assert [s.step_id for s in result.steps] == ["research", "draft", "publish"]
    assert all(s.status is StepStatus.COMPLETED for s in result.steps)
    assert result.output.startswith("Durable execution records every step")
    # Planning, the prefetch search, each model turn, each verification and the publish write are separate activities.
    kinds = scheduled_activities(history)
    assert kinds[0] == "plan_goal"
    assert kinds.count("call_model") == 2 and kinds.count("verify_output") == 3
    assert kinds.count("search_corpus") == 1 and kinds.count("write_file") == 1
    research = result.steps[0]
    assert research.tool_calls[0].tool == "search_corpus" and research.tool_calls[0].ok
    # The prefetched search results reached the model, marked as untrusted.
    first_prompt = model.requests[0].messages[1].content
    assert '<tool_output tool="search_corpus"' in first_prompt and 'untrusted="true"' in first_prompt
    brief = (foreman_home / "workspace" / "briefs" / "explain-durable-execution-for-agents.md").read_text()
    assert brief == result.output
    # Publishing was gated: one request, bound to the draft artifact's hash, approved by an editor, then run.
    (approval,) = result.approvals
    assert approval.tool == "write_file" and approval.status.value == "approved" and approval.requested_by == "publisher"
    assert approval.artifact_sha256 == result.steps[1].output_sha256 and len(approval.action_sha256) == 64
    assert [g.approver for g in approval.approvals_given] == ["bob"]
    assert [e.kind.value for e in result.audit] == ["requested", "approved", "executed"]
    assert result.steps[2].tool_calls[0].approval_request_id == approval.request_id
    assert result.usage.model_calls == 2 and result.usage.tool_calls == 2
    assert result.usage.prompt_tokens > 0 and result.usage.cost_usd == pytest.approx(0.0002)
    assert result.steps[2].output_sha256 and len(result.steps[2].output_sha256) == 64


async def test_agent_loop_feeds_tool_results_back(client: Client, task_queue: str, tmp_path: Path, monkeypatch) -> None:
    def respond(request: ModelRequest) -> ChatMessage:
        results = tool_messages(request)
        if not results:
            return call_tool("calculate", {"expression": "6 * 7"})
        return answer(f"The answer is {results[-1].content.split('>')[1].split('<')[0].strip()}.")

    model = ScriptedModel(respond)
    playbook = single_step_playbook(tmp_path, monkeypatch)
    result, history = await run_goal(client, task_queue, GoalRequest(goal="what is 6*7", playbook=playbook), fake_activities(model.activity()))
    assert result.status is GoalStatus.COMPLETED, result.error
    assert result.output == "The answer is 42."
    step = result.steps[0]
    assert step.turns == 2 and [c.tool for c in step.tool_calls] == ["calculate"] and step.tool_calls[0].ok
    assert scheduled_activities(history).count("calculate") == 1


@pytest.mark.parametrize(
    "bad_call, expected",
    [
        (("calculate", {"expr": "1+1"}), "ToolArgumentsInvalid"),
        (("calculate", "{not json"), "ToolArgumentsInvalid"),
        (("write_file", {"path": "x.txt", "content": "pwned"}), "ToolNotAllowed"),
        (("no_such_tool", {}), "ToolNotAllowed"),
    ],
)
async def test_rejected_tool_calls_never_schedule_an_activity(
    client: Client, task_queue: str, tmp_path: Path, monkeypatch, foreman_home: Path, bad_call, expected: str
) -> None:
    def respond(request: ModelRequest) -> ChatMessage:
        results = tool_messages(request)
        return call_tool(*bad_call) if not results else answer(f"saw: {results[-1].content}")

    model = ScriptedModel(respond)
    playbook = single_step_playbook(tmp_path, monkeypatch)
    result, history = await run_goal(client, task_queue, GoalRequest(goal="try it", playbook=playbook), fake_activities(model.activity()))
    step = result.steps[0]
    assert result.status is GoalStatus.COMPLETED
    assert not step.tool_calls[0].ok and step.tool_calls[0].error.startswith(expected)
    assert expected in result.output  # the model was told why
    assert scheduled_activities(history) == ["plan_goal", "call_model", "call_model"]
    assert not (foreman_home / "workspace" / "x.txt").exists()


async def test_verifier_refine_feeds_reasons_back(client: Client, task_queue: str, tmp_path: Path, monkeypatch) -> None:
    def respond(request: ModelRequest) -> ChatMessage:
        feedback = [m.content for m in request.messages if "not accepted" in m.content]
        return answer("The sky is blue." if feedback else "The sky has a colour.")

    model = ScriptedModel(respond)
    playbook = single_step_playbook(
        tmp_path, monkeypatch, tools=[], max_attempts=3, checks=[{"type": "required_terms", "terms": ["blue"]}]
    )
    result, _ = await run_goal(client, task_queue, GoalRequest(goal="sky colour", playbook=playbook), fake_activities(model.activity()))
    step = result.steps[0]
    assert result.status is GoalStatus.COMPLETED and result.output == "The sky is blue."
    assert [v.decision.value for v in step.verdicts] == ["refine", "accept"] and step.attempts == 2
    assert "missing required terms: ['blue']" in model.requests[1].messages[-1].content
    # A refine attempt samples a little hotter, so a rejected answer is not regenerated verbatim.
    assert [r.spec.temperature for r in model.requests] == [0.0, pytest.approx(0.3)]


async def test_exhausted_attempts_fail_the_step_and_skip_dependents(client: Client, task_queue: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("FOREMAN_PLAYBOOKS_DIR", str(tmp_path / "playbooks"))
    playbook = write_playbook(
        tmp_path / "playbooks",
        {
            "name": "two-steps",
            "steps": [
                {"type": "agent", "id": "first", "role": "analyst", "instruction": "x", "max_attempts": 2,
                 "checks": [{"type": "regex", "pattern": "^OK$"}]},
                # Listed before the step it depends on: the skip still reaches it (it used to be left without a result).
                {"type": "agent", "id": "third", "role": "editor", "instruction": "z", "depends_on": ["second"]},
                {"type": "agent", "id": "second", "role": "drafter", "instruction": "y", "depends_on": ["first"]},
            ],
        },
    )
    model = ScriptedModel(lambda request: answer("not ok"))
    result, _ = await run_goal(client, task_queue, GoalRequest(goal="fail", playbook=playbook), fake_activities(model.activity()))
    assert result.status is GoalStatus.FAILED
    first, third, second = result.steps
    assert first.status is StepStatus.FAILED and first.attempts == 2 and "verification failed after 2 attempts" in first.error
    assert second.status is StepStatus.SKIPPED and "first" in second.error
    assert third.status is StepStatus.SKIPPED and "second" in third.error
    assert len(model.requests) == 2


async def test_budget_stops_the_goal(client: Client, task_queue: str, tmp_path: Path, monkeypatch) -> None:
    model = ScriptedModel(lambda request: call_tool("calculate", {"expression": "1+1"}))
    playbook = single_step_playbook(tmp_path, monkeypatch, max_turns=10)
    request = GoalRequest(goal="loop forever", playbook=playbook, budget=Budget(max_model_calls=3))
    result, _ = await run_goal(client, task_queue, request, fake_activities(model.activity()))
    assert result.status is GoalStatus.BUDGET_EXCEEDED
    assert result.usage.model_calls == 3 and "model call budget of 3" in result.error


async def test_independent_steps_run_concurrently(client: Client, task_queue: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("FOREMAN_PLAYBOOKS_DIR", str(tmp_path / "playbooks"))
    playbook = fan_in_playbook(tmp_path / "playbooks")
    model = ScriptedModel(lambda request: answer(f"{step_role(request)} done"))
    result, history = await run_goal(client, task_queue, GoalRequest(goal="fan", playbook=playbook), fake_activities(model.activity()))
    assert result.status is GoalStatus.COMPLETED and result.output == "drafter done"
    # Both branches were scheduled in the same workflow task, before either model call completed.
    events = [e.event_type for e in history.events]
    first_completed = events.index(EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED, events.index(EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED) + 1)
    scheduled_before = [
        e for e in history.events[:first_completed]
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name == "call_model"
    ]
    assert len(scheduled_before) == 2
    join_prompt = next(r for r in model.requests if step_role(r) == "drafter").messages[1].content
    assert '<step_output step="left" untrusted="true">\nresearcher done\n</step_output>' in join_prompt
    assert '<step_output step="right" untrusted="true">\nanalyst done\n</step_output>' in join_prompt


async def test_success_criteria_checked_on_final_output(client: Client, task_queue: str, tmp_path: Path, monkeypatch) -> None:
    model = ScriptedModel(lambda request: answer("plain answer"))
    playbook = single_step_playbook(tmp_path, monkeypatch, tools=[])
    request = GoalRequest(goal="g", playbook=playbook, success_criteria=[RequiredTermsCheck(terms=["citation"])])
    result, _ = await run_goal(client, task_queue, request, fake_activities(model.activity()))
    assert result.status is GoalStatus.FAILED and "success criteria not met" in result.error
    assert result.final_verdict and result.final_verdict.decision.value == "refine"


async def test_status_query_reports_live_progress(client: Client, task_queue: str, tmp_path: Path, monkeypatch) -> None:
    release = asyncio.Event()
    playbook = single_step_playbook(tmp_path, monkeypatch, tools=[])

    @activity.defn(name="call_model")
    async def slow_model(request: ModelRequest) -> ModelResponse:
        await release.wait()
        return ModelResponse(message=answer("done"), provider=Provider.OPENAI, model="scripted")

    async with build_worker(client, task_queue, activities=fake_activities(slow_model)):
        handle = await client.start_workflow(
            GoalWorkflow.run, GoalRequest(goal="g", playbook=playbook), id=f"status-{uuid.uuid4().hex[:8]}", task_queue=task_queue
        )
        async with asyncio.timeout(30):
            while True:
                progress: GoalProgress = await handle.query(GoalWorkflow.status)
                if progress.steps and progress.steps[0].status is StepStatus.RUNNING:
                    break
                await asyncio.sleep(0.05)
            assert progress.phase == "executing" and progress.steps[0].turn == 1
            release.set()
            result = await handle.result()
    assert result.status is GoalStatus.COMPLETED


async def test_unknown_playbook_fails_the_run_with_a_typed_error(client: Client, task_queue: str) -> None:
    async with build_worker(client, task_queue, activities=fake_activities(ScriptedModel(demo_responder).activity())):
        handle = await client.start_workflow(
            GoalWorkflow.run, GoalRequest(goal="g", playbook="no-such-playbook"), id=f"bad-{uuid.uuid4().hex[:8]}", task_queue=task_queue
        )
        with pytest.raises(WorkflowFailureError) as failure:
            async with asyncio.timeout(30):
                await handle.result()
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "UnknownPlaybook"
    assert "research-brief" in cause.message


@pytest.mark.parametrize(
    "raw_input",
    [{"goal": ""}, {"goal": 5}, {"goal": "x" * 40_000}, {"goal": "g", "budget": {"max_model_calls": 0}}, {"nope": 1}],
)
async def test_invalid_raw_input_fails_the_run_instead_of_hanging(client: Client, task_queue: str, raw_input: dict) -> None:
    """A client in any language sends plain JSON; input that fails validation must end the run, typed."""
    plain = await Client.connect(client.service_client.config.target_host)  # default JSON converter, like other SDKs
    async with build_worker(client, task_queue, activities=fake_activities(ScriptedModel(demo_responder).activity())):
        handle = await plain.start_workflow("GoalWorkflow", raw_input, id=f"raw-{uuid.uuid4().hex[:8]}", task_queue=task_queue)
        with pytest.raises(WorkflowFailureError) as failure:
            async with asyncio.timeout(30):
                await handle.result()
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "ValidationError"
    assert "GoalRequest" in cause.message


async def test_a_model_that_fails_for_good_fails_the_step_not_the_run(client: Client, task_queue: str, tmp_path: Path, monkeypatch) -> None:
    @activity.defn(name="call_model")
    async def unauthorised(request: ModelRequest) -> ModelResponse:
        raise ApplicationError("401 from the provider: invalid API key", type="ModelAuthError", non_retryable=True)

    playbook = single_step_playbook(tmp_path, monkeypatch, tools=[])
    result, _ = await run_goal(client, task_queue, GoalRequest(goal="g", playbook=playbook), fake_activities(unauthorised))
    assert result.status is GoalStatus.FAILED
    assert result.steps[0].status is StepStatus.FAILED and result.steps[0].error.startswith("ModelAuthError: 401")


async def test_concurrent_steps_cannot_overrun_the_model_call_budget(client: Client, task_queue: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("FOREMAN_PLAYBOOKS_DIR", str(tmp_path / "playbooks"))
    steps = [{"type": "agent", "id": f"s{n}", "role": "analyst", "instruction": "go"} for n in range(3)]
    playbook = write_playbook(tmp_path / "playbooks", {"name": "three-at-once", "steps": steps})
    model = ScriptedModel(lambda request: answer("done"))
    request = GoalRequest(goal="g", playbook=playbook, budget=Budget(max_model_calls=1))
    result, _ = await run_goal(client, task_queue, request, fake_activities(model.activity()))
    assert len(model.requests) == 1 and result.usage.model_calls == 1
    assert result.status is GoalStatus.BUDGET_EXCEEDED


async def test_tool_calls_on_the_last_turn_are_not_run(client: Client, task_queue: str, tmp_path: Path, monkeypatch) -> None:
    model = ScriptedModel(lambda request: call_tool("calculate", {"expression": "1+1"}))
    playbook = single_step_playbook(tmp_path, monkeypatch, max_turns=1)
    result, history = await run_goal(client, task_queue, GoalRequest(goal="g", playbook=playbook), fake_activities(model.activity()))
    assert "calculate" not in scheduled_activities(history)
    assert model.requests[0].tools == [] and result.steps[0].tool_calls == []


async def test_a_step_can_name_its_own_model(client: Client, task_queue: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A playbook step's `model` replaces the goal's executor model for that step only, and reaches the provider."""
    monkeypatch.setenv("FOREMAN_PLAYBOOKS_DIR", str(tmp_path / "playbooks"))
    steps = [
        {"type": "agent", "id": "small", "role": "researcher", "instruction": "Note one fact."},
        {"type": "agent", "id": "large", "role": "drafter", "depends_on": ["small"], "instruction": "Write it up.",
         "model": {"provider": "openai", "model": "large-model", "temperature": 0.2}},
    ]
    name = write_playbook(tmp_path / "playbooks", {"name": "routed", "steps": steps})
    model = ScriptedModel(lambda request: answer("done"))
    result, _ = await run_goal(client, task_queue, GoalRequest(goal="Route per step", playbook=name), fake_activities(model.activity()))
    assert result.status is GoalStatus.COMPLETED, result.error
    small, large = model.requests
    assert small.spec.model is None and small.spec.provider is None  # the goal's (worker's) default
    assert (large.spec.provider.value, large.spec.model, large.spec.temperature) == ("openai", "large-model", 0.2)


async def test_wall_clock_and_per_step_limits(client: Client, task_queue: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A goal's wall-clock budget stops it gracefully at the next call; a step's own call limit fails only that step;
    `status` and the result show every limit beside the spend."""
    monkeypatch.setenv("FOREMAN_PLAYBOOKS_DIR", str(tmp_path / "playbooks"))
    chain = [{"type": "agent", "id": f"s{i}", "role": "researcher", "instruction": "Note a fact.",
              **({"depends_on": [f"s{i - 1}"]} if i else {})} for i in range(3)]
    name = write_playbook(tmp_path / "playbooks", {"name": "slow-chain", "steps": chain})

    @activity.defn(name="call_model")
    async def slow_model(request: ModelRequest) -> ModelResponse:
        await asyncio.sleep(0.6)
        return ModelResponse(message=answer("a fact"), provider=Provider.OPENAI, model="scripted")

    budget = Budget(max_wall_seconds=1.0)
    result, _ = await run_goal(client, task_queue, GoalRequest(goal="Take your time", playbook=name, budget=budget), fake_activities(slow_model))
    assert result.status is GoalStatus.BUDGET_EXCEEDED and result.error == "wall-clock budget of 1 s used up"
    # The first call starts at once; a later one finds the second gone (which one depends on the machine's speed).
    statuses = [s.status for s in result.steps]
    assert statuses[0] is StepStatus.COMPLETED and StepStatus.FAILED in statuses
    stopped = next(s for s in result.steps if s.status is StepStatus.FAILED)
    assert stopped.error == "BudgetExceeded: wall-clock budget of 1 s used up"
    assert result.budget.max_wall_seconds == 1.0 and result.usage.wall_seconds >= 1.0

    limited = [{"type": "agent", "id": "once", "role": "researcher", "instruction": "Say durable.", "max_model_calls": 1,
                "checks": [{"type": "required_terms", "terms": ["durable"]}]},
               {"type": "agent", "id": "other", "role": "researcher", "instruction": "Anything."}]
    name = write_playbook(tmp_path / "playbooks", {"name": "limited", "steps": limited})
    async with build_worker(client, task_queue, activities=fake_activities(ScriptedModel(lambda r: answer("nope")).activity())):
        handle = await client.start_workflow(GoalWorkflow.run, GoalRequest(goal="Limits", playbook=name),
                                             id=f"limits-{uuid.uuid4().hex[:8]}", task_queue=task_queue)
        result = await handle.result()
        progress = await handle.query("status", result_type=GoalProgress)
    once, other = result.steps
    assert once.status is StepStatus.FAILED and once.error == "StepLimit: step 'once' used its 1 model calls"
    assert other.status is StepStatus.COMPLETED and result.status is GoalStatus.FAILED  # the goal went on
    assert progress.budget == Budget() and progress.usage.model_calls == 2
    # Each step's spend against its own limit, and its working memory: the output by hash with a preview.
    once_now, other_now = progress.steps
    assert (once_now.model_calls, once_now.max_model_calls, once_now.output_sha256) == (1, 1, None)
    assert other_now.output_sha256 == other.output_sha256 and other_now.output_preview == "nope" and other_now.max_model_calls is None
