"""Recorded histories replay against today's workflow code: a failure here means a change would
break determinism for goals already in flight (re-record only when that is intended).

Each history is also checked against its row in SCENARIOS (keyed by file name): the events and the
recorded GoalResult that make it the scenario its name says, so a re-recorded file cannot quietly
stop covering its path. A run that continued as new (NAME-runN.json) has no GoalResult: its row is
checked against the request it handed the next run (its carried state). Recipes: `python -m
tests.record_history --list`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory

from core.history import local_activity
from tests.helpers import activity_label, replay, scheduled_activities
from tests.record_history import recipe_of, workflow_id

HISTORIES = sorted((Path(__file__).resolve().parent / "histories").glob("*.json"))
CONTINUED = "continued_as_new"  # a Scenario's status for a run that handed the goal on instead of returning
ACTIVITY_ENDS = {
    EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED: "activity_task_completed_event_attributes",
    EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED: "activity_task_failed_event_attributes",
    EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT: "activity_task_timed_out_event_attributes",
    EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED: "activity_task_canceled_event_attributes",
}

# --- what a history shows ------------------------------------------------------------------------


def goal_result(history: WorkflowHistory) -> dict:
    """The GoalResult the workflow returned, as recorded (plain JSON: immune to later contract changes)."""
    return json.loads(history.events[-1].workflow_execution_completed_event_attributes.result.payloads[0].data)


def goal_request(history: WorkflowHistory) -> dict:
    return json.loads(history.events[0].workflow_execution_started_event_attributes.input.payloads[0].data)


def handed_on(history: WorkflowHistory) -> dict:
    """The GoalRequest a run that continued as new handed its next run (`resume`: the carried state), as recorded."""
    return json.loads(history.events[-1].workflow_execution_continued_as_new_event_attributes.input.payloads[0].data)


def messages(history: WorkflowHistory) -> list[str]:
    """Accepted Updates and received Signals, in history order ("update:approve", "signal:approval_signal")."""
    found = []
    for e in history.events:
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            found.append(f"update:{e.workflow_execution_update_accepted_event_attributes.accepted_request.input.name}")
        elif e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            found.append(f"signal:{e.workflow_execution_signaled_event_attributes.signal_name}")
    return found


def children_started(history: WorkflowHistory) -> list[str]:
    """Ids of the child workflows started (StartChildWorkflowExecutionInitiated), sorted."""
    return sorted(e.start_child_workflow_execution_initiated_event_attributes.workflow_id for e in history.events
                  if e.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED)


def children_completed(history: WorkflowHistory) -> list[str]:
    return sorted(e.child_workflow_execution_completed_event_attributes.workflow_execution.workflow_id for e in history.events
                  if e.event_type == EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED)


def signals_sent(history: WorkflowHistory) -> list[tuple[str, str, dict]]:
    """(signal name, target workflow id, payload) of every SignalExternalWorkflowExecutionInitiated."""
    found = []
    for e in history.events:
        if e.event_type == EventType.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED:
            a = e.signal_external_workflow_execution_initiated_event_attributes
            found.append((a.signal_name, a.workflow_execution.workflow_id, json.loads(a.input.payloads[0].data)))
    return found


def child_reports(history: WorkflowHistory) -> list[dict]:
    """The `child_approvals` reports received, in order (ChildApprovals as recorded)."""
    return [json.loads(e.workflow_execution_signaled_event_attributes.input.payloads[0].data) for e in history.events
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
            and e.workflow_execution_signaled_event_attributes.signal_name == "child_approvals"]


def requests_in(report: dict) -> list[tuple[str, str, list[str]]]:
    return [(r["workflow_id"], r["status"], [g["approver"] for g in r["approvals_given"]]) for r in report["requests"]]


def first_index(history: WorkflowHistory, event_type: EventType.ValueType) -> int:
    return next(i for i, e in enumerate(history.events) if e.event_type == event_type)


def timers_fired(history: WorkflowHistory) -> int:
    return sum(e.event_type == EventType.EVENT_TYPE_TIMER_FIRED for e in history.events)


def most_in_flight(history: WorkflowHistory, activity_type: str = "call_model") -> int:
    """The most `activity_type` activities scheduled and not yet ended at any point of the history."""
    open_: set[int] = set()
    most = 0
    for e in history.events:
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            if e.activity_task_scheduled_event_attributes.activity_type.name == activity_type:
                open_.add(e.event_id)
                most = max(most, len(open_))
        elif e.event_type in ACTIVITY_ENDS:
            open_.discard(getattr(e, ACTIVITY_ENDS[e.event_type]).scheduled_event_id)
    return most


def scheduled_only_after(history: WorkflowHistory, activity_type: str, event_type: EventType.ValueType) -> bool:
    """`activity_type` was scheduled, and never before the first `event_type` event (e.g. the approval)."""
    seen = scheduled = False
    for e in history.events:
        if e.event_type == event_type:
            seen = True
        elif e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED and e.activity_task_scheduled_event_attributes.activity_type.name == activity_type:
            if not seen:
                return False
            scheduled = True
    return scheduled


@dataclass(frozen=True)
class Activity:
    """One scheduled activity: where it was scheduled and where it ended (indexes into the events)."""

    scheduled: int
    type: str
    summary: str
    end: str = ""  # completed, failed, timed_out, canceled; "" if it never ended
    ended: int = -1


def activity_log(history: WorkflowHistory) -> list[Activity]:
    """Every activity in the order it was scheduled, with its summary and how it ended."""
    log: dict[int, Activity] = {}
    for i, e in enumerate(history.events):
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            log[e.event_id] = Activity(i, e.activity_task_scheduled_event_attributes.activity_type.name, activity_label(e))
        elif e.event_type in ACTIVITY_ENDS:
            scheduled = getattr(e, ACTIVITY_ENDS[e.event_type]).scheduled_event_id
            end = EventType.Name(e.event_type).removeprefix("EVENT_TYPE_ACTIVITY_TASK_").lower()
            log[scheduled] = replace(log[scheduled], end=end, ended=i)
    return list(log.values())


def summaries(history: WorkflowHistory, activity_type: str) -> list[str]:
    return [a.summary for a in activity_log(history) if a.type == activity_type]


def audit(result: dict) -> list[tuple[str, str | None]]:
    return [(e["kind"], e.get("actor")) for e in result["audit"]]


def verdicts(result: dict, step: int = 0) -> list[str]:
    return [v["decision"] for v in result["steps"][step]["verdicts"]]


# --- proofs that take more than a line -----------------------------------------------------------


def two_subagents_then_merge(h: WorkflowHistory, r: dict) -> bool:
    children = [f"{h.workflow_id}/r1", f"{h.workflow_id}/r2"]
    return (children_started(h) == children_completed(h) == children
            and [s["child_workflow_ids"] for s in r["steps"][:2]] == [children[:1], children[1:]]
            and r["output"] == "merged: one and two" and r["usage"]["model_calls"] == 3  # one per child, one merge
            and scheduled_activities(h).count("call_model") == 1  # the children's calls are in their own histories
            and child_reports(h) == [])  # nothing waited for people in the children: they reported nothing


def a_subagent(h: WorkflowHistory, r: dict) -> bool:
    """The child r1 of `subagents`: its own history, its budget half the parent's, nothing reported up."""
    request = goal_request(h)
    return (request["parent"]["step_id"] == "r1" and h.workflow_id == f"{request['parent']['workflow_id']}/r1"
            and request["budget"]["max_model_calls"] == 10 and [s["role"] for s in request["scopes"]] == ["lead"]
            and r["output"] == "angle one findings" and r["usage"]["model_calls"] == 1 and not children_started(h)
            # A subagent reports to its parent only when something waits for people in it: here nothing did.
            and signals_sent(h) == [])


