"""Contracts for verification: acceptance checks (a discriminated union) and the `Verdict`."""

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from contracts.llm import ModelSpec, TokenUsage


class CheckKind(StrEnum):
    NON_EMPTY = "non_empty"
    LENGTH = "length"
    JSON_SCHEMA = "json_schema"
    REQUIRED_TERMS = "required_terms"
    CITATIONS = "citations"
    REGEX = "regex"
    MODEL_JUDGE = "model_judge"


class _Check(BaseModel):
    on_fail: Literal["refine", "escalate"] = Field(
        default="refine", description="refine: send back to the executor; escalate: stop for a human."
    )


class NonEmptyCheck(_Check):
    type: Literal[CheckKind.NON_EMPTY] = CheckKind.NON_EMPTY


class LengthCheck(_Check):
    type: Literal[CheckKind.LENGTH] = CheckKind.LENGTH
    min_chars: int = Field(default=0, ge=0)
    max_chars: int | None = Field(default=None, gt=0)


class JsonSchemaCheck(_Check):
    type: Literal[CheckKind.JSON_SCHEMA] = CheckKind.JSON_SCHEMA
    json_schema: str


class RequiredTermsCheck(_Check):
    type: Literal[CheckKind.REQUIRED_TERMS] = CheckKind.REQUIRED_TERMS
    terms: list[str] = Field(min_length=1)
    case_sensitive: bool = False


class CitationsCheck(_Check):
    """At least `min_count` citations like `[source: file.md]`; with `known_sources`, each must be one."""

    type: Literal[CheckKind.CITATIONS] = CheckKind.CITATIONS
    min_count: int = Field(default=1, ge=1)
    pattern: str = r"\[source:\s*([^\]]+)\]"
    known_sources: list[str] = Field(default_factory=list)


class RegexCheck(_Check):
    type: Literal[CheckKind.REGEX] = CheckKind.REGEX
    pattern: str
    must_match: bool = True


class ModelJudgeCheck(_Check):
    """A model judges the output against `criteria` (constrained to a pass/fail JSON verdict)."""

    type: Literal[CheckKind.MODEL_JUDGE] = CheckKind.MODEL_JUDGE
    criteria: str


AcceptanceCheck = Annotated[
    NonEmptyCheck
    | LengthCheck
    | JsonSchemaCheck
    | RequiredTermsCheck
    | CitationsCheck
    | RegexCheck
    | ModelJudgeCheck,
    Field(discriminator="type"),
]


class Decision(StrEnum):
    ACCEPT = "accept"
    REFINE = "refine"
    ESCALATE = "escalate"


class CheckResult(BaseModel):
    kind: CheckKind
    passed: bool
    detail: str = ""


class VerifyRequest(BaseModel):
    """Input of the `verify_output` activity."""

    step_id: str
    goal: str
    instruction: str = ""
    output: str
    checks: list[AcceptanceCheck]
    judge: ModelSpec = Field(default_factory=ModelSpec)


class Verdict(BaseModel):
    """Output of the `verify_output` activity."""

    step_id: str
    decision: Decision
    reasons: list[str] = Field(default_factory=list)
    results: list[CheckResult] = Field(default_factory=list)
    usage: TokenUsage = Field(default_factory=TokenUsage)
    model_calls: int = 0
    cost_usd: float = 0.0
