"""Anthropic Messages API adapter.

Translates our OpenAI-shaped chat into Messages: system text goes top-level, assistant tool
calls become `tool_use` blocks, tool results become `tool_result` blocks in a user turn (the API
wants every result for one assistant turn in the next user message, so consecutive same-role
turns are merged). Structured output is a forced tool `respond` whose input schema is the
response schema; its input comes back as the message content. One attempt, typed errors.
"""

from __future__ import annotations

import json
import time
from typing import Any

from temporalio.exceptions import ApplicationError

from activities.providers._http import load_json_object, post_json
from activities.providers.http_errors import output_invalid
from contracts.errors import ErrorType
from contracts.llm import (
    ChatMessage,
    ChatRole,
    ModelRequest,
    ModelResponse,
    Provider,
    TokenUsage,
    ToolCallRequest,
)
from settings import ResolvedModel

_PROVIDER = "anthropic"
ANTHROPIC_VERSION = "2023-06-01"
RESPOND_TOOL = "respond"

# Anthropic stop reasons in the OpenAI vocabulary the rest of Foreman uses.
_FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def _tool_input(arguments_json: str) -> dict[str, Any]:
    """`tool_use.input` must be an object; keep malformed model output visible instead of failing the turn."""
    try:
        value = json.loads(arguments_json or "{}")
    except ValueError:
        return {"raw_arguments": arguments_json}
    return value if isinstance(value, dict) else {"value": value}


def _blocks(message: ChatMessage) -> list[dict[str, Any]]:
    if message.role is ChatRole.TOOL:
        return [{"type": "tool_result", "tool_use_id": message.tool_call_id or "", "content": message.content}]
    # The API rejects empty text blocks, so an empty content contributes none.
    blocks: list[dict[str, Any]] = [{"type": "text", "text": message.content}] if message.content else []
    if message.role is ChatRole.ASSISTANT:
        blocks += [
            {"type": "tool_use", "id": call.id, "name": call.name, "input": _tool_input(call.arguments_json)}
            for call in message.tool_calls
        ]
    return blocks


def to_messages(messages: list[ChatMessage]) -> tuple[str, list[dict[str, Any]]]:
    """(system text, Messages-API turns) for a chat."""
    system = "\n\n".join(m.content for m in messages if m.role is ChatRole.SYSTEM and m.content)
    turns: list[dict[str, Any]] = []
    for message in messages:
        if message.role is ChatRole.SYSTEM:
            continue
        role = "assistant" if message.role is ChatRole.ASSISTANT else "user"
        blocks = _blocks(message)
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            # Merges consecutive tool results (and a user note after them) into one user turn.
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    for turn in turns:
        # tool_result blocks must lead their user turn; a stable sort keeps everything else in order.
        turn["content"].sort(key=lambda block: block["type"] != "tool_result")
    return system, turns


def build_payload(request: ModelRequest, model: ResolvedModel) -> dict[str, Any]:
    """The Messages API request body for one call."""
    system, turns = to_messages(request.messages)
    payload: dict[str, Any] = {
        "model": model.model,
        "max_tokens": model.max_tokens,
        "temperature": model.temperature,
        "messages": turns,
    }
    if system:
        payload["system"] = system
    tools = [
        {
            "name": tool.name,
            "description": tool.description,
            "input_schema": load_json_object(tool.parameters_json, f"parameters of tool {tool.name!r}"),
        }
        for tool in request.tools
    ]
    if request.response_schema_json:
        schema = load_json_object(request.response_schema_json, "response_schema_json")
        tools.append(
            {
                "name": RESPOND_TOOL,
                "description": "Give your final answer in the required structure.",
                "input_schema": schema,
            }
        )
        payload["tool_choice"] = {"type": "tool", "name": RESPOND_TOOL}
    if tools:
        # Other tools stay declared even when `respond` is forced: earlier tool_use blocks refer to them.
        payload["tools"] = tools
    return payload


def parse_response(
    body: dict[str, Any], request: ModelRequest, model: ResolvedModel, latency_ms: float
) -> ModelResponse:
    """A `ModelResponse` from a Messages API reply body."""
    content = body.get("content")
    if not isinstance(content, list):
        raise output_invalid(_PROVIDER, f"no content blocks in reply: {json.dumps(body)[:200]}")
    texts: list[str] = []
    calls: list[ToolCallRequest] = []
    structured: str | None = None
    for block in content:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(str(block.get("text", "")))
        elif kind == "tool_use":
            arguments = json.dumps(block.get("input") or {})
            if request.response_schema_json and block.get("name") == RESPOND_TOOL:
                structured = arguments
            else:
                calls.append(
                    ToolCallRequest(
                        id=str(block.get("id", "")), name=str(block.get("name", "")), arguments_json=arguments
                    )
                )
        # thinking/redacted_thinking and future block types carry nothing we pass on.
    if request.response_schema_json and structured is None:
        raise output_invalid(_PROVIDER, f"structured reply without a {RESPOND_TOOL!r} tool_use block")
    stop_reason = str(body.get("stop_reason") or "end_turn")
    finish_reason = "stop" if structured is not None else _FINISH_REASONS.get(stop_reason, stop_reason)
    usage_raw = body.get("usage") if isinstance(body.get("usage"), dict) else {}
    usage = TokenUsage(
        prompt_tokens=int(usage_raw.get("input_tokens") or 0),
        completion_tokens=int(usage_raw.get("output_tokens") or 0),
    )
    return ModelResponse(
        message=ChatMessage(
            role=ChatRole.ASSISTANT,
            content=structured if structured is not None else "".join(texts),
            tool_calls=calls,
        ),
        finish_reason=finish_reason,
        usage=usage,
        provider=Provider.ANTHROPIC,
        model=str(body.get("model") or model.model),
        cost_usd=model.cost(usage.prompt_tokens, usage.completion_tokens),
        latency_ms=latency_ms,
    )


def messages_url(base_url: str) -> str:
    """`{base_url}/v1/messages`, tolerating a base_url that already ends in /v1."""
    base = base_url.rstrip("/")
    return f"{base}/messages" if base.endswith("/v1") else f"{base}/v1/messages"


class AnthropicProvider:
    """`ModelProvider` for the Anthropic Messages API."""

    async def complete(self, request: ModelRequest, model: ResolvedModel) -> ModelResponse:
        if not model.base_url:
            raise ApplicationError(
                "anthropic provider needs a base_url", type=ErrorType.MODEL_CONFIG, non_retryable=True
            )
        headers = {"content-type": "application/json", "anthropic-version": ANTHROPIC_VERSION}
        if model.api_key:
            headers["x-api-key"] = model.api_key
        payload = build_payload(request, model)
        started = time.monotonic()
        body = await post_json(
            messages_url(model.base_url),
            payload,
            headers=headers,
            timeout_seconds=model.timeout_seconds,
            provider=_PROVIDER,
            secrets=(model.api_key,),
        )
        return parse_response(body, request, model, latency_ms=(time.monotonic() - started) * 1000)