def approved_through_the_parent(h: WorkflowHistory, r: dict) -> bool:
    child = f"{h.workflow_id}/r1"
    (routed,) = signals_sent(h)
    reports = [requests_in(report) for report in child_reports(h) if report["workflow_id"] == child]
    return (children_started(h) == children_completed(h) == [child, f"{h.workflow_id}/r2"]
            and routed[:2] == ("approval_signal", child) and (routed[2]["approver"], routed[2]["decision"]) == ("alice", "approve")
            and first_index(h, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED)
            < first_index(h, EventType.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED)
            and reports == [[(child, "pending", [])], [(child, "approved", ["alice"])]]  # one report per change people see
            and r["usage"]["tool_calls"] == 1)  # the child's write ran once approved


def explore_stopped_by_budget(h: WorkflowHistory, r: dict) -> bool:
    (step,) = r["steps"]
    balanced, brief, thorough = step["candidates"]
    return (scheduled_activities(h).count("call_model") == goal_request(h)["budget"]["max_model_calls"] == 2
            and [c["label"] for c in step["candidates"]] == ["balanced", "brief", "thorough"]
            and balanced["score"] is not None and brief["score"] is not None
            and thorough["score"] is None and thorough["error"].startswith("BudgetExceeded")
            and step["pick_reason"].startswith("kept 'balanced'") and "model call budget" in r["error"])


