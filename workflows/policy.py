"""Policy evaluation for one tool call (pure and deterministic, so workflow code calls it directly).

Order: the requesting role must be a principal, the tool and its side-effect class in its scopes,
hosts and paths inside its scopes (deny-by-default); then the first gate rule that matches turns
the call into an approval request. Arguments are the validated pydantic model, never model text.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import posixpath
import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from contracts.policy import (
    GateCondition,
    GateRule,
    HttpMethodGate,
    PathOutsideGate,
    Policy,
    SideEffectGate,
    SqlNotSelectGate,
    ToolGate,
)
from contracts.tools import SideEffect, ToolArgs


@dataclass(frozen=True)
class PolicyDecision:
    outcome: Literal["allow", "deny", "gate"]
    reason: str = ""
    rule: GateRule | None = None


def canonical_arguments(args: ToolArgs) -> str:
    """The canonical JSON of validated arguments (sorted keys, defaults included)."""
    return json.dumps(args.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def action_sha256(tool: str, args: ToolArgs) -> str:
    """SHA-256 of the canonical action; an approval binds to exactly this."""
    return hashlib.sha256(f"{tool}\n{canonical_arguments(args)}".encode()).hexdigest()


def _path(args: ToolArgs) -> str | None:
    path = getattr(args, "path", None)
    return posixpath.normpath(path) if isinstance(path, str) else None


def _host_allowed(host: str, patterns: list[str]) -> bool:
    host = host.lower()
    return any(host == p.lower() or (p.startswith("*.") and host.endswith(p[1:].lower())) for p in patterns)


_WRITE_KEYWORDS = re.compile(
    r"\b(INSERT|UPDATE|DELETE|REPLACE|UPSERT|DROP|ALTER|CREATE|ATTACH|DETACH|PRAGMA|VACUUM|REINDEX|TRUNCATE|GRANT|REVOKE)\b",
    re.IGNORECASE,
)


_QUOTE_CLOSERS = {"'": "'", '"': '"', "`": "`", "[": "]"}


def _sql_code(sql: str) -> str:
    """The SQL with string literals and quoted names replaced by `_` and comments by spaces, scanned
    left to right so a `--` inside a string is not a comment and a `'` inside a comment is not a string."""
    out: list[str] = []
    i = 0
    while i < len(sql):
        char = sql[i]
        if char in _QUOTE_CLOSERS:
            end = sql.find(_QUOTE_CLOSERS[char], i + 1)
            while end != -1 and char == "'" and sql.startswith("''", end):
                end = sql.find("'", end + 2)  # '' is an escaped quote inside a string
            out.append(" _ ")
            i = len(sql) if end == -1 else end + 1
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            out.append(" ")
            i = len(sql) if end == -1 else end + 1
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            out.append(" ")
            i = len(sql) if end == -1 else end + 2
        else:
            out.append(char)
            i += 1
    return "".join(out)


def sql_is_plain_select(sql: str) -> bool:
    """True only for one statement that starts with SELECT/WITH and names no writing keyword anywhere.

    Deliberately conservative: a SELECT that merely mentions `delete` in a string is gated too
    (a human looks at it) rather than letting `WITH x AS (...) DELETE ...` or `SELECT 1; DROP ...` through.
    """
    text = _sql_code(sql).strip().rstrip(";").strip()
    first = text.lstrip("(").split(None, 1)
    return bool(first) and first[0].upper() in {"SELECT", "WITH"} and ";" not in text and not _WRITE_KEYWORDS.search(text)


def condition_matches(condition: GateCondition, tool: str, side_effect: SideEffect, args: ToolArgs) -> bool:
    if isinstance(condition, ToolGate):
        return tool in condition.tools
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


def evaluate(policy: Policy, role: str, tool: str, side_effect: SideEffect, args: ToolArgs) -> PolicyDecision:
    """Allow, deny (with the reason the model is told) or gate (with the matching rule)."""
    principal = policy.principal(role)
    if principal is None:
        return PolicyDecision("deny", f"role {role!r} has no permissions in this policy")
    if tool not in principal.tools:
        return PolicyDecision("deny", f"role {role!r} may not use tool {tool!r}")
    if side_effect not in principal.side_effects:
        return PolicyDecision("deny", f"role {role!r} may not perform {side_effect.value} actions")
    url = getattr(args, "url", None)
    if isinstance(url, str):
        host = urlsplit(url).hostname or ""
        if not _host_allowed(host, principal.hosts):
            return PolicyDecision("deny", f"role {role!r} may not reach host {host!r}")
    path = _path(args)
    if path is not None and not any(fnmatch.fnmatchcase(path, pattern) for pattern in principal.paths):
        return PolicyDecision("deny", f"role {role!r} may not use path {path!r}")
    for rule in policy.gates:
        if any(condition_matches(c, tool, side_effect, args) for c in rule.when):
            return PolicyDecision("gate", rule.reason or f"gated by rule {rule.name!r}", rule)
    return PolicyDecision("allow")
