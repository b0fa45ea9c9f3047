"""Contracts for model (LLM) calls: one request/response shape for every provider.

API keys never appear here: they are read by the activity from the worker's environment,
so they never reach workflow history.
"""

from enum import StrEnum

from pydantic import BaseModel, Field


class Provider(StrEnum):
    """Which adapter serves a model call."""

    LOCAL = "local"  # llama-cpp-python in the worker process (embedded default)
    OPENAI = "openai"  # any OpenAI-compatible Chat Completions server
    ANTHROPIC = "anthropic"  # Anthropic Messages API


class ModelRole(StrEnum):
    """The role a model call serves; each role can be routed to its own model."""

    PLANNER = "planner"
    EXECUTOR = "executor"
    VERIFIER = "verifier"


class ModelSpec(BaseModel):
    """Which model serves a role. Unset fields fall back to the worker's configuration."""

    provider: Provider | None = None
    model: str | None = Field(default=None, description="Model name, or a GGUF path for `local`.")
    base_url: str | None = None
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(default=384, gt=0, le=32_768)
    input_usd_per_mtok: float | None = Field(default=None, ge=0.0)
    output_usd_per_mtok: float | None = Field(default=None, ge=0.0)


class ChatRole(StrEnum):
    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"


class ToolCallRequest(BaseModel):
    """A tool call the model asked for; arguments stay a JSON string until validated."""

    id: str
    name: str
    arguments_json: str = "{}"


class ChatMessage(BaseModel):
    role: ChatRole
    content: str = ""
    tool_calls: list[ToolCallRequest] = Field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None


class ToolSchema(BaseModel):
    """What the model sees of a tool: its name, description and argument JSON schema."""

    name: str
    description: str
    parameters_json: str


CALL_MODEL_ACTIVITY = "call_model"  # ModelRequest -> ModelResponse


class CacheUse(StrEnum):
    """Whether a model call may be answered from (and stored in) the worker's call cache."""

    OFF = "off"
    DETERMINISTIC = "deterministic"  # only at temperature 0, where the same request means the same answer
    ON = "on"  # also above temperature 0 (the step opted in: a repeated sample is fine)


class ModelRequest(BaseModel):
    """Input of the `call_model` activity."""

    role: ModelRole
    spec: ModelSpec = Field(default_factory=ModelSpec)
    messages: list[ChatMessage]
    tools: list[ToolSchema] = Field(default_factory=list)
    response_schema_json: str | None = Field(
        default=None, description="When set, the reply must be JSON matching this schema."
    )
    cache: CacheUse = CacheUse.DETERMINISTIC


class TokenUsage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class ModelResponse(BaseModel):
    """Output of the `call_model` activity, with provenance (who answered) and cost."""

    message: ChatMessage
    finish_reason: str = "stop"
    usage: TokenUsage = Field(default_factory=TokenUsage)
    provider: Provider
    model: str
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    cached: bool = Field(default=False, description="Answered from the call cache: no provider call, no cost.")
