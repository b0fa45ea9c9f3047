"""Typed failure names carried as `ApplicationError.type`.

One place for every error type so retry policies can list the non-retryable ones.
"""

from enum import StrEnum


class ErrorType(StrEnum):
    """`ApplicationError.type` values raised by Foreman activities and workflows."""

    INVALID_GOAL = "InvalidGoal"
    UNKNOWN_PLAYBOOK = "UnknownPlaybook"
    PLAN_INVALID = "PlanInvalid"
    MODEL_BAD_REQUEST = "ModelBadRequest"
    MODEL_AUTH = "ModelAuthError"
    MODEL_NOT_FOUND = "ModelNotFound"
    MODEL_RATE_LIMITED = "ModelRateLimited"
    MODEL_DEFERRED = "ModelDeferred"  # retryable: the worker's limiter timed the next attempt to the call's turn
    MODEL_UNAVAILABLE = "ModelUnavailable"
    MODEL_OUTPUT_INVALID = "ModelOutputInvalid"
    MODEL_CONFIG = "ModelConfigError"
    TOOL_ARGUMENTS_INVALID = "ToolArgumentsInvalid"
    TOOL_NOT_ALLOWED = "ToolNotAllowed"
    TOOL_FAILED = "ToolFailed"
    TOOL_TRANSIENT = "ToolTransient"
    PATH_OUTSIDE_WORKSPACE = "PathOutsideWorkspace"
    BUDGET_EXCEEDED = "BudgetExceeded"
    ARTIFACT_MISMATCH = "ArtifactMismatch"
    POLICY_DENIED = "PolicyDenied"
    APPROVAL_DENIED = "ApprovalDenied"
    CONTENT_MISSING = "ContentMissing"
    EXTRACTION_FAILED = "ExtractionFailed"
    RESUME_REFUSED = "ResumeRefused"
    PARENT_REFUSED = "ParentRefused"
    STORE_CONFIG = "StoreConfigError"
    SANDBOX_UNAVAILABLE = "SandboxUnavailable"
    SANDBOX_LIMIT = "SandboxLimitExceeded"
    MCP_CONFIG = "McpConfigError"
    MCP_SERVER_MISSING = "McpServerMissing"
    MCP_TOOL_MISSING = "McpToolMissing"
    MCP_TOOL_ERROR = "McpToolError"
    MCP_TIMEOUT = "McpTimeout"
    MCP_UNAVAILABLE = "McpUnavailable"


# Errors that retrying cannot fix; activities raise them with non_retryable=True as well.
NON_RETRYABLE_ERROR_TYPES: list[str] = [
    ErrorType.INVALID_GOAL,
    ErrorType.UNKNOWN_PLAYBOOK,
    ErrorType.PLAN_INVALID,
    ErrorType.MODEL_BAD_REQUEST,
    ErrorType.MODEL_AUTH,
    ErrorType.MODEL_NOT_FOUND,
    ErrorType.MODEL_OUTPUT_INVALID,
    ErrorType.MODEL_CONFIG,
    ErrorType.TOOL_ARGUMENTS_INVALID,
    ErrorType.TOOL_NOT_ALLOWED,
    ErrorType.TOOL_FAILED,
    ErrorType.CONTENT_MISSING,
    ErrorType.EXTRACTION_FAILED,
    ErrorType.RESUME_REFUSED,
    ErrorType.PARENT_REFUSED,
    ErrorType.STORE_CONFIG,
    ErrorType.PATH_OUTSIDE_WORKSPACE,
    ErrorType.BUDGET_EXCEEDED,
    ErrorType.ARTIFACT_MISMATCH,
    ErrorType.SANDBOX_UNAVAILABLE,
    ErrorType.SANDBOX_LIMIT,
    ErrorType.MCP_CONFIG,
    ErrorType.MCP_SERVER_MISSING,
    ErrorType.MCP_TOOL_MISSING,
    ErrorType.MCP_TOOL_ERROR,
]