def revised_by_the_planner(h: WorkflowHistory, r: dict) -> bool:
    """The LLM's plan; its second step fails for good; the planner revises the rest (once), which completes."""
    plans = summaries(h, "plan_goal")
    research, failed, rewritten = r["steps"]
    return (len(plans) == 2 and plans[1].startswith("revise plan (1)") and r["plan"]["source"] == "llm"
            and goal_request(h)["playbook"] is None and research["status"] == "completed"
            and (failed["step_id"], failed["status"], failed["superseded_by"]) == ("drafter-2", "failed", "revision 1")
            and (rewritten["step_id"], rewritten["status"]) == ("v1-drafter-1", "completed")
            and [v["revision"] for v in r["plan_revisions"]] == [1] and r["output"] == rewritten["output"])


def replanned_by_a_resolver(h: WorkflowHistory, r: dict) -> bool:
    """A playbook step escalates; bob's `resolve` asks for a new plan (with guidance) before it is made."""
    plans = [a for a in activity_log(h) if a.type == "plan_goal"]  # the revision; the playbook's plan was a local activity
    local_plans = [e for e in h.events if (local := local_activity(e)) is not None and local[0] == "plan_goal"]
    original, replacement = r["steps"]
    (escalation,) = r["escalations"]
    return (len(local_plans) == 1 and len(plans) == 1 and plans[0].summary.startswith("revise plan (1)") and r["plan"]["source"] == "playbook"
            and first_index(h, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED) < plans[0].scheduled
            and (escalation["resolution"]["resolver"], escalation["resolution"]["decision"]) == ("bob", "replan")
            and escalation["resolution"]["guidance"] == "Say why a repeat is harmless."
            and (original["status"], original["superseded_by"]) == ("failed", "revision 1")
            and (replacement["role"], replacement["status"]) == ("analyst", "completed") and r["output"] == replacement["output"])


def a_fallback_stood_in(h: WorkflowHistory, r: dict) -> bool:
    """read_file fails for good; only then is the fallback step's model called, and the brief uses its output."""
    log = activity_log(h)
    (read,) = [a for a in log if a.type == "read_file"]
    after = [a for a in log if a.scheduled > read.ended]
    notes, recall, brief = r["steps"]
    return (read.end == "failed" and after[0].type == "call_model" and after[0].summary.startswith("recall:")
            and (notes["status"], notes["superseded_by"]) == ("failed", "recall") and "file not found" in notes["error"]
            and recall["output"] == "notes from memory" and brief["status"] == "completed" and r["output"] == brief["output"])


