"""Contracts for verification: acceptance checks (a discriminated union) and the `Verdict`."""

import json
import re
from enum import StrEnum
from typing import Annotated, Literal

import jsonschema
from pydantic import BaseModel, Field, field_validator

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

    @field_validator("json_schema")
    @classmethod
    def _is_a_schema(cls, value: str) -> str:
        try:
            schema = json.loads(value)
            jsonschema.validators.validator_for(schema).check_schema(schema)
        except (json.JSONDecodeError, jsonschema.SchemaError, TypeError) as err:
            raise ValueError(f"json_schema is not a valid JSON schema: {err}") from err
        return value


def _compiles(value: str) -> str:
    try:
        re.compile(value)
    except re.error as err:
        raise ValueError(f"invalid regular expression: {err}") from err
    return value


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

    _pattern_compiles = field_validator("pattern")(_compiles)


class RegexCheck(_Check):
    type: Literal[CheckKind.REGEX] = CheckKind.REGEX
    pattern: str
    must_match: bool = True

    _pattern_compiles = field_validator("pattern")(_compiles)


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


VERIFY_OUTPUT_ACTIVITY = "verify_output"  # VerifyRequest -> Verdict


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
