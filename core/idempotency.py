"""Idempotency keys (pure and deterministic: the workflow builds them, the tools record their effects under them).

A key names one tool call of one goal, the same however often and wherever the call runs: Temporal's activity
retries, a worker killed mid-call and a new one taking over, and a step parked at a continue-as-new and resumed
in the next run all meet the same key. What it covers (`CallSite` plus the action):

- namespace and workflow id: the goal;
- the goal's first run id (`workflow.info().first_execution_run_id`): the same in every run a continue-as-new
  chain makes, and new for a new goal that reuses a workflow id (whose calls must not find the last goal's
  effects); never the current run id, which changes at every continue-as-new;
- the step id (unique in a goal: a revised plan's steps are renamed `v<n>-...`);
- the call index: the step's n-th tool call (0-based), counted by the workflow over every call the step makes,
  refused ones included; a parked step resumed from its journal counts its journalled calls again, in order, so
  its next call gets the index it would have had; an activity retry is not a new call and keeps it;
- the tool and its canonical action (`core.policy.action_sha256`, what an approval binds to; the stamped cache
  flag and key left out).

So two identical calls in one step (two indexes) are two effects, and one call retried is one. `idempotency_key`
builds it, here only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from contracts.mcp import McpCall
from contracts.tools import ToolArgs
from core.hashing import sha256_text
from core.policy import action_sha256

KEY_VERSION = "v2"  # bump if what the key covers changes (older records then simply stop matching); v1 was the activity's identity


@dataclass(frozen=True)
class CallSite:
    """Where a tool call stands in its goal: everything the key covers but the action."""

    namespace: str
    workflow_id: str
    first_run_id: str
    step_id: str
    call_index: int


def idempotency_key(site: CallSite, tool: str, args: ToolArgs | McpCall) -> str:
    """`idem:v2:<tool>:<sha256 of the call site and the action>`."""
    identity = [site.namespace, site.workflow_id, site.first_run_id, site.step_id, site.call_index, tool, action_sha256(tool, args)]
    return f"idem:{KEY_VERSION}:{tool}:" + sha256_text(json.dumps(identity, separators=(",", ":"), ensure_ascii=False))