def chained_with_one_fill(h: WorkflowHistory, r: dict) -> bool:
    """Two SQL tool steps: the first's extracted field (taken in an activity) reaches the one model call, which fills
    the second's SQL."""
    log = [a for a in activity_log(h) if a.type != "plan_goal"]
    pick, count = r["steps"]
    return ([(a.type, a.summary, a.end) for a in log] == [
                ("sql_query", "pick: sql_query", "completed"), ("extract_output", "pick: extract output", "completed"),
                ("call_model", "count: fill sql", "completed"), ("sql_query", "count: sql_query", "completed"),
                ("extract_output", "count: extract output", "completed")]
            and pick["output"] == "gpt-4o-mini" and not pick["model_calls"] and count["output"].isdigit()
            and json.loads(count["tool_calls"][0]["arguments_json"])["sql"].endswith("WHERE model = 'gpt-4o-mini'"))


def parked_at_the_boundary(h: WorkflowHistory, handed: dict) -> bool:
    """Run 1 of `continue-as-new`: the publish asked once and waited; the run drained and handed on its own
    request with `resume` set: the publish parked with a journal of its completed model call (the write it
    asked for), the request still pending under its id, and the notes finished so far and the audit (archived)."""
    carry = handed["resume"]
    (journal,) = carry["journals"]
    (entry,) = journal["entries"]
    (approval,) = carry["desk"]["requests"]
    (continuation,) = carry["continuations"]
    finished = [f["step_id"] for f in carry["scheduler"]["finished"]]
    started = h.events[0].workflow_execution_started_event_attributes
    return ("write_file" not in scheduled_activities(h) and summaries(h, "call_model")[0] == "publish: model turn 1"
            and "archive_content" in scheduled_activities(h)  # finished steps cross the boundary by reference
            and {k: v for k, v in handed.items() if k != "resume"} == {k: v for k, v in goal_request(h).items() if k != "resume"}
            and goal_request(h)["resume"] is None and not started.continued_execution_run_id
            and carry["scheduler"]["parked"] == ["publish"] and journal["step_id"] == "publish"
            and entry["kind"] == "model" and [c["name"] for c in entry["response"]["message"]["tool_calls"]] == ["write_file"]
            and journal["awaiting_request_id"] == approval["request_id"]
            and (approval["step_id"], approval["tool"], approval["status"]) == ("publish", "write_file", "pending")
            and carry["desk"]["events"] == [] and len(carry["desk"]["archived"]) == 1  # the audit so far crosses by reference
            and (continuation["run"], continuation["parked_steps"]) == (1, ["publish"])
            and continuation["run_id"] == started.original_execution_run_id
            and continuation["history_events"] == len(h.events) - 2  # then the task completes and the run closes
            and finished and all(f.startswith("n") for f in finished) and len(finished) == continuation["finished_steps"])


def resumed_and_approved(h: WorkflowHistory, r: dict) -> bool:
    """The final run of `continue-as-new`: it starts from run 1's carry (publish parked, no new plan); the
    publish resumes from its journal (its first model turn is not made again) and waits on the same request;
    alice's Update is accepted here; the write is scheduled once, after it; the goal completes whole."""
    carry = goal_request(h)["resume"]
    (continuation,) = r["continuations"]
    (approval,) = r["approvals"]
    kinds = [e["kind"] for e in r["audit"]]
    started = h.events[0].workflow_execution_started_event_attributes
    return (carry is not None and carry["scheduler"]["parked"] == ["publish"] and continuation["parked_steps"] == ["publish"]
            and started.continued_execution_run_id == continuation["run_id"] and "plan_goal" not in scheduled_activities(h)
            and scheduled_activities(h).count("write_file") == 1
            and scheduled_only_after(h, "write_file", EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED)
            and "publish: model turn 1" not in summaries(h, "call_model")  # answered from the journal
            and summaries(h, "call_model")[-2:] == ["publish: model turn 2", "sum: model turn 1"]
            and approval["request_id"] == carry["journals"][0]["awaiting_request_id"]
            and (approval["status"], approval["decided_by"]) == ("approved", "alice")
            and kinds.count("requested") == kinds.count("executed") == 1
            and all(s["status"] == "completed" for s in r["steps"]) and r["output"] == r["steps"][-1]["output"]
            and r["usage"]["model_calls"] == len(r["steps"]) + 1 and r["usage"]["tool_calls"] == 1)  # publish took two turns


