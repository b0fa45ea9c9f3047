"""Contracts for policy: agent roles as principals with scopes, and the rules that gate actions.

A policy ships with its playbook (or is the default policy file); it is declared in code or config,
never in prompts, and the planner's model cannot change it. Everything not allowed is denied.
"""

import base64
import binascii
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from contracts.tools import SideEffect


class Principal(BaseModel):
    """What one agent role may do."""

    role: str
    tools: list[str] = Field(
        default_factory=list, description="Tools this role may call ('mcp:<server>:*' grants every tool of one MCP server)."
    )
    side_effects: list[SideEffect] = Field(default_factory=lambda: [SideEffect.READ])
    hosts: list[str] = Field(default_factory=list, description="Hosts http_fetch may reach ('*.example.com' allowed).")
    paths: list[str] = Field(default_factory=lambda: ["*"], description="Workspace path globs for file tools.")


def valid_public_key(public_key: str) -> bool:
    """A raw 32-byte key in base64 (Ed25519's public key size)."""
    try:
        return len(base64.b64decode(public_key, validate=True)) == 32
    except (binascii.Error, ValueError):
        return False


class Approver(BaseModel):
    """A human who may decide approval requests, with the roles they hold. With a `public_key`, every decision
    made in their name must carry their signature (`core/signatures.py`)."""

    name: str = Field(min_length=1)
    roles: list[str] = Field(default_factory=list)
    public_key: str | None = Field(default=None, description="Ed25519 public key, raw 32 bytes in base64.")

    @field_validator("public_key")
    @classmethod
    def _key_is_ed25519(cls, value: str | None) -> str | None:
        if value is not None and not valid_public_key(value):
            raise ValueError("public_key must be a raw 32-byte Ed25519 public key in base64")
        return value


class DecisionSignature(BaseModel):
    """An approver's signature over a decision (`core/signatures.py` says what is signed and how)."""

    signed_at: int = Field(description="Unix seconds when it was signed (part of the signed message).")
    signature: str = Field(min_length=1, max_length=200, description="Base64 Ed25519 signature.")


class GateKind(StrEnum):
    TOOL = "tool"
    SIDE_EFFECT = "side_effect"
    PATH_OUTSIDE = "path_outside"
    HTTP_METHOD_NOT = "http_method_not"
    SQL_NOT_SELECT = "sql_not_select"
    MCP_TOOL = "mcp_tool"


class ToolGate(BaseModel):
    type: Literal[GateKind.TOOL] = GateKind.TOOL
    tools: list[str] = Field(min_length=1)


class SideEffectGate(BaseModel):
    type: Literal[GateKind.SIDE_EFFECT] = GateKind.SIDE_EFFECT
    side_effects: list[SideEffect] = Field(min_length=1)


class PathOutsideGate(BaseModel):
    """A file tool whose `path` is not under one of `prefixes` (e.g. any write outside drafts/)."""

    type: Literal[GateKind.PATH_OUTSIDE] = GateKind.PATH_OUTSIDE
    tools: list[str] = Field(default_factory=lambda: ["write_file"])
    prefixes: list[str] = Field(min_length=1)


class HttpMethodGate(BaseModel):
    type: Literal[GateKind.HTTP_METHOD_NOT] = GateKind.HTTP_METHOD_NOT
    methods: list[str] = Field(default_factory=lambda: ["GET"])


class SqlNotSelectGate(BaseModel):
    type: Literal[GateKind.SQL_NOT_SELECT] = GateKind.SQL_NOT_SELECT


class McpToolGate(BaseModel):
    """A tool from an MCP server in `servers` ('*': any) whose side-effect class is one of `side_effects`."""

    type: Literal[GateKind.MCP_TOOL] = GateKind.MCP_TOOL
    servers: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    side_effects: list[SideEffect] = Field(default_factory=lambda: [SideEffect.WRITE, SideEffect.DESTRUCTIVE], min_length=1)


GateCondition = Annotated[
    ToolGate | SideEffectGate | PathOutsideGate | HttpMethodGate | SqlNotSelectGate | McpToolGate, Field(discriminator="type")
]


class GateRule(BaseModel):
    """Actions matching any condition wait for human approval bound to the exact action."""

    name: str
    when: list[GateCondition] = Field(min_length=1)
    approvals: int = Field(default=1, ge=1, le=10)
    approver_roles: list[str] = Field(default_factory=list, description="Each approver must hold one; empty: any approver.")
    sequence: list[str] = Field(
        default_factory=list, description="Ordered approval: the k-th approval needs role sequence[k]."
    )
    expires_after_seconds: int = Field(default=3600, ge=1, le=30 * 24 * 3600)
    on_expiry: Literal["deny", "escalate"] = "deny"
    reason: str = ""
    exempt_roles: list[str] = Field(default_factory=list, description="Agent roles explicitly granted what this rule gates.")

    @model_validator(mode="after")
    def _sequence_sets_the_count(self) -> "GateRule":
        if self.sequence:
            self.approvals = len(self.sequence)
        return self


class EscalationPolicy(BaseModel):
    """Who may resolve an escalated step, and how long it waits (past that: abort, never accept)."""

    resolver_roles: list[str] = Field(default_factory=list, description="Approver roles that may resolve; empty: any approver.")
    timeout_seconds: int = Field(default=24 * 3600, ge=1, le=30 * 24 * 3600)
    max_retries_per_step: int = Field(default=3, ge=0, le=20, description="Bounds the retry decisions one step can get.")


class Policy(BaseModel):
    """Principals, approvers and gates for one goal; the default denies everything."""

    principals: list[Principal] = Field(default_factory=list)
    approvers: list[Approver] = Field(default_factory=list)
    gates: list[GateRule] = Field(default_factory=list)
    escalations: EscalationPolicy = Field(default_factory=EscalationPolicy)
    require_signatures: bool = Field(default=False, description="Every decision must be signed by its approver's key.")

    def principal(self, role: str) -> Principal | None:
        return next((p for p in self.principals if p.role == role), None)

    def approver(self, name: str) -> Approver | None:
        return next((a for a in self.approvers if a.name == name), None)
