"""Test doubles that keep the real activity names. The scripted `call_model` (a model that does exactly
what the test says, including following injected instructions) and its message builders live in
`testkit.models`, shared with bench/; this module is where tests take them from, beside the scripted
replies that more than one test module (or tests/record_history.py) uses. No module imports a test
module: a reply two modules need lives here, a set-up in tests/helpers.py."""

from __future__ import annotations

import json

from contracts.llm import ChatMessage, ModelRequest
from testkit.models import Responder, ScriptedModel, answer, call_tool, demo_responder, step_role, tool_messages

__all__ = [
    "ANSWERS", "COMPARISON", "GOOD", "WEAK", "Responder", "ScriptedModel", "answer", "by_instruction", "call_tool",
    "calls_then_reports", "demo_responder", "executor", "fills_sql", "guided", "notes_from_memory", "researcher_answers", "step_role",
    "tool_messages", "weak_then_good",
]

# The escalating playbook's drafter (tests/helpers.py `escalating_playbook`): only GOOD mentions "durable".
GOOD = "Durable execution keeps every step, so a retried agent resumes."
WEAK = "It is fine."


def guided(request: ModelRequest) -> ChatMessage:
    """Weak unless the step's instruction carries a resolver's guidance."""
    return answer(GOOD if "Guidance from bob" in request.messages[-1].content else WEAK)


# --- subagents: the `team` playbook's roles (tests/helpers.py `team_playbooks`) ----------------------


def researcher_answers(request: ModelRequest):
    if step_role(request) == "researcher":
        return answer("angle one findings" if "angle one" in request.messages[-1].content else "angle two findings")
    return answer("merged: one and two")


# --- explore: the `explore` playbook's drafter (tests/helpers.py `explore_playbook`) -----------------

ANSWERS = {  # by the variant's instruction: how many of the three terms each answer has
    "Be brief.": "Durable.",  # 1 of 3
    "Be thorough.": "Durable execution keeps a history, so a crashed agent can resume.",  # 3 of 3
    "Be balanced.": "Durable execution lets agents resume.",  # 2 of 3
}


def by_instruction(request: ModelRequest):
    task = request.messages[-1].content
    return answer(next((text for key, text in ANSWERS.items() if key in task), "nothing"))


# --- re-planning and fallbacks: goals planned by tests/helpers.py `PlannerServer`, and its playbooks ---

# tests/test_replanning.py's GOOD (renamed: GOOD above is the escalating drafter's).
COMPARISON = "Retries repeat a failed call; idempotency makes a repeat harmless, so retries and idempotency go together."


def executor(request: ModelRequest):
    """The drafter of the first plan writes nothing, however often asked; everyone else answers."""
    return answer("" if any("Draft a comparison" in m.content for m in request.messages) else COMPARISON)


def weak_then_good(request: ModelRequest) -> ChatMessage:
    """tests/helpers.py `replannable_playbook`: its drafter never says 'harmless'; the analyst of the
    revised plan does."""
    return answer(COMPARISON if step_role(request) == "analyst" else "Retries happen.")


def notes_from_memory(request: ModelRequest) -> ChatMessage:
    """tests/helpers.py `fallback_playbook`: the analyst (standing in for the missing notes) recalls them;
    the drafter briefs."""
    return answer("notes from memory" if step_role(request) == "analyst" else COMPARISON)


# --- tool chains: the one model call of a `model_fills` step (tests/helpers.py `chain`) -------------


def fills_sql(sql: str):
    def respond(request: ModelRequest):
        assert json.loads(request.response_schema_json)["required"] == ["sql"]  # just the filled argument
        return answer(json.dumps({"sql": sql}))
    return respond


# --- MCP tools: a model that calls one tool (tests/test_mcp.py, the `mcp-gated` recipe) --------------


def calls_then_reports(name: str, *arguments: dict) -> Responder:
    """Each of `arguments` as one call of the tool `name` (as the model was offered it), then a report of the last
    tool message."""
    def respond(request: ModelRequest) -> ChatMessage:
        seen = tool_messages(request)
        if len(seen) < len(arguments):
            return call_tool(name, arguments[len(seen)], call_id=f"call-{len(seen)}")
        return answer(f"{step_role(request)} saw: {seen[-1].content}")
    return respond
