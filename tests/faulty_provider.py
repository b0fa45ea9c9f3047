"""A fault-injecting OpenAI-compatible model for `ScriptedServer` (real HTTP on 127.0.0.1): each goal names its fault
(`fault=<name>` in the goal's text), gets it on its first request and a plain answer afterwards. Arrival times and
statuses are kept per fault, to check the spacing clients kept and how many attempts each made.

Retryable faults (the request succeeds on a later attempt): 429 and 503 with Retry-After, 500, a response that hangs
past the client's timeout, a connection dropped before any response, a body cut off mid-transfer. Non-retryable ones
(the step fails after one attempt): a complete body that is truncated JSON or JSON of the wrong shape. And two a model
makes itself: an unknown tool name and invalid tool arguments (refused by the workflow, told to the model).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass

from tests.llama_server import Recorded, Reply, chat_completion

ANSWER = {"role": "assistant", "content": "A fact about durable execution."}
HANG_SECONDS = 4.0  # past the client's timeout (FOREMAN_MODEL_TIMEOUT_SECONDS in the scenario)


def _tool_call(name: str, arguments: dict) -> dict:
    return {"role": "assistant", "content": "", "tool_calls": [
        {"id": "call-1", "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}]}


@dataclass(frozen=True)
class Fault:
    """What a goal's first request gets; `retryable`: a later attempt of the same call succeeds; `spacing`: the least
    time before that attempt (Retry-After, the retry policy's first interval, or the client's timeout plus it)."""

    name: str
    reply: Reply
    retryable: bool
    spacing: float = 0.0
    refused_as: str | None = None  # the model asked for a call the workflow refuses with this typed error


_WHOLE = json.dumps(chat_completion(ANSWER, "faulty")).encode()
FAULTS = {f.name: f for f in [
    Fault("rate-limited", Reply(429, {"error": {"message": "slow down", "type": "requests"}}, {"Retry-After": "1"}), True, 1.0),
    Fault("server-error", Reply(500, {"error": {"message": "internal error"}}), True, 1.0),
    Fault("unavailable", Reply(503, {"error": {"message": "overloaded"}}, {"Retry-After": "2"}), True, 2.0),
    Fault("hang", Reply(body=chat_completion(ANSWER, "faulty"), delay_seconds=HANG_SECONDS), True, 1.0 + 1.0),
    Fault("dropped", Reply(drop=True), True, 1.0),
    Fault("cut-off", Reply(body=_WHOLE, cut_at=len(_WHOLE) // 2), True, 1.0),
    Fault("truncated-json", Reply(body=_WHOLE[: len(_WHOLE) // 2]), False),
    Fault("malformed-json", Reply(body={"id": "c", "choices": "none"}), False),
    Fault("unknown-tool", Reply(body=chat_completion(_tool_call("launch_rockets", {"count": 3}), "faulty")), True,
          refused_as="ToolNotAllowed"),
    Fault("invalid-arguments", Reply(body=chat_completion(_tool_call("calculate", {"formula": 7}), "faulty")), True,
          refused_as="ToolArgumentsInvalid"),
]}


class FaultyProvider:
    """The responder: the first request of a goal naming `fault=<name>` gets that fault, every other request an answer."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.times: dict[str, list[float]] = {}  # fault name -> arrival of each request of its goal

    def __call__(self, request: Recorded) -> Reply:
        text = json.dumps(request.body.get("messages", []) if isinstance(request.body, dict) else [])
        name = next((n for n in FAULTS if f"fault={n}" in text), None)
        with self._lock:
            arrivals = self.times.setdefault(name or "", [])
            arrivals.append(time.monotonic())
            first = len(arrivals) == 1
        if name is not None and first:
            return FAULTS[name].reply
        return Reply(body=chat_completion(ANSWER, "faulty"))
