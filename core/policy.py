"""Policy evaluation for one tool call (pure and deterministic, so workflow code calls it directly).

Order: the requesting role must be a principal, the tool and its side-effect class in its scopes,
hosts and paths inside its scopes (deny-by-default); then the first gate rule that matches turns
the call into an approval request. Arguments are the validated pydantic model, never model text.
An MCP tool (`mcp:<server>:<tool>`) is judged by its name (a grant may name its whole server,
`mcp:<server>:*`) and its side-effect class; the argument scopes (hosts, paths, HTTP method, SQL)
read the built-in tools' argument models, which an MCP call does not have.
"""

from __future__ import annotations

import fnmatch
import json
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from contracts.policy import (
    Approver,
    EscalationPolicy,
    GateCondition,
    GateRule,
    HttpMethodGate,
    McpToolGate,
    PathOutsideGate,
    Policy,
    Principal,
    SideEffectGate,
    SqlNotSelectGate,
    ToolGate,
)
from contracts.mcp import McpCall
from contracts.tools import CACHE_FLAG, KEY_FIELD, SideEffect, ToolArgs
from core.hashing import sha256_text
from core.hosts import host_matches
from core.mcp import granted, split_mcp_name
from core.sql import sql_is_plain_select


@dataclass(frozen=True)
class PolicyDecision:
    outcome: Literal["allow", "deny", "gate"]
    reason: str = ""
    rule: GateRule | None = None


def canonical_arguments(args: ToolArgs | McpCall) -> str:
    """The canonical JSON of validated arguments (sorted keys, defaults included). The stamped cache flag and
    idempotency key are left out: whether the worker may answer from its cache, and under which key it records
    an effect, are not part of the action, so approvals, cache keys and idempotency keys bind to what the tool
    does. An MCP call's arguments are canonical already (the gate made them so)."""
    if isinstance(args, McpCall):
        return args.arguments_json
    stamped = {CACHE_FLAG, KEY_FIELD}
    return json.dumps(args.model_dump(mode="json", exclude=stamped), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def action_sha256(tool: str, args: ToolArgs | McpCall) -> str:
    """SHA-256 of the canonical action; an approval binds to exactly this."""
    return sha256_text(f"{tool}\n{canonical_arguments(args)}")


def shows_its_action(tool: str, arguments_json: str, action: str) -> bool:
    """A listed request's tool and canonical arguments hash to the action it binds: what a reviewer reads is what an
    approval of it runs (a forged subagent report cannot show one action and bind another)."""
    return sha256_text(f"{tool}\n{arguments_json}") == action


def _path(args: ToolArgs) -> str | None:
    path = getattr(args, "path", None)
    return posixpath.normpath(path) if isinstance(path, str) else None


def condition_matches(condition: GateCondition, tool: str, side_effect: SideEffect, args: ToolArgs | McpCall) -> bool:
    if isinstance(condition, ToolGate):
        return granted(tool, condition.tools)
    if isinstance(condition, McpToolGate):
        parts = split_mcp_name(tool)
        return parts is not None and ("*" in condition.servers or parts[0] in condition.servers) and side_effect in condition.side_effects
    if isinstance(condition, SideEffectGate):
        return side_effect in condition.side_effects
    if isinstance(condition, PathOutsideGate):
        path = _path(args)
        return tool in condition.tools and path is not None and not any(
            path == p.rstrip("/") or path.startswith(p.rstrip("/") + "/") for p in condition.prefixes
        )
    if isinstance(condition, HttpMethodGate):
        method = getattr(args, "method", None)
        return isinstance(method, str) and method.upper() not in {m.upper() for m in condition.methods}
    if isinstance(condition, SqlNotSelectGate):
        sql = getattr(args, "sql", None)
        return isinstance(sql, str) and not sql_is_plain_select(sql)
    return False


def _denial(principal: Principal, role: str, tool: str, side_effect: SideEffect, args: ToolArgs | McpCall, whose: str) -> str | None:
    """Why `principal`'s scopes do not cover this call, or None."""
    if not granted(tool, principal.tools):
        return f"{whose} may not use tool {tool!r}"
    if side_effect not in principal.side_effects:
        return f"{whose} may not perform {side_effect.value} actions"
    url = getattr(args, "url", None)
    if isinstance(url, str):
        host = urlsplit(url).hostname or ""
        if not host_matches(host, principal.hosts):
            return f"{whose} may not reach host {host!r}"
    outputs = getattr(args, "outputs", None)  # files a sandboxed run brings back into the workspace
    for path in [_path(args), *(posixpath.normpath(p) for p in outputs or [])]:
        if path is not None and not any(fnmatch.fnmatchcase(path, pattern) for pattern in principal.paths):
            return f"{whose} may not use path {path!r}"
    return None


def evaluate(
    policy: Policy, role: str, tool: str, side_effect: SideEffect, args: ToolArgs | McpCall, scopes: Sequence[Principal] = ()
) -> PolicyDecision:
    """Allow, deny (with the reason the model is told) or gate (with the matching rule).

    `scopes` are outer limits (a subagent's: its parent role's principal, and so on up): a call must fit all.
    """
    principal = policy.principal(role)
    if principal is None:
        return PolicyDecision("deny", f"role {role!r} has no permissions in this policy")
    denial = _denial(principal, role, tool, side_effect, args, f"role {role!r}")
    for scope in scopes:
        denial = denial or _denial(scope, role, tool, side_effect, args, f"this subagent (within the scope of {scope.role!r})")
    if denial is not None:
        return PolicyDecision("deny", denial)
    for rule in policy.gates:
        if role in rule.exempt_roles:
            continue  # the role is granted what this rule gates for everyone else
        if any(condition_matches(c, tool, side_effect, args) for c in rule.when):
            return PolicyDecision("gate", rule.reason or f"gated by rule {rule.name!r}", rule)
    return PolicyDecision("allow")


def with_inherited(
    policy: Policy, gates: Sequence[GateRule], approvers: Sequence[Approver], require_signatures: bool = False,
    escalations: EscalationPolicy | None = None,
) -> Policy:
    """A subagent's policy: its ancestors' gate rules first (the first matching rule decides, so theirs govern),
    then its own; the ancestors' approvers as they defined them (roles and key: a child's playbook cannot
    redefine who an approver is), then its own others; signatures required if any ancestor requires them; the
    parent's escalation policy (who resolves, how long it waits, how often a step is retried)."""
    if not gates and not approvers and not require_signatures and escalations is None:
        return policy
    inherited = {a.name for a in approvers}
    return policy.model_copy(update={
        "gates": [*gates, *policy.gates],
        "approvers": [*approvers, *(a for a in policy.approvers if a.name not in inherited)],
        "require_signatures": policy.require_signatures or require_signatures,
        "escalations": escalations or policy.escalations,
    })