# --- what each scenario must show ----------------------------------------------------------------

Proof = Callable[[WorkflowHistory, dict], bool]


@dataclass(frozen=True)
class Scenario:
    """The GoalResult status (CONTINUED for a run that continued as new); every accepted Update and received
    Signal, in order; how many timers fired; the most model calls in flight at once; and a proof of the rest,
    given (history, result), or (history, the request handed on) for a run that continued as new."""

    status: str
    messages: tuple[str, ...] = ()
    timers_fired: int = 0
    model_calls_in_flight: int = 1
    proof: Proof = lambda history, result: True


SCENARIOS: dict[str, Scenario] = {
    "research-brief": Scenario(
        "completed", ("update:approve",),
        proof=lambda h, r: scheduled_only_after(h, "write_file", EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED)
        and "search_corpus" in scheduled_activities(h) and r["plan"]["source"] == "playbook",
    ),
    "llm-planned": Scenario("completed", proof=lambda h, r: r["plan"]["source"] == "llm" and goal_request(h)["playbook"] is None),
    "approval-denied": Scenario(
        "failed", ("update:deny",),
        proof=lambda h, r: "write_file" not in scheduled_activities(h) and audit(r) == [("requested", "publisher"), ("denied", "bob")],
    ),
    "approval-expired": Scenario(
        "failed", timers_fired=1,
        proof=lambda h, r: "write_file" not in scheduled_activities(h)
        and [a["status"] for a in r["approvals"]] == ["expired"] and audit(r) == [("requested", "publisher"), ("expired", None)],
    ),
    "approval-signal": Scenario(
        "completed", ("signal:approval_signal", "signal:approval_signal"),
        proof=lambda h, r: scheduled_only_after(h, "write_file", EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)
        and audit(r) == [("requested", "publisher"), ("refused", "carol"), ("approved", "alice"), ("executed", None)],
    ),
    "escalation-expired": Scenario(
        "escalated", timers_fired=2,  # the approval's expiry, then the escalation's timeout
        proof=lambda h, r: "write_file" not in scheduled_activities(h) and [a["status"] for a in r["approvals"]] == ["escalated"]
        and [e["status"] for e in r["escalations"]] == ["timed_out"] and r["steps"][-1]["status"] == "escalated",
    ),
    "escalation-retry": Scenario(
        "completed", ("update:resolve",),
        proof=lambda h, r: verdicts(r) == ["escalate", "accept"] and scheduled_activities(h).count("call_model") == 2
        and r["escalations"][0]["resolution"]["decision"] == "retry",
    ),
    "budget-stop": Scenario(
        "budget_exceeded",
        proof=lambda h, r: scheduled_activities(h).count("call_model") == goal_request(h)["budget"]["max_model_calls"] == 3
        and "model call budget" in r["error"],
    ),
    "parallel-steps": Scenario(
        "completed", model_calls_in_flight=2,
        proof=lambda h, r: goal_request(h)["max_parallel_steps"] > 1 and [s["status"] for s in r["steps"]] == ["completed"] * 3,
    ),
    "refine": Scenario(
        "completed", proof=lambda h, r: verdicts(r) == ["refine", "accept"] and scheduled_activities(h).count("verify_output") == 2,
    ),
    "policy-denied": Scenario(
        "completed",
        proof=lambda h, r: "http_fetch" not in scheduled_activities(h) and audit(r) == [("policy_denied", "researcher")]
        and r["steps"][0]["tool_calls"][0]["error"].startswith("PolicyDenied"),
    ),
    "subagents": Scenario("completed", proof=two_subagents_then_merge),
    "subagents-r1": Scenario("completed", proof=a_subagent),
    "subagent-approval": Scenario(
        "completed",
        # r1 reports its request; alice's Update on the parent; r1 reports it approved (r2 had nothing to report).
        ("signal:child_approvals",) + ("update:approve",) + ("signal:child_approvals",),
        proof=approved_through_the_parent,
    ),
    "explore": Scenario("budget_exceeded", model_calls_in_flight=2, proof=explore_stopped_by_budget),
    "escalation-accept": Scenario(
        "completed", ("update:resolve",),
        proof=lambda h, r: verdicts(r) == ["escalate"] and r["steps"][0]["status"] == "completed"
        and scheduled_activities(h).count("call_model") == 1  # accepting runs nothing again
        and [(e["status"], e["resolution"]["decision"]) for e in r["escalations"]] == [("resolved", "accept")],
    ),
    "escalation-abort": Scenario(
        "escalated", ("update:resolve",),
        proof=lambda h, r: verdicts(r) == ["escalate"] and r["steps"][0]["status"] == "escalated"
        and r["steps"][0]["error"].endswith("aborted by bob") and scheduled_activities(h).count("call_model") == 1
        and [(e["status"], e["resolution"]["decision"]) for e in r["escalations"]] == [("resolved", "abort")],
    ),
    "replan-llm": Scenario("completed", proof=revised_by_the_planner),
    "replan-resolver": Scenario("completed", ("update:resolve",), proof=replanned_by_a_resolver),
    "fallback": Scenario("completed", proof=a_fallback_stood_in),
    "tool-chain": Scenario("completed", proof=chained_with_one_fill),
    # The publish and a note start together; later notes run one at a time beside the waiting publish.
    "mcp-gated": Scenario(
        "completed", ("update:approve",),
        proof=lambda h, r: scheduled_only_after(h, "call_mcp_tool", EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED)
        and scheduled_activities(h).count("call_mcp_tool") == 1
        and [(t["server"], t["tool"], t["side_effect"]) for t in r["plan"]["mcp_tools"]] == [("notes", "post_note", "write")]
        and [(a["tool"], a["rule"]) for a in r["approvals"]] == [("mcp:notes:post_note", "mcp-writes")],
    ),
    "continue-as-new-run1": Scenario(CONTINUED, model_calls_in_flight=2, proof=parked_at_the_boundary),
    "continue-as-new": Scenario("completed", ("update:approve",), proof=resumed_and_approved),
}


