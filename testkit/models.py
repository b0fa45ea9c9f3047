"""Scripted models for tests and benchmarks: `call_model` replaced by a plain function of the request,
under the real activity name, so a goal runs the real workflow, planner, verifier and tools on a
model that does exactly what the script says (including obeying injected instructions).

Never used by the worker: production registers `activities.model_call.ModelCalls(cache).call_model`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from temporalio import activity

from contracts.llm import ChatMessage, ChatRole, ModelRequest, ModelResponse, Provider, TokenUsage, ToolCallRequest

Responder = Callable[[ModelRequest], ChatMessage]


def answer(text: str) -> ChatMessage:
    return ChatMessage(role=ChatRole.ASSISTANT, content=text)


def call_tool(name: str, arguments: dict | str, call_id: str = "call-1") -> ChatMessage:
    args = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return ChatMessage(role=ChatRole.ASSISTANT, tool_calls=[ToolCallRequest(id=call_id, name=name, arguments_json=args)])


def step_role(request: ModelRequest) -> str:
    """The executor role named in the system prompt ("You are the <role> in a team ...")."""
    system = request.messages[0].content
    return system.split("You are the ", 1)[1].split(" ", 1)[0] if "You are the " in system else ""


def tool_messages(request: ModelRequest) -> list[ChatMessage]:
    return [m for m in request.messages if m.role is ChatRole.TOOL]


def demo_responder(request: ModelRequest) -> ChatMessage:
    """The research-brief playbook's roles, answered at once: a cited note for the researcher, a
    one-sentence brief for everyone else."""
    if step_role(request) == "researcher":
        return answer("- Durable execution resumes a workflow after a crash [source: durable-execution.md]")
    return answer("Durable execution records every step, so a crashed agent resumes instead of starting over.")


@dataclass
class ScriptedModel:
    """`call_model` replaced by a function of the request; every request is kept for assertions."""

    respond: Responder
    requests: list[ModelRequest] = field(default_factory=list)

    def activity(self):
        @activity.defn(name="call_model")
        async def call_model(request: ModelRequest) -> ModelResponse:
            self.requests.append(request)
            message = self.respond(request)
            return ModelResponse(
                message=message,
                finish_reason="tool_calls" if message.tool_calls else "stop",
                usage=TokenUsage(prompt_tokens=sum(len(m.content) for m in request.messages) // 4, completion_tokens=len(message.content) // 4 + 1),
                provider=Provider.OPENAI,
                model="scripted",
                cost_usd=0.0001,
            )

        return call_model
