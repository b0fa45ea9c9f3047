"""Anthropic Messages adapter against a scripted Messages-API server on 127.0.0.1.

Asserts both directions: the request the adapter sends (headers, top-level system, merged
tool_result turns, tool schemas, forced `respond` tool) and how realistic replies and error
bodies are parsed and typed.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from temporalio.exceptions import ApplicationError

from activities.providers.anthropic import RESPOND_TOOL, AnthropicProvider, messages_url
from contracts.errors import ErrorType
from contracts.llm import (
    ChatMessage,
    ChatRole,
    ModelRequest,
    ModelRole,
    Provider,
    ToolCallRequest,
    ToolSchema,
)
from settings import ResolvedModel
from tests.llama_server import Reply, ScriptedServer

API_KEY = "sk-ant-api03-testkey-0123456789"
SEARCH = ToolSchema(
    name="search_docs",
    description="Search the document corpus",
    parameters_json=json.dumps({"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}),
)
VERDICT_SCHEMA = {
    "type": "object",
    "properties": {"passed": {"type": "boolean"}, "reason": {"type": "string"}},
    "required": ["passed", "reason"],
}


def resolved(base_url: str) -> ResolvedModel:
    return ResolvedModel(
        provider=Provider.ANTHROPIC,
        model="claude-test",
        base_url=base_url,
        api_key=API_KEY,
        temperature=0.0,
        max_tokens=256,
        input_usd_per_mtok=3.0,
        output_usd_per_mtok=15.0,
        timeout_seconds=10.0,
    )


def message_reply(content: list[dict[str, object]], stop_reason: str) -> dict[str, object]:
    return {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "model": "claude-test-20250101",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": 412, "output_tokens": 57, "cache_read_input_tokens": 0},
    }


CONVERSATION = [
    ChatMessage(role=ChatRole.SYSTEM, content="You are the executor."),
    ChatMessage(role=ChatRole.SYSTEM, content="Cite sources."),
    ChatMessage(role=ChatRole.USER, content="Find the refund policy and the shipping policy."),
    ChatMessage(
        role=ChatRole.ASSISTANT,
        content="Searching both.",
        tool_calls=[
            ToolCallRequest(id="toolu_1", name="search_docs", arguments_json='{"query": "refund"}'),
            ToolCallRequest(id="toolu_2", name="search_docs", arguments_json='{"query": "shipping"}'),
        ],
    ),
    ChatMessage(role=ChatRole.TOOL, tool_call_id="toolu_1", content="Refunds within 30 days."),
    ChatMessage(role=ChatRole.TOOL, tool_call_id="toolu_2", content="Ships in 2 days."),
]


async def test_text_reply_and_request_shape() -> None:
    reply = message_reply([{"type": "text", "text": "Refunds: 30 days. Shipping: 2 days."}], "end_turn")
    with ScriptedServer(lambda _: Reply(body=reply)) as server:
        request = ModelRequest(role=ModelRole.EXECUTOR, messages=CONVERSATION, tools=[SEARCH])
        response = await AnthropicProvider().complete(request, resolved(server.base_url))
    [sent] = server.requests
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == API_KEY
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in sent.headers
    body = sent.body
    assert body["model"] == "claude-test"
    assert (body["max_tokens"], body["temperature"]) == (256, 0.0)
    assert body["system"] == "You are the executor.\n\nCite sources."
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Find the refund policy and the shipping policy."}]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Searching both."},
                {"type": "tool_use", "id": "toolu_1", "name": "search_docs", "input": {"query": "refund"}},
                {"type": "tool_use", "id": "toolu_2", "name": "search_docs", "input": {"query": "shipping"}},
            ],
        },
        {
            "role": "user",  # both results in one user turn, as the API requires
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "Refunds within 30 days."},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": "Ships in 2 days."},
            ],
        },
    ]
    assert body["tools"] == [
        {
            "name": "search_docs",
            "description": "Search the document corpus",
            "input_schema": json.loads(SEARCH.parameters_json),
        }
    ]
    assert "tool_choice" not in body

    assert response.provider is Provider.ANTHROPIC
    assert response.model == "claude-test-20250101"
    assert response.message.role is ChatRole.ASSISTANT
    assert response.message.content == "Refunds: 30 days. Shipping: 2 days."
    assert response.message.tool_calls == []
    assert response.finish_reason == "stop"
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (412, 57)
    assert response.cost_usd == pytest.approx((412 * 3.0 + 57 * 15.0) / 1e6)
    assert response.latency_ms > 0


async def test_tool_use_reply() -> None:
    reply = message_reply(
        [
            {"type": "text", "text": "Let me search."},
            {"type": "tool_use", "id": "toolu_01A09q90", "name": "search_docs", "input": {"query": "warranty"}},
        ],
        "tool_use",
    )
    with ScriptedServer(lambda _: Reply(body=reply)) as server:
        request = ModelRequest(
            role=ModelRole.EXECUTOR,
            messages=[ChatMessage(role=ChatRole.USER, content="What is the warranty?")],
            tools=[SEARCH],
        )
        response = await AnthropicProvider().complete(request, resolved(server.base_url + "/v1"))
    assert server.requests[0].path == "/v1/messages"  # a base_url ending in /v1 is not doubled
    assert "system" not in server.requests[0].body
    assert response.finish_reason == "tool_calls"
    assert response.message.content == "Let me search."
    assert response.message.tool_calls == [
        ToolCallRequest(id="toolu_01A09q90", name="search_docs", arguments_json='{"query": "warranty"}')
    ]


async def test_structured_output_forces_respond_tool() -> None:
    reply = message_reply(
        [{"type": "tool_use", "id": "toolu_9", "name": RESPOND_TOOL, "input": {"passed": True, "reason": "cited"}}],
        "tool_use",
    )
    with ScriptedServer(lambda _: Reply(body=reply)) as server:
        request = ModelRequest(
            role=ModelRole.VERIFIER,
            messages=[*CONVERSATION, ChatMessage(role=ChatRole.USER, content="Did the answer cite sources?")],
            tools=[SEARCH],
            response_schema_json=json.dumps(VERDICT_SCHEMA),
        )
        response = await AnthropicProvider().complete(request, resolved(server.base_url))
    body = server.requests[0].body
    assert body["tool_choice"] == {"type": "tool", "name": RESPOND_TOOL}
    assert [t["name"] for t in body["tools"]] == ["search_docs", RESPOND_TOOL]
    assert body["tools"][1]["input_schema"] == VERDICT_SCHEMA
    # The user question after the tool results joins their turn, after the tool_result blocks.
    assert [block["type"] for block in body["messages"][-1]["content"]] == ["tool_result", "tool_result", "text"]
    assert json.loads(response.message.content) == {"passed": True, "reason": "cited"}
    assert response.message.tool_calls == []
    assert response.finish_reason == "stop"


async def test_structured_output_without_respond_block_is_invalid() -> None:
    reply = message_reply([{"type": "text", "text": "I think it passed."}], "end_turn")
    with ScriptedServer(lambda _: Reply(body=reply)) as server:
        request = ModelRequest(
            role=ModelRole.VERIFIER,
            messages=[ChatMessage(role=ChatRole.USER, content="verdict?")],
            response_schema_json=json.dumps(VERDICT_SCHEMA),
        )
        with pytest.raises(ApplicationError) as caught:
            await AnthropicProvider().complete(request, resolved(server.base_url))
    assert caught.value.type == ErrorType.MODEL_OUTPUT_INVALID
    assert caught.value.non_retryable


def _anthropic_error(kind: str, message: str) -> dict[str, object]:
    return {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy"}


TOKENS_EXCEEDED = "Number of request tokens has exceeded your per-minute rate limit"
BAD_INPUT = "messages.1.content.0.tool_use.input: Input should be a valid dictionary"


@pytest.mark.parametrize(
    ("reply", "error_type", "retryable", "delay", "excerpt"),
    [
        pytest.param(
            Reply(429, _anthropic_error("rate_limit_error", TOKENS_EXCEEDED), {"retry-after": "3"}),
            ErrorType.MODEL_RATE_LIMITED, True, timedelta(seconds=3), "rate_limit_error", id="429",
        ),
        pytest.param(
            Reply(529, _anthropic_error("overloaded_error", "Overloaded")),
            ErrorType.MODEL_UNAVAILABLE, True, None, "overloaded_error", id="529",
        ),
        pytest.param(
            Reply(401, _anthropic_error("authentication_error", "invalid x-api-key")),
            ErrorType.MODEL_AUTH, False, None, "authentication_error", id="401",
        ),
        pytest.param(
            Reply(400, _anthropic_error("invalid_request_error", BAD_INPUT)),
            ErrorType.MODEL_BAD_REQUEST, False, None, "invalid_request_error", id="400",
        ),
        pytest.param(
            Reply(404, _anthropic_error("not_found_error", "model: claude-nope")),
            ErrorType.MODEL_NOT_FOUND, False, None, "not_found_error", id="404",
        ),
    ],
)  # fmt: skip
async def test_errors_are_typed(
    reply: Reply, error_type: ErrorType, retryable: bool, delay: timedelta | None, excerpt: str
) -> None:
    with ScriptedServer(lambda _: reply) as server:
        with pytest.raises(ApplicationError) as caught:
            await AnthropicProvider().complete(
                ModelRequest(role=ModelRole.PLANNER, messages=[ChatMessage(role=ChatRole.USER, content="hi")]),
                resolved(server.base_url),
            )
    error = caught.value
    assert error.type == error_type
    assert error.non_retryable is not retryable
    assert error.next_retry_delay == delay
    assert excerpt in error.message
    assert API_KEY not in str(error)
    assert len(server.requests) == 1


def test_messages_url() -> None:
    assert messages_url("https://api.anthropic.com") == "https://api.anthropic.com/v1/messages"
    assert messages_url("https://proxy.example/v1/") == "https://proxy.example/v1/messages"
