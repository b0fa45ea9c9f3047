"""Test doubles that keep the real activity names. The scripted `call_model` (a model that does exactly
what the test says, including following injected instructions) and its message builders live in
`testkit.models`, shared with bench/; this module is where tests take them from, beside the scripted
replies that more than one test module (or tests/record_history.py) uses."""

from __future__ import annotations

from contracts.llm import ChatMessage, ModelRequest
from testkit.models import Responder, ScriptedModel, answer, call_tool, demo_responder, step_role, tool_messages

__all__ = [
    "GOOD", "WEAK", "Responder", "ScriptedModel", "answer", "call_tool", "demo_responder", "guided", "step_role", "tool_messages",
]

# The escalating playbook's drafter (tests/helpers.py `escalating_playbook`): only GOOD mentions "durable".
GOOD = "Durable execution keeps every step, so a retried agent resumes."
WEAK = "It is fine."


def guided(request: ModelRequest) -> ChatMessage:
    """Weak unless the step's instruction carries a resolver's guidance."""
    return answer(GOOD if "Guidance from bob" in request.messages[-1].content else WEAK)
