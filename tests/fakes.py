"""Test doubles that keep the real activity names: a scripted `call_model` (a model that does
exactly what the test says, including following injected instructions)."""

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
