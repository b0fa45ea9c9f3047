"""Real local HTTP servers for provider tests (never a patched client).

`LlamaServer` runs llama-cpp-python's OpenAI-compatible server on the embedded SmolLM2 model, so
the OpenAI adapter is exercised over HTTP exactly as against vLLM/Ollama/OpenAI; startup is
bounded and shutdown is terminate-then-kill. `ScriptedServer` is a tiny threaded HTTP server on
127.0.0.1 that records each request and answers from a script, for vendor payloads and errors.
`CrowdedProvider` is a script for it: a provider that answers 429 with Retry-After above N concurrent requests
(`tests/faulty_provider.py` has another: scripted faults per goal).
"""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

import httpx

log = logging.getLogger(__name__)

STARTUP_TIMEOUT_SECONDS = 60.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LlamaServer:
    """`python -m llama_cpp.server` as a subprocess; `base_url` ends in /v1 like OpenAI's."""

    def __init__(self, model_path: Path, port: int | None = None, n_threads: int = 1) -> None:
        self.model_path = model_path
        # One thread: the test runner and other processes share the cores, and oversubscribed ggml
        # threads spin-wait (replies 5-10x slower), while a single thread is only ~15% slower.
        self.n_threads = n_threads
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._process: subprocess.Popen[bytes] | None = None
        self._log = tempfile.NamedTemporaryFile(prefix="llama-server-", suffix=".log", delete=False)

    def start(self) -> None:
        command = [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(self.model_path),
            "--chat_format", "chatml-function-calling",
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--n_ctx", "4096",
            "--n_threads", str(self.n_threads),
            "--seed", "1234",
        ]  # fmt: skip
        self._process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited with {self._process.returncode}: {self.output()[-2000:]}")
            try:
                if httpx.get(f"{self.base_url}/models", timeout=1.0).status_code == 200:
                    log.info("llama_cpp.server ready on %s", self.base_url)
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"llama_cpp.server not ready after {STARTUP_TIMEOUT_SECONDS}s: {self.output()[-2000:]}")

    def output(self) -> str:
        return Path(self._log.name).read_text(errors="replace")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        self._log.close()
        Path(self._log.name).unlink(missing_ok=True)

    def __enter__(self) -> LlamaServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class Recorded:
    """One request the scripted server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # JSON-encoded unless bytes
    headers: dict[str, str] = field(default_factory=dict)
    delay_seconds: float = 0.0
    drop: bool = False  # close the connection without answering
    cut_at: int | None = None  # declare the whole body, send only its first `cut_at` bytes, then close


Responder = Callable[[Recorded], Reply]


class LocalHttpServer:
    """A threaded HTTP server on 127.0.0.1 (a free port) running `handler` inside a `with` block."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        # A short poll interval keeps shutdown (and so each test) fast.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="local-http", daemon=True
        )

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


class ScriptedServer(LocalHttpServer):
    """A threaded HTTP server on 127.0.0.1 whose replies come from `responder`; requests are kept."""

    def __init__(self, responder: Responder) -> None:
        self.responder = responder
        self.requests: list[Recorded] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server naming): pages for http_fetch
                self.do_POST("GET")

            def do_POST(self, method: str = "POST") -> None:  # noqa: N802 (http.server naming)
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw
                recorded = Recorded(method, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                server.requests.append(recorded)
                reply = server.responder(recorded)
                if reply.delay_seconds:
                    time.sleep(reply.delay_seconds)
                if reply.drop:
                    self.close_connection = True
                    return
                payload = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(payload)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload if reply.cut_at is None else payload[: reply.cut_at])
                    self.close_connection = reply.cut_at is not None or self.close_connection
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout tests)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                log.debug("scripted server: " + format, *args)

        super().__init__(Handler)


class CrowdedProvider:
    """A `ScriptedServer` responder: an OpenAI-compatible model that takes `seconds` per request and answers 429 (with
    `Retry-After`) to a request arriving while `limit` are in flight. Counts what it saw; `times` keeps, per goal (the
    last user message), when each request arrived and its status, to check the spacing clients kept."""

    def __init__(self, limit: int, seconds: float = 0.1, retry_after: float = 1.0) -> None:
        self.limit, self.seconds, self.retry_after = limit, seconds, retry_after
        self._lock = threading.Lock()
        self.in_flight = self.peak = self.served = self.rejected = 0
        self.times: dict[str, list[tuple[float, int]]] = {}

    def __call__(self, request: Recorded) -> Reply:
        messages = request.body.get("messages", []) if isinstance(request.body, dict) else []
        goal = next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), "")
        with self._lock:
            crowded = self.in_flight >= self.limit
            self.times.setdefault(goal, []).append((time.monotonic(), 429 if crowded else 200))
            if crowded:
                self.rejected += 1
                error = {"error": {"message": "Rate limit reached: too many concurrent requests", "type": "requests"}}
                return Reply(429, error, {"Retry-After": f"{self.retry_after:g}"})
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        try:
            time.sleep(self.seconds)
        finally:
            with self._lock:
                self.in_flight -= 1
                self.served += 1
        return Reply(body=chat_completion({"role": "assistant", "content": "A fact."}, "crowded"))


def chat_completion(message: dict, model: str) -> dict:
    """An OpenAI Chat Completions reply body carrying `message`."""
    return {
        "id": "c", "object": "chat.completion", "model": model,
        "choices": [{"index": 0, "finish_reason": "tool_calls" if message.get("tool_calls") else "stop", "message": message}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13},
    }