def load(path: Path) -> WorkflowHistory:
    """The history under the id it was recorded with: `recorded-NAME` (each run of NAME's chain too), or a
    subagent's `<parent>/<step>`."""
    text = path.read_text()
    history = WorkflowHistory.from_json(workflow_id(recipe_of(path.stem)), text)
    parent = goal_request(history).get("parent")
    return WorkflowHistory.from_json(f"{parent['workflow_id']}/{parent['step_id']}", text) if parent else history


def test_histories_are_recorded() -> None:
    assert HISTORIES, "tests/histories/ holds no recorded history"


def test_every_history_has_a_scenario_and_every_scenario_a_history() -> None:
    assert sorted(p.stem for p in HISTORIES) == sorted(SCENARIOS)


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_recorded_history_replays(path: Path) -> None:
    history = load(path)
    assert any(e.activity_task_scheduled_event_attributes.activity_type.name == "call_model" for e in history.events)
    await replay(history)


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
def test_recorded_history_is_its_scenario(path: Path) -> None:
    assert path.stem in SCENARIOS, f"{path.name}: add a row to SCENARIOS that proves what its name says"
    history, scenario = load(path), SCENARIOS[path.stem]
    if scenario.status == CONTINUED:
        assert history.events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
        result = handed_on(history)
    else:
        assert history.events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED
        result = goal_result(history)
        assert result["status"] == scenario.status, result.get("error")
    assert messages(history) == list(scenario.messages)
    assert timers_fired(history) == scenario.timers_fired
    assert most_in_flight(history) == scenario.model_calls_in_flight
    assert scenario.proof(history, result)
