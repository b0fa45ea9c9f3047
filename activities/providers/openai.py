"""OpenAI-compatible Chat Completions adapter (OpenAI, vLLM, Ollama /v1, llama.cpp servers).

One POST to `{base_url}/chat/completions` per call, no client retries (Temporal owns them),
failures typed by `http_errors`. Structured output is the one dialect difference that matters:
OpenAI, vLLM, Ollama and llama.cpp's C++ `llama-server` take
`{"type": "json_schema", "json_schema": {...}}`, while the Python `llama_cpp.server` (which our
tests run) only validates `{"type": "json_object", "schema": ...}` and answers
an error to anything else (HTTP 500 wrapping a validation error, in 0.3.36); real OpenAI in turn
rejects the extra `schema` key. So in AUTO mode we send the standard form and, on an error that
names `response_format`, resend once in the json_object form and remember that base_url for the
life of the worker.
"""

from __future__ import annotations

import json
import time
from enum import StrEnum
from typing import Any, ClassVar

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

_PROVIDER = "openai"


class StructuredOutput(StrEnum):
    """How `response_schema_json` is put on the wire."""

    AUTO = "auto"  # json_schema, falling back to json_object+schema once per server that rejects it
    JSON_SCHEMA = "json_schema"  # OpenAI structured outputs (strict)
    JSON_OBJECT = "json_object"  # {"type": "json_object", "schema": ...}: llama_cpp.server, Anyscale-style


def _message_to_wire(message: ChatMessage) -> dict[str, Any]:
    if message.role is ChatRole.TOOL:
        return {"role": "tool", "tool_call_id": message.tool_call_id or "", "content": message.content}
    wire: dict[str, Any] = {"role": message.role.value, "content": message.content}
    if message.name:
        wire["name"] = message.name
    if message.role is ChatRole.ASSISTANT and message.tool_calls:
        # Some servers (llama.cpp, older vLLM) reject `content: null`; "" is accepted everywhere.
        wire["content"] = message.content or ""
        wire["tool_calls"] = [
            {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments_json}}
            for call in message.tool_calls
        ]
    return wire


def _response_format(schema: dict[str, Any], style: StructuredOutput) -> dict[str, Any]:
    if style is StructuredOutput.JSON_OBJECT:
        return {"type": "json_object", "schema": schema}
    return {"type": "json_schema", "json_schema": {"name": "response", "schema": schema, "strict": True}}


def build_payload(request: ModelRequest, model: ResolvedModel, style: StructuredOutput) -> dict[str, Any]:
    """The Chat Completions request body for one call."""
    payload: dict[str, Any] = {
        "model": model.model,
        "messages": [_message_to_wire(m) for m in request.messages],
        "temperature": model.temperature,
        # `max_tokens` rather than `max_completion_tokens`: the only one every compatible server knows.
        "max_tokens": model.max_tokens,
        "stream": False,
    }
    if request.tools:
        payload["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": tool.name,
                    "description": tool.description,
                    "parameters": load_json_object(tool.parameters_json, f"parameters of tool {tool.name!r}"),
                },
            }
            for tool in request.tools
        ]
        # OpenAI defaults to "auto" when tools are present, but llama_cpp.server ignores tools without it.
        payload["tool_choice"] = "auto"
    if request.response_schema_json:
        schema = load_json_object(request.response_schema_json, "response_schema_json")
        payload["response_format"] = _response_format(schema, style)
    return payload


def _parse_tool_calls(raw: Any) -> list[ToolCallRequest]:
    if not raw:
        return []
    if not isinstance(raw, list):
        raise output_invalid(_PROVIDER, f"tool_calls is not a list: {raw!r}")
    calls: list[ToolCallRequest] = []
    for index, item in enumerate(raw):
        function = item.get("function") if isinstance(item, dict) else None
        if not isinstance(function, dict) or not function.get("name"):
            raise output_invalid(_PROVIDER, f"tool call without a function name: {item!r}")
        arguments = function.get("arguments")
        if isinstance(arguments, (dict, list)):  # Ollama-style servers send an object, not a string
            arguments = json.dumps(arguments)
        calls.append(
            ToolCallRequest(
                id=str(item.get("id") or f"call_{index}"),
                name=str(function["name"]),
                arguments_json=arguments or "{}",
            )
        )
    return calls


def parse_response(body: dict[str, Any], model: ResolvedModel, latency_ms: float) -> ModelResponse:
    """A `ModelResponse` from a Chat Completions reply body."""
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise output_invalid(_PROVIDER, f"no choices in reply: {json.dumps(body)[:200]}")
    choice = choices[0]
    message = choice.get("message")
    if not isinstance(message, dict):
        raise output_invalid(_PROVIDER, "choices[0].message missing")
    content = message.get("content")
    if content is not None and not isinstance(content, str):
        raise output_invalid(_PROVIDER, f"message.content is not a string: {content!r}")
    tool_calls = _parse_tool_calls(message.get("tool_calls"))
    usage_raw = body.get("usage") if isinstance(body.get("usage"), dict) else {}
    usage = TokenUsage(
        prompt_tokens=int(usage_raw.get("prompt_tokens") or 0),
        completion_tokens=int(usage_raw.get("completion_tokens") or 0),
    )
    finish_reason = choice.get("finish_reason") or ("tool_calls" if tool_calls else "stop")
    return ModelResponse(
        message=ChatMessage(role=ChatRole.ASSISTANT, content=content or "", tool_calls=tool_calls),
        finish_reason=str(finish_reason),
        usage=usage,
        provider=Provider.OPENAI,
        # The model that actually answered (servers may resolve aliases), for provenance.
        model=str(body.get("model") or model.model),
        cost_usd=model.cost(usage.prompt_tokens, usage.completion_tokens),
        latency_ms=latency_ms,
    )


def _rejects_json_schema(error: ApplicationError) -> bool:
    # llama_cpp.server reports its request-validation failure as HTTP 500, not 422.
    kinds = (ErrorType.MODEL_BAD_REQUEST, ErrorType.MODEL_UNAVAILABLE)
    return error.type in kinds and "response_format" in error.message


class OpenAIProvider:
    """`ModelProvider` for any OpenAI-compatible Chat Completions endpoint."""

    # base_urls that rejected json_schema; process-wide because providers are built per call.
    _json_object_servers: ClassVar[set[str]] = set()

    def __init__(self, structured_output: StructuredOutput = StructuredOutput.AUTO) -> None:
        self.structured_output = structured_output

    def _style_for(self, base_url: str) -> StructuredOutput:
        if self.structured_output is StructuredOutput.AUTO:
            if base_url in self._json_object_servers:
                return StructuredOutput.JSON_OBJECT
            return StructuredOutput.JSON_SCHEMA
        return self.structured_output

    async def complete(self, request: ModelRequest, model: ResolvedModel) -> ModelResponse:
        if not model.base_url:
            raise ApplicationError(
                "openai provider needs a base_url (FOREMAN_MODEL_BASE_URL)",
                type=ErrorType.MODEL_CONFIG,
                non_retryable=True,
            )
        base_url = model.base_url.rstrip("/")
        url = f"{base_url}/chat/completions"
        headers = {"Content-Type": "application/json"}
        if model.api_key:
            headers["Authorization"] = f"Bearer {model.api_key}"
        style = self._style_for(base_url)
        started = time.monotonic()

        async def send(chosen: StructuredOutput) -> dict[str, Any]:
            return await post_json(
                url,
                build_payload(request, model, chosen),
                headers=headers,
                timeout_seconds=model.timeout_seconds,
                provider=_PROVIDER,
                secrets=(model.api_key,),
            )

        try:
            body = await send(style)
        except ApplicationError as error:
            fallback = (
                request.response_schema_json
                and self.structured_output is StructuredOutput.AUTO
                and style is StructuredOutput.JSON_SCHEMA
                and _rejects_json_schema(error)
            )
            if not fallback:
                raise
            # Not a retry of a failure: the same request in the dialect this server speaks.
            self._json_object_servers.add(base_url)
            body = await send(StructuredOutput.JSON_OBJECT)
        return parse_response(body, model, latency_ms=(time.monotonic() - started) * 1000)
